#!/usr/bin/env bash
# Install everything the tests need (mosquitto and prometheus from Debian, aidc[test] in .venv),
# then run lint, type checks and the whole test suite, then the kernels' tests without numba's JIT.
# Extra arguments go to the first pytest run.
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

# The kernels' tests again with numba's JIT off, as stumpy's CI runs its own: the kernels run as
# the plain Python they are written in, so that code is tested too, and what works only compiled
# fails. These are the tests of sim/'s @njit and prange kernels (with their twins in tests/naive.py).
kernel_tests=(
  tests/sim/test_aggregate.py tests/sim/test_checks.py tests/sim/test_fleet_state.py
  tests/sim/test_health.py tests/sim/test_histogram.py tests/sim/test_liveness.py
  tests/sim/test_pools.py tests/sim/test_roofline.py tests/sim/test_routing.py
  tests/sim/test_serving.py tests/sim/test_world.py
)
NUMBA_DISABLE_JIT=1 .venv/bin/python -m pytest -q -p no:cacheprovider -m "not needs_jit" \
  "${kernel_tests[@]}"
