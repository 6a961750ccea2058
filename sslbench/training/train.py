"""``sslbench train``: pretrain a backbone with one regularizer, then evaluate it against the same network at
initialisation. The reference training loop of sslbench, readable top to bottom in the spirit of nanoGPT's
``train.py``: :func:`train` is the sequence check inputs → set-up (data, model, optimiser) → resume → steps →
final evaluation → record, each a short function over two small objects, :class:`Run` (what set-up built) and
:class:`RunState` (what the steps change and a checkpoint restores). The optimisers and schedule live in
:mod:`sslbench.training.optim`, the distributed helpers in :mod:`sslbench.training.distributed`, the checkpoint
format in :mod:`sslbench.training.checkpoint`.

What one run does
-----------------
1. **Data**: an in-memory :class:`sslbench.training.data.ImageDataset` (uint8 images). Each epoch draws a permutation of
   the images (seeded by ``seed`` and the epoch), cuts it into global batches of ``batch_size`` (the last,
   incomplete one is dropped) and, under ``torch.distributed``, gives rank r the r-th equal slice of every global
   batch. Every local batch therefore has the same size (which the regularizers' global-batch statistics need)
   and the ranks' slices, concatenated in rank order, are exactly the single-process batch.
2. **Views**: ``V`` augmented views per image on the device (:func:`sslbench.training.augment.build_augment`),
   all V·B views in a few batched kernels (``augment_backend``: ``torch``, the default, or ``kornia``).
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
5. **Loop**: the images stay on the device as uint8 (up to :data:`MAX_DEVICE_DATA_BYTES`) and each batch is
   gathered there by an index tensor copied once per epoch; channels_last backbones; bf16 autocast on CUDA (the
   losses compute in float32 regardless), float32 on the CPU; ``torch.compile`` of the network on CUDA (and
   with ``compile=True`` anywhere; if the first step cannot compile, one line says so and the run goes on
   eagerly); multi-tensor optimiser steps (LARS in ``torch._foreach_*`` form, fused SGD / AdamW on CUDA);
   DistributedDataParallel under ``torchrun``. No step reads a value back to the host except at log steps and
   epoch ends (the NaN/Inf flag accumulates on the device in between; see docs/training-speed.md). Every
   ``log_every`` steps one JSON line goes to
   ``log_dir/<run id>.jsonl``: the loss and its terms (averaged over ranks), the learning rate, throughput
   (images/s, source images, not views) and memory (CUDA allocated / peak, or the process's resident memory).
6. **Outcomes**: a NaN/Inf loss stops the run, at the next log step or epoch end, with ``status="diverged"``
   (the log is kept); Ctrl-C (SIGINT) stops
   it at the end of the current step with ``status="interrupted"``, a checkpoint and the partial log (a second
   Ctrl-C aborts at once); an out-of-memory error gives ``status="oom"``; a linear-algebra failure (DirectPred's
   and IsoLoss's eigendecomposition) while the weights or the regularizer's state are NaN/Inf is a divergence
   too; any other exception is recorded with ``status="error"`` and raised again. Bad inputs (configuration,
   data set, output paths, checkpoint) raise :class:`sslbench.training.config.TrainInputError` before any work.
7. **Checkpoints** (``checkpoint_dir/<run id>.pt``, written atomically: temporary file, fsync, rename) hold the
   model, the EMA target, the regularizer's buffers (DirectPred's F, ...), the optimiser, the schedule's position,
   the RNG states, the elapsed training time and the network's initial weights: tensors and plain data only, read
   back with ``weights_only=True`` (:mod:`sslbench.training.checkpoint`). ``resume="auto"`` continues from that
   file when it exists and says in one line when it does not (no ``checkpoint_dir``, or no checkpoint of this run
   id: any change to the case's settings gives another id) before starting from step 0; ``resume=PATH`` from a
   given one. The run id is :func:`sslbench.records.case_id` of the case, so a checkpoint only resumes the same
   case. On resume the log loses its lines past the checkpoint's step (a killed run's steps are not doubled).
   A finished run resumed again whose ``ok`` record is already in ``out`` is not evaluated nor recorded again:
   :func:`train` says so and returns the stored record; without that record it is evaluated and recorded.
8. **Evaluation** on the frozen backbone (rank 0): linear probe and weighted kNN on the labelled train split
   (the pretraining images with their labels) against the test split, collapse diagnostics of the projector's
   embeddings and of the backbone's features on the test split, and the same for the **same architecture at
   initialisation** (same seed, no training), so the record shows what pretraining added (``gain_linear``,
   ``gain_knn``).
9. **Record**: one ``kind="train"`` record appended to ``out`` (:mod:`sslbench.records`); the output paths are
   checked before any work, and if the write still fails at the end the record goes to ``log_dir`` (or stdout)
   instead, with a line saying where (:func:`sslbench.records.paths.append_record_safely`).

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
* The regularizers keep their papers' defaults unless ``--hp`` sets them, with one exception: ``sslbench train``
  gives Barlow Twins lambd = 1/D (the paper's ``lambd=0.0051`` was tuned for D = 8192; lambd ≈ 1/D is the
  authors' folklore at small D and what the fastssl configs use); ``--hp lambd=0.0051`` restores the paper's.
* CPU defaults (chosen by the sweep in ``results/sweeps/cpu-default/``): on Fashion-MNIST the ``convnet_pool_2x2``
  backbone and the ``mnist_strong`` augmentation (:data:`DEFAULT_BACKBONE_FOR`, :data:`DEFAULT_AUGMENT_FOR`; other
  data sets: ``auto``), projector 512-512 (D = 512), Barlow Twins' lambd = 1/D unless ``--hp`` sets it
  (:data:`LAMBD_ONE_OVER_DIM`), V = 2, batch 256, 5 epochs of AdamW (lr 2e-3, 1e-3 for VICReg; weight decay 1e-4;
  1 warm-up epoch; cosine). The sweep's figures are in its README there; the README's job 3 gives ``make demo``'s
  (the same run). Over the earlier ``convnet_pool`` (global pooling,
  86.17 %) the 2×2 final pool keeps a coarse layout in the features (+4.5 points at initialisation, +3.4 after
  pretraining); the ``mnist_strong`` augmentation added 2.6 points over ``mnist``. The earlier default (SGD lr
  0.1, ``convnet``, projector 512-128, 8 epochs) reached 84.36 %.
* The earlier optimiser sweep (``convnet``, projector 512-128; 10 and 8 epochs, run on a GPU in float32): SGD 0.1
  was best for both (Barlow Twins 84.8 %, VICReg 85.1 % at 10 epochs); LARS needs a large lr with this small
  network (Barlow Twins with 0.3 and 1.0 did not beat the initialisation, VICReg reached 79.3 / 81.8 %; 3.0 gave
  82.0 % / 84.3 %, 8.0 diverged for VICReg), AdamW 1e-3 gave 82.1 % / 84.4 %. VICReg with SGD needs lr 0.03
  (:data:`DEFAULT_LR_FOR`).
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
import os
import signal
import statistics
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch import Tensor, nn

from sslbench import regularizers
from sslbench.probe import cpu_load
from sslbench.records.files import fresh_file, read_own_text
from sslbench.training.checkpoint import (  # noqa: F401 - re-exported
    FORMAT,
    CheckpointError,
    check_progress,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from sslbench.training.config import (  # noqa: F401 - re-exported: the loop's configuration
    AMP_MODES,
    DEFAULT_EMA_TAU,
    DEFAULT_LR,
    DEFAULT_LR_FOR,
    DEFAULT_WEIGHT_DECAY,
    DEVICES,
    KIND,
    MAX_DEVICE_DATA_BYTES,
    OPTIMIZERS,
    PREDICTOR_REGULARIZERS,
    TrainConfig,
    TrainInputError,
    _check,
    add_arguments,
    check_outputs,
    config_from_args,
    needs_predictor,
    parse_hparam,
    parse_hparams,
)
from sslbench.training.distributed import (  # noqa: F401 - re-exported
    GlobalBatchNorm,
    any_rank,
    convert_sync_batchnorm,
    from_rank0,
    is_distributed,
    mean_over_ranks,
    resolve_device,
    setup_distributed,
)
from sslbench.training.optim import LARS, build_optimizer, lr_at, param_groups  # noqa: F401 - re-exported

__all__ = [
    "TrainConfig",
    "TrainInputError",
    "train",
    "Run",
    "RunState",
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
    "load_checkpoint",
    "add_arguments",
    "run",
]


# ==============================================================================================================
# Data sharding and seeds
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


def _seed_all(seed: int) -> None:
    import random

    torch.manual_seed(seed)
    random.seed(seed)
    with contextlib.suppress(ImportError):
        import numpy as np

        np.random.seed(seed % 2**32)


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
# The log, Ctrl-C, small utilities
# ==============================================================================================================
class _Log:
    """The run's JSON-lines log (rank 0; a no-op elsewhere or without a path)."""

    def __init__(self, path: Path | None, resume_step: int | None = None):
        """A new log, or with ``resume_step`` the existing one cut back to the lines up to that step (a killed
        run's lines past its last checkpoint would otherwise appear twice). Either way the log is a fresh file
        renamed over ``path`` (its name is guessable from the run id): a link planted there is replaced, never
        written through."""
        self.path = path
        self._f = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            kept = _log_lines_up_to(path, resume_step) if resume_step is not None else []
            self._f = fresh_file(path)
            self._f.write("".join(kept))
            self._f.flush()

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


