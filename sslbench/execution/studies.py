"""The torch side of ``sslbench report``: the studies' exact checks (no training, or two short synthetic runs) and
``sslbench report --run STUDY``, which runs a study's checks and the missing cases of its sweep grids.

The report (:mod:`sslbench.analysis.report`, torch-free) imports this module only when ``--run`` is given; it
passes what the study is (its name, the names of its checks, its sweep configs), so nothing here imports the
analysis side. Each check returns plain figures, stored as one record of kind
:data:`~sslbench.records.constants.CHECK_KIND` whose metrics the study's rules read
(:mod:`sslbench.analysis.claims`).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from sslbench import regularizers
from sslbench.execution import sweep
from sslbench.execution.measure import environment
from sslbench.records import append_record, make_record
from sslbench.records.constants import CHECK_KIND
from sslbench.regularizers.sfrik import mmd_uniform
from sslbench.training.config import TrainConfig
from sslbench.training.train import train

__all__ = ["CHECKS", "GPU_SCALES", "check_gram_values", "check_gram_curves", "check_degree2", "check_permutation",
           "run_checks", "run_study"]


def _rel(a, b) -> float:
    d = (a - b).abs().max().item()
    s = max(a.abs().max().item(), b.abs().max().item())
    return d / s if s > 0 else d


def check_gram_values(seed: int = 0) -> dict:
    """Loss and gradients of algorithm gram vs cross_correlation (barlow_twins, vicreg) on random inputs."""
    g = torch.Generator().manual_seed(seed)
    shapes = [(64, 32), (32, 128), (128, 128), (256, 64)]
    out = {}
    for dtype in (torch.float32, torch.float64):
        tag = str(dtype).split(".")[-1]
        vmax = gmax = 0.0
        for name in ("barlow_twins", "vicreg"):
            for n, d in shapes:
                za = torch.randn(n, d, generator=g, dtype=torch.float64).to(dtype)
                zb = (za + 0.5 * torch.randn(n, d, generator=g, dtype=torch.float64).to(dtype))
                res = []
                for algo in ("cross_correlation", "gram"):
                    a, b = za.clone().requires_grad_(True), zb.clone().requires_grad_(True)
                    loss = regularizers.create(name, algorithm=algo)(a, b).loss
                    loss.backward()
                    res.append((loss.detach(), torch.cat([a.grad.flatten(), b.grad.flatten()])))
                vmax = max(vmax, _rel(res[0][0].reshape(1), res[1][0].reshape(1)))
                gmax = max(gmax, _rel(res[0][1], res[1][1]))
        out[f"value_rel_diff_{tag}"] = vmax
        out[f"grad_rel_diff_{tag}"] = gmax
    out["shapes"] = len(shapes)
    return out


def check_gram_curves(steps: int = 8, seed: int = 0) -> dict:
    """Two short training runs per regularizer (same seed, synthetic data), gram vs cross_correlation: the max
    relative difference of the per-step losses."""
    dim, batch = 64, 64
    worst = 0.0
    for name in ("barlow_twins", "vicreg"):
        curves = []
        for algo in ("cross_correlation", "gram"):
            losses: list[float] = []
            cfg = TrainConfig(regularizer=name, hparams={"algorithm": algo}, dataset="synthetic",
                              data_options={"num_samples": 256, "height": 16, "width": 16}, backbone="convnet",
                              projector="64", dim=dim, batch_size=batch, epochs=1, max_steps=steps, seed=seed,
                              device="cpu", eval=False, eval_init=False, out=None, log_dir=None,
                              checkpoint_dir=None, progress=False, verbose=False, warmup_epochs=0.0, lr=0.05)
            torch.manual_seed(seed)
            train(cfg, on_step=lambda info: losses.append(float(info.output.loss.detach())))
            curves.append(torch.tensor(losses, dtype=torch.float64))
        if curves[0].numel() != curves[1].numel() or curves[0].numel() == 0:
            raise RuntimeError(f"{name}: the two runs logged {curves[0].numel()} and {curves[1].numel()} steps")
        worst = max(worst, float(((curves[0] - curves[1]).abs() / curves[0].abs().clamp_min(1e-12)).max()))
    return {"loss_rel_diff": worst, "steps": steps, "runs": 2, "dim": dim, "batch": batch}


def check_degree2(batches: int = 24, n: int = 256, d: int = 64, seed: int = 0) -> dict:
    """SFRIK's MMD with only the degree-2 weight against ‖EᵀE/N − I/D‖_F² over random batches of unit-norm
    embeddings of varying anisotropy: the affine fit."""
    g = torch.Generator().manual_seed(seed)
    w2 = 40.0
    xs, ys = [], []
    for b in range(batches):
        scale = torch.logspace(0, -3 * b / max(batches - 1, 1), d, dtype=torch.float64)  # isotropic → anisotropic
        mean = torch.randn(d, generator=g, dtype=torch.float64) * (b % 3) * 0.5
        z = torch.randn(n, d, generator=g, dtype=torch.float64) * scale + mean
        e = z / z.norm(dim=1, keepdim=True)
        c = e.T @ e / n
        xs.append(float(((c - torch.eye(d, dtype=torch.float64) / d) ** 2).sum()))
        ys.append(float(mmd_uniform(e, (0.0, w2))))
    x, y = np.array(xs), np.array(ys)
    slope, icpt = np.polyfit(x, y, 1)
    resid = y - (slope * x + icpt)
    r2 = 1 - float(resid @ resid) / float(((y - y.mean()) ** 2).sum())
    return {"r2": r2, "slope": float(slope), "intercept": float(icpt), "slope_derived": w2 * d / (d - 1),
            "batches": batches, "dim": d, "batch": n}


def check_permutation(batches: int = 16, n: int = 512, d: int = 128, draws: int = 8, seed: int = 0) -> dict:
    """The FFT relaxation's off-diagonal penalty against the exact one (Barlow Twins), with and without the
    permutation, over (a) structured batches whose correlations sit on one wrapped diagonal with alternating signs
    (their sum, all the unpermuted relaxation sees, cancels: a spurious minimum) and (b) random mixtures. With the
    permutation, the relaxed penalty is averaged over ``draws`` permutations (training draws a fresh one per step,
    so the expectation over steps is what the optimiser follows)."""
    g = torch.Generator().manual_seed(seed)
    exact = regularizers.create("barlow_twins", algorithm="cross_correlation")
    res: dict[str, list] = {k: [] for k in ("ex_s", "p_s", "np_s", "ex_r", "p_r", "np_r")}
    sign = torch.tensor([1.0 if k % 2 == 0 else -1.0 for k in range(d)], dtype=torch.float64)
    for b in range(batches):
        c = 0.6 * b / max(batches - 1, 1)
        x = torch.randn(n, d, generator=g, dtype=torch.float64)
        m = torch.eye(d, dtype=torch.float64) + c * torch.diag(sign[:-1], 1)
        m[-1, 0] = c * sign[-1]
        mr = torch.eye(d, dtype=torch.float64) + c * torch.randn(d, d, generator=g, dtype=torch.float64) / math.sqrt(d)
        for tag, mix in (("s", m), ("r", mr)):
            za, zb = x, x @ mix
            res[f"ex_{tag}"].append(float(exact(za, zb).terms["off_diagonal"]))
            for key, permute in (("p", True), ("np", False)):
                reg = regularizers.create("barlow_twins_fft", permute=permute,
                                          generator=torch.Generator().manual_seed(seed + b))
                k = draws if permute else 1
                res[f"{key}_{tag}"].append(sum(float(reg(za, zb).terms["off_diagonal"]) for _ in range(k)) / k)

    def r(a, b) -> float:
        a, b = np.array(a), np.array(b)
        if a.std() == 0 or b.std() == 0:
            return 0.0
        return float(np.corrcoef(a, b)[0, 1])

    return {"r_permute_structured": r(res["p_s"], res["ex_s"]), "r_no_permute_structured": r(res["np_s"], res["ex_s"]),
            "r_permute_random": r(res["p_r"], res["ex_r"]), "r_no_permute_random": r(res["np_r"], res["ex_r"]),
            "batches": batches, "dim": d, "batch": n, "draws": draws}


CHECKS: dict[tuple[str, str], Callable[[], dict]] = {
    ("fft", "permutation"): check_permutation,
    ("sfrik", "degree2"): check_degree2,
    ("gram", "values"): check_gram_values,
    ("gram", "curves"): check_gram_curves,
}
#: the checks that need no gradients
_NO_GRAD = ("permutation", "degree2")


def _figure(v: object) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def run_checks(study: str, checks: Sequence[str], out: str | Path) -> list[dict]:
    """Run the exact checks ``checks`` of ``study`` and append one ``CHECK_KIND`` record each to ``out``."""
    records = []
    for check in checks:
        t0 = time.perf_counter()
        with torch.no_grad() if check in _NO_GRAD else contextlib.nullcontext():
            metrics = CHECKS[(study, check)]()
        metrics["wall_s"] = time.perf_counter() - t0
        rec = make_record(CHECK_KIND, {"study": study, "check": check}, metrics, env=environment())
        append_record(out, rec)
        records.append(rec)
        print(f"check {study}/{check}: " + ", ".join(f"{k}={_figure(v)}" for k, v in metrics.items()), flush=True)
    return records


def _sweep(argv: list[str]) -> int:
    """``sslbench sweep ARGV`` in this process."""
    parser = argparse.ArgumentParser(prog="sslbench sweep")
    sweep.add_arguments(parser)
    return sweep.run(parser.parse_args(argv))


def _shown(path: Path) -> Path:
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


#: the scales of ``sslbench report --run`` whose grids train on the GPU: the full budget and the one-GPU-hour grids
#: (both write the study's store of the GPU, ``<out_dir>/<GPU name>-<name>.jsonl``)
GPU_SCALES = ("gpu", "gpu-1h")


def run_study(name: str, checks: Sequence[str], configs: Sequence[Path], *, scale: str = "cpu",
              dry_run: bool = False, out_dir: str | Path = "results/studies") -> int:
    """Run study ``name``: its exact checks ``checks`` and the missing cases of its sweep ``configs`` (resumable),
    into ``<out_dir>/<device>-<name>.jsonl`` (``scale``: cpu, or one of :data:`GPU_SCALES`, which the report picked
    the configs of). Returns the worst exit status of the sweeps; 2 when the study cannot run here (a GPU scale
    without CUDA, a config missing). A dry run (``dry_run``) prints the plan only, and needs no CUDA."""
    device = "cuda" if scale in GPU_SCALES else "cpu"
    no_cuda = device == "cuda" and not torch.cuda.is_available()
    if no_cuda and not dry_run:
        print(f"sslbench report: error: --scale {scale} needs a CUDA device; none is available here. Run it on a "
              "GPU machine, or use --scale cpu", file=sys.stderr)
        return 2
    # a dry run only plans, here too: the store is then the GPU's, whose name this machine cannot know
    out = Path(out_dir) / f"{sweep.UNKNOWN_GPU if no_cuda else sweep.device_slug(device)}-{name}.jsonl"
    rc = 0
    if checks and dry_run:
        print(f"{name}: exact checks {', '.join(checks)} (no training) -> {out}")
    elif checks:
        out.parent.mkdir(parents=True, exist_ok=True)
        run_checks(name, checks, out)
    for path in configs:
        if not Path(path).is_file():
            print(f"sslbench report: error: the config {path} is missing", file=sys.stderr)
            return 2
        argv = ["--config", str(_shown(Path(path))), "--out", str(out), "--no-progress"]
        argv += ["--dry-run"] if dry_run else []
        print(f"$ sslbench sweep {' '.join(argv)}", flush=True)
        rc = max(rc, _sweep(argv))
    return rc
