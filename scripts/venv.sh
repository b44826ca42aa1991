# Sourced by scripts/demo and scripts/test: what both need on a fresh Debian machine.

# Run a command as root: directly when we are root (CI), else through sudo.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Install Debian packages that are missing; `apt-get update` only when something is.
ensure_packages() {
    local missing=()
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "Installing Debian packages: ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# A virtualenv in .venv with Python 3.11 or newer.
ensure_venv() {
    command -v python3 >/dev/null 2>&1 || ensure_packages python3 python3-venv
    if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        echo "intake needs Python 3.11 or newer (python3 is $(python3 --version 2>&1))" >&2
        exit 1
    fi
    if [ ! -x .venv/bin/python ]; then
        python3 -m venv .venv 2>/dev/null || {
            ensure_packages python3-venv
            python3 -m venv .venv
        }
    fi
}
