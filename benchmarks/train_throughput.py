"""Training-step throughput, side by side in one run on one device: sslbench's loop against a peer-style loop.

* **sslbench**: the real loop, :func:`sslbench.training.train.train` on a synthetic in-memory uint8 data set
  (``dataset="synthetic"``, 3×32×32, CIFAR-shaped; the content does not change the speed), ``max_steps`` =
  warm-up + timed steps, no evaluation, no outputs. Its views come from the loop's own device augmentation
  (:func:`sslbench.training.augment.build_augment` with the ``cifar`` preset), passed through the loop's
  ``make_views`` hook only to mark where the augmentation starts and ends.
* **peer**: the same model (:func:`sslbench.training.train.build_networks`), regularizer, optimiser, batch and
  views, but fed as solo-learn's and lightly's CIFAR benchmarks feed the GPU: the same augmentation recipe per
  image on the CPU (torchvision v2, or Pillow where torchvision does not import) in ``DataLoader`` worker
  processes, pinned memory and ``non_blocking`` copies (``benchmarks/peer_loop.py``); bf16 autocast on CUDA; no
  ``torch.compile``.

Timing: one mark at each phase boundary of every step (a CUDA event on the GPU, recorded without synchronising;
``perf_counter`` on the CPU, where work is synchronous), warm-up steps excluded. Phases: **data** (the batch:
sslbench's index gather plus the loop's bookkeeping between steps; the peer's wait for the loader and its copy
to the device), **augment** (sslbench's device augmentation; the peer's runs in the workers, off the critical
path, and is reported apart as CPU ms per batch in one worker), **fwd_bwd** (forward, loss, backward) and
**optimizer** (the step, and the EMA update where there is one). The phases tile the step, so they add up to the
step time; images/s = batch / step time.

FLOPs: :class:`torch.utils.flop_counter.FlopCounterMode` over one forward + loss + backward of the model on
"meta" tensors of the step's shape (matrix products and convolutions; element-wise work, the optimiser and the
augmentation are not counted; FFTs count 0). TFLOP/s = FLOPs per step / step time; the fraction of peak divides
it by a matrix-product rate measured here first: bf16 8192³ on CUDA (the loop's autocast dtype; about 790
TFLOP/s on an H200), float32 1024³ on the CPU; ``--peak-tflops`` overrides it.

Run from the repository root::

    python benchmarks/train_throughput.py                  # the full grid on CUDA (CPU: slow)
    python benchmarks/train_throughput.py --smoke          # a tiny CPU subset, seconds
    python benchmarks/train_throughput.py --backbones convnet --batches 64 --views 2 --device cpu

Each measurement becomes one ``kind="train_throughput"`` record (appended as soon as it is measured) in
``--out``; the Markdown table goes to stdout and beside the records. This file is a script, not an asv benchmark:
it defines no ``time_``/``peakmem_``/``track_`` names (``benchmarks/asv_suite/bench_throughput.py`` is the asv entry).
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python benchmarks/train_throughput.py` puts benchmarks/ first, not the root
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

KIND = "train_throughput"
LOOPS = ("sslbench", "peer")
IMAGE_SHAPE = (3, 32, 32)
PRESET = "cifar"
#: projector hidden widths and output width per backbone: solo-learn's CIFAR Barlow Twins head for the ResNet,
#: sslbench's CPU default for the small convnet
HEADS = {"resnet18_cifar": ("2048-2048", 2048), "convnet": ("512", 128), "resnet18": ("2048-2048", 2048)}
#: the phases between consecutive marks of one step (the first starts at the previous step's "end")
SSLBENCH_PHASES = (("data", "aug_start"), ("augment", "aug_end"), ("fwd_bwd", "opt_start"), ("optimizer", "end"))
PEER_PHASES = (("data", "data_end"), ("fwd_bwd", "opt_start"), ("optimizer", "end"))


@dataclass
class Case:
    """One measured configuration (both loops run it)."""

    backbone: str
    batch: int
    views: int
    regularizer: str = "barlow_twins"
    optimizer: str = "lars"
    lr: float = 0.3
    warmup: int = 5
    steps: int = 20
    workers: int = 1  # the peer loader's worker processes
    num_images: int = 4096
    compile: bool | None = None  # sslbench's loop: None leaves TrainConfig's default

    def train_config(self, device: torch.device, **overrides):
        """The :class:`TrainConfig` of this case: synthetic data, no evaluation, no outputs."""
        from sslbench.training.train import TrainConfig

        projector, dim = HEADS.get(self.backbone, HEADS["resnet18_cifar"])
        steps_per_epoch = max(1, self.num_images // self.batch)
        kw = dict(regularizer=self.regularizer, dataset="synthetic", backbone=self.backbone,
                  data_options={"num_samples": self.num_images, "channels": IMAGE_SHAPE[0],
                                "height": IMAGE_SHAPE[1], "width": IMAGE_SHAPE[2]},
                  projector=projector, dim=dim, views=self.views, batch_size=self.batch, augment=PRESET,
                  optimizer=self.optimizer, lr=self.lr, warmup_epochs=0.0,
                  epochs=-(-(self.warmup + self.steps) // steps_per_epoch), max_steps=self.warmup + self.steps,
                  device=str(device), eval=False, out=None, log_dir=None, checkpoint_dir=None, progress=False,
                  verbose=False)
        if self.compile is not None:  # compile_cuda too: on CUDA the loop compiles unless both are off
            kw["compile"] = kw["compile_cuda"] = self.compile
        kw.update(overrides)
        return TrainConfig(**kw)


class LoopStopped(RuntimeError):
    """The loop ended without finishing its steps (diverged, out of memory, ...); ``status`` is the record's."""

    def __init__(self, status: str, message: str | None):
        super().__init__(message or status)
        self.status = status


