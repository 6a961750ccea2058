"""The plan of a sweep and its loop: what one invocation of ``sslbench sweep`` (or ``sslbench bench``) does with a
grid, run inline here or by the workers of :mod:`sslbench.execution.cluster`.

* :func:`make_plan` → :class:`Plan`: the settings, the grid (duplicates dropped), the store, the environment, and
  which cases the store already has with a final status (on the same setup, for bench);
* :func:`run_plan`: run the cases to do one after the other, each record appended (and its case claimed) as soon as
  the case ends; Ctrl-C / SIGTERM records the running case as "interrupted" (exit 130 / 143);
* :func:`dry_run`, :func:`grid_records`, :func:`devices_line`: what the plan would do, what the store has of it.

One case runs through :func:`sslbench.execution.bench.run_case` (bench) or in a child process
``python -m sslbench.execution.plan --train-worker SPEC`` (train, :func:`sslbench.execution.runner.run_child`).
The command line, settings and grid building are :mod:`sslbench.execution.sweep`'s, above this module; the cluster
executors (:mod:`sslbench.execution.cluster`) sit between the two and use only this public API, so that no import
circle joins the command, its loop and the executors.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import os
import shlex
import signal
import sys
import time
import warnings
from dataclasses import dataclass, field

from sslbench.execution import cases as bench_cases
from sslbench.execution.runner import case_folder, run_child, signal_of, sigterm_as_interrupt, stop_name
from sslbench.records import FINAL_STATUSES, case_id, make_record, read_records
from sslbench.records.claims import read_claims, tidy, try_claim
from sslbench.records.paths import append_record_safely
from sslbench.records.projection_cache import read_projected_cached
from sslbench.records.store import read_projected, store_size

__all__ = [
    "SweepError",
    "TRAIN_KIND",
    "Plan",
    "make_plan",
    "run_plan",
    "dry_run",
    "grid_records",
    "devices_line",
    "describe",
    "record_kind",
    "sweep_id_of",
    "train_config",
    "planned_without_cuda",
    "EtaEstimator",
]


class SweepError(ValueError):
    """Bad input (config, option values): the message names the problem and the fix; ``run`` exits with 2."""


TRAIN_KIND = "train"


def planned_without_cuda(devices: list[str]) -> bool:
    """Whether some of ``devices`` is a CUDA device and this machine has none: such a grid can be planned (a dry
    run) but not run here."""
    from sslbench.devices import cuda_available

    return any(str(d).startswith("cuda") for d in devices) and not cuda_available()


def record_kind(settings: dict) -> str:
    return bench_cases.KIND if settings["kind"] == "bench" else TRAIN_KIND


def train_config(case: dict, settings: dict, *, out: str | None = None, resume: bool = False):
    """The :class:`sslbench.training.config.TrainConfig` of one training case (checkpoints in ``results/checkpoints`` and
    logs in ``results/runs`` unless the train options say otherwise; no progress bar)."""
    from sslbench.training.config import TrainConfig

    opts = dict(settings["train_options"])
    return TrainConfig(regularizer=case["regularizer"], dataset=case["dataset"], fraction=case["fraction"],
                       dim=case["dim"], views=case["views"], batch_size=case["batch"], epochs=case["epochs"],
                       seed=case["seed"], device=case["device"], hparams=dict(case.get("hparams") or {}),
                       data_options=dict(case.get("data_options") or {}), out=out,
                       resume="auto" if resume else None, progress=False, verbose=True, **opts)


# ==============================================================================================================
# Descriptions
# ==============================================================================================================
def describe_train(case: dict) -> str:
    hp = " " + ",".join(f"{k}={v}" for k, v in case["hparams"].items()) if case.get("hparams") else ""
    opts = " " + " ".join(f"{k}={v}" for k, v in case["train_options"].items()) if case.get("train_options") else ""
    return (f"{case['regularizer']} {case['dataset']} D={case['dim']} V={case['views']} frac={case['fraction']:g} "
            f"seed={case['seed']} epochs={case['epochs']} B={case['batch']} {case['device']}{hp}{opts}")


def describe(kind: str, case: dict) -> str:
    return bench_cases.describe(case) if kind == "bench" else describe_train(case)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


# ==============================================================================================================
# ETA from the measured durations
# ==============================================================================================================
class EtaEstimator:
    """Remaining time of a sweep, from the durations of the cases measured so far.

    Each case has a *group* (bench: regularizer, algorithm, device; train: data set, device) and a *work*
    (bench: 1; train: epochs × fraction × views, what the training time scales with). A case's duration is
    modelled as ``a + b × work`` (a: start-up and evaluation, b: seconds per unit of work), fitted by least
    squares to the finished cases of its group, or of all finished cases when its group has none yet. With one
    distinct work (always for bench) or a fit that is not positive, it is the ratio ``work × Σ seconds / Σ work``
    (for bench: the group's mean). With nothing measured the ETA is unknown. Durations recorded by earlier runs of
    the same grid (``extra.wall_s``) seed the estimate, so a resumed sweep has an ETA from the start.
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._groups: dict[tuple, list[tuple[float, float]]] = {}  # group -> [(work, seconds), ...]
        self._all: list[tuple[float, float]] = []

    def group(self, case: dict) -> tuple:
        if self.kind == "bench":
            return case.get("regularizer"), case.get("algorithm"), case.get("device")
        return case.get("dataset"), case.get("device")

    def work(self, case: dict) -> float:
        if self.kind == "bench":
            return 1.0
        return float(case.get("epochs", 1)) * float(case.get("fraction", 1.0)) * float(case.get("views", 2))

    def add(self, case: dict, seconds: float | None) -> None:
        if seconds is None or not math.isfinite(seconds) or seconds < 0:
            return
        obs = (self.work(case), float(seconds))
        self._groups.setdefault(self.group(case), []).append(obs)
        self._all.append(obs)

    @staticmethod
    def _model(obs: list[tuple[float, float]]) -> tuple[float, float] | None:
        """(a, b) of ``seconds ≈ a + b·work`` for the observations, or None when there are none."""
        total_w = sum(w for w, _ in obs)
        if not obs or total_w <= 0:
            return None
        ratio = (0.0, sum(s for _, s in obs) / total_w)
        n = len(obs)
        mean_w = total_w / n
        mean_s = sum(s for _, s in obs) / n
        var_w = sum((w - mean_w) ** 2 for w, _ in obs)
        if var_w <= 1e-12 * max(1.0, mean_w**2):
            return ratio
        b = sum((w - mean_w) * (s - mean_s) for w, s in obs) / var_w
        a = mean_s - b * mean_w
        return (a, b) if a >= 0 and b > 0 else ratio

    def predict(self, case: dict) -> float | None:
        model = self._model(self._groups.get(self.group(case)) or self._all)
        return None if model is None else model[0] + model[1] * self.work(case)

    def remaining(self, cases: list[dict]) -> float | None:
        total = 0.0
        for c in cases:
            p = self.predict(c)
            if p is None:
                return None
            total += p
        return total


# ==============================================================================================================
# Running one case
# ==============================================================================================================
@dataclass
class _Outcome:
    record: dict
    wall_s: float
    interrupt: BaseException | None = None  # the Ctrl-C / SIGTERM that stopped a training child (re-raised)


def _isolated(case: dict, s: dict) -> bool:
    return s["isolate"] == "always" or (s["isolate"] == "auto" and not case["device"].startswith("cuda"))


def _run_bench_case(case: dict, s: dict, env: dict, clock=time.perf_counter) -> _Outcome:
    from sslbench import regularizers
    from sslbench.execution import bench

    isolate = _isolated(case, s)
    t0 = clock()
    m = bench.run_case(case, isolate=isolate, warmup=s["warmup"], repeats=s["repeats"], min_time_s=s["min_time"],
                       max_repeats=s["max_repeats"], timeout_s=s["timeout"], threads=s["threads"], seed=s["seed"])
    wall = clock() - t0
    # the extras of sslbench bench's records, so that the two commands' stores are interchangeable
    rec = m.to_record(bench.KIND, case, env=env, extra={"isolated": isolate, "seed": s["seed"], "wall_s": wall,
                                                        "regularizer_source": regularizers.source_record(
                                                            case["regularizer"])})
    return _Outcome(rec, wall)


def _train_child_spec(case: dict, s: dict, store: str, resume: bool) -> dict:
    cfg = train_config(case, s, out=store, resume=resume)
    return {"config": dataclasses.asdict(cfg), "threads": s["threads"]}


def _train_record_of(child, case: dict, store: str, env: dict, timeout: float) -> dict:
    """The child's own record when it wrote one (it may have finished just before a time-out or an interrupt),
    else the sweep's record of how the child ended."""
    from sslbench import regularizers

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        written = read_records(store, kind=TRAIN_KIND)
    if written:
        rec = written[-1]  # train() writes exactly one record per run
        if rec["status"] == "error":
            rec["extra"].setdefault("output", child.output)
        return rec
    status, message = child.status, child.message
    if status is None:
        status, message = "error", (f"the training process {child.exit_text()} before writing a record: "
                                    f"{child.last_line}")
    metrics = {"timeout_s": timeout} if status == "timeout" else {}
    return make_record(TRAIN_KIND, case, metrics, status, env=env, message=message,
                       extra={"output": child.output, "returncode": child.returncode,
                              "regularizer_source": regularizers.source_record(case["regularizer"])})


def _run_train_case(case: dict, s: dict, env: dict, *, resume: bool, sweep_id: str) -> _Outcome:
    """One training case in a child process (:func:`sslbench.execution.runner.run_child`), killed after
    ``timeout`` seconds; Ctrl-C / SIGTERM is forwarded to the child as SIGINT (it stops after its current step,
    checkpoints and records "interrupted") and re-raised by the caller once the record is stored."""
    env_vars = {"OMP_NUM_THREADS": s["threads"], "MKL_NUM_THREADS": s["threads"]} if s["threads"] else None
    gpus = s.get("gpus_per_case") or 0
    launcher = ("-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={gpus}") if gpus > 1 else ()
    with case_folder() as folder:
        store = str(folder / "record.jsonl")
        child = run_child("sslbench.execution.plan", "--train-worker", _train_child_spec(case, s, store, resume),
                          folder, timeout_s=s["timeout"], limit=f"--timeout {s['timeout']:g} s", env_vars=env_vars,
                          launcher=launcher)
        rec = _train_record_of(child, case, store, env, s["timeout"])
    rec["extra"]["sweep"] = {"id": sweep_id, "case": case, "wall_s": child.wall_s}
    return _Outcome(rec, child.wall_s, child.interrupt)


def _train_worker(spec_path: str) -> int:
    """The child of a training case: ``train(TrainConfig(**spec["config"]))``, whose record goes to the temporary
    store the parent reads. Exceptions propagate (``train`` has recorded them as "error" when it could)."""
    import torch

    from sslbench.training.config import TrainConfig
    from sslbench.training.train import train

    with open(spec_path) as f:
        spec = json.load(f)
    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    record = train(TrainConfig(**spec["config"]))
    return {"ok": 0, "interrupted": 130}.get(record["status"], 1)


def sweep_id_of(record: dict) -> str | None:
    """The sweep case id a stored record answers: ``extra.sweep.id`` for training records written through a
    sweep, else the record's own ``id`` (bench records, whose case *is* the sweep's case)."""
    sw = (record.get("extra") or {}).get("sweep")
    if isinstance(sw, dict) and sw.get("id"):
        return sw["id"]
    return record.get("id")


def _summary(kind: str, rec: dict) -> str:
    if kind == "bench":
        from sslbench.execution import bench
        from sslbench.execution.measure import Measurement

        return bench.summary_line(Measurement(status=rec["status"], metrics=rec["metrics"], message=rec["message"]))
    if rec["status"] != "ok":
        return f"{rec['status']}: {rec['message']}"
    m = rec["metrics"]
    parts = ["ok"]
    for key, label in (("linear_top1", "linear"), ("knn_top1", "kNN")):
        if m.get(key) is not None:
            init = m.get(f"init_{key}")
            parts.append(f"{label} {m[key]:.2f}%" + (f" (init {init:.2f}%)" if init is not None else ""))
    if m.get("train_time_s") is not None:
        from sslbench.probe.cpu_load import busy_note

        parts.append(f"train {m['train_time_s']:.1f} s{busy_note(m)}")
    return " ".join(parts)


#: what resume, ``--status``, the ETA and the devices line read of a stored record's env and extra
_SLIM_ENV = (*bench_cases.SETUP_KEYS, "device_name")
_SLIM_EXTRA = ("sweep", "wall_s")
#: names :func:`slim_record`'s projection in the cache of projected records (a new name when it keeps more)
SLIM_NAME = "slim-1"


def slim_record(rec: dict) -> dict:
    """The part of a stored record that resume, ``--status``, the ETA and the devices line read (a projection: a
    record is about 2.7 KB, mostly metrics, env and extra; this keeps its ids, status, message, case, the env's
    setup keys, ``extra.sweep`` and ``extra.wall_s``, and a failure's ``extra.output``, which ``--status``
    prints)."""
    env = rec.get("env") if isinstance(rec.get("env"), dict) else {}
    extra = rec.get("extra") if isinstance(rec.get("extra"), dict) else {}
    slim = {k: rec[k] for k in ("schema", "kind", "id", "created", "case", "status", "message") if k in rec}
    slim["env"] = {k: env[k] for k in _SLIM_ENV if k in env}
    slim["extra"] = {k: extra[k] for k in _SLIM_EXTRA if k in extra}
    if rec.get("status") not in FINAL_STATUSES and "output" in extra:
        slim["extra"]["output"] = extra["output"]
    return slim


WATCH_NAME = "watch-1"


def watch_record(rec: dict) -> dict:
    """The part of a stored record that ``--status`` reads (narrower than :func:`slim_record`, so its cache parses
    in half the time): kind, id, status, message, ``env.device_name``, ``extra.sweep.id`` and a failure's
    ``extra.output``. Change :data:`WATCH_NAME` whenever this changes what it keeps."""
    env = rec.get("env") if isinstance(rec.get("env"), dict) else {}
    extra = rec.get("extra") if isinstance(rec.get("extra"), dict) else {}
    slim = {k: rec[k] for k in ("kind", "id", "status", "message") if k in rec}
    slim["env"] = {"device_name": env["device_name"]} if "device_name" in env else {}
    slim["extra"] = {}
    sweep = extra.get("sweep")
    if isinstance(sweep, dict) and "id" in sweep:
        slim["extra"]["sweep"] = {"id": sweep["id"]}
    if rec.get("status") not in FINAL_STATUSES and "output" in extra:
        slim["extra"]["output"] = extra["output"]
    return slim


_LAST_READ: dict = {}  # {(path, kind, start): (the file's stamp, records)}: the last read, reused while unchanged


def _read_store(path: str, kind: str, command: str, start: int = 0, watching: bool = False) -> list[dict]:
    """The store's records of ``kind`` (from byte ``start``), each as :func:`slim_record` keeps it; the lines
    that are not records are reported in one line and skipped. ``--status`` asks three times (the plan, the
    counts, the devices): while the file is the same (identity, size, modification time) it is read once."""
    try:
        st = os.stat(path)
        stamp = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    except OSError:
        stamp = None
    key = (os.path.realpath(path), kind, start, watching)
    if stamp is not None and key in _LAST_READ and _LAST_READ[key][0] == stamp:
        return list(_LAST_READ[key][1])
    _LAST_READ.clear()
    records = _read_store_now(path, kind, command, start, watching)
    if stamp is not None:
        _LAST_READ[key] = (stamp, records)
    return list(records)


def _read_store_now(path: str, kind: str, command: str, start: int, watching: bool = False) -> list[dict]:
    keep, name = (watch_record, WATCH_NAME) if watching else (slim_record, SLIM_NAME)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        records = (read_projected_cached(path, keep, name=name, kind=kind) if start == 0 else
                   read_projected(path, keep, kind=kind, start=start))
    for w in caught:
        if issubclass(w.category, RuntimeWarning):
            print(f"sslbench {command}: warning: {w.message}", file=sys.stderr, flush=True)
    return records


def _resume_command(command: str) -> str:
    argv = sys.argv[1:]
    if argv[:1] == [command]:
        return "sslbench " + " ".join(shlex.quote(a) for a in argv)
    return "the same command"


# ==============================================================================================================
# The loop: plan, run each case, store its record, summarise (sslbench bench is a front end of it)
# ==============================================================================================================
@dataclass
class Plan:
    """What one invocation does: the settings, the grid (duplicates dropped), the store, the environment and
    which cases the store already has with a final status (on the same setup, for bench)."""

    command: str
    settings: dict
    cases: list[dict]
    ids: list[str]
    out: str
    env: dict
    records: list[dict]  # the store's records of this kind that count for resume
    in_store: list[bool]
    offset: int = 0  # the store's size when it was read: what other writers append later starts there
    run_ids: list[str] | None = None  # train: each case's run id (sslbench.training.train.planned_run_id)
    watching: bool = False  # --status / --cancel: the store read through watch_record (make_plan)

    def sid_of(self, record: dict) -> str | None:
        """The case of this grid a stored record answers: its sweep case id (:func:`sweep_id_of`), or, for a
        training record that ``sslbench train`` wrote on its own, the case of the same run id: one run, whichever
        command started it."""
        sid = sweep_id_of(record)
        if sid in self._run_of:
            return sid
        return self._by_run.get(record.get("id"), sid)

    def claim_key(self, sid: str) -> str:
        """The claim of a case: a training case claims its run (``run-<run id>``, as ``sslbench train`` does), a
        bench case its case id."""
        run_id = self._run_of.get(sid)
        return f"run-{run_id}" if run_id else sid

    @functools.cached_property
    def _run_of(self) -> dict[str, str | None]:  # {case id: run id (None for bench)}
        return dict(zip(self.ids, self.run_ids or [None] * len(self.ids)))

    @functools.cached_property
    def _by_run(self) -> dict[str, str]:  # {run id: case id}
        return dict(zip(self.run_ids or [], self.ids))

    @property
    def kind(self) -> str:
        return self.settings["kind"]

    @property
    def done(self) -> list[bool]:
        return self.in_store if self.settings["resume"] else [False] * len(self.ids)

    @property
    def todo(self) -> list[tuple[dict, str]]:
        return [(c, i) for c, i, d in zip(self.cases, self.ids, self.done) if not d]

    @property
    def name(self) -> str:
        return f"sslbench {self.command}" + (f" ({self.kind})" if self.command == "sweep" else "")


def _unique_cases(cases: list[dict], rkind: str, command: str) -> tuple[list[dict], list[str]]:
    ids = [case_id(rkind, c) for c in cases]
    if len(set(ids)) != len(ids):
        print(f"sslbench {command}: note: {len(ids) - len(set(ids))} case(s) of the grid repeat another (a value "
              "listed twice); each is measured once", file=sys.stderr)
        unique = dict(zip(ids, cases))  # first occurrence kept, order kept
        ids, cases = list(unique), list(unique.values())
    return cases, ids


def make_plan(command: str, s: dict, cases: list[dict], out: str, *, watching: bool = False,
              run_ids: list[str] | None = None) -> Plan:
    """The plan of grid ``cases`` (duplicates dropped) on store ``out``. ``run_ids``: the training cases' run ids
    when known already (a cached grid, :mod:`sslbench.execution.plan_cache`). ``watching`` (``--status``,
    ``--cancel``): those read the store through :func:`grid_records` and never ask what counts for resume, so the
    plan has no environment (whose fingerprint imports torch), no records and nothing done."""
    rkind = record_kind(s)
    cases, ids = _unique_cases(cases, rkind, command)
    if run_ids is None:
        run_ids = _run_ids(s, cases)
    offset = store_size(out)
    if watching:
        return Plan(command, s, cases, ids, out, {}, [], [False] * len(ids), offset, run_ids, watching=True)
    from sslbench.probe.environment import environment

    env = environment()
    if s["kind"] == "bench" and s["threads"]:
        env["threads"] = s["threads"]
    records = _counting(s, env, _read_store(out, rkind, command))
    plan = Plan(command, s, cases, ids, out, env, records, [], offset, run_ids)
    done_ids = {plan.sid_of(r) for r in records if r.get("status") in FINAL_STATUSES}
    plan.in_store = [i in done_ids for i in ids]
    return plan


def _run_ids(s: dict, cases: list[dict]) -> list[str] | None:
    """The run id of each training case, as ``sslbench train`` names the same run (None for bench)."""
    if s["kind"] != "train":
        return None
    from sslbench.training.train import planned_run_id

    gpus = s.get("gpus_per_case") or 0
    # a dry run plans a CUDA grid on a machine without CUDA: the configuration is resolved on the CPU (as the
    # grid's check does), the id names the case's own device
    return [planned_run_id(train_config({**c, "device": "cpu"} if planned_without_cuda([c["device"]]) else c, s),
                           world=gpus if gpus > 1 else 1, device=c["device"]) for c in cases]


def _counting(s: dict, env: dict, records: list[dict]) -> list[dict]:
    """The records that count for resume: all of them for train, those measured on the same setup for bench."""
    if s["kind"] == "bench":
        return [r for r in records if bench_cases.same_setup(r["env"], env)]
    return records


def _done_meanwhile(plan: Plan, sid: str) -> bool:
    """Whether another writer stored a final record of case ``sid`` since this run read the store."""
    new = _counting(plan.settings, plan.env, _read_store(plan.out, record_kind(plan.settings), plan.command,
                                                         start=plan.offset))
    return any(plan.sid_of(r) == sid and r.get("status") in FINAL_STATUSES for r in new)


def dry_run(plan: Plan) -> int:
    for c, d in zip(plan.cases, plan.in_store):
        print(f"{'done' if d else 'todo'}  {describe(plan.kind, c)}")
    print(f"{len(plan.cases)} case(s): {sum(plan.in_store)} already done in {plan.out}, {len(plan.todo)} to run"
          + ("" if plan.settings["resume"] else " (--no-resume: all of them)"))
    if planned_without_cuda([c.get("device", "") for c in plan.cases]):
        print("note: this machine has no CUDA device: the plan only; running these cases needs CUDA")
    return 0


def _eta_from_store(plan: Plan) -> EtaEstimator:
    """An ETA seeded with the durations of this grid's finished cases from earlier runs."""
    eta = EtaEstimator(plan.kind)
    wanted = set(plan.ids)
    for r in plan.records:
        if plan.sid_of(r) in wanted and r.get("status") in FINAL_STATUSES:
            sw = r["extra"].get("sweep") if isinstance(r["extra"].get("sweep"), dict) else {}
            eta.add(sw.get("case") or r["case"], sw.get("wall_s", r["extra"].get("wall_s")))
    return eta


class _Progress:
    """The progress bar on stderr (tqdm), or plain lines on stdout when there is none."""

    def __init__(self, enabled: bool, total: int):
        self.bar = None
        if enabled and total:
            from tqdm import tqdm

            self.bar = tqdm(total=total, file=sys.stderr, unit="case", dynamic_ncols=True,
                            bar_format="{desc}{percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]")

    def say(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=sys.stdout)
        else:
            print(text, flush=True)

    def eta(self, seconds: float | None, advance: bool = False) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(f"eta {_duration(seconds)}", refresh=not advance)
            if advance:
                self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


@contextlib.contextmanager
def _signals_deferred():
    """Ctrl-C and SIGTERM wait until the block has ended (storing a finished case's record is never cut short)."""
    sigs = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, sigs) if hasattr(signal, "pthread_sigmask") else None
    try:
        yield
    finally:
        if old is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)


