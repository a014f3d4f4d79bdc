"""Python bytecode for the big imports (torch and its compiler, Ray) where the environment forbids writing it.

Some images, the project's GPU machine among them, set ``PYTHONDONTWRITEBYTECODE=1`` and ship their packages
without ``__pycache__``: every process then compiles the Python sources of torch, its compiler stack and Ray
anew. On the H200 machine (Nov 30) ``import torch, torch._dynamo, torch._inductor.compile_fx`` took 12 s in every
new process. Where that is so, the bytecode goes to a cache folder of ours (``sys.pycache_prefix``): written once,
read by every later process, the sources and site-packages untouched, which is what the variable is usually set
for. Child processes (Ray's workers, ``python -m trainer`` runs) inherit the choice through the environment.

``BLUEBERRY_PYCACHE=off`` leaves Python as it is; ``BLUEBERRY_PYCACHE=DIR`` names the folder (default:
``$BLUEBERRY_CACHE/pycache``, else ``~/.cache/blueberry-tune/pycache``, beside the token cache).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

OFF = ("off", "0", "no", "false")


def use_bytecode_cache() -> str | None:
    """Where bytecode is kept from now on, if this changed it (else None). Call before the big imports."""
    setting = os.environ.get("BLUEBERRY_PYCACHE", "").strip()
    if setting.lower() in OFF or not sys.dont_write_bytecode:
        return None  # asked not to, or Python writes bytecode already
    prefix = setting or sys.pycache_prefix or str(
        Path(os.environ.get("BLUEBERRY_CACHE") or "~/.cache/blueberry-tune").expanduser() / "pycache")
    try:
        Path(prefix).mkdir(parents=True, exist_ok=True)
    except OSError:
        return None  # no writable cache folder: run as before, only slower to start
    sys.pycache_prefix = prefix
    sys.dont_write_bytecode = False
    os.environ["PYTHONPYCACHEPREFIX"] = prefix
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    return prefix
