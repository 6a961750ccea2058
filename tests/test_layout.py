"""The torch line: the torch-free half (records, analysis, the CLI's dispatcher) imports with torch made
unimportable, so even a lazy import at import time fails loudly; and the constants both halves need equal the torch
side's own definitions."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Every module under sslbench.records and sslbench.analysis (found by walking the packages, so a new module is
# covered without editing this test), plus the CLI, imported with torch blocked; prints what it imported.
_IMPORT_ALL = r"""
import importlib, json, pkgutil, sys
sys.modules["torch"] = None  # any `import torch`, even a lazy one inside a function run at import, raises
import sslbench.records, sslbench.analysis, sslbench.cli
names = ["sslbench.cli"]
for pkg in (sslbench.records, sslbench.analysis):
    names.append(pkg.__name__)
    names += [m.name for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + ".")]
for name in names:
    importlib.import_module(name)
loaded = sorted(m for m in sys.modules if sys.modules[m] is not None and (m.split(".")[0] == "torch" or m.startswith("sslbench.")))
print(json.dumps({"imported": names, "loaded": loaded}))
"""


def _run(code: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=300)


@pytest.mark.slow
def test_the_torch_free_half_imports_with_torch_blocked():
    proc = _run(_IMPORT_ALL)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    imported = set(out["imported"])
    # the walk found the modules of both packages (a broken walk would import nothing and pass)
    assert {"sslbench.records.schema", "sslbench.records.store", "sslbench.records.readers",
            "sslbench.records.paths", "sslbench.records.constants", "sslbench.analysis.load",
            "sslbench.analysis.scaling", "sslbench.analysis.views", "sslbench.analysis.analyze"} <= imported
    torch_side = [m for m in out["loaded"] if m.startswith(("torch", "sslbench.training", "sslbench.execution",
                                                            "sslbench.regularizers"))]
    assert torch_side == []


@pytest.mark.slow
def test_the_check_catches_a_module_that_imports_torch(tmp_path):
    """The blocking is real: a module that imports torch at import time fails under it."""
    (tmp_path / "needs_torch.py").write_text("import torch\n")
    code = "import sys; sys.path.insert(0, sys.argv[1]); sys.modules['torch'] = None; import needs_torch"
    proc = _run(code, str(tmp_path))
    assert proc.returncode != 0 and "ModuleNotFoundError" in proc.stderr and "torch" in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("argv", [["--help"], ["analyze", "--help"], ["dashboard", "--dry-run"]])
def test_the_cli_runs_these_without_torch(argv):
    code = ("import runpy, sys; sys.modules['torch'] = None; sys.argv = ['sslbench', *sys.argv[1:]]\n"
            "try:\n    runpy.run_module('sslbench', run_name='__main__')\n"
            "except SystemExit as e:\n    code = e.code\n"
            "loaded = [m for m in sys.modules if m.split('.')[0] == 'torch' and sys.modules[m] is not None]\n"
            "print('TORCH' if loaded else 'NO-TORCH', code)")
    proc = _run(code, *argv)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] in ("NO-TORCH 0", "NO-TORCH None"), proc.stdout + proc.stderr


@pytest.mark.slow
def test_help_imports_no_torch_module():
    """`python -m sslbench --help` as a user runs it: torch is installed, and still not imported."""
    code = ("import runpy, sys; sys.argv = ['sslbench', '--help']\n"
            "try:\n    runpy.run_module('sslbench', run_name='__main__')\n"
            "except SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))")
    proc = _run(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_shared_constants_equal_the_torch_sides_definitions():
    pytest.importorskip("torch")
    from sslbench.records import constants
    from sslbench.regularizers.variance import ADD_ON_DEFAULTS
    from sslbench.training.config import TrainConfig

    assert constants.DEFAULT_PREDICTOR_HIDDEN == TrainConfig().predictor_hidden
    assert constants.VARIANCE_ADDON_DEFAULTS == {k: ADD_ON_DEFAULTS[k] for k in constants.VARIANCE_ADDON_DEFAULTS}
    assert set(constants.VARIANCE_ADDON_DEFAULTS) == {k for k in ADD_ON_DEFAULTS if k.startswith("variance_")}
    from sslbench import regularizers
    from sslbench.training import config

    assert constants.DEFAULT_LR is config.DEFAULT_LR
    builtin = {k: v for k, v in config.DEFAULT_LR_FOR.items() if regularizers.is_builtin(k[1])}
    assert constants.BUILTIN_DEFAULT_LR_FOR == builtin
    for name in regularizers.available():
        for opt in config.OPTIMIZERS:
            resolved = config.TrainConfig(regularizer=name, optimizer=opt).resolved().lr
            assert constants.default_lr(opt, name) == resolved, (opt, name)


# --------------------------------------------------------------------------------------------------------------
# The direction of every import statement (top-level and inside functions), read from the source (AST), so a lazy
# import that no test happens to execute still counts as an arrow of the house; and no cycle between modules.
# --------------------------------------------------------------------------------------------------------------
_TORCH_SIDE = ("sslbench.execution", "sslbench.training", "sslbench.regularizers", "sslbench.probe", "torch")
# owner (a module or package prefix) -> the modules it must never import, and why
DIRECTION = {
    "sslbench.records": (("sslbench.analysis",) + _TORCH_SIDE, "records are torch-free and below analysis"),
    "sslbench.analysis": (_TORCH_SIDE, "analysis is torch-free and read-only"),
    "sslbench.dashboard": (_TORCH_SIDE, "the dashboard's launcher is torch-free"),
    "dashboard": (_TORCH_SIDE, "the dashboard is torch-free"),
    "sslbench.regularizers": (("sslbench.records", "sslbench.analysis", "sslbench.execution", "sslbench.training",
                               "sslbench.probe", "sslbench.cli", "sslbench.demo", "sslbench.dashboard"),
                              "regularizers import nothing above them"),
    "sslbench.probe": (("sslbench.records", "sslbench.analysis", "sslbench.execution", "sslbench.training",
                        "sslbench.regularizers", "sslbench.cli", "sslbench.demo", "sslbench.dashboard"),
                       "probe sits below training and execution"),
    "sslbench.training": (("sslbench.execution", "sslbench.analysis"),
                          "training never imports the runner or the analysis (shared probes live in sslbench.probe)"),
}


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _module_name(rel: Path) -> str:
    parts = list(rel.with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules(root: Path) -> dict[str, Path]:
    files = sorted((root / "sslbench").rglob("*.py")) + sorted((root / "dashboard").rglob("*.py"))
    return {_module_name(p.relative_to(root)): p for p in files}


def _import_statements(path: Path, mod: str):
    """(target, line) for every import statement in the file, wherever it stands; ``from a import b`` gives both
    ``a`` and ``a.b`` (b may be a module), relative imports resolved against the file's package."""
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    pkg = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield target, node.lineno
            for alias in node.names:
                yield f"{target}.{alias.name}", node.lineno


