"""``sslbench train``: pretrain a backbone with one regularizer, then evaluate it against the same network at
initialisation. The reference training loop of sslbench, readable top to bottom (config, setup, data, model,
optimiser, loop, evaluation, record), in the spirit of nanoGPT's ``train.py``.

What one run does
-----------------
1. **Data**: an in-memory :class:`sslbench.training.data.ImageDataset` (uint8 images). Each epoch draws a permutation of
   the images (seeded by ``seed`` and the epoch), cuts it into global batches of ``batch_size`` (the last,
   incomplete one is dropped) and, under ``torch.distributed``, gives rank r the r-th equal slice of every global
   batch. Every local batch therefore has the same size (which the regularizers' global-batch statistics need)
   and the ranks' slices, concatenated in rank order, are exactly the single-process batch.
2. **Views**: ``V`` augmented views per image on the device (:func:`sslbench.training.augment.build_augment`).
3. **Model**: backbone → projector (``projector`` hidden widths, then ``dim``), Linear-BN-ReLU
   (:mod:`sslbench.training.models`); each view goes through the network separately, so batch normalisation sees one
   view at a time as in the official Barlow Twins and VICReg code. Symmetric regularizers get ``reg(Z)`` with
   ``Z`` of shape (V, B, D). The asymmetric ones (``reg.symmetric is False``) get ``reg(online, target)``:
   ``byol`` the outputs of a learned predictor and the projections of an EMA target network; ``directpred`` and
   ``isoloss`` the online projections (their predictor W_p lives in the regularizer's buffers) and the EMA
   target's, or with ``ema_tau=0`` the online projections themselves under stop-gradient.
4. **Optimiser**: LARS (as the papers; trust coefficient 0.001; biases and batch-norm parameters, i.e. every
   parameter with fewer than 2 dimensions, are excluded from weight decay and from the adaptation, as the
   official Barlow Twins does), SGD or AdamW (the same parameters are excluded from weight decay). Learning rate:
   linear warm-up then cosine decay to ``final_lr_ratio`` × ``lr`` (:func:`lr_at`).
5. **Loop**: bf16 autocast on CUDA (the losses compute in float32 regardless), float32 on the CPU; optional
   ``torch.compile``; DistributedDataParallel under ``torchrun``. Every ``log_every`` steps one JSON line goes to
   ``log_dir/<run id>.jsonl``: the loss and its terms (averaged over ranks), the learning rate, throughput
   (images/s, source images, not views) and memory (CUDA allocated / peak, or the process's resident memory).
6. **Outcomes**: a NaN/Inf loss stops the run with ``status="diverged"`` (the log is kept); Ctrl-C (SIGINT) stops
   it at the end of the current step with ``status="interrupted"``, a checkpoint and the partial log (a second
   Ctrl-C aborts at once); an out-of-memory error gives ``status="oom"``; any other exception is recorded with
   ``status="error"`` and raised again.
7. **Checkpoints** (``checkpoint_dir/<run id>.pt``, written atomically: temporary file, fsync, rename) hold the
   model, the EMA target, the regularizer's buffers (DirectPred's F, ...), the optimiser, the schedule's position,
   the RNG states, the elapsed training time and the network's initial weights. ``resume="auto"`` continues
   from that file when it exists (a finished run is then only evaluated again); ``resume=PATH`` from a given one.
   The run id is :func:`sslbench.records.case_id` of the case, so a checkpoint only resumes the same case.
8. **Evaluation** on the frozen backbone (rank 0): linear probe and weighted kNN on the labelled train split
   (the pretraining images with their labels) against the test split, collapse diagnostics of the projector's
   embeddings and of the backbone's features on the test split, and the same for the **same architecture at
   initialisation** (same seed, no training), so the record shows what pretraining added (``gain_linear``,
   ``gain_knn``).
9. **Record**: one ``kind="train"`` record appended to ``out`` (:mod:`sslbench.records`).

Determinism: before the augmentation of step s the global RNG is seeded from (seed, s, rank); before the loss
from (seed, s) alone, so every random choice a regularizer makes (the FFT variants' feature permutation) is the
same on every rank. A run is therefore a function of its configuration: resuming from a checkpoint gives the
same trajectory as an uninterrupted run (bit for bit on the CPU), and ``world_size`` processes give, up to
floating-point reassociation, the single-process trajectory *when the views are the same* (the augmentation
draws differ between ranks, as in every data-parallel SSL code; the tests inject deterministic views).

Distributed: ``torchrun --nproc-per-node G -m sslbench train ...`` (or an already initialised process group, as
in the tests). ``batch_size`` is the *global* batch and must be divisible by the world size (the official Barlow
Twins convention). Batch normalisation layers are converted to synchronised ones (statistics over the global
batch, as the official Barlow Twins ``convert_sync_batchnorm``): ``torch.nn.SyncBatchNorm`` on CUDA and
:class:`GlobalBatchNorm` on the CPU (gloo), where ``SyncBatchNorm`` refuses to run. Only rank 0 writes logs,
checkpoints and records and evaluates; every rank returns the same record.

Recommended settings
--------------------
* The regularizers keep their papers' defaults unless ``--hp`` sets them. Barlow Twins' ``lambd=0.0051`` was
  tuned for D = 8192; for the small default projector (D = 128) the authors' folklore is lambd ≈ 1/D
  (``--hp lambd=0.0078``), which is what the fastssl configs use at D = 128.
* CPU defaults: Fashion-MNIST (60 000 images), the ``convnet`` backbone, projector 512-128, V = 2, batch 256,
  8 epochs of SGD (momentum 0.9, lr 0.1 — 0.03 for VICReg, see :data:`DEFAULT_LR_FOR` — weight decay 5e-4,
  1 warm-up epoch, cosine). Measured on the project's
  2-core CPU (torch 2.13, other work running beside it), ``sslbench train --regularizer barlow_twins`` took
  5 min 54 s wall (323 s training, 26 s evaluation) for linear 84.49 % vs 79.47 % at initialisation (kNN
  78.04 % vs 72.29 %); ``--regularizer vicreg`` 4 min 10 s (219 s training, about 2 200 images/s) for linear
  84.99 % vs 79.47 % (kNN 78.66 % vs 72.29 %). The optimiser and learning rate were chosen by a sweep (10 and
  8 epochs, same data and network, run on a GPU in float32): SGD 0.1 was best for both (Barlow Twins 84.8 %,
  VICReg 85.1 % at 10 epochs); LARS needs a large lr with this small network (Barlow Twins with 0.3 and 1.0 did
  not beat the initialisation, VICReg reached 79.3 / 81.8 %; 3.0 gave 82.0 % / 84.3 %, 8.0 diverged for VICReg), AdamW 1e-3 gave 82.1 % / 84.4 %.
  ``--hp lambd=1/128`` (lambd ≈ 1/D) raised Barlow Twins to 85.4 % at 10 epochs.
* LARS's default lr (3.0) is the one measured for the small convnet; the papers' ResNet settings are far lower
  (solo-learn's CIFAR Barlow Twins: 0.3 at batch 256), so pass ``--lr`` with ResNets.
* The papers' learning rates are given per 256 images (lr = base × B / 256); ``--lr`` here is the peak learning
  rate as used, with no hidden scaling.

Deliberate differences from the official code: one learning rate for weights and biases (Barlow Twins uses a
40× smaller one for biases); the end of the cosine is ``final_lr_ratio`` × lr for every optimiser (Barlow Twins:
0.001); the sharding is by contiguous slices of each global batch rather than ``DistributedSampler``'s strided
one (same set of images per step, rank-ordered concatenation).

Programmatic use::

    from sslbench.training.train import TrainConfig, train
    record = train(TrainConfig(regularizer="vicreg", epochs=2, out=None))
    record["status"], record["metrics"]["linear_top1"]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import json
import math
import os
import random
import signal
import statistics
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch import Tensor, nn

from sslbench import regularizers
from sslbench.regularizers._common import all_reduce_sum

__all__ = [
    "TrainConfig",
    "train",
    "StepInfo",
    "LARS",
    "lr_at",
    "param_groups",
    "build_optimizer",
    "epoch_batches",
    "GlobalBatchNorm",
    "convert_sync_batchnorm",
    "SSLModel",
    "parse_hparam",
    "parse_hparams",
    "save_checkpoint",
    "add_arguments",
    "run",
]

from sslbench.training.config import (  # noqa: F401 - re-exported: the loop's configuration
    KIND,
    PREDICTOR_REGULARIZERS,
    DEFAULT_EMA_TAU,
    OPTIMIZERS,
    DEFAULT_LR,
    DEFAULT_LR_FOR,
    DEFAULT_WEIGHT_DECAY,
    AMP_MODES,
    DEVICES,
    MAX_DEVICE_DATA_BYTES,
    TrainConfig,
    parse_hparam,
    parse_hparams,
    _check,
)

# ==============================================================================================================
# Optimiser and schedule
# ==============================================================================================================
class LARS(torch.optim.Optimizer):
    """LARS (You, Gitman, Ginsburg 2017) in the form of the official Barlow Twins / VICReg code.

    For each parameter w with gradient g, in groups with ``lars_adapt=True``::

        d = g + weight_decay · w
        d ← d · η‖w‖/‖d‖        (when ‖w‖ > 0 and ‖d‖ > 0; η = ``eta`` = 0.001)
        μ ← momentum · μ + d
        w ← w − lr · μ

    Groups with ``lars_adapt=False`` skip the adaptation (and :func:`param_groups` gives them no weight decay):
    the biases and batch-norm parameters.
    """

    def __init__(self, params, lr: float, weight_decay: float = 0.0, momentum: float = 0.9, eta: float = 0.001):
        defaults = dict(lr=lr, weight_decay=weight_decay, momentum=momentum, eta=eta, lars_adapt=True)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is None:
                    continue
                d = p.grad
                if g["weight_decay"] != 0:
                    d = d.add(p, alpha=g["weight_decay"])
                if g["lars_adapt"]:
                    w_norm, d_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(d)
                    trust = torch.where((w_norm > 0) & (d_norm > 0), g["eta"] * w_norm / d_norm,
                                        torch.ones_like(w_norm))
                    d = d.mul(trust)
                state = self.state[p]
                if "mu" not in state:
                    state["mu"] = torch.zeros_like(p)
                mu = state["mu"]
                mu.mul_(g["momentum"]).add_(d)
                p.add_(mu, alpha=-g["lr"])
        return loss


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: weights (≥ 2 dimensions) with weight decay and LARS adaptation, and biases / norm parameters
    (< 2 dimensions) with neither (the official Barlow Twins' ``exclude_bias_and_norm``)."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay, "lars_adapt": True},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0, "lars_adapt": False},
    ]


def build_optimizer(model: nn.Module, name: str, lr: float, weight_decay: float, momentum: float = 0.9):
    """LARS, SGD (momentum) or AdamW over :func:`param_groups` (no decay for biases and norm parameters)."""
    groups = param_groups(model, weight_decay)
    if name == "lars":
        return LARS(groups, lr=lr, momentum=momentum)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    raise ValueError(f"optimizer={name!r} is not allowed; choose one of {', '.join(OPTIMIZERS)}")


def lr_at(step: int, *, base: float, total_steps: int, warmup_steps: int, final_ratio: float = 0.001) -> float:
    """The learning rate of step ``step`` (0-based) of ``total_steps``.

    Linear warm-up ``base·(step + 1)/warmup_steps`` for ``step < warmup_steps`` (the last warm-up step is at
    ``base``), then a cosine from ``base`` at ``step = warmup_steps`` to ``final_ratio·base`` at the last step
    ``total_steps − 1`` (a schedule with no room for the cosine stays at ``base``).
    """
    if step < warmup_steps:
        return base * (step + 1) / warmup_steps
    final = base * final_ratio
    span = total_steps - 1 - warmup_steps
    t = 0.0 if span <= 0 else min(1.0, (step - warmup_steps) / span)
    return final + (base - final) * 0.5 * (1.0 + math.cos(math.pi * t))


# ==============================================================================================================
# Data sharding
# ==============================================================================================================
def epoch_batches(n: int, batch_size: int, epoch: int, seed: int, rank: int = 0, world_size: int = 1) -> Tensor:
    """The indices of this rank's local batches for one epoch: a (steps, batch_size // world_size) int64 tensor.

    A permutation of ``range(n)`` seeded by (seed, epoch) is cut into ``n // batch_size`` global batches (the
    remainder is dropped); rank r takes the r-th of the ``world_size`` equal slices of each. Concatenating the
    ranks' rows in rank order gives the single-process batch.
    """
    if batch_size % world_size:
        raise ValueError(f"batch_size={batch_size} must be divisible by the world size {world_size}")
    steps = n // batch_size
    if steps == 0:
        raise ValueError(
            f"batch_size={batch_size} is larger than the {n} training images; lower --batch-size or raise --fraction"
        )
    g = torch.Generator().manual_seed(_mix_seed(seed, epoch, 0x5EED))
    perm = torch.randperm(n, generator=g)[: steps * batch_size]
    return perm.view(steps, world_size, batch_size // world_size)[:, rank].contiguous()


def _mix_seed(*parts: int) -> int:
    """A 63-bit seed from integers (splitmix64-style mixing, stable across processes and Python versions)."""
    x = 0x9E3779B97F4A7C15
    for p in parts:
        x = (x ^ (int(p) & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        x = (x ^ (x >> 31)) * 0x94D049BB133111EB & 0xFFFFFFFFFFFFFFFF
    return x & 0x7FFFFFFFFFFFFFFF


# ==============================================================================================================
# Synchronised batch normalisation on the CPU
# ==============================================================================================================
class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch normalisation with statistics over the global batch of all ranks, for any device.

    ``torch.nn.SyncBatchNorm`` only runs on accelerators; this is the same computation through the autograd-aware
    collective :func:`sslbench.regularizers._common.all_reduce_sum` (two all-reduces per call: the sum, then the
    centred sum of squares). Outside ``torch.distributed`` and in eval mode it is ``F.batch_norm``. Local batches
    must have equal sizes. Running statistics: momentum average of the global mean and the unbiased global
    variance, as ``BatchNorm``.
    """

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (N, C, ...), got {input.dim()}D")

    def forward(self, x: Tensor) -> Tensor:
        self._check_input_dim(x)
        distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        if not (self.training and distributed):
            return super().forward(x)
        dims = [0] + list(range(2, x.dim()))
        shape = [1, -1] + [1] * (x.dim() - 2)
        n = x.numel() // x.shape[1] * dist.get_world_size()
        mean = all_reduce_sum(x.sum(dims)) / n
        xc = x - mean.view(shape)
        var = all_reduce_sum(xc.square().sum(dims)) / n
        y = xc * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * (n / max(n - 1, 1)), alpha=m)
        return y


