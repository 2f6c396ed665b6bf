"""Imports run one way: each module of src/naba has a layer and imports only from it or below.

The walk reads every ``import`` with :mod:`ast`, at module level and inside
functions alike (the lazy imports that keep ``naba --help`` fast are imports
too, and so are those under ``if TYPE_CHECKING``). It fails on an import of a
higher layer and on any cycle between modules, naming the file, the line and
the import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import ROOT

SRC = ROOT / "src"

# Bottom to top. A module belongs to the layer of the longest entry that names it or a
# package above it; "naba" alone is the package root (__version__ and the lazy public
# API, which it looks up by name).
LAYERS: list[tuple[str, ...]] = [
    (
        "naba",
        "naba.errors",
        "naba.config_loading",
        "naba.config",
        "naba.pretrain_config",
        "naba.text",
        "naba.atomic",
        "naba.progress",
    ),
    ("naba.data",),
    (
        "naba.encoding",
        "naba.decision",
        "naba.sparse",
        "naba.relevance",
        "naba.blend",
        "naba.rule",
        "naba.manifest",
        "naba.hub",
    ),
    ("naba.infer",),
    # The adapters for Ray Data and Spark wrap infer's Predictor and nothing else; no naba module
    # imports them (users do), so they sit just above infer, where they cannot reach training.
    ("naba.integrations",),
    ("naba.evaluation",),
    ("naba.encoder",),
    ("naba.train",),
    ("naba.serve",),
    ("naba.cli", "naba.__main__"),
]


def layer_of(module: str) -> int | None:
    """The index in :data:`LAYERS` of ``module``'s layer, or None when no entry names it."""
    best, depth = None, -1
    for index, names in enumerate(LAYERS):
        for name in names:
            covers = module == name or (name != "naba" and module.startswith(name + "."))
            if covers and name.count(".") > depth:
                best, depth = index, name.count(".")
    return best


def layer_name(index: int) -> str:
    return " / ".join(LAYERS[index])


def modules(src: Path) -> dict[str, Path]:
    """Every module under ``src/naba``, by dotted name (a package by its own name)."""
    out = {}
    for path in sorted((src / "naba").rglob("*.py")):
        parts = path.relative_to(src).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def lazy_exports(path: Path) -> set[str]:
    """Names a package ``__init__`` re-exports lazily (its PEP 562 ``_EXPORTS`` table)."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "_EXPORTS" for t in node.targets
        ):
            if isinstance(node.value, ast.Dict):
                return {k.value for k in node.value.keys if isinstance(k, ast.Constant)}
    return set()


def imports(name: str, path: Path, known: dict[str, Path]) -> list[tuple[int, str, str]]:
    """``(line, imported module, the statement as written)`` for every naba import in one module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [
                (node.lineno, alias.name, f"import {alias.name}")
                for alias in node.names
                if alias.name == "naba" or alias.name.startswith("naba.")
            ]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            if base != "naba" and not base.startswith("naba."):
                continue
            for alias in node.names:
                # "from naba.x import y" imports the module naba.x.y when there
                # is one, else a name of naba.x.
                target = f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                out.append(
                    (
                        node.lineno,
                        target,
                        f"from {'.' * node.level}{node.module or ''} import {alias.name}",
                    )
                )
    return out


