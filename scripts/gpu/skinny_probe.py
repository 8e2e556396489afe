"""Few-row float32 products on the GPU: the Triton kernel (specviz.engines.skinny) against
cuBLAS, then what it does to a verify pass and to a tree step (H200 notes in
docs/benchmarks.md).

1. Every weight shape of the target and the feature head, 2-65 rows: each tile config
   checked against a float64 product (relative error < 1e-5) and timed as a CUDA graph over
   30 copies of the weight (one per layer, so that weights come from memory as in a pass);
   cuBLAS (F.linear), the batched matrix-vector product, the best config, and what the
   static engine uses for that shape (``specviz.engines.static._linear``).
2. The verify pass by rows and the tree probe's steps (scripts/gpu/tree_probe.py) with the
   kernel off and on, in one process; whether each method's output equals target-only's.
Usage: python scripts/gpu/skinny_probe.py [N_PROMPTS] [quick]  (quick: the engine's tiles only)
"""

import gc
import itertools
import sys

import torch
import torch.nn.functional as F

import specviz.decoding as decoding
import specviz.engines.static as static
from specviz.engines import skinny

sys.path.insert(0, "scripts/gpu")
import tree_probe  # noqa: E402

SHAPES = {"qkv": (960, 576), "o": (576, 576), "gate-up": (3072, 576), "down": (576, 1536),
          "lm-head": (49152, 576), "head fc": (576, 1152), "head out": (16384, 576)}
ROWS = (2, 4, 8, 16, 17, 33, 65)
COPIES = 30


def graph_us(fn, reps: int = 30) -> float:
    """Microseconds per replay of fn captured as a CUDA graph."""
    return tree_probe.graph_ms(fn, reps, warm=3) * 1000


def configs(quick: bool):
    if quick:  # the engine's own tiles only
        yield from {skinny._LAYER, *skinny._OUTPUT.values()}
        return
    for bm, bn, bk, warps, stages, prec in itertools.product(
            (16, 32, 64), (16, 32, 64, 128), (32, 64), (2, 4), (3,), ("ieee", "tf32x3")):
        yield skinny.Config(bm, bn, bk, warps, stages, prec)


def tune(quick: bool) -> None:
    print("shape rows: cuBLAS us | batched GEMV us | best kernel us (config) | rel. error | "
          "the engine's choice us")
    for name, (n, k) in SHAPES.items():
        copies = COPIES if n * k < 5_000_000 else 4
        ws = [torch.randn(n, k, device="cuda") / k ** 0.5 for _ in range(copies)]
        for m in ROWS:
            h = torch.randn(m, k, device="cuda")
            ref = (h.double() @ ws[0].double().T)
            cublas = graph_us(lambda h=h, ws=ws: [F.linear(h, w) for w in ws]) / copies
            gemv = float("nan")
            if n * k < 5_000_000:
                gemv = graph_us(lambda h=h, ws=ws: [torch.bmm(w.expand(len(h), *w.shape),
                                                              h.unsqueeze(-1)) for w in ws])
                gemv /= copies
            top = None
            for c in configs(quick):
                if c.bm > max(16, 1 << (m - 1).bit_length()):
                    continue
                try:
                    y = skinny.linear(h, ws[0], config=c)
                    torch.cuda.synchronize()
                except Exception as e:  # a tile Triton cannot build here
                    print(f"   skip {c}: {type(e).__name__}")
                    continue
                err = float((y.double() - ref).norm() / ref.norm())
                if not err < 1e-5:
                    print(f"   WRONG {c}: {err:.1e}")
                    continue
                t = graph_us(lambda h=h, ws=ws, c=c: [skinny.linear(h, w, config=c)
                                                      for w in ws]) / copies
                if top is None or t < top[0]:
                    top = (t, c, err)
            used = graph_us(lambda h=h, ws=ws: [static._linear(h, w) for w in ws]) / copies
            print(f"{name:9s} {m:3d}: {cublas:7.2f} | {gemv:7.2f} | {top[0]:7.2f} ({top[1]}) | "
                  f"{top[2]:.1e} | {used:7.2f}", flush=True)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, triton "
          f"{skinny.triton.__version__}")
    tune(len(sys.argv) > 2 and sys.argv[2] == "quick")
    for on in (False, True):
        skinny.enable(on)
        decoding._WORKSPACES.clear()  # graphs captured anew
        gc.collect()  # the old graphs go now, not in the middle of a later capture
        print(f"\n== few-row kernel {'on' if on else 'off'} ==", flush=True)
        tree_probe.probe(n, check=True)


if __name__ == "__main__":
    main()