def convert_sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Every batch-norm layer of ``module`` with global-batch statistics: ``torch.nn.SyncBatchNorm`` on CUDA,
    :class:`GlobalBatchNorm` elsewhere. Parameters and buffers are kept (state-dict keys are unchanged)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return _to_global_bn(module)


def _to_global_bn(module: nn.Module) -> nn.Module:
    out = module
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, GlobalBatchNorm):
        out = GlobalBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                              module.track_running_stats, **_first_tensor_kind(module))
        with torch.no_grad():
            if module.affine:
                out.weight.copy_(module.weight)
                out.bias.copy_(module.bias)
            if module.track_running_stats:
                out.running_mean.copy_(module.running_mean)
                out.running_var.copy_(module.running_var)
                out.num_batches_tracked.copy_(module.num_batches_tracked)
        out.train(module.training)
    for name, child in module.named_children():
        out.add_module(name, _to_global_bn(child))
    return out


def _first_tensor_kind(module: nn.Module) -> dict:
    for t in list(module.parameters()) + [b for b in module.buffers() if b.is_floating_point()]:
        return {"device": t.device, "dtype": t.dtype}
    return {}


# ==============================================================================================================
# The model
# ==============================================================================================================
class SSLModel(nn.Module):
    """backbone → projector (→ predictor for byol), applied to each view separately.

    ``forward(views)`` with views (V, B, C, H, W) returns ``(z, p)``: the projections (V, B, D) and the
    predictions (V, B, D), or ``None`` without a predictor. :meth:`embed` is backbone + projector alone (what the
    EMA target copies).
    """

    def __init__(self, backbone: nn.Module, projector: nn.Module, predictor: nn.Module | None = None):
        super().__init__()
        self.backbone = backbone
        self.projector = projector
        self.predictor = predictor

    def embed(self, views: Tensor) -> Tensor:
        return torch.stack([self.projector(self.backbone(x)) for x in views.unbind(0)])

    def forward(self, views: Tensor) -> tuple[Tensor, Tensor | None]:
        z = self.embed(views)
        p = None if self.predictor is None else torch.stack([self.predictor(zv) for zv in z.unbind(0)])
        return z, p


