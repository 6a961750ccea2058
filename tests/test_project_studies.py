"""benchmarks/project_studies.py: the cases are the sweep's own, the projected time is the hand-computed one for a
small config and a synthetic throughput file, bad or missing throughput input is one line, and the repository's
one-GPU-hour grids keep the full grids' arms and fit in an hour at the stated assumption."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import project_studies as ps  # noqa: E402
from sslbench.execution import sweep  # noqa: E402
from sslbench.records import append_record, make_record  # noqa: E402
from sslbench.training.data import class_balanced_subset  # noqa: E402

SMALL = """
regularizers = ["barlow_twins"]
kind = "train"
datasets = ["cifar10"]
dims = [128]
views = [2, 4]
fractions = [0.1, 1.0]
seeds = [0]
epochs = [3]
batches = [256]
device = ["cpu"]

[train_options]
backbone = "resnet18_cifar"
projector = "2048-2048"
optimizer = "lars"
lr = 0.3
"""
#: the hand count of SMALL: a tenth of CIFAR-10 is 500 per class = 5 000 images, 19 batches of 256 = 4 864 a
#: epoch; all of it 195 batches = 49 920; 3 epochs each
IMAGES = {0.1: 3 * 19 * 256, 1.0: 3 * 195 * 256}


def _small(tmp_path: Path, name: str = "toy-gpu.toml") -> Path:
    p = tmp_path / name
    p.write_text(SMALL)
    return p


def _throughput(path: Path, rows: list[tuple], device: str = "Fake GPU") -> Path:
    """rows: (loop, backbone, batch, views, images_per_s)."""
    for loop, backbone, batch, views, ips in rows:
        case = {"loop": loop, "backbone": backbone, "batch": batch, "views": views, "image_shape": [3, 32, 32],
                "regularizer": "barlow_twins", "device": "cuda"}
        append_record(path, make_record(ps.THROUGHPUT_KIND, case, {"images_per_s": ips}, env={"device_name": device}))
    return path


def _sweep_cases(path: Path) -> list[dict]:
    cfg = sweep.load_config(path)
    cfg["device"] = ["cpu"]  # the GPU grids are expanded here without a GPU, as tests/test_report.py does
    return sweep.build_cases(sweep.resolve_settings(argparse.Namespace(**{o.key: None for o in sweep.OPTIONS}), cfg))


# ---------------------------------------------------------------------------------------------------- the cases
def test_the_cases_are_the_sweeps_own(tmp_path):
    small = _small(tmp_path)
    assert len(ps.config_cases(small)) == len(_sweep_cases(small)) == 2 * 2  # V × fraction
    views = ps.CONFIG_DIR / "views-gpu.toml"
    assert len(ps.config_cases(views)) == len(_sweep_cases(views)) == 3 * 3  # V in {2, 4, 8} × 3 fractions
    for name in ("sfrik-gpu.toml", "isoloss-gpu-1h-ema.toml", "variance-gpu-1h-std0.toml"):
        assert len(ps.config_cases(ps.CONFIG_DIR / name)) == len(_sweep_cases(ps.CONFIG_DIR / name)), name


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the expansion of a CUDA grid without a GPU")
def test_a_cuda_grid_keeps_its_device_in_the_case_ids():
    (case,) = ps.config_cases(ps.CONFIG_DIR / "views-gpu-d2048.toml")
    from sslbench.records import case_id

    want = {**_sweep_cases(ps.CONFIG_DIR / "views-gpu-d2048.toml")[0], "device": "cuda"}
    assert case.case_id == case_id("train", want)


@pytest.mark.parametrize("fraction", [0.1, 0.25, 1 / 3, 0.5, 0.0007, 1.0])
def test_pretraining_images_follow_the_loaders_subset(fraction):
    labels = torch.arange(10).repeat_interleave(5000)  # CIFAR-10's train split: 10 classes of 5 000
    assert ps.pretrain_images("cifar10", "train", fraction) == len(class_balanced_subset(labels, fraction))
    unlabeled = torch.full((100_000,), -1)
    assert ps.pretrain_images("stl10", "unlabeled", fraction) == len(class_balanced_subset(unlabeled, fraction))


def test_identical_cases_of_one_study_count_once(tmp_path):
    _small(tmp_path, "toy-gpu-a.toml")
    _small(tmp_path, "toy-gpu-b.toml")  # the same grid again: the study's store runs it once
    rows, per_config = ps.study_rows(sorted(tmp_path.glob("*.toml")), ps.AssumedThroughput(1000.0), 0.0)
    assert [len(r.cases) for r in rows] == [4] and [len(r.cases) for r in per_config] == [4, 4]


# ---------------------------------------------------------------------------------------------------- the time
def test_projected_time_is_the_hand_computation(tmp_path):
    small = _small(tmp_path)
    # the sslbench loop at B=256: 1 000 images/s at V=2 (a peer row and another batch size must not be used)
    tp = _throughput(tmp_path / "t.jsonl", [("sslbench", "resnet18_cifar", 256, 2, 1000.0),
                                            ("peer", "resnet18_cifar", 256, 2, 5.0),
                                            ("sslbench", "resnet18_cifar", 512, 2, 9999.0)])
    (row,), _ = ps.study_rows([small], ps.MeasuredThroughput(tp), 10.0)
    # V=2: images / 1000; V=4 costs twice a 2-view step: 2 · images / 1000; plus 10 s per case
    want = sum(IMAGES[f] * (v / 2) / 1000.0 + 10.0 for v in (2, 4) for f in (0.1, 1.0))
    assert want == pytest.approx(3 * (IMAGES[0.1] + IMAGES[1.0]) / 1000 + 40)  # 533.056 s
    assert row.total_s == pytest.approx(want)
    assert sorted(c.images for c in row.cases) == sorted([IMAGES[0.1], IMAGES[1.0]] * 2)
    # a row measured at V=4 is used as it is, instead of the model
    _throughput(tp, [("sslbench", "resnet18_cifar", 256, 4, 400.0)])
    (row,), _ = ps.study_rows([small], ps.MeasuredThroughput(tp), 10.0)
    want4 = sum(IMAGES[f] / 1000.0 + 10.0 for f in (0.1, 1.0)) + sum(IMAGES[f] / 400.0 + 10.0 for f in (0.1, 1.0))
    assert row.total_s == pytest.approx(want4)


def test_the_nearest_batch_is_used_and_said(tmp_path):
    tp = _throughput(tmp_path / "t.jsonl", [("sslbench", "resnet18_cifar", 512, 2, 2000.0),
                                            ("sslbench", "resnet18_cifar", 64, 2, 10.0)])
    (row,), _ = ps.study_rows([_small(tmp_path)], ps.MeasuredThroughput(tp), 0.0)
    assert row.total_s == pytest.approx(3 * (IMAGES[0.1] + IMAGES[1.0]) / 2000)
    assert any("B=512 (nearest to 256)" in n for n in row.notes), row.notes


def test_the_assumption_is_printed_as_one(tmp_path, capsys):
    md = tmp_path / "out.md"
    assert ps.main(["--assume-images-per-s", "1000", "--overhead-s", "10", "--configs", str(_small(tmp_path)),
                    "--md", str(md)]) == 0
    out = capsys.readouterr().out
    assert "ASSUMPTION" in out and "1 000 source images/s" in out and "10 s" in out
    assert "| toy (gpu) |" in out and ps.duration(533.056) in out and "8.9 min" in out
    assert md.read_text() == out and "--md" not in out


# ---------------------------------------------------------------------------------------------------- bad input
def test_missing_throughput_is_one_line_and_exit_2(tmp_path, capsys):
    assert ps.main(["--configs", str(_small(tmp_path))]) == 2
    cap = capsys.readouterr()
    assert cap.out == "" and len(cap.err.strip().splitlines()) == 1
    assert "--throughput FILE" in cap.err and "--assume-images-per-s" in cap.err


@pytest.mark.parametrize("argv, says", [
    (["--throughput", "missing.jsonl"], "no such file"),
    (["--assume-images-per-s", "0"], "must be a number > 0"),
    (["--assume-images-per-s", "1", "--throughput", "t.jsonl"], "not both"),
    (["--assume-images-per-s", "lots"], "invalid float value"),
])
def test_bad_input_is_one_line(tmp_path, capsys, argv, says, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _exit_status(argv + ["--configs", str(_small(tmp_path))]) == 2
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def _exit_status(argv: list[str]) -> int:
    """main's status, or the one argparse exits with (an option's value it cannot read)."""
    try:
        return ps.main(argv)
    except SystemExit as exc:
        return exc.code


def test_a_file_without_throughput_records_is_refused(tmp_path, capsys):
    other = tmp_path / "o.jsonl"
    append_record(other, make_record("train", {"regularizer": "barlow_twins"}, {"linear_top1": 0.5}, env={}))
    assert ps.main(["--throughput", str(other), "--configs", str(_small(tmp_path))]) == 2
    err = capsys.readouterr().err
    assert "no ok kind=\"train_throughput\" record" in err and len(err.strip().splitlines()) == 1


def test_a_throughput_file_without_a_matching_row_says_so(tmp_path, capsys):
    tp = _throughput(tmp_path / "t.jsonl", [("sslbench", "convnet", 64, 2, 50_000.0)])
    assert ps.main(["--throughput", str(tp), "--configs", str(_small(tmp_path))]) == 1
    cap = capsys.readouterr()
    assert "no sslbench row for resnet18_cifar at 3×32×32" in cap.out and "convnet 3×32×32 B=64 V=2" in cap.out
    assert "| n/a |" in cap.out and "not projected" in cap.err and "Traceback" not in cap.err


# ---------------------------------------------------------------------------------------------------- the repository
def _arms(paths: list[Path]) -> set[str]:
    """What a study compares: every case without its seed, epochs and device."""
    import json

    return {json.dumps({k: v for k, v in c.items() if k not in ("seed", "epochs", "device")}, sort_keys=True)
            for p in paths for c in _sweep_cases(p)}


def test_the_one_hour_grids_keep_the_arms_and_fit_in_an_hour_at_the_assumption():
    rows, _ = ps.study_rows(ps.default_configs(), ps.AssumedThroughput(17_000.0), ps.DEFAULT_OVERHEAD_S)
    one_hour = [r for r in rows if r.name.endswith("(gpu-1h)")]
    full = {r.name.split(" ")[0]: r for r in rows if r.name.endswith("(gpu)")}
    assert sorted(r.name.split(" ")[0] for r in one_hour) == sorted(full) == ["fft", "isoloss", "sfrik", "variance",
                                                                              "views"]
    for r in one_hour:
        study = r.name.split(" ")[0]
        assert r.total_s <= ps.HOUR_S, (r.name, r.total_s)
        assert _arms([ps.CONFIG_DIR / f"{c}.toml" for c in r.configs]) == \
            _arms([ps.CONFIG_DIR / f"{c}.toml" for c in full[study].configs]), study


def test_the_readme_table_is_the_scripts(capsys):
    assert ps.main(["--assume-images-per-s", "17000"]) == 0
    out = capsys.readouterr().out
    readme = (ROOT / "results" / "studies" / "README.md").read_text()
    rows = [line for line in out.splitlines() if line.startswith("| ") and "(gpu" in line]
    assert len(rows) == 10
    for line in rows:
        assert line in readme, line


def test_the_recipe_table_of_the_gpu_doc_is_the_scripts(capsys):
    assert ps.main(["--assume-images-per-s", "17000", "--recipes"]) == 0
    out = capsys.readouterr().out
    doc = (ROOT / "docs" / "gpu-benchmarks.md").read_text()
    rows = out[out.index("| recipe |"):].strip().splitlines()
    assert len(rows) == 2 + len(ps.RECIPES)
    for line in rows:
        assert line in doc, line
