"""Small file utilities shared by every stage: atomic writes, config hashes, the git revision.

Every artefact of zoobench is written through :func:`atomic_write`, so a reader never sees a partial
file: the bytes go to a temporary file in the same folder (named ``.<name>.tmp-<pid>-<random>``) and
are renamed over the target in one ``os.replace``. Readers that list folders skip names starting with
``.`` (see :func:`is_temporary`).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import pickle
import secrets
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

TMP_MARK = ".tmp-"


def is_temporary(path: str | os.PathLike) -> bool:
    """True for the temporary files :func:`atomic_write` leaves behind when a process is killed."""
    name = Path(path).name
    return name.startswith(".") and TMP_MARK in name


#: how writers report a full disk without an ``OSError``: torch's zip writer checks the file position
#: after each write (``[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534`` on a
#: full 64 KiB tmpfs) and safetensors wraps the OS error (``Error while serializing: I/O error: No
#: space left on device (os error 28)``)
_DISK_FULL_MARKS = ("unexpected pos", "PytorchStreamWriter failed writing", "os error 28")
_DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def is_disk_full(error: BaseException) -> bool:
    """True when ``error`` is a writer's report of a full disk or an exceeded quota: an
    ``OSError`` with ENOSPC / EDQUOT, or torch's and safetensors' own wording of it."""
    if isinstance(error, OSError) and error.errno in _DISK_FULL_ERRNOS:
        return True
    text = str(error)
    return "No space left on device" in text or any(m in text for m in _DISK_FULL_MARKS)


def free_space(folder: str | os.PathLike) -> str:
    """``"<n> bytes free in <folder>"`` (``shutil.disk_usage``), or why it is unknown."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError as e:
        return f"free space in {folder} unknown: {e.strerror or e}"
    return f"{free} bytes ({free / 2**20:.1f} MiB) free in {folder}"


def disk_full_error(path: str | os.PathLike, error: BaseException) -> OSError:
    """The ``OSError(ENOSPC)`` to raise for a write of ``path`` that failed on a full disk: it names
    the file, the free space left and the writer's own message."""
    path = Path(path)
    return OSError(
        errno.ENOSPC,
        f"cannot write {path}: no space left on device ({free_space(path.parent)}; the writer "
        f"said: {error}); free some space or write elsewhere, then rerun",
    )


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed onto ``path``.

    On any exception the temporary file is removed and ``path`` is left as it was. A full disk
    (:func:`is_disk_full`, whatever the writer: ``open().write``, ``torch.save``, safetensors)
    raises an ``OSError(ENOSPC)`` naming ``path`` and the free space left.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OSError(f"cannot create output folder {path.parent}: {e.strerror}") from e
    tmp = path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}")
    try:
        yield tmp
        if not tmp.exists():
            raise RuntimeError(f"nothing was written for {path}")
        os.replace(tmp, path)
    except PermissionError as e:
        raise PermissionError(
            e.errno,
            f"cannot write {path}: permission denied in {path.parent} (is the output folder read-only?)",
        ) from e
    except IsADirectoryError as e:
        raise IsADirectoryError(
            e.errno, f"cannot write {path}: a folder of that name is in the way (move it away)"
        ) from e
    except Exception as e:
        # the temporary file still holds the bytes written so far: free them before measuring
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if is_disk_full(e):
            raise disk_full_error(path, e) from e
        if not isinstance(e, OSError) or type(e).__module__ != "builtins":
            raise  # a specific error of the writer's own (e.g. a missing dataset)
        # e.g. an I/O error: say which file could not be written
        raise type(e)(e.errno, f"cannot write {path}: {e.strerror or e}") from e
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def atomic_write(path: str | os.PathLike, writer: Callable[[Path], Any]) -> Path:
    """Call ``writer(tmp_path)`` and atomically move the result to ``path``."""
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    return atomic_write(path, write)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(
        path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n"
    )


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; a malformed file raises ``ValueError`` naming it."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"malformed JSON in {path}: {e}") from e


def _json_default(obj: Any) -> Any:
    # numpy scalars and paths appear in cards and results
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


#: what a pickled dataset file (CIFAR-style batches, animal-mnist's arrays) may reference: numpy
#: arrays, dtypes and scalars. Plain containers, numbers, strings and bytes need no global at all.
DATA_PICKLE_GLOBALS = frozenset(
    {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),  # bytes in protocol-2 pickles written by Python 3
    }
)


class _DataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        # numpy 2 renamed numpy.core to numpy._core; older pickles name the old module
        if module.startswith("numpy.core."):
            module = "numpy._core." + module.removeprefix("numpy.core.")
        if (module, name) not in DATA_PICKLE_GLOBALS:
            raise pickle.UnpicklingError(
                f"refusing to unpickle {module}.{name}: a data file may only hold numpy arrays and "
                "plain Python values (lists, dicts, numbers, strings); this one would run code"
            )
        return super().find_class(module, name)


def load_data_pickle(file: Any, *, encoding: str = "ASCII", source: str | os.PathLike = "") -> Any:
    """Unpickle a *data* file (numpy arrays and plain Python values) without running its code.

    ``pickle.load`` calls any importable function a file names, so a malicious file placed where
    a dataset is expected would run code. This unpickler allows only :data:`DATA_PICKLE_GLOBALS`;
    anything else raises ``pickle.UnpicklingError`` (a ``ValueError`` here, naming ``source``).
    ``encoding="latin1"`` reads Python 2 pickles (the CIFAR batches) as ``pickle.load`` does.
    """
    try:
        return _DataUnpickler(file, encoding=encoding).load()
    except pickle.UnpicklingError as e:
        where = f" {os.fspath(source)}" if source else ""
        raise ValueError(f"unsafe or corrupted pickle{where}: {e}") from e


def config_hash(cfg: Any, length: int = 12) -> str:
    """Stable short hash of a (resolved) config: a dict, a dataclass-like mapping or an OmegaConf node."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(cfg, DictConfig | ListConfig):
            cfg = OmegaConf.to_container(cfg, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        pass
    blob = json.dumps(cfg, sort_keys=True, default=_json_default).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def git_revision(root: str | os.PathLike | None = None) -> str:
    """The current git commit (with ``+dirty`` when the tree has changes), or ``unknown``."""
    root = Path(root) if root else Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5
        )
        if rev.returncode != 0:
            return "unknown"
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
