"""Compile-cache keys that do not depend on which modules a process happened to import first (issue 14).

Inductor's FX-graph and AOTAutograd caches key a graph on the pickled bytes of, among others, its inputs'
metadata, which holds a ``torch.memory_format``. A memory format has no ``__module__`` and pickles by the name
``torch.contiguous_format``, so ``pickle`` records it under the first module in ``sys.modules`` through which
that name resolves: ``torch._utils`` in a plain ``python -m trainer`` process, but
``optuna.samplers._gp.sampler`` (whose lazily imported ``torch`` resolves it) in a search's Ray worker, which
imports Optuna before torch. The same graph then gets two keys. On CPU (torch 2.13) a search worker missed all
10 FX graphs and 8 AOTAutograd entries that a plain process had cached on the same settings, and the pickled
inputs differed in that one module name; with this fix (and the CPU thread count pinned, as the trainer pins
it on CUDA) it hit all of them. ``tests/trainer/test_stable_keys.py`` shows the mechanism. On the H200 (torch
2.11, thread count pinned, Nov 30) the pattern is the same: a transfer's Ray workers, which never import
Optuna, hit all 10 FX graphs and started in 15-17 s, while each search's first trial on a GPU (its worker
imports Optuna first) missed 9-10 of them and started in 25-27 s (``bench/results/scaling-nov30e/``). With
this fix (sixth session, one H200) a search's first trial hit all 10 FX graphs and 8 AOTAutograd entries and
started in 11.7 s (``bench/results/scaling-nov30f/``).

:func:`install` registers a reducer for ``torch.memory_format`` that names this module's :func:`memory_format`
instead, so every process pickles a format to the same bytes, and unpickling still gives the same object (for
any ``pickle`` of a memory format in the process, not only cache keys).

:func:`tag_with_code` puts a digest of the trainer's own source into every compile-cache key. The caches key a
graph on what dynamo traced, not on the Python behind a custom op's registered backward: after a change to
``qk_norm_rope``'s backward (Dec 1, third session) a process running the trainer as it was before hit the new
version's cached backward graph and failed in it (``wrong number of dimensions1 for op
blueberry.qk_norm_rope_backward``, ``bench/results/dec01c/call1-survey``). A change that kept the shapes would have
run the stale graph silently. With the tag, each version of the trainer has its own cache entries.
"""

from __future__ import annotations

import copyreg
import hashlib
import os
from functools import cache
from pathlib import Path

import torch


def memory_format(name: str) -> torch.memory_format:
    """The memory format ``torch.<name>`` (what a pickled format is rebuilt with)."""
    fmt = getattr(torch, name)
    if not isinstance(fmt, torch.memory_format):
        raise ValueError(f"torch.{name} is not a memory format")
    return fmt


def _reduce(fmt: torch.memory_format):
    return memory_format, (str(fmt).removeprefix("torch."),)


def install() -> None:
    """Pickle memory formats by this module's name, whatever ``sys.modules`` holds (idempotent)."""
    copyreg.pickle(torch.memory_format, _reduce)


@cache
def code_digest() -> str:
    """A digest of every ``trainer/*.py`` file's bytes (16 hex digits)."""
    h = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def tag_with_code() -> str:
    """Key compiled graphs on the trainer's source (``torch.compiler.config.cache_key_tag``, which the FX-graph and
    AOTAutograd caches hash) from here on; returns the digest. Call before the first compile.

    The tag also goes into the environment (``TORCH_COMPILE_CACHE_KEY_TAG``, the setting's default), for inductor's
    compile workers: they are spawned at the first compile and read it at start. Inductor also keys each Triton
    kernel's cached autotuning result on the tag, and builds that key wherever the kernel is compiled or loaded: in
    a worker once the pool is up, in the main process before. With the tag set in the main process only, the two
    could disagree, and a warm start benchmarked 25 kernels again (66 benchmark calls in one warm start under
    cProfile, 1.9 s of its warm-up there, against 8 in a warm start of the code before the fused q/k projection,
    tagged the same way: ``bench/results/dec01c/call4-startprof/diff.txt``)."""
    digest = code_digest()
    tag = f"blueberry-{digest}"
    os.environ["TORCH_COMPILE_CACHE_KEY_TAG"] = tag
    torch.compiler.config.cache_key_tag = tag
    return digest