def problems(src: Path) -> list[str]:
    """Everything wrong with the import graph under ``src``: unlayered
    modules, upward imports, cycles."""
    known = modules(src)
    found = [
        f"{path.relative_to(src.parent)}: {name} is in no layer; add it to LAYERS in "
        "tests/test_layers.py"
        for name, path in known.items()
        if layer_of(name) is None
    ]
    graph: dict[str, dict[str, str]] = {name: {} for name in known}
    exports = {
        name: lazy_exports(path) for name, path in known.items() if path.name == "__init__.py"
    }
    for name, path in known.items():
        here = layer_of(name)
        for line, target, statement in imports(name, path, known):
            where = f"{path.relative_to(src.parent)}:{line}: {name}: `{statement}`"
            if target not in known:
                found.append(f"{where} names no module under {src}")
                continue
            imported = statement.rsplit(" ", 1)[-1]
            if statement.startswith("from") and imported in exports.get(target, ()):
                found.append(
                    f"{where} goes through {target}'s lazy public API; import it from its own "
                    "module"
                )
            there = layer_of(target)
            if here is not None and there is not None and there > here:
                found.append(
                    f"{where} imports upward: {target} is in layer '{layer_name(there)}', "
                    f"above '{layer_name(here)}'"
                )
            if target != name:
                graph[name].setdefault(target, where)
    found += [
        f"import cycle: {' -> '.join(cycle)}\n  "
        + "\n  ".join(graph[a][b] for a, b in zip(cycle, cycle[1:]))
        for cycle in cycles(graph)
    ]
    return found


def cycles(graph: dict[str, dict[str, str]]) -> list[list[str]]:
    """One cycle (first module repeated at the end) through each strongly
    connected group of two or more modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    out = []
    for group in groups:
        members, path = set(group), [group[0]]
        while True:  # walk inside the group until a module repeats: that loop is a cycle
            nxt = next(n for n in sorted(graph[path[-1]]) if n in members)
            if nxt in path:
                out.append(path[path.index(nxt) :] + [nxt])
                break
            path.append(nxt)
    return out


def test_imports_run_one_way() -> None:
    found = problems(SRC)
    assert not found, "\n".join(found)


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / "src" / "naba" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    for package in ("naba", "naba/infer", "naba/evaluation", "naba/data"):
        (tmp_path / "src" / package).mkdir(parents=True, exist_ok=True)
        (tmp_path / "src" / package / "__init__.py").touch()
    return tmp_path / "src"


def test_an_upward_import_is_named(tmp_path: Path) -> None:
    # main before issue #18: inference took its decision rule from evaluation
    src = _tree(
        tmp_path,
        {
            "infer/classifier.py": "def f():\n    from naba.evaluation.metrics import decide\n",
            "evaluation/metrics.py": "def decide(): ...\n",
        },
    )
    assert problems(src) == [
        "src/naba/infer/classifier.py:2: naba.infer.classifier: `from naba.evaluation.metrics "
        "import decide` imports upward: "
        "naba.evaluation.metrics is in layer 'naba.evaluation', above 'naba.infer'"
    ]


def test_a_cycle_is_named(tmp_path: Path) -> None:
    # main before issue #18: train/encoders.py and train/pretrain.py imported each
    # other (here, two data modules)
    src = _tree(
        tmp_path,
        {"data/a.py": "from naba.data.b import g\n", "data/b.py": "from naba.data import a\n"},
    )
    assert problems(src) == [
        "import cycle: naba.data.a -> naba.data.b -> naba.data.a\n"
        "  src/naba/data/a.py:1: naba.data.a: `from naba.data.b import g`\n"
        "  src/naba/data/b.py:1: naba.data.b: `from naba.data import a`"
    ]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            "from naba import Classifier\n",
            "goes through naba's lazy public API; import it from its own module",
        ),
        ("from naba.nowhere import x\n", "names no module under"),
    ],
)
def test_imports_inside_naba_name_real_modules(tmp_path: Path, source: str, message: str) -> None:
    src = _tree(tmp_path, {"data/a.py": source})
    (src / "naba" / "__init__.py").write_text(
        '_EXPORTS = {"Classifier": "naba.infer.classifier"}\n', encoding="utf-8"
    )
    (found,) = problems(src)
    assert found.startswith("src/naba/data/a.py:1: naba.data.a: `") and message in found


def test_a_module_outside_every_layer_is_named(tmp_path: Path) -> None:
    src = _tree(tmp_path, {"extras.py": ""})
    assert problems(src) == [
        "src/naba/extras.py: naba.extras is in no layer; add it to LAYERS in tests/test_layers.py"
    ]
