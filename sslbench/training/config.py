"""The configuration of one training run (:class:`TrainConfig`), its validation, the documented defaults, the
command line of ``sslbench train``, and the parser of ``NAME=VALUE`` options (``--hp``, ``--data-option``) that
``train``, ``bench`` and ``sweep`` share.

Each option is defined once, as a field: :func:`option` gives the field its default and its flag, help, choices
and metavar, and :func:`add_arguments` generates ``sslbench train``'s parser from the fields (one option per field).

Validation happens here, once, before any work: :meth:`TrainConfig.resolved` checks every field (names of the
regularizer, data set and its options, backbone, augmentation, device (:mod:`sslbench.devices`); numbers; the
regularizer's hyper-parameters, by building it, and against ``dim``, by a call on shape-only "meta" tensors), and
:func:`check_outputs` the output paths. Both raise :class:`TrainInputError`, whose message is the one line
``sslbench train`` prints before its exit status 2. :meth:`TrainConfig.resolved_with_regularizer` also returns the
regularizer it built, so that a run builds it once."""

from __future__ import annotations

import argparse
import ast
import copy
import dataclasses
import math
import typing
from dataclasses import dataclass, field
from typing import Any

from sslbench import devices, regularizers
from sslbench.records.constants import DEFAULT_LR, DEFAULT_PREDICTOR_HIDDEN

KIND = "train"


def needs_predictor(spec: str) -> bool:
    """Whether the regularizer ``spec``'s online branch ends in a learned predictor (its class's
    ``needs_predictor``; a plugin may set it too)."""
    return bool(getattr(regularizers.get_class(spec), "needs_predictor", False))


def default_lr_for() -> dict[tuple[str, str], float]:
    """The exceptions to :data:`DEFAULT_LR` per (optimizer, regularizer), from the built-ins' ``default_lr``."""
    return {(opt, name): lr for name in regularizers.where("default_lr")
            for opt, lr in regularizers.get_class(name).default_lr.items()}


#: regularizers whose online branch ends in a learned predictor (derived from the registry: ``needs_predictor``)
PREDICTOR_REGULARIZERS = tuple(regularizers.where("needs_predictor"))
#: the EMA decay of the target network for the asymmetric regularizers when ``ema_tau`` is None (the CIFAR
#: configs of fmi-basel/implicit-var-reg: τ_base 0.99 → 1.0)
DEFAULT_EMA_TAU = 0.99
OPTIMIZERS = ("lars", "sgd", "adamw")
#: learning rate and weight decay when the config leaves them None
#: (DEFAULT_LR, imported above from sslbench.records.constants: {"lars": 3.0, "sgd": 0.1, "adamw": 2e-3})
#: exceptions to DEFAULT_LR, per (optimizer, regularizer). VICReg's loss (coefficients 25/25/1) with SGD at 0.1
#: sits at the edge of stability for the small convnet: the default run reached 84.99 % on one machine and
#: diverged at step 127 (lr 0.054, mid warm-up) on another, and 5 of 8 short sweep runs at 0.1 diverged; at 0.03
#: none did (results/sweeps/README.md). With AdamW, VICReg keeps the 1e-3 that the earlier optimiser sweep measured
#: stable (84.4 % at 10 epochs, train.py's module docstring); 2e-3 was measured for Barlow Twins only.
#: (derived from the registry: each class's ``default_lr``; :func:`default_lr_for`)
DEFAULT_LR_FOR = default_lr_for()
DEFAULT_WEIGHT_DECAY = {"lars": 1e-6, "sgd": 5e-4, "adamw": 1e-4}
#: the backbone when the config leaves it None, per data set (else "auto": sslbench.training.models.auto_backbone).
#: A name of its own rather than a new meaning of "auto", so that records of "auto" keep theirs.
DEFAULT_BACKBONE_FOR = {"fashion_mnist": "convnet_pool_2x2"}
#: the augmentation preset when the config leaves it None, per data set (else "auto"), named for the same reason
DEFAULT_AUGMENT_FOR = {"fashion_mnist": "mnist_strong"}
#: regularizers whose ``lambd`` defaults to 1/dim when ``hparams`` leaves it out (the Barlow Twins authors' 0.0051
#: was tuned for D = 8192; lambd ≈ 1/D is the usual choice at small D, and the one the CPU-default sweep measured)
#: (derived from the registry: ``lambd_one_over_dim``)
LAMBD_ONE_OVER_DIM = tuple(regularizers.where("lambd_one_over_dim"))
AMP_MODES = ("auto", "bf16", "off")
DEVICES = devices.NAMES  # and cuda:N (sslbench.devices)
#: datasets larger than this stay in host memory and are copied per batch (else they are moved to the device)
MAX_DEVICE_DATA_BYTES = 4 * 2**30


