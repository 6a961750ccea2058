"""The configuration of one training run (:class:`TrainConfig`), its validation, the documented defaults, and the
parser of ``NAME=VALUE`` options (``--hp``, ``--data-option``) that ``train``, ``bench`` and ``sweep`` share.

Validation happens here, once, before any work: :meth:`TrainConfig.resolved` checks every field (names of the
regularizer, data set and its options, backbone, augmentation, device; numbers; the regularizer's
hyper-parameters against ``dim``, by a call on shape-only "meta" tensors), and :func:`check_outputs` the output
paths. Both raise :class:`TrainInputError`, whose message is the one line ``sslbench train`` prints before its
exit status 2."""

from __future__ import annotations

import ast
import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from sslbench import regularizers
from sslbench.records.constants import DEFAULT_PREDICTOR_HIDDEN

KIND = "train"
#: regularizers whose online branch ends in a learned predictor
PREDICTOR_REGULARIZERS = ("byol",)
#: the EMA decay of the target network for the asymmetric regularizers when ``ema_tau`` is None (the CIFAR
#: configs of fmi-basel/implicit-var-reg: τ_base 0.99 → 1.0)
DEFAULT_EMA_TAU = 0.99
OPTIMIZERS = ("lars", "sgd", "adamw")
#: learning rate and weight decay when the config leaves them None
DEFAULT_LR = {"lars": 3.0, "sgd": 0.1, "adamw": 2e-3}
#: exceptions to DEFAULT_LR, per (optimizer, regularizer). VICReg's loss (coefficients 25/25/1) with SGD at 0.1
#: sits at the edge of stability for the small convnet: the default run reached 84.99 % on one machine and
#: diverged at step 127 (lr 0.054, mid warm-up) on another, and 5 of 8 short sweep runs at 0.1 diverged; at 0.03
#: none did (results/sweeps/README.md). With AdamW, VICReg keeps the 1e-3 that the earlier optimiser sweep measured
#: stable (84.4 % at 10 epochs, train.py's module docstring); 2e-3 was measured for Barlow Twins only.
DEFAULT_LR_FOR = {("sgd", "vicreg"): 0.03, ("sgd", "vicreg_fft"): 0.03, ("adamw", "vicreg"): 1e-3,
                  ("adamw", "vicreg_fft"): 1e-3}
DEFAULT_WEIGHT_DECAY = {"lars": 1e-6, "sgd": 5e-4, "adamw": 1e-4}
#: the backbone when the config leaves it None, per data set (else "auto": sslbench.training.models.auto_backbone).
#: A name of its own rather than a new meaning of "auto", so that records of "auto" keep theirs.
DEFAULT_BACKBONE_FOR = {"fashion_mnist": "convnet_pool_2x2"}
#: the augmentation preset when the config leaves it None, per data set (else "auto"), named for the same reason
DEFAULT_AUGMENT_FOR = {"fashion_mnist": "mnist_strong"}
#: regularizers whose ``lambd`` defaults to 1/dim when ``hparams`` leaves it out (the Barlow Twins authors' 0.0051
#: was tuned for D = 8192; lambd ≈ 1/D is the usual choice at small D, and the one the CPU-default sweep measured)
LAMBD_ONE_OVER_DIM = ("barlow_twins",)
AMP_MODES = ("auto", "bf16", "off")
DEVICES = ("auto", "cpu", "cuda")
#: datasets larger than this stay in host memory and are copied per batch (else they are moved to the device)
MAX_DEVICE_DATA_BYTES = 4 * 2**30


class TrainInputError(ValueError):
    """A bad input to a training run (configuration, data set, checkpoint, output path); the message is one line
    naming the problem and the fix."""


