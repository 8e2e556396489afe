"""Where the time of a traced run on the fused graphed engine goes, run by run: wall time,
steps, the slowest steps and their phases (torch.compile's recompilations go to stderr with
TORCH_LOGS=recompiles). Usage: python3 scripts/gpu/fused_probe.py [dtype]"""

import sys
import time
from dataclasses import replace

import torch

from specviz import DecodeConfig, load_pair, speculative_decode
from specviz.cli.bench import DEFAULT_PROMPTS
from specviz.engines.static import fuse_layers

dtype = sys.argv[1] if len(sys.argv) > 1 else "bfloat16"
pair = load_pair("embedded:smollm2-135m-instruct", "embedded:smollm2-draft", device="cuda",
                 dtype=dtype)
cfg = DecodeConfig(drafter="model", gamma=4, max_new_tokens=128, engine="graphs")
# the logits check runs unfused, once per model (as in bench, where the unfused engine
# comes first): fused bfloat16 differs from transformers' forward by more than its tolerance
speculative_decode(pair, DEFAULT_PROMPTS[0], cfg)
fuse_layers(True)
print(f"torch {torch.__version__}, {dtype}, fused", flush=True)
for rnd in range(3):
    for traced in (True, False):
        c = replace(cfg, trace_detail=traced)
        for i, prompt in enumerate(DEFAULT_PROMPTS):
            torch.cuda.synchronize()
            t = time.perf_counter()
            tr = speculative_decode(pair, prompt, c)
            torch.cuda.synchronize()
            wall = time.perf_counter() - t
            line = (f"round {rnd} traced={traced} prompt {i}: {wall * 1e3:8.1f} ms, "
                    f"{tr.summary.n_emitted} tokens, {tr.summary.n_steps} steps")
            if traced and tr.steps:
                slow = sorted(tr.steps, key=lambda s: -s.total_ms)[:3]
                line += " · slowest steps " + ", ".join(
                    f"#{s.step} γ={s.gamma} total {s.total_ms:.1f} (draft {s.draft_ms:.1f}, "
                    f"verify {s.verify_ms:.1f})" for s in slow)
            print(line, flush=True)
