"""``sslbench sweep --executor local|slurm``, ``--status`` and ``--cancel``: the sweep's cases through submitit.

sslbench grows no scheduler of its own: it hands its cases to submitit (pip install 'sslbench[cluster]').

* ``local``: submitit's ``LocalExecutor`` starts ``--workers K`` worker jobs on this machine and waits for them.
  Each worker walks the whole list of cases to do (each from its own starting point) and runs those it can
  claim (:mod:`sslbench.records.claims`), so the K workers share the cases without a coordinator, and a worker
  killed mid-case leaves a claim the others take over. On a GPU node each worker sees one GPU (or
  ``--gpus-per-case`` of them: ``CUDA_VISIBLE_DEVICES``, submitit's ``visible_gpus``); on the CPU each case gets
  ``cores // K`` threads unless ``--threads`` says otherwise.
* ``slurm``: submitit's ``AutoExecutor`` submits ONE job array, a task per case to do, and returns; watch it
  with ``--status``. A task past ``--slurm-time`` or preempted is requeued by submitit (:class:`CaseWorker` is
  ``Checkpointable``): its training child is first asked to stop (SIGINT: it checkpoints after its current
  step), and the requeued task resumes from that checkpoint (``resume="auto"``); a bench case simply runs again.

Every worker runs the inline loop (:func:`sslbench.execution.plan.run_plan`) on its cases, so records, statuses and
resume are the inline ones. The submitit folder and the list of submitted jobs are kept beside the store, in
``<store>.sweep/`` (``jobs/``, ``jobs.txt``), next to the claims.

``jobs.txt`` is read as hostile (a store folder may come from someone else, and pids wrap around): a local job's
line records its controller's pid and start time, and ``--cancel`` signals a pid only while it is still that
process (same start time, and the command line of a submitit controller of this store's ``jobs/`` folder), never a
pid <= 1; ``--status`` calls nothing else RUNNING. A line that cannot be read is skipped with a warning; each new
submission rewrites the file without the local submissions whose controllers are gone. ``--status`` and
``--cancel`` write nothing beside the store.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal
import socket
import stat
import sys
import time
from pathlib import Path

from sslbench.execution.plan import Plan, SweepError, describe, devices_line, grid_records, make_plan, run_plan
from sslbench.execution.runner import (INTERRUPT_GRACE_S, Interrupted, noted_stop, sigterm_as_interrupt, signal_of,
                                       stop_name)
from sslbench.records import FINAL_STATUSES
from sslbench.records.claims import PID_MAX, SidecarError, check_folder, pid_start, read_claims, sidecar
from sslbench.records.store import locked
from sslbench.records.text import terminal_stdout

try:
    import submitit
    from submitit.helpers import Checkpointable
except ImportError:  # the inline sweep needs none of it
    submitit = None
    Checkpointable = object

__all__ = ["CaseWorker", "slurm_minutes", "submit", "status", "cancel", "main", "jobs_folder", "saved_jobs"]

#: a worker on the local machine never hits submitit's own time limit (cases have --timeout)
_LOCAL_TIMEOUT_MIN = 60 * 24 * 365
_TAIL_LINES = 5


class ClusterError(SweepError):
    """Bad input for an executor (a missing submitit or sbatch, a bad --slurm-time): one line, exit 2."""


def jobs_folder(out: str) -> Path:
    return sidecar(out) / "jobs"


def _jobs_file(out: str) -> Path:
    return sidecar(out) / "jobs.txt"


def slurm_minutes(text: str) -> int:
    """Minutes of a SLURM time limit: ``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH``, ``D-HH:MM``, ``D-HH:MM:SS``."""
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", str(text).strip())
    if not m:
        raise ClusterError(f"--slurm-time {text}: write [D-]HH:MM:SS or minutes (e.g. 4:00:00 or 240)")
    days, a, b, c = (int(g) if g else None for g in m.groups())
    if days is not None:  # D-HH[:MM[:SS]]
        minutes = days * 1440 + a * 60 + (b or 0) + ((c or 0) > 0)
    elif c is not None:  # HH:MM:SS
        minutes = a * 60 + b + (c > 0)
    elif b is not None:  # MM:SS
        minutes = a + (b > 0)
    else:
        minutes = a
    if minutes < 1:
        raise ClusterError(f"--slurm-time {text}: give at least one minute")
    return minutes


# ==============================================================================================================
# The worker: the inline loop over some cases, in a submitit job
# ==============================================================================================================
class CaseWorker(Checkpointable):
    """What a submitit job runs: the inline loop of the sweep over the cases ``indices`` of the grid (a local
    worker: all of them, from its own starting point; a SLURM array task: one). Returns the loop's exit status."""

    def __init__(self, command: str, settings: dict, cases: list[dict], out: str):
        self.command, self.settings, self.cases, self.out = command, settings, cases, out

    def __call__(self, indices: list[int]) -> int:
        from sslbench.execution.runner import clean_stale_case_folders

        clean_stale_case_folders()
        plan = make_plan(self.command, self.settings, [self.cases[i] for i in indices], self.out)
        return run_plan(plan)

    def checkpoint(self, *args, **kwargs):
        """Before submitit requeues this task (time-out, preemption): ask the running case's process to stop
        (SIGINT: a training case checkpoints after its current step) and give it a minute; the requeued task runs
        the same case again, resuming from that checkpoint."""
        _stop_children(grace_s=60.0)
        return super().checkpoint(*args, **kwargs)


