"""Does a process with one CPU thread (a Ray trial worker: Ray sets OMP_NUM_THREADS=1) reuse what a process
with more threads put in inductor's FX graph cache? Compiles one small function in a fresh process, as:

    python bench/compile_cache_threads.py THREADS pin|nopin

``pin`` sets ``torch._inductor.config.cpp.threads = 1`` (what ``trainer.train.pin_cpu_threads_for_compile`` does
for CUDA runs). Run it 2 pin, 1 pin, 2 nopin, 1 nopin with one TORCHINDUCTOR_CACHE_DIR: the second line hits
the cache the first filled; the fourth misses (the thread count is in the cache key).
"""

import sys

import torch

threads, pin = int(sys.argv[1]), sys.argv[2] == "pin"
torch.set_num_threads(threads)
if pin:
    import torch._inductor.config as inductor_config

    inductor_config.cpp.threads = 1
f = torch.compile(lambda x: (x.sin() * 2 + x.cos()).sum(-1))
f(torch.randn(64, 64))
from torch._dynamo.utils import counters  # noqa: E402

print(f"torch {torch.__version__}, {threads} thread(s), {'pinned' if pin else 'not pinned'}: "
      f"{dict(counters['inductor'])}")
