"""MkDocs hooks of the docs site: the command reference, a page per command, generated from
the CLI's parser (``protoedit.cli.reference``) at every build, with the hand-written notes of
``docs/reference/commands/SLUG.md`` (when there is one) as its Details section."""

from __future__ import annotations

import re
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

from protoedit.cli import build_parser
from protoedit.cli.reference import commands, markdown_index, markdown_page, walk

#: A Sphinx role left in rendered HTML by a docstring (``:class:`Document```): the API pages
#: show the name alone, as code.
SPHINX_ROLE = re.compile(r":(?:class|meth|func|mod|attr|data|exc|obj):\s*(?=<code>)")

FOLDER = "reference/commands"
PLACEHOLDER = f"{FOLDER}/"


def _pages() -> dict[str, Any]:
    return {f"{FOLDER}/{c.slug}.md": c for c in walk(commands(build_parser()))}


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    """The nav's ``reference/commands/`` entry becomes the index and a page per command."""
    generated = [f"{FOLDER}/index.md", *_pages()]

    def expand(items: list[Any]) -> list[Any]:
        out: list[Any] = []
        for item in items:
            if isinstance(item, dict):
                out.append(
                    {k: generated if v == PLACEHOLDER else expand_one(v) for k, v in item.items()}
                )
            else:
                out.append(item)
        return out

    def expand_one(value: Any) -> Any:
        return expand(value) if isinstance(value, list) else value

    config["nav"] = expand(config["nav"])
    return config


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Replace or add each command's page; notes for a command that does not exist fail."""
    pages = _pages()
    for file in list(files):
        path = file.src_uri
        if path.startswith(PLACEHOLDER) and path.endswith(".md") and path not in pages:
            raise PluginError(f"docs/{path}: notes for a command protoedit does not have")
    for path, command in pages.items():
        existing = files.get_file_from_path(path)
        notes = ""
        if existing is not None:
            notes = existing.content_string
            files.remove(existing)
        files.append(File.generated(config, path, content=markdown_page(command, notes)))
    parser = build_parser()
    files.append(
        File.generated(
            config, f"{FOLDER}/index.md", content=markdown_index(commands(parser), parser)
        )
    )
    return files


def on_page_content(html: str, **_: Any) -> str:
    """Sphinx roles in docstrings (``:class:`X```) read as the name alone."""
    return SPHINX_ROLE.sub("", html)