def _log_lines_up_to(path: Path, step: int) -> list[str]:
    """The lines of the JSON-lines log ``path`` whose ``step`` is at most ``step`` (and those without one), less any
    line cut short by a crash; none when ``path`` is a link or not a file of its own
    (:func:`sslbench.records.files.read_own_text`)."""
    kept = []
    for line in (read_own_text(path) or "").split("\n"):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and not (isinstance(entry.get("step"), int) and entry["step"] > step):
            kept.append(line + "\n")
    return kept


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



def _memory(device: torch.device) -> dict:
    if device.type == "cuda":
        return {"memory_bytes": torch.cuda.memory_allocated(device),
                "peak_memory_bytes": torch.cuda.max_memory_allocated(device)}
    from sslbench.probe.memory import RssTracker

    return {"memory_bytes": RssTracker().current()}


def _peak_memory(device: torch.device) -> int | None:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    from sslbench.probe.memory import RssTracker

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
    f_train, f_test = (evaluate.extract_features(backbone, s.images, cfg.eval_batch_size, device, normalize_fn,
                                                 out_device=device) for s in (train_set, test_set))
    return {"knn_top1": evaluate.knn_accuracy(f_train, train_set.labels, f_test, test_set.labels, k=k,
                                              temperature=cfg.knn_temperature)}


# ==============================================================================================================
# The run: check inputs → set-up → resume → steps → final evaluation → record
# ==============================================================================================================
def train(cfg: TrainConfig, *, make_views: Callable | None = None,
          on_step: Callable[[StepInfo], None] | None = None) -> dict:
    """Pretrain, evaluate and record one run; returns the record (also appended to ``cfg.out``).

    ``make_views(images, views) -> (V, B, C, H, W)`` replaces the augmentation (tests, custom pipelines);
    ``on_step(StepInfo)`` is called after every optimiser step. Bad inputs raise :class:`TrainInputError`
    (one line) before any work.
    """
    cfg, reg = cfg.resolved_with_regularizer()  # the regularizer is built once, here
    check_outputs(cfg)
    rank, world, local_rank, created_group = setup_distributed(cfg.device)
    try:
        device = resolve_device(cfg.device, local_rank)
        run = set_up(cfg, rank, world, device, make_views, reg=reg)
        with claim_run(run):
            ckpt_path = checkpoint_to_resume(run)
            state = resume(run, ckpt_path) if ckpt_path is not None else RunState()
            if state.step >= run.total_steps and (done := stored_record(run)) is not None:
                _say(True, rank, f"run {run.run_id} has already finished (step {state.step} of {run.total_steps}) "
                                 f"and its record is in {cfg.out}; nothing to do")
                return done
            log = start_log(run, state)
            train_steps(run, state, log, on_step)
            metrics = final_evaluation(run, state)
            log.write("end", step=state.step, status=state.status, message=state.message, metrics=metrics)
            log.close()
            record = build_record(run, state, metrics, log.path)
            write_record(run, record)
            _say(cfg.verbose, rank, _summary(record))
            return record
    finally:
        if created_group:
            dist.destroy_process_group()


