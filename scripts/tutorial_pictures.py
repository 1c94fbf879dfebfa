"""Draw the pictures of docs/tutorial.md into docs/tutorial/: the photograph the page reads
(scikit-image's cat, ``chelsea``, CC0) and what the page's own commands write.

Each console command of the page that writes ``-o /tmp/protoedit_tutorial_NAME.png`` runs as
shown (from the checkout, open_nsfw linked as ``models/open_nsfw`` as `make fetch` does) with
its output sent to a scratch folder instead; each PNG is then shrunk (half size when wider
than 900 pixels, a 256-colour palette) to stay under 150 KB, and written as
``docs/tutorial/NAME.png``. tests/test_readme.py checks the page embeds only such pictures.

Run with the project's venv: ``python scripts/tutorial_pictures.py``.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the test assets of the checkout: tests/assets
from tests.assets.models import NSFW_LINK, link_model, open_nsfw  # noqa: E402
from tests.docs_blocks import blocks, console_examples  # noqa: E402

PAGE = ROOT / "docs" / "tutorial.md"
OUT = ROOT / "docs" / "tutorial"
SCRATCH = "/tmp/protoedit_tutorial_"
MAX_BYTES = 150_000
MAX_WIDTH = 900


def picture_commands(page: Path) -> list[str]:
    """The page's console commands that write a picture under ``SCRATCH`` (read as the docs
    tests read them)."""
    commands = [
        c for body in blocks(page.read_text(), "console") for c, _, _ in console_examples(body)
    ]
    return [c for c in commands if re.search(rf"-o {SCRATCH}\S+\.png", c)]


def shrink(source: Path, dest: Path) -> int:
    """``source`` as a small palette PNG at ``dest``; its size in bytes."""
    with Image.open(source) as opened:
        image = opened.convert("RGB")
    if image.width > MAX_WIDTH:
        image = image.resize((image.width // 2, image.height // 2), Image.Resampling.LANCZOS)
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(dest, optimize=True)
    size = dest.stat().st_size
    if size > MAX_BYTES:
        raise SystemExit(f"{dest} is {size} bytes, over {MAX_BYTES}")
    return size


def main() -> int:
    from skimage import data

    OUT.mkdir(parents=True, exist_ok=True)
    Image.fromarray(data.chelsea()).save(OUT / "chelsea.jpg", quality=90)
    link_model(open_nsfw(), ROOT / NSFW_LINK)
    bindir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as scratch:
        for command in picture_commands(PAGE):
            argv = shlex.split(command.replace(SCRATCH, f"{scratch}/"))
            argv[0] = str(bindir / argv[0])
            print(f"$ {command}", flush=True)
            subprocess.run(argv, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
            name = re.findall(rf"-o {SCRATCH}(\S+\.png)", command)[0]
            size = shrink(Path(scratch) / name, OUT / name)
            print(f"wrote {(OUT / name).relative_to(ROOT)} ({size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
