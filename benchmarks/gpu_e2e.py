"""The GPU accuracy benchmark in one command (``benchmarks/gpu_e2e.sh`` runs it): throughput side by side, then
ResNet-18 (CIFAR stem) pretrained with six regularizers on Fashion-MNIST for a budget in seconds each, evaluated
(linear probe, kNN) against the same network at initialisation, with the records and a Markdown table written
under ``--results``, the device named. Everything within ``--total-s`` (default 480 s: 8 minutes).

Stages, each timed and printed with the elapsed time:

0. **Checks** (a few seconds): the device (torch's properties, ``nvidia-smi``), torchvision and kornia present or
   not, the four Fashion-MNIST ``.gz`` files in ``--data`` (one clear line and exit status 2 when missing), and one
   call of the default augmentation on the device (exit status 2, naming the cause, when it cannot run there:
   e.g. a kornia-based augmentation on a machine without kornia), before any device time goes to training.
1. **Throughput** (``--throughput-s``): ``benchmarks/train_throughput.py`` in a child process, its own time budget
   given, killed if it overruns: sslbench's loop against the peer-style loop, ResNet-18 CIFAR stem and the
   small convnet, batch 512 and 256, V = 2 and 4.
2. **Pretraining**: per regularizer, one child process that first **calibrates** (the same configuration for a
   few steps, no evaluation: images/s of the loop with warm-up and compilation excluded), then trains
   ``max_steps = budget × images/s / batch`` steps (a whole cosine schedule, warm-up 10 % of it), evaluates and
   appends the loop's own ``kind="train"`` record. Fashion-MNIST is padded with 2 px of background to 1×32×32
   (the data set's ``pad`` option: the CIFAR input size, the images not resampled). The
   at-initialisation floor is evaluated once, in the first run that finishes (every run starts from the same
   initial network: same seed, same backbone), unless ``--floor each``. The budget per run is the time left,
   shared among the runs left, less the overhead measured so far (start, calibration, evaluation), or
   ``--budget-s``. A run that fails, diverges or overruns its time-out (SIGINT, then SIGKILL) is recorded with its
   status and the others still run.
3. **Table**: ``<results>/<device>-e2e.md``; records in ``<device>-e2e.jsonl`` (``kind="train"`` from the loop,
   plus one ``kind="gpu_e2e"`` per run: budget, calibrated images/s, wall time, child status) and
   ``<device>-throughput.jsonl/.md``.

``--smoke`` runs the whole pipeline on the CPU in about a minute: the small convnet, 2 % of the training images,
batch 64, budgets of a second, a tiny throughput subset. It is what ``tests/test_train_throughput.py`` runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

REGULARIZERS = ("barlow_twins", "vicreg", "barlow_twins_fft", "vicreg_fft", "sfrik", "byol")
FMNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                "t10k-labels-idx1-ubyte.gz")
#: per-regularizer settings on top of the common ones (solo-learn's CIFAR heads: 2048-2048 → 2048 for the
#: Barlow Twins / VICReg family, 4096 → 256 for BYOL as in the project's GPU studies)
#: seconds kept for the table at the end
TABLE_S = 5.0
HEADS = {"byol": {"projector": "4096", "dim": 256}}
DEFAULT_HEAD = {"projector": "2048-2048", "dim": 2048}
#: hyper-parameters other than the regularizers' defaults: solo-learn's Barlow Twins CIFAR loss scale (scale_loss 0.1)
HPARAMS = {"barlow_twins": {"scale": 0.1}, "barlow_twins_fft": {"scale": 0.1}}


@dataclass
class Profile:
    """The sizes of one mode (GPU or ``--smoke``)."""

    backbone: str
    batch: int
    fraction: float
    total_s: float
    throughput_s: float
    overhead_guess_s: float  # per run, before any run measured it: start, calibration, evaluation
    min_budget_s: float
    max_budget_s: float
    run_timeout_extra_s: float  # a run is stopped this long after its budget
    calibrate: tuple[int, int]  # warm-up and timed steps
    probe_epochs: int | None
    knn_k: int
    throughput_args: tuple[str, ...]
    head: dict | None = None  # projector and dim of every run (None: HEADS / DEFAULT_HEAD per regularizer)
    pad: int = 2  # Fashion-MNIST's 28×28 padded to 32×32 (the CIFAR input size)


GPU = Profile(backbone="resnet18_cifar", batch=512, fraction=1.0, total_s=480.0, throughput_s=100.0,
              overhead_guess_s=35.0, min_budget_s=5.0, max_budget_s=120.0, run_timeout_extra_s=150.0,
              calibrate=(10, 20), probe_epochs=None, knn_k=200,
              throughput_args=("--backbones", "resnet18_cifar", "convnet", "--batches", "512", "256", "--views", "2",
                               "4", "--warmup", "8", "--steps", "25"))
SMOKE = Profile(backbone="convnet", batch=64, fraction=0.02, total_s=100.0, throughput_s=20.0,
                overhead_guess_s=10.0, min_budget_s=0.5, max_budget_s=2.0, run_timeout_extra_s=60.0, calibrate=(2, 3),
                probe_epochs=20,
                knn_k=20, throughput_args=("--smoke",), head={"projector": "512", "dim": 128})


class InputProblem(Exception):
    """A bad input or a missing capability: one line, exit status 2."""


def say(start: float, text: str) -> None:
    print(f"[gpu_e2e {time.perf_counter() - start:6.1f} s] {text}", flush=True)


# ==============================================================================================================
# Stage 0: checks
# ==============================================================================================================
def device_report(device: torch.device) -> list[str]:
    """Lines describing the device and the libraries the run depends on."""
    lines = [f"python {sys.version.split()[0]}, torch {torch.__version__} (CUDA {torch.version.cuda}), "
             f"{os.cpu_count()} CPU cores, device {device}"]
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        lines.append(f"{p.name}: {p.total_memory / 2**30:.1f} GiB, {p.multi_processor_count} SMs, "
                     f"compute capability {p.major}.{p.minor}")
    for name in ("torchvision", "kornia"):
        try:
            module = __import__(name)
            lines.append(f"{name} {getattr(module, '__version__', '?')}")
        except Exception as exc:  # noqa: BLE001 - absent or broken: say which
            lines.append(f"{name}: not usable ({type(exc).__name__})")
    if shutil.which("nvidia-smi"):
        query = "name,driver_version,memory.total,clocks.sm,clocks.max.sm,power.limit,temperature.gpu"
        try:
            smi = subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv"], capture_output=True,
                                 text=True, timeout=20).stdout
        except (OSError, subprocess.TimeoutExpired) as exc:
            smi = f"did not answer ({type(exc).__name__})"
        lines += ["nvidia-smi: " + line for line in smi.strip().splitlines()]
    return lines


def check_data(folder: str) -> None:
    missing = [f for f in FMNIST_FILES if not (Path(folder) / f).is_file()]
    if missing:
        raise InputProblem(f"--data {folder}: missing {', '.join(missing)}; give the folder holding Fashion-MNIST's "
                           "four idx .gz files (e.g. /usr/share/datasets/fashion-mnist, or a carried copy)")


def check_augment(device: torch.device) -> None:
    """One call of the default augmentation of the benchmark's 1×32×32 images on ``device``."""
    from sslbench.training.augment import build_augment

    try:
        images = torch.randint(0, 256, (8, 1, 32, 32), dtype=torch.uint8, device=device)
        build_augment((1, 32, 32), "auto").to(device)(images, 2)
    except Exception as exc:  # noqa: BLE001 - reported in one line, before any training
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise InputProblem(f"the default augmentation cannot run on {device} here ({type(exc).__name__}: {first}); "
                           "it needs a device augmentation without kornia, or kornia installed") from None


