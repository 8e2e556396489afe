"""Kernel choice for few rows: milliseconds (CPU) or microseconds (CUDA) per float32 matmul.

CUDA (default when a GPU is present): F.linear against a batch of matrix-vector products for
the embedded pair's weight shapes, each variant captured 50 times in one CUDA graph and
replayed (launch cost excluded).

CPU (``--cpu``): F.linear (MKL's sgemm) against oneDNN's matmul on the same dense weight
(``torch.ops.mkldnn._linear_pointwise``, what specviz.engines.cpu_rows uses), for the weight
shapes of the Qwen2.5-Coder 1.5B / 0.5B pair and the 135M target, over 1-17 rows. The
variants run interleaved, several rounds, in one process, so a loaded machine slows them
alike: compare the ratios, and read the load average printed before and after.
Usage: python scripts/bench_matmul_rows.py [--cpu] [--rounds N] [--shapes qwen|smollm2|all]
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

SHAPES = [(960, 576), (576, 576), (3072, 576), (576, 1536), (49152, 576), (49152, 192)]
ROWS = (1, 2, 3, 5, 9)
# (name, out, in): the 1.5B's layer weights (q/k/v, o, gate, up, down) and output layer
CPU_SHAPES = {
    "qwen": [("1.5B q_proj", 1536, 1536), ("1.5B k/v_proj", 256, 1536),
             ("1.5B gate/up_proj", 8960, 1536), ("1.5B down_proj", 1536, 8960),
             ("1.5B lm_head", 151936, 1536), ("0.5B gate/up_proj", 4864, 896),
             ("0.5B lm_head", 151936, 896)],
    "smollm2": [("135M q_proj", 576, 576), ("135M gate/up_proj", 1536, 576),
                ("135M down_proj", 576, 1536), ("135M lm_head", 49152, 576)],
}
CPU_ROWS = (1, 2, 3, 5, 9, 17)


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


def cuda_main() -> None:
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


def cpu_main(rounds: int, which: str) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from specviz.models import cpu_name
    shapes = [s for k, v in CPU_SHAPES.items() if which in (k, "all") for s in v]
    print(f"{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, float32; load average {os.getloadavg()}")
    print("weight | out x in | rows | F.linear ms | oneDNN ms | F.linear / 1-row F.linear | "
          "oneDNN / 1-row F.linear")
    dnn = torch.ops.mkldnn._linear_pointwise
    for name, n, k in shapes:
        w = torch.randn(n, k)
        ways = {"lin": lambda x, w=w: F.linear(x, w),
                "dnn": lambda x, w=w: dnn(x, w, None, "none", [], "")}
        times = {(way, m): [] for way in ways for m in CPU_ROWS}
        reps = max(1, int(2e8 // (n * k * 4)))  # ~200 MB of weight read per timing
        for _ in range(rounds):
            for m in CPU_ROWS:
                x = torch.randn(m, k)
                for way, fn in ways.items():
                    fn(x)
                    t = time.perf_counter()
                    for _ in range(reps):
                        fn(x)
                    times[way, m].append((time.perf_counter() - t) / reps * 1e3)
        one = statistics.median(times["lin", 1])
        for m in CPU_ROWS:
            a, b = statistics.median(times["lin", m]), statistics.median(times["dnn", m])
            print(f"{name} | {n} x {k} | {m} | {a:.2f} | {b:.2f} | {a / one:.2f} | "
                  f"{b / one:.2f}")
    print(f"load average after: {os.getloadavg()}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cpu", action="store_true", help="the CPU comparison")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--shapes", choices=["qwen", "smollm2", "all"], default="all")
    args = p.parse_args()
    if args.cpu or not torch.cuda.is_available():
        cpu_main(args.rounds, args.shapes)
    else:
        cuda_main()


if __name__ == "__main__":
    main()
