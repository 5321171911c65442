# vigil in a container: vigild (and the vigil CLI) on Debian slim, built from this
# checkout in a first stage. tests/integration/test_container.py lints this file and, where
# a container runtime runs, builds and runs it.
#
#   docker build -t vigil .
#   vigil pki init pki      # or your CA's files: ca.pem, server.pem, server-key.pem
#   docker run -d --name vigild -v vigil-store:/var/lib/vigil -v "$PWD/pki:/etc/vigil/pki:ro" \
#       -p 24224:24224 -p 6514:6514 -p 8443:8443 vigil
#
# The image runs the installed example config, /etc/vigil/vigil.yaml (mount another over
# it to change it): the store on the /var/lib/vigil volume, the default rule pack, TLS
# files from /etc/vigil/pki (readable by uid 999), /metrics and /healthz on the
# container's loopback (HEALTHCHECK uses it). vigild runs as the unprivileged user vigil.
ARG DEBIAN_RELEASE=bookworm

FROM debian:${DEBIAN_RELEASE}-slim AS build
# scripts/setup.sh's BUILD_PKGS, less libcmocka-dev (the image builds no tests).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config libuv1-dev libssl-dev liblz4-dev libmsgpack-dev \
      libsqlite3-dev libyaml-dev libhttp-parser-dev libyajl-dev zlib1g-dev \
      libcurl4-openssl-dev libzstd-dev libsystemd-dev libarchive-dev libnats-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt README.md ./
COPY cmake/ cmake/
COPY common/ common/
COPY schemas/ schemas/
COPY store/ store/
COPY rules/ rules/
COPY collector/ collector/
COPY query/ query/
COPY forwarders/ forwarders/
COPY etc/ etc/
COPY man/ man/
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DVG_WERROR=OFF -DVG_TESTS=OFF \
      -DCMAKE_INSTALL_PREFIX=/usr -DCMAKE_INSTALL_SYSCONFDIR=/etc \
      -DCMAKE_INSTALL_LOCALSTATEDIR=/var \
 && cmake --build /build -j"$(nproc)" \
 && DESTDIR=/out cmake --install /build

FROM debian:${DEBIAN_RELEASE}-slim
# The libraries vigild and vigil link (test_container.py checks them against the
# binaries' NEEDED entries), and curl for the HEALTHCHECK.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libuv1 libssl3 liblz4-1 libmsgpackc2 libsqlite3-0 libyaml-0-2 libyajl2 zlib1g \
      libcurl4 libzstd1 libhttp-parser2.9 libsystemd0 libarchive13 libnats3.4 curl \
      ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 999 vigil \
 && useradd --system --uid 999 --gid vigil --home-dir /var/lib/vigil \
      --shell /usr/sbin/nologin vigil
COPY --from=build /out/ /
RUN install -d -o vigil -g vigil -m 0750 /var/lib/vigil \
 && install -d -m 0755 /etc/vigil/pki
USER vigil
VOLUME ["/var/lib/vigil"]
# forward, syslog, https; admin (9465) stays on the container's loopback.
EXPOSE 24224 6514 8443
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:9465/healthz"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/vigild"]
CMD ["-c", "/etc/vigil/vigil.yaml"]
