"""asv benchmarks of sslbench's regularizers, in the style of numpy's and scikit-learn's suites.

* :class:`ForwardBackward` — ``time_`` and ``peakmem_`` of one forward + backward of every registered regularizer
  over regularizer × D × N × V (on CUDA when there is one, else on the CPU).
* :class:`Algorithms` — the same step for the regularizers with a primal/dual ``algorithm`` choice
  (``cross_correlation`` O(N·D²) vs ``gram`` O(N²·D)), at shapes on both sides of the crossover.
* :class:`CudaMemory` — ``track_`` benchmarks (unit bytes) of ``max_memory_allocated``, ``max_memory_reserved``
  and NVML's device-level peak; skipped without CUDA.
* :class:`DownstreamAccuracy` — ``track_`` of the kNN and linear-probe top-1 accuracy (unit %) after a short
  pre-training run (``sslbench.training.train``) on the embedded ``digits`` data, for the regularizers whose class
  sets ``asv_accuracy`` (:func:`accuracy_names`); ``setup_cache`` runs the trainings once.
  Skipped for commits without ``sslbench.training.train`` (or the older ``sslbench.train``).

Environment variables (read at import; keep them the same for runs you compare):
``SSLBENCH_ASV_DEVICE`` (``auto`` (default), ``cpu``, ``cuda``), ``SSLBENCH_ASV_THREADS`` (torch CPU threads).

The suite needs only ``sslbench.regularizers.available`` / ``create`` / ``get_class`` from the package under
test, so that it can run against older commits too; combinations a commit cannot build are skipped
(``NotImplementedError`` in ``setup``). asv runs *this* suite against older commits, whose modules may live
elsewhere: the measurement and training modules are imported by their current path
(``sslbench.execution.measure``, ``sslbench.training.train``) with a fall-back to the older one
(``sslbench.measure``, ``sslbench.train``); see :func:`_import_first`.
"""

from __future__ import annotations

import importlib
import inspect
import os

import torch

from sslbench import regularizers

if os.environ.get("SSLBENCH_ASV_THREADS"):
    torch.set_num_threads(int(os.environ["SSLBENCH_ASV_THREADS"]))


#: where each module the suite uses lives, newest layout first (asv measures older commits with this suite)
MEASURE_MODULES = ("sslbench.execution.measure", "sslbench.measure")
TRAIN_MODULES = ("sslbench.training.train", "sslbench.train")


def _import_first(names):
    """The first of the modules ``names`` that this commit has; ImportError naming them all when none is."""
    for name in names:
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not name.startswith(exc.name):  # a module that exists but fails inside
                raise
    raise ImportError(f"none of {', '.join(names)} is in this commit")


def _device() -> str:
    """The device to measure on, decided in the benchmark's own process: nothing touches CUDA at import, because
    asv's forkserver imports this module once and forks a process per benchmark (CUDA does not survive a fork)."""
    device = os.environ.get("SSLBENCH_ASV_DEVICE", "auto")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return device


#: the fall-back for commits whose registry cannot say (no ``regularizers.where``): the list as it was then
_ACCURACY_BEFORE_WHERE = ["barlow_twins", "vicreg", "barlow_twins_fft", "sfrik"]


def accuracy_names() -> list[str]:
    """The regularizers DownstreamAccuracy trains: those whose class sets ``asv_accuracy`` (the registry decides:
    ``regularizers.where``); an older commit without that API keeps the list it had."""
    where = getattr(regularizers, "where", None)
    return list(where("asv_accuracy")) if where is not None else list(_ACCURACY_BEFORE_WHERE)


#: every built-in of the registry (sslbench's own suite; a plugin is measured in its own repository:
#: ``sslbench asv-init``, sslbench.execution.asv_suite)
NAMES = list(regularizers.available())
DIMS = [128, 512, 2048]
BATCHES = [128, 512]
VIEWS = [2, 4]


def _accepted(name: str) -> list[str]:
    cls = regularizers.get_class(name)
    return [p.name for p in inspect.signature(cls.__init__).parameters.values() if p.name != "self"]


def _with_algorithm() -> list[str]:
    """The registered regularizers with a primal/dual ``algorithm`` keyword."""
    out = []
    for name in NAMES:
        try:
            if "algorithm" in _accepted(name):
                out.append(name)
        except Exception:  # noqa: BLE001 - a module that does not import in this commit
            continue
    return out


def _build(name: str, dim: int, batch: int, views: int, device: str | None = None, **hparams):
    """The step of one case: forward + backward on random inputs; setup (this function) is not timed."""
    try:
        accepted = _accepted(name)
    except Exception as exc:  # a regularizer this commit does not have, or whose module does not import
        raise NotImplementedError(f"{name} is not available here: {exc}") from None
    unknown = set(hparams) - set(accepted)
    if unknown:
        raise NotImplementedError(f"{name} has no hyper-parameter(s) {sorted(unknown)} in this commit")
    if "dim" in accepted:
        hparams.setdefault("dim", dim)
    device = device or _device()
    reg = regularizers.create(name, **hparams).to(device)
    symmetric = getattr(type(reg), "symmetric", True)
    g = torch.Generator().manual_seed(0)
    leaves = [torch.randn(batch, dim, generator=g).to(device).requires_grad_(True) for _ in range(views)]
    targets = None if symmetric else [torch.randn(batch, dim, generator=g).to(device) for _ in range(views)]
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def step():
        for t in leaves:
            t.grad = None
        out = reg(*leaves) if symmetric else reg(leaves, targets)
        out.loss.backward()
        sync()
        return out.loss

    return step