@contextlib.contextmanager
def claim_run(run: "Run"):
    """Hold the run's claim (``run-<id>`` in the store's claims, :mod:`sslbench.records.claims`) while it trains, so
    that two identical runs on one store do not share a log and a checkpoint: the second is refused in one line.
    A sweep's training case claims the same name on its store (:func:`planned_run_id`), so ``sslbench train`` and a
    sweep case of one configuration refuse one another too. A claim whose owner died is taken over.
    Single-process runs with a store only (a torchrun job's ranks would wait on a refused rank 0)."""
    from sslbench.records.claims import read_claims, tidy, try_claim

    cfg = run.cfg
    if not cfg.out or run.world > 1:
        yield None
        return
    key, existed = f"run-{run.run_id}", Path(cfg.out).exists()
    claim = try_claim(cfg.out, key)
    if claim is None:
        held = read_claims(cfg.out).get(key, {})
        raise TrainInputError(f"run {run.run_id} is already running (host {held.get('host', '?')}, pid "
                              f"{held.get('pid', '?')}) with the store {cfg.out}; wait for it, or change a setting "
                              "(e.g. --seed) for another run")
    try:
        yield claim
    finally:
        claim.release()
        tidy(cfg.out)
        if not existed:  # the claim's lock made the store file: leave none behind when nothing was recorded
            with contextlib.suppress(OSError):
                if Path(cfg.out).stat().st_size == 0:
                    Path(cfg.out).unlink()


@dataclass
class Run:
    """What set-up builds and the later parts read: configuration, this process's place, data, networks,
    optimiser, and the run's identity (its case and id)."""

    cfg: TrainConfig
    rank: int
    world: int
    device: torch.device
    amp: bool
    data: Any  # the pretraining ImageDataset
    images: Tensor  # all pretraining images, on the device (or in pinned host memory when too large)
    views_fn: Callable  # (images, views) -> (V, B, C, H, W)
    normalize: Callable  # the augmentation's normalisation (what the evaluation applies)
    steps_per_epoch: int
    total_steps: int
    warmup_steps: int
    reg: nn.Module
    model: SSLModel
    target: nn.Module | None  # the EMA target network (asymmetric regularizers with ema_tau > 0)
    net: nn.Module  # the model as trained: DDP-wrapped and/or compiled
    optimizer: torch.optim.Optimizer
    init_state: dict  # the embedder's weights at initialisation (the evaluation's baseline)
    case: dict
    run_id: str
    ckpt_path: Path | None
    eval_sets: tuple | None = None  # (probe train, test), loaded on first use
    eager_net: nn.Module | None = None  # the network before torch.compile (the fallback), None when not compiled
    augment_backend: str | None = None  # the backend that made the views (None: make_views was given)

    def lr(self, step: int) -> float:
        return lr_at(step, base=self.cfg.lr, total_steps=self.total_steps, warmup_steps=self.warmup_steps,
                     final_ratio=self.cfg.final_lr_ratio)

    def eval_data(self) -> tuple:
        from sslbench.training.data import load_dataset

        c = self.cfg
        if self.eval_sets is None:
            probe_train = self.data if c.pretrain_split == "train" else load_dataset(
                c.dataset, "train", root=c.data_root, fraction=c.fraction, seed=c.seed, **c.data_options)
            self.eval_sets = (probe_train, load_dataset(c.dataset, "test", root=c.data_root, seed=c.seed,
                                                        **c.data_options))
        return self.eval_sets


@dataclass
class RunState:
    """What the steps change and a checkpoint restores, and how the run ended."""

    step: int = 0  # optimiser steps done
    train_time_s: float = 0.0  # training time so far (checkpoints and evaluations excluded)
    images_seen: int = 0
    last_terms: dict = field(default_factory=dict)  # the loss terms of the last log step (mean over ranks)
    status: str = "ok"
    message: str | None = None
    consistent: bool = True  # False while a step is half done (no checkpoint then)
    throughput: list = field(default_factory=list)  # images/s of each log window
    resumed_from: int | None = None  # the step of the checkpoint the run resumed from
    #: the other processes' mean CPU load over this process's training, in cores (one CPU process only; None else)
    other_cpu_cores: float | None = None

    @property
    def final_loss(self) -> float | None:
        return self.last_terms.get("loss")


