"""Dynamo's cache of traced frames on CPU (sixth session): the tiny model compiled as the trainer compiles it,
in a first process that saves PyTorch's portable compile artifacts and a second that loads them. Prints the
warm-up (two training steps and two evaluations), the losses and the compile counters. ``run.sh`` runs both with
TORCH_CACHING_PRECOMPILE=0 and =1.

    ARTIFACTS=/tmp/a.bin python exp.py save|load
"""

import os
import sys
import time
from pathlib import Path

import torch
import torch._dynamo
import torch._inductor.compile_fx
from torch._dynamo.utils import counters

from trainer.config import PRESETS
from trainer.model import GPT, compile_regions, next_token_loss
from trainer.optim import build_optimizers

mode, blob = sys.argv[1], Path(os.environ["ARTIFACTS"])
torch._inductor.config.cpp.threads = 1
if mode == "load":
    torch.compiler.load_cache_artifacts(blob.read_bytes())
torch.manual_seed(0)
model = GPT(PRESETS["tiny"])
compile_regions(model, cudagraphs=False)
opts = build_optimizers(model, muon_lr=0.02, adamw_lr=0.01, muon_momentum=0.95, weight_decay=0.0, fast=True,
                        ns_dtype=torch.float32, compile_ns=True)
window = torch.randint(0, 49152, (2, 65))
t = time.perf_counter()
for _ in range(2):
    loss = next_token_loss(model, window)
    loss.backward()
    for opt in opts:
        opt.step()
        opt.zero_grad()
    with torch.no_grad():
        val = next_token_loss(model, window)
print(f"{mode}: warm-up {time.perf_counter() - t:.2f} s, loss {loss.item():.6f}, eval {val.item():.6f}")
print({k: dict(v) for k, v in counters.items() if k in ("stats", "dynamo_cache", "aot_autograd")})
if mode == "save":
    blob.write_bytes(torch.compiler.save_cache_artifacts()[0])
