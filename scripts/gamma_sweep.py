"""Speculative against target-only decoding for several gamma, on one engine.

Usage: python scripts/gamma_sweep.py [--engine graphs] [--device cuda] [--gammas 2,3,4,5,6]
Prints tokens/s, speedup, alpha_hat and the median phase times per gamma (one run per bench
prompt, after a warm-up run that captures the CUDA graphs).
"""

import argparse
import statistics

from specviz import DecodeConfig, load_pair, speculative_decode, target_only_decode
from specviz.cli.bench import DEFAULT_PROMPTS
from specviz.models import hardware_info


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine", default="auto")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--gammas", default="2,3,4,5,6")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    args = ap.parse_args()
    pair = load_pair(device=args.device)
    hw = hardware_info(pair.device)
    print(f"{hw.get('gpu') or hw['cpu']}; torch {hw['torch']}; engine {args.engine}")
    med = statistics.median
    for g in (int(x) for x in args.gammas.split(",")):
        cfg = DecodeConfig(gamma=g, max_new_tokens=args.max_new_tokens, engine=args.engine)
        speculative_decode(pair, DEFAULT_PROMPTS[0], cfg)  # warm-up (graph capture)
        target_only_decode(pair, DEFAULT_PROMPTS[0], cfg)
        spec = [speculative_decode(pair, p, cfg) for p in DEFAULT_PROMPTS]
        base = [target_only_decode(pair, p, cfg) for p in DEFAULT_PROMPTS]
        rate = sum(t.summary.n_emitted for t in spec) / sum(t.summary.wall_s for t in spec)
        base_rate = sum(t.summary.n_emitted for t in base) / sum(t.summary.wall_s for t in base)
        steps = [s for t in spec for s in t.steps[1:]]
        judged = sum(s.n_evaluated for t in spec for s in t.steps)
        alpha = sum(t.summary.n_accepted for t in spec) / judged if judged else float("nan")
        print(f"gamma {g}: {rate:.1f} tokens/s, target-only {base_rate:.1f}, speedup "
              f"{rate / base_rate:.3f}, alpha_hat {alpha:.3f}, draft "
              f"{med([s.draft_ms for s in steps]):.3f} ms, verify "
              f"{med([s.verify_ms for s in steps]):.3f} ms, step "
              f"{med([s.total_ms for s in steps]):.3f} ms")


if __name__ == "__main__":
    main()
