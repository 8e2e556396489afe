"""Kernel choice for few rows on a CUDA device: microseconds per float32 matmul, F.linear
against a batch of matrix-vector products, for the embedded pair's weight shapes.

Each variant is captured 50 times in one CUDA graph and replayed (launch cost excluded).
Usage: python scripts/bench_matmul_rows.py
"""

import torch
import torch.nn.functional as F

SHAPES = [(960, 576), (576, 576), (3072, 576), (576, 1536), (49152, 576), (49152, 192)]
ROWS = (1, 2, 3, 5, 9)


def per_call_us(fn, reps: int = 50) -> float:
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(reps):
            fn()
    graph.replay()
    torch.cuda.synchronize()
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    for _ in range(5):
        graph.replay()
    b.record()
    torch.cuda.synchronize()
    return a.elapsed_time(b) / 5 / reps * 1000


def main() -> None:
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, float32")
    print("weight (out x in) | rows | F.linear us | batched mat-vec us")
    for out_f, in_f in SHAPES:
        w = torch.randn(out_f, in_f, device="cuda")
        for t in ROWS:
            x = torch.randn(t, in_f, device="cuda")
            wide = w.expand(t, out_f, in_f)
            col = x.view(t, in_f, 1)
            lin = per_call_us(lambda x=x, w=w: F.linear(x, w))
            bmv = per_call_us(lambda wide=wide, col=col: torch.bmm(wide, col))
            print(f"{out_f} x {in_f} | {t} | {lin:.1f} | {bmv:.1f}")


if __name__ == "__main__":
    main()
