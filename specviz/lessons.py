"""Guided lessons on speculative decoding: content as plain data, numbers from real traces.

Each ``Lesson`` holds a short explanation (markdown), the bundled trace files whose runs show
the concept (paths relative to ``assets/traces/``), what the student changes, and a
check-your-understanding question whose every option carries its own feedback. The functions
below compute each lesson's numbers and frames from the traces; no number is typed in.

Notation: p = target distribution, q = draft distribution.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from . import frames as F
from . import theory, toy
from .diagnosis import Costs
from .figures.theme import show_token
from .paths import TRACES
from .trace import Trace, read_traces

TRACES_ROOT = TRACES
LESSON_DIR = "lessons"


# ---------------------------------------------------------------- content


@dataclass(frozen=True)
class Option:
    """One answer of a quiz, with the feedback shown when it is chosen."""

    text: str
    correct: bool
    feedback: str


@dataclass(frozen=True)
class Quiz:
    question: str
    options: tuple[Option, ...]


@dataclass(frozen=True)
class Lesson:
    number: int
    slug: str
    title: str
    explanation: str  # markdown
    files: tuple[str, ...]  # trace files, relative to assets/traces/
    experiment: str  # markdown: what the student changes and what to look for
    quiz: Quiz


def _q(question: str, *options: tuple[str, bool, str]) -> Quiz:
    return Quiz(question, tuple(Option(t, c, f) for t, c, f in options))


def _sweep() -> tuple[str, ...]:
    return tuple(f"{LESSON_DIR}/gamma-{g}.jsonl" for g in SWEEP_GAMMAS)


SWEEP_GAMMAS = (1, 2, 4, 8)
GREEDY = f"{LESSON_DIR}/gamma-4.jsonl"
TAU = {0.0: GREEDY, 0.7: f"{LESSON_DIR}/tau-0.7.jsonl", 1.0: f"{LESSON_DIR}/tau-1.0.jsonl"}
SWAPPED = f"{LESSON_DIR}/roles-swapped.jsonl"
HEURISTIC = f"{LESSON_DIR}/policy-heuristic.jsonl"
CONFIDENCE = tuple(f"{LESSON_DIR}/policy-confidence-{t}.jsonl" for t in ("0.3", "0.5", "0.7"))
WRONG_GREEDY = f"{LESSON_DIR}/wrong-accept-high-q-greedy.jsonl"
WRONG_SAMPLED = f"{LESSON_DIR}/wrong-accept-high-q-t0.7.jsonl"
CPU_BUNDLE = ("cpu-smollm2-draft-greedy.jsonl", "cpu-smollm2-early-exit-greedy.jsonl",
              "cpu-smollm2-prompt-lookup-greedy.jsonl")
H200_BUNDLE = ("h200-smollm2-draft-greedy.jsonl", "h200-smollm2-early-exit-greedy.jsonl",
               "h200-smollm2-prompt-lookup-greedy.jsonl",
               "h200-smollm2-draft-greedy-graphs.jsonl")  # the last one: CUDA graphs

LESSONS: tuple[Lesson, ...] = (
    Lesson(
        1, "architecture", "Two models, one tokenizer",
        "Speculative decoding pairs two language models. The **draft** (distribution **q**) is "
        "small and cheap: it guesses the next γ tokens one by one. The **target** "
        "(distribution **p**) is the model whose output we want: it checks the guesses and "
        "always has the last word, so the text is the target's text.\n\n"
        "The two models must share a **tokenizer**: the draft's token ids are handed to the "
        "target as they are, and p and q are compared token by token over the same "
        "vocabulary. A drafter can also be something that is not a separate model at all: "
        "the target's own first layers (early exit) or a copy of earlier text (prompt "
        "lookup, which has no q).",
        (GREEDY, *CPU_BUNDLE[1:]),
        "Pick a drafter. The table lists what each model in the run is (from its run "
        "record), how often it ran and how much time it took. Below, the ids shared by the "
        "recorded top-k lists of p and q show that one id means one token for both models.",
        _q("Why must the draft and the target share a tokenizer?",
           ("So that a drafted token id means the same token to the target, and p and q "
            "are distributions over the same vocabulary.", True,
            "The verifier compares p(x) with q(x) for the same token x and feeds the "
            "draft's ids straight into the target's forward pass; neither works if an id "
            "means different text to each model."),
           ("So that both models produce the same probabilities.", False,
            "They almost never do (that is why some drafts are rejected). A shared "
            "vocabulary makes p and q comparable, not equal."),
           ("Because the target re-tokenizes the draft's text before verifying it.", False,
            "No re-tokenization happens: the draft's token ids go into the target as they "
            "are. That is exactly why the vocabularies must match."),
           ("It is only needed for sampling; greedy decoding works with any draft.", False,
            "Greedy acceptance compares the drafted id with the target's argmax id; with "
            "different tokenizers the ids would not mean the same token there either.")),
    ),
    Lesson(
        2, "parallel-verification", "One target pass scores every draft",
        "Decoding with the target alone costs one forward pass per token. In speculative "
        "decoding the target gets the γ drafted tokens at once and, in **one forward "
        "pass**, computes p at every drafted position (plus one more position for the token "
        "after the last draft). Causal attention makes this possible: position i only looks "
        "at the tokens before it, so the pass gives the same p as γ + 1 separate steps "
        "would.\n\n"
        "On a GPU a pass over γ + 1 positions costs about as much as a pass over one token "
        "(decoding is memory-bound). On a CPU, which is compute-bound, scoring more "
        "positions takes more time: compare the measured pass times below.",
        _sweep(),
        "Choose γ among the prepared runs and a step: the table shows p for every drafted "
        "position of that step, all read from the one verification pass. The chart compares "
        "the measured time of one verification pass with one target-only step.",
        _q("A step drafts γ = 4 tokens. How many forward passes of the target does it take "
           "to verify them?",
           ("One: the target scores all four drafted positions (and the position after "
            "them) in a single pass.", True,
            "That single pass is where the saving comes from: several tokens can be "
            "kept for the price of one target pass."),
           ("Four: one per drafted token.", False,
            "That is what decoding with the target alone costs. Verification feeds the four "
            "drafted tokens together; causal attention gives p at each position in one "
            "pass."),
           ("Five: one per drafted token plus one for the extra token.", False,
            "The extra token's distribution comes out of the same pass, at the position "
            "after the last draft."),
           ("It depends on how many are accepted.", False,
            "The pass happens before anything is accepted and scores every drafted "
            "position; acceptance only decides how many of them are kept.")),
    ),
    Lesson(
        3, "draft-distribution", "How the draft predicts: q at each position",
        "At each drafted position the draft computes a full distribution **q** over the "
        "vocabulary, conditioned on the prompt, the text so far **and its own earlier "
        "drafts in this step**. Under greedy decoding it proposes q's most likely token; "
        "under sampling it draws the token from q (after temperature, top-k and top-p). The "
        "trace records q of every drafted token and q's top-k alternatives.\n\n"
        "A confident q (one token far ahead) tends to be right when the draft imitates the "
        "target well; a flat q signals a guess. Later positions build on earlier guesses, "
        "so one early mistake makes the rest of the step useless.",
        (GREEDY, TAU[0.7], TAU[1.0]),
        "Choose a run (greedy or sampled), a step and look at q's top tokens at each drafted "
        "position (▶ the drafted token). The numbers above the chart count, over the whole "
        "run, how often the draft proposed q's own top token.",
        _q("At drafted position 3 of a step, what is the draft's distribution q conditioned "
           "on?",
           ("The prompt, the text emitted so far, and the draft's own tokens at positions 1 "
            "and 2 of this step.", True,
            "The draft runs autoregressively over its own guesses; that is why a wrong "
            "guess at position 1 usually spoils positions 2 and 3."),
           ("Only the prompt.", False,
            "The draft sees everything before the position: prompt, emitted text and its "
            "earlier drafts of the step."),
           ("The target's tokens at positions 1 and 2.", False,
            "The target has not run yet when the draft proposes: drafting comes first, "
            "verification after."),
           ("Nothing: q is a fixed unigram distribution.", False,
            "q changes at every position; the recorded top-k lists differ from position to "
            "position.")),
    ),
    Lesson(
        4, "acceptance-rule", "How the target judges the drafts",
        "The verifier walks the drafted tokens x₁ … x_γ in order.\n\n"
        "- **Sampling (τ > 0):** draft x_i is accepted with probability **min(1, p(x_i) / "
        "q(x_i))**: a uniform draw u is taken and x_i is kept iff u < min(1, p/q). A token "
        "the draft likes more than the target is sometimes refused; one the target likes "
        "at least as much is always kept.\n"
        "- **Greedy (τ = 0):** x_i is kept iff it is the target's most likely token.\n\n"
        "Verification stops at the first rejection. The rule makes the output follow "
        "exactly the target's distribution p (sampling) or equal the target's own greedy "
        "output (greedy).",
        (TAU[0.7], GREEDY),
        "Choose greedy or sampled, a step and a position. The inspector draws p, q and the "
        "draw u against min(1, p/q). The check below recomputes every decision of the run "
        "from the recorded p, q and u and compares it with what the verifier did.",
        _q("Sampling. The draft gives its token x more probability than the target does "
           "(q(x) > p(x)). What happens to x?",
           ("It is accepted with probability p(x) / q(x), which is below 1.", True,
            "The verifier keeps x with probability p/q when the draft is "
            "over-confident, which cancels the draft's excess on x exactly; the correction "
            "from norm(max(0, p − q)) then puts the missing mass where p exceeds q."),
           ("It is always accepted: the target gives x a positive probability.", False,
            "That would make the output follow q wherever q over-weights a token; the "
            "acceptance probability is min(1, p/q), below 1 here."),
           ("It is always rejected: q(x) is larger than p(x).", False,
            "A draft above the target is refused only part of the time, with probability "
            "1 − p(x)/q(x)."),
           ("It is accepted only if x is the target's most likely token.", False,
            "That is the greedy rule (τ = 0). Under sampling acceptance is random, with "
            "probability min(1, p/q).")),
    ),
    Lesson(
        5, "step-structure", "What one step appends",
        "After verification a step appends **the accepted prefix of the drafts, then exactly "
        "one token from the target**:\n\n"
        "- if draft k + 1 was rejected: a **correction** at that position, drawn from the "
        "residual **norm(max(0, p − q))** (greedy: the target's argmax);\n"
        "- if all γ drafts were accepted: a **bonus** token drawn from p at position γ + 1.\n\n"
        "Drafts after the first rejection are never judged and are thrown away. So a step "
        "emits between 1 and γ + 1 tokens, and never fewer than the target alone would.",
        (GREEDY, TAU[0.7]),
        "Move through the steps of a prepared run: the text shows the accepted drafts, the "
        "rejected draft struck through, and the target's token (correction or bonus). The "
        "chart counts, over the run, how many steps accepted k drafts and how each ended.",
        _q("γ = 4. Drafts 1–3 are accepted and draft 4 is rejected. What does the step "
           "append?",
           ("Four tokens: the three accepted drafts, then a correction drawn from "
            "norm(max(0, p − q)) at position 4.", True,
            "The step appends the accepted prefix plus exactly one target token."),
           ("Three tokens: only the accepted drafts.", False,
            "The target always adds one token: at the first rejection it is the correction, "
            "so a step never emits fewer tokens than it accepted plus one."),
           ("Five tokens: three drafts, a correction and a bonus token.", False,
            "The bonus token exists only when every draft was accepted; here the correction "
            "takes its place."),
           ("Four tokens: the three accepted drafts, then a bonus token drawn from p.", False,
            "A bonus comes after all γ drafts were accepted. After a rejection the target's "
            "token comes from the residual norm(max(0, p − q)), not from p.")),
    ),
    Lesson(
        6, "efficiency-limits", "Why tokens per step saturate",
        "If each draft is accepted with probability **α** (independently), a step with draft "
        "length γ emits on average **E = (1 − α^(γ+1)) / (1 − α)** tokens. E grows with γ "
        "but can never exceed **1 / (1 − α)**: a long draft is cut at its first rejection, "
        "and a later position survives only with probability α^i.\n\n"
        "Each step costs γ draft tokens (**c** = cost of one draft token relative to a "
        "target step) plus one verification pass (**v**, 1 in the paper's model): speedup = "
        "E / (γ c + v + overhead). Past some γ the extra drafting costs more than the "
        "few tokens it adds.",
        _sweep(),
        "The points are the prepared γ sweep (measured tokens per step); the line is E for "
        "the α you choose, starting at the α̂ measured over the sweep. Move α and see where "
        "the ceiling 1 / (1 − α) lies.",
        _q("Each draft is accepted with probability α < 1. What do the expected tokens per "
           "step approach as γ grows without bound?",
           ("1 / (1 − α).", True,
            "E = 1 + α + α² + … + α^γ, a geometric sum that tends to 1 / (1 − α). "
            "Beyond a few drafts almost nothing is added, while every draft still costs c."),
           ("γ + 1: every draft can be accepted.", False,
            "Only with α = 1. All γ drafts survive with probability α^γ, which vanishes as γ "
            "grows."),
           ("α γ: a fixed share of the drafts is accepted.", False,
            "Acceptance stops at the first rejection, so position i survives only if every "
            "earlier one did (probability α^i); the sum saturates instead of growing "
            "linearly."),
           ("1 + α: the first draft plus the target's token.", False,
            "That is E for γ = 1. Longer drafts add α², α³, … until the sum reaches "
            "1 / (1 − α).")),
    ),
    Lesson(
        7, "temperature-and-roles", "Choosing τ and which model drafts",
        "**Temperature τ** changes p and q together. At τ = 0 a draft only has to match the "
        "target's top token; with sampling, acceptance is Σ min(p, q), which falls as both "
        "distributions spread out. Higher τ usually lowers α.\n\n"
        "**Roles.** The target decides what text comes out; the draft only decides how fast. "
        "For low latency the draft must be much cheaper than the target (small c) *and* "
        "agree with it often (high α). Swapping the roles of a large and a small model "
        "changes the output (it becomes the small model's text) and makes drafting the "
        "expensive part.",
        (GREEDY, TAU[0.7], TAU[1.0], SWAPPED),
        "Choose τ among the prepared runs, and the role assignment (normal or swapped: the "
        "135M model drafting for its small distilled draft). The table and chart show "
        "measured α̂, c and speedup against each run's own target-only baseline.",
        _q("For the lowest latency, which model should draft?",
           ("The much cheaper model that still agrees with the target often (small c, high "
            "α).", True,
            "Speedup needs both: cheap drafts (γ c small) and many accepted drafts "
            "(large E)."),
           ("The larger, more accurate model: it gets the most drafts accepted.", False,
            "High α does not help if each draft costs as much as a target step or more: c "
            "above 1 makes every step slower than the target alone."),
           ("Either: speculative decoding output is the same whichever model drafts.", False,
            "The output follows the target, so swapping roles changes the text; and the "
            "speed depends on which model is cheap."),
           ("The model with the higher temperature.", False,
            "Temperature is a decoding setting applied to both p and q, not a property of a "
            "model; raising it usually lowers α.")),
    ),
    Lesson(
        8, "gamma-budget", "Tuning γ under a fixed verification budget",
        "Suppose the target's verification is the scarce resource: a fixed amount of "
        "target time, or a fixed number of positions the target may score (in a serving "
        "system many requests share each pass). Every drafted position is scored whether "
        "or not it is kept; positions after the first rejection are wasted work.\n\n"
        "A longer draft emits more tokens per pass but scores more positions per emitted "
        "token; on a compute-bound machine a pass over more positions also takes longer. "
        "The best γ is the one that delivers the most tokens from the same budget, and it "
        "depends on α.",
        _sweep(),
        "Choose the kind of budget and its size. The prepared γ runs are replayed step by "
        "step (in recorded order) until the budget is spent; the chart shows how many "
        "tokens each γ delivered.",
        _q("Under a fixed budget of scored positions, why can γ = 8 deliver fewer tokens "
           "than γ = 2?",
           ("Each step scores γ + 1 positions, but the drafts after the first rejection are "
            "thrown away, so tokens per scored position fall as γ grows.", True,
            "E / (γ + 1) decreases with γ for any α < 1; the budget buys fewer kept "
            "tokens per position."),
           ("Because the draft model is slower at γ = 8.", False,
            "Drafting cost is not part of this budget; the loss comes from scored positions "
            "that are never kept."),
           ("Because γ = 8 lowers the acceptance rate α.", False,
            "α is a property of the draft and target at each judged position, not of γ; "
            "compare the measured α̂ across the sweep."),
           ("It cannot: more drafts always mean more tokens per budget.", False,
            "More drafts mean more tokens per step, but also more positions (and more "
            "time) per step; the budget runs out in fewer steps.")),
    ),
    Lesson(
        9, "reading-a-trace", "Reading a trace: find the bottleneck",
        "A trace records, for every step, how long drafting, verifying and the rest took, and "
        "how many drafts survived. Four patterns recur:\n\n"
        "- **draft too slow:** draft time dominates each step (c large);\n"
        "- **α too low:** most steps accept nothing, so a step yields barely more than one "
        "token;\n"
        "- **verify too costly:** one verification pass costs much more than a target step "
        "(v > 1, compute-bound hardware);\n"
        "- **per-step overhead:** time outside both models (Python, sampling, bookkeeping) "
        "rivals the model time, as with small models on a GPU.",
        (*CPU_BUNDLE, *H200_BUNDLE, SWAPPED),
        "Pick a prepared run (CPU or H200, different drafters). Read the latency split and "
        "the accepted lengths, decide what limits it, then open the diagnosis computed from "
        "the trace.",
        _q("A trace shows drafting taking most of every step while α̂ is high. What limits "
           "the speedup?",
           ("The draft is too slow: its cost c per token eats the gain.", True,
            "The drafts are good but expensive. A smaller draft, fewer layers for "
            "early exit, or prompt lookup lower c."),
           ("Acceptance is too low.", False,
            "A high α̂ says most judged drafts survive; acceptance is not the problem here."),
           ("The verification pass is too costly.", False,
            "Verification is the smaller part of each step in this trace; look at where the "
            "time goes."),
           ("Nothing: a high α̂ guarantees a speedup.", False,
            "Speedup is E / (γ c + v + overhead); a large γ c cancels any E.")),
    ),
    Lesson(
        10, "fast-but-wrong", "A fast but wrong verifier",
        "A verifier bug can make decoding *faster* while silently changing the output. The "
        "decoder ships two deliberately wrong rules for teaching (`--verifier`): "
        "**accept-high-q** also accepts any draft the draft itself is confident about "
        "(q ≥ 0.5), and **correction-from-p** draws the correction from p instead of the "
        "residual norm(max(0, p − q)). At any position accept-high-q keeps every draft the "
        "exact rule keeps, and more, so steps emit more tokens and the decoder looks "
        "faster.\n\n"
        "Two checks catch them: under greedy decoding, the **identical-output check** "
        "(speculative output = the target's own greedy output, token for token); under "
        "sampling, a **distribution check** (many samples, compared with p), since two "
        "sampled outputs differ anyway.",
        (GREEDY, WRONG_GREEDY, TAU[0.7], WRONG_SAMPLED),
        "Switch the verifier between the exact rule and accept-high-q: compare α̂, speed, "
        "the exact rule replayed on the recorded decisions, and the identical-output check "
        "on the prepared greedy runs. Then run the distribution "
        "check: the real verifier on p and q taken from one recorded position, with the rule "
        "you choose.",
        _q("Under sampling, why is comparing one speculative output with the target-only "
           "output not enough to catch a wrong verifier?",
           ("Two correct sampled outputs differ anyway; only the distribution over many "
            "samples shows whether the output follows p.", True,
            "Under sampling the check is statistical: collect many emitted tokens and "
            "compare their frequencies with p (the toy check measures the distance)."),
           ("Because a wrong verifier only changes greedy output.", False,
            "Both wrong rules change the sampled distribution too; the distribution check "
            "shows the gap."),
           ("Because the speedup proves the verifier is right.", False,
            "A wrong verifier is typically faster: it accepts more drafts. Speed says nothing "
            "about correctness."),
           ("It is enough: a different output always means a bug.", False,
            "With τ > 0 an exact verifier also gives a different output than a target-only "
            "run, just as two target-only runs with different seeds differ.")),
    ),
    Lesson(
        11, "low-speedup", "Low speedup despite parallel verification",
        "Parallel verification saves target passes, but the speedup is the ratio of "
        "**tokens per step** to **cost per step**: speedup = E / (γ c + v + overhead), all "
        "costs in units of one target-only step. Measured traces show where it goes:\n\n"
        "- a draft that is nearly as costly as the target (early exit with many layers, a "
        "large draft);\n"
        "- a verification pass that costs more than a target step (CPU: scoring γ + 1 "
        "positions is compute-bound);\n"
        "- low α (prompt lookup on text that does not repeat);\n"
        "- per-step overhead that rivals a small model's forward pass.",
        (*CPU_BUNDLE, *H200_BUNDLE, SWAPPED, f"{LESSON_DIR}/gamma-8.jsonl"),
        "Pick a run. The chart splits its measured cost per step into draft, verify and "
        "overhead and sets it against the tokens it yields. Remove one cost at a time to see "
        "the speedup the formula predicts with the other measured values kept.",
        _q("On a CPU, a draft model with high α̂ gives a speedup near 1 although the target "
           "runs only once per step. Which measurement best explains it?",
           ("v well above 1: a verification pass over γ + 1 positions costs several "
            "target-only steps.", True,
            "The theory's v = 1 assumes memory-bound decoding; a CPU is compute-bound, "
            "so scoring more positions costs more time."),
           ("α̂ is too low.", False,
            "The question says α̂ is high; the cost side of the ratio is the problem."),
           ("The target runs once per step, so the speedup must equal tokens per step.", False,
            "That holds only if a step costs exactly one target step; drafting, a costlier "
            "verify pass and overhead all add to it."),
           ("The bonus token is wasted.", False,
            "The bonus token is a free extra token from the verification pass; it raises "
            "tokens per step.")),
    ),
    Lesson(
        12, "draft-length-policy", "A draft-length policy for a latency-sensitive product",
        "A product that streams text cares about **per-token latency**, and about its tail "
        "(p90, p99), not only the mean. The draft length can be set by a policy:\n\n"
        "- **fixed γ:** the same number of drafts every step;\n"
        "- **heuristic:** γ + 2 after a fully accepted step, γ − 1 otherwise (as in "
        "transformers' assisted generation);\n"
        "- **confidence:** keep drafting while the draft's top probability stays above a "
        "threshold.\n\n"
        "Here a token's latency is the time of the step that emitted it spread over the "
        "tokens that step emitted (step total_ms / tokens emitted).",
        (*_sweep(), HEURISTIC, *CONFIDENCE),
        "Choose the policies to compare (the confidence threshold among prepared runs) and "
        "whether to count the first step, which also processes the prompt. The chart shows "
        "p50, p90 and p99 of per-token latency, measured.",
        _q("Your product's requirement is a low p99 per-token latency. How should you pick "
           "the policy?",
           ("Compare the measured p99 of each policy on representative prompts, and pick the "
            "lowest that keeps the mean acceptable.", True,
            "Tail latency depends on how often long steps are wasted; measure it on "
            "the traffic you serve."),
           ("Pick the largest fixed γ: it has the most tokens per step.", False,
            "Long steps that are rejected early cost the most time for one token; they feed "
            "the tail."),
           ("Pick the policy with the highest α̂.", False,
            "α̂ can rise just because a policy drafts only easy tokens; latency is what the "
            "product needs, so compare latency."),
           ("Per-token latency is the same for all policies; only throughput differs.", False,
            "The measured percentiles differ between policies: how many tokens a step emits "
            "and how long it takes both depend on the draft length.")),
    ),
)


def lesson(number: int) -> Lesson:
    """The lesson with this number (1-based); ValueError if there is none."""
    for item in LESSONS:
        if item.number == number:
            return item
    raise ValueError(f"there is no lesson {number} (lessons 1–{len(LESSONS)})")


def load_files(files: Sequence[str], root: Path = TRACES_ROOT) -> dict[str, list[Trace]]:
    """The runs of each trace file, by its name relative to ``root``."""
    return {name: read_traces(root / name) for name in files}


# ---------------------------------------------------------------- shared helpers

FILE = "file"
LABEL = "label"
TARGET = "target"
DRAFT = "draft"
HARDWARE = "hardware"
COMMAND = "command"
PROMPT = "prompt"
MODE = "mode"


def speculative(traces: Sequence[Trace]) -> list[Trace]:
    return [t for t in traces if not F.is_target_only(t)]


def pairs(traces: Sequence[Trace]) -> list[tuple[Trace, Trace | None]]:
    """Each speculative run with its target-only baseline from the same file (or None)."""
    return [(t, F.baseline_for(t, traces)) for t in speculative(traces)]


def hardware_name(trace: Trace) -> str:
    hw = trace.run.hardware
    return str(hw.get("gpu") or hw.get("cpu") or hw.get("device") or "unknown")


def provenance_frame(files: dict[str, list[Trace]]) -> pd.DataFrame:
    """One row per run of the lesson's files: file, label, mode, target, draft, hardware,
    command (empty for files written before commands were recorded), prompt."""
    rows = []
    for name, traces in files.items():
        for t in traces:
            r = t.run
            rows.append((name, r.label, r.mode, r.target.get("source", ""),
                         (r.draft or {}).get("source", r.drafter or "none"),
                         hardware_name(t), r.command or "(not recorded: older file)",
                         short(r.prompt_text, 48)))
    return pd.DataFrame(rows, columns=[FILE, LABEL, MODE, TARGET, DRAFT, HARDWARE, COMMAND,
                                       PROMPT])


def short(text: str, n: int = 60) -> str:
    """Text on one line, cut to n characters."""
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def pooled_costs(runs: Sequence[tuple[Trace, Trace | None]]) -> Costs:
    """Rates and costs of several runs of one setup (different prompts), pooled.

    α̂ = Σ accepted / Σ judged; tokens per step = Σ emitted / Σ steps; tokens/s and the
    speedup from summed tokens and wall times; c, v, overhead as in ``diagnosis.measure``
    (first step of each run left out), against the mean target-only step of the baselines.
    """
    specs = [t.with_summary() for t, _ in runs]
    bases = [b.with_summary() for _, b in runs if b is not None]
    acc = sum(s.n_accepted for t in specs for s in t.steps)
    judged = sum(s.n_evaluated for t in specs for s in t.steps)
    n_steps = sum(len(t.steps) for t in specs)
    emitted = sum(t.summary.n_emitted for t in specs)
    wall = sum(t.summary.wall_s for t in specs)
    later = [s for t in specs for s in (t.steps[1:] if len(t.steps) > 1 else t.steps)]
    drafting = [s for s in later if s.gamma > 0]
    base_steps = [s.total_ms for b in bases for s in (b.steps[1:] if len(b.steps) > 1
                                                      else b.steps)]
    base_ms, source = (float(np.mean(base_steps)), "baseline") if base_steps else (None, "")
    if base_ms is None and later:
        base_ms, source = float(np.mean([s.verify_ms for s in later])), \
            "verify pass (v = 1 assumed)"
    c = v = overhead = None
    if base_ms and later:
        n_drafted = sum(s.gamma for s in drafting)
        c = sum(s.draft_ms for s in drafting) / n_drafted / base_ms if n_drafted else 0.0
        v = float(np.mean([s.verify_ms for s in later])) / base_ms
        overhead = float(np.mean([max(s.total_ms - s.draft_ms - s.verify_ms, 0.0)
                                  for s in later])) / base_ms
    speed = None
    if bases and len(bases) == len(specs):
        b_tps = sum(b.summary.n_emitted for b in bases) / sum(b.summary.wall_s for b in bases)
        speed = (emitted / wall) / b_tps if wall and b_tps else None
    betas = [b for t in specs for s in t.steps if s.beta for b in s.beta[: s.n_evaluated]]
    return Costs(alpha=acc / judged if judged else None,
                 gamma=float(np.mean([s.gamma for t in specs for s in t.steps]))
                 if n_steps else 0.0,
                 mean_accepted_length=emitted / n_steps if n_steps else None,
                 tokens_per_target_pass=emitted / n_steps if n_steps else None,
                 tokens_per_s=emitted / wall if wall else 0.0, c=c, v=v, overhead=overhead,
                 target_step_ms=base_ms, target_step_from=source, speedup_measured=speed,
                 mean_beta=float(np.mean(betas)) if betas else None)


def file_costs(traces: Sequence[Trace]) -> Costs:
    """``pooled_costs`` of every speculative run in one file, with their baselines."""
    return pooled_costs(pairs(traces))


# ---------------------------------------------------------------- lesson 1: architecture

ROLE = "role"
SOURCE = "source"
N_PARAMS = "n_params"
N_LAYERS = "n_layers"
PASSES = "forward_passes"
TIME_MS = "time_ms"


def roles_frame(trace: Trace) -> pd.DataFrame:
    """Two rows, draft (q) and target (p): what the run record says about each model, how
    many forward passes it made and how much time its phase took (ms)."""
    t = trace.with_summary()
    sm, r = t.summary, t.run
    d = r.draft or {}
    draft_src = d.get("source") or {"prompt-lookup": "prompt lookup (no model, no q)"}.get(
        r.drafter or "", "none")
    rows = [("draft (q)", draft_src, d.get("n_params"), d.get("n_layers"),
             sm.draft_forward_passes, sum(s.draft_ms for s in t.steps)),
            ("target (p)", r.target.get("source", ""), r.target.get("n_params"),
             r.target.get("n_layers"), sm.target_forward_passes,
             sum(s.verify_ms for s in t.steps))]
    return pd.DataFrame(rows, columns=[ROLE, SOURCE, N_PARAMS, N_LAYERS, PASSES, TIME_MS])


def shared_vocabulary(trace: Trace) -> dict[str, int]:
    """Evidence of one tokenizer: over every drafted position, token ids listed in both the
    top-k of p and of q, and how many of them carry the same text in both lists."""
    common = same = positions = 0
    for s in trace.steps:
        if not s.q_top_ids:
            continue
        for i in range(s.gamma):
            positions += 1
            p_text = dict(zip(s.p_top_ids[i], s.p_top_texts[i]))
            for tok, text in zip(s.q_top_ids[i], s.q_top_texts[i]):
                if tok in p_text:
                    common += 1
                    same += p_text[tok] == text
    return {"positions": positions, "common_ids": common, "same_text": same}


# ---------------------------------------------------------------- lesson 2: verification

CONFIG_GAMMA = "gamma"
STEPS = "steps"
TARGET_PASSES = "target_passes"
SCORED = "positions_scored"
VERIFY_MS = "verify_ms"
BASE_STEP_MS = "target_step_ms"
V = "v"


def verification_frame(files: dict[str, list[Trace]]) -> pd.DataFrame:
    """One row per file of speculative runs: configured γ, steps, target forward passes,
    positions the target scored (Σ (γ_step + 1)), mean verify pass (ms, first step of each
    run left out), mean target-only step (ms) and their ratio v."""
    rows = []
    for name, traces in files.items():
        specs = speculative(traces)
        if not specs:
            continue
        costs = file_costs(traces)
        steps = [s for t in specs for s in t.steps]
        later = [s for t in specs for s in (t.steps[1:] if len(t.steps) > 1 else t.steps)]
        rows.append((name, specs[0].run.config.get("gamma", 0), len(steps),
                     sum(t.with_summary().summary.target_forward_passes for t in specs),
                     sum(s.gamma + 1 for s in steps),
                     float(np.mean([s.verify_ms for s in later])),
                     costs.target_step_ms if costs.target_step_from == "baseline" else F.NAN,
                     costs.v if costs.target_step_from == "baseline" else F.NAN))
    return pd.DataFrame(rows, columns=[FILE, CONFIG_GAMMA, STEPS, TARGET_PASSES, SCORED,
                                       VERIFY_MS, BASE_STEP_MS, V])


def step_frame(trace: Trace, step: int) -> pd.DataFrame:
    """The drafted positions of one step: token, q, p, min(1, p/q), u, status."""
    drafts = F.drafts_frame(trace)
    return drafts[drafts[F.STEP] == step].reset_index(drop=True)


# ---------------------------------------------------------------- lesson 3: q per position

RANK = "rank"
IS_DRAFTED = "is_drafted"


def q_topk_frame(trace: Trace, step: int) -> pd.DataFrame:
    """q's recorded top-k at every drafted position of one step: pos, rank, token id, text,
    q, and whether it is the drafted token. Empty for drafters without q."""
    s = trace.steps[step]
    rows = []
    if s.q_top_ids:
        for i in range(s.gamma):
            for rank, (tok, text, prob) in enumerate(zip(s.q_top_ids[i], s.q_top_texts[i],
                                                         s.q_top_probs[i])):
                rows.append((i, rank, tok, text, prob, tok == s.drafted_ids[i]))
    return pd.DataFrame(rows, columns=[F.POS, RANK, F.TOKEN_ID, F.TEXT, F.Q, IS_DRAFTED])


def draft_choice_stats(trace: Trace) -> dict[str, float]:
    """Over every drafted position: how often the draft proposed q's own top token, the
    mean q of the drafted token and the mean top probability of q."""
    top = n = 0
    q_drafted: list[float] = []
    q_top: list[float] = []
    for s in trace.steps:
        if not s.q_top_ids:
            continue
        for i in range(s.gamma):
            n += 1
            top += s.q_top_ids[i][0] == s.drafted_ids[i]
            q_drafted.append(s.q[i])
            q_top.append(s.q_top_probs[i][0])
    return {"positions": n, "drafted_is_top": top,
            "mean_q_drafted": float(np.mean(q_drafted)) if q_drafted else F.NAN,
            "mean_q_top": float(np.mean(q_top)) if q_top else F.NAN}


# ---------------------------------------------------------------- lesson 4: acceptance rule

RECOMPUTED_PROB = "recomputed_accept_prob"
RECOMPUTED = "recomputed_accepted"
RECORDED = "recorded_accepted"
AGREES = "agrees"


def decisions_frame(trace: Trace) -> pd.DataFrame:
    """Every judged drafted position, with the decision recomputed from the recorded values.

    Sampling: accept iff u < min(1, p/q) (q = 1 for drafters without q). Greedy: accept iff
    the drafted token is the first of p's recorded top-k (the target's argmax).
    """
    greedy = trace.run.config.get("temperature", 0) == 0
    rows = []
    for s in trace.steps:
        for i in range(s.n_evaluated):
            q = 1.0 if s.q is None else s.q[i]
            if greedy:
                prob = 1.0 if s.p_top_ids[i][0] == s.drafted_ids[i] else 0.0
                decided = prob == 1.0
                u = F.NAN
            else:
                prob = min(1.0, s.p[i] / q) if q > 0 else 1.0
                u = s.u[i]
                decided = u < prob
            rows.append((s.step, i, s.drafted_text[i], s.p[i], q, u, prob, decided,
                         s.accepted[i], decided == s.accepted[i]))
    return pd.DataFrame(rows, columns=[F.STEP, F.POS, F.TEXT, F.P, F.Q, F.U, RECOMPUTED_PROB,
                                       RECOMPUTED, RECORDED, AGREES])


DISAGREE = "disagree"
KEPT_AGAINST_RULE = "kept_against_rule"  # accepted, but the exact rule rejects


def rule_check_frame(traces: Sequence[Trace]) -> pd.DataFrame:
    """The exact acceptance rule replayed on every speculative run: one row per run with its
    judged decisions, how many the recomputation disagrees with, and how many of those are
    drafts the verifier kept although the exact rule rejects them."""
    rows = []
    for t in speculative(traces):
        d = decisions_frame(t)
        bad = d[~d[AGREES]]
        rows.append((short(t.run.prompt_text, 50), t.run.config.get("verifier", "exact"),
                     len(d), len(bad), int((bad[RECORDED] & ~bad[RECOMPUTED]).sum())))
    return pd.DataFrame(rows, columns=[PROMPT, "verifier", "judged", DISAGREE,
                                       KEPT_AGAINST_RULE])


# ---------------------------------------------------------------- lesson 5: step structure

ENDING = "ending"


def step_endings_frame(trace: Trace) -> pd.DataFrame:
    """Steps that drafted something, counted by (accepted drafts, how the step ended:
    "resampled" correction or "bonus"); columns length, ending, count."""
    rows = [(s.n_accepted, s.emitted_kinds[s.n_accepted])
            for s in trace.steps if s.gamma > 0 and len(s.emitted_kinds) > s.n_accepted]
    df = pd.DataFrame(rows, columns=[F.LENGTH, ENDING])
    return df.groupby([F.LENGTH, ENDING]).size().rename(F.COUNT).reset_index()


def steps_follow_rule(trace: Trace) -> tuple[int, int]:
    """(steps that emitted exactly n_accepted + 1 tokens ending in one target token, steps
    checked); steps cut short by an end-of-sequence token are left out."""
    ok = n = 0
    for s in trace.steps:
        if len(s.emitted_ids) < s.n_accepted + 1:
            continue  # ended by end-of-sequence inside the step
        n += 1
        kinds = s.emitted_kinds
        ok += (len(kinds) == s.n_accepted + 1 and all(k == "accepted" for k in kinds[:-1])
               and kinds[-1] == ("bonus" if s.n_accepted == s.gamma else "resampled"))
    return ok, n


# ---------------------------------------------------------------- lesson 6: saturation

CEILING = "ceiling"


def sweep_frame(files: dict[str, list[Trace]]) -> pd.DataFrame:
    """One row per γ file: γ, α̂, measured tokens per step, E(α̂, γ), measured speedup, c, v,
    overhead and the speedup the formula predicts from them."""
    rows = []
    for name, traces in files.items():
        specs = speculative(traces)
        if not specs:
            continue
        c = file_costs(traces)
        g = int(specs[0].run.config.get("gamma", 0))
        pred = (theory.speedup(c.alpha, g, c.c, c.v, c.overhead)
                if None not in (c.alpha, c.c, c.v, c.overhead) else F.NAN)
        rows.append((name, g, c.alpha, c.mean_accepted_length,
                     theory.expected_tokens(c.alpha, g), c.speedup_measured, c.c, c.v,
                     c.overhead, pred, c.tokens_per_s))
    return pd.DataFrame(rows, columns=[FILE, theory.GAMMA, theory.ALPHA, "tokens_per_step",
                                       theory.E, "speedup_measured", theory.C, theory.V,
                                       theory.OVERHEAD, "speedup_predicted", F.TOKENS_PER_S])


def pooled_alpha(files: dict[str, list[Trace]]) -> float | None:
    """α̂ over every speculative run of the files: Σ accepted / Σ judged."""
    specs = [t for traces in files.values() for t in speculative(traces)]
    judged = sum(s.n_evaluated for t in specs for s in t.steps)
    return sum(s.n_accepted for t in specs for s in t.steps) / judged if judged else None


def saturation_frame(alpha: float, gamma_max: int = 16) -> pd.DataFrame:
    """E(α, γ) for γ = 0..gamma_max, with the ceiling 1 / (1 − α)."""
    g = np.arange(gamma_max + 1)
    ceiling = 1.0 / (1.0 - alpha) if alpha < 1 else F.NAN
    return pd.DataFrame({theory.GAMMA: g, theory.E: theory.expected_tokens(alpha, g),
                         CEILING: ceiling})


# ---------------------------------------------------------------- lesson 7: τ and roles

SETUP = "setup"


def setups_frame(named: dict[str, list[Trace]]) -> pd.DataFrame:
    """One row per named setup (its runs pooled): τ, target, draft, α̂, c, v, tokens per step,
    tokens/s and measured speedup against its own baselines."""
    rows = []
    for name, traces in named.items():
        specs = speculative(traces)
        c = file_costs(traces)
        r = specs[0].run
        rows.append((name, r.config.get("temperature", 0.0), r.target.get("source", ""),
                     (r.draft or {}).get("source", ""), c.alpha, c.c, c.v,
                     c.mean_accepted_length, c.tokens_per_s, c.speedup_measured))
    return pd.DataFrame(rows, columns=[SETUP, F.TEMPERATURE, TARGET, DRAFT, theory.ALPHA,
                                       theory.C, theory.V, "tokens_per_step", F.TOKENS_PER_S,
                                       "speedup_measured"])


# ---------------------------------------------------------------- lesson 8: budget

BUDGET_KINDS = ("target time (ms)", "scored positions")
TOKENS = "tokens"
USED = "used"


def budget_frame(files: dict[str, list[Trace]], budget: float, kind: str) -> pd.DataFrame:
    """Replay each γ file's speculative steps (runs in file order, steps in recorded order,
    the first step of each run left out: it also processes the prompt) until the
    verification budget is spent: a step is counted only if it fits whole.

    kind "target time (ms)": a step costs its verify_ms; "scored positions": γ + 1.
    Columns: file, gamma, steps (replayed), tokens (emitted by them), used (budget spent),
    tokens per 100 units of budget.
    """
    if kind not in BUDGET_KINDS:
        raise ValueError(f"unknown budget kind {kind!r}")
    rows = []
    for name, traces in files.items():
        specs = speculative(traces)
        if not specs:
            continue
        used = 0.0
        n_steps = tokens = 0
        for s in (s for t in specs for s in t.steps[1:]):
            cost = s.verify_ms if kind == BUDGET_KINDS[0] else s.gamma + 1
            if used + cost > budget:
                break
            used += cost
            n_steps += 1
            tokens += len(s.emitted_ids)
        rows.append((name, int(specs[0].run.config.get("gamma", 0)), n_steps, tokens, used,
                     100.0 * tokens / used if used else F.NAN))
    return pd.DataFrame(rows, columns=[FILE, theory.GAMMA, STEPS, TOKENS, USED,
                                       "tokens_per_100"])


def budget_limit(files: dict[str, list[Trace]], kind: str) -> float:
    """The largest budget every file can fill: the smallest total over the files."""
    totals = []
    for traces in files.values():
        steps = [s for t in speculative(traces) for s in t.steps[1:]]
        if steps:
            totals.append(sum(s.verify_ms if kind == BUDGET_KINDS[0] else s.gamma + 1
                              for s in steps))
    return float(min(totals)) if totals else 0.0


# ---------------------------------------------------------------- lessons 9, 11: costs

COMPONENT = "component"
COST = "cost"


def phase_shares(trace: Trace) -> pd.DataFrame:
    """Share of the run's step time spent drafting, verifying and elsewhere (overhead)."""
    steps = F.steps_frame(trace)
    total = steps[F.TOTAL_MS].sum()
    parts = {"draft": steps[F.DRAFT_MS].sum(), "verify": steps[F.VERIFY_MS].sum(),
             "overhead": steps[F.OVERHEAD_MS].sum()}
    return pd.DataFrame([(k, v, v / total if total else F.NAN) for k, v in parts.items()],
                        columns=[COMPONENT, TIME_MS, "share"])