def _stop_children(grace_s: float) -> None:
    import psutil

    children = psutil.Process().children()
    for child in children:
        try:
            child.send_signal(signal.SIGINT)
        except psutil.Error:
            pass
    psutil.wait_procs(children, timeout=grace_s)


# ==============================================================================================================
# Submitting
# ==============================================================================================================
def _need_submitit() -> None:
    if submitit is None:
        raise ClusterError("--executor local/slurm needs submitit: pip install 'sslbench[cluster]' "
                           "(or pip install submitit), or use --executor inline")


def _gpus(plan: Plan) -> int:
    """GPUs visible here when the grid runs on CUDA, else 0."""
    on_cuda = any(str(c.get("device", "")).startswith("cuda") for c in plan.cases)
    return int(plan.env.get("device_count") or 0) if on_cuda else 0


def _gpus_per_case(plan: Plan) -> int:
    g = plan.settings.get("gpus_per_case")
    if g is not None:
        return g
    return 1 if any(str(c.get("device", "")).startswith("cuda") for c in plan.cases) else 0


def _local_workers(plan: Plan) -> tuple[list[dict], dict]:
    """The parameters of each local worker (its GPUs) and the settings they run with (threads)."""
    s = dict(plan.settings)
    gpus, per_case = _gpus(plan), _gpus_per_case(plan)
    if gpus and per_case:
        k = min(s["workers"] or gpus // per_case, gpus // per_case)
        if k < 1:
            raise ClusterError(f"--gpus-per-case {per_case}: only {gpus} GPU(s) visible here")
        params = [{"gpus_per_node": per_case, "visible_gpus": list(range(i * per_case, (i + 1) * per_case))}
                  for i in range(k)]
    else:
        k = s["workers"] or 2
        if s["threads"] is None:
            s["threads"] = max(1, (os.cpu_count() or 1) // k)
        params = [{} for _ in range(k)]
    return params, s


def check_jobs_file(out: str, flag: str = "--out") -> None:
    """Before anything is submitted: ``jobs/`` and ``jobs.txt`` beside the store can be written (a launcher that
    failed after submitting would leave workers that ``--cancel`` cannot see). Raises :class:`ClusterError`."""
    try:
        if check_folder(sidecar(out), "the sweep folder", flag, out):
            check_folder(jobs_folder(out), "the jobs folder", flag, out)
    except SidecarError as exc:
        raise ClusterError(str(exc)) from None
    path = _jobs_file(out)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISREG(st.st_mode):
        raise ClusterError(f"{flag} {out}: {path} is not a regular file (a folder or a link); move it away (sslbench "
                           "lists the submitted jobs there) or choose another store path")


def _job_line(executor: str, job) -> dict:
    line = {"id": str(job.job_id)}
    if executor == "local":  # the controller's start time: --cancel signals the pid only while it is that process
        line["pid_start"] = pid_start(int(job.job_id))
    return line


def _save_jobs(out: str, executor: str, jobs, case_ids: list[list[str]]) -> None:
    """Add one line per submission to ``<store>.sweep/jobs.txt`` (the job ids and the cases of each), dropping the
    local submissions whose controllers are all gone and the lines that cannot be read. The file is replaced
    whole (a temporary file renamed over it: never written through a link), under the store's lock."""
    path = _jobs_file(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = {"executor": executor, "host": socket.gethostname(), "submitted": time.time(),
            "folder": str(jobs_folder(out)), "jobs": [{**_job_line(executor, j), "cases": ids}
                                                      for j, ids in zip(jobs, case_ids)]}
    with open(out, "a+b") as lock, locked(lock, exclusive=True):
        kept = [sub for sub in saved_jobs(out, quiet=True)
                if sub["executor"] != "local" or any(_controller(out, sub, job) for job in sub["jobs"])]
        tmp = path.with_name(f".jobs-{os.getpid()}-{os.urandom(4).hex()}.tmp")  # a fresh file: O_EXCL, no link
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0), 0o666)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(sub) + "\n" for sub in [*kept, line])
        os.replace(tmp, path)