# ------------------------------------------------------------------------------------------------------ set-up
def set_up(cfg: TrainConfig, rank: int, world: int, device: torch.device, make_views: Callable | None = None, *,
           reg: regularizers.Regularizer | None = None) -> Run:
    """Data, views, model, EMA target and optimiser, in the order that fixes the initial weights (the seed is
    set just before the networks are built), and the run's case and id. ``reg``: the regularizer that
    :meth:`TrainConfig.resolved_with_regularizer` built (else built here)."""
    from sslbench.records import case_id
    from sslbench.training.augment import build_augment

    _check(cfg.batch_size % world == 0,
           f"batch_size={cfg.batch_size} must be divisible by the world size {world} (it is the global batch)")
    amp = cfg.amp == "bf16" or (cfg.amp == "auto" and device.type == "cuda")
    _check(not (amp and device.type != "cuda"), "amp='bf16' needs a CUDA device; use amp='off' (or auto) on the CPU")
    reg = (regularizers.create(cfg.regularizer, **cfg.hparams) if reg is None else reg).to(device)
    data = load_pretraining_data(cfg)
    steps_per_epoch = len(data.images) // cfg.batch_size
    total_steps = cfg.epochs * steps_per_epoch if cfg.max_steps is None else \
        min(cfg.epochs * steps_per_epoch, cfg.max_steps)
    on_device = device.type != "cuda" or data.images.numel() <= MAX_DEVICE_DATA_BYTES
    image_shape = tuple(data.images.shape[1:])
    try:
        augment = build_augment(image_shape, cfg.augment, backend=cfg.augment_backend).to(device)
    except ImportError as exc:
        raise TrainInputError(f"augment_backend={cfg.augment_backend!r}: {exc}") from None
    model, target, net, init_state = build_networks(cfg, image_shape, world, device)
    case = run_case(cfg, reg, device, world, amp)
    run_id = case_id(KIND, case)
    run = Run(
        cfg=cfg, rank=rank, world=world, device=device, amp=amp, data=data,
        images=data.images.to(device) if on_device else data.images.pin_memory(),
        views_fn=make_views if make_views is not None else augment, normalize=augment.normalize,
        steps_per_epoch=steps_per_epoch, total_steps=total_steps,
        warmup_steps=min(int(round(cfg.warmup_epochs * steps_per_epoch)), total_steps), reg=reg, model=model,
        target=target, net=compile_network(net, cfg, device), eager_net=net if compiles(cfg, device) else None,
        optimizer=build_optimizer(model, cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.momentum, device),
        init_state=init_state, case=case, run_id=run_id,
        ckpt_path=Path(cfg.checkpoint_dir) / f"{run_id}.pt" if cfg.checkpoint_dir else None,
        augment_backend=None if make_views is not None else augment.backend)
    if cfg.eval and rank == 0:
        load_evaluation_data(run)
    return run


def load_evaluation_data(run: Run) -> None:
    """Load the evaluation splits now, before any training: a missing test split must not cost a finished run
    (a :class:`TrainInputError` naming it)."""
    try:
        run.eval_data()
    except (OSError, ValueError, TypeError, ImportError) as exc:
        raise TrainInputError(f"dataset {run.cfg.dataset}, the evaluation splits: {exc}; add the test split's "
                              "files, or pass --no-eval") from None


def load_pretraining_data(cfg: TrainConfig):
    """The pretraining split; a data set that cannot be loaded or is smaller than one batch is a
    :class:`TrainInputError` naming it."""
    from sslbench.training.data import load_dataset

    try:
        data = load_dataset(cfg.dataset, cfg.pretrain_split, root=cfg.data_root, fraction=cfg.fraction,
                            seed=cfg.seed, **cfg.data_options)
    except (OSError, ValueError, TypeError, ImportError) as exc:
        raise TrainInputError(f"dataset {cfg.dataset}: {exc}") from None
    _check(len(data.images) >= cfg.batch_size,
           f"batch_size={cfg.batch_size} is larger than the {len(data.images)} training images of {cfg.dataset} "
           f"(fraction={cfg.fraction}); lower --batch-size or raise --fraction")
    return data


def build_networks(cfg: TrainConfig, image_shape: tuple, world: int, device: torch.device):
    """(model, EMA target or None, the network as trained, the embedder's initial weights), seeded by cfg.seed."""
    from sslbench.training.models import EMATarget, Predictor, Projector, build_backbone

    _seed_all(cfg.seed)
    backbone = build_backbone(cfg.backbone, image_shape[0], image_shape[1])
    projector = Projector(backbone.out_dim, cfg.full_projector_spec())
    predictor = Predictor(projector.out_dim, cfg.predictor_hidden) \
        if needs_predictor(cfg.regularizer) and cfg.predictor_hidden > 0 else None
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
    return model, target, net, init_state


def compiles(cfg: TrainConfig, device: torch.device) -> bool:
    """Whether the run compiles its network: ``compile=True``, or on CUDA unless ``compile_cuda=False``."""
    return cfg.compile or (device.type == "cuda" and cfg.compile_cuda)


def compile_network(net: nn.Module, cfg: TrainConfig, device: torch.device) -> nn.Module:
    """``torch.compile(net)`` when :func:`compiles` (the first step falls back to ``net`` itself if compiling
    fails: :func:`step_or_fall_back`), else ``net``."""
    return torch.compile(net) if compiles(cfg, device) else net


def run_case(cfg: TrainConfig, reg: nn.Module, device: torch.device, world: int, amp: bool) -> dict:
    """The settings that make a run what it is; their :func:`sslbench.records.case_id` is the run id."""
    from sslbench.training.augment import resolve_backend

    case = {
        "regularizer": cfg.regularizer, "hparams": _plain_hparams(reg.hparams()), "dataset": cfg.dataset,
        "fraction": cfg.fraction, "dim": cfg.dim, "projector": cfg.full_projector_spec(), "views": cfg.views,
        "batch": cfg.batch_size, "epochs": cfg.epochs, "seed": cfg.seed, "backbone": cfg.backbone,
        "optimizer": cfg.optimizer, "lr": cfg.lr, "device": device.type, "world_size": world,
        "weight_decay": cfg.weight_decay, "warmup_epochs": cfg.warmup_epochs, "max_steps": cfg.max_steps,
        "ema_tau": cfg.ema_tau, "amp": "bf16" if amp else "off", "augment": cfg.augment,
    }
    backend = resolve_backend(cfg.augment_backend)
    if backend != "kornia":  # the views differ with the backend; kornia's runs keep their earlier ids
        case["augment_backend"] = backend
    if needs_predictor(cfg.regularizer):
        case["predictor_hidden"] = cfg.predictor_hidden
    if cfg.grad_clip is not None:  # only when set: the ids of earlier runs stay the same
        case["grad_clip"] = cfg.grad_clip
    if cfg.data_options:
        case["data_options"] = dict(cfg.data_options)
    return case


