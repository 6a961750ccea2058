"""The torch side of the claim studies: their exact checks (no training, or two short synthetic runs) and what
``sslbench sweep --study NAME --scale cpu|gpu|gpu-1h`` runs of a study (its checks and its sweep configs, read from
the study registry :data:`sslbench.analysis.report.STUDIES`, where the verdict rules live too).

``sslbench sweep`` imports this module only when ``--study`` is given; the report (:mod:`sslbench.analysis.report`)
only reads the store and imports nothing of this side. Each check returns plain figures, stored as one record of
kind :data:`~sslbench.records.constants.CHECK_KIND` whose metrics the study's rules read
(:mod:`sslbench.analysis.claims`).
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from sslbench import regularizers
from sslbench.probe.environment import environment
from sslbench.records import append_record, make_record
from sslbench.records.constants import CHECK_KIND
from sslbench.regularizers.sfrik import mmd_uniform
from sslbench.training.config import TrainConfig
from sslbench.training.train import train

__all__ = ["CHECKS", "GPU_SCALES", "StudyError", "StudyRun", "check_gram_values", "check_gram_curves",
           "check_degree2", "check_permutation", "run_checks", "study_runs"]


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


#: the scales of ``sslbench sweep --study`` whose grids train on the GPU: the full budget and the one-GPU-hour grids
#: (both write the study's store of the GPU, ``<STUDIES_DIR>/<GPU name>-<name>.jsonl``)
GPU_SCALES = ("gpu", "gpu-1h")


class StudyError(ValueError):
    """A study or scale that does not exist, or a registry that cannot be read here: one line, exit status 2."""


@dataclass(frozen=True)
class StudyRun:
    """What ``sslbench sweep --study NAME --scale SCALE`` runs of one study: its exact checks (by name) and its
    sweep configs (paths), both into the store ``<out_dir>/<device>-<name>.jsonl``."""

    name: str
    checks: tuple[str, ...]
    configs: tuple[Path, ...]
    out_dir: str


def store_name(device: str, study: str, scale: str, grids: bool = True) -> str:
    """The file name of a study's store at ``scale`` on ``device`` (:func:`sslbench.analysis.claims.common.store_name`:
    the AdamW-recipe CPU grids write ``<device>-<study>-cpu2.jsonl``, apart from the earlier setting's store)."""
    from sslbench.analysis.claims.common import store_name as name

    return name(device, study, scale, grids)


def study_runs(names: Sequence[str], scale: str) -> list[StudyRun]:
    """The runs of the studies ``names`` (``all``: every study) at ``scale``, read from the study registry of the
    analysis side (:data:`sslbench.analysis.report.STUDIES`: each study's checks and configs are defined there once,
    beside its rules). Raises :class:`StudyError` for an unknown study or scale, a config file that is missing, or
    a registry that cannot be imported (it needs pandas: the ``dashboard`` extra)."""
    try:
        from sslbench.analysis.claims.common import SCALES, STUDIES_DIR
        from sslbench.analysis.report import CONFIG_DIR, STUDIES
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("sslbench"):
            raise
        raise StudyError(f"--study reads the study registry, which needs the package '{exc.name}' (not installed "
                         "here); install the 'dashboard' extra: pip install 'sslbench[dashboard]'") from None
    if scale not in SCALES:
        raise StudyError(f"--scale {scale}: choose one of {', '.join(SCALES)}")
    unknown = [n for n in names if n not in STUDIES and n != "all"]
    if unknown:
        raise StudyError(f"--study {' '.join(unknown)}: no such study; choose from {', '.join(STUDIES)} or all "
                         "(sslbench report --list describes them)")
    picked = list(STUDIES) if "all" in names else list(dict.fromkeys(names))
    runs = []
    for name in picked:
        st = STUDIES[name]
        if scale not in st.scales():
            raise StudyError(f"study {name} has no --scale {scale} grid; its scales: {', '.join(st.scales())}")
        configs = tuple(CONFIG_DIR / c for c in st.configs(scale))
        missing = [str(c) for c in configs if not c.is_file()]
        if missing:
            raise StudyError(f"the config {missing[0]} of study {name} is missing")
        runs.append(StudyRun(name, tuple(st.checks), configs, STUDIES_DIR))
    return runs
