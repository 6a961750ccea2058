"""Output paths checked before any work (sslbench.records.paths), with messages that name the path as given, and a
record that is never lost when its store cannot be written (a full disk: a fake writer raising ENOSPC)."""

import errno
import json
import os

import pytest

from sslbench.records import make_record, read_records, store
from sslbench.records import paths as P

RECORD = make_record("k", {"i": 1}, {"x": 0.5}, env={})


def test_a_folder_as_out_is_refused_naming_a_file_to_use(tmp_path):
    with pytest.raises(P.OutputPathError) as exc:
        P.check_store_path(tmp_path, "--out")
    assert str(exc.value) == (f"--out {tmp_path}: this is a folder; name a file such as "
                              f"{tmp_path / 'results.jsonl'}")


def test_a_path_below_a_file_names_the_path_given_and_the_file_in_the_way(tmp_path):
    (tmp_path / "f").write_text("x")
    given = tmp_path / "f" / "sub" / "x.jsonl"
    with pytest.raises(P.OutputPathError) as exc:
        P.check_store_path(given, "--out")
    assert str(exc.value) == f"--out {given}: {tmp_path / 'f'} is a file, not a folder; choose a path under a folder"
    with pytest.raises(P.OutputPathError) as exc:
        P.check_output_dir(tmp_path / "f" / "logs", "--log-dir")
    assert str(exc.value).startswith(f"--log-dir {tmp_path / 'f' / 'logs'}: {tmp_path / 'f'} is a file")
    with pytest.raises(P.OutputPathError, match="this is a file, not a folder"):
        P.check_output_dir(tmp_path / "f", "--checkpoint-dir")


def test_an_existing_file_that_is_not_a_store_is_refused_and_a_store_or_new_file_accepted(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# My notes\n\nkeep me\n")
    with pytest.raises(P.OutputPathError, match=r"README\.md: the file exists and is not a JSON-lines record store"):
        P.check_store_path(readme)
    assert readme.read_text() == "# My notes\n\nkeep me\n"
    existing = tmp_path / "store.jsonl"
    store.append_record(existing, RECORD)
    assert P.check_store_path(existing) == existing
    (tmp_path / "empty.jsonl").write_text("")
    assert P.check_store_path(tmp_path / "empty.jsonl") == tmp_path / "empty.jsonl"
    new = tmp_path / "a" / "b" / "new.jsonl"
    assert P.check_store_path(new) == new and new.parent.is_dir() and not new.exists()


def test_an_unwritable_folder_is_refused(tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    # root may write anywhere, so the permission is faked: the folder says it is not writable
    monkeypatch.setattr(P.os, "access", lambda p, mode: False if os.fspath(p) == str(locked) else real_access(p, mode))
    with pytest.raises(P.OutputPathError) as exc:
        P.check_store_path(locked / "r.jsonl", "--out")
    assert str(exc.value) == (f"--out {locked / 'r.jsonl'}: its folder {locked} is not writable; choose a folder "
                              "you can write to")
    with pytest.raises(P.OutputPathError, match=f"--log-dir {locked}: the folder is not writable"):
        P.check_output_dir(locked, "--log-dir")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only folders")
def test_an_unwritable_folder_is_refused_for_real(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(P.OutputPathError, match="is not writable"):
            P.check_store_path(locked / "r.jsonl")
    finally:
        locked.chmod(0o700)


def _disk_full_for(*full):
    """A store writer that fails with ENOSPC for paths under ``full`` and writes elsewhere."""
    real = store.append_record

    def append(path, record):
        if any(str(path).startswith(str(f)) for f in full):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real(path, record)

    return append


def test_a_full_disk_saves_the_record_in_the_fallback_folder(tmp_path, monkeypatch, capsys):
    out, logs = tmp_path / "disk" / "r.jsonl", tmp_path / "logs"
    monkeypatch.setattr(store, "append_record", _disk_full_for(tmp_path / "disk"))
    where = P.append_record_safely(out, RECORD, fallback_dirs=[None, logs])
    target = logs / f"unsaved-{RECORD['id']}.jsonl"
    assert where == str(target) and read_records(target) == [RECORD]
    err = capsys.readouterr().err
    assert f"could not write the record to {out} (No space left on device); it was saved to {target}" in err


def test_when_every_folder_is_full_the_record_is_printed_whole(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(store, "append_record", _disk_full_for(tmp_path, "unsaved-"))
    assert P.append_record_safely(tmp_path / "r.jsonl", RECORD, fallback_dirs=[tmp_path / "logs"]) == "stdout"
    captured = capsys.readouterr()
    assert json.loads(captured.out) == RECORD  # nothing lost
    assert "nor to a fallback file; here it is whole" in captured.err


def test_a_working_store_gets_the_record(tmp_path):
    assert P.append_record_safely(tmp_path / "r.jsonl", RECORD) == str(tmp_path / "r.jsonl")
    assert read_records(tmp_path / "r.jsonl") == [RECORD]
