"""Projected GPU time of the claim studies' grids (``results/studies/configs/*-gpu*.toml``) from a training throughput.

For every GPU study config this reads the grid with ``sslbench sweep``'s own parser and expansion
(:func:`sslbench.execution.sweep.load_config`, :func:`~sslbench.execution.sweep.resolve_settings`,
:func:`~sslbench.execution.sweep.build_cases`), so the cases are the ones ``sslbench sweep`` would run, and
projects each case's training time on one GPU:

* **images per case** = the source images the loop trains on: ``epochs × ⌊n / B⌋ × B`` (fewer with ``max_steps``),
  ``n`` the class-balanced ``fraction`` of the pretraining split (per class ``max(1, ⌊fraction · n_c + ½⌋)``, as
  :func:`sslbench.training.data.class_balanced_subset` draws it), ``B`` the batch size. The split sizes are
  :data:`SPLIT_SIZES` (the loader holds no such constants): CIFAR-10 50 000, CIFAR-100 50 000, Fashion-MNIST 60 000,
  STL-10 ``train`` 5 000 or ``unlabeled`` 100 000 (the ``pretrain_split`` train option; one split, not both).
* **throughput**: ``--throughput FILE``, the ``kind="train_throughput"`` records of ``benchmarks/train_throughput.py``
  measured on the GPU in question (the ``sslbench`` loop's ``images_per_s``, source images per second, for the
  case's backbone and image size; the nearest batch size when the exact one was not measured, said so in the
  table), or ``--assume-images-per-s R``, printed as an ASSUMPTION in the table's header (R source images/s at
  V = 2 for every 32×32 case; there is no default, so no figure passes for a measurement).
* **model**: a V-view step costs ≈ V/2 of a 2-view step (the backbone sees V·B images), so a case at V views runs at
  ``R₂ · 2 / V`` source images/s (a measured row at the case's own V is used as it is). The loss's own cost is left
  out: the throughput of one regularizer (train_throughput's Barlow Twins) serves every regularizer.
* **GPU time of a case** = images / throughput + ``--overhead-s`` (evaluation: linear probe, kNN and the same
  network at initialisation, plus start-up and compilation; default 60 s, printed). A study's time is the sum over
  its distinct cases, one after the other on one GPU (identical cases of two configs of one study share its store
  and run once). A study fits in one GPU-hour when that sum is at most 3 600 s.

Run from the repository root::

    python benchmarks/project_studies.py --assume-images-per-s 17000        # the issue's target, as an assumption
    python benchmarks/project_studies.py --throughput results/throughput/GPU_NAME-TIME.jsonl --md out.md
    python benchmarks/project_studies.py --assume-images-per-s 17000 --per-config --recipes

``--recipes`` adds the CIFAR-10/100 and STL-10 recipes of docs/gpu-benchmarks.md; ``--per-config`` one row per
config file. Exit status: 0, 1 when some grid has no matching throughput (its row says so), 2 for bad input (one
line). This file is a script, not an asv benchmark: it defines no ``time_``/``peakmem_``/``track_`` names.
"""

from __future__ import annotations

