#!/usr/bin/env bash
# The one test command: install what the tests need (system tools through
# apt-get, Python packages into .venv), then lint, type-check and run the tests.
#
#   bash scripts/test.sh [pytest arguments...]
#
# Safe to run again: installs only what is missing.  Quiet: apt and pip output
# goes to a log that is printed only when a step fails.  Exit status: pytest's
# when it fails (5, "no tests ran", counts as a failure), else 1 when ruff or
# mypy failed, else 0.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
LOG="${TMPDIR:-/tmp}/mesosdns-test-setup.log"
EXTRA_TOOL_DIRS=/usr/sbin:/sbin:/usr/share/zookeeper/bin
PY_EXTRAS=()
: >"$LOG"

step() { printf '==> %s\n' "$*"; }

# Run a command with its output in the log; print the log if it fails.
quietly() {
    echo "+ $*" >>"$LOG"
    if ! "$@" >>"$LOG" 2>&1; then
        echo "FAILED: $*  (log follows)" >&2
        cat "$LOG" >&2
        return 1
    fi
}

have_tool() { PATH="$PATH:$EXTRA_TOOL_DIRS" command -v "$1" >/dev/null 2>&1; }

have_zookeeper() {
    [[ -x /usr/share/zookeeper/bin/zkServer.sh ]] ||
        compgen -G '/usr/share/java/zookeeper*.jar' >/dev/null
}

missing_packages() {
    have_tool dig || echo bind9-dnsutils
    have_tool named || echo bind9
    have_tool knotd || echo knot
    have_tool dnsperf || echo dnsperf
    have_zookeeper || echo zookeeper
}

install_system_tools() {
    local pkgs
    mapfile -t pkgs < <(missing_packages)
    ((${#pkgs[@]})) || return 0
    if [[ $(id -u) != 0 ]] || ! command -v apt-get >/dev/null; then
        echo "note: cannot install ${pkgs[*]} (needs root and apt-get);" \
            "tests that need them will skip (or fail with CI=true)" >&2
        return 0
    fi
    step "installing ${pkgs[*]}"
    quietly apt-get update || return 0
    quietly env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends "${pkgs[@]}" ||
        echo "warning: could not install ${pkgs[*]}; the tests that need them will say so" >&2
}

deps_stamp() {
    local sum
    sum=$(sha256sum pyproject.toml | cut -d' ' -f1)
    echo "$sum $(python3 --version 2>&1) ${PY_EXTRAS[*]}"
}

setup_venv() {
    local py="$ROOT/.venv/bin/python" stamp="$ROOT/.venv/.mesosdns-deps" want
    if [[ ! -x $py ]]; then
        step "creating .venv"
        quietly python3 -m venv "$ROOT/.venv"
    fi
    want=$(deps_stamp)
    if [[ -f $stamp && $(<"$stamp") == "$want" ]] && (cd / && "$py" -c 'import mesosdns'); then
        return 0
    fi
    step "installing Python dependencies into .venv"
    quietly "$py" -m pip install --disable-pip-version-check -e '.[test,fast]' "${PY_EXTRAS[@]}"
    echo "$want" >"$stamp"
}

run_checks() {
    local rc=0 prc=0
    export PATH="$ROOT/.venv/bin:$PATH:$EXTRA_TOOL_DIRS"
    step "ruff check mesosdns tests"
    ruff check mesosdns tests || rc=1
    step "mypy"
    mypy || rc=1
    step "pytest -q${*:+ $*}"
    pytest -q "$@" || prc=$?
    if ((prc == 5)); then
        echo "error: pytest ran no tests" >&2
    fi
    if ((prc != 0)); then
        return "$prc"
    fi
    return "$rc"
}

install_system_tools
setup_venv
rc=0
run_checks "$@" || rc=$?
exit "$rc"
