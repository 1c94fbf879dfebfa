"""Caffe's fatal log line (``F... file.cpp:NN] Check failed: ...``), read from a dead child's
stderr: the one parser of it, for every user of the worker layer."""

from __future__ import annotations

import re
from dataclasses import dataclass

# glog: "F20261126 11:40:00.123456 12345 net.cpp:123] Check failed: ..." (older: "F1126 ...")
_FATAL_LINE = re.compile(r"^F\d{4,8} [\d:.]+\s+\d+ ([^:\s]+):(\d+)\] (.*)$", re.MULTILINE)


@dataclass(frozen=True)
class FatalLog:
    """Caffe's fatal glog line (``F... file.cpp:NN] message``) from an aborted child."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


def fatal_logs(stderr: str) -> list[FatalLog]:
    """Every fatal glog line in ``stderr``, in order."""
    return [
        FatalLog(file=file, line=int(line), message=message.strip())
        for file, line, message in _FATAL_LINE.findall(stderr)
    ]


def last_fatal(stderr: str) -> FatalLog | None:
    """The last fatal glog line in ``stderr`` (the one that killed the process), if any."""
    found = fatal_logs(stderr)
    return found[-1] if found else None
