"""The lock file of core.locks, with real concurrent processes: mutual exclusion (no lost update),
stale locks broken, live locks respected, a timeout that names the owner."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest

from core.locks import FileLock, file_lock, read_owner, stale_reason, try_claim
from tests.factories import spawn_python

INCREMENTS = 150

COUNTER = """
import contextlib, os, sys, time
from pathlib import Path
from core.locks import file_lock
lock, counter, start, n, use_lock = sys.argv[1:6]
tmp = f"{counter}.{os.getpid()}"
while not Path(start).exists():  # both processes begin together
    time.sleep(0.005)
for _ in range(int(n)):
    with file_lock(lock, timeout=30, poll=0.001) if use_lock == "1" else contextlib.nullcontext():
        value = int(Path(counter).read_text())
        time.sleep(0.0005)  # read-modify-write with room for the other process
        Path(tmp).write_text(str(value + 1))
        os.replace(tmp, counter)  # whole values only: a lost update is the only failure
"""


def _count_with_two_processes(tmp_path: Path, use_lock: bool) -> int:
    counter, start = tmp_path / "counter", tmp_path / "start"
    counter.write_text("0")
    procs = [
        spawn_python(COUNTER, tmp_path / "c.lock", counter, start, INCREMENTS, int(use_lock))
        for _ in range(2)
    ]
    time.sleep(0.5)
    start.touch()
    errors = [p.communicate(timeout=60)[1] for p in procs]
    for p, err in zip(procs, errors):
        assert p.returncode == 0, err[-2000:]
    return int(counter.read_text())


def test_two_processes_never_lose_an_update(tmp_path: Path) -> None:
    assert _count_with_two_processes(tmp_path, use_lock=True) == 2 * INCREMENTS
    assert not list(tmp_path.glob("*.lock")) and not list(tmp_path.glob(".c.lock*"))
    # the same without the lock loses updates: the test can tell
    assert _count_with_two_processes(tmp_path, use_lock=False) < 2 * INCREMENTS


HOLDER = """
import sys, time
from pathlib import Path
from core.locks import file_lock
with file_lock(sys.argv[1], stale_after=float(sys.argv[3]), heartbeat=float(sys.argv[4])):
    Path(sys.argv[2]).touch()
    time.sleep(float(sys.argv[5]))
"""


def _hold(tmp_path: Path, stale_after: float, heartbeat: float, seconds: float, name="x.lock"):
    lock, ready = tmp_path / name, tmp_path / "ready"
    proc = spawn_python(HOLDER, lock, ready, stale_after, heartbeat, seconds)
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.02)
    return proc, lock


def test_a_live_lock_is_respected_and_the_timeout_names_its_owner(tmp_path: Path) -> None:
    # short stale_after, but a heartbeat keeps it fresh: never broken while its owner lives
    proc, lock = _hold(tmp_path, stale_after=1.0, heartbeat=0.1, seconds=4)
    try:
        assert try_claim(lock, stale_after=1.0) is None
        owner = read_owner(lock)
        assert owner is not None and owner.pid == proc.pid and owner.host == socket.gethostname()
        t0 = time.monotonic()
        with pytest.raises(TimeoutError) as info:
            with file_lock(lock, timeout=1.5, stale_after=1.0, poll=0.05):
                pass
        assert 1.5 <= time.monotonic() - t0 < 3.0
        msg = str(info.value)
        assert f"pid {proc.pid} on host {socket.gethostname()!r} since " in msg
        assert str(lock) in msg and "last heartbeat" in msg
        # the heartbeat kept the lock file's time within ~0.1 s (+ polling) of now
        assert time.time() - read_owner(lock).heartbeat < 0.6
    finally:
        proc.communicate(timeout=30)
    assert proc.returncode == 0 and not lock.exists()  # released on exit
    # free now: claimed at once
    with file_lock(lock, timeout=0) as held:
        assert held.held and read_owner(lock).pid == os.getpid()
    assert not lock.exists()


def test_stale_locks_are_broken(tmp_path: Path) -> None:
    lock = tmp_path / "s.lock"
    # 1. a lock of a process of this host that is gone (SIGKILL: no release)
    proc, _ = _hold(tmp_path, stale_after=300, heartbeat=0, seconds=60, name=lock.name)
    proc.kill()
    proc.communicate(timeout=30)
    dead = read_owner(lock)
    assert dead.pid == proc.pid
    assert stale_reason(dead, 300) == f"its process {proc.pid} on this host is gone"
    got = try_claim(lock)
    assert got is not None and read_owner(lock).token == got.token != dead.token
    got.release()

    # 2. another host's lock whose heartbeat stopped: kept while fresh, broken once stale
    record = {"host": "other-node", "pid": 4242, "started": time.time() - 50, "token": "t-1"}
    lock.write_text(json.dumps(record))
    assert try_claim(lock, stale_after=30) is None  # its heartbeat (the file's time) is fresh
    old = time.time() - 40
    os.utime(lock, (old, old))
    assert "heartbeat is 40 s old" in stale_reason(read_owner(lock), 30)
    with file_lock(lock, timeout=0, stale_after=30) as held:
        assert read_owner(lock).token == held.token
    assert not lock.exists() and not list(tmp_path.glob(".s.lock*"))  # nothing left aside


def test_bad_arguments_and_reentrance(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="stale_after must be > 0"):
        FileLock(tmp_path / "a.lock", stale_after=0)
    with pytest.raises(ValueError, match="heartbeat must be >= 0 and below stale_after"):
        FileLock(tmp_path / "a.lock", stale_after=10, heartbeat=10)
    with pytest.raises(ValueError, match="timeout must be >= 0"):
        FileLock(tmp_path / "a.lock").acquire(timeout=-1)
    # the same thread may nest; the outer release frees it
    with file_lock(tmp_path / "a.lock", timeout=0) as outer:
        with file_lock(tmp_path / "a.lock", timeout=0):
            assert read_owner(tmp_path / "a.lock").token == outer.token
        assert (tmp_path / "a.lock").exists()
    assert not (tmp_path / "a.lock").exists()