import argparse
import math
import re
import statistics
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python benchmarks/project_studies.py` puts benchmarks/ first, not the root
    sys.path.insert(0, str(ROOT))

CONFIG_DIR = ROOT / "results" / "studies" / "configs"
#: the records of benchmarks/train_throughput.py (its KIND; not imported, so that this script loads without it)
THROUGHPUT_KIND = "train_throughput"
#: the loop of those records whose figure is sslbench's own (the other one is the peer-style loop)
THROUGHPUT_LOOP = "sslbench"
DEFAULT_OVERHEAD_S = 60.0
HOUR_S = 3600.0

#: (data set, pretraining split) -> (number of classes, images per class); None classes: one group (unlabeled)
SPLIT_SIZES: dict[tuple[str, str], tuple[int | None, int]] = {
    ("cifar10", "train"): (10, 5_000),
    ("cifar100", "train"): (100, 500),
    ("fashion_mnist", "train"): (10, 6_000),
    ("stl10", "train"): (10, 500),
    ("stl10", "unlabeled"): (None, 100_000),
}
#: (channels, height, width) of each data set's images as the loop trains on them
IMAGE_SHAPES = {"cifar10": (3, 32, 32), "cifar100": (3, 32, 32), "fashion_mnist": (1, 28, 28), "stl10": (3, 96, 96)}
#: the image shape an --assume-images-per-s figure stands for (the issue's target is a 32×32 CIFAR figure)
ASSUMED_SHAPE = (3, 32, 32)

#: the recipes of docs/gpu-benchmarks.md ("CIFAR-10/100 and STL-10 recipes"): (name, data set, pretraining split,
#: backbone, batch, views, epochs)
RECIPES = (
    ("Barlow Twins / VICReg / BYOL, CIFAR-10", "cifar10", "train", "resnet18_cifar", 256, 2, 1000),
    ("Barlow Twins / VICReg / BYOL, CIFAR-100", "cifar100", "train", "resnet18_cifar", 256, 2, 1000),
    ("Barlow Twins, STL-10 (unlabeled split)", "stl10", "unlabeled", "resnet18", 256, 2, 400),
)


class ProjectionError(ValueError):
    """Bad input: the message is the one line the command prints (exit status 2)."""


# ==============================================================================================================
# Images per case
# ==============================================================================================================
def pretrain_images(dataset: str, split: str, fraction: float) -> int:
    """Images in the class-balanced ``fraction`` of the pretraining split (the loader's rule)."""
    if (dataset, split) not in SPLIT_SIZES:
        known = ", ".join(f"{d} ({s})" for d, s in SPLIT_SIZES)
        raise ProjectionError(f"data set {dataset!r}, split {split!r}: its size is not known here; known: {known}")
    classes, per_class = SPLIT_SIZES[(dataset, split)]
    k = max(1, int(math.floor(fraction * per_class + 0.5)))
    return k * (classes or 1)


def trained_images(dataset: str, split: str, fraction: float, batch: int, epochs: int,
                   max_steps: int | None = None) -> int:
    """Source images the loop trains on: ``epochs × ⌊n / B⌋ × B`` (``max_steps`` caps the steps)."""
    steps_per_epoch = pretrain_images(dataset, split, fraction) // batch
    if steps_per_epoch < 1:
        raise ProjectionError(f"data set {dataset!r} ({split}, fraction {fraction:g}) holds fewer images than one "
                              f"batch of {batch}")
    steps = epochs * steps_per_epoch if max_steps is None else min(epochs * steps_per_epoch, max_steps)
    return steps * batch


# ==============================================================================================================
# The grids, through the sweep's own parser
# ==============================================================================================================
@dataclass
class Case:
    """One training case of a study config, with what its projection needs."""

    config: str  # the config file's stem
    case_id: str
    dataset: str
    backbone: str
    batch: int
    views: int
    epochs: int
    images: int  # source images trained on
    shape: tuple


def _cases_of_settings(settings: dict) -> list[dict]:
    """The sweep's cases of ``settings``. Without CUDA here, a CUDA grid is expanded on the CPU and each case is
    given back its CUDA device (the grid is the same; only the device check needs a GPU)."""
    from sslbench.devices import check_name, cuda_available, is_cuda
    from sslbench.execution import sweep

    devices = settings["device"]
    if cuda_available() or not any(d == "auto" or is_cuda(d) for d in devices):
        return sweep.build_cases(settings)
    names = list(dict.fromkeys("cuda" if d == "auto" else check_name(d) for d in devices))
    on_cpu = sweep.build_cases({**settings, "device": ["cpu"]})
    return [{**c, "device": dev} for c in on_cpu for dev in names]


def config_cases(path: Path) -> list[Case]:
    """The training cases of one config file, as ``sslbench sweep --config PATH`` expands them."""
    from sslbench.execution import sweep
    from sslbench.records import case_id

    try:
        config = sweep.load_config(path)
        settings = sweep.resolve_settings(argparse.Namespace(**{o.key: None for o in sweep.OPTIONS}), config)
        if settings["kind"] != "train":
            raise ProjectionError(f"{path}: kind = {settings['kind']!r}; only training grids (kind = \"train\") "
                                  "have a training time")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            raw = _cases_of_settings(settings)
    except sweep.SweepError as exc:
        raise ProjectionError(f"{path}: {exc}") from None
    out = []
    for c in raw:
        cfg = sweep.train_config({**c, "device": "cpu"}, settings).resolved()
        if cfg.dataset not in IMAGE_SHAPES:
            raise ProjectionError(f"{path}: data set {cfg.dataset!r} has no known image size here; known: "
                                  f"{', '.join(IMAGE_SHAPES)}")
        images = trained_images(cfg.dataset, cfg.pretrain_split, cfg.fraction, cfg.batch_size, cfg.epochs,
                                cfg.max_steps)
        out.append(Case(path.stem, case_id(sweep.TRAIN_KIND, c), cfg.dataset, cfg.backbone, cfg.batch_size,
                        cfg.views, cfg.epochs, images, IMAGE_SHAPES[cfg.dataset]))
    return out


_STUDY_NAME = re.compile(r"^(?P<study>.+?)-(?P<grid>gpu(?:-1h)?)(?:-.*)?$")


def study_of(path: Path) -> tuple[str, str]:
    """(study, grid) of a config file name: ``fft-gpu-exact`` → (fft, gpu), ``fft-gpu-1h-exact`` → (fft, gpu-1h);
    a name without ``-gpu`` is a study of its own."""
    m = _STUDY_NAME.match(path.stem)
    return (m["study"], m["grid"]) if m else (path.stem, "")


def default_configs() -> list[Path]:
    return sorted(CONFIG_DIR.glob("*-gpu*.toml"))


# ==============================================================================================================
# Throughput: measured (a train_throughput jsonl) or assumed
# ==============================================================================================================
@dataclass
class Rate:
    images_per_s: float  # source images per second at the case's V
    note: str  # how it was obtained


class Throughput:
    """Source images/s for a case's (backbone, image shape, batch, views)."""

    assumed: float | None = None
    source: str = ""

    def rate(self, backbone: str, shape: tuple, batch: int, views: int) -> Rate | str:
        """A :class:`Rate`, or the reason there is none (a string)."""
        raise NotImplementedError

    def header(self) -> str:
        raise NotImplementedError


class AssumedThroughput(Throughput):
    def __init__(self, images_per_s: float):
        self.assumed = images_per_s

    def rate(self, backbone, shape, batch, views):
        if tuple(shape) != ASSUMED_SHAPE:
            return (f"not projected: the assumed figure is for {'×'.join(map(str, ASSUMED_SHAPE))} images, this "
                    f"case trains on {'×'.join(map(str, shape))}")
        return Rate(self.assumed * 2 / views, f"assumed {_n(self.assumed)}/s × 2/V")

    def header(self) -> str:
        return (f"Throughput: **ASSUMPTION, not a measurement**: {_n(self.assumed)} source images/s at V = 2 "
                f"(`--assume-images-per-s {self.assumed:g}`), for every backbone and batch size of a "
                f"{'×'.join(map(str, ASSUMED_SHAPE))} case; replace it by a GPU's figure with `--throughput FILE` "
                "(the records of `benchmarks/train_throughput.py` on that GPU).")


class MeasuredThroughput(Throughput):
    def __init__(self, path: str | Path):
        from sslbench.records import read_records

        p = Path(path)
        if not p.is_file():
            raise ProjectionError(f"--throughput {path}: no such file (write one with python "
                                  "benchmarks/train_throughput.py on the GPU)")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                records = read_records(p, kind=THROUGHPUT_KIND)
            except (OSError, UnicodeDecodeError) as exc:
                raise ProjectionError(f"--throughput {path}: cannot read it ({exc})") from None
        self.rows = []
        for r in records:
            c, m = r.get("case") or {}, r.get("metrics") or {}
            ips = m.get("images_per_s")
            if (r.get("status") == "ok" and c.get("loop") == THROUGHPUT_LOOP and isinstance(ips, (int, float))
                    and math.isfinite(ips) and ips > 0 and isinstance(c.get("batch"), int)
                    and isinstance(c.get("views"), int)):
                shape = tuple(c.get("image_shape") or ())
                self.rows.append((c.get("backbone"), shape, c["batch"], c["views"], float(ips)))
        if not self.rows:
            raise ProjectionError(f"--throughput {path}: no ok kind=\"{THROUGHPUT_KIND}\" record of the "
                                  f"{THROUGHPUT_LOOP} loop in it (is it a file of benchmarks/train_throughput.py?)")
        devices = sorted({str((r.get("env") or {}).get("device_name") or (r.get("extra") or {}).get("device_name"))
                          for r in records if r.get("status") == "ok"})
        if len(devices) > 1:
            raise ProjectionError(f"--throughput {path}: records of several devices ({', '.join(devices)}); pass "
                                  "one device's file")
        self.device = devices[0] if devices else "?"
        self.source = str(path)

    def measured(self) -> str:
        return ", ".join(sorted({f"{b} {'×'.join(map(str, s))} B={n} V={v}" for b, s, n, v, _ in self.rows}))

    def rate(self, backbone, shape, batch, views):
        same = [r for r in self.rows if r[0] == backbone and r[1] == tuple(shape)]
        if not same:
            return (f"no {THROUGHPUT_LOOP} row for {backbone} at {'×'.join(map(str, shape))} in {self.source} "
                    f"(it has: {self.measured()})")
        batches = sorted({r[2] for r in same})
        near = min(batches, key=lambda n: (abs(math.log(n / batch)), -n))
        at_batch = [r for r in same if r[2] == near]
        views_here = sorted({r[3] for r in at_batch})
        v0 = views if views in views_here else min(views_here, key=lambda v: (abs(v - views), v))
        ips = statistics.median(r[4] for r in at_batch if r[3] == v0)
        n = sum(r[3] == v0 for r in at_batch)
        note = f"measured B={near}" + ("" if near == batch else f" (nearest to {batch})") + f" V={v0}"
        note += f" (median of {n})" if n > 1 else ""
        if v0 != views:
            note += f" × {v0}/V"
        return Rate(ips * v0 / views, note)

    def header(self) -> str:
        return (f"Throughput: measured, `{self.source}` ({self.device}): the {THROUGHPUT_LOOP} loop's images/s of "
                f"`benchmarks/train_throughput.py` ({self.measured()}).")


# ==============================================================================================================
# Projection
# ==============================================================================================================
@dataclass
class Row:
    """The projection of a set of cases (a study, a config, a recipe)."""

    name: str
    configs: list[str]
    cases: list[Case]
    grid: str = ""  # gpu, gpu-1h (study rows)
    seconds: list[float] = field(default_factory=list)  # per case, NaN where not projected
    notes: list[str] = field(default_factory=list)

    @property
    def total_s(self) -> float:
        return math.fsum(self.seconds) if self.seconds and all(math.isfinite(s) for s in self.seconds) else math.nan


def project(name: str, configs: list[str], cases: list[Case], throughput: Throughput, overhead_s: float) -> Row:
    row = Row(name, configs, cases)
    for c in cases:
        rate = throughput.rate(c.backbone, c.shape, c.batch, c.views)
        if isinstance(rate, str):
            row.seconds.append(math.nan)
            if rate not in row.notes:
                row.notes.append(rate)
            continue
        row.seconds.append(c.images / rate.images_per_s + overhead_s)
        if rate.note not in row.notes:
            row.notes.append(rate.note)
    return row


def study_rows(paths: list[Path], throughput: Throughput, overhead_s: float) -> tuple[list[Row], list[Row]]:
    """(one row per study grid, one row per config): a study's cases are its configs' distinct cases."""
    groups: dict[tuple[str, str], list[Path]] = {}
    for p in paths:
        groups.setdefault(study_of(p), []).append(p)
    studies, per_config = [], []
    for (study, grid), files in sorted(groups.items()):
        seen, cases = set(), []
        for f in files:
            mine = config_cases(f)
            per_config.append(project(f.stem, [f.stem], mine, throughput, overhead_s))
            for c in mine:
                if c.case_id not in seen:
                    seen.add(c.case_id)
                    cases.append(c)
        row = project(f"{study} ({grid})" if grid else study, [f.stem for f in files], cases, throughput, overhead_s)
        row.grid = grid
        studies.append(row)
    return studies, per_config


def recipe_rows(throughput: Throughput, overhead_s: float) -> list[Row]:
    rows = []
    for name, ds, split, backbone, batch, views, epochs in RECIPES:
        c = Case(name, name, ds, backbone, batch, views, epochs, trained_images(ds, split, 1.0, batch, epochs),
                 IMAGE_SHAPES[ds])
        rows.append(project(name, [], [c], throughput, overhead_s))
    return rows


# ==============================================================================================================
# Tables
# ==============================================================================================================
def duration(seconds: float) -> str:
    """``"1 h 05 min"``, ``"9.8 min"``, ``"45 s"``; ``"n/a"`` for NaN."""
    if not math.isfinite(seconds):
        return "n/a"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < HOUR_S:
        return f"{seconds / 60:.1f} min"
    h, m = divmod(int(round(seconds / 60)), 60)
    return f"{h} h {m:02d} min"


def _span(values: list, fmt) -> str:
    lo, hi = min(values), max(values)
    return fmt(lo) if lo == hi else f"{fmt(lo)}–{fmt(hi)}"


def _n(x: float) -> str:
    return f"{x:,.0f}".replace(",", " ")


def _cells(row: Row) -> list[str]:
    c = row.cases
    per_case = [s for s in row.seconds if math.isfinite(s)]
    factor = _span([x.views / 2 for x in c], lambda v: f"{v:g}")
    return [str(len(c)), _span([x.epochs for x in c], str), _span([x.images for x in c], _n), factor,
            _span(per_case, duration) if len(per_case) == len(c) else "n/a", duration(row.total_s)]


def _fits(row: Row) -> str:
    t = row.total_s
    return "n/a" if not math.isfinite(t) else ("**yes**" if t <= HOUR_S else "no")


def study_table(rows: list[Row]) -> list[str]:
    lines = ["| study (grid) | configs | cases | epochs | images per case | view factor V/2 | GPU time per case | "
             "GPU time of the study | in one GPU-hour | throughput |",
             "|---|---|---:|---:|---:|---:|---:|---:|:---:|---|"]
    for r in rows:
        cfgs = ", ".join(f"`{c}`" for c in r.configs)
        lines.append(f"| {r.name} | {cfgs} | " + " | ".join(_cells(r)) + f" | {_fits(r)} | {'; '.join(r.notes)} |")
    return lines


def totals_line(rows: list[Row]) -> str:
    """The sum of every study of each grid kind (one GPU, one study after the other)."""
    kinds: dict[str, list[Row]] = {}
    for r in rows:
        kinds.setdefault(r.grid or "other", []).append(r)
    parts = [f"{k} ({len(rs)} studies, {sum(len(r.cases) for r in rs)} cases): "
             f"{duration(math.fsum(r.total_s for r in rs))}" for k, rs in sorted(kinds.items())]
    return "All studies of a grid, one after the other on one GPU: " + "; ".join(parts) + "."


def config_table(rows: list[Row]) -> list[str]:
    lines = ["| config | cases | epochs | images per case | view factor V/2 | GPU time per case | GPU time of the "
             "config |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| `{r.name}` | " + " | ".join(_cells(r)) + " |")
    return lines


def recipe_table(rows: list[Row]) -> list[str]:
    lines = ["| recipe | epochs | images | GPU time (one run) | throughput |", "|---|---:|---:|---:|---|"]
    for r in rows:
        c = r.cases[0]
        lines.append(f"| {r.name} | {c.epochs} | {_n(c.images)} | {duration(r.total_s)} | {'; '.join(r.notes)} |")
    return lines


def model_lines(overhead_s: float) -> list[str]:
    sizes = ", ".join(f"{d} {s} {_n(pretrain_images(d, s, 1.0))}" for d, s in SPLIT_SIZES)
    return [
        "Model: GPU time of a case = images / throughput + the per-case overhead; images = epochs × ⌊n / B⌋ × B "
        f"source images (n: the class-balanced fraction of the pretraining split; {sizes}); a V-view step "
        "costs ≈ V/2 of a 2-view step (the view factor), so a case at V views runs at 2/V of the 2-view figure "
        "unless a row was measured at its V; one regularizer's throughput serves every regularizer (the loss is "
        "small next to ResNet-18).",
        f"Per-case overhead (evaluation, start-up, compilation): {overhead_s:g} s (`--overhead-s`). A study's "
        "cases run one after the other on one GPU; identical cases of its configs count once (they share its "
        "store). In one GPU-hour: the study's total ≤ 3600 s.",
    ]


def render(throughput: Throughput, overhead_s: float, studies: list[Row], per_config: list[Row] | None,
           recipes: list[Row] | None, command: str) -> str:
    lines = [f"Projected GPU time of the claim studies (`{command}`)", "", throughput.header(), ""]
    lines += model_lines(overhead_s) + [""] + study_table(studies) + ["", totals_line(studies)]
    if per_config:
        lines += ["", "Per config:", ""] + config_table(per_config)
    if recipes:
        lines += ["", "Recipes of docs/gpu-benchmarks.md (one run each, the same model):", ""] + recipe_table(recipes)
    return "\n".join(lines) + "\n"


# ==============================================================================================================
# Command line
# ==============================================================================================================
class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2
        print(f"project_studies: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python benchmarks/project_studies.py", description=__doc__.splitlines()[0])
    p.add_argument("--throughput", metavar="FILE", help="a kind=\"train_throughput\" jsonl of "
                   "benchmarks/train_throughput.py measured on the GPU")
    p.add_argument("--assume-images-per-s", type=float, metavar="R", help="an assumed throughput (source images/s "
                   "at V = 2, 32×32), printed as an ASSUMPTION; e.g. the issue's target 17000")
    p.add_argument("--overhead-s", type=float, default=DEFAULT_OVERHEAD_S, metavar="S",
                   help=f"seconds of evaluation and start-up per case (default {DEFAULT_OVERHEAD_S:g})")
    p.add_argument("--configs", nargs="+", metavar="FILE",
                   help="study configs (default: results/studies/configs/*-gpu*.toml)")
    p.add_argument("--per-config", action="store_true", help="also one row per config file")
    p.add_argument("--recipes", action="store_true", help="also the recipes of docs/gpu-benchmarks.md")
    p.add_argument("--md", metavar="FILE", help="also write the Markdown to FILE")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.throughput is None and args.assume_images_per_s is None:
            raise ProjectionError("no throughput: pass --throughput FILE (the train_throughput records of "
                                  "benchmarks/train_throughput.py on the GPU) or --assume-images-per-s R (printed "
                                  "as an assumption, e.g. 17000)")
        if args.throughput is not None and args.assume_images_per_s is not None:
            raise ProjectionError("pass --throughput FILE or --assume-images-per-s R, not both")
        if args.assume_images_per_s is not None and not (math.isfinite(args.assume_images_per_s)
                                                         and args.assume_images_per_s > 0):
            raise ProjectionError(f"--assume-images-per-s {args.assume_images_per_s:g} must be a number > 0")
        if not (math.isfinite(args.overhead_s) and args.overhead_s >= 0):
            raise ProjectionError(f"--overhead-s {args.overhead_s:g} must be a number >= 0")
        paths = [Path(c) for c in args.configs] if args.configs else default_configs()
        if not paths:
            raise ProjectionError(f"no study config (*-gpu*.toml) under {CONFIG_DIR}")
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise ProjectionError(f"--configs: no such file {missing[0]}")
        throughput = (AssumedThroughput(args.assume_images_per_s) if args.assume_images_per_s is not None
                      else MeasuredThroughput(args.throughput))
        studies, per_config = study_rows(paths, throughput, args.overhead_s)
        recipes = recipe_rows(throughput, args.overhead_s) if args.recipes else None
    except ProjectionError as exc:
        print(f"project_studies: error: {exc}", file=sys.stderr)
        return 2
    text = render(throughput, args.overhead_s, studies, per_config if args.per_config else None, recipes,
                  shown_command(sys.argv[1:] if argv is None else argv))
    print(text, end="")
    if args.md:
        try:
            Path(args.md).write_text(text, encoding="utf-8")
        except OSError as exc:
            print(f"project_studies: error: --md {args.md}: cannot write it ({exc})", file=sys.stderr)
            return 2
    unprojected = [r.name for r in studies if not math.isfinite(r.total_s)]
    if unprojected:
        print(f"project_studies: {len(unprojected)} grid(s) not projected ({', '.join(unprojected)}): no matching "
              "throughput, see their rows", file=sys.stderr)
        return 1
    return 0


def shown_command(argv: list[str]) -> str:
    """The command line as the table's title shows it: without ``--md FILE`` (where the table went)."""
    out, skip = ["python benchmarks/project_studies.py"], False
    for a in argv:
        if skip or a.startswith("--md="):
            skip = False
            continue
        if a == "--md":
            skip = True
            continue
        out.append(a)
    return " ".join(out)


if __name__ == "__main__":
    raise SystemExit(main())