# ==============================================================================================================
# Clocks, FLOPs, peak
# ==============================================================================================================
class PhaseClock:
    """Marks on the device's timeline: CUDA events (no synchronisation) on the GPU, ``perf_counter`` on the CPU."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.device = device

    def mark(self):
        if not self.cuda:
            return time.perf_counter()
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    def ms(self, a, b) -> float:
        return a.elapsed_time(b) if self.cuda else (b - a) * 1e3

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)


def phase_times(marks: list[dict], warmup: int, phases, clock: PhaseClock) -> dict:
    """Mean ms per timed step of each phase and of the whole step; the steps before ``warmup`` are left out.

    A boundary missing from a step (a hook that did not fire) merges that phase into the next one; a phase whose
    boundary is missing from every timed step is None."""
    if len(marks) <= warmup or warmup < 1:
        raise ValueError(f"need more than warmup={warmup} (>= 1) marked steps, got {len(marks)}")
    clock.sync()
    timed = len(marks) - warmup
    out = {f"{name}_ms": 0.0 for name, _ in phases}
    seen = set()
    prev = marks[warmup - 1]["end"]
    for m in marks[warmup:]:
        for name, key in phases:
            if m.get(key) is not None:
                out[f"{name}_ms"] += clock.ms(prev, m[key]) / timed
                prev = m[key]
                seen.add(name)
    out.update({f"{name}_ms": None for name, _ in phases if name not in seen})
    out["step_ms"] = clock.ms(marks[warmup - 1]["end"], marks[-1]["end"]) / timed
    return out


def count_flops(cfg) -> int:
    """FLOPs of one forward + loss + backward of ``cfg``'s model on its batch of views (meta tensors)."""
    from torch.utils.flop_counter import FlopCounterMode

    from sslbench import regularizers
    from sslbench.training.models import Projector, build_backbone
    from sslbench.training.train import SSLModel

    with torch.device("meta"):
        backbone = build_backbone(cfg.backbone, IMAGE_SHAPE[0], IMAGE_SHAPE[1])
        model = SSLModel(backbone, Projector(backbone.out_dim, cfg.full_projector_spec()))
    reg = regularizers.create(cfg.regularizer, **cfg.hparams)
    views = torch.empty(cfg.views, cfg.batch_size, *IMAGE_SHAPE, device="meta")
    with FlopCounterMode(display=False) as counter:
        z, _ = model(views)
        out = reg(z) if reg.symmetric else reg(z, z.detach())
        out.loss.backward()
    return int(counter.get_total_flops())


