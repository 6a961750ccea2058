"""benchmarks/train_throughput.py, benchmarks/peer_loop.py and benchmarks/gpu_e2e.py: the phase arithmetic, the
FLOP count against a hand count, the peer augmentation, the time plan with an injected clock, the tables, the
input checks, and (slow) both scripts' CPU smoke modes end to end."""

from __future__ import annotations

import dataclasses
import gzip
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import gpu_e2e, train_throughput as tt  # noqa: E402
from benchmarks.peer_loop import PeerViews, PilViews, collate_views  # noqa: E402
from sslbench.records import make_record, read_records  # noqa: E402
from sslbench.training.augment import preset_config  # noqa: E402


# ---------------------------------------------------------------------------------------------------- phases
def test_phase_times_tile_the_step_and_leave_out_the_warmup():
    clock = tt.PhaseClock(torch.device("cpu"))
    # step k (0-based) ends at 10k s; its data ends 1 s, augment 3 s, fwd_bwd 7 s after the previous end
    marks = [{"aug_start": 10 * k - 9, "aug_end": 10 * k - 7, "opt_start": 10 * k - 3, "end": 10 * k}
             for k in range(5)]
    marks[1] = {"aug_start": 11, "aug_end": 12, "opt_start": 13, "end": 100}  # a slow warm-up step, left out
    for k in range(2, 5):
        marks[k] = {key: v + 90 for key, v in marks[k].items()}
    out = tt.phase_times(marks, 2, tt.SSLBENCH_PHASES, clock)
    assert out["step_ms"] == pytest.approx(10e3)
    assert out["data_ms"] == pytest.approx(1e3) and out["augment_ms"] == pytest.approx(2e3)
    assert out["fwd_bwd_ms"] == pytest.approx(4e3) and out["optimizer_ms"] == pytest.approx(3e3)
    assert sum(out[f"{p}_ms"] for p, _ in tt.SSLBENCH_PHASES) == pytest.approx(out["step_ms"])
    with pytest.raises(ValueError, match="warmup"):
        tt.phase_times(marks[:2], 2, tt.SSLBENCH_PHASES, clock)


def test_a_missing_boundary_merges_its_phase_into_the_next():
    clock = tt.PhaseClock(torch.device("cpu"))
    marks = [{"aug_start": 10 * k - 9, "aug_end": 10 * k - 7, "end": 10 * k} for k in range(4)]  # no opt_start
    out = tt.phase_times(marks, 1, tt.SSLBENCH_PHASES, clock)
    assert out["fwd_bwd_ms"] is None and out["optimizer_ms"] == pytest.approx(7e3)  # fwd_bwd + optimizer
    assert out["data_ms"] + out["augment_ms"] + out["optimizer_ms"] == pytest.approx(out["step_ms"])


def test_derived_metrics_from_the_step_time():
    case = tt.Case(backbone="convnet", batch=64, views=4)
    m = tt.derived_metrics({"step_ms": 50.0}, case, flops=2e12, peak_tflops=100.0)
    assert m["images_per_s"] == pytest.approx(64 / 0.05) and m["view_images_per_s"] == pytest.approx(256 / 0.05)
    assert m["tflops"] == pytest.approx(40.0) and m["fraction_of_peak"] == pytest.approx(0.4)
    assert tt.derived_metrics({"step_ms": 50.0}, case, None, 100.0)["fraction_of_peak"] is None


def test_flop_count_matches_a_hand_count_of_the_convnet():
    """Small convnet (3→32 s2, 32→64 s2, 64→128 s1, 3×3) + projector 128→512→128 on 3×32×32, forward and
    backward; byol's loss adds no matrix products. The first convolution needs no input gradient."""
    macs = {"conv1": 16 * 16 * 32 * 3 * 9, "conv2": 8 * 8 * 64 * 32 * 9, "conv3": 8 * 8 * 128 * 64 * 9,
            "fc1": 128 * 512, "fc2": 512 * 128}
    per_view_image = 2 * macs["conv1"] * 2 + sum(2 * m * 3 for k, m in macs.items() if k != "conv1")
    case = tt.Case(backbone="convnet", batch=4, views=2, regularizer="byol")
    assert tt.count_flops(case.train_config(torch.device("cpu")).resolved()) == 8 * per_view_image


def test_table_ratio_and_failed_rows():
    def rec(loop, ips, status="ok"):
        case = {"loop": loop, "backbone": "convnet", "batch": 64, "views": 2}
        metrics = {"images_per_s": ips, "view_images_per_s": 2 * ips, "step_ms": 64e3 / ips, "data_ms": 1.0,
                   "augment_ms": 2.0 if loop == "sslbench" else None, "fwd_bwd_ms": 3.0, "optimizer_ms": 4.0,
                   "tflops": 1.0, "fraction_of_peak": 0.5} if status == "ok" else {}
        return make_record(tt.KIND, case, metrics, status, env={}, message=None if status == "ok" else "boom")

    text = tt.table([rec("sslbench", 3000.0), rec("peer", 1000.0)])
    rows = text.splitlines()[2:]
    assert "3.00×" in rows[0] and "in workers" in rows[1] and "50.0" in rows[0]
    assert all(r.count("|") == text.splitlines()[0].count("|") for r in rows)
    failed = tt.table([rec("sslbench", 3000.0), rec("peer", 0, status="oom")])
    assert "oom: boom" in failed and "×" not in failed.splitlines()[2]


