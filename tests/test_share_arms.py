"""results/studies/share_arms.py: a run another grid's store holds (the same run id, ok, the same device) is
appended to the grid's store verbatim and then counts as done; nothing else is copied; a second call adds nothing."""

import importlib.util
import json
from pathlib import Path

from sslbench.execution import sweep
from sslbench.execution.plan import make_plan
from sslbench.probe.environment import environment

ROOT = Path(__file__).resolve().parent.parent
CONFIG = """kind = "train"
datasets = ["synthetic"]
dims = [8]
epochs = [1]
batches = [16]
seeds = [0, 1, 2]
device = ["cpu"]
regularizers = ["barlow_twins"]
"""


def _share_module():
    spec = importlib.util.spec_from_file_location("share_arms", ROOT / "results/studies/share_arms.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _plan(config, store):
    import argparse

    p = argparse.ArgumentParser()
    sweep.add_arguments(p)
    s, cases, out = sweep._settings_and_cases(p.parse_args(["--config", str(config), "--out", str(store), "--dry-run"]))
    return make_plan("sweep", s, cases, out)


def _record(run_id, seed, status="ok", device=None):
    case = {"regularizer": "barlow_twins", "dataset": "synthetic", "dim": 8, "seed": seed}
    return {"schema": 1, "kind": "train", "id": run_id, "created": "2026-12-05T00:00:00+00:00", "case": case,
            "status": status, "metrics": {"linear_top1": 50.0},
            "env": {"device_name": device or environment()["device_name"]}, "extra": {"run_id": run_id}}


def test_shared_runs_are_taken_once_and_count_as_done(tmp_path):
    config = tmp_path / "grid.toml"
    config.write_text(CONFIG)
    store, other = tmp_path / "grid.jsonl", tmp_path / "other.jsonl"
    plan = _plan(config, store)
    ids = plan.run_ids
    assert len(ids) == 3 and len(set(ids)) == 3
    lines = [_record(ids[0], 0), _record(ids[1], 1, status="error"), _record(ids[2], 2, device="another GPU"),
             _record("0123456789abcdef", 5)]
    other.write_text("".join(json.dumps(r) + "\n" for r in lines))
    mod = _share_module()
    assert mod.share(str(config), str(store), [str(other), str(store)]) == 1
    got = [json.loads(line) for line in store.read_text().splitlines()]
    assert [{k: v for k, v in r.items() if k != "message"} for r in got] == [lines[0]]  # as read (message: None); not the failed run, not another device's, not a run outside the grid
    assert _plan(config, store).done == [True, False, False]
    assert mod.share(str(config), str(store), [str(other)]) == 0  # nothing twice