class _Embedder(nn.Module):
    """backbone + projector as one module whose ``forward(views)`` is :meth:`SSLModel.embed` (what the EMA
    target wraps; shares the parameters of the online model)."""

    def __init__(self, model: SSLModel):
        super().__init__()
        self.backbone = model.backbone
        self.projector = model.projector

    def forward(self, views: Tensor) -> Tensor:
        return torch.stack([self.projector(self.backbone(x)) for x in views.unbind(0)])


@dataclass
class StepInfo:
    """What the ``on_step`` hook of :func:`train` receives after every optimiser step."""

    step: int  # steps done so far (1 after the first)
    epoch: int
    lr: float
    output: Any  # the RegularizerOutput of the step
    model: nn.Module  # the online model (unwrapped)
    optimizer: torch.optim.Optimizer


# ==============================================================================================================
# Checkpoints, logs, small utilities
# ==============================================================================================================
def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """``torch.save`` to a temporary file beside ``path``, fsync, then an atomic rename (a crash leaves either
    the old checkpoint or the new one, never half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    with contextlib.suppress(OSError):
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class _Log:
    """The run's JSON-lines log (rank 0; a no-op elsewhere or without a path)."""

    def __init__(self, path: Path | None, append: bool):
        self.path = path
        self._f = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._f = open(path, "a" if append else "w", encoding="utf-8")

    def write(self, event: str, **fields) -> None:
        if self._f is None:
            return
        from sslbench.records import _plain

        line = json.dumps(_plain({"event": event, "time": time.time(), **fields}, where="log"), allow_nan=False)
        self._f.write(line + "\n")
        self._f.flush()

    def close(self) -> None:
        if self._f is not None:
            self._f.flush()
            with contextlib.suppress(OSError):
                os.fsync(self._f.fileno())
            self._f.close()
            self._f = None


