#!/usr/bin/env bash
# Installs what vigil needs on Debian (12 "bookworm" or later): the build toolchain and
# libraries; with --test also the clients the integration tests drive (openssl, node
# with @fluent-org/logger). Installs only what is missing; needs root (or sudo) for apt.
set -euo pipefail
cd "$(dirname "$0")/.."

# libsystemd-dev: sd_notify for the unit's Type=notify (a no-op outside systemd).
BUILD_PKGS=(build-essential cmake pkg-config libuv1-dev libssl-dev liblz4-dev libmsgpack-dev
            libsqlite3-dev libyaml-dev libcmocka-dev libhttp-parser-dev libyajl-dev
            zlib1g-dev libcurl4-openssl-dev libzstd-dev libsystemd-dev)
# systemd: systemd-analyze checks the unit; groff-base: the man pages render cleanly.
TEST_PKGS=(openssl curl python3 nodejs npm rsyslog rsyslog-openssl systemd groff-base)

want=("${BUILD_PKGS[@]}")
if [[ "${1:-}" == "--test" ]]; then
    want+=("${TEST_PKGS[@]}")
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
    SUDO=""
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null || { echo "setup: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
        SUDO=sudo
    fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [[ "${1:-}" == "--test" ]]; then
    if [[ ! -d tests/integration/node_modules/@fluent-org/logger ]]; then
        echo "setup: installing @fluent-org/logger (npm) for the integration tests" >&2
        (cd tests/integration && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    fi
fi