# ==============================================================================================================
# Stage 2: one pretraining run (in its own process)
# ==============================================================================================================
def run_config(args, profile: Profile, regularizer: str, **overrides):
    """The :class:`TrainConfig` of one pretraining run of the benchmark."""
    from sslbench.training.train import TrainConfig

    head = profile.head or HEADS.get(regularizer, DEFAULT_HEAD)
    kw = dict(regularizer=regularizer, hparams=dict(HPARAMS.get(regularizer, {})), dataset="fashion_mnist",
              data_root=args.data, data_options={"pad": profile.pad} if profile.pad else {},
              fraction=args.fraction or profile.fraction,
              backbone=profile.backbone, projector=head["projector"], dim=head["dim"], views=2,
              batch_size=args.batch or profile.batch, optimizer=args.optimizer,
              lr=args.lr * (args.batch or profile.batch) / 256, weight_decay=args.weight_decay, device=args.device,
              knn_k=profile.knn_k, probe_epochs=profile.probe_epochs, checkpoint_dir=None, log_dir=None,
              out=None, progress=False, verbose=True)
    if args.pretrain_compile != "default":  # compile_cuda too: on CUDA the loop compiles unless both are off
        kw["compile"] = kw["compile_cuda"] = args.pretrain_compile == "on"
    kw.update(overrides)
    return TrainConfig(**kw)


