#!/usr/bin/env bash
# Installs what vigil needs on Debian (12 "bookworm" or later): the build toolchain and
# libraries; with --test also the clients the integration tests drive (openssl, node
# with @fluent-org/logger, rsyslog, prometheus-alertmanager for the forwarders). Installs only what is missing; needs root (or sudo) for apt.
set -euo pipefail
cd "$(dirname "$0")/.."

# libsystemd-dev: sd_notify for the unit's Type=notify (a no-op outside systemd).
# libarchive-dev: the tar files of evidence bundles (vigil export, vigil verify BUNDLE).
# libnats-dev: cnats, JetStream for cluster nodes (common/cnats.c).
BUILD_PKGS=(build-essential cmake pkg-config libuv1-dev libssl-dev liblz4-dev libmsgpack-dev
            libsqlite3-dev libyaml-dev libcmocka-dev libhttp-parser-dev libyajl-dev
            zlib1g-dev libcurl4-openssl-dev libzstd-dev libsystemd-dev libarchive-dev
            libnats-dev)
# systemd: systemd-analyze checks the unit; groff-base: the man pages render cleanly;
# zsh: `vigil completion zsh` is driven in it; nats-server: the cluster tests run a
# JetStream cluster of them (test_cluster.py);
# libivykis0 libnet1 libwrap0 libpcre3: the libraries of syslog-ng-core, which itself is
# unpacked below, not installed (as are prometheus, for promtool, and
# prometheus-alertmanager, for the forwarders' tests).
TEST_PKGS=(openssl curl python3 nodejs npm rsyslog rsyslog-openssl systemd groff-base zsh
           libivykis0 libnet1 libwrap0 libpcre3 nats-server)

want=("${BUILD_PKGS[@]}")
if [[ "${1:-}" == "--test" ]]; then
    want+=("${TEST_PKGS[@]}")
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then
    SUDO=sudo
fi

missing=()
for p in "${want[@]}"; do
    # node and npm may come from elsewhere than Debian's packages: accept them on PATH.
    case "$p" in
        nodejs) command -v node >/dev/null && continue ;;
        npm) command -v npm >/dev/null && continue ;;
    esac
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}" >&2
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null || { echo "setup: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# unpack PACKAGE FILE COMMAND: PACKAGE's .deb unpacked into tests/integration/.agents/PACKAGE
# (where the tests look for FILE), unless COMMAND is on PATH already.
unpack() {
    local dir=tests/integration/.agents/$1 tmp
    if [[ -x $dir/$2 ]] || command -v "$3" >/dev/null; then
        return
    fi
    echo "setup: unpacking $1 into $dir for the integration tests" >&2
    tmp=$(mktemp -d)
    if ! (cd "$tmp" && apt-get download -qq "$1" 2>/dev/null); then
        $SUDO apt-get update -qq
        (cd "$tmp" && apt-get download -qq "$1" 2>/dev/null)
    fi
    mkdir -p "$dir"
    dpkg -x "$tmp"/"$1"_*.deb "$dir"
    rm -rf "$tmp"
}

if [[ "${1:-}" == "--test" ]]; then
    if [[ ! -d tests/integration/node_modules/@fluent-org/logger ||
          ! -d tests/integration/node_modules/kubernetes-models ||
          ! -d tests/integration/node_modules/yaml ]]; then
        echo "setup: installing the npm packages of the integration tests" \
             "(@fluent-org/logger, kubernetes-models, yaml)" >&2
        (cd tests/integration && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    fi
    # Unpacked, not installed: syslog-ng-core conflicts with rsyslog (both are the system
    # log daemon), and installing prometheus would start a Prometheus server where only
    # promtool is wanted (a static binary); installing prometheus-alertmanager would start
    # an Alertmanager on :9093, where the forwarders' tests start their own (static too).
    unpack syslog-ng-core usr/sbin/syslog-ng syslog-ng
    unpack prometheus usr/bin/promtool promtool
    unpack prometheus-alertmanager usr/bin/prometheus-alertmanager prometheus-alertmanager
fi
