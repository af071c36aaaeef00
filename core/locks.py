"""A lock file that works on shared storage (NFS): claim, heartbeat, staleness, break.

Why not ``fcntl.flock``/``lockf``: on NFS, ``flock`` is either emulated with POSIX byte-range
locks (Linux >= 2.6.12) or local to one client (older kernels, ``local_lock=flock``), POSIX locks
need a working lock daemon (NLM for NFSv3, often missing or firewalled), and a lock held by a node
that died is kept until the server's lease or grace period ends. A lock that is a *file* needs only
what every NFS server guarantees: creating a name atomically, and renaming a name atomically.

Protocol (one lock = one file ``path``):

- **claim**: the owner record (JSON: host, pid, token, start time) is written to a unique temporary
  file next to ``path``, then hard-linked to ``path``; the link fails when ``path`` exists, so one
  claimant wins, and the lock appears with its owner record complete. As the ``open(2)`` manual
  advises for NFS, a link whose reply was lost is recognised by the temporary file's link count
  (2 = it worked). Where hard links are not supported, ``O_CREAT | O_EXCL`` is used instead (a
  reader then may briefly see an empty record; it falls back on the file's time).
- **heartbeat**: the owner sets the lock file's modification time to its clock every ``heartbeat``
  seconds (a background thread, and :meth:`FileLock.refresh` on progress). ``utime`` never
  re-creates a lock that was broken, so a late heartbeat cannot resurrect it; the thread notices a
  lost lock (the token at ``path`` is no longer its own) and sets :attr:`FileLock.lost`.
- **staleness**: a lock may be broken when its heartbeat is older than ``stale_after`` seconds, or
  when its owner is on this host and its process is gone. Nothing else breaks a lock: a live owner
  on another host is waited for, however long it takes, until its heartbeat stops.
- **break**: the stale file is renamed to a unique name (one breaker wins the rename), checked to
  be the very file judged stale (same inode and token; otherwise it is put back), and removed; then
  the breaker claims as usual.

Well posed when the hosts' clocks agree to well within ``stale_after`` (the heartbeat is the
owner's clock, read by other hosts) and ``stale_after`` exceeds the heartbeat period plus the NFS
attribute cache time (``acregmax``, 60 s by default): the defaults (300 s, heartbeat every 30 s)
do. A process that stops for longer than ``stale_after`` (suspended, swapped out) may lose its
lock; it is then told by :attr:`FileLock.lost`.

Within one process a lock is re-entrant for the thread that holds it (a nested ``with`` on the same
path is a no-op), and exclusive between threads.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

STALE_AFTER = 300.0
POLL = 0.5
_HOST = socket.gethostname()

# path -> (thread id, depth): locks this process holds, for re-entrance by the same thread
_held: dict[str, tuple[int, int]] = {}
_held_guard = threading.Lock()


@dataclass(frozen=True)
class LockOwner:
    """Who holds a lock: ``host``, ``pid``, ``started`` (epoch seconds, the claim) and
    ``heartbeat`` (epoch seconds, the lock file's modification time); ``token`` tells two claims
    apart."""

    host: str
    pid: int
    started: float
    heartbeat: float
    token: str

    def describe(self, now: float | None = None) -> str:
        now = time.time() if now is None else now
        since = datetime.fromtimestamp(self.started, timezone.utc).isoformat(timespec="seconds")
        return (
            f"pid {self.pid} on host {self.host!r} since {since} "
            f"(last heartbeat {max(0.0, now - self.heartbeat):.0f} s ago)"
        )


def read_owner(path: str | os.PathLike) -> LockOwner | None:
    """The owner of the lock file ``path``, or None when there is no lock.

    A lock whose record is unreadable (being written without hard links, or truncated) gets
    ``host='?'``, ``pid=-1`` and the file's time as both start and heartbeat.
    """
    path = Path(path)
    try:
        st = path.stat()
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        rec = json.loads(raw)
        return LockOwner(
            host=str(rec["host"]),
            pid=int(rec["pid"]),
            started=float(rec["started"]),
            heartbeat=st.st_mtime,
            token=str(rec["token"]),
        )
    except (ValueError, KeyError, TypeError):
        return LockOwner("?", -1, st.st_mtime, st.st_mtime, "")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def stale_reason(owner: LockOwner, stale_after: float, now: float | None = None) -> str | None:
    """Why the lock of ``owner`` may be broken, or None when it must be respected."""
    now = time.time() if now is None else now
    age = now - owner.heartbeat
    if age > stale_after:
        return f"its heartbeat is {age:.0f} s old (stale after {stale_after:g} s)"
    if owner.host == _HOST and owner.pid > 0 and not _process_alive(owner.pid):
        return f"its process {owner.pid} on this host is gone"
    return None


class FileLock:
    """An exclusive lock on ``path`` (see the module docstring for the protocol).

    Args:
        path: the lock file; its folder is created when missing.
        stale_after: seconds without a heartbeat after which another process may break the lock.
        heartbeat: seconds between heartbeats while held (default ``stale_after / 10``); 0 turns
            the background thread off (call :meth:`refresh` on progress instead).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        stale_after: float = STALE_AFTER,
        heartbeat: float | None = None,
    ) -> None:
        if not stale_after > 0:
            raise ValueError(f"stale_after must be > 0 seconds, got {stale_after!r}")
        heartbeat = stale_after / 10 if heartbeat is None else heartbeat
        if heartbeat < 0 or heartbeat >= stale_after:
            raise ValueError(
                f"heartbeat must be >= 0 and below stale_after ({stale_after:g} s), got {heartbeat!r}"
            )
        self.path = Path(os.path.abspath(path))
        self.stale_after = float(stale_after)
        self.heartbeat = float(heartbeat)
        self.token = ""
        self.lost = False
        self.waited = 0.0  # seconds acquire() waited for another owner (0: claimed at once)
        self._nested = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- state

    @property
    def held(self) -> bool:
        return bool(self.token) or self._nested

    def owner(self) -> LockOwner | None:
        """The current owner on disk (None when the lock is free)."""
        return read_owner(self.path)

    # -- claim and release

    def try_claim(self) -> bool:
        """Claim the lock now if it is free or stale; False when a live owner holds it."""
        if self.held:
            raise RuntimeError(f"lock {self.path} is already held by this FileLock")
        key = str(self.path)
        with _held_guard:
            holder = _held.get(key)
            if holder is not None:
                if holder[0] != threading.get_ident():
                    return False  # another thread of this process holds it
                _held[key] = (holder[0], holder[1] + 1)
                self._nested = True
                return True
            if not self._claim_file():
                owner = read_owner(self.path)
                if owner is None:  # released meanwhile
                    if not self._claim_file():
                        return False
                elif not self._may_break(owner) or not (self._break(owner) and self._claim_file()):
                    return False
            _held[key] = (threading.get_ident(), 1)
        self.lost = False
        if self.heartbeat > 0:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._beat, name=f"heartbeat {self.path.name}", daemon=True
            )
            self._thread.start()
        return True

    def acquire(self, timeout: float | None = None, poll: float = POLL) -> FileLock:
        """Wait until the lock is claimed; ``timeout`` seconds (None: forever) then TimeoutError
        naming the owner."""
        if timeout is not None and timeout < 0:
            raise ValueError(f"timeout must be >= 0 seconds or None, got {timeout!r}")
        if not poll > 0:
            raise ValueError(f"poll must be > 0 seconds, got {poll!r}")
        start = time.monotonic()
        self.waited = 0.0
        if self.try_claim():
            return self
        while not self.try_claim():
            waited = time.monotonic() - start
            if timeout is not None and waited >= timeout:
                owner = self.owner()
                who = owner.describe() if owner else "an owner that has just released it"
                raise TimeoutError(
                    f"could not lock {self.path} within {timeout:g} s: held by {who}; it may be "
                    f"broken once its heartbeat is {self.stale_after:g} s old or its process is gone"
                )
            time.sleep(poll if timeout is None else min(poll, max(0.0, timeout - waited)))
        self.waited = time.monotonic() - start
        return self

    def release(self) -> None:
        """Give the lock back (a no-op when not held)."""
        if not self.held:
            return
        key = str(self.path)
        with _held_guard:
            tid, depth = _held[key]
            if depth > 1:
                _held[key] = (tid, depth - 1)
                self._nested = False
                return
            del _held[key]
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        owner = read_owner(self.path)
        if owner is not None and owner.token == self.token:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        self.token = ""

    def refresh(self) -> None:
        """Heartbeat now: set the lock file's time to this clock (sets :attr:`lost` when the lock
        was broken by another process)."""
        if self._nested or not self.token:
            return
        owner = read_owner(self.path)
        if owner is None or owner.token != self.token:
            self.lost = True
            return
        now = time.time()
        with contextlib.suppress(FileNotFoundError):
            os.utime(self.path, (now, now))

    def __enter__(self) -> FileLock:
        return self if self.held else self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    # -- internals

    def _claim_file(self) -> bool:
        """One atomic attempt to create ``path`` with this process's owner record."""
        token = f"{os.getpid()}-{secrets.token_hex(8)}"
        now = time.time()
        record = json.dumps(
            {"host": _HOST, "pid": os.getpid(), "started": now, "token": token}, sort_keys=True
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.claim-{token}")
        tmp.write_text(record, encoding="utf-8")
        try:
            try:
                os.link(tmp, self.path)
            except FileExistsError:
                # an NFS reply lost after the link was made: the link count says it was
                if tmp.stat().st_nlink != 2:
                    return False
            except OSError as e:
                if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                    raise
                return self._claim_exclusive(record, token)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        self.token = token
        return True

    def _claim_exclusive(self, record: str, token: str) -> bool:
        # a filesystem without hard links: the record follows the creation
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(record)
        self.token = token
        return True

    def _may_break(self, owner: LockOwner) -> bool:
        if owner.host == _HOST and owner.pid == os.getpid():
            # not held by this process (checked by the caller): left by an earlier process that
            # had the same pid (containers restart their pids from the same numbers)
            return True
        return stale_reason(owner, self.stale_after) is not None

    def _break(self, judged: LockOwner) -> bool:
        """Move the stale lock ``judged`` out of the way; False when another process was faster."""
        aside = self.path.with_name(f".{self.path.name}.stale-{secrets.token_hex(8)}")
        try:
            before = self.path.stat()
            os.rename(self.path, aside)
        except FileNotFoundError:
            return True  # released or broken by someone else: just claim
        moved = read_owner(aside)
        if moved is None or os.stat(aside).st_ino != before.st_ino or moved.token != judged.token:
            # a fresh claim replaced the stale lock between the judgement and the rename: put it
            # back (unless yet another claim took the name) and respect it
            with contextlib.suppress(FileExistsError, FileNotFoundError):
                os.link(aside, self.path)
            with contextlib.suppress(FileNotFoundError):
                aside.unlink()
            return False
        with contextlib.suppress(FileNotFoundError):
            aside.unlink()
        return True

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat):
            self.refresh()
            if self.lost:
                return


@contextlib.contextmanager
def file_lock(
    path: str | os.PathLike,
    timeout: float | None = None,
    stale_after: float = STALE_AFTER,
    poll: float = POLL,
    heartbeat: float | None = None,
) -> Iterator[FileLock]:
    """``with file_lock(path, timeout=60) as lock:`` holds :class:`FileLock` ``path`` inside the
    block; TimeoutError (naming the owner: host, pid, since) after ``timeout`` seconds of waiting
    (None: wait as long as the owner lives)."""
    lock = FileLock(path, stale_after=stale_after, heartbeat=heartbeat)
    lock.acquire(timeout=timeout, poll=poll)
    try:
        yield lock
    finally:
        lock.release()


def try_claim(
    path: str | os.PathLike, stale_after: float = STALE_AFTER, heartbeat: float | None = None
) -> FileLock | None:
    """The claimed :class:`FileLock` of ``path``, or None when a live owner holds it (no wait).
    Release it with :meth:`FileLock.release` (or use it in a ``with`` block)."""
    lock = FileLock(path, stale_after=stale_after, heartbeat=heartbeat)
    return lock if lock.try_claim() else None


__all__ = ["FileLock", "LockOwner", "file_lock", "read_owner", "stale_reason", "try_claim"]