def cost_ledger(costs: Costs) -> pd.DataFrame:
    """A step's measured cost in target-only steps (draft γc, verify v, overhead) and what it
    yields (tokens per step); rows component, cost."""
    g = costs.gamma
    rows = [("draft (γ × c)", g * (costs.c or 0.0)), ("verify (v)", costs.v or 0.0),
            ("overhead", costs.overhead or 0.0)]
    return pd.DataFrame(rows, columns=[COMPONENT, COST])


FIXES = ("draft cost c → 0", "verify cost v → 1", "overhead → 0", "α → α̂ + 0.1")


def speedup_with_fixes(costs: Costs, fixes: Sequence[str]) -> tuple[float, float]:
    """(predicted speedup with the measured values, predicted speedup with ``fixes`` applied);
    the formula E(α, γ) / (γ c + v + overhead) with γ the run's mean draft length."""
    a, c, v, o = costs.alpha, costs.c, costs.v, costs.overhead
    if None in (a, c, v, o):
        raise ValueError("this run lacks the measurements the formula needs")
    g = max(costs.gamma, 1.0)
    now = theory.speedup(a, g, c, v, o)
    for fix in fixes:
        if fix not in FIXES:
            raise ValueError(f"unknown fix {fix!r}")
    a2 = min(a + 0.1, 0.999) if FIXES[3] in fixes else a
    c2 = 0.0 if FIXES[0] in fixes else c
    v2 = min(v, 1.0) if FIXES[1] in fixes else v
    o2 = 0.0 if FIXES[2] in fixes else o
    return now, theory.speedup(a2, g, c2, v2, o2)


