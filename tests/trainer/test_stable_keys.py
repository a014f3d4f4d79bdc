"""trainer.stable_keys: a memory format pickles to the same bytes whatever a process imported first."""

import pickle
import subprocess
import sys
import textwrap

import torch

from trainer import stable_keys

# What inductor's FX-graph cache pickles for a tensor input: its metadata, memory format included. The process
# may first register a module "early" that reaches torch (as Optuna's GP sampler does with its lazy import).
SCRIPT = textwrap.dedent("""
    import sys, types
    if sys.argv[1] == "early":
        early = types.ModuleType("early")
        sys.modules["early"] = early
    import torch
    if sys.argv[1] == "early":
        early.torch = torch
    from torch._inductor.codecache import FxGraphCachePickler
    from torch._subclasses.fake_tensor import extract_tensor_metadata
    from trainer import stable_keys
    gm = torch.fx.symbolic_trace(torch.nn.Identity())
    meta = extract_tensor_metadata(torch.zeros(2, 3))
    before = FxGraphCachePickler(gm).get_hash(meta)
    stable_keys.install()
    print(before, FxGraphCachePickler(gm).get_hash(meta))
""")


def keys(order: str) -> tuple[str, str]:
    """The tensor's cache-key hash in a fresh process, before and after ``stable_keys.install()``."""
    done = subprocess.run([sys.executable, "-c", SCRIPT, order], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    before, after = done.stdout.split()
    return before, after


def test_the_cache_key_no_longer_depends_on_import_order():
    (plain_before, plain_after), (early_before, early_after) = keys("plain"), keys("early")
    # without the reducer the same tensor hashes to two keys (the bug: a Ray worker missed a plain process's cache)
    assert plain_before != early_before
    assert plain_after == early_after


def test_formats_round_trip_through_pickle():
    stable_keys.install()
    stable_keys.install()  # idempotent
    for fmt in (torch.contiguous_format, torch.channels_last, torch.channels_last_3d, torch.preserve_format):
        data = pickle.dumps(fmt)
        assert b"trainer.stable_keys" in data
        assert pickle.loads(data) is fmt
