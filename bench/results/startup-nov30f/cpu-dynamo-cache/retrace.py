"""With dynamo's cache of traced frames loaded, a guard miss (a second input shape) traces the frame again: on
torch 2.13 without error (on the H200 with torch 2.11 the trainer's blocks asserted there). One RMSNorm, compiled
like the trainer's blocks, in a first process (saves) and a second (loads, then calls with another shape).

    TORCH_CACHING_PRECOMPILE=1 ARTIFACTS=/tmp/r.bin python retrace.py save|load
"""

import os
import sys
from pathlib import Path

import torch
import torch._dynamo
import torch._inductor.compile_fx
from torch._dynamo.utils import counters

from trainer.model import RMSNorm

mode, blob = sys.argv[1], Path(os.environ["ARTIFACTS"])
torch._inductor.config.cpp.threads = 1
if mode == "load":
    torch.compiler.load_cache_artifacts(blob.read_bytes())
torch.manual_seed(0)
norm = RMSNorm(16, 1e-6)
norm.compile(dynamic=False)
print(mode, "shape (4, 16):", norm(torch.randn(4, 16)).sum().item())
if mode == "load":
    print(mode, "shape (8, 16), traced again:", norm(torch.randn(8, 16)).sum().item())
print(dict(counters["dynamo_cache"]))
if mode == "save":
    blob.write_bytes(torch.compiler.save_cache_artifacts()[0])
