# Shared helpers for scripts/serve and scripts/test. Source it; do not run it.
#
# Everything here is idempotent and non-interactive: a second run with nothing changed
# does no network access and finishes in well under a second.

# The repository root, whatever the caller's working directory.
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO_ROOT/.venv"
PYTHON="${PYTHON:-python3}"
NODE_DIR="$REPO_ROOT/tests/interop/node"
STOMP_NODE_DIR="$REPO_ROOT/tests/interop/stomp_node"

export PIP_DISABLE_PIP_VERSION_CHECK=1
export PIP_NO_INPUT=1
export DEBIAN_FRONTEND=noninteractive
export npm_config_yes=true
export npm_config_fund=false
export npm_config_audit=false
export npm_config_update_notifier=false

log() {
    printf '==> %s\n' "$*" >&2
}

die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# Run a command as root: directly when we are root, through sudo otherwise.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        die "need root to run: $*"
    fi
}

# ensure_apt_packages PKG...: install the Debian packages that are missing.
# `apt-get update` runs at most once per script run, and only if something is missing.
_APT_UPDATED=0
ensure_apt_packages() {
    local missing=() pkg
    for pkg in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$pkg")
        fi
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    command -v apt-get >/dev/null 2>&1 || die "missing packages (${missing[*]}) and no apt-get"
    if [ "$_APT_UPDATED" -eq 0 ]; then
        log "apt-get update"
        as_root apt-get update -q </dev/null
        _APT_UPDATED=1
    fi
    log "apt-get install ${missing[*]}"
    as_root apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
}

# Print a hash of everything that decides what `pip install` does.
_install_hash() {
    local extras="$1"
    {
        printf 'extras=%s\nroot=%s\n' "$extras" "$REPO_ROOT"
        "$VENV/bin/python" -c 'import sys; print(sys.version)'
        local f
        # The C accelerator is compiled by pip: rebuild when its source changes.
        for f in pyproject.toml setup.py setup.cfg src/fullduplex/_speedups.c; do
            if [ -f "$REPO_ROOT/$f" ]; then
                printf 'file=%s\n' "$f"
                cat "$REPO_ROOT/$f"
            fi
        done
    } | sha256sum | cut -d' ' -f1
}

_venv_works() {
    [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1
}

# ensure_venv [EXTRAS]: a venv at .venv with `pip install -e .[EXTRAS]` done for the
# current pyproject.toml. Skips pip when a stamp says that exact install already ran.
ensure_venv() {
    local extras="${1:-}"
    local spec="."
    [ -n "$extras" ] && spec=".[$extras]"

    if ! _venv_works; then
        command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found (set PYTHON=...)"
        if ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
            # Debian splits venv/ensurepip out of the interpreter package.
            ensure_apt_packages python3-venv
        fi
        log "creating $VENV"
        rm -rf "$VENV"
        "$PYTHON" -m venv "$VENV"
    fi

    local stamp="$VENV/.fullduplex-install-${extras:-base}"
    local want
    want="$(_install_hash "$extras")"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        return 0
    fi
    # The test install is a superset of the plain one.
    if [ -z "$extras" ] && [ -f "$VENV/.fullduplex-install-test" ] \
        && [ "$(cat "$VENV/.fullduplex-install-test")" = "$(_install_hash test)" ]; then
        return 0
    fi

    log "pip install -e '$spec'"
    (cd "$REPO_ROOT" && "$VENV/bin/python" -m pip install -q -e "$spec" </dev/null)
    printf '%s\n' "$want" >"$stamp"
}

# ensure_node_deps [DIR]: `npm ci` in DIR (default tests/interop/node) when its lock
# file changed.
ensure_node_deps() {
    local dir="${1:-$NODE_DIR}"
    command -v node >/dev/null 2>&1 || die "node not found (Node 20 is required for the interop tests)"
    command -v npm >/dev/null 2>&1 || die "npm not found (Node 20 is required for the interop tests)"
    local stamp="$dir/node_modules/.fullduplex-stamp"
    local want
    want="$(cat "$dir/package.json" "$dir/package-lock.json" <(node --version) \
        | sha256sum | cut -d' ' -f1)"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        return 0
    fi
    log "npm ci in ${dir#"$REPO_ROOT"/}"
    (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error </dev/null)
    printf '%s\n' "$want" >"$stamp"
}

# ensure_rabbitmq_stomp: enable RabbitMQ's STOMP and Web-STOMP plugins when RabbitMQ is
# installed here (the RabbitMQ interop tests skip without them). Idempotent; never
# fails the run: says why when it cannot.
ensure_rabbitmq_stomp() {
    if ! command -v rabbitmq-plugins >/dev/null 2>&1; then
        log "rabbitmq-plugins not found: RabbitMQ STOMP interop tests will be skipped"
        return 0
    fi
    # Already serving STOMP (61613) and Web-STOMP (15674): nothing to do, and no
    # ten-second rabbitmq-plugins run.
    if (exec 3<>/dev/tcp/127.0.0.1/61613) 2>/dev/null && (exec 3<>/dev/tcp/127.0.0.1/15674) 2>/dev/null; then
        return 0
    fi
    log "rabbitmq-plugins enable rabbitmq_stomp rabbitmq_web_stomp"
    local output
    if output="$(as_root rabbitmq-plugins enable rabbitmq_stomp rabbitmq_web_stomp </dev/null 2>&1)"; then
        return 0
    fi
    log "could not enable rabbitmq_stomp/rabbitmq_web_stomp (RabbitMQ STOMP interop tests will be skipped):"
    printf '%s\n' "$output" | tail -n 3 >&2
    return 0
}
