"""Where the time before the first clocked step goes: the trainer's start-up, split finer than ``startup_phases``.

Runs the model-side steps of ``trainer.train`` in one fresh process, timing each with a device sync: imports,
the CUDA context, building the model on the CPU, moving it to the device, wrapping the blocks for compilation,
building the optimizers, and the two compiled warm-up steps (cold or warm compile cache, whatever the machine
has) on random tokens. Then it builds the model once more directly on the device, to see what building it
there would save. Left out: the data (``startup_phases["data"]`` already times it), the window sampler, the
validation windows and the chunked loss (used above 32,768 positions per micro-batch only).

    python bench/profile_startup.py --out bench/results/profile_startup.json             # the record settings
    python bench/profile_startup.py --out /tmp/p.json --track tiny-speedrun --set device=cpu  # CPU smoke test
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

T_START = time.perf_counter()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--track", default="speedrun-4.5")
    ap.add_argument("--set", dest="extra", action="append", default=[], help="trainer settings (KEY=VALUE)")
    args = ap.parse_args()
    steps: dict[str, float] = {}

    def timed(name: str, fn, sync=None):
        t = time.perf_counter()
        value = fn()
        if sync is not None:
            sync()
        steps[name] = round(time.perf_counter() - t, 3)
        return value

    torch = timed("import torch", lambda: __import__("torch"))
    timed("import trainer", lambda: __import__("trainer.train"))
    from trainer.config import Runtime, apply_overrides, make_config, parse_set
    from trainer.model import GPT, compile_regions, next_token_loss
    from trainer.optim import build_optimizers
    from trainer.train import make_train_step, resolve_device

    config = apply_overrides(make_config(args.track), parse_set(args.extra))
    hp = config.hp
    device = resolve_device(config.runtime.device)
    on_cuda = device.type == "cuda"

    def sync() -> None:
        if on_cuda:
            torch.cuda.synchronize()

    if on_cuda:
        timed("CUDA context", lambda: torch.zeros(1, device=device), sync)
    torch.manual_seed(hp.seed)
    model = timed("build model (CPU)", lambda: GPT(config.model))
    model = timed("model to device", lambda: model.to(device), sync)
    timed("wrap blocks for compile", lambda: compile_regions(model, on_cuda, Runtime().blocks_per_region))
    optimizers = timed("build optimizers", lambda: list(build_optimizers(
        model, muon_lr=hp.muon_lr, adamw_lr=hp.adamw_lr, muon_momentum=hp.muon_momentum,
        weight_decay=hp.weight_decay, fast=True, ns_dtype=torch.float16 if on_cuda else torch.float32,
        compile_ns=on_cuda)))
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if on_cuda else torch.autocast("cpu", enabled=False)
    step = make_train_step(model, optimizers, hp, config.horizon_tokens, autocast=autocast, cudagraphs=on_cuda,
                           loss_fn=lambda w: next_token_loss(model, w))
    window = torch.randint(0, config.model.vocab_size, (hp.micro_batch_size, hp.seq_len), device=device)
    timed("warm-up step 1 (compile)", lambda: step(lambda: window, hp.tokens_per_step), sync)
    timed("warm-up step 2", lambda: step(lambda: window, hp.tokens_per_step), sync)
    timed("step 3", lambda: step(lambda: window, hp.tokens_per_step), sync)
    try:  # what dynamo, AOT autograd, inductor and the cache lookups took inside the warm-up steps
        from torch._dynamo.utils import compile_times

        compile_split = compile_times(repr="str")
    except Exception as exc:  # an internal API: its absence must not lose the rest
        compile_split = f"unavailable ({exc})"
    model = optimizers = step = None  # free them before the alternative build
    torch.manual_seed(hp.seed)

    def on_device():
        with torch.device(device):
            return GPT(config.model)

    timed("build model on the device (alternative)", on_device, sync)
    out = {"command": " ".join([sys.executable, *sys.argv]), "track": args.track, "device": str(device),
           "device_name": torch.cuda.get_device_name(device) if on_cuda else "cpu",
           "torch": torch.__version__, "steps_s": steps, "compile_times": compile_split,
           "process_total_s": round(time.perf_counter() - T_START, 3)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    width = max(len(k) for k in steps)
    for name, s in steps.items():
        print(f"{name:<{width}}  {s:8.3f} s")
    print(f"{'in all (process)':<{width}}  {out['process_total_s']:8.3f} s")
    print(compile_split)


if __name__ == "__main__":
    main()
