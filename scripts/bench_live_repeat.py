"""Two identical Live-page measurements on the real embedded pair: how far apart are they?

Usage:  PYTHONPATH=. python scripts/bench_live_repeat.py [--rounds 3] [--max-new-tokens 64]
                                                          [--preset story] [--json FILE]

Each measurement is what a default Run of the Live page does (specviz.measure: both paths
warmed up, then the speculative and the target-only decode alternated for --rounds rounds,
greedy, the preset's prompt). Prints each measurement's median speed-up, its range and both
median tokens/s, how far the two medians are apart, and the machine's load before and after
(os.getloadavg: a number from a loaded machine says little). Issue 27 asks for two identical
runs within 15 % of each other on an idle 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from specviz import DEFAULT_TARGET, DecodeConfig, load_pair  # noqa: E402
from specviz.measure import measure_speedup  # noqa: E402
from specviz.models import hardware_info  # noqa: E402

PRESETS = {  # the Live page's prompt presets (ui.common.PRESETS) without loading Streamlit
    "story": "Write a short story about a lighthouse keeper who finds a message in a bottle.",
    "explanation": "Explain in simple words how a refrigerator keeps food cold.",
}


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} (1, 5, 15 min; {os.cpu_count()} cores)"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default=DEFAULT_TARGET)
    ap.add_argument("--preset", default="story", choices=list(PRESETS))
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads (default: torch's own, the cores)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--json", default=None, metavar="FILE", help="write the results as JSON")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    pair = load_pair(args.target)
    cfg = DecodeConfig(drafter=pair.default_drafter, max_new_tokens=args.max_new_tokens)
    load_before = os.getloadavg()
    print(f"load before: {_load()}; torch threads {torch.get_num_threads()}")
    found = []
    for k in range(2):
        t0 = time.perf_counter()
        m = measure_speedup(pair, PRESETS[args.preset], cfg, rounds=args.rounds,
                            on_progress=lambda what, f, k=k, t0=t0: print(
                                f"  measurement {k + 1}: {what} ({f:.0%}, "
                                f"{time.perf_counter() - t0:.0f} s)", file=sys.stderr,
                                flush=True))
        sp = m.speedup
        found.append({"median": sp.median, "low": sp.low, "high": sp.high,
                      "ratios": sp.ratios, "verdict": sp.verdict,
                      "spec_tokens_per_s": sp.spec_tokens_per_s,
                      "base_tokens_per_s": sp.base_tokens_per_s,
                      "alpha_hat": m.spec.summary.alpha_hat,
                      "seconds": time.perf_counter() - t0})
        print(f"measurement {k + 1}: {sp.describe()}; median tokens/s: speculative "
              f"{sp.spec_tokens_per_s:.1f}, target alone {sp.base_tokens_per_s:.1f}; "
              f"rounds {', '.join(f'{r:.2f}' for r in sp.ratios)}; "
              f"α̂ {m.spec.summary.alpha_hat:.3f}; {found[-1]['seconds']:.1f} s")
    a, b = found[0]["median"], found[1]["median"]
    apart = abs(a - b) / min(a, b)
    load_after = os.getloadavg()
    print(f"the two medians are {apart:.1%} apart (issue 27: within 15 % on an idle "
          f"2-core machine)")
    print(f"load after: {_load()}")
    if args.json:
        hw = hardware_info(pair.device)
        Path(args.json).write_text(json.dumps({
            "command": " ".join(sys.argv), "target": args.target, "preset": args.preset,
            "rounds": args.rounds, "max_new_tokens": args.max_new_tokens,
            "hardware": hw, "load_before": load_before, "load_after": load_after,
            "measurements": found, "medians_apart": apart}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