def planned_run_id(cfg: TrainConfig, world: int = 1, device: str | None = None) -> str:
    """The run id :func:`train` gives ``cfg`` in a world of ``world`` processes, without loading data or building
    networks (only the regularizer, whose hyper-parameters with their defaults are part of the id). A sweep names
    the claim of its training case by it and counts a record of this id as the case done, so ``sslbench train``
    and a sweep case of one configuration are one run: one claim, one record, never a seed pooled twice."""
    from sslbench.devices import cuda_available
    from sslbench.records import case_id

    cfg, reg = cfg.resolved_with_regularizer()
    name = device or cfg.device  # ``device``: the run's device where cfg was resolved on another (a plan only)
    dev = torch.device(("cuda" if cuda_available() else "cpu") if name == "auto" else name)
    amp = cfg.amp == "bf16" or (cfg.amp == "auto" and dev.type == "cuda")  # as set_up decides
    return case_id(KIND, run_case(cfg, reg, dev, world, amp))


# ------------------------------------------------------------------------------------------------------ resume
def checkpoint_to_resume(run: Run) -> Path | None:
    """``--resume PATH``, or with ``--resume`` alone the run's own checkpoint; None (start from step 0, said in
    one line when ``--resume`` was asked for) when there is none."""
    cfg = run.cfg
    if not cfg.resume:
        return None
    if cfg.resume != "auto":
        return Path(cfg.resume)
    if run.ckpt_path is None:
        _say(True, run.rank, "--resume: there is no --checkpoint-dir (it is 'none'), so no checkpoint to resume; "
                             "starting from step 0")
        return None
    if not run.ckpt_path.exists():
        others = len([p for p in run.ckpt_path.parent.glob("*.pt") if p != run.ckpt_path])
        note = f"; the {others} other checkpoint(s) there belong to other settings" if others else ""
        _say(True, run.rank, f"--resume: no checkpoint of run {run.run_id} in {run.ckpt_path.parent} (any change "
                             f"to the run's settings gives another run id{note}); starting from step 0")
        return None
    return run.ckpt_path


def resume(run: Run, path: Path) -> RunState:
    """Load the checkpoint at ``path`` into the run (weights, EMA target, regularizer buffers, optimiser, RNG);
    the state it was saved with. A file that is not a checkpoint of this case is a :class:`CheckpointError`."""
    ckpt = load_checkpoint(path)
    if ckpt["case"] != run.case:
        other = ckpt["case"] if isinstance(ckpt["case"], dict) else {}
        diff = sorted(str(k) for k in set(run.case) | set(other) if run.case.get(k) != other.get(k))
        raise CheckpointError(f"checkpoint {path} is for another case (differs in {', '.join(diff)}); "
                              "resume with the same settings or start afresh without --resume")
    check_progress(path, ckpt, run.total_steps)
    try:
        run.model.load_state_dict(ckpt["model"])
        if run.target is not None:
            run.target.load_state_dict(ckpt["target"])
        run.reg.load_state_dict(ckpt["regularizer"])
        run.optimizer.load_state_dict(ckpt["optimizer"])
        set_rng_state(ckpt["rng"])
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {path}: its contents do not fit this run ({type(exc).__name__}: "
                              f"{str(exc).strip().splitlines()[0][:160]}); start afresh without --resume") from None
    run.init_state = ckpt["init_state"]
    _say(run.cfg.verbose, run.rank, f"resumed {path} at step {ckpt['step']}")
    return RunState(step=ckpt["step"], train_time_s=ckpt["train_time_s"], images_seen=ckpt["images_seen"],
                    last_terms=ckpt["last_terms"], resumed_from=ckpt["step"])


def checkpoint_state(run: Run, state: RunState, train_time_s: float) -> dict:
    """What a checkpoint holds: tensors and plain data only (loaded back with ``weights_only=True``)."""
    config = {k: v for k, v in dataclasses.asdict(run.cfg).items() if k != "hparams"}
    return {
        "format": FORMAT, "step": state.step, "case": run.case,
        "config": dict(config, hparams=_plain_hparams(run.cfg.hparams)),
        "model": run.model.state_dict(), "target": run.target.state_dict() if run.target is not None else None,
        "regularizer": run.reg.state_dict(), "optimizer": run.optimizer.state_dict(),
        "scheduler": {"step": state.step, "total_steps": run.total_steps, "warmup_steps": run.warmup_steps},
        "rng": rng_state(), "init_state": run.init_state, "train_time_s": train_time_s,
        "images_seen": state.images_seen, "last_terms": state.last_terms,
    }


def save(run: Run, state: RunState, train_time_s: float) -> None:
    """Rank 0 writes the run's checkpoint (when there is a checkpoint folder)."""
    if run.ckpt_path is not None and run.rank == 0:
        save_checkpoint(run.ckpt_path, checkpoint_state(run, state, train_time_s))


def stored_record(run: Run) -> dict | None:
    """The last ``ok`` record of this run id in the store (rank 0 reads, every rank gets it), or None."""
    found = None
    if run.rank == 0 and run.cfg.out:
        from sslbench.records import read_records

        found = next((r for r in reversed(read_records(run.cfg.out, kind=KIND))
                      if r.get("id") == run.run_id and r.get("status") == "ok"), None)
    return from_rank0(found)


