"""Print the CPU-default sweep's table (markdown) from runs.jsonl and the per-step logs in logs/:
``python results/sweeps/cpu-default/table.py``.

``train s`` is the measured training time on the shared machine. ``idle est. s`` estimates it on an idle machine:
the images trained divided by the 90th percentile of the logged throughput (images/s over 10-step windows), i.e.
the speed of the windows the other work on the machine left alone, at the run's thread count (a one-thread run's
estimate is therefore an upper bound for two threads); it is an estimate, not a measurement."""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _p90_images_per_s(run_id: str) -> float | None:
    path = HERE / "logs" / f"{run_id}.jsonl"
    if not path.exists():
        return None
    speeds = sorted(line["images_per_s"] for line in map(json.loads, path.read_text().splitlines())
                    if line.get("event") == "step" and line.get("images_per_s"))
    return speeds[int(0.9 * len(speeds))] if speeds else None


def _num(value, fmt: str = ".2f") -> str:
    return "–" if value is None else format(value, fmt)


def rows() -> list[str]:
    out = ["| run | status | regularizer | backbone | augment | optimizer, lr | projector (D), lambd | batch | epochs | seed "
           "| linear % | kNN % | init linear % | init kNN % | threads | train s | idle est. s | eval s |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for line in (HERE / "runs.jsonl").read_text().splitlines():
        r = json.loads(line)
        c, m = r["case"], r["metrics"]
        p90 = _p90_images_per_s(r["id"])
        images = m.get("steps", 0) * c["batch"]
        idle = f"{images / p90:.0f}" if p90 else "–"
        out.append(
            f"| `{r['id']}` | {r['status']} | {c['regularizer']} | {c['backbone']} | {c['augment']} | {c['optimizer']} {c['lr']:g} | "
            f"{c['projector']}, {_num(c['hparams'].get('lambd'), '.4g')} | {c['batch']} | {c['epochs']} | {c['seed']} | "
            f"{_num(m.get('linear_top1'))} | {_num(m.get('knn_top1'))} | {_num(m.get('init_linear_top1'))} | "
            f"{_num(m.get('init_knn_top1'))} | {r['env'].get('threads', '?')} | {_num(m.get('train_time_s'), '.0f')} | "
            f"{idle} | {_num(m.get('eval_time_s'), '.0f')} |")
    return out


if __name__ == "__main__":
    print("\n".join(rows()))
