"""The README's picture: ``protoedit aux --draw`` on GoogLeNet, made small enough to ship.

Draws the aux rewrite of GoogLeNet's deploy net (a loss head on ``inception_4c/output``) as a
PNG, then stores it with a 64-colour palette (Graphviz writes true colour) so the file stays
well under 400 kB at full resolution.

    .venv/bin/python scripts/readme_picture.py [NET] [-o docs/aux-googlenet.png]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from PIL import Image

from protoedit import cli
from protoedit.caffe import build as caffe_build

ROOT = Path(__file__).resolve().parent.parent
CORPUS_NET = (
    ROOT.parent / "shared" / "corpus" / "BVLC__caffe__models__bvlc_googlenet__deploy.prototxt"
)
TARGET = "inception_4c/output"


def default_net() -> Path:
    """The corpus copy of GoogLeNet, else the one in the unpacked Caffe source package."""
    if CORPUS_NET.is_file():
        return CORPUS_NET
    return caffe_build.models_dir() / "bvlc_googlenet" / "deploy.prototxt"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("net", nargs="?", type=Path, default=None)
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "docs" / "aux-googlenet.png")
    args = parser.parse_args()
    net = args.net or default_net()
    with tempfile.TemporaryDirectory() as tmp:
        drawn = Path(tmp) / "aux.png"
        code = cli.main(
            ["aux", str(net), "--target", TARGET, "--draw", str(drawn), "-o", os.devnull]
        )
        if code:
            return code
        picture = Image.open(drawn).convert("RGB")
        small = picture.quantize(
            colors=64, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
        )
        args.output.parent.mkdir(parents=True, exist_ok=True)
        small.save(args.output, optimize=True)
    size = args.output.stat().st_size
    print(f"wrote {args.output} ({picture.width}x{picture.height}, {size / 1e3:.0f} kB)")
    return 0 if size < 400_000 else 1


if __name__ == "__main__":
    sys.exit(main())
