"""Upstream's trainer against ours, on one GPU, in one command: tokens/s, ms/step, peak memory, MFU, warm-up.

Upstream is the public Blueberry-Nano trainer, ``vukrosic/deep-delta-learning-research`` at commit 496192d.
None of its code is in this repository: this script imports it **at run time only**, from the git-ignored
folder ``bench/upstream`` (``bash bench/upstream_setup.sh <clone of the upstream repository>`` puts it there:
``git archive 496192d models optimizers configs training``, plus ``bench/torchtune_rope.py`` as the
``torchtune.modules`` stand-in for ``RotaryPositionalEmbeddings``), by putting that folder first on sys.path in
the upstream child process. Only ``models``, ``configs`` and ``optimizers.muon`` are imported (``training``
pulls in matplotlib and the data stack); the few lines of its training step that matter are written out here
from a reading of ``training/trainer.py`` (``train_model`` and ``setup_muon_optimizer``):

- Muon (its ``optimizers/muon.py``, whose Newton-Schulz is ``@torch.compile``-decorated even in "eager" runs,
  one call per matrix) on every parameter with ``ndim == 2`` whose name contains neither ``token_embedding``
  nor ``norm``; ``torch.optim.AdamW(lr=0.001, weight_decay=0.2)`` on the rest (embedding/tied head, norms);
  one ``LambdaLR`` per optimizer stepped with the tokens seen (constant, warmup 0);
- batches from a ``DataLoader`` (2 workers, pinned, persistent, shuffled) of ``{"input_ids", "labels"}``
  with labels = input_ids, moved with ``.to(device)``; bf16 autocast around the forward and the loss;
  loss = cross-entropy of ``logits[:, :-1]`` against ``labels[:, 1:]`` (2047 positions a window);
  ``clip_grad_norm_(1.0)``; each optimizer ``step()`` then ``zero_grad()``; ``ce_loss.item()`` every step.
- ``torch.compile(model)`` (whole model) in the compiled variant, as ``compile_model=True`` does.

Ours runs our library in-process, the way ``trainer/train.py`` does: ``GPT(blueberry-151m)``,
``compile_regions`` with CUDA graphs (the trainer's default on CUDA),
``build_optimizers(fast=True, ns_dtype=fp16, compile_ns=True)``, the trainer's own ``make_train_step``
(set_lr from the schedule, bf16 autocast around ``next_token_loss``, ``clip_grad_norm_(foreach=True)``,
step + ``zero_grad(set_to_none=True)``), batches from ``WindowSampler`` (tokens on the GPU), TF32 on, and the
real loop's per-step bookkeeping: the loss copied to a pinned host buffer without blocking and read one step
late after that step's CUDA event (no ``.item()`` stall).

Both sides train on the same random tokens (vocab 49,152, seq 2048, one seed). Each configuration runs in a
fresh subprocess with a timeout (a timeout is recorded as such): ``--warmup`` steps (compilation happens
there, timed as warm-up), then ``--steps`` steps between ``torch.cuda.synchronize()`` + ``perf_counter()``.
MFU = FLOPs per token x tokens/s / peak (trainer/flops.py): 6·N plus causal attention (1.108 GFLOP/token for the
151M model at seq 2048; both sides are the same architecture), against the GPU's measured dense bf16 peak
(H100 780, H200 790 TFLOP/s); the table prints both.

    PYTHONPATH=. python bench/upstream_vs_ours.py --out bench/results/upstream_vs_ours    # H100, ~6-8 min
    PYTHONPATH=. python bench/upstream_vs_ours.py --out /tmp/uvo-smoke --smoke             # CPU check

``--only upstream`` keeps upstream's rows alone, for a call that measures our side with the trainer itself
(``bench/trainer_speed.py``, its settings and kernels included) rather than this script's in-process copy of its
step (``bench/gpu_dec02b.sh side``).

Plan (in this order, within ``--budget-s``): ours b4, upstream eager b4 (the record's setting), ours b16,
upstream compiled b16 (upstream's best measured setting), and upstream compiled b4 when the remaining budget
allows (``--upstream-compiled-b4 auto``; ``yes`` forces it, ``no`` skips it). ``--smoke`` runs the same plan on
CPU with a tiny model of the same shape family (d_model 64, 2 layers: upstream's fp16 Newton-Schulz on the
full model takes over 10 minutes a step on CPU), seq 64, batch 1, no compile, 1 + 2 steps.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
UPSTREAM_DIR = ROOT / "bench" / "upstream"
UPSTREAM_COMMIT = "496192d"
VOCAB = 49_152
SEQ = 2048
N_PARAMS = 151_032_320
EXPECTED_SPLIT = (125_829_120, 25_203_200)  # upstream's Muon / AdamW parameter counts at full size

# the smoke model: same family as upstream's, small enough for fp16 Newton-Schulz on a CPU
SMOKE_MODEL = dict(d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=256)


# ----------------------------------------------------------------------------------------------------------
# child side: one configuration, one process


def _random_tokens(n_windows: int, seq: int, seed: int):
    import torch

    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, VOCAB, (n_windows, seq), generator=g, dtype=torch.int64)


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _finish(spec: dict, device, n_params: int, warmup_s: float, elapsed: float, losses: list[float],
            setup_s: float) -> dict:
    from dataclasses import replace

    import torch

    from trainer.config import PRESETS
    from trainer.flops import mfu_fields

    tokens = spec["steps"] * spec["batch"] * spec["seq"]
    tps = tokens / elapsed
    overrides = spec.get("model_overrides")
    model = replace(PRESETS["tiny"], **overrides) if overrides else PRESETS["blueberry-151m"]
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return {
        "status": "ok", "tokens_per_s": tps, "ms_per_step": 1000 * elapsed / spec["steps"],
        "timed_s": elapsed, "timed_tokens": tokens, "warmup_s": warmup_s, "setup_s": setup_s,
        "peak_memory_gib": (torch.cuda.max_memory_allocated(device) / 2**30) if device.type == "cuda" else None,
        **mfu_fields(model, spec["seq"], tps, device_name), "n_params": n_params,
        "first_loss": losses[0] if losses else math.nan, "last_loss": losses[-1] if losses else math.nan,
        "device": device_name,
        "torch": torch.__version__,
    }


def child_upstream(spec: dict) -> dict:
    import torch
    import torch.nn.functional as F

    if not (UPSTREAM_DIR / "models" / "llm.py").exists():
        raise SystemExit(f"{UPSTREAM_DIR} has no upstream checkout (see this script's docstring)")
    sys.path.insert(0, str(UPSTREAM_DIR))
    from configs.llm_config import BlueberryConfig  # noqa: E402  (upstream, imported at run time)
    from models.llm import MinimalLLM  # noqa: E402
    from optimizers.muon import Muon  # noqa: E402

    t_setup = time.perf_counter()
    device = torch.device(spec["device"])
    B, seq, accum = spec["batch"], spec["seq"], 1
    cfg = BlueberryConfig(max_seq_len=seq, batch_size=B, compile_model=spec["compile"],
                          gradient_accumulation_steps=accum, **spec.get("model_overrides", {}))
    # upstream's set_seed (seed value aside: upstream hard-codes 42; both sides use --seed here)
    torch.manual_seed(spec["seed"])
    torch.cuda.manual_seed_all(spec["seed"])
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False

    data = _random_tokens((spec["warmup"] + spec["steps"]) * B, seq, spec["seed"])

    class Windows(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(data)

        def __getitem__(self, i: int) -> dict:
            return {"input_ids": data[i], "labels": data[i].clone()}

    on_cuda = device.type == "cuda"
    loader = torch.utils.data.DataLoader(Windows(), batch_size=B, shuffle=True, num_workers=2,
                                         pin_memory=on_cuda, persistent_workers=True)

    model = MinimalLLM(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    muon_params, adamw_params = [], []
    for name, p in model.named_parameters():  # upstream's rule (setup_muon_optimizer): by name and ndim
        if p.ndim == 2 and "token_embedding" not in name and "norm" not in name and p.requires_grad:
            muon_params.append(p)
        else:
            adamw_params.append(p)
    split = (sum(p.numel() for p in muon_params), sum(p.numel() for p in adamw_params))
    if not spec.get("model_overrides"):
        assert n_params == N_PARAMS, n_params
        assert split == EXPECTED_SPLIT, split
    optimizers = [Muon(muon_params, lr=cfg.muon_lr, momentum=cfg.muon_momentum),
                  torch.optim.AdamW(adamw_params, lr=cfg.adamw_lr, weight_decay=cfg.weight_decay)]
    if cfg.compile_model:
        model = torch.compile(model)
    warmup_tokens = max(1, int(cfg.train_tokens * cfg.warmup_ratio))

    def constant(tokens: int) -> float:  # upstream's "constant" schedule: linear warmup, then 1
        return tokens / warmup_tokens if tokens < warmup_tokens else 1.0

    schedulers = [torch.optim.lr_scheduler.LambdaLR(o, constant) for o in optimizers]
    model = model.to(device)
    model.train()
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=on_cuda)

    def batches():
        while True:
            yield from loader

    it = batches()
    tokens_seen = 0

    def step() -> float:
        nonlocal tokens_seen
        batch = next(it)
        x, y = batch["input_ids"].to(device), batch["labels"].to(device)
        with autocast:
            logits = model(x)
            shift_logits = logits[:, :-1, :].contiguous()
            shift_labels = y[:, 1:].contiguous()
            ce_loss = F.cross_entropy(shift_logits.view(-1, cfg.vocab_size), shift_labels.view(-1))
            loss = ce_loss / accum
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        for opt in optimizers:
            opt.step()
            opt.zero_grad()
        for sch in schedulers:
            sch.step(tokens_seen)
        current = ce_loss.item()
        tokens_seen += x.numel()
        return current

    _sync(device)
    setup_s = time.perf_counter() - t_setup
    t0 = time.perf_counter()
    for _ in range(spec["warmup"]):
        step()
    _sync(device)
    warmup_s = time.perf_counter() - t0
    # peak memory is the whole run's, warm-up included (CUDA graph pools are allocated there)
    losses = []
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(spec["steps"]):
        losses.append(step())
    _sync(device)
    elapsed = time.perf_counter() - t0
    out = _finish(spec, device, n_params, warmup_s, elapsed, losses, setup_s)
    out["param_split"] = {"muon": split[0], "adamw": split[1]}
    return out


def child_ours(spec: dict) -> dict:
    import contextlib
    from collections import deque

    import torch

    sys.path.insert(0, str(ROOT))
    from trainer.config import PRESETS, Runtime, make_config
    from trainer.model import GPT, compile_regions, count_parameters, next_token_loss
    from trainer.optim import WorkingCopies, build_optimizers, partition
    from trainer.train import WindowSampler, make_train_step

    t_setup = time.perf_counter()
    device = torch.device(spec["device"])
    on_cuda = device.type == "cuda"
    B, seq = spec["batch"], spec["seq"]
    config = make_config("speedrun-4.5", overrides={"micro_batch_size": B, "seq_len": seq, "seed": spec["seed"],
                                                    "grad_accum_steps": 1})
    hp = config.hp
    model_cfg = PRESETS["blueberry-151m"]
    if spec.get("model_overrides"):
        from dataclasses import replace

        model_cfg = replace(PRESETS["tiny"], **spec["model_overrides"])
    do_compile = spec["compile"]
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if on_cuda else contextlib.nullcontext())
    if on_cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    data = _random_tokens((spec["warmup"] + spec["steps"]) * B, seq, spec["seed"])
    torch.manual_seed(hp.seed)
    model = GPT(model_cfg).to(device)
    n_params = count_parameters(model)
    if not spec.get("model_overrides"):
        assert n_params == N_PARAMS, n_params
    sampler = WindowSampler.from_stream(data.view(-1).numpy(), hp.seq_len, hp.micro_batch_size, hp.seed, device)

    def loss_fn(window: torch.Tensor) -> torch.Tensor:
        return next_token_loss(model, window, reference=False)

    cudagraphs = bool(spec.get("cudagraphs")) and do_compile and on_cuda
    if on_cuda:  # bf16 autocast there: the trainer's working copies of the block matrices
        model.working_copies = WorkingCopies(model)
    if do_compile:
        compile_regions(model, cudagraphs, Runtime().blocks_per_region)
    ns_dtype = torch.float16 if on_cuda else torch.float32
    optimizers = list(build_optimizers(model, muon_lr=hp.muon_lr, adamw_lr=hp.adamw_lr,
                                       muon_momentum=hp.muon_momentum, weight_decay=hp.weight_decay, fast=True,
                                       ns_dtype=ns_dtype, compile_ns=do_compile))
    hidden, other = partition(model)
    split = (sum(p.numel() for p in hidden), sum(p.numel() for p in other))
    # trainer/train.py's own step function
    train_step = make_train_step(model, optimizers, hp, config.horizon_tokens, autocast=autocast,
                                 cudagraphs=cudagraphs, loss_fn=loss_fn)

    # the real loop's bookkeeping: pinned non-blocking loss copy, an event per step, read one step late
    total = spec["warmup"] + spec["steps"]
    host_losses = torch.empty(total + 1, dtype=torch.float32, pin_memory=on_cuda)
    lag = 1 if on_cuda else 0
    losses: list[float] = []
    state = {"step": 0, "tokens": 0}

    def run(n: int) -> None:
        pending: deque = deque()
        for _ in range(n):
            state["step"] += 1
            state["tokens"] += hp.tokens_per_step
            s = state["step"]
            loss = train_step(sampler.next, state["tokens"])
            host_losses[s: s + 1].copy_(loss.view(1), non_blocking=True)
            mark = torch.cuda.Event() if on_cuda else None
            if mark is not None:
                mark.record()
            pending.append((s, mark))
            while len(pending) > lag:
                done, ev = pending.popleft()
                if ev is not None:
                    ev.synchronize()
                losses.append(float(host_losses[done]))
        while pending:
            done, ev = pending.popleft()
            if ev is not None:
                ev.synchronize()
            losses.append(float(host_losses[done]))

    _sync(device)
    setup_s = time.perf_counter() - t_setup
    t0 = time.perf_counter()
    run(spec["warmup"])
    _sync(device)
    warmup_s = time.perf_counter() - t0
    # peak memory is the whole run's, warm-up included (CUDA graph pools are allocated there)
    del losses[:]
    _sync(device)
    t0 = time.perf_counter()
    run(spec["steps"])
    _sync(device)
    elapsed = time.perf_counter() - t0
    out = _finish(spec, device, n_params, warmup_s, elapsed, losses, setup_s)
    out["param_split"] = {"muon": split[0], "adamw": split[1]}
    return out


def child_main(spec_json: str, result_path: str) -> None:
    spec = json.loads(spec_json)
    fn = child_upstream if spec["side"] == "upstream" else child_ours
    result = fn(spec)
    Path(result_path).write_text(json.dumps(result, indent=2))
    print("RESULT " + json.dumps(result), flush=True)


# ----------------------------------------------------------------------------------------------------------
# parent side: the plan, the subprocesses, the table


def run_child(spec: dict, out: Path, timeout_s: float) -> dict:
    name = spec["name"]
    result_path = out / f"{name}.json"
    log_path = out / f"{name}.log"
    result_path.unlink(missing_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])])
    if spec["device"] == "cpu" and not spec["compile"]:
        env["TORCHDYNAMO_DISABLE"] = "1"  # upstream's Newton-Schulz is @torch.compile'd: no compiler on the smoke
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec), "--result",
           str(result_path)]
    row = {**{k: spec[k] for k in ("name", "side", "batch", "compile")}, "cudagraphs": bool(spec.get("cudagraphs")),
           "timeout_s": timeout_s}
    t0 = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
                                start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the child and its compile workers (own session)
            proc.wait()
            row.update(status="timeout", wall_s=time.perf_counter() - t0)
            return row
    row["wall_s"] = time.perf_counter() - t0
    if rc == 0 and result_path.exists():
        row.update(json.loads(result_path.read_text()))
        return row
    tail = log_path.read_text().strip().splitlines()
    row.update(status="error", returncode=rc, error=(tail[-1] if tail else "?")[:300])
    return row


def plan(args: argparse.Namespace) -> list[dict]:
    common = dict(seq=SEQ, warmup=args.warmup, steps=args.steps, seed=args.seed, device="cuda")
    jobs = [
        dict(name="ours-b4", side="ours", batch=4, compile=True, cudagraphs=True, timeout=args.timeout_ours),
        dict(name="upstream-eager-b4", side="upstream", batch=4, compile=False, timeout=args.timeout_upstream_eager),
        dict(name="ours-b16", side="ours", batch=16, compile=True, cudagraphs=True, timeout=args.timeout_ours),
        dict(name="upstream-compiled-b16", side="upstream", batch=16, compile=True,
             timeout=args.timeout_upstream_compiled),
    ]
    if args.upstream_compiled_b4 != "no":
        jobs.append(dict(name="upstream-compiled-b4", side="upstream", batch=4, compile=True,
                         timeout=args.timeout_upstream_compiled, optional=args.upstream_compiled_b4 == "auto"))
    jobs = [{**common, **j} for j in jobs if args.only in (None, j["side"])]
    if args.smoke:
        for j in jobs:
            j.update(device="cpu", seq=64, batch=1, compile=False, cudagraphs=False, warmup=1, steps=2, timeout=300,
                     model_overrides=SMOKE_MODEL)
    return jobs


def ratio(a: dict | None, b: dict | None) -> float | None:
    if not a or not b or a.get("status") != "ok" or b.get("status") != "ok":
        return None
    return a["tokens_per_s"] / b["tokens_per_s"]


def best(rows: list[dict], side: str) -> dict | None:
    ok = [r for r in rows if r["side"] == side and r.get("status") == "ok"]
    return max(ok, key=lambda r: r["tokens_per_s"]) if ok else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, help="output folder (summary.json, one .json and .log per run)")
    ap.add_argument("--smoke", action="store_true", help="CPU check: tiny model, seq 64, batch 1, no compile")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--budget-s", type=float, default=470.0, help="total wall-clock budget for all runs")
    ap.add_argument("--upstream-compiled-b4", choices=("auto", "yes", "no"), default="auto",
                    help="auto: run it last only if --min-s-compiled seconds of the budget are left")
    ap.add_argument("--min-s-compiled", type=float, default=150.0)
    ap.add_argument("--timeout-ours", type=float, default=150.0)
    ap.add_argument("--timeout-upstream-eager", type=float, default=150.0)
    ap.add_argument("--timeout-upstream-compiled", type=float, default=240.0)
    ap.add_argument("--only", choices=("ours", "upstream"),
                    help="run one side's rows only (e.g. upstream beside the trainer's own bench/trainer_speed.py "
                         "runs in the same device call)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child_main(args.child, args.result)
        return
    if args.out is None:
        ap.error("--out is required")
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.smoke:
        import torch

        if not torch.cuda.is_available():
            raise SystemExit("no CUDA GPU: run with --smoke for the CPU check")
    start = time.perf_counter()
    rows: list[dict] = []
    for job in plan(args):
        left = args.budget_s - (time.perf_counter() - start)
        if job.get("optional") and left < args.min_s_compiled:
            rows.append({**{k: job[k] for k in ("name", "side", "batch", "compile")}, "status": "skipped",
                         "reason": f"{left:.0f} s of the budget left < --min-s-compiled {args.min_s_compiled:.0f}"})
            print(f"[{time.perf_counter() - start:6.1f}s] {job['name']}: skipped ({rows[-1]['reason']})", flush=True)
            continue
        if left < 30:
            rows.append({**{k: job[k] for k in ("name", "side", "batch", "compile")}, "status": "skipped",
                         "reason": f"budget spent ({left:.0f} s left)"})
            print(f"[{time.perf_counter() - start:6.1f}s] {job['name']}: skipped (budget)", flush=True)
            continue
        timeout = min(job["timeout"], left)
        spec = {k: v for k, v in job.items() if k not in ("timeout", "optional")}
        print(f"[{time.perf_counter() - start:6.1f}s] {job['name']}: running (timeout {timeout:.0f} s)", flush=True)
        row = run_child(spec, args.out, timeout)
        rows.append(row)
        if row["status"] == "ok":
            print(f"[{time.perf_counter() - start:6.1f}s] {job['name']}: {row['tokens_per_s']:,.0f} tok/s, "
                  f"{row['ms_per_step']:.1f} ms/step, warm-up {row['warmup_s']:.1f} s, wall {row['wall_s']:.1f} s",
                  flush=True)
        else:
            print(f"[{time.perf_counter() - start:6.1f}s] {job['name']}: {row['status']} "
                  f"{row.get('error', '')}", flush=True)

    by = {r["name"]: r for r in rows}
    ours_best, up_best = best(rows, "ours"), best(rows, "upstream")
    ratios = {
        "b4_ours_over_upstream_eager": ratio(by.get("ours-b4"), by.get("upstream-eager-b4")),
        "b4_ours_over_upstream_compiled": ratio(by.get("ours-b4"), by.get("upstream-compiled-b4")),
        "best_ours_over_best_upstream": ratio(ours_best, up_best),
        "best_ours": ours_best["name"] if ours_best else None,
        "best_upstream": up_best["name"] if up_best else None,
    }
    env_keys = ("TORCH", "CUDA", "PYTORCH", "TRITON", "INDUCTOR")
    summary = {
        "command": " ".join(sys.argv), "smoke": args.smoke, "upstream_commit": UPSTREAM_COMMIT,
        "settings": {"seq": SEQ if not args.smoke else 64, "vocab": VOCAB, "warmup_steps": args.warmup,
                     "timed_steps": args.steps, "seed": args.seed, "muon_lr": 0.015, "adamw_lr": 0.001,
                     "weight_decay": 0.2, "grad_clip": 1.0, "grad_accum": 1, "autocast": "bf16",
                     "mfu": "flops_per_token (6·N + causal attention) * tokens/s / peak_flops (trainer/flops.py)"},
        "rows": rows, "ratios": ratios, "total_wall_s": time.perf_counter() - start,
        "host": platform.node(), "python": sys.version.split()[0],
        "env": {k: v for k, v in os.environ.items() if k.startswith(env_keys)},
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))

    from trainer.flops import describe

    def mfu_pct(r: dict) -> str:
        return f"{100 * r['mfu']:.1f}%" if r.get("mfu") is not None else "-"

    done = [r for r in rows if r.get("status") == "ok"]
    if done:
        print("\n" + describe(done[0]))
    print(f"\n{'run':<24}{'B':>3}{'status':>8}{'tok/s':>10}{'ms/step':>9}{'MFU':>7}{'mem GiB':>9}{'warm-up s':>10}"
          f"{'wall s':>8}{'loss':>13}")
    for r in rows:
        if r.get("status") != "ok":
            print(f"{r['name']:<24}{r['batch']:>3}{r['status']:>8}  {r.get('reason') or r.get('error') or ''}"[:140])
            continue
        mem = f"{r['peak_memory_gib']:.1f}" if r.get("peak_memory_gib") is not None else "-"
        print(f"{r['name']:<24}{r['batch']:>3}{'ok':>8}{r['tokens_per_s']:>10,.0f}{r['ms_per_step']:>9.1f}"
              f"{mfu_pct(r):>7}{mem:>9}{r['warmup_s']:>10.1f}{r['wall_s']:>8.1f}  {r['first_loss']:.2f}->{r['last_loss']:.2f}")

    def fmt(x: float | None) -> str:
        return f"{x:.2f}x" if x is not None else "n/a"

    print(f"\nours/upstream tokens/s at batch 4, upstream eager (the record's setting): "
          f"{fmt(ratios['b4_ours_over_upstream_eager'])}")
    print(f"ours/upstream tokens/s at batch 4, upstream compiled:                    "
          f"{fmt(ratios['b4_ours_over_upstream_compiled'])}")
    print(f"ours/upstream tokens/s, each side's best ({ratios['best_ours']} / {ratios['best_upstream']}): "
          f"{fmt(ratios['best_ours_over_best_upstream'])}")
    print(f"total {summary['total_wall_s']:.0f} s; summary: {args.out / 'summary.json'}")


if __name__ == "__main__":
    main()
