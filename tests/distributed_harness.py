"""Run a function on real ``torch.distributed`` CPU processes (gloo) and collect what each rank returns.

``run_ranks(fn, world_size, *args)`` spawns ``world_size`` fresh processes, initialises a gloo process group
through a file rendezvous (no ports), calls ``fn(rank, world_size, *args)`` on each and returns the list of the
ranks' return values (anything ``torch.save`` can store). A rank's exception is re-raised with its traceback.
``fn`` must be defined at module level in an importable module (``spawn`` pickles it by name).
"""

from __future__ import annotations

import os
import sys
import tempfile
import traceback

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _entry(rank: int, world_size: int, init_file: str, out_dir: str, fn, args) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        result = fn(rank, world_size, *args)
        torch.save({"ok": True, "result": result}, os.path.join(out_dir, f"rank{rank}.pt"))
    except BaseException:  # noqa: BLE001 - forwarded to the parent
        torch.save({"ok": False, "error": traceback.format_exc()}, os.path.join(out_dir, f"rank{rank}.pt"))
        raise
    finally:
        dist.destroy_process_group()
    # the result is on disk: leave without the interpreter's teardown, where gloo's threads intermittently
    # abort the process ("terminate called without an active exception", about 1 spawn in 6 here)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def run_ranks(fn, world_size: int = 2, *args):
    with tempfile.TemporaryDirectory() as tmp:
        init_file = os.path.join(tmp, "rendezvous")
        try:
            mp.spawn(_entry, args=(world_size, init_file, tmp, fn, args), nprocs=world_size, join=True)
        except Exception as exc:  # a rank failed: show its own traceback
            errors = []
            for r in range(world_size):
                path = os.path.join(tmp, f"rank{r}.pt")
                if os.path.exists(path):
                    rec = torch.load(path, weights_only=False)
                    if not rec["ok"]:
                        errors.append(f"--- rank {r} ---\n{rec['error']}")
            raise RuntimeError("distributed run failed\n" + "\n".join(errors)) from exc
        results = []
        for r in range(world_size):
            rec = torch.load(os.path.join(tmp, f"rank{r}.pt"), weights_only=False)
            results.append(rec["result"])
        return results