def matmul_tflops(device: torch.device) -> tuple[float, str]:
    """A matrix-product rate measured on ``device`` (the peak to quote a fraction against) and what it is."""
    cuda = device.type == "cuda"
    n, dtype, reps = (8192, torch.bfloat16, 10) if cuda else (1024, torch.float32, 3)
    g = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, dtype=dtype, generator=g)
    b = torch.randn(n, n, device=device, dtype=dtype, generator=g)
    clock = PhaseClock(device)
    for _ in range(3):
        a @ b
    clock.sync()
    start = clock.mark()
    for _ in range(reps):
        a @ b
    end = clock.mark()
    clock.sync()
    seconds = clock.ms(start, end) / 1e3 / reps
    return 2 * n**3 / seconds / 1e12, f"measured {str(dtype).removeprefix('torch.')} {n}^3 matmul"


# ==============================================================================================================
# The two loops
# ==============================================================================================================
def run_sslbench(case: Case, device: torch.device) -> dict:
    """sslbench's loop (``train``) on the case; its phase times and what it ran with."""
    from sslbench.training.augment import build_augment
    from sslbench.training.train import train

    cfg = case.train_config(device)
    clock, marks, current, hooks = PhaseClock(device), [], {}, []
    augment = build_augment(IMAGE_SHAPE, PRESET).to(device)

    def make_views(images, views):
        current["aug_start"] = clock.mark()
        out = augment(images, views)
        current["aug_end"] = clock.mark()
        return out

    def on_step(info) -> None:
        if not hooks:  # the optimiser exists from here on: mark the start of its step
            hooks.append(info.optimizer.register_step_pre_hook(
                lambda *_: current.__setitem__("opt_start", clock.mark())))
        current["end"] = clock.mark()
        marks.append(dict(current))
        current.clear()

    try:
        record = train(cfg, make_views=make_views, on_step=on_step)
    finally:
        for h in hooks:
            h.remove()
    if record["status"] != "ok":
        raise LoopStopped(record["status"], record.get("message"))
    return {**phase_times(marks, max(case.warmup, 2), SSLBENCH_PHASES, clock),
            "_case": {"compile": record["extra"].get("compiled"), "amp": record["case"].get("amp"), "augment": PRESET}}


def run_peer(case: Case, device: torch.device) -> dict:
    """The peer-style loop on the case; its phase times, the workers' augmentation time and what it ran with."""
    from sslbench import regularizers
    from sslbench.training.augment import preset_config
    from sslbench.training.data import load_dataset
    from sslbench.training.optim import build_optimizer
    from sslbench.training.train import build_networks

    from benchmarks.peer_loop import build_loader, endless

    cfg = case.train_config(device, compile=False).resolved()
    reg = regularizers.create(cfg.regularizer, **cfg.hparams).to(device)
    if not reg.symmetric:
        raise ValueError(f"the peer loop measures symmetric regularizers; {cfg.regularizer} is not one")
    images = load_dataset("synthetic", "train", **cfg.data_options).images
    loader, library = build_loader(images, case.views, case.batch, case.workers, device.type == "cuda",
                                   preset_config(PRESET, IMAGE_SHAPE))
    model, _, net, _ = build_networks(cfg, IMAGE_SHAPE, 1, device)
    optimizer = build_optimizer(model, cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.momentum)
    amp = device.type == "cuda"
    clock, marks, worker_s = PhaseClock(device), [], []
    batches = endless(loader)
    try:
        for _ in range(case.warmup + case.steps):
            views, seconds = next(batches)
            views = views.to(device, non_blocking=True)
            m = {"data_end": clock.mark()}
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                z, _ = net(views)
            out = reg(z)
            optimizer.zero_grad(set_to_none=True)
            out.loss.backward()
            m["opt_start"] = clock.mark()
            optimizer.step()
            m["end"] = clock.mark()
            marks.append(m)
            worker_s.append(seconds)
    finally:
        batches.close()
    timed = worker_s[case.warmup:]
    return {**phase_times(marks, case.warmup, PEER_PHASES, clock), "augment_ms": None,
            "worker_augment_ms": 1e3 * sum(timed) / max(len(timed), 1),
            "_case": {"workers": case.workers, "amp": "bf16" if amp else "off", "augment": f"{PRESET} ({library})"}}


