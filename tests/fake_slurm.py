"""A fake SLURM for the tests: ``sbatch``, ``srun``, ``sacct``, ``scancel`` and ``scontrol`` that run the jobs on
this machine, one array task after the other, in the background (``python fake_slurm.py NAME ARGS...``).

What submitit calls and parses (submitit/slurm/slurm.py): ``sbatch FILE`` answering ``Submitted batch job ID``;
``sacct -o JobID,State,NodeList --parsable2 -j ID`` answering ``|``-separated lines under a header; ``scancel``;
``scontrol requeue ID`` (from a job's time-out / preemption handler). The state of every task is a line
``ID_TASK|STATE|NODE`` in ``$FAKE_SLURM_DIR/<ID>_<TASK>.state``; ``sbatch`` records each submission file as
``$FAKE_SLURM_DIR/<ID>.sh``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

STATE = Path(os.environ.get("FAKE_SLURM_DIR", "."))
NODE = "fakenode"


def _state(task: str, state: str) -> None:
    (STATE / f"{task}.state").write_text(f"{task}|{state}|{NODE}\n")


def sbatch(args: list[str]) -> int:
    script = Path(args[-1])
    text = script.read_text()
    ids = sorted(int(p.stem) for p in STATE.glob("*.sh"))
    jid = (ids[-1] + 1) if ids else 1000
    (STATE / f"{jid}.sh").write_text(text)
    m = re.search(r"^#SBATCH --array=0-(\d+)", text, flags=re.M)
    n = int(m.group(1)) + 1 if m else 0  # 0: a single job, not an array
    for task in _tasks(jid, n):
        _state(task, "PENDING")
    log = open(STATE / f"{jid}.runner.log", "wb")
    subprocess.Popen([sys.executable, __file__, "_run", str(jid), str(n)], stdout=log, stderr=subprocess.STDOUT,
                     start_new_session=True, cwd=os.getcwd())
    print(f"Submitted batch job {jid}")
    return 0


def _tasks(jid, n: int) -> list[str]:
    return [f"{jid}_{t}" for t in range(n)] if n else [str(jid)]


def _task_env(task: str) -> dict:
    if "_" not in task:
        return {"SLURM_JOB_ID": task}
    jid, t = task.split("_")
    return {"SLURM_JOB_ID": str(int(jid) * 1000 + int(t)), "SLURM_ARRAY_JOB_ID": jid, "SLURM_ARRAY_TASK_ID": t}


def _run(args: list[str]) -> int:
    """Run the tasks of job ``jid`` in turn, each once its pickle is there (submitit writes it after sbatch),
    again while ``scontrol requeue`` asked for it."""
    jid, n = args[0], int(args[1])
    script = STATE / f"{jid}.sh"
    folder = re.search(r"submitit\.core\._submit\s+(\S+)", script.read_text()).group(1).strip("'\"")
    for task in _tasks(jid, n):
        pickle = Path(folder.replace("%j", task)) / f"{task}_submitted.pkl"
        deadline = time.time() + 120
        while not pickle.exists() and time.time() < deadline:
            time.sleep(0.05)
        env = dict(os.environ, SLURM_NTASKS="1", SLURM_JOB_NUM_NODES="1", SLURM_NODEID="0", SLURM_PROCID="0",
                   SLURM_LOCALID="0", SLURM_JOB_NODELIST=NODE, **_task_env(task))
        while True:
            _state(task, "RUNNING")
            rc = subprocess.call(["bash", str(script)], env=env)
            marker = STATE / f"{task}.requeue"
            if marker.exists():
                marker.unlink()
                _state(task, "REQUEUED")
                with open(STATE / f"{task}.requeued", "a") as f:
                    f.write("1\n")
                continue
            if (STATE / f"{task}.state").read_text().split("|")[1] != "CANCELLED":
                _state(task, "COMPLETED" if rc == 0 else "FAILED")
            break
    return 0


def srun(args: list[str]) -> int:
    """``srun [--unbuffered] [--output F] [--error F] CMD...``: CMD with its output in F (%A, %a, %j, %t filled)."""
    out = err = None
    while args and args[0].startswith("-"):
        opt = args.pop(0)
        if opt in ("--output", "--error"):
            value = args.pop(0)
            for key, env in (("%A", "SLURM_ARRAY_JOB_ID"), ("%a", "SLURM_ARRAY_TASK_ID"), ("%j", "SLURM_JOB_ID")):
                value = value.replace(key, os.environ.get(env, "0"))
            value = value.replace("%t", "0")
            if opt == "--output":
                out = value
            else:
                err = value
    if out:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
    if err:
        fd = os.open(err, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 2)
    os.execvp(args[0], args)


def sacct(args: list[str]) -> int:
    wanted = [args[i + 1] for i, a in enumerate(args) if a == "-j"]
    print("JobID|State|NodeList")
    for path in sorted(STATE.glob("*.state")):
        if any(path.stem.split("_")[0] == w.split("_")[0] for w in wanted):
            print(path.read_text().strip())
    return 0


def scancel(args: list[str]) -> int:
    for jid in (a for a in args if not a.startswith("-")):
        for path in STATE.glob(f"{jid.split('_')[0]}_*.state"):
            task = path.stem
            if jid == task or "_" not in jid:
                _state(task, "CANCELLED")
    return 0


def scontrol(args: list[str]) -> int:
    if args[:1] == ["requeue"]:
        (STATE / f"{args[1]}.requeue").write_text("")
    return 0


if __name__ == "__main__":
    name, rest = sys.argv[1], sys.argv[2:]
    sys.exit({"sbatch": sbatch, "srun": srun, "sacct": sacct, "scancel": scancel, "scontrol": scontrol,
              "_run": _run}[name](rest))