# ------------------------------------------------------------------------------------------------------ steps
def start_log(run: Run, state: RunState) -> _Log:
    """Rank 0's log of the run (cut back to the checkpoint's step when resumed), opened with its first line."""
    cfg = run.cfg
    log = _Log(Path(cfg.log_dir) / f"{run.run_id}.jsonl" if cfg.log_dir and run.rank == 0 else None,
               resume_step=state.resumed_from)
    log.write("resume" if state.resumed_from is not None else "start", step=state.step, run_id=run.run_id,
              case=run.case, total_steps=run.total_steps, steps_per_epoch=run.steps_per_epoch)
    _say(cfg.verbose, run.rank, f"{cfg.regularizer} on {cfg.dataset} ({len(run.data.images)} images, "
                                f"{run.steps_per_epoch} steps/epoch, {run.total_steps} steps) on {run.device} "
                                f"x{run.world}, run {run.run_id}")
    return log


class _Clock:
    """Training time, with the pauses (checkpoints, evaluations) left out, and the current throughput window."""

    def __init__(self):
        self.start = self.window_start = time.perf_counter()
        self.paused = 0.0
        self.window_steps = 0

    def training_s(self) -> float:
        return time.perf_counter() - self.start - self.paused

    def new_window(self) -> None:
        self.window_start, self.window_steps = time.perf_counter(), 0


def train_steps(run: Run, state: RunState, log: _Log, on_step: Callable | None = None) -> RunState:
    """The optimisation loop from ``state.step`` to ``run.total_steps``, or to the first stop: a NaN/Inf loss
    (diverged), Ctrl-C (interrupted), out of memory (oom). Checkpoints on the way and at the end; any other
    exception is recorded as an ``error`` and raised again."""
    cfg, device = run.cfg, run.device
    clock = _Clock()
    # the others' CPU load over the training (a busy machine slows it many times: sslbench.probe.cpu_load); not
    # with several ranks on the machine, which would count each other
    load = cpu_load.sample() if device.type == "cpu" and run.world == 1 else None
    bad = torch.zeros((), dtype=torch.bool, device=device)  # a NaN/Inf loss since the last check
    bar = _progress_bar(run, state.step)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    run.net.train()
    batches = _EpochBatches(run)
    try:
        with _StopOnSigint() as stop:
            while state.step < run.total_steps:
                with _phase("data"):
                    images = batches(state.step)
                out, lr, grad_norm = step_or_fall_back(run, state, images)
                bad |= ~torch.isfinite(out.loss.detach())
                clock.window_steps += 1
                if on_step is not None:
                    on_step(StepInfo(state.step, (state.step - 1) // run.steps_per_epoch, lr, out, run.model,
                                     run.optimizer))
                if bar is not None:
                    bar.update(1)
                # -- checks and logging: the only host synchronisation, at log steps and epoch ends
                step = state.step
                log_now = step % cfg.log_every == 0 or step == run.total_steps
                end_of_epoch = step % run.steps_per_epoch == 0
                with _phase("log"):
                    diverged = (log_now or end_of_epoch) and any_rank(bool(bad), device)
                if diverged:
                    state.status = "diverged"
                    state.message = f"the loss became NaN or Inf at or before step {step} (lr {lr:.4g})"
                    log.write("diverged", step=step, lr=lr)
                    break
                if log_now:
                    with _phase("log"):
                        _log_step(run, state, log, clock, out, lr, grad_norm, bar)
                if stop.requested if not is_distributed() else (log_now and any_rank(stop.requested, device)):
                    state.status, state.message = "interrupted", f"interrupted by the user at step {step}"
                    break
                if end_of_epoch and bar is None and step < run.total_steps:
                    _say_epoch(run, state, clock)
                _checkpoint_and_evaluate(run, state, log, clock, end_of_epoch)
    except KeyboardInterrupt:
        state.status, state.message = "interrupted", f"aborted by a second interrupt at step {state.step}"
    except Exception as exc:  # noqa: BLE001 - a result when it is a divergence or OOM; else recorded and raised
        _stopped_by(run, state, log, exc, bar)
    finally:
        if bar is not None:
            bar.close()
    _sync(device)
    state.train_time_s += clock.training_s()
    state.other_cpu_cores = cpu_load.other_cores(load, cpu_load.sample()) if load is not None else None
    if state.status == "ok" and (state.resumed_from or 0) < run.total_steps:
        save(run, state, state.train_time_s)
    elif state.status == "interrupted":
        if state.consistent:
            save(run, state, state.train_time_s)
        else:
            state.message += " (mid-step: no new checkpoint; the last one is kept)"
    return state


class _EpochBatches:
    """This rank's batch of a step (the epoch's permutation is drawn once per epoch)."""

    def __init__(self, run: Run):
        self.run, self.epoch, self.batches = run, -1, None

    def __call__(self, step: int) -> Tensor:
        r = self.run
        epoch, i = divmod(step, r.steps_per_epoch)
        if epoch != self.epoch:  # one copy of the epoch's indices to where the images are, not one per step
            self.batches = epoch_batches(len(r.images), r.cfg.batch_size, epoch, r.cfg.seed, r.rank,
                                         r.world).to(r.images.device)
            self.epoch = epoch
        batch = r.images[self.batches[i]]
        if batch.device.type == "cpu" and r.device.type == "cuda":  # images too large for the device: a pinned
            # copy of the batch, sent without waiting
            batch = batch.pin_memory().to(r.device, non_blocking=True)
        return batch


def step_or_fall_back(run: Run, state: RunState, images: Tensor):
    """:func:`one_step`; when the network is compiled and its first step fails (``torch.compile`` cannot
    compile it here), one line says so and the run continues eagerly from the same step (re-seeded: the same
    draws)."""
    if run.eager_net is None or state.step > (state.resumed_from or 0):
        return one_step(run, state, images)
    from sslbench.probe.memory import is_oom_error

    try:
        return one_step(run, state, images)
    except Exception as exc:  # noqa: BLE001 - any failure of the first compiled step: retried eagerly
        if is_oom_error(exc):
            raise
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        _say(True, run.rank, f"torch.compile failed ({type(exc).__name__}: {first}); training eagerly")
        run.net, run.eager_net = run.eager_net, None
        run.optimizer.zero_grad(set_to_none=True)
        state.consistent = True
        return one_step(run, state, images)