class ForwardBackward:
    """One forward + backward of each regularizer (default hyper-parameters)."""

    params = [NAMES, DIMS, BATCHES, VIEWS]
    param_names = ["regularizer", "dim", "batch", "views"]
    timeout = 180
    # a few samples of at least 50 ms each, two rounds: a full run of the grid stays in tens of minutes on 2 cores
    sample_time = 0.05
    repeat = (3, 10, 5.0)
    rounds = 2
    warmup_time = 0.1

    def setup(self, name, dim, batch, views):
        self.step = _build(name, dim, batch, views)
        self.step()  # fails here, not inside the timing, for a case that cannot run

    def time_forward_backward(self, name, dim, batch, views):
        self.step()

    def peakmem_forward_backward(self, name, dim, batch, views):
        self.step()


class Algorithms:
    """Primal (D×D cross-correlation) vs dual (N×N Gram) form of the same loss, at shapes around the crossover."""

    # the regularizers whose class has the choice (an ``algorithm`` keyword; read from the signature, which every
    # commit has)
    params = [_with_algorithm(), ["cross_correlation", "gram"], [256, 2048], [128, 1024]]
    param_names = ["regularizer", "algorithm", "dim", "batch"]
    timeout = 180
    sample_time = 0.05
    repeat = (3, 10, 5.0)
    rounds = 2
    warmup_time = 0.1

    def setup(self, name, algorithm, dim, batch):
        self.step = _build(name, dim, batch, 2, algorithm=algorithm)  # skipped where there is no `algorithm`
        self.step()

    def time_forward_backward(self, name, algorithm, dim, batch):
        self.step()


class CudaMemory:
    """Device memory of one forward + backward after a warm-up, on CUDA (skipped without it)."""

    params = [NAMES, DIMS, BATCHES, VIEWS]
    param_names = ["regularizer", "dim", "batch", "views"]
    unit = "bytes"
    timeout = 180

    def setup(self, name, dim, batch, views):
        device = _device()
        if not (device.startswith("cuda") and torch.cuda.is_available()):
            raise NotImplementedError("CudaMemory needs a CUDA device")
        step = _build(name, dim, batch, views, device=device)
        step()
        torch.cuda.synchronize()
        self.nvml_peak = float("nan")
        sampler = None
        try:
            measure = _import_first(MEASURE_MODULES)
            read = measure.nvml_reader(torch.device(device).index or 0)
            if read is not None:
                sampler = measure.NvmlSampler(read)
        except (ImportError, AttributeError):  # a commit without the measure module or its NVML sampler
            pass
        torch.cuda.reset_peak_memory_stats()
        if sampler is not None:
            sampler.start()
        step()
        torch.cuda.synchronize()
        if sampler is not None:
            self.nvml_peak = sampler.stop()
        self.allocated = torch.cuda.max_memory_allocated()
        self.reserved = torch.cuda.max_memory_reserved()
        del step

    def teardown(self, *params):
        torch.cuda.empty_cache()

    def track_cuda_max_allocated(self, *params):
        return self.allocated

    def track_cuda_max_reserved(self, *params):
        return self.reserved

    def track_nvml_peak_used(self, *params):
        return self.nvml_peak


class DownstreamAccuracy:
    """Top-1 accuracy (%) of the kNN and linear probes on the digits test split after a short pre-training run
    (``sslbench.training.train.train``) with each regularizer. ``setup_cache`` runs the trainings once (in one process)
    and both ``track_`` benchmarks read their records."""

    params = [accuracy_names()]
    param_names = ["regularizer"]
    unit = "%"
    timeout = 900
    config = {"dataset": "digits", "epochs": 4, "batch_size": 128, "projector": "256", "dim": 64,
              "optimizer": "adamw", "eval_init": False, "probe_epochs": 50}

    def setup_cache(self):
        try:
            training = _import_first(TRAIN_MODULES)
            TrainConfig, train = training.TrainConfig, training.train
        except (ImportError, AttributeError):
            return None  # setup() skips; raising here would be reported as a failure
        outcomes = {}
        for name in self.params[0]:
            try:
                regularizers.get_class(name)
            except Exception:  # noqa: BLE001 - not in this commit
                outcomes[name] = None
                continue
            cfg = TrainConfig(regularizer=name, device=_device(), out=None, log_dir=None, checkpoint_dir=None,
                              progress=False, verbose=False, **self.config)
            try:
                rec = train(cfg)
                outcomes[name] = {"status": rec["status"], "message": rec.get("message"),
                                  "metrics": {k: rec["metrics"].get(k) for k in ("knn_top1", "linear_top1")}}
            except Exception as exc:  # noqa: BLE001 - reported by the track benchmarks
                outcomes[name] = {"status": "error", "message": f"{type(exc).__name__}: {exc}", "metrics": {}}
        return outcomes

    def setup(self, outcomes, name):
        if outcomes is None:
            raise NotImplementedError(f"none of {', '.join(TRAIN_MODULES)} is in this commit")
        if outcomes.get(name) is None:
            raise NotImplementedError(f"{name} is not in this commit")

    def _metric(self, outcomes, name, key):
        out = outcomes[name]
        if out["status"] != "ok" or out["metrics"].get(key) is None:
            raise RuntimeError(f"pre-training with {name} ended with status {out['status']}: {out['message']}")
        return float(out["metrics"][key])

    def track_knn_top1(self, outcomes, name):
        return self._metric(outcomes, name, "knn_top1")

    def track_linear_top1(self, outcomes, name):
        return self._metric(outcomes, name, "linear_top1")
