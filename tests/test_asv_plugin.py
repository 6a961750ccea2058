"""asv in the user's own repository (sslbench.execution.asv_suite): the benchmark class factory, ``sslbench
asv-init``, and, end to end, a temporary git repository holding a toy plugin package whose second commit makes one
loss 3x slower: ``asv compare A B --factor 1.3`` flags it and leaves the untouched loss alone.

Each commit is measured in this environment (``asv run --python=same --set-commit-hash``, the repository first on
``ASV_PYTHONPATH``), as tests/test_asv.py does for sslbench's own suite."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sslbench import cli
from sslbench.execution import asv_suite

ROOT = Path(__file__).resolve().parent.parent
ASV = shutil.which("asv", path=os.path.dirname(sys.executable)) or shutil.which("asv")

LOSSES = '''
import torch

REPEAT = {repeat}


def _decorrelation(z1, z2):
    c = (z1 - z1.mean(0)).T @ (z2 - z2.mean(0)) / z1.shape[0]
    return (c - torch.eye(c.shape[0])).pow(2).sum()


class SlowMe(torch.nn.Module):
    """The loss the second commit makes slower: the same work done REPEAT times."""

    def forward(self, z1, z2):
        return sum(_decorrelation(z1, z2) for _ in range(REPEAT)) / REPEAT


class Steady(torch.nn.Module):
    """The control, untouched between the commits."""

    def forward(self, z1, z2):
        return _decorrelation(z1, z2)
'''


@pytest.fixture
def toy_repo(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    (repo / "toyasv").mkdir(parents=True)
    (repo / "toyasv" / "__init__.py").write_text("")
    (repo / "toyasv" / "losses.py").write_text(LOSSES.format(repeat=1))
    monkeypatch.syspath_prepend(str(repo))
    yield repo
    for mod in [m for m in sys.modules if m.startswith("toyasv")]:
        sys.modules.pop(mod)


def test_make_benchmarks_measures_a_plugin_beside_a_builtin(toy_repo):
    classes = asv_suite.make_benchmarks(["toyasv.losses:Steady", "barlow_twins"], dims=[16], batches=[8], views=[2, 3])
    (name, cls), = classes.items()
    assert name == cls.__name__ == "Regularizers"
    assert cls.params == [["toyasv.losses:Steady", "barlow_twins"], [16], [8], [2, 3]]
    assert cls.param_names == ["regularizer", "dim", "batch", "views"]
    for spec in cls.params[0]:
        bench = cls()
        bench.setup(spec, 16, 8, 2)
        bench.time_forward_backward(spec, 16, 8, 2)
        bench.peakmem_forward_backward(spec, 16, 8, 2)
    with pytest.raises(NotImplementedError, match="toyasv.losses:Nope"):  # asv skips a case that cannot be built
        asv_suite.make_benchmarks(["toyasv.losses:Nope"])["Regularizers"]().setup("toyasv.losses:Nope", 16, 8, 2)
    with pytest.raises(ValueError, match="at least one"):
        asv_suite.make_benchmarks([])


def test_asv_init_writes_the_files_and_refuses_to_clobber(toy_repo, capsys):
    argv = ["asv-init", "--regularizer", "toyasv.losses:SlowMe", "--repo", str(toy_repo), "--dims", "64"]
    assert cli.main(argv) == 0
    conf = json.loads((toy_repo / "asv.conf.json").read_text())
    assert conf["benchmark_dir"] == "benchmarks" and conf["project"] == "repo"
    text = (toy_repo / "benchmarks" / "bench_sslbench.py").read_text()
    assert "['toyasv.losses:SlowMe', 'barlow_twins']" in text and "dims=[64]" in text
    namespace: dict = {}
    exec(compile(text, "bench_sslbench.py", "exec"), namespace)  # the written file defines the benchmark class
    assert namespace["Regularizers"].params[0] == ["toyasv.losses:SlowMe", "barlow_twins"]
    capsys.readouterr()
    assert cli.main(argv) == 2
    assert "exists; use --force" in capsys.readouterr().err
    (toy_repo / "asv.conf.json").unlink()
    (toy_repo / "asv.conf.json").symlink_to(toy_repo / "elsewhere.json")
    assert cli.main([*argv, "--force"]) == 2
    assert "a link: not followed" in capsys.readouterr().err and not (toy_repo / "elsewhere.json").exists()
    assert cli.main(["asv-init", "--regularizer", "toyasv.losses:Nope", "--repo", str(toy_repo)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "toyasv.losses:Nope" in err and "AttributeError" in err


def _run(cmd, cwd, env, timeout=300):
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _git(*args, cwd):
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t.invalid", *args], cwd=cwd, check=True,
                          capture_output=True, text=True).stdout.strip()


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.skipif(ASV is None, reason="asv is not installed (pip install 'sslbench[bench]')")
def test_asv_in_the_users_repository_flags_a_3x_slower_loss(toy_repo, tmp_path):
    repo = toy_repo
    home = tmp_path / "home"
    home.mkdir()
    path = os.pathsep.join([str(repo), str(ROOT)])  # the user's checkout first, then this sslbench
    env = {**os.environ, "HOME": str(home), "PYTHONPATH": path, "ASV_PYTHONPATH": path, "OMP_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1"}
    _run([sys.executable, "-m", "sslbench", "asv-init", "--regularizer", "toyasv.losses:SlowMe", "--regularizer",
          "toyasv.losses:Steady", "--baseline", "--dims", "256", "--batches", "256"], cwd=repo, env=env)
    (repo / ".gitignore").write_text(".asv/\n__pycache__/\n")
    _git("init", "-q", "-b", "main", cwd=repo)
    _git("add", "-A", cwd=repo)
    _git("commit", "-q", "-m", "A", cwd=repo)
    commit_a = _git("rev-parse", "HEAD", cwd=repo)
    (repo / "toyasv" / "losses.py").write_text(LOSSES.format(repeat=3))
    _git("commit", "-q", "-am", "B: SlowMe does its work 3 times", cwd=repo)
    commit_b = _git("rev-parse", "HEAD", cwd=repo)
    _run([ASV, "machine", "--yes", "--machine", "ci"], cwd=repo, env=env)

    def measure(commit, append):
        _git("checkout", "-q", commit, cwd=repo)
        args = [ASV, "run", "--python=same", "--machine", "ci", "--set-commit-hash", commit, "--show-stderr",
                "--bench", "time_forward_backward"]
        _run(args + (["--append-samples"] if append else []), cwd=repo, env=env)

    def verdict():
        out = _run([ASV, "compare", commit_a, commit_b, "--factor", "1.3", "--machine", "ci"], cwd=repo, env=env)
        rows = {}
        for line in out.splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")] if "|" in line else line.split()
            if len(cells) >= 4 and "time_forward_backward(" in cells[-1]:
                rows[cells[-1].split("'")[1]] = (cells[0] if len(cells) == 5 else "", cells[-2])
        assert {"toyasv.losses:SlowMe", "toyasv.losses:Steady"} <= set(rows), f"asv compare printed:\n{out}"
        return rows["toyasv.losses:SlowMe"], rows["toyasv.losses:Steady"], out

    # a shared machine: a burst of other work can land on one commit's samples; then both are measured again and
    # the samples pooled, as one does by hand (tests/test_asv.py does the same)
    for attempt in range(3):
        for commit in ((commit_a, commit_b) if attempt % 2 == 0 else (commit_b, commit_a)):  # against drift
            measure(commit, attempt > 0)
        (mark, ratio), (cmark, cratio), out = verdict()
        print(f"pass {attempt + 1}: SlowMe {mark or '.'} {ratio}, Steady {cmark or '.'} {cratio}")
        if mark == "+" and cmark == "":
            break
    assert mark == "+", f"the 3x slowdown was not flagged:\n{out}"
    assert float(ratio.lstrip("~")) > 1.3
    assert cmark == "", f"the untouched loss was flagged:\n{out}"