# ---------------------------------------------------------------- lesson 10: wrong verifier


def output_check(spec: Trace, base: Trace) -> dict:
    """Identical-output check of a speculative run against its target-only baseline:
    compared tokens, first divergence (None if identical), greedy or not."""
    a, b = spec.summary.output_token_ids, base.summary.output_token_ids
    n = min(len(a), len(b))
    return {"compared": n, "first_divergence": F.first_divergence(a[:n], b[:n]),
            "greedy": spec.run.config.get("temperature", 0) == 0}


def toy_from_position(trace: Trace, step: int, pos: int) -> tuple[list[str], np.ndarray,
                                                                   np.ndarray]:
    """p and q over the recorded top-k tokens (union of both lists) at one drafted
    position, each renormalised over those tokens; tokens missing from a list get 0."""
    topk = F.topk_frame(trace, step, pos)
    p = np.nan_to_num(topk[F.P].to_numpy(dtype=float))
    q = np.nan_to_num(topk[F.Q].to_numpy(dtype=float))
    texts = [f"{r}: {show_token(t)}" for r, t in zip(topk[F.RANK], topk[F.TEXT])]
    return texts, toy.normalise(p), toy.normalise(q)


def toy_positions(trace: Trace, min_tv: float = 0.2) -> list[tuple[int, int]]:
    """(step, pos) of drafted positions whose recorded p and q differ enough to make a
    clear distribution check (total variation ≥ min_tv over the shown tokens)."""
    out = []
    for s in trace.steps:
        if not s.q_top_ids:
            continue
        for i in range(s.n_evaluated):
            _, p, q = toy_from_position(trace, s.step, i)
            if toy.tv_distance(p, q) >= min_tv:
                out.append((s.step, i))
    return out


