"""Reading a VGG-19-sized ``.caffemodel``: peak memory against the file's size, and time.

    python bench/bench_weights.py [--keep DIR]

Writes a random model of VGG-19's shapes (548 MiB) in a temporary folder (or ``--keep
DIR``, reused when present), then in a fresh process each: ``protoedit.weights.load`` (the
goal: peak resident memory below 2x the file), and the reference, protobuf's
``ParseFromString`` of the file's bytes plus one numpy array per blob (what a reader built
on the generated classes does).  Prints each one's peak RSS over the process's own baseline,
as a ratio to the file size, and its time.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Run in a child: the baseline after imports, the peak after the read.  The peak is the
#: kernel's high-water mark of this process image (``VmHWM``: ``ru_maxrss`` would carry the
#: parent's peak over ``exec``).
_CHILD = """
import json, sys, time
import numpy as np
from protoedit.schema import builtin_schema
from protoedit.weights import load

def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])

schema = builtin_schema()
path = sys.argv[1]
base = hwm()
started = time.perf_counter()
if sys.argv[2] == "protoedit":
    weights = load(path)
    count = weights.count
else:
    message = schema.message_class("NetParameter")()
    with open(path, "rb") as handle:
        message.ParseFromString(handle.read())
    arrays = [np.array(b.data, dtype=np.float32) for l in message.layer for b in l.blobs]
    count = sum(a.size for a in arrays)
seconds = time.perf_counter() - started
peak = hwm()
print(json.dumps({"base": base * 1024, "peak": peak * 1024, "seconds": seconds, "count": count}))
"""


_WRITE = """
import sys
from pathlib import Path
from tests.assets.vgg import write_random_vgg19
write_random_vgg19(Path(sys.argv[1]))
"""


def measure(path: Path, reader: str) -> dict[str, float]:
    """One reading in a fresh process."""
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), reader],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    result: dict[str, float] = json.loads(done.stdout)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", metavar="DIR", help="write (or reuse) the model here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-weights-") as tmp:
        folder = Path(args.keep) if args.keep else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "vgg19_random.caffemodel"
        if not path.is_file():  # in a child, so that this process stays small
            subprocess.run([sys.executable, "-c", _WRITE, str(path)], check=True, cwd=ROOT)
        size = path.stat().st_size
        print(f"VGG-19-sized model: {size / 2**20:.0f} MiB ({size} bytes)")
        for reader in ("protoedit", "protobuf"):
            found = measure(path, reader)
            extra = found["peak"] - found["base"]
            print(
                f"  {reader:9}: peak RSS {found['peak'] / 2**20:6.0f} MiB "
                f"({found['peak'] / size:.2f}x the file), {extra / 2**20:6.0f} MiB over the "
                f"baseline ({extra / size:.2f}x), {found['seconds']:.2f} s, "
                f"{int(found['count'])} values"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
