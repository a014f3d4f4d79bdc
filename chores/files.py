"""Files that readers never see half-written, locks on files, and the JSON files of a records directory."""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# Files a records directory may hold that are not records (a transfer or promotion run kept beside them).
NOT_RECORDS = frozenset({"settings.json", "transfer.json", "best.json", "result.json", "config.json",
                         "params.json", "utilisation.json", "promotion.json"})


def _json_safe(value: Any) -> Any:
    """JSON has no NaN/inf: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def atomic_write(path: Path, write: Callable[[str], Any], *, mode: int | None = None) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it over ``path``: readers see the
    old file or the new one, never a part. ``mode``: the file's permissions (mkstemp makes them 0o600)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes, *, mode: int | None = None) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())

    atomic_write(path, write, mode=mode)


def atomic_write_text(path: Path, text: str, *, mode: int | None = None) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), mode=mode)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(_json_safe(obj), indent=2, default=str) + "\n")


def atomic_write_table(df: Any, path: Path) -> None:
    """A pandas DataFrame as ``.parquet`` or (any other suffix) ``.csv``, without its index."""
    path = Path(path)
    if path.suffix == ".parquet":
        atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False))
    else:
        atomic_write(path, lambda tmp: df.to_csv(tmp, index=False))


class LockBusy(Exception):
    """The lock is held by another process (``file_lock(..., wait=False)``)."""


@contextlib.contextmanager
def file_lock(path: Path, *, wait: bool = True, on_wait: Callable[[], Any] | None = None) -> Iterator[bool]:
    """An exclusive lock on the file ``path`` (created if need be) for the ``with`` block; the OS drops it when
    the process dies, killed or not. ``wait=False``: raise :class:`LockBusy` when another process holds it;
    otherwise ``on_wait()`` is called once, then it blocks. Yields False (and locks nothing) on a file system
    without locks (some network mounts) or a platform without ``fcntl``."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield False
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            locked = True
        except BlockingIOError:
            if not wait:
                raise LockBusy(str(path)) from None
            if on_wait is not None:
                on_wait()
            fcntl.flock(fh, fcntl.LOCK_EX)
            locked = True
        except OSError:
            locked = False
        try:
            yield locked
        finally:
            if locked:
                fcntl.flock(fh, fcntl.LOCK_UN)


def display_path(path: Path) -> str:
    """``path`` relative to the working directory when it is under it (as a user typed it), else absolute."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(Path(path).resolve())


# Files that make a folder a run directory (a search, promotion or transfer): JSON files inside one are the
# run's own (its trials/, Ray's params.json), never records.
RUN_MARKERS = ("settings.json", "trials.parquet", "trials.csv", "transfer.json")


def record_paths(root: Path) -> list[Path]:
    """The JSON files under a records directory that may be records, sorted: not hidden (nor under a hidden
    folder), not in a ``report/`` folder, not a run's own files (:data:`NOT_RECORDS`), not inside a run
    directory (:data:`RUN_MARKERS`)."""
    root = Path(root)
    runs = {marker.parent for name in RUN_MARKERS for marker in root.rglob(name)}
    out = []
    for path in sorted(root.rglob("*.json")):
        parts = path.relative_to(root).parts
        if path.name in NOT_RECORDS or "report" in parts[:-1] or any(p.startswith(".") for p in parts):
            continue
        if any(parent in runs for parent in path.parents):
            continue
        out.append(path)
    return out