# ---------------------------------------------------------------- lesson 12: latency


def token_latency(trace: Trace, include_prefill: bool = False) -> np.ndarray:
    """Per-token latency (ms), one entry per emitted token: the step's total_ms divided by
    the tokens it emitted. The first step (prompt prefill) only if ``include_prefill``."""
    steps = trace.steps if include_prefill else trace.steps[1:]
    return np.array([s.total_ms / len(s.emitted_ids) for s in steps for _ in s.emitted_ids],
                    dtype=float)


POLICY = "policy"
PERCENTILES = (50, 90, 99)


def policy_name(trace: Trace) -> str:
    cfg = trace.run.config
    if F.is_target_only(trace):
        return "target only"
    pol = cfg.get("policy", "fixed")
    if pol == "fixed":
        return f"fixed γ={cfg.get('gamma')}"
    if pol == "confidence":
        return f"confidence {cfg.get('confidence_threshold')} (γ ≤ {cfg.get('gamma')})"
    return f"{pol} (start γ={cfg.get('gamma')})"


def latency_frame(traces: Sequence[Trace], include_prefill: bool = False) -> pd.DataFrame:
    """One row per policy (runs of the same policy pooled): tokens, target passes per token
    (timing-free), mean and p50/p90/p99 per-token latency (ms), mean drafted tokens per
    step, α̂, tokens/s."""
    groups: dict[str, list[Trace]] = {}
    for t in traces:
        groups.setdefault(policy_name(t), []).append(t)
    rows = []
    for name, runs in groups.items():
        lat = np.concatenate([token_latency(t, include_prefill) for t in runs])
        steps = [s for t in runs for s in t.steps]
        judged = sum(s.n_evaluated for s in steps)
        emitted = sum(t.with_summary().summary.n_emitted for t in runs)
        wall = sum(t.with_summary().summary.wall_s for t in runs)
        rows.append((name, len(lat), len(steps) / emitted if emitted else F.NAN,
                     float(lat.mean()) if len(lat) else F.NAN,
                     *(float(np.percentile(lat, k)) if len(lat) else F.NAN
                       for k in PERCENTILES),
                     float(np.mean([s.gamma for s in steps])) if steps else F.NAN,
                     sum(s.n_accepted for s in steps) / judged if judged else F.NAN,
                     emitted / wall if wall else F.NAN))
    return pd.DataFrame(rows, columns=[POLICY, TOKENS, "target_passes_per_token", "mean_ms",
                                       *(f"p{k}_ms" for k in PERCENTILES), "mean_gamma",
                                       theory.ALPHA, F.TOKENS_PER_S])
