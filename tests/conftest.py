import ctypes
import ctypes.util
import os

import pytest

# glibc's malloc serves every allocation over its (adaptive, at most 32 MB) threshold with a fresh mmap and
# unmaps it on free, so each CPU training step and evaluation faults its logits (tens of MB with the 49,152-token
# vocabulary) in page by page again: about half of a tiny run's time went to the kernel. The tests keep freed
# memory in the heap instead: in this process (mallopt, below) and, through the environment, in every process
# they start (trainer and search commands, Ray's workers). Only the allocator's bookkeeping changes.
# test_cli_reaches_tiny_target_in_under_a_minute times the trainer as a user runs it, without these.
MALLOC_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(2**31 - 1)}
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4


def _keep_freed_memory() -> None:
    for key, value in MALLOC_ENV.items():
        os.environ.setdefault(key, value)
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(_M_MMAP_MAX, 0)
        libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


_keep_freed_memory()


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:  # reports tests run without torch
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
