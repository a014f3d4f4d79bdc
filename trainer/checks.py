"""Checks of command-line values, the same rules for every command (trainer, search, promote, transfer).

Each check raises :class:`ConfigError` with one line naming the flag, the value and what is allowed, so a
command can refuse bad input before it starts Ray or writes anything. Imports nothing heavy (no torch).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from trainer.config import ConfigError


def number(flag: str, value: Any, *, above: float | None = None, at_least: float | None = None,
           at_most: float | None = None, below: float | None = None) -> None:
    """A finite number in the given range (``None`` = the flag was not given: nothing to check)."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{flag} must be a finite number, got {value}")
    wanted = [f"> {above:g}" if above is not None else "", f">= {at_least:g}" if at_least is not None else "",
              f"<= {at_most:g}" if at_most is not None else "", f"< {below:g}" if below is not None else ""]
    ok = ((above is None or value > above) and (at_least is None or value >= at_least)
          and (at_most is None or value <= at_most) and (below is None or value < below))
    if not ok:
        raise ConfigError(f"{flag} must be {' and '.join(w for w in wanted if w)}, got {value:g}")


def positive(flag: str, value: Any) -> None:
    number(flag, value, above=0)


def count(flag: str, value: Any, minimum: int = 1) -> None:
    """A whole number >= ``minimum``."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{flag} must be a whole number >= {minimum}, got {value}")
    if value < minimum:
        raise ConfigError(f"{flag} must be >= {minimum}, got {value}")


def _existing_parent_file(path: Path) -> Path | None:
    for parent in path.parents:
        if parent.exists():
            return parent if not parent.is_dir() else None
    return None


def folder_to_write(flag: str, path: str | Path | None) -> None:
    """A folder that may exist (then as a folder) or be created: not a file, and no file on the way."""
    if path is None:
        return
    p = Path(path)
    if str(path).strip() == "":
        raise ConfigError(f"{flag} must be a folder path, got an empty string")
    if p.exists() and not p.is_dir():
        raise ConfigError(f"{flag} {path} is a file, not a folder")
    blocker = _existing_parent_file(p)
    if blocker is not None:
        raise ConfigError(f"{flag} {path}: {blocker} is a file, not a folder")


def existing_file(flag: str, path: str | Path | None) -> None:
    """``path`` (when given) names a file that exists, not a folder."""
    if path is None:
        return
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{flag} {path} does not exist")
    if p.is_dir():
        raise ConfigError(f"{flag} {path} is a folder, not a file")


def plain_name(flag: str, name: str | None) -> None:
    """A run name: one directory name under the runs folder, never a path that leaves it."""
    if name is None:
        return
    if (not name.strip() or Path(name).name != name or name in (".", "..") or "/" in name or "\\" in name
            or name.startswith("-")):
        raise ConfigError(f"{flag} must be a plain directory name (no '/', '..' or absolute path), got {name!r}")