RUNNERS = {"sslbench": run_sslbench, "peer": run_peer}


# ==============================================================================================================
# One measurement → one record
# ==============================================================================================================
def measure(case: Case, loop: str, device: torch.device, *, env: dict, peak: tuple[float | None, str],
            flops: int | None) -> dict:
    """Run ``loop`` on ``case`` and return its record (status ``oom``/``error``/... when it did not finish)."""
    from sslbench.execution.measure import is_oom_error
    from sslbench.records import make_record

    cfg = case.train_config(device)
    case_dict = {"loop": loop, "backbone": case.backbone, "batch": case.batch, "views": case.views,
                 "image_shape": list(IMAGE_SHAPE), "regularizer": case.regularizer,
                 "projector": cfg.full_projector_spec(), "optimizer": case.optimizer, "device": device.type}
    status, message, metrics = "ok", None, {}
    try:
        result = RUNNERS[loop](case, device)
        case_dict.update(result.pop("_case"))
        metrics = derived_metrics(result, case, flops, peak[0])
    except LoopStopped as exc:
        status, message = exc.status, str(exc)
    except Exception as exc:  # noqa: BLE001 - a result: recorded, and the next measurement runs
        status = "oom" if is_oom_error(exc) else "error"
        message = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    finally:
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    extra = {"warmup_steps": case.warmup, "timed_steps": case.steps, "num_images": case.num_images,
             "peak_source": peak[1], "device_name": env.get("device_name")}
    return make_record(KIND, case_dict, metrics, status, env=env, message=message, extra=extra)


def derived_metrics(phases: dict, case: Case, flops: int | None, peak_tflops: float | None) -> dict:
    """Throughput, TFLOP/s and fraction of peak from the phase times."""
    step_s = phases["step_ms"] / 1e3
    metrics = dict(phases)
    metrics["images_per_s"] = case.batch / step_s
    metrics["view_images_per_s"] = case.batch * case.views / step_s
    metrics["flops_per_step"] = flops
    metrics["tflops"] = flops / step_s / 1e12 if flops else None
    metrics["peak_tflops"] = peak_tflops
    metrics["fraction_of_peak"] = metrics["tflops"] / peak_tflops if metrics["tflops"] and peak_tflops else None
    return metrics


# ==============================================================================================================
# Table
# ==============================================================================================================
def _fmt(value, spec: str) -> str:
    return "" if value is None else format(value, spec)


