#!/usr/bin/env bash
# Refresh constraints.txt: resolve aidc[test] from pyproject.toml's ranges in a new venv and
# record every installed version, so scripts/test.sh installs what the suite passed with.
# Run it, then `bash scripts/test.sh`, and commit constraints.txt only if that is green.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=$(mktemp -d)
trap 'rm -rf "$venv"' EXIT
python3 -m venv "$venv"
"$venv/bin/pip" install -q -e '.[test]'
{
  echo "# The versions the suite passed with; refresh with: bash scripts/lock.sh"
  "$venv/bin/pip" freeze --exclude-editable | LC_ALL=C sort -f
} > constraints.txt
echo "constraints.txt: $(grep -vc '^#' constraints.txt) packages"