# ==============================================================================================================
# Configuration
# ==============================================================================================================
@dataclass
class TrainConfig:
    """Everything a run depends on. ``None`` means "the documented automatic choice"."""

    # --- what to pretrain -------------------------------------------------------------------------------------
    regularizer: str = "barlow_twins"
    hparams: dict = field(default_factory=dict)  # passed to sslbench.regularizers.create
    dataset: str | None = None  # None: sslbench.training.data.default_dataset()
    data_root: str | None = None
    data_options: dict = field(default_factory=dict)  # extra options of load_dataset (synthetic: num_samples, ...)
    fraction: float = 1.0  # of the training split used for pretraining (and for the probe's training set)
    pretrain_split: str = "train"  # "unlabeled" for STL-10's extra images
    backbone: str | None = None  # None: DEFAULT_BACKBONE_FOR[dataset], else "auto"
    projector: str = "512"  # hidden widths "W1-W2-..." ("" for a single linear layer); the output width is dim
    dim: int = 512
    predictor_hidden: int = DEFAULT_PREDICTOR_HIDDEN  # byol's predictor; 0: none (p = z: SimSiam without its predictor when ema_tau=0)
    views: int = 2
    augment: str | None = None  # augmentation preset; None: DEFAULT_AUGMENT_FOR[dataset], else "auto"
    # --- optimisation -----------------------------------------------------------------------------------------
    # the CPU default (Fashion-MNIST on 2 cores in minutes) was chosen by the sweep in results/sweeps/cpu-default
    epochs: int = 5
    batch_size: int = 256  # global batch (over all ranks)
    optimizer: str = "adamw"
    lr: float | None = None  # peak learning rate; None: DEFAULT_LR[optimizer]
    weight_decay: float | None = None  # None: DEFAULT_WEIGHT_DECAY[optimizer]
    momentum: float = 0.9  # lars, sgd
    grad_clip: float | None = None  # clip the global gradient norm to this (None: no clipping); logged as grad_norm
    warmup_epochs: float = 1.0
    final_lr_ratio: float = 0.001  # the cosine ends at final_lr_ratio * lr
    max_steps: int | None = None  # stop (and end the schedule) after this many steps
    ema_tau: float | None = None  # asymmetric regularizers: EMA target's base decay; 0: online network, stop-grad
    # --- runtime ----------------------------------------------------------------------------------------------
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"  # auto: bf16 autocast on CUDA, float32 on the CPU
    compile: bool = False
    # --- evaluation -------------------------------------------------------------------------------------------
    eval: bool = True
    eval_init: bool = True  # also evaluate the same architecture at initialisation
    eval_every: int = 0  # epochs between kNN evaluations during training (0: none)
    knn_k: int = 200
    knn_temperature: float = 0.1
    probe_epochs: int | None = None  # None: sslbench.training.evaluate.linear_probe's default
    probe_lr: float | None = None
    eval_batch_size: int = 512
    # --- outputs ----------------------------------------------------------------------------------------------
    out: str | None = "results/train.jsonl"  # the record store (None: no record written)
    log_dir: str | None = "results/runs"  # per-run JSON-lines log (None: no log)
    log_every: int = 10
    checkpoint_dir: str | None = "results/checkpoints"  # None: no checkpoints
    checkpoint_every: int = 0  # steps between checkpoints; 0: at the end of every epoch
    resume: str | None = None  # None, "auto" (checkpoint_dir/<run id>.pt if it exists) or a checkpoint path
    progress: bool | None = None  # tqdm bar; None: when stderr is a terminal
    verbose: bool = True  # a few lines on stderr (rank 0)
    # --- the fast path (added after the fields above: positional use stays as it was) -----------------------------
    augment_backend: str = "auto"  # sslbench.training.augment.BACKENDS: auto (= torch), torch, kornia
    compile_cuda: bool = True  # torch.compile the model on CUDA even without compile=True (falls back to eager)

    def resolved(self) -> "TrainConfig":
        """A validated copy with the automatic choices filled in (dataset, backbone, augmentation, Barlow Twins'
        lambd, lr, weight decay, EMA decay).

        Raises ``ValueError`` naming the field and what it allows.
        """
        c = dataclasses.replace(self, hparams=dict(self.hparams), data_options=dict(self.data_options))
        _check(c.regularizer in regularizers.available(),
               f"regularizer={c.regularizer!r} is unknown; available: {', '.join(regularizers.available())}")
        _check(isinstance(c.hparams, dict) and all(isinstance(k, str) for k in c.hparams),
               f"hparams must be a dict of hyper-parameter names to values, got {c.hparams!r}")
        _choice("optimizer", c.optimizer, OPTIMIZERS)
        _choice("amp", c.amp, AMP_MODES)
        _check(c.device in DEVICES or c.device.startswith("cuda:"),
               f"device={c.device!r} is not allowed; choose auto, cpu, cuda or cuda:N")
        for name in ("dim", "views", "epochs", "batch_size", "log_every", "eval_batch_size", "knn_k"):
            _int(name, getattr(c, name), 1)
        _int("predictor_hidden", c.predictor_hidden, 0)
        _int("dim", c.dim, 2)
        _int("views", c.views, 2)
        for name in ("eval_every", "checkpoint_every", "seed"):
            _int(name, getattr(c, name), 0)
        if c.max_steps is not None:
            _int("max_steps", c.max_steps, 1)
        if c.probe_epochs is not None:
            _int("probe_epochs", c.probe_epochs, 1)
        _check(_real(c.fraction) and 0 < c.fraction <= 1, f"fraction={c.fraction!r} must be in (0, 1]")
        _check(_real(c.warmup_epochs) and c.warmup_epochs >= 0, f"warmup_epochs={c.warmup_epochs!r} must be >= 0")
        _check(_real(c.final_lr_ratio) and 0 <= c.final_lr_ratio <= 1,
               f"final_lr_ratio={c.final_lr_ratio!r} must be in [0, 1]")
        _check(_real(c.momentum) and 0 <= c.momentum < 1, f"momentum={c.momentum!r} must be in [0, 1)")
        _check(c.grad_clip is None or (_real(c.grad_clip) and c.grad_clip > 0),
               f"grad_clip={c.grad_clip!r} must be a number > 0 (the largest global gradient norm) or None")
        _check(_real(c.knn_temperature) and c.knn_temperature > 0,
               f"knn_temperature={c.knn_temperature!r} must be > 0")
        _check(isinstance(c.projector, str) and all(p.strip().isdigit() and int(p) > 0
                                                    for p in c.projector.split("-") if c.projector.strip()),
               f"projector={c.projector!r} must be hidden widths like '2048-2048' (or '' for one linear layer)")
        if c.lr is None:
            c.lr = DEFAULT_LR_FOR.get((c.optimizer, c.regularizer), DEFAULT_LR[c.optimizer])
        if c.weight_decay is None:
            c.weight_decay = DEFAULT_WEIGHT_DECAY[c.optimizer]
        _check(_real(c.lr) and c.lr > 0, f"lr={c.lr!r} must be > 0")
        _check(_real(c.weight_decay) and c.weight_decay >= 0, f"weight_decay={c.weight_decay!r} must be >= 0")
        if c.probe_lr is not None:
            _check(_real(c.probe_lr) and c.probe_lr > 0, f"probe_lr={c.probe_lr!r} must be > 0")
        symmetric = regularizers.get_class(c.regularizer).symmetric
        if c.ema_tau is None:
            c.ema_tau = 0.0 if symmetric else DEFAULT_EMA_TAU
        _check(_real(c.ema_tau) and 0 <= c.ema_tau < 1, f"ema_tau={c.ema_tau!r} must be in [0, 1)")
        _check(not (symmetric and c.ema_tau > 0),
               f"ema_tau={c.ema_tau} applies to the asymmetric regularizers (byol, directpred, isoloss); "
               f"{c.regularizer} is symmetric and takes one set of views: leave ema_tau unset")
        if c.dataset is None:
            from sslbench.training.data import default_dataset

            c.dataset = default_dataset()
        if c.backbone is None:
            c.backbone = DEFAULT_BACKBONE_FOR.get(c.dataset, "auto")
        if c.augment is None:
            c.augment = DEFAULT_AUGMENT_FOR.get(c.dataset, "auto")
        if c.regularizer in LAMBD_ONE_OVER_DIM and "lambd" not in c.hparams:
            c.hparams["lambd"] = 1.0 / c.dim
        _check_names(c)
        _check_regularizer_dim(c)
        return c

    def full_projector_spec(self) -> str:
        """The projector's width spec including the output width ``dim``, e.g. ``"512-128"``."""
        return f"{self.projector}-{self.dim}" if self.projector.strip() else str(self.dim)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise TrainInputError(message)