@dataclass
class _Run:
    plan: Plan
    progress: _Progress
    eta: EtaEstimator
    counts: dict = field(default_factory=dict)
    current: dict | None = None  # the case running now (recorded as "interrupted" if the run stops)
    elsewhere: int = 0  # cases left to another writer (running there, or done there meanwhile)
    busy: int = 0  # CPU bench cases timed while other processes took the cores their threads needed


def _store(plan: Plan, record: dict) -> None:
    append_record_safely(plan.out, record)


def _claim(run: _Run, case: dict, sid: str):
    """This process's claim on the case, or None (and a line saying so) when another writer runs it or has
    stored it since this run read the store."""
    plan = run.plan
    claim = try_claim(plan.out, plan.claim_key(sid))
    why = None
    if claim is None:
        held = read_claims(plan.out).get(plan.claim_key(sid), {})
        why = (f"running elsewhere (host {held.get('host', '?')}, pid {held.get('pid', '?')}"
               + (f", job {held['job']}" if held.get("job") else "") + ")")
    elif _done_meanwhile(plan, sid):
        claim.release()
        claim, why = None, "recorded meanwhile by another writer"
    if claim is None:
        run.elsewhere += 1
        run.progress.say(f"skipped {describe(plan.kind, case)}: {why}")
    elif claim.taken_over:
        run.progress.say(f"taking over {describe(plan.kind, case)}: {claim.taken_over}")
    return claim


