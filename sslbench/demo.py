"""``sslbench demo`` (what ``make demo`` runs): the main job on the embedded default data, in two parts.

1. **Scaling** — forward+backward time and peak memory of Barlow Twins and VICReg (primal ``cross_correlation``
   and ``auto``, which picks the exact Gram form when it is cheaper), the FFT pair and SFRIK at N = 256 and
   D ∈ {256, 1024, 4096}, each case in a fresh process (``sslbench bench``). About a minute on 2 CPU cores.
2. **Training** — ``sslbench train`` with the defaults: Barlow Twins on Fashion-MNIST when its files are found
   (Debian's ``dataset-fashion-mnist``), else scikit-learn's digits, which need nothing but pip; then the linear
   probe and kNN accuracy of the pretrained backbone next to the same network at initialisation. About 6 minutes
   on 2 idle CPU cores with Fashion-MNIST (5 min 53 s for the demo itself, 6 min 47 s for ``make demo`` with its
   set-up, 2026-11-30; its accuracy: the README's job 3), well under one with digits.

Records are appended to ``results/demo/bench.jsonl`` and ``results/demo/train.jsonl`` (a re-run skips the bench
cases already measured on the same setup and resumes a training run from its checkpoint).
"""

from __future__ import annotations

import argparse
import sys
import time

from sslbench import regularizers

OUT_DIR = "results/demo"
SCALING_REGULARIZERS = ("barlow_twins", "vicreg", "barlow_twins_fft", "vicreg_fft", "sfrik")
#: the scaling part's sweep settings where they differ from ``sslbench sweep --kind bench``'s defaults (the dims
#: and the store come from the command line)
SCALING_SETTINGS = dict(kind="bench", regularizers=list(SCALING_REGULARIZERS),
                        algorithms=["cross_correlation", "auto"], device=["cpu"], warmup=1, min_time=0.3,
                        progress=False)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--regularizer", default="barlow_twins", choices=regularizers.available(),
                        help="the regularizer to pretrain with (default barlow_twins)")
    parser.add_argument("--dataset", default=None, help="default: fashion_mnist if found, else digits")
    parser.add_argument("--epochs", type=int, default=None, help="default: sslbench train's default (5)")
    parser.add_argument("--dims", nargs="+", type=int, default=[256, 1024, 4096], help="D of the scaling part")
    parser.add_argument("--skip-bench", action="store_true", help="only the training part")
    parser.add_argument("--skip-train", action="store_true", help="only the scaling part")
    parser.add_argument("--out-dir", default=OUT_DIR)


def _scaling(args: argparse.Namespace) -> int:
    """Part 1: the bench grid, run by the sweep's loop: the sweep's own options (its parser, so none is missed),
    the demo's :data:`SCALING_SETTINGS` on top, and the sweep's defaults for the rest."""
    from sslbench.execution import sweep

    parser = argparse.ArgumentParser(prog="sslbench demo")
    sweep.add_arguments(parser)
    settings = parser.parse_args([])
    vars(settings).update(SCALING_SETTINGS, dims=list(args.dims), out=f"{args.out_dir}/bench.jsonl")
    return sweep.execute(settings, "bench")


def _training(args: argparse.Namespace) -> int:
    """Part 2: one training run with ``sslbench train``'s defaults, resumed from its checkpoint on a re-run."""
    from sslbench.training.config import TrainConfig, TrainInputError
    from sslbench.training.data import default_dataset
    from sslbench.training.train import train

    dataset = args.dataset or default_dataset()
    print(f"\n== 2/2 training: {args.regularizer} on {dataset} (sslbench train) ==", flush=True)
    if dataset == "digits" and args.dataset is None:
        print("(Fashion-MNIST was not found; using scikit-learn's digits. On Debian/Ubuntu: "
              "apt-get install dataset-fashion-mnist)", flush=True)
    options = {} if args.epochs is None else {"epochs": args.epochs}
    cfg = TrainConfig(regularizer=args.regularizer, dataset=dataset, out=f"{args.out_dir}/train.jsonl",
                      log_dir=f"{args.out_dir}/runs", checkpoint_dir=f"{args.out_dir}/checkpoints", resume="auto",
                      **options)
    try:
        record = train(cfg)
    except TrainInputError as exc:
        print(f"sslbench demo: error: {exc}", file=sys.stderr)
        return 2
    return 0 if record["status"] == "ok" else 1


def run(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    status = 0
    if not args.skip_bench:
        print("== 1/2 scaling: forward+backward time and memory, N=256, V=2 (sslbench bench) ==", flush=True)
        status = _scaling(args)
        if status == 2:  # bad input: nothing ran
            return 2
    if not args.skip_train:
        train_status = _training(args)
        if train_status == 2:
            return 2
        status |= train_status
    print(f"\ndemo finished in {time.perf_counter() - t0:.0f} s; records under {args.out_dir}/", flush=True)
    return 0 if status == 0 else 1
