#!/usr/bin/env bash
# The test command: sets up the environment (idempotent) and runs pytest from the repo root.
# Extra arguments go to pytest, e.g. `bash tests/run.sh -m slow` or `bash tests/run.sh tests/test_tokenizer.py`.
#
# The UI tests drive a real headless Chromium. When it is missing and we are root on a Debian-like
# machine (CI), it is installed from the distribution; otherwise those tests skip with a note.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source runs/setup_env.sh

if ! { command -v chromium >/dev/null || command -v chromium-browser >/dev/null; } || ! command -v chromedriver >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "tests/run.sh: installing chromium + chromium-driver for the UI tests"
        apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 \
            || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1; } \
            || echo "tests/run.sh: could not install chromium; the UI tests will be skipped"
    else
        echo "tests/run.sh: chromium/chromedriver not found; the UI tests will be skipped (apt-get install chromium chromium-driver)"
    fi
fi

exec "$NANOCHAT_PY" -m pytest "$@"
