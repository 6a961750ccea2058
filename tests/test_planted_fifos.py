"""A FIFO planted where sslbench reads a file never blocks it (hardening: "anything read from disk may be hostile").

``open(path, "rb")`` of a FIFO waits for a writer that never comes: a ``planted.jsonl`` FIFO in a results folder
hung ``sslbench report`` (and analyze, the dashboard) for good. Every reader of a store, a log, a benchmark file or
a cache now opens without blocking and refuses what is not a regular file, with one warning naming it; the other
files are read as before. Each test runs under an alarm, so a regression fails instead of hanging the suite."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from sslbench.records import append_record, make_record
from sslbench.records.files import NotRegularFile, NotRegularStore, is_regular, open_readable, open_regular

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")


@pytest.fixture(autouse=True)
def alarm():
    """Fail (instead of hanging) when a read blocks for 30 s."""
    def ring(*_):
        raise TimeoutError("blocked on a FIFO")
    old = signal.signal(signal.SIGALRM, ring)
    signal.alarm(30)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def _store(path: Path, n: int = 3) -> Path:
    for i in range(n):
        append_record(path, make_record("regularizer_bench", {"regularizer": "barlow_twins", "dim": 8 * (i + 1)},
                                        {"time_median_s": 0.001 * (i + 1)}, env={}))
    return path


def test_open_readable_refuses_a_fifo_and_follows_a_link_to_a_store(tmp_path):
    fifo = tmp_path / "f.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(NotRegularStore) as e:
        open_readable(fifo)
    assert isinstance(e.value, OSError) and str(fifo) in str(e.value) and "not a regular file" in str(e.value)
    store = _store(tmp_path / "s.jsonl")
    (tmp_path / "link.jsonl").symlink_to(store)
    with open_readable(tmp_path / "link.jsonl") as f:
        assert f.read() == store.read_bytes()
        assert os.get_blocking(f.fileno())  # set back to blocking once checked
    with pytest.raises(FileNotFoundError):
        open_readable(tmp_path / "missing.jsonl")
    assert is_regular(store) and not is_regular(fifo) and not is_regular(tmp_path) and not is_regular(tmp_path / "x")


def test_open_regular_refuses_a_fifo_without_blocking(tmp_path):
    fifo = tmp_path / "cache.parquet"
    os.mkfifo(fifo)
    with pytest.raises(NotRegularFile):
        open_regular(fifo)
    regular = tmp_path / "r"
    regular.write_bytes(b"x")
    with open_regular(regular) as f:
        assert f.read() == b"x" and os.get_blocking(f.fileno())


def test_load_results_skips_a_planted_fifo_with_one_warning(tmp_path, monkeypatch):
    from sslbench.analysis import load_results

    monkeypatch.setenv("SSLBENCH_CACHE_DIR", "off")
    _store(tmp_path / "good.jsonl")
    os.mkfifo(tmp_path / "planted.jsonl")
    os.mkfifo(tmp_path / "bench.json")  # a pytest-benchmark file's name
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        df = load_results(tmp_path, asv=[])
    assert len(df) == 3 and set(df["source"]) == {"good.jsonl"}
    said = [str(x.message) for x in w if "not a regular file" in str(x.message)]
    assert len(said) == 2 and any("planted.jsonl" in s for s in said) and any("bench.json" in s for s in said)


def test_a_fifo_in_an_asv_results_folder_is_skipped(tmp_path):
    from sslbench.records.readers import read_asv_results

    machine = tmp_path / "results" / "box"
    machine.mkdir(parents=True)
    (tmp_path / "results" / "benchmarks.json").write_text("{}")
    os.mkfifo(machine / "machine.json")
    os.mkfifo(machine / "abc123-env.json")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        assert read_asv_results(tmp_path / "results") == []
    assert any("abc123-env.json" in str(x.message) and "not a regular file" in str(x.message) for x in w)


def test_a_fifo_planted_at_the_snapshot_path_is_refused_and_the_store_read(tmp_path, monkeypatch):
    pytest.importorskip("pyarrow")
    from sslbench.records import columnar

    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    monkeypatch.setenv("SSLBENCH_CACHE_DIR", str(cache))
    store = _store(tmp_path / "store.jsonl")
    snap = columnar._snapshot_path(cache, store)
    os.mkfifo(snap)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        df = columnar.read_frame_cached(store)
    assert len(df) == 3
    assert any("not a regular file" in str(x.message) for x in w), [str(x.message) for x in w]
    assert is_regular(snap) and not snap.is_symlink()  # a fresh snapshot replaced the FIFO (renamed over it)
    other = cache / "0123456789abcdef0123456789abcdef.parquet"
    os.mkfifo(other)
    assert columnar._snapshot_store(other) is None  # the stale-snapshot cleaner's reader: no block, no key


def test_the_dashboards_tail_reader_does_not_block_on_a_fifo(tmp_path):
    from sslbench.analysis import live

    os.mkfifo(tmp_path / "f.jsonl")
    assert live._state(tmp_path / "f.jsonl") is None


def test_sslbench_report_with_a_planted_fifo_prints_one_warning_and_its_report(tmp_path):
    """The command line end to end, in its own process (a hang there is cut by the timeout)."""
    _store(tmp_path / "good.jsonl")
    os.mkfifo(tmp_path / "planted.jsonl")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SSLBENCH_CACHE_DIR": "off"}
    out = subprocess.run([sys.executable, "-m", "sslbench", "report", "--results", str(tmp_path)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=25)
    assert out.returncode == 0, out.stderr
    err = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(err) == 1 and "planted.jsonl" in err[0] and "not a regular file" in err[0], out.stderr
    assert "Traceback" not in out.stderr and "== fft" in out.stdout


def test_a_fifo_at_the_checkpoint_path_is_one_clear_error(tmp_path):
    from sslbench.training.checkpoint import CheckpointError, load_checkpoint

    os.mkfifo(tmp_path / "run.pt")
    with pytest.raises(CheckpointError, match="not a regular file"):
        load_checkpoint(tmp_path / "run.pt")
