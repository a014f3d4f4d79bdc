"""Optimizers: Muon on the hidden 2-D matrices, AdamW on embeddings and norms.

The partition is by role and shape, never by parameter-name substrings: every ``nn.Linear`` weight inside
a transformer block is a hidden matrix (Muon); the token embedding (also the tied output head) and every
norm weight go to AdamW. ``partition`` asserts that the two sets cover every parameter exactly once.

Muon (as upstream): momentum buffer ``buf = lerp(buf, g, 1 - m)``, Nesterov ``u = lerp(g, buf, m)``,
orthogonalised by 5 Newton-Schulz quintic steps (3.4445, -4.7750, 2.0315) on the Frobenius-normalised
update, applied as ``p -= lr * max(1, rows / cols) ** 0.5 * u``. No weight decay on Muon matrices.

The fast path stacks all matrices of one shape and runs Newton-Schulz once per shape as a batched matmul
(4 shapes in the 151M model instead of 224 separate calls), on matrices 4x longer than wide (the MLP's) in the
Gram form (``newton_schulz_gram``: the same iteration carried on the small side); ``reference=True`` is the plain
per-matrix loop in fp32 that the fast path is tested against.

Where the trainer runs in bf16 (``WorkingCopies``), the blocks' matrices live twice, stacked by shape: fp32 masters
(the model's parameters are views of them) and bf16 working copies that the forward reads; Muon's parameters are
the working copies, and its compiled update adds to the masters and rewrites the copies in one pass.

Gradient clipping (``clip_grad_norm_``'s rule) is split: ``clip_coefficient`` computes the factor over the
gradients the optimizers will read (``gradients``), and each optimizer applies it where it reads them
(``step_scaled``: Muon inside its update, the fused AdamW as its ``grad_scale``; an unfused AdamW by a
``_foreach_mul_``), so no gradient is rewritten in a pass of its own.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

import torch
from torch import nn

from trainer.model import GPT, Block, Linear, RMSNorm

NS_COEFFS = (3.4445, -4.7750, 2.0315)


def partition(model: GPT) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(hidden matrices for Muon, embeddings and norms for AdamW), checked to cover every parameter once."""
    hidden: list[nn.Parameter] = []
    other: list[nn.Parameter] = []
    for block in model.modules():
        if isinstance(block, Block):
            for module in block.modules():
                if isinstance(module, nn.Linear):
                    assert module.weight.ndim == 2
                    hidden.append(module.weight)
    for module in model.modules():
        if isinstance(module, nn.Embedding | RMSNorm):
            other.append(module.weight)
    seen = [id(p) for p in hidden + other]
    every = {id(p) for p in model.parameters()}
    assert len(seen) == len(set(seen)), "a parameter is in both optimizer groups"
    assert set(seen) == every, (f"optimizer groups miss {len(every - set(seen))} parameter(s): "
                                "every parameter must be a block Linear, an embedding or a norm")
    return hidden, other