def one_step(run: Run, state: RunState, images: Tensor):
    """One optimiser step on ``images`` (this rank's batch): views, forward, loss, backward, step, EMA update.
    Returns (the regularizer's output, the learning rate, the gradient norm before clipping or None).

    Each phase runs inside a ``torch.profiler.record_function`` range named ``sslbench.<phase>`` (:data:`PHASES`;
    a few microseconds each when no profiler listens), which benchmarks/profile_step.py reads."""
    cfg, step = run.cfg, state.step
    torch.manual_seed(_mix_seed(cfg.seed, step, run.rank + 1))  # this rank's augmentation draws
    with _phase("augment"), torch.no_grad():
        views = run.views_fn(images, cfg.views)
    lr = run.lr(step)
    for g in run.optimizer.param_groups:
        g["lr"] = lr
    state.consistent = False
    with _phase("forward"), torch.autocast(run.device.type, dtype=torch.bfloat16, enabled=run.amp):
        z, p = run.net(views)
        if run.target is None:
            z_t = z.detach()
        else:
            with torch.no_grad():
                z_t = run.target(views)
    torch.manual_seed(_mix_seed(cfg.seed, step, 0))  # the regularizer's draws: equal on every rank
    with _phase("loss"):
        out = run.reg(z) if run.reg.symmetric else run.reg(p if p is not None else z, z_t)
    with _phase("backward"):
        run.optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
    with _phase("optimizer"):
        grad_norm = None if cfg.grad_clip is None else \
            nn.utils.clip_grad_norm_(run.model.parameters(), cfg.grad_clip)  # DDP: grads already averaged
        run.optimizer.step()
        if run.target is not None:
            run.target.update(step, run.total_steps)
    state.step += 1
    state.consistent = True
    state.images_seen += cfg.batch_size
    return out, lr, grad_norm


#: the profiler ranges of a training step: the batch's gather, then :func:`one_step`'s phases, then the checks
#: and logging of log steps
PHASES = ("data", "augment", "forward", "loss", "backward", "optimizer", "log")


def _phase(name: str):
    return torch.profiler.record_function(f"sslbench.{name}")


def _log_step(run: Run, state: RunState, log: _Log, clock: _Clock, out, lr: float, grad_norm, bar) -> None:
    _sync(run.device)
    elapsed = time.perf_counter() - clock.window_start
    ips = clock.window_steps * run.cfg.batch_size / elapsed if elapsed > 0 else None
    if ips is not None:
        state.throughput.append(ips)
    state.last_terms = mean_over_ranks(out.detached(), run.device)
    extra = {} if grad_norm is None else {"grad_norm": float(grad_norm)}
    log.write("step", step=state.step, epoch=state.step / run.steps_per_epoch, lr=lr, images_per_s=ips,
              **state.last_terms, **extra, **_memory(run.device))
    if bar is not None:
        bar.set_postfix(loss=f"{state.final_loss:.4g}", lr=f"{lr:.3g}")
    clock.new_window()


def _say_epoch(run: Run, state: RunState, clock: _Clock) -> None:
    """Without a progress bar (not a terminal): one line per epoch."""
    done_s = clock.training_s()
    eta = done_s / max(state.step - (state.resumed_from or 0), 1) * (run.total_steps - state.step)
    loss_text = f"loss {state.final_loss:.4g}, " if state.final_loss is not None else ""
    _say(run.cfg.verbose, run.rank, f"epoch {state.step // run.steps_per_epoch}/"
         f"{run.total_steps // run.steps_per_epoch}: {loss_text}{done_s:.0f} s, about {eta:.0f} s to go")