def calibrate(cfg, warmup: int, steps: int) -> float:
    """Images/s of the loop on ``cfg`` over ``steps`` steps after ``warmup`` (compilation and warm-up excluded)."""
    from sslbench.devices import resolve_device
    from sslbench.training.train import train

    cuda = resolve_device(cfg.device).startswith("cuda")
    marks: list[float] = []

    def on_step(info) -> None:
        if info.step in (warmup, warmup + steps):
            if cuda:
                torch.cuda.synchronize()
            marks.append(time.perf_counter())

    spe = _steps_per_epoch(cfg)
    cal = dataclasses.replace(cfg, max_steps=warmup + steps, epochs=-(-(warmup + steps) // spe), eval=False,
                              out=None, verbose=False)
    record = train(cal, on_step=on_step)
    if record["status"] != "ok" or len(marks) != 2:
        raise RuntimeError(f"calibration ended with status {record['status']}: {record.get('message')}")
    return steps * cfg.batch_size / (marks[1] - marks[0])


def _steps_per_epoch(cfg) -> int:
    from sslbench.training.data import load_dataset

    n = len(load_dataset(cfg.dataset, "train", root=cfg.data_root, fraction=cfg.fraction, seed=cfg.seed).labels)
    if n < cfg.batch_size:
        raise ValueError(f"{n} training images (fraction {cfg.fraction}) are fewer than one batch of "
                         f"{cfg.batch_size}; raise --fraction or lower --batch")
    return n // cfg.batch_size


def pretrain_one(args, profile: Profile) -> dict:
    """Calibrate, then train ``args.one`` for ``args.budget_s`` seconds; the outcome (also the loop's record)."""
    from sslbench.training.train import train

    cfg = run_config(args, profile, args.one)
    ips = calibrate(cfg, *profile.calibrate)
    spe = _steps_per_epoch(cfg)
    steps = max(1, int(args.budget_s * ips / cfg.batch_size))
    full = dataclasses.replace(cfg, max_steps=steps, epochs=-(-steps // spe), warmup_epochs=0.1 * steps / spe,
                               eval_init=args.eval_init, out=str(args.records))
    print(f"gpu_e2e: {args.one}: calibrated {ips:,.0f} images/s -> {steps} steps ({steps / spe:.2f} epochs of "
          f"{spe} steps) for a {args.budget_s:.1f} s budget", flush=True)
    record = train(full)
    return {"status": record["status"], "message": record.get("message"), "train_record_id": record["id"],
            "calibrated_images_per_s": ips, "steps": steps, "epochs": steps / spe,
            "train_time_s": record["metrics"].get("train_time_s")}


# ==============================================================================================================
# The driver
# ==============================================================================================================
def _default_sigint() -> None:
    """In the child before it starts: SIGINT back to its default, which Python turns into KeyboardInterrupt (a
    command started in the background of a non-interactive shell inherits SIGINT ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_child(command: list[str], timeout_s: float, grace_s: float = 30.0) -> tuple[int | None, str]:
    """Run ``command``; past ``timeout_s`` send SIGINT (the loop stops and records), then SIGKILL. Returns
    (exit status or None when killed, how it ended)."""
    proc = subprocess.Popen(command, preexec_fn=_default_sigint)
    try:
        return proc.wait(timeout=timeout_s), "exited"
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        try:
            return proc.wait(timeout=grace_s), f"interrupted after its {timeout_s:.0f} s time-out"
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return None, f"killed after its {timeout_s:.0f} s time-out"


class Plan:
    """The time budget: what each stage may spend, from the total and what has been spent so far."""

    def __init__(self, profile: Profile, total_s: float, runs: int, fixed_budget: float | None,
                 clock=time.perf_counter):
        self.profile, self.total_s, self.runs, self.fixed = profile, total_s, runs, fixed_budget
        self.clock = clock
        self.start = clock()
        self.overheads: list[float] = []

    def elapsed(self) -> float:
        return self.clock() - self.start

    def overhead(self) -> float:
        return sum(self.overheads) / len(self.overheads) if self.overheads else self.profile.overhead_guess_s

    def budget(self, runs_left: int) -> float:
        """Seconds of training for the next run (0: no time left for one)."""
        if self.fixed is not None:
            return self.fixed
        remaining = self.total_s - TABLE_S - self.elapsed()
        if remaining - self.overhead() < self.profile.min_budget_s:
            return 0.0  # not even the shortest run fits
        share = remaining / max(runs_left, 1) - self.overhead()
        return min(max(share, self.profile.min_budget_s), self.profile.max_budget_s)

    def describe(self) -> str:
        p = self.profile
        per_run = (self.total_s - p.throughput_s - 15.0) / max(self.runs, 1)
        budget = f"{self.fixed:.0f} s fixed" if self.fixed is not None else \
            f"about {max(per_run - p.overhead_guess_s, 0):.0f} s each (re-planned before each run)"
        return (f"plan, {self.total_s:.0f} s in all: checks ~15 s | throughput <= {p.throughput_s:.0f} s | "
                f"{self.runs} pretraining runs of ~{per_run:.0f} s each: training {budget} + ~"
                f"{p.overhead_guess_s:.0f} s start, calibration and evaluation | table ~5 s")


def pretrain_all(args, profile: Profile, plan: Plan, say_) -> list[dict]:
    """Stage 2: one child per regularizer; a ``kind="gpu_e2e"`` record per run, kept whatever its outcome."""
    outcomes, floor_done = [], False
    for i, reg in enumerate(args.regularizers):
        budget = plan.budget(len(args.regularizers) - i)
        if budget <= 0:
            outcomes.append({"regularizer": reg, "status": "not run", "message": "no time left in --total-s"})
            say_(f"{reg}: not run, no time left in the {plan.total_s:.0f} s total")
            continue
        say_(f"{reg}: training budget {budget:.1f} s (overhead estimate {plan.overhead():.0f} s)")
        out = pretrain_in_child(args, profile, reg, budget, eval_init=not (floor_done and args.floor == "once"))
        floor_done = floor_done or out["status"] == "ok"
        if out.get("train_time_s") is not None:
            plan.overheads.append(out["wall_s"] - out["train_time_s"])
        record_run(args, profile, out)
        say_(f"{reg}: {out['status']} in {out['wall_s']:.0f} s wall ({out.get('message') or 'finished'})")
        outcomes.append(out)
    return outcomes


def pretrain_in_child(args, profile: Profile, reg: str, budget: float, eval_init: bool) -> dict:
    """One pretraining run in its own process (``--one``), stopped past its time-out; its outcome."""
    result_file = args.results_dir / f".{reg}-result.json"
    result_file.unlink(missing_ok=True)
    command = [sys.executable, str(Path(__file__).resolve()), *args.argv, "--one", reg, "--budget-s", f"{budget:.2f}",
               "--result-file", str(result_file), "--records", str(args.records)]
    command += ["--eval-init"] if eval_init else []
    t0 = time.perf_counter()
    code, ended = run_child(command, budget + profile.run_timeout_extra_s)
    out = json.loads(result_file.read_text()) if result_file.exists() else {}
    result_file.unlink(missing_ok=True)
    out.setdefault("status", "error" if ended == "exited" else "timeout")
    out.setdefault("message", f"the run's process {ended} with status {code}")
    out.update(regularizer=reg, budget_s=budget, wall_s=time.perf_counter() - t0)
    return out


def record_run(args, profile: Profile, out: dict) -> None:
    """The run's ``kind="gpu_e2e"`` record: budget, calibration, steps, times, status, the loop's record id."""
    from sslbench.execution.measure import environment
    from sslbench.records import append_record, make_record

    case = {"regularizer": out["regularizer"], "backbone": profile.backbone, "batch": args.batch or profile.batch,
            "dataset": "fashion_mnist", "budget_s": round(out["budget_s"], 2)}
    metrics = {k: out.get(k) for k in ("calibrated_images_per_s", "steps", "epochs", "train_time_s", "wall_s")}
    append_record(args.records, make_record("gpu_e2e", case, metrics, _status(out["status"]), env=environment(),
                                            message=out.get("message"),
                                            extra={"train_record_id": out.get("train_record_id")}))


def _status(status: str) -> str:
    from sslbench.records import STATUSES

    return status if status in STATUSES else "error"


# ==============================================================================================================
# Stage 3: the table
# ==============================================================================================================
def _pct(value) -> str:
    return "" if value is None else f"{value:.2f}"


def e2e_table(outcomes: list[dict], train_records: dict[str, dict]) -> str:
    """The accuracy table: one row per regularizer, the floor (at initialisation) on a line of its own."""
    rows = ["| regularizer | status | budget s | steps | epochs | train s | images/s | linear top-1 % | kNN top-1 % "
            "| linear − floor | kNN − floor |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    floor = next((r["metrics"] for r in train_records.values() if r["metrics"].get("init_linear_top1") is not None),
                 None)
    for o in outcomes:
        m = train_records.get(o.get("train_record_id"), {}).get("metrics", {})
        gain = [None if m.get(k) is None or floor is None else m[k] - floor[f"init_{k}"]
                for k in ("linear_top1", "knn_top1")]
        ips = m.get("images_per_s")
        rows.append(f"| {o['regularizer']} | {o['status']} | {o.get('budget_s', 0):.1f} | {o.get('steps', '')} | "
                    f"{o.get('epochs') or 0:.2f} | {m.get('train_time_s') or 0:.1f} | "
                    f"{'' if ips is None else f'{ips:,.0f}'} | {_pct(m.get('linear_top1'))} | "
                    f"{_pct(m.get('knn_top1'))} | {_pct(gain[0])} | {_pct(gain[1])} |")
    floor_line = ("At initialisation (same seed and backbone; the floor): linear "
                  f"{floor['init_linear_top1']:.2f} %, kNN {floor['init_knn_top1']:.2f} %." if floor else
                  "The floor (at initialisation) was not measured.")
    failures = [f"- {o['regularizer']}: {o['status']}: {o.get('message')}" for o in outcomes if o["status"] != "ok"]
    return "\n".join(rows) + "\n\n" + floor_line + ("\n\n" + "\n".join(failures) if failures else "") + "\n"


def _heads_text(profile: Profile) -> str:
    if profile.head:
        return f"projector {profile.head['projector']} → {profile.head['dim']}"
    return (f"projector {DEFAULT_HEAD['projector']} → {DEFAULT_HEAD['dim']} (byol {HEADS['byol']['projector']} → "
            f"{HEADS['byol']['dim']})")


def write_report(args, profile, outcomes, stages, info_lines, plan) -> Path:
    from sslbench.execution.measure import environment
    from sslbench.records import read_records

    wanted = {o.get("train_record_id") for o in outcomes}
    train_records = {r["id"]: r for r in read_records(args.records, kind="train") if r["id"] in wanted}
    env_name = environment().get("device_name") or args.device
    lines = [f"# GPU end-to-end benchmark on {env_name}" if not args.smoke else "# gpu_e2e --smoke (CPU)", "",
             f"`bash benchmarks/gpu_e2e.sh {' '.join(args.argv)}`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
             f", {plan.elapsed():.0f} s in all.", "", *[f"- {line}" for line in info_lines], "",
             f"Pretraining: {profile.backbone}, Fashion-MNIST padded to 1×{28 + 2 * profile.pad}×{28 + 2 * profile.pad} (fraction {args.fraction or profile.fraction}), "
             "batch "
             f"{args.batch or profile.batch}, V = 2, {args.optimizer} lr {args.lr} × B/256, weight decay "
             f"{args.weight_decay}, {_heads_text(profile)}, hyper-parameters {HPARAMS} (else the defaults); steps "
             "from a calibrated images/s × budget.",
             "", e2e_table(outcomes, train_records), "Stages (s): " +
             ", ".join(f"{name} {seconds:.0f}" for name, seconds in stages) + "."]
    throughput_md = args.results_dir / f"{args.slug}-throughput.md"
    if throughput_md.exists():
        lines += ["", "## Throughput", "", throughput_md.read_text()]
    md = args.results_dir / f"{args.slug}-e2e.md"
    md.write_text("\n".join(lines) + "\n")
    return md


# ==============================================================================================================
# Command line
# ==============================================================================================================
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="folder holding Fashion-MNIST's four idx .gz files")
    p.add_argument("--results", default=str(ROOT / "results" / "gpu"), help="where records and tables go")
    p.add_argument("--smoke", action="store_true", help="the whole pipeline on the CPU in about a minute")
    p.add_argument("--device", default=None, help="auto, cuda, cpu (default: cuda; cpu with --smoke)")
    p.add_argument("--total-s", type=float, default=None, help="the whole run's budget (default 480; smoke 75)")
    p.add_argument("--throughput-s", type=float, default=None, help="the throughput stage's budget (0: skip it)")
    p.add_argument("--budget-s", type=float, default=None,
                   help="training seconds per run (default: the time left shared among the runs left)")
    p.add_argument("--regularizers", nargs="+", default=list(REGULARIZERS))
    p.add_argument("--batch", type=int, default=None, help="default 512 (smoke 64)")
    p.add_argument("--fraction", type=float, default=None, help="of the training images (default 1; smoke 0.02)")
    p.add_argument("--optimizer", default="lars")
    p.add_argument("--lr", type=float, default=0.3, help="per 256 images (scaled by batch / 256)")
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--compile", choices=("default", "on", "off"), default="default",
                   help="torch.compile in the throughput stage's sslbench loop (default: the loop's own default, "
                        "compiled on CUDA)")
    p.add_argument("--pretrain-compile", choices=("default", "on", "off"), default="off",
                   help="torch.compile in the pretraining runs (default off: each run and its calibration would "
                        "compile again, which a budget of seconds per run cannot afford)")
    p.add_argument("--floor", choices=("once", "each"), default="once",
                   help="evaluate the network at initialisation in the first finished run only, or in every run")
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: one pretraining run
    p.add_argument("--eval-init", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--result-file", default=None, help=argparse.SUPPRESS)
    p.add_argument("--records", default=None, help=argparse.SUPPRESS)
    return p


def _resolve(args) -> Profile:
    profile = SMOKE if args.smoke else GPU
    overrides = {k: v for k, v in (("total_s", args.total_s), ("throughput_s", args.throughput_s)) if v is not None}
    args.device = args.device or ("cpu" if args.smoke else "cuda")
    return dataclasses.replace(profile, **overrides)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    profile = _resolve(args)
    if args.one is not None:
        return _child_main(args, profile)
    args.argv = argv
    try:
        return _driver_main(args, profile)
    except InputProblem as exc:
        print(f"gpu_e2e: error: {exc}", file=sys.stderr)
        return 2


def _child_main(args, profile: Profile) -> int:
    try:
        out = pretrain_one(args, profile)
    except Exception as exc:  # noqa: BLE001 - the driver records it and goes on
        out = {"status": "error", "message": f"{type(exc).__name__}: {exc}"}
    Path(args.result_file).write_text(json.dumps(out))
    return 0 if out["status"] == "ok" else 1


def _driver_main(args, profile: Profile) -> int:
    from sslbench.execution.sweep import device_slug

    plan = Plan(profile, profile.total_s, len(args.regularizers), args.budget_s)
    say_ = lambda text: say(plan.start, text)  # noqa: E731 - plan.start is a perf_counter reading
    from sslbench.devices import DeviceError, resolve_device

    try:
        device = torch.device(resolve_device(args.device))
    except DeviceError as exc:
        raise InputProblem(f"{exc}; or run with --smoke (CPU) or on a GPU machine") from None
    args.device = str(device)
    args.results_dir = Path(args.results)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    args.slug = device_slug(str(device))
    args.records = args.results_dir / f"{args.slug}-e2e.jsonl"
    check_data(args.data)
    info = device_report(device)
    for line in info:
        say_(line)
    check_augment(device)
    say_(plan.describe())
    stages = [("checks", plan.elapsed())]
    if profile.throughput_s > 0:
        t0 = plan.elapsed()
        say_(f"stage 1: throughput, budget {profile.throughput_s:.0f} s")
        run_child([sys.executable, str(ROOT / "benchmarks" / "train_throughput.py"), *profile.throughput_args,
                   "--device", str(device), "--compile", args.compile,
                   "--time-budget-s", f"{profile.throughput_s * 0.8:.0f}",
                   "--out", str(args.results_dir / f"{args.slug}-throughput.jsonl")],
                  profile.throughput_s + 30.0)
        stages.append(("throughput", plan.elapsed() - t0))
    t0 = plan.elapsed()
    say_(f"stage 2: pretraining {', '.join(args.regularizers)}")
    outcomes = pretrain_all(args, profile, plan, say_)
    stages.append(("pretraining", plan.elapsed() - t0))
    md = write_report(args, profile, outcomes, stages, info, plan)
    say_(f"stage 3: table written to {md}\n\n{md.read_text()}")
    return 0 if all(o["status"] == "ok" for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