def _check_names(c: TrainConfig) -> None:
    """The data set and its options, the backbone, the augmentation preset and the device exist here."""
    import torch

    from sslbench.training.augment import BACKENDS, PRESETS
    from sslbench.training.data import DATASET_OPTIONS, DATASETS
    from sslbench.training.models import BACKBONES

    _check(c.dataset in DATASETS, f"dataset={c.dataset!r} is unknown; choose one of {', '.join(DATASETS)}")
    unknown = sorted(set(c.data_options) - DATASET_OPTIONS[c.dataset])
    _check(not unknown, f"--data-option {', '.join(unknown)}: not an option of the {c.dataset} data set; it takes: "
                        f"{', '.join(sorted(DATASET_OPTIONS[c.dataset])) or 'none'}")
    _choice("backbone", c.backbone, BACKBONES)
    _choice("augment", c.augment, PRESETS)
    _choice("augment_backend", c.augment_backend, BACKENDS)
    _check(isinstance(c.compile, bool) and isinstance(c.compile_cuda, bool),
           f"compile={c.compile!r} and compile_cuda={c.compile_cuda!r} must be True or False")
    _check(not c.device.startswith("cuda") or torch.cuda.is_available(),
           f"device={c.device!r}: CUDA is not available here (torch {torch.__version__}); use --device cpu or auto")


