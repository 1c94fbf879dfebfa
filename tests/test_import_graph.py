"""The package's import graph: no cycles among protoedit modules, and ``net/`` never imports
the lint layer above it.  Only module-level imports count (a function's deferred import
runs after every module is loaded); ``if TYPE_CHECKING:`` blocks do not run at all."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import protoedit

PACKAGE = Path(protoedit.__file__).resolve().parent


def _modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = ["protoedit", *path.relative_to(PACKAGE).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _top_level(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements a module runs when it is loaded."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If):
            if "TYPE_CHECKING" not in ast.unparse(node.test):
                yield from _top_level(node.body)
                yield from _top_level(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *[h.body for h in node.handlers]):
                yield from _top_level(block)


def _edges(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the protoedit modules it imports at module level."""
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in _top_level(ast.parse(path.read_text(), str(path)).body):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
                continue
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                full = f"{base}.{alias.name}"
                targets.add(full if full in modules else base)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_import_graph_sees_the_modules_and_their_imports() -> None:
    graph = _edges(_modules())
    assert "protoedit.net.layers" in graph["protoedit.net.shapes"]
    assert "protoedit.net.state" in graph["protoedit.lint"]
    assert "protoedit.syntax.parser" in graph["protoedit.syntax"]  # a relative-free package
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle_among_protoedit_modules() -> None:
    assert _cycles(_edges(_modules())) == []


def test_net_never_imports_lint() -> None:
    graph = _edges(_modules())
    upward = sorted(
        (name, target)
        for name, targets in graph.items()
        if name.startswith("protoedit.net")
        for target in targets
        if target == "protoedit.lint" or target.startswith("protoedit.lint.")
    )
    assert upward == []


def test_the_syntax_layer_imports_nothing_of_caffe() -> None:
    graph = _edges(_modules())
    for name, targets in graph.items():
        if name.startswith("protoedit.syntax"):
            assert all(t.startswith(("protoedit.syntax", "protoedit.errors")) for t in targets), (
                name,
                targets,
            )


def _loaded_after(imports: str, modules: list[str], then: str = "") -> list[str]:
    """Which of ``modules`` a fresh interpreter holds after ``import IMPORTS`` and ``THEN``."""
    code = f"import sys, {imports}\n{then}\nprint(*(m for m in {modules!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_the_cli_starts_without_protobuf_lark_or_numpy() -> None:
    # `protoedit --version` and argument errors must not pay for the heavy imports (the
    # parser with every subcommand's help is built first); the commands import what they
    # need when they run.
    heavy = ["google.protobuf", "lark", "numpy", "protoedit.rewrites", "protoedit.schema"]
    heavy += [
        "tqdm",
        "protoedit.explain",
        "protoedit.sweep",
        "protoedit.validate.runner",
        "protoedit.caffe",
        "protoedit.caffe.session",
        "protoedit.caffe.build",
    ]
    assert _loaded_after("protoedit.cli", heavy, then="protoedit.cli.build_parser()") == []


def test_building_the_parser_loads_only_the_cli_and_the_light_modules_it_names() -> None:
    # What keeps `protoedit --version` fast (about 0.15 s on an idle core), checked without
    # a clock: building the parser imports the cli/ modules and, of the rest of protoedit,
    # the error family, the file helpers and validate's defaults, nothing more.
    modules = sorted(m for m in _modules() if not m.startswith("protoedit.cli"))
    cli = sorted(m for m in _modules() if m.startswith("protoedit.cli."))
    loaded = _loaded_after("protoedit.cli", modules, then="protoedit.cli.build_parser()")
    assert loaded == [
        "protoedit",
        "protoedit.errors",
        "protoedit.files",
        "protoedit.validate",
        "protoedit.validate.defaults",
    ]
    loaded_cli = _loaded_after("protoedit.cli", cli, then="protoedit.cli.build_parser()")
    # a rewrite runs rewrite_file; `make docs` runs reference (the command reference)
    lazy = ["protoedit.cli.__main__", "protoedit.cli.reference", "protoedit.cli.rewrite_file"]
    assert loaded_cli == [m for m in cli if m not in lazy]


def test_the_catalogue_and_the_childs_net_plan_load_without_protobuf_or_lark() -> None:
    # The Caffe child imports netplan, which reads the catalogue: neither may pull in the
    # net view (protobuf, Lark) through ``protoedit.net``.
    heavy = ["google.protobuf", "lark", "protoedit.net.view"]
    assert _loaded_after("protoedit.validate.netplan, protoedit.net.layers", heavy) == []


def test_the_caffe_layer_sits_below_its_users() -> None:
    # validate, explain and sweep run Caffe through protoedit.caffe; it never imports them
    # (a handler module is imported by name, in the child).
    graph = _edges(_modules())
    users = ("protoedit.validate", "protoedit.explain", "protoedit.sweep", "protoedit.cli")
    upward = sorted(
        (name, target)
        for name, targets in graph.items()
        if name.startswith("protoedit.caffe")
        for target in targets
        if target.startswith(users)
    )
    assert upward == []
    assert "protoedit.caffe.session" in graph["protoedit.explain.session"]
    assert "protoedit.caffe.pool" in graph["protoedit.validate.pool"]
    assert "protoedit.caffe.pool" in graph["protoedit.sweep.engines"]


def test_the_caffe_package_and_its_child_load_light() -> None:
    # ``import protoedit.caffe`` and the child's loop need the standard library only: no
    # protobuf, Lark, numpy or net view (a handler imports what it needs, in the child).
    heavy = ["google.protobuf", "lark", "numpy", "protoedit.net.view", "protoedit.document"]
    assert _loaded_after("protoedit.caffe", heavy) == []
    assert _loaded_after("protoedit.caffe.child", heavy) == []


def test_protoedit_validate_is_the_subpackage_whatever_was_imported_first() -> None:
    # The single-net function is ``validate_net``: nothing hides the subpackage, whether it
    # is reached by ``import``, as an attribute, or after its modules were imported.
    code = (
        "import protoedit\n"
        "print(type(protoedit.validate).__name__, callable(protoedit.validate.validate_files))\n"
        "import protoedit.validate as v\n"
        "print(type(v).__name__, callable(v.validate_files),"
        " v.validate_net is protoedit.validate_net)\n"
        "import protoedit.validate.runner\n"
        "from protoedit import validate\n"
        "print(type(validate).__name__,"
        " validate.validate_net is protoedit.validate.runner.validate_net)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["module", "True", "module", "True", "True", "module", "True"]


def test_every_public_name_resolves() -> None:
    for name in protoedit.__all__:
        assert getattr(protoedit, name) is not None, name
    assert protoedit.format_text("a {b: 1}\n") == "a {\n  b: 1\n}\n"
    assert [str(f) for f in protoedit.check_text("nme: 1\n", name="n.prototxt")] == [
        "n.prototxt:1:1: E101 unknown field 'nme' in caffe.NetParameter (did you mean 'name'?)"
    ]
