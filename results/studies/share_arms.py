"""Arms that several CPU study grids share are trained once.

    python results/studies/share_arms.py CONFIG STORE SOURCE_STORE [SOURCE_STORE ...]

The AdamW-recipe grids repeat some arms exactly: VICReg at its defaults is an arm of the sfrik, fft and variance
(std_coeff 25) grids; Barlow Twins at V = 2 on half the data is an arm of the fft and views grids. ``sslbench train``
names a run by its whole config (seed and data included: the run id), and a sweep record of a training run carries
that id, so a record of the same run id IS that arm's run. This appends to STORE the ``ok`` records of the SOURCE
stores whose run id is a case of CONFIG's grid that STORE lacks, recorded on a device of the same name, verbatim;
the sweep's resume then skips them. Nothing else is copied. The report counts a run once however many stores hold it
(:func:`sslbench.analysis.claims.common.train_runs` drops the repeats).

Checked: VICReg seed 0 of the fft grid, trained again while the sfrik grid's record of the same run id existed, gave
the same linear (88.17 %) and kNN (81.05 %) top-1: the run is deterministic on this CPU.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def share(config: str, store: str, sources: list[str]) -> int:
    """Append the shared runs (see the module docstring); returns how many were appended."""
    from sslbench.execution import sweep
    from sslbench.execution.plan import make_plan
    from sslbench.records import append_record, read_records

    parser = argparse.ArgumentParser()
    sweep.add_arguments(parser)
    args = parser.parse_args(["--config", config, "--out", store, "--dry-run"])
    s, cases, out = sweep._settings_and_cases(args)
    plan = make_plan("sweep", s, cases, out)
    if not plan.run_ids:
        return 0
    wanted = {rid for rid, done in zip(plan.run_ids, plan.done) if not done}
    device = plan.env.get("device_name")
    n = 0
    for src in sources:
        if Path(src).resolve() == Path(store).resolve() or not Path(src).is_file():
            continue
        for rec in read_records(src):
            if not isinstance(rec, dict) or rec.get("kind") != "train" or rec.get("status") != "ok":
                continue
            env = rec.get("env") if isinstance(rec.get("env"), dict) else {}
            if rec.get("id") in wanted and env.get("device_name") == device:
                append_record(store, rec)
                wanted.discard(rec["id"])
                n += 1
    return n


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("config")
    p.add_argument("store")
    p.add_argument("sources", nargs="+")
    a = p.parse_args(argv)
    n = share(a.config, a.store, a.sources)
    print(f"share_arms: {n} run(s) of {Path(a.config).name} taken from the other grids' stores")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