def _checkpoint_and_evaluate(run: Run, state: RunState, log: _Log, clock: _Clock, end_of_epoch: bool) -> None:
    """The checkpoints and kNN evaluations during training that are due after this step (their time is not
    training time)."""
    cfg, step = run.cfg, state.step
    due_ckpt = step < run.total_steps and (step % cfg.checkpoint_every == 0 if cfg.checkpoint_every
                                           else end_of_epoch)
    due_eval = (cfg.eval and cfg.eval_every > 0 and end_of_epoch and step < run.total_steps
                and (step // run.steps_per_epoch) % cfg.eval_every == 0)
    if not (due_ckpt or due_eval):
        return
    _sync(run.device)
    t_pause = time.perf_counter()
    if due_ckpt:
        save(run, state, state.train_time_s + t_pause - clock.start - clock.paused)
    if due_eval:
        if run.rank == 0:
            knn = _evaluate(run.model.backbone, run.model.projector, *run.eval_data(), run.normalize, run.device,
                            cfg, full=False)
            log.write("eval", step=step, epoch=step // run.steps_per_epoch, **knn)
        if is_distributed():
            dist.barrier()
        run.net.train()
    clock.paused += time.perf_counter() - t_pause
    clock.new_window()


def _stopped_by(run: Run, state: RunState, log: _Log, exc: Exception, bar) -> None:
    """An exception in the loop: a divergence (a linear-algebra failure on a NaN/Inf state) or an out-of-memory
    error end the run as a result; anything else is logged, recorded as ``error`` and raised again."""
    from sslbench.probe.memory import is_oom_error

    if diverged_in_linalg(exc, run):
        lr = run.lr(min(state.step, run.total_steps - 1))
        state.status = "diverged"
        state.message = (f"the weights or the regularizer's state became NaN or Inf: {type(exc).__name__} at step "
                         f"{state.step + 1} (lr {lr:.4g})")
        log.write("diverged", step=state.step, lr=lr)
    elif is_oom_error(exc):
        state.status, state.message = "oom", f"out of memory at step {state.step}: {exc}"
        if run.device.type == "cuda":
            torch.cuda.empty_cache()
    else:
        if bar is not None:
            bar.close()
        text = f"{type(exc).__name__}: {exc}"
        log.write("error", step=state.step, message=text)
        log.close()
        record = _make_record(run, {"steps": state.step}, "error", text,
                              {"traceback": traceback.format_exc(), "run_id": run.run_id})
        write_record(run, record)
        raise


def diverged_in_linalg(exc: BaseException, run: Run) -> bool:
    """A linear-algebra failure (eigh of DirectPred's / IsoLoss's F, ...) while the weights, the EMA target or the
    regularizer's buffers hold NaN/Inf: the run diverged (a failure on a finite state stays an error)."""
    if not isinstance(exc, torch.linalg.LinAlgError):
        return False
    modules = [run.model, run.reg] + ([run.target] if isinstance(run.target, nn.Module) else [])
    tensors = [t for m in modules for t in (*m.parameters(), *m.buffers()) if t.is_floating_point()]
    return any(not bool(torch.isfinite(t).all()) for t in tensors)  # local: no collective inside an error


def _progress_bar(run: Run, initial: int):
    if run.rank != 0 or not (run.cfg.progress if run.cfg.progress is not None else sys.stderr.isatty()):
        return None
    from tqdm import tqdm

    return tqdm(total=run.total_steps, initial=initial, desc=run.cfg.regularizer, unit="step", dynamic_ncols=True)


# ------------------------------------------------------------------------------------------------------ evaluation
def final_evaluation(run: Run, state: RunState) -> dict:
    """The run's metrics: steps, time, throughput and memory; after a finished run (and ``cfg.eval``), rank 0's
    linear probe, kNN and collapse diagnostics of the trained network and of the same one at initialisation,
    shared with every rank."""
    cfg, window = run.cfg, state.throughput
    metrics: dict[str, Any] = {
        "steps": state.step, "train_time_s": state.train_time_s,
        "images_per_s": state.images_seen / state.train_time_s if state.train_time_s > 0 else None,
        "images_per_s_median": statistics.median(window[1:] or window) if window else None,
        "peak_memory_bytes": _peak_memory(run.device),
        "final_loss": state.final_loss if state.status != "diverged" else None,
    }
    if state.other_cpu_cores is not None:  # this process's training only (a resumed run: since the resume)
        metrics.update(other_cpu_cores=round(state.other_cpu_cores, 2), cpu_cores=cpu_load.cores(),
                       torch_threads=torch.get_num_threads())
    if state.status == "ok" and cfg.eval:
        t_eval = time.perf_counter()
        if run.rank == 0:
            metrics.update(_evaluate_trained_and_init(run))
        metrics["eval_time_s"] = time.perf_counter() - t_eval
    return from_rank0(metrics)


def _evaluate_trained_and_init(run: Run) -> dict:
    train_set, test_set = run.eval_data()
    model, cfg = run.model, run.cfg
    metrics = _evaluate(model.backbone, model.projector, train_set, test_set, run.normalize, run.device, cfg)
    if cfg.eval_init:
        init_model = copy.deepcopy(_Embedder(model))
        init_model.load_state_dict(run.init_state)
        init = _evaluate(init_model.backbone, init_model.projector, train_set, test_set, run.normalize, run.device,
                         cfg)
        metrics.update({f"init_{k}": v for k, v in init.items()})
        metrics["gain_linear"] = metrics["linear_top1"] - metrics["init_linear_top1"]
        metrics["gain_knn"] = metrics["knn_top1"] - metrics["init_knn_top1"]
    return metrics


# ------------------------------------------------------------------------------------------------------ record
def build_record(run: Run, state: RunState, metrics: dict, log_path: Path | None, *, env: dict | None = None) -> dict:
    """The run's ``kind="train"`` record (``env=None``: this machine's environment)."""
    cfg = run.cfg
    return _make_record(run, metrics, state.status, state.message, {
        "run_id": run.run_id, "log": str(log_path) if log_path else None,
        "checkpoint": str(run.ckpt_path) if run.ckpt_path is not None and run.ckpt_path.exists() else None,
        "final_terms": state.last_terms, "hparams_set": _plain_hparams(cfg.hparams), "total_steps": run.total_steps,
        "steps_per_epoch": run.steps_per_epoch, "resumed_from_step": state.resumed_from,
        "augment_backend": run.augment_backend, "compiled": run.eager_net is not None,
        "config": {k: v for k, v in dataclasses.asdict(cfg).items() if k != "hparams"},
    }, env=env)


def _make_record(run: Run, metrics: dict, status: str, message: str | None, extra: dict, *,
                 env: dict | None = None) -> dict:
    from sslbench.probe.environment import environment
    from sslbench.records import make_record

    extra = {**extra, "regularizer_source": regularizers.source_record(run.cfg.regularizer)}
    return make_record(KIND, run.case, metrics, status, env=environment() if env is None else env, message=message,
                       extra=extra)


def write_record(run: Run, record: dict) -> None:
    """Rank 0 appends the record to ``cfg.out``; if that fails (a full disk, a folder removed meanwhile) it goes
    beside the log, or is printed whole: a finished run is never lost."""
    from sslbench.records.paths import append_record_safely

    if run.rank == 0 and run.cfg.out:
        append_record_safely(run.cfg.out, record, fallback_dirs=[run.cfg.log_dir])


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
def run(args: argparse.Namespace) -> int:
    """``sslbench train``: 0 when the run finished (or had finished: ``--resume``), 1 diverged / out of memory,
    130 interrupted, 2 bad input (arguments, data set, output paths, checkpoint: one line, before any work)."""
    try:
        record = train(config_from_args(args))
    except TrainInputError as exc:
        print(f"sslbench train: error: {exc}", file=sys.stderr)
        return 2
    if args.verbose and int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({"status": record["status"], "id": record["id"], **record["metrics"]}))
    return {"ok": 0, "interrupted": 130}.get(record["status"], 1)