def direction_violations(root: Path, owners=tuple(DIRECTION)) -> list[str]:
    """``file:line: importer imports imported (the rule)`` for every import statement against the rules of
    ``owners`` (all of DIRECTION by default)."""
    out: dict[str, str] = {}  # one entry per statement (file:line)
    for mod, path in _modules(root).items():
        for target, line in _import_statements(path, mod):
            for owner in owners:
                banned, why = DIRECTION[owner]
                where = f"{path.relative_to(root)}:{line}"
                if _under(mod, owner) and any(_under(target, b) for b in banned) and where not in out:
                    out[where] = f"{where}: {mod} imports {target} ({why})"
    return list(out.values())


def import_cycles(root: Path) -> list[str]:
    """Each cycle between the package's modules (a strongly connected component of the module graph, lazy imports
    counted), as its edges ``file:line: a -> b``. A package's ``__init__`` re-exporting its own submodules, which
    import the package back, is not counted: that is how a package exposes its API, not a design cycle."""
    mods = _modules(root)
    edges: dict[str, dict[str, str]] = {m: {} for m in mods}
    for mod, path in mods.items():
        for target, line in _import_statements(path, mod):
            t = target
            while t and t not in mods:  # the longest module the import names
                t = t.rpartition(".")[0]
            if t and t != mod and not _under(mod, t):
                edges[mod].setdefault(t, f"{path.relative_to(root)}:{line}")
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    comps = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    for v in mods:
        if v not in index:
            visit(v)
    cycles = []
    for comp in comps:
        if all(any(_under(o, m) or _under(m, o) for o in comp if o != m) for m in comp):
            continue
        cycles.append(" ; ".join(f"{edges[a][b]}: {a} -> {b}" for a in comp for b in comp if b in edges[a]))
    return cycles


@pytest.mark.parametrize("owner", list(DIRECTION))
def test_every_import_points_down(owner):
    broken = direction_violations(ROOT, (owner,))
    assert not broken, "imports against the direction of the house:\n" + "\n".join(broken)


def test_no_import_cycle_between_modules():
    cycles = import_cycles(ROOT)
    assert not cycles, "import cycles (lazy imports counted):\n" + "\n".join(cycles)


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in {"sslbench/__init__.py": "", "dashboard/app.py": "", **files}.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    return tmp_path


def test_the_scan_sees_a_lazy_import_and_names_its_line(tmp_path):
    root = _tree(tmp_path, {
        "sslbench/training/__init__.py": "",
        "sslbench/training/loop.py": "import os\n\ndef f():\n    from sslbench.execution.measure import x\n",
        "sslbench/execution/__init__.py": "",
        "sslbench/execution/measure.py": "x = 1\n",
        "sslbench/analysis/__init__.py": "",
        "sslbench/analysis/report.py": "def run():\n    from ..execution import measure\n",
        "sslbench/regularizers/__init__.py": "def g():\n    import sslbench.records\n",
        "dashboard/app.py": "if False:\n    import torch\n",
    })
    broken = direction_violations(root)
    assert "sslbench/training/loop.py:4: sslbench.training.loop imports sslbench.execution.measure" in "\n".join(broken)
    assert any(b.startswith("sslbench/analysis/report.py:2: ") and "sslbench.execution" in b for b in broken)
    assert any(b.startswith("sslbench/regularizers/__init__.py:2: ") for b in broken)
    assert any(b.startswith("dashboard/app.py:2: dashboard.app imports torch") for b in broken)
    assert len(broken) == 4, broken


def test_the_scan_finds_a_cycle_through_a_lazy_import_but_not_a_package_reexport(tmp_path):
    root = _tree(tmp_path, {
        "sslbench/execution/__init__.py": "from . import sweep\n",  # a package re-exporting: not a cycle
        "sslbench/execution/sweep.py": "from sslbench.execution import bench\n",
        "sslbench/execution/bench.py": "def f():\n    from sslbench.execution.cluster import g\n",
        "sslbench/execution/cluster.py": "import sslbench.execution.sweep as s\n",
    })
    cycles = import_cycles(root)
    assert len(cycles) == 1, cycles
    assert "sslbench/execution/bench.py:2: sslbench.execution.bench -> sslbench.execution.cluster" in cycles[0]
    assert "sslbench.execution.sweep -> sslbench.execution.bench" in cycles[0]
    _tree(tmp_path, {"sslbench/execution/bench.py": "def f():\n    pass\n"})
    assert import_cycles(root) == []