_WARNED: set = set()
_JOB_ID = {"local": re.compile(r"[0-9]{1,10}"), "slurm": re.compile(r"[0-9]{1,20}(_[0-9]{1,10})?")}


def _bad_submission(sub) -> str | None:
    """Why a line of jobs.txt is not a submission sslbench wrote, or None."""
    if not isinstance(sub, dict):
        return f"a JSON {type(sub).__name__}, not an object"
    if sub.get("executor") not in _JOB_ID:
        return f"executor {sub.get('executor')!r} is neither 'local' nor 'slurm'"
    if not isinstance(sub.get("host"), str) or not isinstance(sub.get("jobs"), list):
        return "no 'host' (a string) or 'jobs' (a list)"
    for job in sub["jobs"]:
        if not isinstance(job, dict) or not isinstance(job.get("id"), str) or not isinstance(job.get("cases"), list):
            return "a job without an 'id' (a string) or 'cases' (a list)"
        if not _JOB_ID[sub["executor"]].fullmatch(job["id"]):
            return f"job id {job['id'][:40]!r} is not a {sub['executor']} job id"
        if not all(isinstance(c, str) for c in job["cases"]):
            return "a case id that is not a string"
    return None


def saved_jobs(out: str, quiet: bool = False) -> list[dict]:
    """The submissions recorded beside the store (oldest first). A line that cannot be read (not JSON, cut
    short, or not of the layout sslbench writes) is skipped with a warning on stderr; a ``jobs.txt`` that cannot
    be read at all (a folder) raises :class:`ClusterError`."""
    path = _jobs_file(out)
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            raise ClusterError(f"{path} is not a regular file (a folder or a link); move it away (sslbench lists "
                               "the submitted jobs there)")
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise ClusterError(f"cannot read {path} ({exc.strerror or exc}); check its permissions") from None
    subs, bad = [], []
    for n, ln in enumerate(lines, 1):
        if not ln.strip():
            continue
        try:
            sub = json.loads(ln)
        except ValueError:
            sub, why = None, "not JSON (cut short?)"
        else:
            why = _bad_submission(sub)
        if why is None:
            subs.append(sub)
        else:
            bad.append(f"line {n} ({why})")
    if bad and not quiet and (str(path), tuple(bad)) not in _WARNED:
        _WARNED.add((str(path), tuple(bad)))  # once per process: --status reads the file more than once
        print(f"sslbench sweep: warning: {path}: skipped {len(bad)} line(s) that are not submissions: "
              + "; ".join(bad[:5]) + (" ..." if len(bad) > 5 else ""), file=sys.stderr)
    return subs


def _todo_indices(plan: Plan) -> list[int]:
    return [i for i, d in enumerate(plan.done) if not d]


