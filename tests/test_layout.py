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