def _run_one(run: _Run, k: int, case: dict, sid: str) -> None:
    claim = None
    try:
        # the claim and ``run.current`` are taken together: a Ctrl-C / SIGTERM between the two (the claim is
        # visible at once, then the store is read again: ``_done_meanwhile``) used to stop a claimed case without
        # recording it as "interrupted" (the run had no current case yet); it is now delivered after both
        with _signals_deferred():
            claim = _claim(run, case, sid)
            if claim is not None:
                run.current = case
        if claim is None:
            return
        _run_claimed(run, k, case, sid)
    finally:
        if claim is not None:
            claim.release()


def _run_claimed(run: _Run, k: int, case: dict, sid: str) -> None:
    plan, s = run.plan, run.plan.settings
    todo = plan.todo
    run.progress.eta(run.eta.remaining([c for c, _ in todo[k:]]))
    run.current = case
    if plan.kind == "bench":
        outcome = _run_bench_case(case, s, plan.env)
    else:
        outcome = _run_train_case(case, s, plan.env, resume=s["resume"], sweep_id=sid)
    with _signals_deferred():
        _store(plan, outcome.record)
        run.current = None
    status = outcome.record["status"]
    if outcome.interrupt is not None:  # a training child that stopped on the forwarded signal and wrote its record
        print(f"interrupted during {describe(plan.kind, case)}: recorded as {status!r}"
              + (" (it runs again on resume, from its checkpoint)" if status == "interrupted" else ""),
              file=sys.stderr)
        raise outcome.interrupt
    run.counts[status] = run.counts.get(status, 0) + 1
    if status == "ok":
        from sslbench.probe.cpu_load import busy_note

        run.busy += bool(busy_note(outcome.record.get("metrics") or {}))
    run.eta.add(case, outcome.wall_s)
    remaining = run.eta.remaining([c for c, _ in todo[k + 1:]])
    n_done = sum(plan.done)
    run.progress.say(f"[{n_done + k + 1}/{len(plan.cases)}] {describe(plan.kind, case)}: "
                     f"{_summary(plan.kind, outcome.record)} ({outcome.wall_s:.1f} s; eta {_duration(remaining)})")
    run.progress.eta(remaining, advance=True)


