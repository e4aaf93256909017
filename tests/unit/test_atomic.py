"""nbsupport.atomic: whole files or none, the umask's mode, and a lock across processes."""

import multiprocessing
import os
import time

import pytest

from nbsupport.atomic import atomic_open, atomic_write, current_umask, locked


def test_atomic_write_text_bytes_and_mode(tmp_path):
    mask = os.umask(0o027)
    try:
        assert current_umask() == 0o027 and current_umask() == 0o027  # reading leaves it set
        path = atomic_write(tmp_path / "sub" / "a.txt", "héllo")
        atomic_write(tmp_path / "b.bin", b"\x00\x01")
    finally:
        os.umask(mask)
    assert path.read_text(encoding="utf-8") == "héllo" and (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert path.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.txt", "b.bin", "sub"]


def test_a_failed_write_leaves_the_old_file(tmp_path):
    path = atomic_write(tmp_path / "a.txt", "old")
    with pytest.raises(KeyboardInterrupt), atomic_open(path, "w") as f:
        f.write("half")
        raise KeyboardInterrupt
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]
    with pytest.raises(ValueError, match="whole files"):
        with atomic_open(path, "a"):
            pass


def _append_under_lock(path, tag):
    with locked(path):
        text = path.read_text() if path.exists() else ""
        time.sleep(0.2)  # without the lock, the other process would read the same text
        atomic_write(path, text + tag)


def test_locked_serializes_read_merge_write(tmp_path):
    path = tmp_path / "index.txt"
    procs = [multiprocessing.Process(target=_append_under_lock, args=(path, t)) for t in "ab"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert sorted(path.read_text()) == ["a", "b"]