class TrainInputError(ValueError):
    """A bad input to a training run (configuration, data set, checkpoint, output path); the message is one line
    naming the problem and the fix."""


def _none_or_str(text: str) -> str | None:
    """``--out none`` (also ``off`` or ``''``) → None: no store, log or checkpoints."""
    return None if text.lower() in ("", "none", "off") else text


def option(default=dataclasses.MISSING, *, group: str, help: str | None = None, flags: tuple[str, ...] = (),
           default_factory=dataclasses.MISSING, **argparse_kw) -> Any:
    """A :class:`TrainConfig` field together with its command-line option: ``sslbench train``'s parser is generated
    from these (:func:`add_arguments`), so a field is written once. ``group`` is the ``--help`` section; ``flags``
    the option strings (default ``--field-name``); ``help`` a string or a callable giving one when the parser is
    built; the other keywords go to ``argparse.add_argument`` (``choices``, ``metavar``, ``type``, ``action``,
    ``nargs``, ``const``). Without ``type``, the field's annotation gives it (int, float; str otherwise)."""
    metadata = {"group": group, "help": help, "flags": flags, "argparse": argparse_kw}
    if default_factory is not dataclasses.MISSING:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


_WHAT, _OPT, _RUNTIME, _EVAL, _OUT = "what to pretrain", "optimisation", "runtime", "evaluation", "outputs"