def _interrupted(run: _Run, exc: BaseException) -> int:
    """Record the running case as "interrupted", say how to resume; the exit status is 128 + the signal (130
    for Ctrl-C / SIGINT, 143 for SIGTERM)."""
    plan = run.plan
    run.progress.close()
    signum = signal_of(exc)
    how = stop_name(signum)
    if run.current is not None:
        from sslbench import regularizers

        rkind = record_kind(plan.settings)
        rec = make_record(rkind, run.current, {}, "interrupted", env=plan.env, message=f"interrupted by the user "
                          f"({how})", extra={"regularizer_source": regularizers.source_record(
                              run.current["regularizer"])} if run.current.get("regularizer") else None)
        if plan.kind == "train":
            rec["extra"]["sweep"] = {"id": case_id(rkind, run.current), "case": run.current, "wall_s": None}
        _store(plan, rec)
        print(f"interrupted during {describe(plan.kind, run.current)}: recorded as 'interrupted' (it runs again on "
              "resume)", file=sys.stderr)
    print(f"sslbench {plan.command}: interrupted ({how}) after {sum(run.counts.values())} new case(s) this run; "
          f"every finished case is in {plan.out}. To resume, run {_resume_command(plan.command)} again",
          file=sys.stderr, flush=True)
    return 128 + signum


