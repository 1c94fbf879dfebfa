#!/usr/bin/env bash
# One-step setup, run by `make` on first use: .venv with protoedit (editable, all extras) and
# pycaffe built from Caffe's source package (cached under ~/.cache/protoedit, so a second setup
# takes seconds). As root it installs the Debian packages the Caffe build needs; otherwise it
# prints the apt-get line to run. The pycaffe step is the code behind `protoedit setup-caffe`.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "setup: protoedit needs Python >= 3.11; set PYTHON=/path/to/python3.11" >&2
    exit 2
fi
# A .venv without pip is what a failed `venv` leaves behind: make it again.
if ! .venv/bin/python -m pip --version >/dev/null 2>&1; then
    echo "setup: creating .venv with $("$PYTHON" --version)" >&2
    rm -rf .venv
    if ! "$PYTHON" -m venv .venv; then
        # Debian's own Python ships venv's pip bootstrap as a separate package.
        rm -rf .venv
        venv_package=$("$PYTHON" -c 'import sys; print("python%d.%d-venv" % sys.version_info[:2])')
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            echo "setup: installing $venv_package" >&2
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$venv_package"
            "$PYTHON" -m venv .venv
        else
            echo "setup: run 'sudo apt-get update && sudo apt-get install -y $venv_package'," \
                "then run the setup again" >&2
            exit 2
        fi
    fi
fi
echo "setup: installing protoedit and its Python dependencies into .venv" >&2
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[caffe,dev,docs,onnx,ray,weights]'
.venv/bin/python -m protoedit.caffe.build install
.venv/bin/python -m protoedit.caffe.build test-tools
