"""The state of the code a result came from."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def git_state(root: Path = PROJECT_ROOT) -> dict[str, Any]:
    """``{"commit": HEAD's hash, "dirty": uncommitted changes?}``; both None outside a git checkout."""

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain"))}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
