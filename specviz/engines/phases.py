"""How the phases of a step run: eagerly, or each captured once as a CUDA graph and replayed;
and the step's one device -> host copy.

A CUDA graph records the kernels a function launches, with their arguments and addresses,
and replays them in one launch. The decoding core keeps every buffer a phase touches at a
fixed address and reads positions from device tensors, so a phase captured for one shape
(its key: the phase, γ and the settings baked into it) replays correctly at every step.
"""

from __future__ import annotations

import gc
from typing import Any, Callable

import numpy as np
import torch


class EagerPhases:
    """Runs each phase as it comes."""

    captures = False

    def run(self, key: tuple, fn: Callable[[], Any], fuse: bool = False) -> Any:
        return fn()


def capture(fn: Callable[[], Any], after_warmup: Callable[[], None] = lambda: None,
            pool=None) -> tuple[torch.cuda.CUDAGraph, Any]:
    """``fn`` run once on a side stream (CUDA graphs need a warm-up off the capture), then
    captured as a CUDA graph; returns the graph and the output it writes on every replay.
    ``after_warmup`` undoes the warm-up's lasting changes."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        fn()
        after_warmup()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    # Python's cyclic garbage collector stays off during the capture: if it freed a graph
    # dropped earlier (a workspace let go), that graph's reset would void this capture
    collecting = gc.isenabled()
    gc.disable()
    try:
        # thread_local: another thread (a second app session) may use the GPU meanwhile
        with torch.cuda.graph(graph, pool=pool, capture_error_mode="thread_local"):
            out = fn()
    finally:
        if collecting:
            gc.enable()
    return graph, out


class GraphPhases:
    """Captures each phase once per key as a CUDA graph, then replays it.

    ``save`` is called before a warm-up run and returns what undoes that run's lasting
    changes (the committed length P advances in the accept phase). With ``fused``, a phase
    run with ``fuse=True`` is compiled by torch.compile (inductor) before its capture: its
    many small operations (a token tree's per-depth top-k, gathers and masks) become fewer
    generated kernels. It compiles once per key (seconds to a minute), then replays as any
    graph."""

    captures = True

    def __init__(self, save: Callable[[], Callable[[], None]], fused: bool = False):
        self.save, self.fused = save, fused
        self.graphs: dict = {}

    def run(self, key: tuple, fn: Callable[[], Any], fuse: bool = False) -> Any:
        hit = self.graphs.get(key)
        if hit is None:
            undo = self.save()
            hit = self._compiled(fn, undo) if self.fused and fuse else None
            if hit is None:
                hit = capture(fn, undo)
                undo()
            self.graphs[key] = hit
        hit[0].replay()
        return hit[1]

    def _compiled(self, fn: Callable[[], Any], undo: Callable[[], None]):
        """``fn`` compiled, then captured; None if it cannot be captured compiled. It runs
        twice before the capture (each run undone), so that what the first run made (a
        shape's constants, caches) cannot make the capture compile again; inside the
        capture, a needed recompilation raises instead of compiling."""
        import torch._dynamo

        compiled = torch.compile(fn, dynamic=False)
        for _ in range(2):
            compiled()
            undo()
        try:
            with torch.compiler.set_stance("fail_on_recompile"):
                graph, out = capture(compiled, undo)
        except torch._dynamo.exc.RecompileError:
            return None
        undo()
        return graph, out


class HostCopier:
    """The step's one device -> host transfer. On CUDA it is asynchronous, into two pinned
    buffers used in turn, so the host can write one step's record while the GPU runs the
    next; ``finish`` waits for it. Elsewhere it is a plain copy."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.buffers: list[torch.Tensor] = []
        self.turn = 0

    def start(self, packed: torch.Tensor):
        if not self.cuda:
            return packed.cpu().numpy()
        n = packed.shape[0]
        if not self.buffers or self.buffers[0].shape[0] < n:
            self.buffers = [torch.empty(max(n, 4096), dtype=packed.dtype, pin_memory=True)
                            for _ in range(2)]
        buf = self.buffers[self.turn]
        self.turn ^= 1
        buf[:n].copy_(packed, non_blocking=True)
        done = torch.cuda.Event()
        done.record()
        return buf, n, done

    def finish(self, started) -> np.ndarray:
        if not self.cuda:
            return started
        buf, n, done = started
        done.synchronize()
        return buf[:n].numpy()
