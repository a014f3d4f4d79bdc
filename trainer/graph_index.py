"""Indexed alias checks for CUDA graph trees' recording (issue 14).

When inductor's CUDA graph trees record a graph, they ask for each of its inputs and outputs whether it is (an
alias of) an output of an earlier graph on the same path, by walking every earlier output of the path in Python.
The trainer's path is the 32 compiled blocks forward and then backward, and their saved activations are outputs,
so the walks grow with the path: recording the 64 training graphs of the 151M model took 2.5 s of a fresh
process's warm-up on an H200 (5 ms for the first graph, 40-67 ms for the last; cProfile put it in these two
methods, ``bench/results/startup-nov30d/``).

:func:`install` replaces the two walks on ``torch._inductor.cudagraph_trees.CUDAGraphNode`` with lookups in an
index of the path's outputs by data pointer. The answers are the same by construction:

- the index maps a data pointer to every (depth, output) position holding it, in the walk's order; the alias
  check returns the first of them whose storage is still live, as the walk does, and checks liveness at the time
  of the call (the index stores no liveness);
- the index belongs to the exact list of weak-reference objects it was built from: each call compares the
  path's current objects with those (a tuple compare: identity first, in C), and rebuilds on any difference.
  Holding the objects keeps their ids from being reused; it does not keep any storage alive (they are weak).

``BLUEBERRY_GRAPH_INDEX=0`` leaves torch's walks in place (for benchmarks); ``=check`` runs both and raises on
any difference. Nothing is patched when the class or its methods are not there (another torch version).
"""

from __future__ import annotations

import itertools
import os
from typing import Any

_ENV = "BLUEBERRY_GRAPH_INDEX"


class GraphIndexMismatch(AssertionError):
    """The indexed and the original check disagreed (only raised with ``BLUEBERRY_GRAPH_INDEX=check``)."""


def _path_index(node: Any) -> tuple[dict[int, list[tuple[int, int]]], dict[int, bool]]:
    """(data pointer -> positions in walk order, data pointer -> True) for the node's path, rebuilt when the path's
    weak-reference objects change."""
    path = node.path_weakrefs
    flat = tuple(itertools.chain.from_iterable(path))
    cached = node.__dict__.get("_bb_graph_index")
    if cached is not None and cached[0] == flat:
        return cached[1], cached[2]
    positions: dict[int, list[tuple[int, int]]] = {}
    for depth, refs in enumerate(path):
        for index, ref in enumerate(refs):
            if ref is not None:
                positions.setdefault(ref.data_ptr(), []).append((depth, index))
    recorded = dict.fromkeys(positions, True)
    node.__dict__["_bb_graph_index"] = (flat, positions, recorded)
    return positions, recorded


def _indexed_alias(node: Any, t: Any, maybe_deref) -> tuple[int, int] | None:
    positions, _ = _path_index(node)
    hits = positions.get(t.untyped_storage().data_ptr())
    if hits:
        path = node.path_weakrefs
        for depth, index in hits:
            if maybe_deref(path[depth][index]) is not None:
                return depth, index
    return None


def _indexed_recorded(node: Any, t: Any) -> bool:
    _, recorded = _path_index(node)
    return t.untyped_storage().data_ptr() in recorded


def install(mode: str | None = None) -> bool:
    """Patch ``CUDAGraphNode`` once per process; True when the indexed checks are in place.

    ``mode``: "1" (default: the indexed checks), "0" (leave torch's), "check" (run both, raise
    :class:`GraphIndexMismatch` on a difference); the environment variable ``BLUEBERRY_GRAPH_INDEX`` sets it when
    ``mode`` is None."""
    mode = os.environ.get(_ENV, "1") if mode is None else mode
    if mode not in ("0", "1", "check"):
        raise ValueError(f"{_ENV} must be one of 0, 1, check; got {mode!r}")
    try:
        from torch._inductor import cudagraph_trees as trees
    except ImportError:
        return False
    cls = getattr(trees, "CUDAGraphNode", None)
    maybe_deref = getattr(trees, "maybe_deref", None)
    alias = getattr(cls, "_is_alias_of_live_recorded_tensor", None)
    recorded = getattr(cls, "_is_cuda_graph_recorded_tensor", None)
    if cls is None or maybe_deref is None or alias is None or recorded is None:
        return False
    # the methods as torch defines them, whatever an earlier install put there
    alias = getattr(alias, "_bb_original", alias)
    recorded = getattr(recorded, "_bb_original", recorded)
    if mode == "0":
        cls._is_alias_of_live_recorded_tensor, cls._is_cuda_graph_recorded_tensor = alias, recorded
        return False

    if mode == "check":
        def fast_alias(self, t):
            ours, theirs = _indexed_alias(self, t, maybe_deref), alias(self, t)
            if ours != theirs:
                raise GraphIndexMismatch(f"alias check: indexed {ours}, torch {theirs}")
            return theirs

        def fast_recorded(self, t):
            ours, theirs = _indexed_recorded(self, t), recorded(self, t)
            if ours != theirs:
                raise GraphIndexMismatch(f"recorded check: indexed {ours}, torch {theirs}")
            return theirs
    else:
        def fast_alias(self, t):
            return _indexed_alias(self, t, maybe_deref)

        def fast_recorded(self, t):
            return _indexed_recorded(self, t)

    fast_alias._bb_original, fast_recorded._bb_original = alias, recorded
    fast_alias.__doc__, fast_recorded.__doc__ = alias.__doc__, recorded.__doc__
    cls._is_alias_of_live_recorded_tensor, cls._is_cuda_graph_recorded_tensor = fast_alias, fast_recorded
    return True
