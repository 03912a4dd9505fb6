#!/bin/sh
# Make sure the Debian packages a make target needs are installed.
#   ensure-debian-packages.sh COMMAND:PACKAGE ...   install PACKAGE unless COMMAND is on PATH
#   ensure-debian-packages.sh --python-venv PYTHON  make `PYTHON -m venv` work (python3-venv)
# Installs with apt-get when running as root or with password-less sudo;
# otherwise stops with the command a person should run.
set -eu

PATH="$PATH:/usr/sbin:/sbin"

apt_install() {
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "error: '$1' is needed and this is not a Debian-like system: install it with your package manager." >&2
        exit 1
    fi
    if [ "$(id -u)" = 0 ]; then
        SUDO=""
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "error: the Debian package(s) '$*' are needed. Install them, then run make again:" >&2
        echo "    sudo apt-get install -y $*" >&2
        exit 1
    fi
    echo "installing Debian package(s): $*" >&2
    if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "$@" >/dev/null; then
        $SUDO apt-get update >/dev/null
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "$@" >/dev/null
    fi
}

if [ "${1:-}" = "--python-venv" ]; then
    python="${2:-python3}"
    if ! "$python" -c 'import ensurepip, venv' >/dev/null 2>&1; then
        version=$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
        apt_install "python${version}-venv"
    fi
    exit 0
fi

missing=""
for pair in "$@"; do
    command="${pair%%:*}"
    package="${pair#*:}"
    if ! command -v "$command" >/dev/null 2>&1; then
        missing="$missing $package"
    fi
done
if [ -n "$missing" ]; then
    # shellcheck disable=SC2086
    apt_install $missing
fi