# ==============================================================================================================
# Configuration
# ==============================================================================================================
@dataclass
class TrainConfig:
    """Everything a run depends on, each field with its ``sslbench train`` option (:func:`option`). ``None``
    means "the documented automatic choice"."""

    # --- what to pretrain -------------------------------------------------------------------------------------
    # (no choices: a name is checked by resolved() against the registry, which also takes specs of other packages)
    regularizer: str = option("barlow_twins", group=_WHAT, metavar="SPEC",
                              help=lambda: f"a built-in ({', '.join(regularizers.available())}), a plugin's "
                                           "entry-point name or package.module:Class (`sslbench regularizers` "
                                           "lists them)")
    hparams: dict = option(  # passed to sslbench.regularizers.create
        default_factory=dict, group=_WHAT, flags=("--hp", "--hparam"), metavar="NAME=VALUE",
        help="a regularizer hyper-parameter, repeatable: --hp lambd=0.0078 --hp algorithm=gram "
             "(ints, floats, 1/128, true/false, none, tuples 1,40,40, strings)")
    dataset: str | None = option(  # None: sslbench.training.data.default_dataset()
        None, group=_WHAT, help="fashion_mnist, digits, cifar10, cifar100, stl10, folder, synthetic (default: "
                                "fashion_mnist if found, else digits)")
    data_root: str | None = option(None, group=_WHAT)
    data_options: dict = option(  # extra options of load_dataset (synthetic: num_samples, ...)
        default_factory=dict, group=_WHAT, flags=("--data-option",), metavar="NAME=VALUE",
        help="an option of the data set, repeatable (synthetic: num_samples, channels, height, width, "
             "num_classes, data_seed; folder: image_size)")
    fraction: float = option(  # of the training split used for pretraining (and for the probe's training set)
        1.0, group=_WHAT, help="fraction of the training split")
    pretrain_split: str = option(  # "unlabeled" for STL-10's extra images
        "train", group=_WHAT, help="train (default) or unlabeled (STL-10)")
    backbone: str | None = option(  # None: DEFAULT_BACKBONE_FOR[dataset], else "auto"
        None, group=_WHAT, help="auto, convnet, convnet_pool, convnet_pool_2x2, resnet18_cifar, resnet18 (default: "
                                "per data set, convnet_pool_2x2 on Fashion-MNIST, else auto)")
    projector: str = option(  # hidden widths "W1-W2-..." ("" for a single linear layer); the output width is dim
        "512", group=_WHAT, help="hidden widths of the projector, e.g. 2048-2048 ('' for one linear layer)")
    dim: int = option(512, group=_WHAT, help="projector output width D")
    predictor_hidden: int = option(  # byol's predictor; 0: none (p = z: SimSiam without its predictor when ema_tau=0)
        DEFAULT_PREDICTOR_HIDDEN, group=_WHAT,
        help="byol's predictor width (0: no predictor; with --ema-tau 0 that is SimSiam without its predictor, "
             "which collapses)")
    views: int = option(2, group=_WHAT)
    augment: str | None = option(  # augmentation preset; None: DEFAULT_AUGMENT_FOR[dataset], else "auto"
        None, group=_WHAT, help="augmentation preset")
    # --- optimisation -----------------------------------------------------------------------------------------
    # the CPU default (Fashion-MNIST on 2 cores in minutes) was chosen by the sweep in results/sweeps/cpu-default
    epochs: int = option(5, group=_OPT)
    batch_size: int = option(256, group=_OPT, help="global batch size")  # global batch (over all ranks)
    optimizer: str = option("adamw", group=_OPT, choices=OPTIMIZERS)
    lr: float | None = option(  # peak learning rate; None: DEFAULT_LR[optimizer]
        None, group=_OPT,
        help="peak learning rate (default: " + ", ".join(f"{k} {v}" for k, v in DEFAULT_LR.items()) + "; "
             + ", ".join(f"{o} {r} {v}" for (o, r), v in DEFAULT_LR_FOR.items()) + ")")
    weight_decay: float | None = option(  # None: DEFAULT_WEIGHT_DECAY[optimizer]
        None, group=_OPT, help="default: " + ", ".join(f"{k} {v}" for k, v in DEFAULT_WEIGHT_DECAY.items()))
    momentum: float = option(0.9, group=_OPT)  # lars, sgd
    grad_clip: float | None = option(  # clip the global gradient norm to this (None: no clipping); logged as grad_norm
        None, group=_OPT, metavar="NORM",
        help="clip the global gradient norm to NORM (default: no clipping); the step log gets grad_norm")
    warmup_epochs: float = option(1.0, group=_OPT)
    final_lr_ratio: float = option(0.001, group=_OPT)  # the cosine ends at final_lr_ratio * lr
    max_steps: int | None = option(None, group=_OPT)  # stop (and end the schedule) after this many steps
    ema_tau: float | None = option(  # asymmetric regularizers: EMA target's base decay; 0: online network, stop-grad
        None, group=_OPT, help=f"byol/directpred/isoloss: EMA target decay (default {DEFAULT_EMA_TAU}; 0: the "
                               "online network under stop-gradient is the target)")
    # --- runtime ----------------------------------------------------------------------------------------------
    seed: int = option(0, group=_RUNTIME)
    device: str = option("auto", group=_RUNTIME, help=devices.HELP)  # sslbench.devices: the rules
    amp: str = option(  # auto: bf16 autocast on CUDA, float32 on the CPU
        "auto", group=_RUNTIME, nargs="?", const="bf16", choices=AMP_MODES,
        help="auto (bf16 autocast on CUDA, float32 on the CPU), bf16, off; --amp alone means bf16")
    compile: bool = option(False, group=_RUNTIME, action="store_true",
                           help="torch.compile the model here too (on CUDA it is compiled unless --no-compile-cuda)")
    # --- evaluation -------------------------------------------------------------------------------------------
    eval: bool = option(True, group=_EVAL, flags=("--no-eval",), action="store_false",
                        help="skip the linear probe and kNN")
    eval_init: bool = option(  # also evaluate the same architecture at initialisation
        True, group=_EVAL, flags=("--no-eval-init",), action="store_false",
        help="skip the evaluation of the network at initialisation")
    eval_every: int = option(  # epochs between kNN evaluations during training (0: none)
        0, group=_EVAL, help="epochs between kNN evaluations")
    knn_k: int = option(200, group=_EVAL)
    knn_temperature: float = option(0.1, group=_EVAL, help="temperature of the kNN classifier's weights")
    probe_epochs: int | None = option(  # None: sslbench.training.evaluate.linear_probe's default
        None, group=_EVAL)
    probe_lr: float | None = option(None, group=_EVAL)
    eval_batch_size: int = option(512, group=_EVAL)
    # --- outputs ----------------------------------------------------------------------------------------------
    out: str | None = option(  # the record store (None: no record written)
        "results/train.jsonl", group=_OUT, type=_none_or_str, help="record store (JSON lines; 'none' for none)")
    log_dir: str | None = option(  # per-run JSON-lines log (None: no log)
        "results/runs", group=_OUT, type=_none_or_str, help="per-run logs ('none' for none)")
    log_every: int = option(10, group=_OUT, help="steps between log lines")
    checkpoint_dir: str | None = option(  # None: no checkpoints
        "results/checkpoints", group=_OUT, type=_none_or_str, help="'none' for none")
    checkpoint_every: int = option(  # steps between checkpoints; 0: at the end of every epoch
        0, group=_OUT, help="steps between checkpoints (0: every epoch)")
    resume: str | None = option(  # None, "auto" (checkpoint_dir/<run id>.pt if it exists) or a checkpoint path
        None, group=_OUT, nargs="?", const="auto", metavar="PATH",
        help="continue from a checkpoint: PATH, or alone the run's own in --checkpoint-dir")
    progress: bool | None = option(  # tqdm bar; None: when stderr is a terminal
        None, group=_OUT, action=argparse.BooleanOptionalAction,
        help="force the progress bar on (or off); default: when stderr is a terminal")
    verbose: bool = option(True, group=_OUT, flags=("--quiet",), action="store_false",  # a few lines on stderr (rank 0)
                           help="no summary lines on stderr and no JSON summary on stdout")
    # --- the fast path (added after the fields above: positional use stays as it was) -----------------------------
    augment_backend: str = option(  # sslbench.training.augment.BACKENDS: auto (= torch), torch, kornia
        "auto", group=_WHAT, choices=("auto", "torch", "kornia"),
        help="who applies the random ops: torch (batched tensor ops, the default: auto) or kornia")
    compile_cuda: bool = option(  # torch.compile the model on CUDA even without compile=True (falls back to eager)
        True, group=_RUNTIME, flags=("--no-compile-cuda",), action="store_false",
        help="do not torch.compile the model on CUDA (saves the compile time of short runs)")

    def resolved(self) -> "TrainConfig":
        """A validated copy with the automatic choices filled in (dataset, backbone, augmentation, Barlow Twins'
        lambd, lr, weight decay, EMA decay).

        Raises ``ValueError`` naming the field and what it allows.
        """
        return self.resolved_with_regularizer()[0]

    def resolved_with_regularizer(self) -> tuple["TrainConfig", "regularizers.Regularizer"]:
        """:meth:`resolved` and the regularizer built to check the hyper-parameters, which the run then uses: a
        run builds its regularizer once (a constructor may be slow, or another package's)."""
        c = dataclasses.replace(self, hparams=dict(self.hparams), data_options=dict(self.data_options))
        try:
            cls = regularizers.get_class(c.regularizer)  # a built-in name, an entry point or package.module:Class
        except regularizers.RegularizerSpecError as exc:
            text = str(exc)  # one line naming the spec (a plugin's: its source and the import error)
            if text.startswith("unknown regularizer"):  # "unknown regularizer 'x'; available: ..."
                text = f"regularizer={c.regularizer!r} is unknown; " + text.split("; ", 1)[-1]
            raise TrainInputError(text) from None
        _check(isinstance(c.hparams, dict) and all(isinstance(k, str) for k in c.hparams),
               f"hparams must be a dict of hyper-parameter names to values, got {c.hparams!r}")
        _choice("optimizer", c.optimizer, OPTIMIZERS)
        _choice("amp", c.amp, AMP_MODES)
        _check_device(c.device, available=False)
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
            c.lr = (getattr(cls, "default_lr", None) or {}).get(c.optimizer, DEFAULT_LR[c.optimizer])
        if c.weight_decay is None:
            c.weight_decay = DEFAULT_WEIGHT_DECAY[c.optimizer]
        _check(_real(c.lr) and c.lr > 0, f"lr={c.lr!r} must be > 0")
        _check(_real(c.weight_decay) and c.weight_decay >= 0, f"weight_decay={c.weight_decay!r} must be >= 0")
        if c.probe_lr is not None:
            _check(_real(c.probe_lr) and c.probe_lr > 0, f"probe_lr={c.probe_lr!r} must be > 0")
        symmetric = getattr(cls, "symmetric", True)
        if c.ema_tau is None:
            c.ema_tau = 0.0 if symmetric else DEFAULT_EMA_TAU
        _check(_real(c.ema_tau) and 0 <= c.ema_tau < 1, f"ema_tau={c.ema_tau!r} must be in [0, 1)")
        _check(not (symmetric and c.ema_tau > 0),
               f"ema_tau={c.ema_tau} applies to the asymmetric regularizers "
               f"({', '.join(n for n in regularizers.available() if n not in regularizers.where('symmetric'))}); "
               f"{c.regularizer} is symmetric and takes one set of views: leave ema_tau unset")
        if c.dataset is None:
            from sslbench.training.data import default_dataset

            c.dataset = default_dataset()
        if c.backbone is None:
            c.backbone = DEFAULT_BACKBONE_FOR.get(c.dataset, "auto")
        if c.augment is None:
            c.augment = DEFAULT_AUGMENT_FOR.get(c.dataset, "auto")
        if getattr(cls, "lambd_one_over_dim", False) and "lambd" not in c.hparams:
            c.hparams["lambd"] = 1.0 / c.dim
        _check_names(c)
        return c, _checked_regularizer(c)

    def full_projector_spec(self) -> str:
        """The projector's width spec including the output width ``dim``, e.g. ``"512-128"``."""
        return f"{self.projector}-{self.dim}" if self.projector.strip() else str(self.dim)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise TrainInputError(message)


