#!/usr/bin/env bash
# Install everything the tests need (mosquitto and prometheus from Debian, aidc[test] in .venv),
# then run lint, type checks and the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "aidc needs Python 3.11 or newer; python3 is $(python3 --version)" >&2; exit 1; }

if ! { command -v mosquitto || [ -x /usr/sbin/mosquitto ]; } >/dev/null \
  || ! command -v mosquitto_pub >/dev/null || ! command -v openssl >/dev/null \
  || ! command -v prometheus >/dev/null; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq mosquitto mosquitto-clients openssl prometheus
fi

python3 -m venv .venv
.venv/bin/pip install -q -c constraints.txt -e '.[test]'
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
