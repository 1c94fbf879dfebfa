"""``protoedit setup-caffe``: build pycaffe (or reuse the cached build) for this Python."""

from __future__ import annotations

import argparse

from protoedit.cli.options import Commands


def add_setup_caffe(commands: Commands) -> None:
    """``protoedit setup-caffe``."""
    cmd = commands.add_parser(
        "setup-caffe",
        help="build pycaffe (or reuse the cached build) and install it into this Python",
        description="Build pycaffe from Caffe's source package, CPU only, into the cache "
        "(~/.cache/protoedit, or $PROTOEDIT_CACHE), or reuse the build found there, and link it "
        "into the environment running protoedit. Needs protoedit's `caffe` extra; as root it "
        "installs the Debian packages the build needs. Exit 0 ready, 2 error.",
    )
    cmd.set_defaults(run=run_setup_caffe)


def run_setup_caffe(args: argparse.Namespace) -> int:
    """Build or reuse pycaffe; a ``CaffeBuildError`` goes to the error boundary."""
    from protoedit.caffe import build as caffe_build

    caffe_build.setup()
    return 0