def _submit_local(plan: Plan, todo: list[int]) -> int:
    """Start the local workers and wait for them. Ctrl-C or SIGTERM (a scheduler's stop) of this process, even
    while the workers are being started, stops them: each records its running case as "interrupted"."""
    params, s = _local_workers(plan)
    worker = CaseWorker(plan.command, s, plan.cases, plan.out)
    executor = submitit.LocalExecutor(folder=str(jobs_folder(plan.out) / "%j"))
    jobs = []
    with sigterm_as_interrupt():
        try:
            for k, p in enumerate(params):
                executor.update_parameters(timeout_min=_LOCAL_TIMEOUT_MIN, **p)
                rotated = todo[k * len(todo) // len(params):] + todo[:k * len(todo) // len(params)]
                jobs.append(executor.submit(worker, rotated))
            _save_jobs(plan.out, "local", jobs, [[plan.ids[i] for i in todo]] * len(jobs))
            threads = f", {s['threads']} thread(s) per case" if s["threads"] and not _gpus(plan) else ""
            print(f"{plan.name}: {len(todo)} case(s) to run on {len(jobs)} local worker(s){threads} -> {plan.out} "
                  f"(jobs {', '.join(j.job_id for j in jobs)}; logs in {jobs_folder(plan.out)})", flush=True)
            _wait_all(jobs)
        except KeyboardInterrupt as exc:
            return _stop_local(plan, jobs, signal_of(exc))
    return _results_local(plan, jobs)


def _wait_all(jobs) -> None:
    """Wait until every job is done, looking every quarter second for a stop signal whose exception Python
    swallowed (one that landed while a worker was being forked: see sslbench.execution.runner)."""
    while not all(job.done() for job in jobs):
        if noted_stop() is not None:
            raise Interrupted(noted_stop())
        time.sleep(0.25)


def _stop_local(plan: Plan, jobs, signum: int) -> int:
    """Stop the workers and wait for them. Each local job is a submitit controller process (its id is its pid)
    that forwards SIGTERM to its worker, whose sweep records the running case as "interrupted" and ends; the
    controller then ends too. (submitit's own cancel sends SIGINT, on which the controller prints a traceback and
    SIGKILLs its worker a second later, cutting a training case's grace short.)"""
    if not _workers_have_it(signum):
        for job in jobs:
            try:
                os.kill(int(job.job_id), signal.SIGTERM)
            except (ValueError, ProcessLookupError):
                pass
    deadline = time.monotonic() + INTERRUPT_GRACE_S + 30.0
    while time.monotonic() < deadline and not all(job.done() for job in jobs):
        time.sleep(0.25)
    left = [job.job_id for job in jobs if not job.done()]
    how = stop_name(signum)
    print(f"{plan.name}: interrupted ({how}); the workers were stopped (their running cases are recorded as "
          "'interrupted')" + (f", except job(s) {', '.join(left)}, still stopping" if left else "")
          + ". To resume, run the same command again", file=sys.stderr, flush=True)
    return 128 + signum


def _workers_have_it(signum: int) -> bool:
    """A Ctrl-C at the terminal reaches the whole foreground process group, the workers (which submitit starts in
    this process's group) included: a second SIGINT would cut their grace short."""
    if signum != signal.SIGINT:
        return False
    try:
        return os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
    except (OSError, ValueError):
        return False


def _results_local(plan: Plan, jobs) -> int:
    worst = 0
    for job in jobs:
        try:
            code = job.result()
        except Exception as exc:  # noqa: BLE001 - a worker killed or crashed: its claims are taken over
            print(f"worker job {job.job_id} failed ({type(exc).__name__}); its cases are taken over on the "
                  f"next run. Its last output:\n{_tail(job.paths.stderr)}", file=sys.stderr)
            code = 1
        worst = max(worst, code)
    print(_counts_line(plan), flush=True)
    print(devices_line(plan), flush=True)
    return worst


def _slurm_executor(plan: Plan, n: int):
    s = plan.settings
    minutes = slurm_minutes(s["slurm_time"])
    if shutil.which("sbatch") is None:
        raise ClusterError("--executor slurm: sbatch is not on PATH (no SLURM client here); submit from the "
                           "cluster's login node, or use --executor local")
    executor = submitit.AutoExecutor(folder=str(jobs_folder(plan.out) / "%j"), cluster="slurm")
    per_case = _gpus_per_case(plan)
    params = {"name": f"sslbench-{Path(plan.out).stem}", "timeout_min": minutes,
              "nodes": 1, "tasks_per_node": 1, "gpus_per_node": per_case or None,
              "slurm_partition": s["slurm_partition"], "slurm_array_parallelism": s["slurm_array_parallelism"] or n,
              "slurm_additional_parameters": dict(s["slurm_options"] or {}) or None}
    executor.update_parameters(**{k: v for k, v in params.items() if v is not None})
    return executor


def _submit_slurm(plan: Plan, todo: list[int]) -> int:
    executor = _slurm_executor(plan, len(todo))
    worker = CaseWorker(plan.command, plan.settings, plan.cases, plan.out)
    jobs = executor.map_array(worker, [[i] for i in todo])
    _save_jobs(plan.out, "slurm", jobs, [[plan.ids[i]] for i in todo])
    array = jobs[0].job_id.split("_")[0] if jobs else "?"
    print(f"{plan.name}: submitted job array {array} ({len(jobs)} task(s), a case each) -> {plan.out}; "
          f"logs in {jobs_folder(plan.out)}. Watch it with the same command and --status", flush=True)
    return 0


def submit(plan: Plan) -> int:
    """Run (local) or submit (slurm) the plan's cases to do."""
    _need_submitit()
    todo = _todo_indices(plan)
    if not todo:
        print(f"{plan.name}: all {len(plan.cases)} case(s) are already in {plan.out}; nothing to submit")
        return 0
    check_jobs_file(plan.out)
    if plan.settings["executor"] == "local":
        return _submit_local(plan, todo)
    return _submit_slurm(plan, todo)


# ==============================================================================================================
# Watching and cancelling
# ==============================================================================================================
def _tail(path, n: int = _TAIL_LINES) -> str:
    try:
        lines = Path(path).read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return "    (no output)"
    return "\n".join("    | " + ln for ln in lines[-n:]) or "    (no output)"


def _text_tail(text: str, n: int = _TAIL_LINES) -> str:
    lines = [ln for ln in str(text or "").strip().splitlines() if ln.strip()]
    return "\n".join("    | " + ln for ln in lines[-n:])


def _all_jobs(out: str) -> list[tuple[dict, dict, str, str]]:
    """(submission, job, state, stderr path) of every job submitted for the store, oldest first."""
    return [(sub, job, *_job_state(out, sub, job)) for sub in saved_jobs(out) for job in sub["jobs"]]


def _job_states(out: str) -> dict[str, tuple[str, str, str]]:
    """``{case id: (job id, state, stderr path)}`` from the saved submissions (the newest job of each case; a
    running local worker over one that ended)."""
    states: dict[str, tuple[str, str, str]] = {}
    for sub, job, state, stderr in _all_jobs(out):
        for sid in job["cases"]:
            if sub["executor"] == "slurm" or state == "RUNNING" or sid not in states:
                states[sid] = (job["id"], state, stderr)
    return states


def _job_state(out: str, sub: dict, job: dict) -> tuple[str, str]:
    folder = jobs_folder(out) / "%j"  # derived from the store, never the line's own "folder"
    job_id = job["id"]
    if sub["executor"] == "slurm":
        if submitit is None:
            return "UNKNOWN (submitit not installed)", ""
        sjob = submitit.SlurmJob(folder=folder, job_id=job_id)
        return sjob.state, str(sjob.paths.stderr)
    paths = submitit.core.utils.JobPaths(folder, job_id=job_id) if submitit else None
    return ("RUNNING" if _controller(out, sub, job) else "FINISHED"), (str(paths.stderr) if paths else "")


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode("utf-8", errors="replace").split("\0")
    except OSError:
        return []


def _controller(out: str, sub: dict, job: dict) -> int | None:
    """The pid of a local job's submitit controller while it is still the process this store's sweep started,
    else None: on this host, a pid in 2..PID_MAX, the start time recorded at submission (lines of older versions
    have none), and the command line ``python -m submitit.local._local <this store's jobs folder>/%j``. Where
    none of this can be read (no /proc), None: a pid that cannot be checked is never signalled."""
    if sub.get("executor") != "local" or sub.get("host") != socket.gethostname():
        return None
    try:
        pid = int(job["id"])
    except (KeyError, TypeError, ValueError):
        return None
    if not 1 < pid <= PID_MAX or pid == os.getpid():
        return None
    now = pid_start(pid)
    if now is None or ("pid_start" in job and job["pid_start"] != now):
        return None
    argv = _cmdline(pid)
    if "submitit.local._local" not in argv[:-1]:
        return None
    folder = argv[argv.index("submitit.local._local") + 1]
    if os.path.realpath(folder) != os.path.realpath(jobs_folder(out) / "%j"):
        return None
    return pid


@dataclasses.dataclass
class _Status:
    done: list[str]
    running: list[tuple[str, dict]]
    failed: list[tuple[str, dict | None, tuple | None]]
    pending: list[str]


def _classify(plan: Plan) -> _Status:
    latest: dict[str, dict] = {}
    for r in grid_records(plan):
        sid = plan.sid_of(r)
        if r.get("status") in FINAL_STATUSES or latest.get(sid, {}).get("status") not in FINAL_STATUSES:
            latest[sid] = r
    claims, jobs = read_claims(plan.out), _job_states(plan.out)
    st = _Status([], [], [], [])
    for sid in plan.ids:
        rec, claim, job = latest.get(sid), claims.get(plan.claim_key(sid)), jobs.get(sid)
        if rec is not None and rec["status"] in FINAL_STATUSES:
            st.done.append(sid)
        elif claim is not None and not claim["stale"]:
            st.running.append((sid, claim))
        elif rec is not None or (job is not None and job[1] in _FAILED_STATES) or claim is not None:
            st.failed.append((sid, rec, job))
        else:
            st.pending.append(sid)
    return st


_FAILED_STATES = {"FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL", "DEADLINE"}


def _counts_line(plan: Plan) -> str:
    st = _classify(plan)
    return (f"{len(plan.ids)} case(s) in {plan.out}: {len(st.done)} done, {len(st.running)} running, "
            f"{len(st.failed)} failed, {len(st.pending)} pending")


def status(plan: Plan) -> int:
    """Print the counts of pending, running, done and failed cases, who runs what, and why cases failed."""
    st = _classify(plan)
    by_id = dict(zip(plan.ids, plan.cases))
    print(f"{len(plan.ids)} case(s) in {plan.out}: {len(st.done)} done, {len(st.running)} running, "
          f"{len(st.failed)} failed, {len(st.pending)} pending")
    for sid, claim in st.running:
        job = f"job {claim['job']}, " if claim.get("job") else ""
        beat = f"{claim['age_s']:.0f} s ago" if claim["age_s"] < float("inf") else "unknown (a clock in the future)"
        print(f"  running  {describe(plan.kind, by_id[sid])}  ({job}host {claim.get('host')}, pid "
              f"{claim.get('pid')}, heartbeat {beat})")
    for sid, rec, job in st.failed:
        what = (f"{rec['status']}: {rec.get('message') or ''}" if rec is not None
                else f"job {job[0]} {job[1]} without a record" if job is not None else "its runner died")
        print(f"  failed   {describe(plan.kind, by_id[sid])}  ({what.strip()})")
        output = (rec or {}).get("extra", {}).get("output") if rec is not None else None
        tail = _text_tail(output) if output else (_tail(job[2]) if job is not None and job[2] else "")
        if tail:
            print(tail)
    states: dict[str, int] = {}
    for _, _, state, _ in _all_jobs(plan.out):
        states[state] = states.get(state, 0) + 1
    if states:
        print("jobs: " + ", ".join(f"{n} {s}" for s, n in sorted(states.items())))
    print(devices_line(plan))
    return 0


def cancel(plan: Plan) -> int:
    """Cancel every job submitted for this store: scancel for SLURM, SIGTERM for the local controllers that are
    still the processes the sweep started (:func:`_controller`); any other pid listed is left alone."""
    n = 0
    for sub in saved_jobs(plan.out):
        for job in sub["jobs"]:
            if sub["executor"] == "slurm":
                _need_submitit()
                submitit.SlurmJob(folder=jobs_folder(plan.out) / "%j", job_id=job["id"]).cancel(check=False)
                n += 1
            elif (pid := _controller(plan.out, sub, job)) is not None:
                try:
                    os.kill(pid, signal.SIGTERM)
                    n += 1
                except ProcessLookupError:
                    pass
    print(f"{plan.name}: cancelled {n} job(s) of {plan.out}" if n else f"{plan.name}: no job of {plan.out} to cancel")
    return 0


def main(plan: Plan, action: str = "run") -> int:
    """``action`` "status", "cancel" or "run" (the executor's run); bad input is one line and exit status 2."""
    try:
        if action == "status":  # its lines quote the store and the claims: no terminal escapes from there
            with terminal_stdout():
                return status(plan)
        return {"status": status, "cancel": cancel, "run": submit}[action](plan)
    except ClusterError as exc:
        print(f"sslbench {plan.command}: error: {exc}", file=sys.stderr)
        return 2