# ---------------------------------------------------------------------------------------------------- peer views
def _pil_views(**overrides):
    cfg = dataclasses.replace(preset_config("cifar", (3, 32, 32)), **overrides)
    return PilViews(cfg, (32, 32)), cfg


def test_pil_views_shape_and_normalisation():
    from PIL import Image

    views, cfg = _pil_views(jitter_p=0.0, grayscale_p=0.0, solarize_p=0.0, flip_p=0.0, crop_scale=(1.0, 1.0),
                            crop_ratio=(1.0, 1.0))
    img = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    x = views(Image.fromarray(img))
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    expected = (img.transpose(2, 0, 1) / 255.0 - np.array(cfg.mean)[:, None, None]) / np.array(cfg.std)[:, None, None]
    np.testing.assert_allclose(x.numpy(), expected, atol=1e-5)  # a full crop at the same size is the image


def test_pil_views_grayscale_solarize_flip_and_crop_bounds():
    from PIL import Image

    views, cfg = _pil_views(jitter_p=0.0, grayscale_p=1.0, solarize_p=1.0, flip_p=1.0, crop_scale=(1.0, 1.0),
                            crop_ratio=(1.0, 1.0))
    img = np.zeros((32, 32, 3), np.uint8)
    img[:, :16] = 200  # bright left half
    x = views(Image.fromarray(img)).numpy() * np.array(cfg.std)[:, None, None] + np.array(cfg.mean)[:, None, None]
    assert np.allclose(x[0], x[1], atol=1e-5) and np.allclose(x[1], x[2], atol=1e-5)  # grayscale
    assert x[0, 0, 31] == pytest.approx(55 / 255, abs=1e-5)  # 200 solarized at 128 → 55, now on the right
    assert x[0, 0, 0] == pytest.approx(0.0, abs=1e-5)
    crop = PilViews(preset_config("cifar", (3, 32, 32)), (32, 32))
    for _ in range(200):
        left, top, right, bottom = crop._crop_box(40, 24)
        assert 0 <= left < right <= 40 and 0 <= top < bottom <= 24


def test_peer_dataset_and_collate_give_v_b_c_h_w():
    images = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)
    ds = PeerViews(images, 3, PilViews(preset_config("cifar", (3, 32, 32)), (32, 32)))
    views, seconds = collate_views([ds[i] for i in range(4)])
    assert views.shape == (3, 4, 3, 32, 32) and seconds >= 0


# ---------------------------------------------------------------------------------------------------- the plan
class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_plan_shares_the_time_left_and_stops_when_none_is_left():
    clock = FakeClock()
    profile = dataclasses.replace(gpu_e2e.GPU, overhead_guess_s=35.0, min_budget_s=5.0, max_budget_s=120.0)
    plan = gpu_e2e.Plan(profile, 480.0, 6, None, clock=clock)
    clock.now = 115.0  # checks and throughput done
    assert plan.budget(6) == pytest.approx((480 - gpu_e2e.TABLE_S - 115) / 6 - 35)
    plan.overheads += [40.0, 50.0]
    clock.now = 420.0
    assert plan.budget(2) == 5.0  # the fair share (27.5 - 45) is below the minimum but one short run still fits
    clock.now = 440.0
    assert plan.budget(1) == 0.0  # 35 s left, 45 s of overhead: none fits
    assert gpu_e2e.Plan(profile, 480.0, 6, 30.0, clock=clock).budget(6) == 30.0
    clock.now = 0.0
    assert gpu_e2e.Plan(profile, 4000.0, 6, None, clock=clock).budget(6) == 120.0  # capped


# ---------------------------------------------------------------------------------------------------- e2e table
def test_e2e_table_gains_against_the_floor():
    records = {
        "a": {"metrics": {"linear_top1": 90.0, "knn_top1": 88.0, "init_linear_top1": 85.0, "init_knn_top1": 80.0,
                          "train_time_s": 30.0, "images_per_s": 20000.0}},
        "b": {"metrics": {"linear_top1": 86.5, "knn_top1": 81.0, "train_time_s": 30.0, "images_per_s": 15000.0}},
    }
    outcomes = [{"regularizer": "barlow_twins", "status": "ok", "train_record_id": "a", "budget_s": 30, "steps": 1170,
                 "epochs": 10.0},
                {"regularizer": "vicreg", "status": "ok", "train_record_id": "b", "budget_s": 30, "steps": 900,
                 "epochs": 7.7},
                {"regularizer": "byol", "status": "timeout", "message": "killed after its 180 s time-out"}]
    text = gpu_e2e.e2e_table(outcomes, records)
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| ")}
    assert "| 5.00 | 8.00 |" in rows["barlow_twins"] and "| 1.50 | 1.00 |" in rows["vicreg"]
    assert "linear 85.00 %, kNN 80.00 %" in text and "byol: timeout: killed" in text