def run_plan(plan: Plan) -> int:
    """Run the cases to do, one after the other, each record appended as soon as the case ends."""
    n_done, todo = sum(plan.done), plan.todo
    skipped_note = f"; {n_done} already done, skipped (--no-resume to redo)" if n_done else ""
    print(f"{plan.name}: {len(plan.cases)} case(s) -> {plan.out}{skipped_note}; {len(todo)} to run", flush=True)
    progress = plan.settings["progress"] if plan.settings["progress"] is not None else sys.stderr.isatty()
    run = _Run(plan, _Progress(progress, len(todo)), _eta_from_store(plan))
    t_start = time.perf_counter()
    try:
        with sigterm_as_interrupt():
            for k, (case, sid) in enumerate(todo):
                _run_one(run, k, case, sid)
    except KeyboardInterrupt as exc:
        return _interrupted(run, exc)
    finally:
        tidy(plan.out)
    run.progress.close()
    summary = ", ".join(f"{k} {v}" for k, v in sorted(run.counts.items())) or "nothing to run"
    print(f"done in {_duration(time.perf_counter() - t_start)}: {summary}"
          + (f"; {n_done} skipped, already in {plan.out}" if n_done else "")
          + (f"; {run.elsewhere} left to another writer" if run.elsewhere else ""), flush=True)
    print(devices_line(plan), flush=True)
    if run.busy:
        print(f"warning: {run.busy} of {sum(run.counts.values())} case(s) were timed while other processes used the "
              "cores their threads needed (metrics.other_cpu_cores; marked [busy] above): OpenMP threads then wait "
              "for one another and a time can be many times its own (accuracies are not affected). Measure again on "
              "an idle machine (--no-resume), or with --threads 1", file=sys.stderr, flush=True)
    return 1 if run.counts.get("error") else 0