def ns_start(G: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Newton-Schulz's starting point: G in ``dtype``, Frobenius-normalised (per matrix of a batch)."""
    X = G.to(dtype)
    return X / (X.norm(dim=(-2, -1), keepdim=True) + 1e-7)


def newton_schulz(G: torch.Tensor, steps: int = 5, dtype: torch.dtype = torch.float16) -> torch.Tensor:
    """Approximately orthogonalise G (or a batch [n, rows, cols] of same-shape matrices).

    The quintic is X <- a X + (b A + c A^2) X with A = X X^T on a wide matrix. A tall one (rows > cols) runs it
    from the right, X <- a X + X (b A + c A^2) with A = X^T X: the transposed iteration without transposing,
    so the Gram matrix stays the small one and the result keeps G's layout (no strided copies on the way in
    or out). The a X term is folded into the small side, X <- (a I + b A + c A^2) X, so each step is three
    matmuls and one pass over the Gram-sized matrices: the X-sized pass that added a X to the product is gone
    (Muon's step on an H200: bench/muon_step.py, ``unfolded`` against ``trainer``)."""
    a, b, c = NS_COEFFS
    X = ns_start(G, dtype)
    tall = G.size(-2) > G.size(-1)
    eye = torch.eye(G.size(-1) if tall else G.size(-2), device=G.device, dtype=dtype)
    for _ in range(steps):
        A = X.mT @ X if tall else X @ X.mT
        B = a * eye + b * A + c * (A @ A)
        X = X @ B if tall else B @ X
    return X


# Newton-Schulz by the Gram matrix for matrices at least this many times longer than wide (the MLP's 2048 x 512 and
# 512 x 2048): there the two X-sized matmuls of each step cost 4x the Gram-sized one, and the Gram form does most
# of its work on the small side
GRAM_MIN_ASPECT = 4
# the Gram form's step after which X is rebuilt from the product so far and the Gram matrix recomputed: in fp16,
# without it the small singular values drift (relative error 0.2-0.37 against fp64 on gradients with a decaying
# spectrum, against 0.005-0.05 for ``newton_schulz``); restarting after step 3 matches ``newton_schulz`` there
GRAM_RESTART = 3


def newton_schulz_gram(G: torch.Tensor, steps: int = 5, dtype: torch.dtype = torch.float16,
                       restart: int = GRAM_RESTART) -> torch.Tensor:
    """``newton_schulz`` computed on the small (Gram) side: the same iteration in exact arithmetic.

    Each step's X_{k+1} = B_k X_k with B_k = a I + b A_k + c A_k^2 a polynomial in A_k = X_k X_k^T, so every B_k
    and A_k commute and A_{k+1} = B_k A_k B_k. The loop carries the product Q = B_k ... B_0 and A_k, all s x s
    (s the short side), and touches the long side only to form A_0 and, at the end, X = Q X_0. For s x 4s that is
    4 X-sized matmuls (with the restart) and 14 Gram-sized ones for 5 steps, against 10 and 5: about a third
    fewer FLOPs. A tall G runs from the right, as in ``newton_schulz``, so no transpose is copied."""
    a, b, c = NS_COEFFS
    tall = G.size(-2) > G.size(-1)
    X = ns_start(G, dtype)
    eye = torch.eye(min(G.shape[-2:]), device=G.device, dtype=dtype)

    def gram(X: torch.Tensor) -> torch.Tensor:
        return X.mT @ X if tall else X @ X.mT

    def apply(Q: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
        return X @ Q if tall else Q @ X

    A, Q = gram(X), None
    for k in range(steps):
        if k == restart and Q is not None:  # rebuild X from the product so far (Q is symmetric: Q^T = Q)
            X, Q = apply(Q, X), None
            A = gram(X)
        B = a * eye + b * A + c * (A @ A)
        Q = B if Q is None else B @ Q
        if k + 1 < steps and k + 1 != restart:
            A = B @ (A @ B)
    return apply(Q, X)


def newton_schulz_transposed(G: torch.Tensor, steps: int = 5, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Upstream's form, the reference: a tall G is transposed, iterated from the left, transposed back."""
    a, b, c = NS_COEFFS
    transpose = G.size(-2) > G.size(-1)
    X = ns_start(G.mT if transpose else G, dtype)
    for _ in range(steps):
        A = X @ X.mT
        B = b * A + c * (A @ A)
        X = a * X + B @ X
    return X.mT if transpose else X


def muon_direction(g: torch.Tensor, buf: torch.Tensor, momentum: torch.Tensor, grad_scale: torch.Tensor,
                   steps: int, ns_dtype: torch.dtype) -> torch.Tensor:
    """One shape group's Muon direction from its stacked gradients ``g`` (fp32, or the bf16 gradients of working
    copies), first scaled by ``grad_scale`` (the clipping coefficient, or 1) in fp32: the momentum buffer ``buf``
    moves to ``lerp(buf, g, 1 - m)``, and the Nesterov direction ``lerp(g, buf, m)`` is orthogonalised, in
    ``ns_dtype``. ``momentum`` and ``grad_scale`` are 0-d tensors, so compiled code never bakes their values in."""
    g = g.float() * grad_scale
    buf.lerp_(g, 1 - momentum)
    rows, cols = g.shape[-2:]
    orthogonalise = newton_schulz_gram if max(rows, cols) >= GRAM_MIN_ASPECT * min(rows, cols) else newton_schulz
    return orthogonalise(g.lerp(buf, momentum), steps, ns_dtype)


def muon_update(g: torch.Tensor, buf: torch.Tensor, momentum: torch.Tensor, grad_scale: torch.Tensor, steps: int,
                ns_dtype: torch.dtype) -> torch.Tensor:
    """``muon_direction`` in fp32, for parameters the caller updates itself."""
    return muon_direction(g, buf, momentum, grad_scale, steps, ns_dtype).float()


def muon_apply(g: torch.Tensor, buf: torch.Tensor, masters: torch.Tensor, working: torch.Tensor,
               momentum: torch.Tensor, grad_scale: torch.Tensor, step: torch.Tensor, steps: int,
               ns_dtype: torch.dtype) -> None:
    """``muon_direction`` applied to one group of ``WorkingCopies``: ``masters += step * direction`` in fp32 and
    the bf16 ``working`` copies rewritten from the new masters, in one pass (``step``: a 0-d tensor, -lr times
    the shape's scale)."""
    masters.add_(muon_direction(g, buf, momentum, grad_scale, steps, ns_dtype).float() * step)
    working.copy_(masters)


class WorkingCopies:
    """The blocks' matrices stacked by shape in two copies: fp32 masters, of which the model's ``Linear`` weights
    become views (so initialisation, the parameter count and anything that reads the weights are unchanged), and
    bf16 working copies, which the blocks' forward reads (``trainer.model.Linear.working``) and Muon rewrites in
    the pass that updates the masters (``muon_apply``).

    Under bf16 autocast each step otherwise casts every fp32 matrix to bf16 for its matmul and every bf16 weight
    gradient back to fp32: 224 small kernels a step at the record settings, ~0.9 ms of GPU time on an H200
    (``bench/results/dec01/call2-final/profile/kernels-b4.txt``). The values are the same: autocast's matmuls read
    the bf16 rounding of the weights, and their bf16 gradients were cast to fp32 exactly. The working copies'
    gradients stay bf16; with more than one micro-batch a step Muon sums them in fp32 (``Muon.accumulate``), as
    autograd summed the fp32 gradients."""

    def __init__(self, model: GPT) -> None:
        by_shape: dict[tuple[int, ...], list[Linear]] = defaultdict(list)
        for block in model.blocks:
            for module in block.modules():
                if isinstance(module, Linear):
                    by_shape[tuple(module.weight.shape)].append(module)
        self.masters: list[torch.Tensor] = []
        self.working: list[torch.Tensor] = []
        self.leaves: list[list[torch.Tensor]] = []
        with torch.no_grad():
            for modules in by_shape.values():
                masters = torch.stack([m.weight for m in modules])
                working = masters.to(torch.bfloat16)
                leaves = []
                for i, module in enumerate(modules):
                    module.weight = nn.Parameter(masters[i])
                    module.working = working[i].detach().requires_grad_()
                    leaves.append(module.working)
                self.masters.append(masters)
                self.working.append(working)
                self.leaves.append(leaves)

    @torch.no_grad()
    def refresh(self) -> None:
        """Rewrite the working copies from the masters (after the weights were set other than by Muon)."""
        for masters, working in zip(self.masters, self.working):
            working.copy_(masters)


def clip_coefficient(grads: list[torch.Tensor], max_norm: float) -> torch.Tensor:
    """``clip_grad_norm_``'s factor, ``min(1, max_norm / (total norm + 1e-6))``, as a 0-d tensor on the grads'
    device, without scaling them: each optimizer applies it where it reads its gradients (``Muon.step``'s
    ``grad_scale`` inside its compiled update, the fused AdamW's ``grad_scale``), which saves a read and a write
    of every gradient a step. Each tensor's norm is taken in fp32 whatever its dtype (the working copies' bf16
    gradients: ``_foreach_norm`` would round their norms to bf16). Nothing is read back to the host."""
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = defaultdict(list)
    for g in grads:
        by_dtype[g.dtype].append(g)
    norms = [n for group in by_dtype.values() for n in torch._foreach_norm(group, 2, dtype=torch.float32)]
    total = torch.linalg.vector_norm(torch.stack(norms))
    return torch.clamp(max_norm / (total + 1e-6), max=1.0)


def gradients(optimizers: Sequence[torch.optim.Optimizer]) -> list[torch.Tensor]:
    """The gradients the optimizers will read at their next step (what the clipping norm is taken over)."""
    out: list[torch.Tensor] = []
    for opt in optimizers:
        if isinstance(opt, Muon):
            out.extend(opt.gradients())
        else:
            out.extend(p.grad for g in opt.param_groups for p in g["params"] if p.grad is not None)
    return out


def step_scaled(opt: torch.optim.Optimizer, grad_scale: torch.Tensor | None) -> None:
    """``opt.step()`` on its gradients times ``grad_scale`` (``clip_coefficient``'s; None: as they are): Muon
    scales inside its update, any other optimizer's gradients by one ``_foreach_mul_`` first."""
    if isinstance(opt, Muon):
        opt.step(grad_scale=grad_scale)
        return
    if grad_scale is not None and opt.defaults.get("fused"):
        # the fused AdamW kernel divides each gradient by its ``grad_scale`` as it reads it (AMP's unscaling), so
        # the clipping costs no pass of its own (the _foreach_mul_ over AdamW's gradients took 0.34 ms a step at
        # the record settings on an H200: bench/results/nov30h/call4-final/profile/kernels-b4.txt)
        opt.grad_scale = torch.reciprocal(grad_scale)  # type: ignore[attr-defined]
        try:
            opt.step()
        finally:
            opt.grad_scale = None  # type: ignore[attr-defined]
        return
    if grad_scale is not None:
        torch._foreach_mul_([p.grad for g in opt.param_groups for p in g["params"] if p.grad is not None],
                            grad_scale)
    opt.step()


class Muon(torch.optim.Optimizer):
    """Muon over groups of same-shape matrices, Newton-Schulz batched per shape. With ``working`` its parameters
    are the working copies' bf16 leaves, and each step updates their fp32 masters and rewrites them."""

    def __init__(self, params: list[nn.Parameter], lr: float, momentum: float = 0.95, ns_steps: int = 5,
                 ns_dtype: torch.dtype = torch.float16, reference: bool = False,
                 compile_ns: bool = False, working: WorkingCopies | None = None) -> None:
        if working is not None:
            params = [leaf for leaves in working.leaves for leaf in leaves]
        super().__init__(params, dict(lr=lr, momentum=momentum, ns_steps=ns_steps))
        self.ns_dtype = ns_dtype
        self.reference = reference
        self.working = working
        # the momentum lerps, Newton-Schulz and the cast back (or, with working copies, the whole update) compile
        # into one function per shape group (on an H200, 5.91 ms of GPU time a step against 6.37 with the lerps
        # outside: bench/muon_step.py)
        wrap = (lambda f: torch.compile(f, dynamic=False)) if compile_ns else (lambda f: f)
        self._update: Callable[..., torch.Tensor] = wrap(muon_update)
        self._apply: Callable[..., None] = wrap(muon_apply)
        by_shape: dict[tuple[int, ...], list[nn.Parameter]] = defaultdict(list)
        for group in self.param_groups:
            for p in group["params"]:
                by_shape[tuple(p.shape)].append(p)
        self.shape_groups = list(by_shape.values())
        if working is not None:
            assert [len(ps) for ps in self.shape_groups] == [len(m) for m in working.masters]
        device = params[0].device
        self._buffers: list[torch.Tensor] | None = None
        self._sums: list[torch.Tensor] | None = None  # fp32 gradient sums over micro-batches (``accumulate``)
        self._summed = 0  # micro-batches in the sums
        self._momentum = torch.tensor(momentum, device=device)
        self._one = torch.ones((), device=device)
        self._steps = [torch.zeros((), device=device) for _ in self.shape_groups]

    def _stacked_zeros(self) -> list[torch.Tensor]:
        return [torch.zeros((len(ps), *ps[0].shape), device=ps[0].device, dtype=torch.float32)
                for ps in self.shape_groups]

    @torch.no_grad()
    def accumulate(self) -> None:
        """After each micro-batch's backward when a step has several: move the working copies' bf16 gradients
        into fp32 sums (autograd would sum them in bf16). Without working copies there is nothing to do: fp32
        parameters sum their own fp32 gradients."""
        if self.working is None:
            return
        if self._sums is None:
            self._sums = self._stacked_zeros()
        for params, total in zip(self.shape_groups, self._sums):
            g = torch.stack([p.grad for p in params])
            if self._summed:
                total.add_(g)
            else:
                total.copy_(g)
            for p in params:
                p.grad = None
        self._summed += 1

    def gradients(self) -> list[torch.Tensor]:
        """The gradients the next step reads: the fp32 sums after ``accumulate``, else the parameters'."""
        if self._summed:
            assert self._sums is not None
            return list(self._sums)
        return [p.grad for params in self.shape_groups for p in params if p.grad is not None]

    @torch.no_grad()
    def step(self, closure: None = None, grad_scale: torch.Tensor | None = None) -> None:  # type: ignore[override]
        """One update; ``grad_scale`` (a 0-d tensor: ``clip_coefficient``'s) multiplies every gradient first."""
        group = self.param_groups[0]
        lr, m, steps = group["lr"], group["momentum"], group["ns_steps"]
        if grad_scale is None:
            grad_scale = self._one
        if self.reference:
            self._reference_step(lr, m, steps, grad_scale)
            return
        if self._buffers is None:
            self._buffers = self._stacked_zeros()
        self._momentum.fill_(m)
        for i, (params, buf) in enumerate(zip(self.shape_groups, self._buffers)):
            g = self._sums[i] if self._summed and self._sums is not None else torch.stack([p.grad for p in params])
            rows, cols = params[0].shape
            scale = -lr * max(1.0, rows / cols) ** 0.5
            if self.working is None:
                update = self._update(g, buf, self._momentum, grad_scale, steps, self.ns_dtype)
                torch._foreach_add_(params, list(update.unbind(0)), alpha=scale)
            else:
                self._steps[i].fill_(scale)
                self._apply(g, buf, self.working.masters[i], self.working.working[i], self._momentum, grad_scale,
                            self._steps[i], steps, self.ns_dtype)
        self._summed = 0

    def _reference_step(self, lr: float, m: float, steps: int, grad_scale: torch.Tensor) -> None:
        for p in self.param_groups[0]["params"]:
            state = self.state[p]
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = torch.zeros_like(p)
            buf = state["momentum_buffer"]
            grad = p.grad * grad_scale
            buf.mul_(m).add_(grad, alpha=1 - m)
            g = grad * (1 - m) + buf * m
            update = newton_schulz_transposed(g, steps, torch.float32)
            p.add_(update, alpha=-lr * max(1.0, p.shape[0] / p.shape[1]) ** 0.5)


def build_optimizers(model: GPT, *, muon_lr: float, adamw_lr: float, muon_momentum: float, weight_decay: float,
                     fast: bool, ns_dtype: torch.dtype, compile_ns: bool = False, fused_adamw: bool | None = None
                     ) -> tuple[Muon, torch.optim.AdamW]:
    """Muon and AdamW over ``partition``'s groups. ``fused_adamw`` (default: on CUDA on the fast path) picks
    PyTorch's fused AdamW kernel; the CPU tests set it to check the clipping through that kernel."""
    hidden, other = partition(model)
    working = model.working_copies if fast else None
    muon = Muon(hidden, lr=muon_lr, momentum=muon_momentum, ns_dtype=ns_dtype, reference=not fast,
                compile_ns=compile_ns, working=working)
    fused = fast and other[0].is_cuda if fused_adamw is None else fused_adamw
    adamw = torch.optim.AdamW(other, lr=adamw_lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=weight_decay,
                              fused=fused, foreach=None if fused else False)
    for opt in (muon, adamw):
        for g in opt.param_groups:
            g["peak_lr"] = g["lr"]
    return muon, adamw


def accumulate(optimizers: Sequence[torch.optim.Optimizer]) -> None:
    """Between the micro-batches of one step: ``Muon.accumulate`` (the other optimizers' parameters are fp32 and
    sum their own gradients)."""
    for opt in optimizers:
        if isinstance(opt, Muon):
            opt.accumulate()


def set_lr(optimizers: Sequence[torch.optim.Optimizer], multiplier: float) -> None:
    for opt in optimizers:
        for g in opt.param_groups:
            g["lr"] = g["peak_lr"] * multiplier
