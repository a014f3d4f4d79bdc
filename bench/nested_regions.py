"""``python -m trainer`` with each block of a compiled Region run as a nested compile region
(``torch.compiler.nested_compile_region``): dynamo traces one block of a region and stamps it out for the others,
and inductor compiles it once. Tried for issue 14 (Dec 2, thirteenth session) and not kept: on the GPU the blocks'
bf16 working copies are views of one stacked tensor per shape group, and the nested region refuses inputs that alias
each other (``bench/results/dec02c/``). The CPU has no working copies, so it runs there.

    python bench/nested_regions.py --track tiny-speedrun --set compile=true --set n_layers=32 --out /tmp/r
"""

from __future__ import annotations

import runpy
import sys

import torch

import trainer.model as model


@torch.compiler.nested_compile_region
def _run_block(block, x, cos, sin, reference):
    return block(x, cos, sin, reference)


def _region_forward(self, x, cos, sin, reference=False):
    for block in self.members:
        x = _run_block(block, x, cos, sin, reference)
    return x


if __name__ == "__main__":
    model.Region.forward = _region_forward
    sys.argv = ["trainer", *sys.argv[1:]]
    runpy.run_module("trainer", run_name="__main__")
