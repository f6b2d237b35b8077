#!/usr/bin/env bash
# Idempotent environment setup, sourced by speedrun.sh and tests/run.sh.
#
# Creates .venv (or $NANOCHAT_VENV), installs uv into it, then installs the project: every
# Python dependency from pyproject.toml plus the `rustbpe` extension built from rustbpe/ by
# maturin. A stamp of the inputs (pyproject + Rust sources) makes a second run a no-op, and a
# change to any of them triggers exactly one rebuild. Needs: python3 >= 3.10, a Rust toolchain,
# and the package registries (PyPI, crates.io). Nothing else is fetched.
#
# After sourcing: $NANOCHAT_PY is the venv's python, and the venv's bin/ is first on PATH.
set -euo pipefail

_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_venv="${NANOCHAT_VENV:-$_root/.venv}"
_extras="${NANOCHAT_EXTRAS:-dev}"   # speedrun.sh does not need the dev tools but they are small

if ! command -v python3 >/dev/null; then
    echo "setup_env: python3 not found; install Python 3.10+ (e.g. apt install python3 python3-venv)" >&2
    return 1 2>/dev/null || exit 1
fi
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
    echo "setup_env: $(python3 --version) is too old; nanochat needs Python 3.10+" >&2
    return 1 2>/dev/null || exit 1
fi
if ! command -v cargo >/dev/null; then
    [ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
fi
if ! command -v cargo >/dev/null; then
    echo "setup_env: cargo not found; rustbpe needs a Rust toolchain:" >&2
    echo "  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y" >&2
    return 1 2>/dev/null || exit 1
fi

if [ ! -x "$_venv/bin/python" ]; then
    echo "setup_env: creating virtual environment in $_venv"
    python3 -m venv "$_venv"
fi
if [ ! -x "$_venv/bin/uv" ]; then
    "$_venv/bin/python" -m pip install --quiet uv
fi

# Pinned versions (runs/constraints.txt) on the Python they were resolved on; ranges elsewhere.
_constraints=()
if [ -z "${NANOCHAT_UNPINNED:-}" ] && "$_venv/bin/python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    _constraints=(--constraint "$_root/runs/constraints.txt")
fi

# Everything that changes what gets installed goes into the stamp.
_stamp_file="$_venv/.nanochat_setup_stamp"
_stamp="$( { echo "$_extras ${_constraints[*]:-unpinned}"; cat "$_root/pyproject.toml" "$_root/rustbpe/Cargo.toml";
             cat "$_root/runs/constraints.txt";
             cat "$_root"/rustbpe/Cargo.lock 2>/dev/null || true;
             find "$_root/rustbpe/src" -type f -name '*.rs' | sort | xargs cat; } | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$_stamp_file" 2>/dev/null || true)" != "$_stamp" ]; then
    echo "setup_env: installing dependencies and building rustbpe (first run, or inputs changed)"
    # --reinstall-package: the project is a local directory, so force uv to rebuild the extension.
    "$_venv/bin/uv" pip install --python "$_venv/bin/python" --reinstall-package nanochat \
        ${_constraints[@]+"${_constraints[@]}"} "$_root[$_extras]"
    "$_venv/bin/python" -c 'import rustbpe, torch' # fail here, not three stages later
    echo "$_stamp" > "$_stamp_file"
fi

# The jail for model-written code (nanochat/jail.py) needs bubblewrap; without it execution falls back to a weaker
# guard and says so. Installed here when we are root on a Debian-like machine, as tests/run.sh does for chromium.
if ! command -v bwrap >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup_env: installing bubblewrap (the jail for model-written code)"
    apt-get install -y -qq bubblewrap >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq bubblewrap >/dev/null 2>&1; } \
        || echo "setup_env: could not install bubblewrap; model-written code will run in the weaker guarded mode" >&2
fi

export NANOCHAT_PY="$_venv/bin/python"
export PATH="$_venv/bin:$PATH"
