"""vLLM's speculative decoding counters, read from its Prometheus ``/metrics`` text.

vLLM (the V1 engine, ``vllm/v1/spec_decode/metrics.py``, class ``SpecDecodingProm``) counts,
per engine, with the labels ``model_name`` and ``engine``:

- ``vllm:spec_decode_num_drafts``: drafts proposed (one per request per verification step);
- ``vllm:spec_decode_num_draft_tokens``: drafted tokens;
- ``vllm:spec_decode_num_accepted_tokens``: accepted drafted tokens;
- ``vllm:spec_decode_num_accepted_tokens_per_pos`` with a ``position`` label (0 ..
  num_speculative_tokens - 1): drafts whose token at that position was accepted (the
  accepted tokens form a prefix, so this counts drafts with more than ``position`` accepted).

prometheus_client exposes a counter ``X`` as ``X_total`` (and ``X_created``); the older V0
engine exposed ``vllm:spec_decode_num_draft_tokens_total``, ``..._accepted_tokens_total`` and
``..._emitted_tokens_total`` counters and two gauges. docs/runs.md lists the versions checked.

One scrape gives totals since the server started; two scrapes give the interval between
them. Notation: specviz's α̂ is accepted / judged positions (the judged ones: the accepted and
the first rejection), which the per-position counters give exactly when every draft has the
same length; vLLM's "acceptance rate" is accepted / drafted tokens, a different number.
Nothing here imports streamlit; the text is parsed by hand (no client library needed).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

MAX_SCRAPE_CHARS = 20_000_000  # a /metrics page of a large server is ~1 MB
MAX_PROBLEMS = 20  # lines listed; the rest are counted in one more

PREFIX = "vllm:spec_decode_"
DRAFTS = "vllm:spec_decode_num_drafts"
DRAFT_TOKENS = "vllm:spec_decode_num_draft_tokens"
ACCEPTED = "vllm:spec_decode_num_accepted_tokens"
PER_POS = "vllm:spec_decode_num_accepted_tokens_per_pos"
COUNTERS = (DRAFTS, DRAFT_TOKENS, ACCEPTED, PER_POS)
# known, not used: V0's emitted counter and gauges; prometheus_client's creation times
KNOWN_UNUSED = ("vllm:spec_decode_num_emitted_tokens", "vllm:spec_decode_draft_acceptance_rate",
                "vllm:spec_decode_efficiency")

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE = re.compile(rf"^({_NAME})(\{{.*\}})?\s+(\S+)(?:\s+(-?\d+))?\s*$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,|$)')


class ScrapeError(ValueError):
    """A scrape that cannot be read at all (one line)."""


@dataclass
class Scrape:
    """The spec-decode counters of one scrape, summed over engines, per model_name.

    ``counters[model][name]`` is a total; ``positions[model][i]`` the per-position total.
    ``problems`` holds one plain line per thing left out (NaN, negative, unknown, malformed).
    ``timestamp_s`` is the samples' own time when the exposition gave one.
    """

    counters: dict[str, dict[str, float]] = field(default_factory=dict)
    positions: dict[str, dict[int, float]] = field(default_factory=dict)
    engines: dict[str, set[str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    timestamp_s: float | None = None
    other_metrics: int = 0

    @property
    def models(self) -> list[str]:
        return sorted(set(self.counters) | set(self.positions))


def _unescape(v: str) -> str:
    return v.replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\")


def _labels(text: str) -> dict[str, str] | None:
    """``{a="1",b="2"}`` -> dict; None if malformed."""
    body = text[1:-1].strip()
    out: dict[str, str] = {}
    pos = 0
    while pos < len(body):
        m = _LABEL.match(body, pos)
        if not m:
            return None
        out[m[1]] = _unescape(m[2])
        pos = m.end()
    return out


def _family(name: str) -> str | None:
    """The counter a sample belongs to (``_total`` stripped), or None for ``_created``."""
    if name.endswith("_created"):
        return None
    return name.removesuffix("_total")


class _Problems:
    def __init__(self, into: list[str]):
        self.lines, self.more = into, 0

    def add(self, line: str) -> None:
        if len(self.lines) < MAX_PROBLEMS:
            self.lines.append(line)
        else:
            self.more += 1


def parse_scrape(text: str, source: str = "scrape") -> Scrape:
    """Parse a Prometheus (or OpenMetrics) text exposition; keep vLLM's spec-decode counters.

    Never raises for a bad line: each sample it leaves out (a NaN, infinite or negative
    counter, an unknown ``vllm:spec_decode_*`` metric, a malformed line or position) gives one
    plain line in ``problems``; other metric families are only counted. Raises ScrapeError
    only for input that is not text or is larger than MAX_SCRAPE_CHARS.
    """
    if not isinstance(text, str):
        raise ScrapeError(f"{source}: is not text")
    if len(text) > MAX_SCRAPE_CHARS:
        raise ScrapeError(f"{source}: has {len(text):,} characters; at most "
                          f"{MAX_SCRAPE_CHARS:,} are read")
    out = Scrape()
    problems = _Problems(out.problems)
    unknown: set[str] = set()
    others: set[str] = set()
    for n, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            if PREFIX in line:
                problems.add(f"{source}, line {n}: not a Prometheus sample; left out")
            continue
        family = _family(m[1])
        if not m[1].startswith(PREFIX):
            others.add(m[1].split("_bucket")[0])
        elif family is None or family in KNOWN_UNUSED:
            continue
        elif family not in COUNTERS:
            if family not in unknown:
                unknown.add(family)
                problems.add(f"{source}: unknown metric {family} (not a vLLM spec-decode "
                             "counter this specviz knows); left out")
        else:
            why = _take(out, family, m[2], m[3], m[4])
            if why:
                problems.add(f"{source}, line {n}: {why}")
    if problems.more:
        out.problems.append(f"{source}: {problems.more:,} more lines left out")
    out.other_metrics = len(others)
    return out


def _take(out: Scrape, family: str, label_text: str | None, value_text: str,
          ts: str | None) -> str | None:
    """Add one sample of a known counter to ``out``; or why it is left out (one line)."""
    labels = _labels(label_text) if label_text else {}
    if labels is None:
        return f"labels of {family} cannot be read; left out"
    where = _where(labels)
    try:
        value = float(value_text)
    except ValueError:
        return f"{family}{where} has the value {value_text[:20]!r}, not a number; left out"
    if math.isnan(value) or math.isinf(value):
        return f"{family}{where} is {value_text[:20]}; left out"
    if value < 0:
        return f"{family}{where} is negative ({value:g}); a counter never is; left out"
    model = labels.get("model_name", "")
    if family == PER_POS:
        pos = labels.get("position", "")
        if not pos.isdigit() or int(pos) > 1023:
            return f"{family}{where} has no position 0 .. 1023; left out"
        slot = out.positions.setdefault(model, {})
        slot[int(pos)] = slot.get(int(pos), 0.0) + value
    else:
        slot = out.counters.setdefault(model, {})
        slot[family] = slot.get(family, 0.0) + value
    out.engines.setdefault(model, set()).add(labels.get("engine", ""))
    if ts is not None:
        out.timestamp_s = int(ts) / 1000.0
    return None


def _where(labels: dict[str, str]) -> str:
    shown = ",".join(f'{k}="{v[:40]}"' for k, v in sorted(labels.items()))
    return "{" + shown + "}" if shown else ""


@dataclass(frozen=True)
class SpecStats:
    """What a scrape (totals) or two scrapes (the interval) say about one model.

    ``alpha_by_position[i]``: of the drafts that reached position i, the share accepted
    there (None where a position's counter is missing). ``rate_by_position[i]``: vLLM's own
    per-position rate, accepted at i / drafts. ``alpha_hat``: accepted / judged positions,
    None when positions are missing. ``mean_accepted_length``: 1 + accepted / drafts (the
    bonus or correction token included; specviz's tokens per verification step).
    """

    model: str
    drafts: float
    draft_tokens: float
    accepted: float
    gamma: int  # positions counted (num_speculative_tokens)
    mean_draft_length: float | None
    alpha_hat: float | None
    acceptance_rate: float | None  # accepted / drafted (vLLM's number, not α)
    mean_accepted_length: float | None
    alpha_by_position: list[float | None]
    rate_by_position: list[float | None]
    judged_by_position: list[float | None]
    interval_s: float | None
    drafts_per_s: float | None
    engines: int
    notes: tuple[str, ...] = ()


def _stats(model: str, counters: dict[str, float], positions: dict[int, float],
           engines: int, interval_s: float | None, notes: list[str]) -> SpecStats:
    drafts = counters.get(DRAFTS)
    draft_tokens = counters.get(DRAFT_TOKENS, math.nan)
    accepted = counters.get(ACCEPTED)
    if drafts is None:
        notes.append(f"{model or 'the model'}: no {DRAFTS} counter: tokens per step and α per "
                     "position cannot be computed")
    k = max(positions) + 1 if positions else 0
    missing = [i for i in range(k) if i not in positions]
    if missing:
        notes.append(f"{model or 'the model'}: position(s) {', '.join(map(str, missing[:8]))} "
                     f"missing of 0 .. {k - 1}: α is not given there nor after")
    if accepted is None and positions and not missing:
        accepted = sum(positions.values())
    alpha_pos: list[float | None] = []
    rate_pos: list[float | None] = []
    judged_pos: list[float | None] = []
    reached = drafts
    for i in range(k):
        got = positions.get(i)
        rate_pos.append(got / drafts if got is not None and drafts else None)
        judged_pos.append(reached)
        alpha_pos.append(got / reached if got is not None and reached else None)
        reached = got if got is not None and reached is not None else None
    alpha_hat = None
    if positions and not missing and drafts and accepted is not None:
        all_accepted = positions[k - 1]
        judged = accepted + drafts - all_accepted
        alpha_hat = accepted / judged if judged > 0 else None
    mean_len = draft_tokens / drafts if drafts and math.isfinite(draft_tokens) else None
    if mean_len is not None and k and mean_len < k - 1e-9:
        notes.append(f"{model or 'the model'}: drafts averaged {mean_len:.2f} tokens, fewer than "
                     f"the {k} positions: a shorter draft is never judged at its last positions, "
                     "so α there is a lower bound")
    return SpecStats(
        model=model, drafts=drafts or 0.0, draft_tokens=draft_tokens,
        accepted=accepted if accepted is not None else math.nan, gamma=k,
        mean_draft_length=mean_len, alpha_hat=alpha_hat,
        acceptance_rate=(accepted / draft_tokens if accepted is not None and draft_tokens
                         and math.isfinite(draft_tokens) else None),
        mean_accepted_length=1 + accepted / drafts if drafts and accepted is not None else None,
        alpha_by_position=alpha_pos, rate_by_position=rate_pos, judged_by_position=judged_pos,
        interval_s=interval_s,
        drafts_per_s=drafts / interval_s if interval_s and drafts is not None else None,
        engines=engines, notes=tuple(notes))


def totals(scrape: Scrape) -> list[SpecStats]:
    """One SpecStats per model: the totals since each engine started."""
    return [_stats(m, scrape.counters.get(m, {}), scrape.positions.get(m, {}),
                   len(scrape.engines.get(m, ())), None, []) for m in scrape.models]


def interval(before: Scrape, after: Scrape, seconds: float | None = None) -> list[SpecStats]:
    """One SpecStats per model over the interval between two scrapes.

    ``seconds``: the time between them, if the samples carry no timestamps. A counter that
    went down was reset (the server restarted): as Prometheus' ``rate()`` does, its increase
    is taken as its value in the second scrape, and a note says so; since all of a model's
    counters restart together, all of them are then taken from the second scrape.
    """
    if seconds is None and before.timestamp_s is not None and after.timestamp_s is not None:
        seconds = after.timestamp_s - before.timestamp_s
    if seconds is not None and not (math.isfinite(seconds) and seconds > 0):
        raise ScrapeError(f"the scrapes are {seconds:g} s apart; the second must come after "
                          "the first")
    out = []
    for m in after.models:
        notes: list[str] = []
        a_c, a_p = after.counters.get(m, {}), after.positions.get(m, {})
        b_c, b_p = before.counters.get(m, {}), before.positions.get(m, {})
        if m not in before.models:
            notes.append(f"{m or 'the model'}: not in the first scrape: the second one's totals "
                         "are used (the server started in between?)")
            b_c, b_p = {}, {}
        reset = [k for k in a_c if a_c[k] < b_c.get(k, 0.0)] + \
            [f"{PER_POS}{{position=\"{i}\"}}" for i in a_p if a_p[i] < b_p.get(i, 0.0)]
        if reset:
            notes.append(f"{m or 'the model'}: {reset[0]} went down between the scrapes (a "
                         "counter reset: the server restarted?): the interval counts from the "
                         "restart, the second scrape's totals")
            b_c, b_p = {}, {}
        for i in sorted(set(b_p) - set(a_p)):
            notes.append(f"{m or 'the model'}: position {i} is in the first scrape only; left out")
        if b_p:  # a position the first scrape lacks: its total since start is no interval
            for i in sorted(set(a_p) - set(b_p)):
                notes.append(f"{m or 'the model'}: position {i} is in the second scrape only; "
                             "left out")
                a_p = {j: v for j, v in a_p.items() if j != i}
        counters = {k: v - b_c.get(k, 0.0) for k, v in a_c.items()}
        positions = {i: v - b_p.get(i, 0.0) for i, v in a_p.items()}
        out.append(_stats(m, counters, positions, len(after.engines.get(m, ())), seconds, notes))
    return out
