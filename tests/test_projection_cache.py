"""The cache of projected records (sslbench.records.projection_cache) that sweep --status and resume read: the
same records and warnings as read_projected, only appended lines parsed, never trusted blindly; no pyarrow."""

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from sslbench.execution.plan import SLIM_NAME, slim_record
from sslbench.records import projection_cache as PC
from sslbench.records import store as S

ROOT = Path(__file__).resolve().parent.parent


def _rec(i: int, **over) -> dict:
    rec = {"schema": 1, "kind": "regularizer_bench" if i % 3 else "train", "id": f"id{i}",
           "created": "2026-11-28T09:22:21+00:00", "status": "ok" if i % 4 else "error", "message": None,
           "case": {"regularizer": "vicreg", "dim": 64 * (i + 1)}, "metrics": {"time_median_s": 0.1 * i},
           "env": {"torch": "2.13", "device_name": "cpu", "threads": 2},
           "extra": {"sweep": {"id": f"s{i}"}, "wall_s": 1.5 * i, "output": "x" * 50, "config": {"big": [1] * 50}}}
    rec.update(over)
    return rec


LINES = [json.dumps(_rec(i)) for i in range(8)] + [
    "", "not json", "[1, 2]", json.dumps(_rec(8, kind=None)), json.dumps(_rec(9, status="weird")),
    '{"schema": 1, "kind": "train", "id": "big", "status": "ok", "case": {"dim": 1e400}, "env": {}}',
    json.dumps(_rec(10, message="ünïcode \\ backslash"))]


def _write(path, lines):
    path.write_text("".join(line + "\n" for line in lines))


def _read(fn, *a, **k):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        out = fn(*a, **k)
    return out, [str(x.message) for x in w]


def _cached(store, folder, kind=None):
    return _read(PC.read_projected_cached, store, slim_record, name=SLIM_NAME, kind=kind, folder=folder)


def _plain(store, kind=None):
    return _read(S.read_projected, store, slim_record, kind=kind)


@pytest.fixture
def parsed(monkeypatch):
    counted = []
    real = S.parse_lines
    monkeypatch.setattr(S, "parse_lines", lambda lines, *a, **k: counted.append(len(lines)) or real(lines, *a, **k))
    return counted


@pytest.mark.parametrize("kind", [None, "train", "regularizer_bench"])
def test_cached_records_are_read_projected_s_and_later_reads_parse_only_appended_lines(tmp_path, parsed, kind):
    store, folder = tmp_path / "store.jsonl", tmp_path / "cache"
    _write(store, LINES)
    first, w_first = _cached(store, folder, kind)
    plain, w_plain = _plain(store, kind)
    assert first == plain and w_first == w_plain and len(plain) >= 3 and any("line 10" in m for m in w_plain)
    with open(store, "a") as f:
        f.write("".join(json.dumps(_rec(i)) + "\n" for i in range(20, 26)))
    parsed.clear()
    again, w_again = _cached(store, folder, kind)
    assert sum(parsed) == 6  # the appended lines only
    plain, w_plain = _plain(store, kind)
    assert again == plain and w_again == w_plain  # the skipped lines of the cached part warned about again
    parsed.clear()
    assert _cached(store, folder, kind) == (plain, w_plain) and sum(parsed) == 0


def test_a_line_being_written_is_read_but_not_cached(tmp_path, parsed):
    store, folder = tmp_path / "store.jsonl", tmp_path / "cache"
    _write(store, LINES[:4])
    with open(store, "a") as f:
        f.write(LINES[4][:30])
    records, w = _cached(store, folder)
    assert len(records) == 4 and any("line 5" in m for m in w)
    with open(store, "a") as f:
        f.write(LINES[4][30:] + "\n")
    parsed.clear()
    records, w = _cached(store, folder)
    assert sum(parsed) == 1 and w == [] and records == _plain(store)[0]


@pytest.mark.parametrize("change", ["shrink", "replace", "rewrite"])
def test_a_store_that_shrank_or_was_replaced_is_read_from_the_start(tmp_path, parsed, change):
    store, folder = tmp_path / "store.jsonl", tmp_path / "cache"
    _write(store, LINES[:8])
    _cached(store, folder)
    if change == "shrink":
        _write(store, LINES[:3])
    elif change == "replace":
        other = tmp_path / "other.jsonl"
        _write(other, LINES[2:10])
        other.replace(store)
    else:
        store.write_text(store.read_text().replace('"id7"', '"idY"'))  # within the hashed 4 KB before the offset
    parsed.clear()
    records, _ = _cached(store, folder)
    assert sum(parsed) == len(store.read_text().splitlines())
    assert records == _plain(store)[0]


@pytest.mark.parametrize("damage", ["garbage", "link", "bad_key", "planted_record", "folder"])
def test_a_damaged_or_planted_cache_is_rebuilt_never_trusted(tmp_path, parsed, damage):
    store, folder = tmp_path / "store.jsonl", tmp_path / "cache"
    _write(store, LINES[:8])
    _cached(store, folder)
    cache = next(folder.glob("*" + PC._SUFFIX))
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    lines = cache.read_text().splitlines()
    if damage == "garbage":
        cache.write_text("not a cache")
    elif damage == "link":
        cache.unlink()
        cache.symlink_to(target)
    elif damage == "folder":
        cache.unlink()
        cache.mkdir()
    elif damage == "bad_key":
        key = json.loads(lines[0])
        key["offset"] = -5
        cache.write_text("\n".join([json.dumps(key)] + lines[1:]) + "\n")
    else:  # a record the store does not have, claiming a case is done
        cache.write_text("\n".join(lines + [json.dumps({"kind": "regularizer_bench", "status": 7})]) + "\n")
    parsed.clear()
    records, w = _cached(store, folder)
    assert sum(parsed) == 8 and any("cached records" in m and "rebuilt" in m for m in w)
    assert records == _plain(store)[0]
    assert target.read_text() == "keep me"
    if damage != "folder":
        parsed.clear()
        assert _cached(store, folder)[1] == [] and sum(parsed) == 0  # rebuilt: trusted again


def test_off_or_a_foreign_folder_reads_the_store_itself(tmp_path, monkeypatch, parsed):
    store = tmp_path / "store.jsonl"
    _write(store, LINES[:6])
    monkeypatch.setenv("SSLBENCH_CACHE_DIR", "off")
    assert _read(PC.read_projected_cached, store, slim_record, name=SLIM_NAME)[0] == _plain(store)[0]
    theirs = tmp_path / "theirs"
    theirs.symlink_to(tmp_path)  # a link is not a folder of ours
    assert _cached(store, theirs)[0] == _plain(store)[0]
    assert not list(tmp_path.glob("*" + PC._SUFFIX))


def test_the_cache_needs_no_pyarrow_and_status_reads_through_it(tmp_path):
    store, folder = tmp_path / "store.jsonl", tmp_path / "cache"
    _write(store, LINES[:8])
    code = ("import sys; sys.modules['pyarrow'] = None; sys.modules['pandas'] = None\n"
            "from sslbench.execution import plan as P\n"
            f"print(len(P._read_store({str(store)!r}, 'regularizer_bench', 'sweep')))")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SSLBENCH_CACHE_DIR": str(folder)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) == len(_plain(store, "regularizer_bench")[0]) > 0
    assert len(list(folder.glob("*" + PC._SUFFIX))) == 1
