#!/usr/bin/env bash
# One-step setup, run by `make` on first use: .venv with protoedit (editable, all extras) and
# pycaffe built from Caffe's source package (cached under ~/.cache/protoedit, so a second setup
# takes seconds). As root it installs the Debian packages the Caffe build needs; otherwise it
# prints the apt-get line to run.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "setup: protoedit needs Python >= 3.11; set PYTHON=/path/to/python3.11" >&2
    exit 2
fi
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $("$PYTHON" --version)" >&2
    "$PYTHON" -m venv .venv
fi
echo "setup: installing protoedit and its Python dependencies into .venv" >&2
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[caffe,dev]'
.venv/bin/python -m protoedit.caffe_build install
