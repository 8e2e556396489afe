"""The markdown of scripts/bench_pairs.py's report: per pair, dtype and prompt category, one
row per method (decoding speed with tracing off; alpha_hat and tokens per verification from
the traced run of the same method), then each bench run's own tables."""

from __future__ import annotations

from specviz.cli.bench_categories import md_cell

SPEC = "specviz speculative, "
HF = {"transformers assisted generate": "transformers assisted (same draft)",
      "transformers generate (target only)": "transformers generate (target only)",
      "transformers generate, static cache, compiled (target only)":
      "transformers static-cache generate (target only)"}
UNTRACED = " (untraced)"


def _rows_of(run: dict) -> list[tuple[str, str, str]]:
    """(label, method for speed, method for alpha) of one bench run's result."""
    r = run["result"]
    head = "feature head" in run["name"]
    rows = []
    if "rows" in r:  # a tree bench: its fastest tree (tracing off), not the baseline
        trees = {m: f for m, f in r["rows"].items()
                 if not m.startswith(("target-only", "chain of"))}
        if trees:
            best = max(trees, key=lambda m: trees[m]["tokens_per_s_untraced"] or 0)
            rows.append((f"best token tree: {best}", best + UNTRACED, best))
        rows += [(f"{m} (tree bench)", m + UNTRACED, m) for m in r["rows"]
                 if m.startswith("chain of")]
        return rows
    for e in r["engines"]:
        if not head:
            rows.append((f"target-only ({e})", f"specviz target-only, {e}", ""))
        rows.append((f"{'feature head' if head else 'draft model'} ({e})",
                     f"{SPEC}{e}, tracing off", f"{SPEC}{e}, tracing on"))
    rows += [(label, m, "") for m, label in HF.items() if m in r["tokens_per_s"]]
    return rows


def _fmt(x, spec=".2f") -> str:
    return "-" if x is None else format(x, spec)


def _speedup(f: dict) -> str:
    if f.get("speedup") is None:
        return "-"
    rng = f.get("speedup_per_repeat") or []
    extra = f" ({min(rng):.2f}–{max(rng):.2f})" if len(rng) > 1 else ""
    return f"{f['speedup']:.2f}x{extra}"


def summary_table(runs: list[dict]) -> list[str]:
    blocks: dict[tuple[str, str], list[str]] = {}  # (dtype, category) -> its rows
    for run in runs:
        if "result" not in run:
            continue
        r = run["result"]
        dtype = r["target"]["dtype"]
        for g, block in (r.get("per_category") or {}).items():
            methods = block["methods"]
            for label, speed, traced in _rows_of(run):
                f = methods.get(speed)
                if f is None:
                    continue
                t = methods.get(traced) or f
                blocks.setdefault((dtype, g), []).append(
                    f"| {dtype} | {md_cell(g)} ({block['prompts']}) | {md_cell(label)} | "
                    f"{_fmt(f['tokens_per_s'])} | {_speedup(f)} | "
                    f"{_fmt(t['alpha_hat'], '.3f')} | {_fmt(t['tokens_per_verification'])} |")
    return ["| dtype | category | method | tokens/s | speed-up vs its run's target-only "
            "(range over repeats) | alpha_hat | tokens per verification |",
            "|---|---|---|---:|---:|---:|---:|", *(x for rows in blocks.values() for x in rows)]


def _first(x: dict) -> str:
    f32 = (x["float32"] or {}).get("top2_gap")
    return (f"prompt {x['prompt'] + 1} at token {x['position']}, top-2 gap "
            f"{_fmt(x['half']['top2_gap'], '.3f')} ({_fmt(f32, '.3f')} in float32)")


def divergence_lines(runs: list[dict]) -> list[str]:
    """A line per run and set of methods that part from the float32 reference at the same
    places (the untraced twin of a traced method is left out: same decoding)."""
    lines = []
    for run in runs:
        d = (run.get("result") or {}).get("divergence_from_float32")
        if not d:
            continue
        same: dict[tuple, list[str]] = {}
        for m, rep in d.items():
            if not m.endswith(("tracing off", UNTRACED)):
                key = (rep["identical"], rep["prompts"], tuple(
                    (x["prompt"], x["position"]) for x in rep["differences"]))
                same.setdefault(key, []).append(m)
        for (ident, n, _), methods in same.items():
            rep = d[methods[0]]
            firsts = "; ".join(_first(x) for x in rep["differences"])
            lines.append(f"- {md_cell(run['name'])}: {md_cell(' / '.join(methods))}: "
                         f"{ident}/{n} identical to float32 target-only"
                         + (f". First differences: {firsts}" if firsts else ""))
    return lines


def to_markdown(report: dict) -> str:
    hw = report["hardware"]
    dev = hw.get("gpu") or f"{hw.get('cpu')} ({hw.get('torch_threads')} threads)"
    out = [f"# Both pairs side by side on {dev}", "",
           f"Measured {report['date']}; torch {hw['torch']}, transformers "
           f"{hw['transformers']}, Python {hw.get('python')}, {hw.get('platform')}.",
           f"Command: `{report['command']}`", f"Engines: {report['engines']}.",
           f"Load average (1, 5, 15 min) at the start {report['load_start']}, at the end "
           f"{report['load_end']}; each run's is in the JSON and the log.",
           "Speed-ups are taken within one bench run (methods interleaved prompt by prompt), "
           "against that run's target-only (specviz rows: specviz target-only on the same "
           "engine; transformers rows: transformers' generate); rows of different runs "
           "compare only roughly. Speeds are with tracing off; alpha_hat and tokens per "
           "verification come from the same method traced."]
    for key, p in report["pairs"].items():
        out += ["", f"## {key}: {p['target']} with {p['draft']}"
                + (f" and {p['head']}" if p["head"] else ""), ""]
        out += [f"- {n}" for n in p["notes"]]
        out += [f"- failed: {r['name']}: {md_cell(r['error'])}" for r in p["runs"]
                if "error" in r]
        out += ["", *summary_table(p["runs"])]
        if div := divergence_lines(p["runs"]):
            out += ["", "Half precision against the float32 reference:", "", *div]
        for r in p["runs"]:
            if "result" in r:
                out += ["", f"### {r['name']}", "", f"Load average before {r['load_before']}, "
                        f"after {r['load_after']}; {r['wall_s']} s.", "",
                        r["result"]["markdown"]]
    return "\n".join(out) + "\n"