def _check_regularizer_dim(c: TrainConfig) -> None:
    """The hyper-parameters the regularizer checks at call time (``block_size <= dim``, ...): one call on meta
    tensors of the run's shape (no memory, no arithmetic; the global RNG is left as it was)."""
    import torch

    try:
        reg = regularizers.create(c.regularizer, **c.hparams)
    except (ValueError, TypeError) as exc:
        raise TrainInputError(f"{c.regularizer}: {exc}") from None
    z = torch.empty(c.views, min(c.batch_size, 64), c.dim, device="meta")
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            reg(z) if reg.symmetric else reg(z, z)
    except (ValueError, TypeError) as exc:
        raise TrainInputError(f"{c.regularizer} with dim={c.dim}: {exc}") from None
    except Exception:  # noqa: BLE001 - an operation meta tensors lack: left to the run itself
        pass


def _real(x) -> bool:
    return not isinstance(x, bool) and isinstance(x, (int, float)) and math.isfinite(x)


def _int(name: str, value, minimum: int) -> None:
    _check(not isinstance(value, bool) and isinstance(value, int) and value >= minimum,
           f"{name}={value!r} must be an integer >= {minimum}")


def _choice(name: str, value, choices) -> None:
    _check(value in choices, f"{name}={value!r} is not allowed; choose one of {', '.join(map(repr, choices))}")


def check_outputs(cfg: TrainConfig) -> None:
    """The record store, the log folder and the checkpoint folder can be written (folders are created), so that a
    bad path costs a second, not a finished run. Raises :class:`TrainInputError`."""
    from sslbench.records.claims import SidecarError, check_sidecar
    from sslbench.records.paths import OutputPathError, check_output_dir, check_store_path

    try:
        if cfg.out:
            check_store_path(cfg.out, "--out")
            check_sidecar(cfg.out, "--out")  # the run's claim lives there (sslbench.training.train.claim_run)
        if cfg.log_dir:
            check_output_dir(cfg.log_dir, "--log-dir")
        if cfg.checkpoint_dir:
            check_output_dir(cfg.checkpoint_dir, "--checkpoint-dir")
    except (OutputPathError, SidecarError) as exc:
        raise TrainInputError(str(exc)) from None


# ==============================================================================================================
# --hp parsing
# ==============================================================================================================
def parse_hparam(text: str, flag: str = "--hp") -> tuple[str, Any]:
    """``"NAME=VALUE"`` → ``(name, value)``. VALUE is read as a Python literal (ints, floats, ``True``/``False``
    (also ``true``/``false``), ``None``, tuples ``(1, 40, 40)`` or ``1,40,40``, quoted strings), a fraction
    ``1/128`` (→ float), or else kept as a plain string (``algorithm=gram``)."""
    if not isinstance(text, str) or "=" not in text:
        raise ValueError(f"{flag} {text!r}: write NAME=VALUE (e.g. --hp lambd=0.0078, --hp algorithm=gram, --data-option num_samples=512)")
    name, raw = (s.strip() for s in text.split("=", 1))
    if not name.isidentifier():
        raise ValueError(f"{flag} {text!r}: {name!r} is not a hyper-parameter name (write NAME=VALUE)")
    if raw == "":
        raise ValueError(f"{flag} {text!r}: the value is empty (write NAME=VALUE, e.g. {name}=0.5)")
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return name, lowered == "true"
    if lowered in ("none", "null"):
        return name, None
    parts = raw.split("/")
    if len(parts) == 2:
        try:
            return name, float(ast.literal_eval(parts[0].strip())) / float(ast.literal_eval(parts[1].strip()))
        except (ValueError, SyntaxError, ZeroDivisionError, TypeError):
            raise ValueError(f"{flag} {text!r}: {raw!r} is not a number or a fraction like 1/128") from None
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return name, raw
    if isinstance(value, list):
        value = tuple(value)
    return name, value


def parse_hparams(items, flag: str = "--hp") -> dict:
    """A list of ``NAME=VALUE`` strings → a dict; a name given twice is an error."""
    out: dict = {}
    for text in items or []:
        name, value = parse_hparam(text, flag)
        if name in out:
            raise ValueError(f"{flag} {name} is given twice ({out[name]!r} and {value!r}); keep one")
        out[name] = value
    return out