def table(records: list[dict]) -> str:
    """A Markdown table: one row per (case, loop), with the ratio sslbench / peer of images/s on sslbench's row."""
    rows = ["| backbone | B | V | loop | images/s | view-images/s | step ms | data | augment | fwd+bwd | optimizer "
            "| worker aug ms/batch | TFLOP/s | % of peak | sslbench / peer |",
            "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    ips = {(r["case"]["backbone"], r["case"]["batch"], r["case"]["views"], r["case"]["loop"]):
           r["metrics"].get("images_per_s") for r in records if r["status"] == "ok"}
    for r in records:
        c, m = r["case"], r["metrics"]
        head = f"| {c['backbone']} | {c['batch']} | {c['views']} | {c['loop']} "
        if r["status"] != "ok":
            rows.append(head + f"| {r['status']}: {(r.get('message') or '')[:80]} |" + " |" * 10)
            continue
        key = (c["backbone"], c["batch"], c["views"])
        peer = ips.get((*key, "peer"))
        ratio = f"{m['images_per_s'] / peer:.2f}×" if c["loop"] == "sslbench" and peer else ""
        pct = None if m.get("fraction_of_peak") is None else 100 * m["fraction_of_peak"]
        cells = [_fmt(m["images_per_s"], ",.0f"), _fmt(m["view_images_per_s"], ",.0f"), _fmt(m["step_ms"], ".2f"),
                 _fmt(m.get("data_ms"), ".2f"),
                 "in workers" if c["loop"] == "peer" else _fmt(m.get("augment_ms"), ".2f"),
                 _fmt(m.get("fwd_bwd_ms"), ".2f"), _fmt(m.get("optimizer_ms"), ".2f"),
                 _fmt(m.get("worker_augment_ms"), ".1f"), _fmt(m.get("tflops"), ".2f"), _fmt(pct, ".1f"), ratio]
        rows.append(head + "| " + " | ".join(cells) + " |")
    return "\n".join(rows)


# ==============================================================================================================
# Command line
# ==============================================================================================================
SMOKE = dict(backbones=["convnet"], batches=[64], views=[2], warmup=2, steps=3, workers=1, num_images=256)


def build_parser() -> argparse.ArgumentParser:
    from benchmarks.peer_loop import default_workers

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:N")
    p.add_argument("--backbones", nargs="+", default=["resnet18_cifar", "convnet"], choices=list(HEADS))
    p.add_argument("--batches", nargs="+", type=int, default=[512, 256])
    p.add_argument("--views", nargs="+", type=int, default=[2, 4])
    p.add_argument("--loops", nargs="+", default=list(LOOPS), choices=LOOPS)
    p.add_argument("--regularizer", default="barlow_twins", help="a symmetric regularizer (the peer loop's loss)")
    p.add_argument("--optimizer", default="lars")
    p.add_argument("--lr", type=float, default=0.3)
    p.add_argument("--warmup", type=int, default=8, help="steps left out of the timing (>= 2)")
    p.add_argument("--steps", type=int, default=30, help="timed steps per measurement")
    p.add_argument("--workers", type=int, default=default_workers(), help="the peer loader's worker processes")
    p.add_argument("--num-images", type=int, default=16384, help="synthetic images in the data set")
    p.add_argument("--compile", choices=("default", "on", "off"), default="default",
                   help="sslbench's loop: torch.compile on/off (default: TrainConfig's default)")
    p.add_argument("--peak-tflops", type=float, default=None, help="the peak to quote (default: measured here)")
    p.add_argument("--time-budget-s", type=float, default=None,
                   help="start no new measurement after this many seconds (the rest is listed as not run)")
    p.add_argument("--out", default=None, help="records (JSON lines); default results/throughput/<device>-<time>.jsonl")
    p.add_argument("--md", default=None, help="the Markdown table (default: beside --out)")
    p.add_argument("--smoke", "--quick", action="store_true",
                   help="a tiny CPU subset: convnet, batch 64, V=2, 2+3 steps, 1 worker, 256 images")
    return p


def cases_of(args) -> list[Case]:
    compile_flag = {"default": None, "on": True, "off": False}[args.compile]
    return [Case(backbone=b, batch=n, views=v, regularizer=args.regularizer, optimizer=args.optimizer, lr=args.lr,
                 warmup=max(args.warmup, 2), steps=args.steps, workers=args.workers, num_images=args.num_images,
                 compile=compile_flag)
            for b in args.backbones for n in args.batches for v in args.views]


