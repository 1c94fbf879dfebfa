"""The command reference, read from the argparse parser: a Markdown page per command for the
docs site and the ``protoedit.1`` man page, so neither can drift from ``--help``."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date

#: Width of the usage lines the pages show (what ``--help`` prints on a wide terminal).
USAGE_WIDTH = 80


@dataclass(frozen=True)
class Option:
    """One argument of a command: its spellings and help, as ``--help`` shows them."""

    flags: str  # "-o OUT, --output OUT" or the positional's metavar
    help: str
    positional: bool


@dataclass(frozen=True)
class Group:
    """A titled group of a command's arguments (positional, options, or one the command names)."""

    title: str
    options: list[Option]


@dataclass(frozen=True)
class Command:
    """A command or subcommand: ``name`` is its words after ``protoedit`` (``weights show``)."""

    name: str
    summary: str
    description: str
    usage: str
    epilog: str
    groups: list[Group]
    subcommands: list[Command] = field(default_factory=list)

    @property
    def slug(self) -> str:
        """The page name: ``weights-show`` for ``protoedit weights show``."""
        return self.name.replace(" ", "-")


def _subparsers(
    parser: argparse.ArgumentParser,
) -> argparse._SubParsersAction[argparse.ArgumentParser] | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return None


def _help_of(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    formatter = argparse.HelpFormatter(parser.prog, width=USAGE_WIDTH)
    text = formatter._expand_help(action) if action.help else ""
    return " ".join(text.split())


def _flags_of(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    formatter = argparse.HelpFormatter(parser.prog, width=USAGE_WIDTH)
    return formatter._format_action_invocation(action)


def _usage_of(parser: argparse.ArgumentParser) -> str:
    formatter = argparse.HelpFormatter(parser.prog, width=USAGE_WIDTH)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups, "")
    return formatter.format_help().strip()


def _groups_of(parser: argparse.ArgumentParser) -> list[Group]:
    groups = []
    for group in parser._action_groups:
        options = [
            Option(_flags_of(parser, a), _help_of(parser, a), not a.option_strings)
            for a in group._group_actions
            if a.help is not argparse.SUPPRESS and not isinstance(a, argparse._SubParsersAction)
        ]
        if options:
            groups.append(Group(group.title or "options", options))
    return groups


def _command(name: str, parser: argparse.ArgumentParser, summary: str) -> Command:
    sub = _subparsers(parser)
    children = []
    if sub is not None:
        helps = {choice.dest: choice.help or "" for choice in sub._choices_actions}
        children = [
            _command(f"{name} {word}", child, helps.get(word, ""))
            for word, child in sub.choices.items()
        ]
    return Command(
        name=name,
        summary=" ".join(summary.split()),
        description=" ".join((parser.description or "").split()),
        usage=_usage_of(parser),
        epilog=" ".join((parser.epilog or "").split()),
        groups=_groups_of(parser),
        subcommands=children,
    )


def commands(parser: argparse.ArgumentParser) -> list[Command]:
    """Every top-level command of ``parser`` (``protoedit``'s), with its subcommands."""
    sub = _subparsers(parser)
    assert sub is not None, "the protoedit parser has subcommands"
    helps = {choice.dest: choice.help or "" for choice in sub._choices_actions}
    return [_command(word, child, helps.get(word, "")) for word, child in sub.choices.items()]


def walk(items: list[Command]) -> Iterator[Command]:
    """Each command, then its subcommands, depth first."""
    for command in items:
        yield command
        yield from walk(command.subcommands)


# --- Markdown --------------------------------------------------------------------------------


def _md_escape(text: str) -> str:
    """Help text as Markdown: backquoted spans stay, the rest cannot open markup."""
    return re.sub(r"([*_<>\[\]|])", r"\\\1", text)


def markdown_page(command: Command, notes: str = "") -> str:
    """The reference page of one command: usage, description, options, then ``notes``."""
    lines = [f"# protoedit {command.name}", ""]
    if command.summary:
        lines += [_md_escape(command.summary[0].upper() + command.summary[1:]) + ".", ""]
    lines += ["```text", command.usage, "```", ""]
    if command.description:
        lines += [_md_escape(command.description), ""]
    if command.subcommands:
        lines += ["## Subcommands", ""]
        for child in command.subcommands:
            lines.append(
                f"- [`protoedit {child.name}`]({child.slug}.md): {_md_escape(child.summary)}"
            )
        lines.append("")
    for group in command.groups:
        lines += [f"## {group.title[0].upper()}{group.title[1:]}", ""]
        lines += ["| argument | what it does |", "| --- | --- |"]
        for option in group.options:
            lines.append(f"| `{option.flags}` | {_md_escape(option.help)} |")
        lines.append("")
    if command.epilog:
        lines += [_md_escape(command.epilog), ""]
    lines.append(
        "*Generated from the command's parser (`protoedit/cli/`): the same text as "
        f"`protoedit {command.name} --help`.*"
    )
    if notes.strip():
        lines += ["", "## Details", "", notes.strip()]
    return "\n".join(lines) + "\n"


def markdown_index(items: list[Command], program: argparse.ArgumentParser) -> str:
    """The list of commands, each linked to its page."""
    lines = [
        "# Commands",
        "",
        _md_escape(" ".join((program.description or "").split())),
        "",
        "```text",
        _usage_of(program),
        "```",
        "",
        "| command | what it does |",
        "| --- | --- |",
    ]
    for command in walk(items):
        lines.append(
            f"| [`protoedit {command.name}`]({command.slug}.md) | {_md_escape(command.summary)} |"
        )
    lines += ["", _md_escape(" ".join((program.epilog or "").split())), ""]
    lines.append(
        "See also [exit codes, errors and files](../behaviour.md), common to every command."
    )
    return "\n".join(lines) + "\n"


# --- man page --------------------------------------------------------------------------------


def _roff(text: str) -> str:
    """Plain text as roff: backslashes and leading dots or quotes made harmless, code spans bold."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    text = re.sub(r"`([^`]+)`", r"\\fB\1\\fR", text)
    return "\n".join(
        "\\&" + line if line.startswith((".", "'")) else line for line in text.split("\n")
    )


def man_page(items: list[Command], program: argparse.ArgumentParser, version: str) -> str:
    """``protoedit.1``: every command with its usage, description and options."""
    out = [
        f'.TH PROTOEDIT 1 "{date.today().isoformat()}" "protoedit {version}" "User Commands"',
        ".SH NAME",
        "protoedit \\- " + _roff(" ".join((program.description or "").split())),
        ".SH SYNOPSIS",
        ".nf",
        _roff(_usage_of(program)),
        ".fi",
        ".SH DESCRIPTION",
        _roff(
            "Each command below has its own --help, with the same text. The full documentation "
            "is the docs site built by make docs."
        ),
        ".SH COMMANDS",
    ]
    for command in walk(items):
        out += [f".SS protoedit {_roff(command.name)}", _roff(command.summary), ".PP", ".nf"]
        out += [_roff(command.usage), ".fi"]
        if command.description:
            out += [".PP", _roff(command.description)]
        for group in command.groups:
            out += [".PP", f".I {_roff(group.title)}"]
            for option in group.options:
                out += [".TP", f"\\fB{_roff(option.flags)}\\fR", _roff(option.help)]
    out += [".SH EXIT STATUS", _roff(" ".join((program.epilog or "").split()))]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    """``python -m protoedit.cli.reference man OUT.1``: write the man page (``make docs``)."""
    import sys
    from pathlib import Path

    from protoedit.cli import build_parser
    from protoedit.cli.messages import version
    from protoedit.files import write_atomic

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] != "man":
        print("usage: python -m protoedit.cli.reference man OUT.1", file=sys.stderr)
        return 2
    parser = build_parser()
    out = Path(args[1])
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, man_page(commands(parser), parser, version()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
