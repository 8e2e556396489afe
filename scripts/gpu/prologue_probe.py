"""The few-row kernel with the MLP's SwiGLU inside (specviz.engines.skinny,
``linear(..., swiglu=True)``) against the kernels it replaces, then what it does to a verify
pass and a tree step (H200 notes in docs/benchmarks.md).

1. For 16-65 rows, each product checked against float64 (relative error < 1e-5) and timed
   as a CUDA graph over 30 copies of the weight (as in a pass): SwiGLU, then the down
   projection with the residual add (cuBLAS) against the kernel with the SwiGLU inside, its
   sum cut in 1-6 parts.
2. The verify pass by rows, and with N_PROMPTS > 0 the tree probe's steps
   (scripts/gpu/tree_probe.py), with the SwiGLU outside the kernel, then inside, in one
   process; whether each method's greedy output equals target-only's.
Usage: python scripts/gpu/prologue_probe.py [N_PROMPTS]  (0: the passes only)
"""

import gc
import sys

import torch
import torch.nn.functional as F

import specviz.decoding as decoding
import specviz.engines.static as static
from specviz.engines import skinny

sys.path.insert(0, "scripts/gpu")
import tree_probe  # noqa: E402

ROWS = (16, 17, 33, 49, 65)
COPIES = 30
EPS = 1e-5


def graph_us(fn) -> float:
    return tree_probe.graph_ms(fn, 30, warm=3) * 1000 / COPIES


def check(got: torch.Tensor, ref: torch.Tensor) -> str:
    err = float((got.double() - ref).norm() / ref.norm())
    return f"{err:.1e}" if err < 1e-5 else f"WRONG {err:.1e}"


def swiglu() -> None:
    print("SwiGLU + down + residual, rows: torch's us | kernel us for 1 / 2 / 3 / 4 / 6 parts "
          "| rel. error (3 parts)")
    n, k = 576, 1536
    ws = [torch.randn(n, k, device="cuda") / k ** 0.5 for _ in range(COPIES)]
    for m in ROWS:
        gu = torch.randn(m, 2 * k, device="cuda")
        x = torch.randn(m, n, device="cuda")
        a, b = gu.double().chunk(2, dim=-1)
        ref = x.double() + (F.silu(a) * b) @ ws[0].double().T
        def old(gu=gu, x=x):
            gate, up = gu.chunk(2, dim=-1)
            return [static._add_linear(x, F.silu(gate) * up, w) for w in ws]
        times = [graph_us(old)]
        for parts in (1, 2, 3, 4, 6):
            c = skinny.Config(split=parts)
            times.append(graph_us(lambda gu=gu, x=x, c=c: [
                skinny.linear(gu, w, residual=x, swiglu=True, config=c) for w in ws]))
        err = check(skinny.linear(gu, ws[0], residual=x, swiglu=True,
                                  config=skinny.Config(split=3)), ref)
        print(f"down     {m:3d}: {times[0]:7.2f} | " + " / ".join(f"{t:6.2f}" for t in
                                                            times[1:]) + f" | {err}",
              flush=True)


_INSIDE = static._swiglu_add_linear


def _outside_swiglu(x, gate_up, w):
    gate, up = gate_up.chunk(2, dim=-1)
    return static._add_linear(x, F.silu(gate) * up, w)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, triton "
          f"{skinny.triton.__version__}")
    swiglu()
    for inside in (False, True):
        static._swiglu_add_linear = _INSIDE if inside else _outside_swiglu
        decoding._WORKSPACES.clear()  # graphs captured anew
        gc.collect()
        print(f"\n== SwiGLU {'inside' if inside else 'outside'} the kernel ==", flush=True)
        if n:
            tree_probe.probe(n, check=True)
        else:  # the passes only
            tree_probe.passes()


if __name__ == "__main__":
    main()