def _check_names(c: TrainConfig) -> None:
    """The data set and its options, the backbone, the augmentation preset and the device exist here."""
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
    _check_device(c.device, available=True)


def _check_device(name: str, *, available: bool) -> None:
    """The device's name is allowed (and, ``available``, this machine has it): :mod:`sslbench.devices`' rules."""
    try:
        devices.resolve_device(name) if available else devices.check_name(name)
    except devices.DeviceError as exc:
        raise TrainInputError(str(exc)) from None


def _checked_regularizer(c: TrainConfig) -> "regularizers.Regularizer":
    """The run's regularizer, built here once (values checked by its constructor), and the hyper-parameters it
    checks at call time (``block_size <= dim``, ...): one call on meta tensors of the run's shape (no memory, no
    arithmetic; the global RNG is left as it was). The call goes to a copy, as a call may create or update state
    (DirectPred's correlation matrix) that the run's own instance must not start with."""
    import torch

    try:
        reg = regularizers.create(c.regularizer, **c.hparams)
    except (ValueError, TypeError) as exc:
        raise TrainInputError(f"{c.regularizer}: {exc}") from None
    try:
        probe = copy.deepcopy(reg)
    except Exception:  # noqa: BLE001 - a module that cannot be copied (a plugin holding a lock): left to the run
        return reg
    z = torch.empty(c.views, min(c.batch_size, 64), c.dim, device="meta")
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            probe(z) if probe.symmetric else probe(z, z)
    except (ValueError, TypeError) as exc:
        raise TrainInputError(f"{c.regularizer} with dim={c.dim}: {exc}") from None
    except Exception:  # noqa: BLE001 - an operation meta tensors lack: left to the run itself
        pass
    return reg


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


