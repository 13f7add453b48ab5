"""Import direction between the stage packages (docs/design.md, "Data flow").

Every module of the distribution is parsed (``ast``, nothing is imported) and each import of another
stage package is checked against the allowed directions:

- ``stream`` imports no other stage;
- ``replay`` → ``stream``;
- ``decoder`` → ``stream``;
- ``offline_training`` → ``decoder``, ``replay``, ``stream``;
- ``gui`` → ``decoder``, ``stream``;
- ``benchmarks`` → anything.

Imports are written ``eegmusic.<stage>...`` (absolute) or relative inside a stage; a bare
``import decoder`` / ``from stream.x import y`` would import a different top-level package (or
none) once installed, so it fails too. The one exception to direction is the command dispatcher
``stream/cli.py``, which names command modules as strings and imports them lazily — strings are not
imports, so it needs no exception here. Imports inside functions count: a lazy import is still an
import. Cycles between stages cannot exist if every edge points down, and inside a stage the import
graph, lazy imports included, must be acyclic (a cycle couples files that should not know each
other, e.g. a model and its training loop).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("stream", "decoder", "gui", "offline_training", "replay", "benchmarks")
ALLOWED: dict[str, set[str]] = {
    "stream": set(),
    "replay": {"stream"},
    "decoder": {"stream"},
    "offline_training": {"decoder", "replay", "stream"},
    "gui": {"decoder", "stream"},
    "benchmarks": set(STAGES),
}


def _modules() -> list[Path]:
    files = [ROOT / "__init__.py", ROOT / "__main__.py"]
    for stage in STAGES:
        files.extend(sorted(p for p in (ROOT / stage).rglob("*.py") if "__pycache__" not in p.parts))
    return files


def _module_name(path: Path) -> str:
    """``decoder/pipeline.py`` -> ``eegmusic.decoder.pipeline``; packages drop ``__init__``."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(["eegmusic", *parts])


def _imports(path: Path) -> list[tuple[int, str, bool]]:
    """Every imported module of ``path`` as (line, absolute dotted name, runs at all).

    Imports inside functions count (a lazy import is still an import); only those under
    ``if TYPE_CHECKING:`` never run and are marked ``False``.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    typing_only = {id(child) for node in ast.walk(tree) if _is_type_checking(node)
                   for child in ast.walk(node)}
    found = []
    for node in ast.walk(tree):
        runs = id(node) not in typing_only
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name, runs) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.append((node.lineno, module, runs))
            # `from eegmusic.decoder import pipeline` imports the submodule too
            found.extend((node.lineno, f"{module}.{alias.name}", runs)
                         for alias in node.names if alias.name != "*")
    return found


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _stage_of(module: str) -> str | None:
    parts = module.split(".")
    if len(parts) >= 2 and parts[0] == "eegmusic" and parts[1] in STAGES:
        return parts[1]
    return None


def _known_modules() -> set[str]:
    return {_module_name(p) for p in _modules()}


def test_the_test_sees_every_stage():
    """Guard against a silent pass: the parser finds modules and cross-stage imports in every stage."""
    modules = _modules()
    assert len(modules) > 60
    edges = {(_stage_of(_module_name(p)), _stage_of(m)) for p in modules for _, m, _ in _imports(p)}
    assert ("decoder", "stream") in edges and ("gui", "decoder") in edges


def test_no_bare_stage_imports():
    """Only ``eegmusic.<stage>`` or relative imports: ``import decoder`` is another package once installed."""
    bad = []
    for path in _modules():
        for line, module, _ in _imports(path):
            if module.split(".")[0] in STAGES:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports `{module}`; write `eegmusic.{module}`")
    assert not bad, "\n".join(bad)


def test_imports_point_down_the_data_flow():
    """No upward import between stages (docs/design.md, "Data flow")."""
    bad = []
    for path in _modules():
        stage = _stage_of(_module_name(path))
        for line, module, _ in _imports(path):
            target = _stage_of(module)
            if stage is None or target is None or target == stage:
                continue
            entry = f"{path.relative_to(ROOT)}:{line}: {stage} -> {target}"
            if target not in ALLOWED[stage] and not any(b.startswith(entry + " ") for b in bad):
                bad.append(f"{entry} (`{module}`)")
    assert not bad, "upward imports (allowed: " + "; ".join(
        f"{k} -> {', '.join(sorted(v)) or 'nothing'}" for k, v in ALLOWED.items()) + "):\n" + "\n".join(bad)


def test_no_import_cycles_between_modules():
    """The import graph between modules has no cycle, lazy imports included.

    A function-level import breaks the import-time loop but not the coupling: a model that imports
    its own training loop, which imports the model registry, is one tangle however late it imports.
    """
    known = _known_modules()
    graph: dict[str, set[str]] = {}
    for path in _modules():
        name = _module_name(path)
        targets = set()
        for _, module, runs in _imports(path):
            if not runs:
                continue
            while module and module not in known:  # `from pkg import name` where name is not a module
                module = module.rpartition(".")[0]
            if module and module != name and module != "eegmusic":
                targets.add(module)
        graph[name] = targets
    cycles = _cycles(graph)
    assert not cycles, "modules that import each other in a loop (one line per loop):\n" + "\n".join(
        ", ".join(c) for c in cycles)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


LIVE_STAGES = ("stream", "decoder", "replay")
TRAINING_AND_QT = ("torch", "onnx", "onnxscript", "matplotlib", "PySide6", "shiboken6", "pyqtgraph")


def test_the_live_path_never_imports_torch_or_qt():
    """``stream``, ``decoder`` and ``replay`` run on the core install (docs/design.md: the live path
    never imports torch). MNE and h5py are allowed, lazily, for other montages and MATLAB v7.3 files."""
    bad = []
    for path in _modules():
        if _stage_of(_module_name(path)) in LIVE_STAGES:
            bad += [f"{path.relative_to(ROOT)}:{line} imports `{module}`"
                    for line, module, runs in _imports(path)
                    if runs and module.split(".")[0] in TRAINING_AND_QT]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("source, expected", [
    ("from eegmusic.replay.nmedt import x\n", "decoder -> replay"),
    ("def f():\n    import eegmusic.gui.app\n", "decoder -> gui"),
])
def test_an_upward_import_is_caught(tmp_path, monkeypatch, source, expected):
    """The direction check fails on a planted upward import, lazy ones included."""
    fake_root = tmp_path / "repo"
    for stage in STAGES:
        (fake_root / stage).mkdir(parents=True)
    (fake_root / "__init__.py").write_text("")
    (fake_root / "__main__.py").write_text("")
    (fake_root / "decoder" / "bad.py").write_text(source)
    monkeypatch.setitem(globals(), "ROOT", fake_root)
    with pytest.raises(AssertionError, match=expected):
        test_imports_point_down_the_data_flow()


def test_a_cycle_is_caught():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_a_decode_imports_scipy_signal_only_once_it_starts():
    """``scipy.signal`` takes 0.7-1 s to import. A decode imported it before anything else (its filters'
    module imported it at the top); now the vocoder's thread imports it while the stream opens
    (``decoder.pipeline._ready_vocoder``), and a decode's process reached its first window 0.45 s sooner
    (median of 10 starts here, 1.74 s against 2.19 s). What ``decode`` imports before it starts must not
    load it."""
    import subprocess
    import sys

    code = ("import sys\n"
            "import eegmusic.decoder.cli_decode, eegmusic.decoder.pipeline, eegmusic.decoder.vocoder\n"
            "import eegmusic.decoder.runtime, eegmusic.stream.source\n"
            "print(sorted(m for m in sys.modules if m.startswith('scipy.signal')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
