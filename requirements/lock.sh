#!/usr/bin/env bash
# Regenerates requirements/board-aarch64.txt: the exact Python packages a board installs
# (pyproject.toml's runtime dependencies resolved for linux/aarch64 and CPython 3.11).
# Touches: that one file. Needs: uv (in the dev extra) and PyPI.
#
# The versions installed in the tested environment (.venv, or $TESTED_VENV) are preferred, so a
# board runs what the test suite ran against; a package the tested environment lacks (one only
# aarch64 needs) resolves to its newest release.
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${TESTED_VENV:-.venv}"
uv="${UV:-$venv/bin/uv}"
out=requirements/board-aarch64.txt
tested="$(mktemp)"
trap 'rm -f "$tested"' EXIT

# Editable and local installs (the project itself) are not constraints.
"$venv/bin/python" -m pip freeze --exclude-editable | grep -E '^[A-Za-z0-9._-]+==' > "$tested" || true

"$uv" pip compile pyproject.toml \
    --python-platform aarch64-unknown-linux-gnu --python-version 3.11 \
    --constraint "$tested" --quiet \
    --custom-compile-command "requirements/lock.sh" \
    --output-file "$out"
sed -i "s#-c $tested#the tested environment#" "$out"
echo "wrote $out ($(grep -c '==' "$out") packages)"
