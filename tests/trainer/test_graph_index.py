"""trainer.graph_index: the indexed alias checks give torch's answers, through every change to a path."""

import random

import pytest
import torch

from trainer import graph_index

trees = pytest.importorskip("torch._inductor.cudagraph_trees")
Wrapper = trees.StorageWeakRefWrapper


class FakeNode:
    """Just what the two checks read: the path's lists of weak references to earlier outputs."""

    def __init__(self, path):
        self.path_weakrefs = path


@pytest.fixture
def patched():
    assert graph_index.install("1")
    cls = trees.CUDAGraphNode
    alias, recorded = cls._is_alias_of_live_recorded_tensor, cls._is_cuda_graph_recorded_tensor
    yield alias, recorded, alias._bb_original, recorded._bb_original
    graph_index.install("0")


def test_install_and_uninstall_restore_torchs_methods():
    cls = trees.CUDAGraphNode
    original = getattr(cls._is_alias_of_live_recorded_tensor, "_bb_original", cls._is_alias_of_live_recorded_tensor)
    assert graph_index.install("1") and graph_index.install("1")  # twice: still one layer over torch's
    assert cls._is_alias_of_live_recorded_tensor._bb_original is original
    assert graph_index.install("0") is False
    assert cls._is_alias_of_live_recorded_tensor is original
    with pytest.raises(ValueError, match="BLUEBERRY_GRAPH_INDEX must be one of 0, 1, check"):
        graph_index.install("yes")


def test_same_answers_as_torch_through_random_changes(patched):
    """Queries mixed with what recording and replay do to a path: outputs appended, weak references replaced,
    storages freed; several references may claim one data pointer (a freed pool block reused), so the first
    *live* one in walk order is the answer."""
    fast_alias, fast_recorded, alias, recorded = patched
    rng = random.Random(0)
    queries = [torch.zeros(8) for _ in range(12)]  # each query's data pointer is one a reference may claim
    ptrs = [q.untyped_storage().data_ptr() for q in queries] + [12345]
    holders: list[torch.Tensor] = []  # the storages the references watch: freed to expire them

    def new_ref():
        h = torch.zeros(4)
        holders.append(h)
        return Wrapper.from_weakref_and_data_ptr(h.untyped_storage()._weak_ref(), rng.choice(ptrs))

    path = [[new_ref() if rng.random() > 0.1 else None for _ in range(rng.randint(0, 6))] for _ in range(5)]
    node = FakeNode(path)
    checked = hits = 0
    for _ in range(400):
        change = rng.random()
        if change < 0.15:
            rng.choice(path).append(new_ref())
        elif change < 0.25 and any(path):
            refs = rng.choice([r for r in path if r])
            refs[rng.randrange(len(refs))] = new_ref() if rng.random() > 0.2 else None
        elif change < 0.35 and holders:
            holders.pop(rng.randrange(len(holders)))  # its storage dies: references to it expire
        elif change < 0.4:
            path.append([])
        for q in rng.sample(queries, 4):
            theirs = alias(node, q)
            assert fast_alias(node, q) == theirs
            assert fast_recorded(node, q) == recorded(node, q)
            checked, hits = checked + 1, hits + (theirs is not None)
    assert checked == 1600 and 100 < hits < 1500  # both answers were exercised


def test_check_mode_raises_on_a_difference(monkeypatch):
    assert graph_index.install("check")
    try:
        cls = trees.CUDAGraphNode
        keep = torch.zeros(4)
        node = FakeNode([[Wrapper(keep)]])
        assert cls._is_alias_of_live_recorded_tensor(node, keep) == (0, 0)
        assert cls._is_cuda_graph_recorded_tensor(node, keep)
        monkeypatch.setattr(graph_index, "_indexed_recorded", lambda node, t: False)
        with pytest.raises(graph_index.GraphIndexMismatch, match="recorded check"):
            cls._is_cuda_graph_recorded_tensor(node, keep)
    finally:
        graph_index.install("0")