# ---------------------------------------------------------------------------------------------------- inputs
def test_missing_data_is_one_line_and_status_2(tmp_path, capsys):
    code = gpu_e2e.main(["--smoke", "--data", str(tmp_path), "--results", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "train-images-idx3-ubyte.gz" in err[0] and "Traceback" not in err[0]


def test_an_augmentation_that_cannot_run_is_one_line(monkeypatch):
    import sslbench.training.augment as augment

    def no_kornia(*args, **kwargs):
        raise ModuleNotFoundError("No module named 'kornia'")

    monkeypatch.setattr(augment, "build_augment", no_kornia)
    with pytest.raises(gpu_e2e.InputProblem, match="ModuleNotFoundError: No module named 'kornia'") as info:
        gpu_e2e.check_augment(torch.device("cpu"))
    assert "\n" not in str(info.value)


def test_throughput_bad_arguments_are_one_line(capsys):
    assert tt.main(["--smoke", "--regularizer", "byol"]) == 2
    assert "symmetric" in capsys.readouterr().err
    assert tt.main(["--smoke", "--num-images", "8"]) == 2
    assert "--num-images" in capsys.readouterr().err
    assert tt.main(["--smoke", "--regularizer", "no_such_pkg.losses:Loss"]) == 2  # a spec: one line naming it
    assert "No module named 'no_such_pkg'" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------- smoke runs
@pytest.mark.slow
def test_throughput_smoke_writes_both_loops(tmp_path):
    out = tmp_path / "t.jsonl"
    assert tt.main(["--smoke", "--out", str(out)]) == 0
    records = read_records(out, kind=tt.KIND)
    assert sorted(r["case"]["loop"] for r in records) == ["peer", "sslbench"]
    for r in records:
        m = r["metrics"]
        phases = tt.SSLBENCH_PHASES if r["case"]["loop"] == "sslbench" else tt.PEER_PHASES
        assert sum(m[f"{p}_ms"] for p, _ in phases) == pytest.approx(m["step_ms"], rel=1e-6)
        assert m["images_per_s"] == pytest.approx(64 / (m["step_ms"] / 1e3))
        assert m["flops_per_step"] > 0 and r["env"]
    assert "| sslbench |" in out.with_suffix(".md").read_text()


@pytest.mark.slow
def test_run_child_interrupts_an_overrunning_process():
    code, ended = gpu_e2e.run_child([sys.executable, "-c", "import time; time.sleep(60)"], 0.5, grace_s=20)
    assert code not in (0, None) and ended.startswith("interrupted")


def _write_idx(path: Path, array: np.ndarray) -> None:
    magic = {3: 0x803, 1: 0x801}[array.ndim]
    header = magic.to_bytes(4, "big") + b"".join(n.to_bytes(4, "big") for n in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.mark.slow
def test_gpu_e2e_smoke_runs_the_whole_pipeline(tmp_path):
    """The shell command in --smoke mode on a tiny Fashion-MNIST-format folder (600 / 200 images)."""
    rng = np.random.default_rng(0)
    data = tmp_path / "fmnist"
    data.mkdir()
    for split, n in (("train", 600), ("t10k", 200)):
        labels = np.arange(n) % 10
        images = (rng.integers(0, 60, (n, 28, 28)) + 19 * labels[:, None, None]).astype(np.uint8)
        _write_idx(data / f"{split}-images-idx3-ubyte.gz", images)
        _write_idx(data / f"{split}-labels-idx1-ubyte.gz", labels)
    out = tmp_path / "results"
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_e2e.sh"), "--smoke", "--data", str(data),
                           "--results", str(out), "--regularizers", "barlow_twins", "byol", "--fraction", "1",
                           "--total-s", "200"],
                          env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (md,) = out.glob("*-e2e.md")
    (records,) = out.glob("*-e2e.jsonl")
    trains = read_records(records, kind="train")
    assert sorted(r["case"]["regularizer"] for r in trains) == ["barlow_twins", "byol"]
    assert all(r["status"] == "ok" and r["metrics"]["linear_top1"] is not None for r in trains)
    assert sum(r["metrics"].get("init_linear_top1") is not None for r in trains) == 1  # the floor, once
    runs = read_records(records, kind="gpu_e2e")
    assert {r["extra"]["train_record_id"] for r in runs} == {r["id"] for r in trains}
    assert read_records(next(out.glob("*-throughput.jsonl")), kind=tt.KIND)
    text = md.read_text()
    assert "At initialisation" in text and "## Throughput" in text and "stage 3" in (out / "gpu_e2e.log").read_text()