class _StopOnSigint:
    """While active (main thread only), the first SIGINT sets ``requested`` so that the loop stops at the end of
    the current step; a second one raises ``KeyboardInterrupt`` at once."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nsslbench train: interrupt received, stopping after this step (Ctrl-C again to abort now)",
              file=sys.stderr, flush=True)

    def __enter__(self) -> "_StopOnSigint":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    with contextlib.suppress(ImportError):
        import numpy as np

        state["numpy"] = np.random.get_state()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        with contextlib.suppress(RuntimeError):
            torch.cuda.set_rng_state_all(state["cuda"])
    if "numpy" in state:
        with contextlib.suppress(ImportError):
            import numpy as np

            np.random.set_state(state["numpy"])


def _seed_all(seed: int) -> None:
    torch.manual_seed(seed)
    random.seed(seed)
    with contextlib.suppress(ImportError):
        import numpy as np

        np.random.seed(seed % 2**32)


def _resolve_device(name: str, local_rank: int) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={name!r}: CUDA is not available here; use --device cpu (or auto)")
        if device.index is None:
            device = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    return device


def _setup_distributed(device_name: str) -> tuple[int, int, int, bool]:
    """(rank, world_size, local_rank, created): joins a process group started by torchrun (env:// rendezvous)
    or uses one already initialised by the caller."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", dist.get_rank())), False
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, 0, False
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = device_name != "cpu" and torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
    dist.init_process_group("nccl" if cuda else "gloo")
    return dist.get_rank(), dist.get_world_size(), local_rank, True


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _mean_over_ranks(values: dict[str, float], device: torch.device) -> dict[str, float]:
    if not _distributed() or not values:
        return values
    t = torch.tensor(list(values.values()), dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return dict(zip(values, (t / dist.get_world_size()).tolist()))


def _any_rank(flag: bool, device: torch.device) -> bool:
    if not _distributed():
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def _memory(device: torch.device) -> dict:
    if device.type == "cuda":
        return {"memory_bytes": torch.cuda.memory_allocated(device),
                "peak_memory_bytes": torch.cuda.max_memory_allocated(device)}
    from sslbench.execution.measure import RssTracker

    return {"memory_bytes": RssTracker().current()}


def _peak_memory(device: torch.device) -> int | None:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    from sslbench.execution.measure import RssTracker

    return RssTracker().peak()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _plain_hparams(hp: dict) -> dict:
    """The JSON-able part of a regularizer's hyper-parameters (a torch.Generator and such are left out)."""
    out = {}
    for k, v in hp.items():
        if v is None or isinstance(v, (bool, int, float, str)):
            out[k] = v
        elif isinstance(v, (tuple, list)) and all(isinstance(x, (bool, int, float, str)) for x in v):
            out[k] = list(v)
    return out


def _say(verbose: bool, rank: int, text: str) -> None:
    if verbose and rank == 0:
        print(f"sslbench train: {text}", file=sys.stderr, flush=True)


# ==============================================================================================================
# Evaluation
# ==============================================================================================================
def _evaluate(backbone, projector, train_set, test_set, normalize_fn, device, cfg, *, full: bool = True) -> dict:
    """With ``full``: linear probe, kNN and collapse diagnostics (:func:`sslbench.training.evaluate.evaluate_backbone`);
    else the kNN accuracy alone (the cheap check during training)."""
    from sslbench.training import evaluate

    k = min(cfg.knn_k, len(train_set.labels))
    if full:
        probe = {"seed": cfg.seed}
        if cfg.probe_epochs is not None:
            probe["epochs"] = cfg.probe_epochs
        if cfg.probe_lr is not None:
            probe["lr"] = cfg.probe_lr
        return evaluate.evaluate_backbone(backbone, train_set.images, train_set.labels, test_set.images,
                                          test_set.labels, normalize_fn, device, cfg.eval_batch_size,
                                          projector=projector, knn_k=k, knn_temperature=cfg.knn_temperature,
                                          probe=probe)
    f_train = evaluate.extract_features(backbone, train_set.images, cfg.eval_batch_size, device, normalize_fn)
    f_test = evaluate.extract_features(backbone, test_set.images, cfg.eval_batch_size, device, normalize_fn)
    return {"knn_top1": evaluate.knn_accuracy(f_train, train_set.labels.cpu(), f_test, test_set.labels.cpu(), k=k,
                                              temperature=cfg.knn_temperature)}


# ==============================================================================================================
# The run
# ==============================================================================================================
def train(cfg: TrainConfig, *, make_views: Callable | None = None,
          on_step: Callable[[StepInfo], None] | None = None) -> dict:
    """Pretrain, evaluate and record one run; returns the record (also appended to ``cfg.out``).

    ``make_views(images, views) -> (V, B, C, H, W)`` replaces the augmentation (tests, custom pipelines);
    ``on_step(StepInfo)`` is called after every optimiser step.
    """
    # ------------------------------------------------------------------ setup
    cfg = cfg.resolved()
    rank, world, local_rank, created_group = _setup_distributed(cfg.device)
    try:
        device = _resolve_device(cfg.device, local_rank)
        return _train(cfg, rank, world, device, make_views, on_step)
    finally:
        if created_group:
            dist.destroy_process_group()


def _train(cfg: TrainConfig, rank: int, world: int, device: torch.device, make_views, on_step) -> dict:
    from sslbench.training.augment import build_augment
    from sslbench.training.data import load_dataset
    from sslbench.execution.measure import environment, is_oom_error
    from sslbench.training.models import EMATarget, Predictor, Projector, build_backbone
    from sslbench.records import append_record, case_id, make_record

    _check(cfg.batch_size % world == 0,
           f"batch_size={cfg.batch_size} must be divisible by the world size {world} (it is the global batch)")
    amp = cfg.amp == "bf16" or (cfg.amp == "auto" and device.type == "cuda")
    _check(not (amp and device.type != "cuda"), "amp='bf16' needs a CUDA device; use amp='off' (or auto) on the CPU")
    reg = regularizers.create(cfg.regularizer, **cfg.hparams).to(device)

    # ------------------------------------------------------------------ data
    data = load_dataset(cfg.dataset, cfg.pretrain_split, root=cfg.data_root, fraction=cfg.fraction, seed=cfg.seed,
                        **cfg.data_options)
    n_images = data.images.shape[0]
    steps_per_epoch = n_images // cfg.batch_size
    _check(steps_per_epoch > 0, f"batch_size={cfg.batch_size} is larger than the {n_images} training images of "
                                f"{cfg.dataset} (fraction={cfg.fraction}); lower --batch-size or raise --fraction")
    total_steps = cfg.epochs * steps_per_epoch
    if cfg.max_steps is not None:
        total_steps = min(total_steps, cfg.max_steps)
    warmup_steps = min(int(round(cfg.warmup_epochs * steps_per_epoch)), total_steps)
    on_device = device.type != "cuda" or data.images.numel() <= MAX_DEVICE_DATA_BYTES
    images_all = data.images.to(device) if on_device else data.images.pin_memory()
    image_shape = tuple(data.images.shape[1:])
    augment = build_augment(image_shape, cfg.augment).to(device)
    views_fn = make_views if make_views is not None else augment

    # ------------------------------------------------------------------ model
    _seed_all(cfg.seed)
    backbone = build_backbone(cfg.backbone, image_shape[0], image_shape[1])
    projector = Projector(backbone.out_dim, cfg.full_projector_spec())
    predictor = Predictor(projector.out_dim, cfg.predictor_hidden) \
        if cfg.regularizer in PREDICTOR_REGULARIZERS and cfg.predictor_hidden > 0 else None
    model = SSLModel(backbone, projector, predictor)
    init_state = {k: v.detach().clone().cpu() for k, v in _Embedder(model).state_dict().items()}
    if world > 1:
        model = convert_sync_batchnorm(model, device)
    model = model.to(device)
    target = EMATarget(_Embedder(model), tau_base=cfg.ema_tau) if cfg.ema_tau > 0 else None
    if target is not None and hasattr(target, "to"):
        target = target.to(device)
    net: nn.Module = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        net = torch.compile(net)

    # ------------------------------------------------------------------ optimiser
    optimizer = build_optimizer(model, cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.momentum)

    # ------------------------------------------------------------------ the case, resume, log
    case = {
        "regularizer": cfg.regularizer, "hparams": _plain_hparams(reg.hparams()), "dataset": cfg.dataset,
        "fraction": cfg.fraction, "dim": cfg.dim, "projector": cfg.full_projector_spec(), "views": cfg.views,
        "batch": cfg.batch_size, "epochs": cfg.epochs, "seed": cfg.seed, "backbone": cfg.backbone,
        "optimizer": cfg.optimizer, "lr": cfg.lr, "device": device.type, "world_size": world,
        "weight_decay": cfg.weight_decay, "warmup_epochs": cfg.warmup_epochs, "max_steps": cfg.max_steps,
        "ema_tau": cfg.ema_tau, "amp": "bf16" if amp else "off", "augment": cfg.augment,
    }
    if cfg.regularizer in PREDICTOR_REGULARIZERS:
        case["predictor_hidden"] = cfg.predictor_hidden
    if cfg.grad_clip is not None:  # only when set: the ids of earlier runs stay the same
        case["grad_clip"] = cfg.grad_clip
    if cfg.data_options:
        case["data_options"] = dict(cfg.data_options)
    run_id = case_id(KIND, case)
    ckpt_path = Path(cfg.checkpoint_dir) / f"{run_id}.pt" if cfg.checkpoint_dir else None
    resume_path = None
    if cfg.resume == "auto":
        resume_path = ckpt_path if ckpt_path is not None and ckpt_path.exists() else None
    elif cfg.resume:
        resume_path = Path(cfg.resume)
        _check(resume_path.exists(), f"resume={cfg.resume!r}: no such checkpoint file")
    start_step, train_time, images_seen, last_terms = 0, 0.0, 0, {}
    if resume_path is not None:
        ckpt = torch.load(resume_path, map_location="cpu", weights_only=False)
        if ckpt["case"] != case:
            diff = sorted(k for k in set(case) | set(ckpt["case"]) if case.get(k) != ckpt["case"].get(k))
            raise ValueError(f"checkpoint {resume_path} is for another case (differs in {', '.join(diff)}); "
                             "resume with the same settings or start afresh without --resume")
        model.load_state_dict(ckpt["model"])
        if target is not None:
            target.load_state_dict(ckpt["target"])
        reg.load_state_dict(ckpt["regularizer"])
        optimizer.load_state_dict(ckpt["optimizer"])
        init_state = ckpt["init_state"]
        start_step, train_time, images_seen = ckpt["step"], ckpt["train_time_s"], ckpt["images_seen"]
        last_terms = ckpt["last_terms"]
        _set_rng_state(ckpt["rng"])
        _say(cfg.verbose, rank, f"resumed {resume_path} at step {start_step}")
    log = _Log(Path(cfg.log_dir) / f"{run_id}.jsonl" if cfg.log_dir and rank == 0 else None,
               append=resume_path is not None)
    log.write("resume" if resume_path is not None else "start", step=start_step, run_id=run_id, case=case,
              total_steps=total_steps, steps_per_epoch=steps_per_epoch)
    _say(cfg.verbose, rank, f"{cfg.regularizer} on {cfg.dataset} ({n_images} images, {steps_per_epoch} steps/epoch, "
                            f"{total_steps} steps) on {device} x{world}, run {run_id}")

    def checkpoint(step: int, train_time_s: float, images: int, terms: dict) -> None:
        if ckpt_path is None or rank != 0:
            return
        save_checkpoint(ckpt_path, {
            "format": 1, "step": step, "case": case, "config": dataclasses.asdict(cfg),
            "model": model.state_dict(), "target": target.state_dict() if target is not None else None,
            "regularizer": reg.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": {"step": step, "total_steps": total_steps, "warmup_steps": warmup_steps},
            "rng": _rng_state(), "init_state": init_state, "train_time_s": train_time_s, "images_seen": images,
            "last_terms": terms,
        })

    eval_sets = None

    def eval_data():
        nonlocal eval_sets
        if eval_sets is None:
            probe_train = data if cfg.pretrain_split == "train" else load_dataset(
                cfg.dataset, "train", root=cfg.data_root, fraction=cfg.fraction, seed=cfg.seed, **cfg.data_options)
            eval_sets = (probe_train, load_dataset(cfg.dataset, "test", root=cfg.data_root, seed=cfg.seed,
                                                   **cfg.data_options))
        return eval_sets

    # ------------------------------------------------------------------ the loop
    status, message, consistent = "ok", None, True
    final_loss = last_terms.get("loss")
    window: list[float] = []  # images/s of each log window
    bad = torch.zeros((), dtype=torch.bool, device=device)  # a NaN/Inf loss since the last check
    bar = None
    if rank == 0 and (cfg.progress if cfg.progress is not None else sys.stderr.isatty()):
        from tqdm import tqdm

        bar = tqdm(total=total_steps, initial=start_step, desc=cfg.regularizer, unit="step", dynamic_ncols=True)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    net.train()
    batches, batches_epoch = None, -1
    step = start_step
    t_start = t_window = time.perf_counter()
    paused = 0.0  # seconds spent in checkpoints and evaluations (not training time)
    steps_in_window = 0
    try:
        with _StopOnSigint() as stop:
            while step < total_steps:
                epoch, i = divmod(step, steps_per_epoch)
                if batches_epoch != epoch:
                    batches, batches_epoch = epoch_batches(n_images, cfg.batch_size, epoch, cfg.seed, rank, world), epoch
                images = images_all[batches[i].to(images_all.device)].to(device, non_blocking=True)
                torch.manual_seed(_mix_seed(cfg.seed, step, rank + 1))  # this rank's augmentation draws
                with torch.no_grad():
                    views = views_fn(images, cfg.views)
                lr = lr_at(step, base=cfg.lr, total_steps=total_steps, warmup_steps=warmup_steps,
                           final_ratio=cfg.final_lr_ratio)
                for g in optimizer.param_groups:
                    g["lr"] = lr
                consistent = False
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                    z, p = net(views)
                    if target is None:
                        z_t = z.detach()
                    else:
                        with torch.no_grad():
                            z_t = target(views)
                torch.manual_seed(_mix_seed(cfg.seed, step, 0))  # the regularizer's draws: equal on every rank
                out = reg(z) if reg.symmetric else reg(p if p is not None else z, z_t)
                optimizer.zero_grad(set_to_none=True)
                out.loss.backward()
                grad_norm = None if cfg.grad_clip is None else \
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)  # DDP: grads already averaged
                optimizer.step()
                if target is not None:
                    target.update(step, total_steps)
                step += 1
                consistent = True
                bad |= ~torch.isfinite(out.loss.detach())
                images_seen += cfg.batch_size
                steps_in_window += 1
                if on_step is not None:
                    on_step(StepInfo(step, epoch, lr, out, model, optimizer))
                if bar is not None:
                    bar.update(1)

                # -- checks and logging (a host sync on CUDA: only at log steps and epoch ends there)
                log_now = step % cfg.log_every == 0 or step == total_steps
                end_of_epoch = step % steps_per_epoch == 0
                if (device.type == "cpu" or log_now or end_of_epoch) and _any_rank(bool(bad), device):
                    status = "diverged"
                    message = f"the loss became NaN or Inf at or before step {step} (lr {lr:.4g})"
                    log.write("diverged", step=step, lr=lr)
                    break
                if log_now:
                    _sync(device)
                    elapsed = time.perf_counter() - t_window
                    ips = steps_in_window * cfg.batch_size / elapsed if elapsed > 0 else None
                    if ips is not None:
                        window.append(ips)
                    last_terms = _mean_over_ranks(out.detached(), device)
                    final_loss = last_terms["loss"]
                    extra = {} if grad_norm is None else {"grad_norm": float(grad_norm)}
                    log.write("step", step=step, epoch=step / steps_per_epoch, lr=lr, images_per_s=ips,
                              **last_terms, **extra, **_memory(device))
                    if bar is not None:
                        bar.set_postfix(loss=f"{final_loss:.4g}", lr=f"{lr:.3g}")
                    t_window, steps_in_window = time.perf_counter(), 0
                if stop.requested if not _distributed() else (log_now and _any_rank(stop.requested, device)):
                    status, message = "interrupted", f"interrupted by the user at step {step}"
                    break

                # -- checkpoints and evaluations during training (their time is not training time)
                due_ckpt = step < total_steps and (step % cfg.checkpoint_every == 0 if cfg.checkpoint_every
                                                   else end_of_epoch)
                due_eval = (cfg.eval and cfg.eval_every > 0 and end_of_epoch and step < total_steps
                            and (step // steps_per_epoch) % cfg.eval_every == 0)
                if end_of_epoch and bar is None and step < total_steps:  # no bar (not a terminal): one line/epoch
                    done_s = time.perf_counter() - t_start - paused
                    eta = done_s / max(step - start_step, 1) * (total_steps - step)
                    loss_text = f"loss {final_loss:.4g}, " if final_loss is not None else ""
                    _say(cfg.verbose, rank, f"epoch {step // steps_per_epoch}/{total_steps // steps_per_epoch}: "
                         f"{loss_text}{done_s:.0f} s, about {eta:.0f} s to go")
                if due_ckpt or due_eval:
                    _sync(device)
                    t_pause = time.perf_counter()
                    if due_ckpt:
                        checkpoint(step, train_time + t_pause - t_start - paused, images_seen, last_terms)
                    if due_eval:
                        if rank == 0:
                            knn = _evaluate(model.backbone, model.projector, *eval_data(), augment.normalize,
                                            device, cfg, full=False)
                            log.write("eval", step=step, epoch=step // steps_per_epoch, **knn)
                        if _distributed():
                            dist.barrier()
                        net.train()
                    paused += time.perf_counter() - t_pause
                    t_window, steps_in_window = time.perf_counter(), 0
    except KeyboardInterrupt:
        status, message = "interrupted", f"aborted by a second interrupt at step {step}"
    except Exception as exc:  # noqa: BLE001 - recorded; re-raised unless it is an out-of-memory error
        if not is_oom_error(exc):
            if bar is not None:
                bar.close()
            text = f"{type(exc).__name__}: {exc}"
            log.write("error", step=step, message=text)
            log.close()
            if rank == 0 and cfg.out:
                append_record(cfg.out, make_record(KIND, case, {"steps": step}, "error", env=environment(),
                                                   message=text, extra={"traceback": traceback.format_exc(),
                                                                        "run_id": run_id}))
            raise
        status, message = "oom", f"out of memory at step {step}: {exc}"
        if device.type == "cuda":
            torch.cuda.empty_cache()
    finally:
        if bar is not None:
            bar.close()
    _sync(device)
    train_time += time.perf_counter() - t_start - paused
    if status == "ok" and start_step < total_steps:
        checkpoint(step, train_time, images_seen, last_terms)
    elif status == "interrupted":
        if consistent:
            checkpoint(step, train_time, images_seen, last_terms)
        else:
            message += " (mid-step: no new checkpoint; the last one is kept)"

    # ------------------------------------------------------------------ evaluation
    metrics: dict[str, Any] = {
        "steps": step, "train_time_s": train_time,
        "images_per_s": images_seen / train_time if train_time > 0 else None,
        "images_per_s_median": statistics.median(window[1:] or window) if window else None,
        "peak_memory_bytes": _peak_memory(device), "final_loss": final_loss if status != "diverged" else None,
    }
    if status == "ok" and cfg.eval:
        t_eval = time.perf_counter()
        if rank == 0:
            train_set, test_set = eval_data()
            trained = _evaluate(model.backbone, model.projector, train_set, test_set, augment.normalize, device, cfg)
            metrics.update(trained)
            if cfg.eval_init:
                init_model = copy.deepcopy(_Embedder(model))
                init_model.load_state_dict(init_state)
                init = _evaluate(init_model.backbone, init_model.projector, train_set, test_set, augment.normalize,
                                 device, cfg)
                metrics.update({f"init_{k}": v for k, v in init.items()})
                metrics["gain_linear"] = metrics["linear_top1"] - metrics["init_linear_top1"]
                metrics["gain_knn"] = metrics["knn_top1"] - metrics["init_knn_top1"]
        metrics["eval_time_s"] = time.perf_counter() - t_eval
    if _distributed():
        shared = [metrics]
        dist.broadcast_object_list(shared, src=0)
        metrics = shared[0]
    log.write("end", step=step, status=status, message=message, metrics=metrics)
    log.close()

    # ------------------------------------------------------------------ record
    record = make_record(KIND, case, metrics, status, env=environment(), message=message, extra={
        "run_id": run_id, "log": str(log.path) if log.path else None,
        "checkpoint": str(ckpt_path) if ckpt_path is not None and ckpt_path.exists() else None,
        "final_terms": last_terms, "hparams_set": _plain_hparams(cfg.hparams), "total_steps": total_steps,
        "steps_per_epoch": steps_per_epoch, "resumed_from_step": start_step if resume_path is not None else None,
        "config": {k: v for k, v in dataclasses.asdict(cfg).items() if k != "hparams"},
    })
    if rank == 0 and cfg.out:
        append_record(cfg.out, record)
    _say(cfg.verbose, rank, _summary(record))
    return record


def _summary(record: dict) -> str:
    m = record["metrics"]
    parts = [f"status={record['status']}", f"steps={m.get('steps')}"]
    for key in ("final_loss", "linear_top1", "init_linear_top1", "knn_top1", "init_knn_top1", "train_time_s",
                "images_per_s"):
        if m.get(key) is not None:
            parts.append(f"{key}={m[key]:.4g}")
    if record.get("message"):
        parts.append(f"({record['message']})")
    return " ".join(parts)


# ==============================================================================================================
# Command line
# ==============================================================================================================
def _none_or_str(text: str) -> str | None:
    return None if text.lower() in ("", "none", "off") else text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = TrainConfig()
    g = parser.add_argument_group("what to pretrain")
    g.add_argument("--regularizer", default=d.regularizer, choices=regularizers.available())
    g.add_argument("--hp", action="append", default=[], metavar="NAME=VALUE",
                   help="a regularizer hyper-parameter, repeatable: --hp lambd=0.0078 --hp algorithm=gram "
                        "(ints, floats, 1/128, true/false, none, tuples 1,40,40, strings)")
    g.add_argument("--dataset", default=None, help="fashion_mnist, digits, cifar10, cifar100, stl10, folder, "
                                                   "synthetic (default: fashion_mnist if found, else digits)")
    g.add_argument("--data-root", default=None)
    g.add_argument("--data-option", action="append", default=[], metavar="NAME=VALUE",
                   help="an option of the data set, repeatable (synthetic: num_samples, channels, height, width, "
                        "num_classes, data_seed; folder: image_size)")
    g.add_argument("--fraction", type=float, default=d.fraction, help="fraction of the training split")
    g.add_argument("--pretrain-split", default=d.pretrain_split, help="train (default) or unlabeled (STL-10)")
    g.add_argument("--backbone", default=d.backbone, help="auto, convnet, resnet18_cifar, resnet18")
    g.add_argument("--projector", default=d.projector,
                   help="hidden widths of the projector, e.g. 2048-2048 ('' for one linear layer)")
    g.add_argument("--dim", type=int, default=d.dim, help="projector output width D")
    g.add_argument("--predictor-hidden", type=int, default=d.predictor_hidden,
                   help="byol's predictor width (0: no predictor; with --ema-tau 0 that is SimSiam without its "
                        "predictor, which collapses)")
    g.add_argument("--views", type=int, default=d.views)
    g.add_argument("--augment", default=d.augment, help="augmentation preset")
    g = parser.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int, default=d.epochs)
    g.add_argument("--batch-size", type=int, default=d.batch_size, help="global batch size")
    g.add_argument("--optimizer", default=d.optimizer, choices=OPTIMIZERS)
    g.add_argument("--lr", type=float, default=None,
                   help="peak learning rate (default: " + ", ".join(f"{k} {v}" for k, v in DEFAULT_LR.items())
                   + "; " + ", ".join(f"{o} {r} {v}" for (o, r), v in DEFAULT_LR_FOR.items()) + ")")
    g.add_argument("--weight-decay", type=float, default=None,
                   help="default: " + ", ".join(f"{k} {v}" for k, v in DEFAULT_WEIGHT_DECAY.items()))
    g.add_argument("--momentum", type=float, default=d.momentum)
    g.add_argument("--grad-clip", type=float, default=d.grad_clip, metavar="NORM",
                   help="clip the global gradient norm to NORM (default: no clipping); the step log gets grad_norm")
    g.add_argument("--warmup-epochs", type=float, default=d.warmup_epochs)
    g.add_argument("--final-lr-ratio", type=float, default=d.final_lr_ratio)
    g.add_argument("--max-steps", type=int, default=None)
    g.add_argument("--ema-tau", type=float, default=None,
                   help=f"byol/directpred/isoloss: EMA target decay (default {DEFAULT_EMA_TAU}; 0: the online "
                        "network under stop-gradient is the target)")
    g = parser.add_argument_group("runtime")
    g.add_argument("--seed", type=int, default=d.seed)
    g.add_argument("--device", default=d.device, help="auto, cpu, cuda, cuda:N")
    g.add_argument("--amp", nargs="?", const="bf16", default=d.amp, choices=AMP_MODES,
                   help="auto (bf16 autocast on CUDA, float32 on the CPU), bf16, off; --amp alone means bf16")
    g.add_argument("--compile", action="store_true", help="torch.compile the model")
    g = parser.add_argument_group("evaluation")
    g.add_argument("--no-eval", dest="eval", action="store_false", help="skip the linear probe and kNN")
    g.add_argument("--no-eval-init", dest="eval_init", action="store_false",
                   help="skip the evaluation of the network at initialisation")
    g.add_argument("--eval-every", type=int, default=d.eval_every, help="epochs between kNN evaluations")
    g.add_argument("--knn-k", type=int, default=d.knn_k)
    g.add_argument("--probe-epochs", type=int, default=None)
    g.add_argument("--probe-lr", type=float, default=None)
    g.add_argument("--eval-batch-size", type=int, default=d.eval_batch_size)
    g = parser.add_argument_group("outputs")
    g.add_argument("--out", type=_none_or_str, default=d.out, help="record store (JSON lines; 'none' for none)")
    g.add_argument("--log-dir", type=_none_or_str, default=d.log_dir, help="per-run logs ('none' for none)")
    g.add_argument("--log-every", type=int, default=d.log_every, help="steps between log lines")
    g.add_argument("--checkpoint-dir", type=_none_or_str, default=d.checkpoint_dir, help="'none' for none")
    g.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every,
                   help="steps between checkpoints (0: every epoch)")
    g.add_argument("--resume", nargs="?", const="auto", default=None, metavar="PATH",
                   help="continue from a checkpoint: PATH, or alone the run's own in --checkpoint-dir")
    g.add_argument("--progress", dest="progress", action="store_true", default=None, help="force the progress bar")
    g.add_argument("--no-progress", dest="progress", action="store_false")
    g.add_argument("--quiet", dest="verbose", action="store_false")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The :class:`TrainConfig` of parsed command-line arguments (``--hp`` parsed and checked)."""
    hparams = parse_hparams(args.hp)
    data_options = parse_hparams(getattr(args, "data_option", []), "--data-option")
    names = regularizers.hparam_names(args.regularizer)
    unknown = sorted(set(hparams) - set(names))
    if unknown:
        raise ValueError(f"--hp {', '.join(unknown)}: not a hyper-parameter of {args.regularizer}; "
                         f"accepted: {', '.join(names)}")
    regularizers.create(args.regularizer, **hparams)  # values checked before any work
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in vars(args).items() if k in fields and k not in ("hparams", "data_options")}
    return TrainConfig(hparams=hparams, data_options=data_options, **values)


def run(args: argparse.Namespace) -> int:
    """``sslbench train``: 0 when the run finished, 1 diverged / out of memory, 130 interrupted, 2 bad arguments."""
    try:
        cfg = config_from_args(args).resolved()
    except ValueError as exc:
        print(f"sslbench train: error: {exc}", file=sys.stderr)
        return 2
    record = train(cfg)
    if cfg.verbose and int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({"status": record["status"], "id": record["id"], **record["metrics"]}))
    return {"ok": 0, "interrupted": 130}.get(record["status"], 1)