# ==============================================================================================================
# Command line: sslbench train's options, generated from TrainConfig's fields
# ==============================================================================================================
def _argparse_type(hint) -> type | None:
    """int or float for a field annotated ``int``/``float`` (or ``... | None``); None (a string) otherwise."""
    args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    return args[0] if len(args) == 1 and args[0] in (int, float) else None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``sslbench train``'s options, one per :class:`TrainConfig` field, from the fields' :func:`option` metadata:
    the flag (``--field-name`` unless ``flags`` says otherwise), the default (the field's; ``[]`` for the
    repeatable ``NAME=VALUE`` options, which :func:`config_from_args` reads into a dict), the type (the
    annotation's), the help section, help, choices and metavar."""
    hints = typing.get_type_hints(TrainConfig)
    groups: dict[str, argparse._ArgumentGroup] = {}
    fields = dataclasses.fields(TrainConfig)
    order = list(dict.fromkeys(f.metadata["group"] for f in fields))  # the sections in the order fields open them
    for f in sorted(fields, key=lambda f: order.index(f.metadata["group"])):
        meta = f.metadata
        kw = dict(meta["argparse"])
        flags = meta["flags"] or ("--" + f.name.replace("_", "-"),)
        help_text = meta["help"]() if callable(meta["help"]) else meta["help"]
        if hints[f.name] is dict:  # repeatable NAME=VALUE, parsed (and checked) by config_from_args
            kw.update(action="append", default=[])
        else:
            kw.setdefault("default", f.default)
            if "action" not in kw and "type" not in kw and _argparse_type(hints[f.name]) is not None:
                kw["type"] = _argparse_type(hints[f.name])
        if meta["group"] not in groups:
            groups[meta["group"]] = parser.add_argument_group(meta["group"])
        groups[meta["group"]].add_argument(*flags, dest=f.name, help=help_text, **kw)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The :class:`TrainConfig` of parsed command-line arguments (``--hp`` and ``--data-option`` read into dicts,
    the ``--hp`` names checked against the regularizer's); a bad value is a :class:`TrainInputError`. The values
    themselves are checked by :meth:`TrainConfig.resolved`, where the regularizer is built (once)."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if hasattr(args, f.name)}
    try:
        values["hparams"] = parse_hparams(values.get("hparams"))
        values["data_options"] = parse_hparams(values.get("data_options"), "--data-option")
        name = values.get("regularizer", TrainConfig.regularizer)
        names = regularizers.hparam_names(name)
        unknown = sorted(set(values["hparams"]) - set(names))
        _check(not unknown, f"--hp {', '.join(unknown)}: not a hyper-parameter of {name}; "
                            f"accepted: {', '.join(names)}")
    except (ValueError, TypeError) as exc:
        raise TrainInputError(str(exc)) from None
    return TrainConfig(**values)
