"""The code blocks of a Markdown page as the docs tests run them: a console block is a session
of ``$ `` commands, each with the output it shows and its exit code.  tests/test_readme.py and
scripts/tutorial_pictures.py read the pages through this one parser."""

from __future__ import annotations

import re

#: A fenced block and its kind: ```` ```console ````, ```` ```python ````, ...
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.DOTALL | re.MULTILINE)

#: One command of a console block: (command, expected output lines, expected exit code).
Example = tuple[str, list[str], int]


def blocks(text: str, kind: str) -> list[str]:
    """The bodies of ``text``'s blocks of ``kind``, in order."""
    return [body for k, body in BLOCK.findall(text) if k == kind]


def console_examples(body: str) -> list[Example]:
    """Each ``$ `` line of a console block with what follows it: a command continued over
    lines with a backslash reads as one, as a shell reads it; ``# exit N`` gives the code."""
    examples = []
    for chunk in ("\n" + body).split("\n$ ")[1:]:  # a prompt starts a line
        command, *rest = chunk.rstrip("\n").split("\n")
        while command.endswith("\\") and rest:
            command = command[:-1].rstrip() + " " + rest.pop(0).strip()
        exits = [line for line in rest if line.startswith("# exit ")]
        expected = [line for line in rest if not line.startswith("# exit ")]
        examples.append((command, expected, int(exits[0].split()[-1]) if exits else 0))
    return examples