def _check_args(args) -> str | None:
    if args.steps < 1 or args.warmup < 0 or args.workers < 0 or min(args.batches) < 2 or min(args.views) < 2:
        return "--steps must be >= 1, --warmup >= 0, --workers >= 0, every --batches >= 2 and --views >= 2"
    if args.num_images < max(args.batches):
        return f"--num-images {args.num_images} is smaller than the largest batch {max(args.batches)}; raise it"
    from sslbench import regularizers

    try:
        cls = regularizers.get_class(args.regularizer)  # a built-in, an entry point or package.module:Class
    except ValueError as exc:
        return f"--regularizer {args.regularizer!r}: {exc}"
    if not getattr(cls, "symmetric", True):
        return f"--regularizer {args.regularizer!r}: choose a symmetric regularizer (barlow_twins, vicreg, ...)"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.smoke:  # the smoke sizes become the defaults; options given explicitly still win
        parser.set_defaults(**SMOKE, device="cpu")
        args = parser.parse_args(argv)
    if (problem := _check_args(args)) is not None:
        print(f"train_throughput: error: {problem}", file=sys.stderr)
        return 2
    from sslbench.execution.bench import resolve_device
    from sslbench.execution.measure import environment
    from sslbench.execution.sweep import device_slug
    from sslbench.records import append_record

    device = torch.device(resolve_device(args.device))
    env = environment()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(args.out or ROOT / "results" / "throughput" / f"{device_slug(str(device))}-{stamp}.jsonl")
    md = Path(args.md) if args.md else out.with_suffix(".md")
    peak = (args.peak_tflops, "--peak-tflops") if args.peak_tflops else matmul_tflops(device)
    print(f"train_throughput on {env.get('device_name') or device} ({device}), torch {torch.__version__}; "
          f"peak {peak[0]:.3g} TFLOP/s ({peak[1]}); records -> {out}", flush=True)
    start, records, skipped, why = time.perf_counter(), [], [], f"--time-budget-s {args.time_budget_s}"
    for case in cases_of(args):
        for loop in args.loops:
            if skipped or (args.time_budget_s is not None and time.perf_counter() - start > args.time_budget_s):
                skipped.append(f"{case.backbone} B={case.batch} V={case.views} {loop}")
                continue
            try:
                record = measure(case, loop, device, env=env, peak=peak,
                                 flops=count_flops(case.train_config(device).resolved()))
            except KeyboardInterrupt:  # stopped from outside: keep what was measured, write the table
                why = "interrupted"
                skipped.append(f"{case.backbone} B={case.batch} V={case.views} {loop}")
                continue
            append_record(out, record)
            records.append(record)
            print(_line(record), flush=True)
    text = report(records, skipped, why, env, device, args, argv)
    md.parent.mkdir(parents=True, exist_ok=True)
    md.write_text(text)
    print("\n" + text, flush=True)
    return 0 if records and all(r["status"] == "ok" for r in records) else 1


def _line(record: dict) -> str:
    c, m = record["case"], record["metrics"]
    head = f"  {c['loop']:<8} {c['backbone']:<14} B={c['batch']:<4} V={c['views']}"
    if record["status"] != "ok":
        return f"{head}  {record['status']}: {record.get('message')}"
    return f"{head}  {m['images_per_s']:>10,.0f} images/s  {m['step_ms']:8.2f} ms/step"


def report(records, skipped, why, env, device, args, argv) -> str:
    """The Markdown report: what ran where, the table, and what the time budget left out."""
    command = " ".join(argv if argv is not None else sys.argv[1:])
    head = (f"Training-step throughput on {env.get('device_name') or device} ({device}; torch "
            f"{env.get('torch_version')}, {env.get('threads')} threads, sslbench "
            f"{str(env.get('git_commit') or '')[:10]}"
            f"), 3×32×32 synthetic uint8 images, {args.regularizer}, {args.optimizer}, warm-up {max(args.warmup, 2)} "
            f"+ {args.steps} timed steps; `python benchmarks/train_throughput.py {command}`\n\n")
    tail = f"\n\nNot run ({why}): {', '.join(skipped)}\n" if skipped else "\n"
    return head + table(records) + tail


if __name__ == "__main__":
    sys.exit(main())