def grid_records(plan: Plan) -> list[dict]:
    """The store's records of this grid's cases (every writer's, read now)."""
    wanted = set(plan.ids)
    return [r for r in _read_store(plan.out, record_kind(plan.settings), plan.command, watching=plan.watching)
            if plan.sid_of(r) in wanted]


def devices_line(plan: Plan) -> str:
    """One line naming the devices (``env.device_name``) of the grid's records in the store, and a warning
    when there are several: their figures are not to be pooled (``sslbench analyze`` and the dashboard keep
    them apart by device)."""
    names: dict[str, int] = {}
    for r in grid_records(plan):
        name = str((r.get("env") or {}).get("device_name") or "unknown device")
        names[name] = names.get(name, 0) + 1
    if not names:
        return "devices: none recorded yet"
    text = ", ".join(f"{n} ({c} record(s))" for n, c in sorted(names.items(), key=lambda kv: -kv[1]))
    if len(names) == 1:
        return f"device: {text}"
    return (f"warning: the store mixes {len(names)} devices: {text}; their timings and accuracies are not "
            "comparable, compare them per device (the dashboard's Device filter, analyze's device_name column)")


if __name__ == "__main__":  # a training case's child process (sslbench.execution.runner starts it)
    if len(sys.argv) != 3 or sys.argv[1] != "--train-worker":
        sys.exit("python -m sslbench.execution.plan runs one training case for `sslbench sweep`: "
                 "use `sslbench sweep` instead")
    sys.exit(_train_worker(sys.argv[2]))
