#!/usr/bin/env bash
# Runs the official Fintoc Python SDK against our sandbox.
#
# Builds an isolated venv (.venv-sdk, gitignored) with fintoc 2.x and httpx<0.28:
# fintoc 2.x with httpx>=0.28 drops the query string of the next-page URL and re-reads
# page 1 forever, so the pin is part of the fidelity setup, not a workaround of ours.
# The sandbox itself runs from the project venv (.venv) as a subprocess.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SDK_VENV="${SDK_VENV:-$ROOT/.venv-sdk}"
PYTHON="${PYTHON:-python3}"

if [[ ! -x "$SDK_VENV/bin/python" ]]; then
    "$PYTHON" -m venv "$SDK_VENV"
fi
"$SDK_VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    "fintoc>=2,<3" "httpx<0.28" "pytest>=8" "pytest-timeout>=2.3"

export SANDBOX_PYTHON="${SANDBOX_PYTHON:-$ROOT/.venv/bin/python}"
cd "$ROOT"
# --noconftest: the project conftests import our runtime deps, absent from this venv.
exec "$SDK_VENV/bin/python" -m pytest -p no:cacheprovider --noconftest -q -o addopts="" \
    tests/sdk_fidelity/test_official_sdk.py tests/sdk_fidelity/test_sdk_webhooks.py "$@"
