"""Validation's default limits, importable without loading the runner (the CLI's help)."""

GiB = 2**30
#: Seconds before a Caffe process is killed.
DEFAULT_TIMEOUT = 600.0
#: Address-space budget of a Caffe process.
DEFAULT_MEMORY_LIMIT = 4 * GiB
#: ``batch`` value that keeps each net's declared batch.
DECLARED = "declared"
#: ``extent`` value that runs at the smallest height and width proved to run the same way.
SMALLEST = "smallest"
#: The ``extent`` values: the net's own height and width, or the smallest.
EXTENTS = (DECLARED, SMALLEST)
