"""A speed-up measured so that it can be believed: both paths warmed up, then the speculative
and the target-only decode alternated for a few rounds on the same prompt and settings, and
the median of the rounds' speed-ups reported with their range.

One run against one baseline is a single sample: on a shared or small machine two identical
runs can give 1.98x and 0.82x. Rounds decoded back to back share the machine's state, so each
round's ratio (speculative tokens/s / target-only tokens/s, the two decoded next to each
other, their order swapped every round) is a paired sample; the spread of those ratios says
how far the number can be trusted:

    verdict = faster    if every round is above 1x and the range is narrower than the gain
              slower    if every round is below 1x and the range is narrower than the loss
              no measurable difference on this machine   otherwise (a bottleneck diagnosis
                                                          of such a run would explain noise)

The rounds' tokens/s are written into each kept trace's summary (``round_tokens_per_s``), so
a saved file carries what was measured. The kept pair is the round with the median speed-up.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable, Sequence

from .traces.records import Trace, TraceWriter

if TYPE_CHECKING:  # no torch for code that only reads a measurement from traces
    from .decode_config import DecodeConfig

ROUNDS = 3  # rounds a measurement decodes by default
WARMUP_TOKENS = 8  # tokens each path decodes before the measured rounds
NO_DIFFERENCE = "no measurable difference on this machine"


@dataclass(frozen=True)
class Round:
    """One round: the speculative and the target-only decode's tokens/s, next to each other."""

    spec_tokens_per_s: float
    base_tokens_per_s: float

    @property
    def speedup(self) -> float | None:
        if self.base_tokens_per_s <= 0 or self.spec_tokens_per_s <= 0:
            return None  # a decode with no tokens/s (no tokens, or no time) has no speed-up
        return self.spec_tokens_per_s / self.base_tokens_per_s


@dataclass(frozen=True)
class Speedup:
    """The speed-up over rounds: median, range, both paths' median tokens/s, the verdict."""

    rounds: tuple[Round, ...]

    @property
    def ratios(self) -> list[float]:
        return [r.speedup for r in self.rounds if r.speedup is not None]

    @property
    def n(self) -> int:
        return len(self.ratios)

    @property
    def median(self) -> float | None:
        return statistics.median(self.ratios) if self.ratios else None

    @property
    def low(self) -> float | None:
        return min(self.ratios) if self.ratios else None

    @property
    def high(self) -> float | None:
        return max(self.ratios) if self.ratios else None

    @property
    def spec_tokens_per_s(self) -> float:
        return statistics.median([r.spec_tokens_per_s for r in self.rounds])

    @property
    def base_tokens_per_s(self) -> float:
        return statistics.median([r.base_tokens_per_s for r in self.rounds])

    @property
    def repeated(self) -> bool:
        """Measured more than once: a spread exists."""
        return self.n >= 2

    @property
    def measurable(self) -> bool:
        """Every round on the same side of 1x, and the range narrower than the effect."""
        if not self.repeated:
            return False
        lo, hi, m = self.low, self.high, self.median
        return (lo > 1.0 or hi < 1.0) and hi - lo <= abs(m - 1.0)

    @property
    def verdict(self) -> str:
        """"faster", "slower", NO_DIFFERENCE, or "one sample" (not repeated: no verdict)."""
        if not self.repeated:
            return "one sample"
        if not self.measurable:
            return NO_DIFFERENCE
        return "faster" if self.median > 1.0 else "slower"

    def describe(self) -> str:
        """One line: '1.32× (1.21–1.40 over 3 rounds): faster', or what is missing."""
        if self.median is None:
            return "no speed-up (the target-only decode has no tokens/s)"
        if not self.repeated:
            return f"{self.median:.2f}× (one sample, not repeated: no spread)"
        return (f"{self.median:.2f}× (range {self.low:.2f}–{self.high:.2f} over {self.n} "
                f"rounds): {self.verdict}")


def speedup_of(spec: Trace, base: Trace | None) -> Speedup | None:
    """The speed-up a pair of traces records: their rounds when both list the same number,
    else the single sample of their summaries; None without a baseline or a summary."""
    if base is None or spec.summary is None or base.summary is None:
        return None
    a, b = spec.summary.round_tokens_per_s, base.summary.round_tokens_per_s
    if a and b and len(a) == len(b):
        return Speedup(tuple(Round(x, y) for x, y in zip(a, b)))
    return Speedup((Round(spec.summary.tokens_per_s, base.summary.tokens_per_s),))


@dataclass(frozen=True)
class Measured:
    """A measurement: the kept speculative run and its baseline (the median round's, each
    listing every round's tokens/s), the speed-up, and how many tokens the baseline decoded
    per round. A measurement stopped part way keeps the speculative run it had (base and
    speedup None: a cut-short measurement has no speed-up)."""

    spec: Trace | None
    base: Trace | None
    speedup: Speedup | None
    base_tokens: int

    @property
    def shorter_baseline(self) -> bool:
        """The target alone decoded fewer tokens per round than the speculative run."""
        return (self.spec is not None and self.spec.summary is not None
                and self.base_tokens < self.spec.run.config.get("max_new_tokens", 0))


Decode = Callable[..., Trace]
Progress = Callable[[str, float], None]  # (what runs now, fraction of the measurement done)
WriterFor = Callable[[str, int], "TraceWriter | None"]  # (part, round) -> its writer


def _decoders() -> tuple[Decode, Decode]:
    from .decoding import speculative_decode, target_only_decode
    return speculative_decode, target_only_decode


def _median_round(ratios: Sequence[float]) -> int:
    m = statistics.median(ratios)
    return min(range(len(ratios)), key=lambda i: (abs(ratios[i] - m), i))


def measure_speedup(pair, prompt: str, config: DecodeConfig, *, rounds: int = ROUNDS,
                    base_tokens: int | None = None, warmup: bool = True,
                    writer_for: WriterFor | None = None,
                    should_stop: Callable[[], bool] | None = None,
                    on_progress: Progress | None = None, label: str = "",
                    command: str = "", decoders: tuple[Decode, Decode] | None = None,
                    ) -> Measured:
    """Warm both paths up, then decode speculative and target-only alternately ``rounds``
    times (their order swapped each round). ``base_tokens`` (default: the run's
    max_new_tokens) caps the target-only sample of a long run. ``writer_for(part, round)``
    gives each decode its writer (part "speculative" | "baseline"); ``on_progress(what,
    fraction)`` hears what runs next. ``decoders`` (speculative, target-only) replace
    specviz.decoding's (tests)."""
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    spec_decode, base_decode = decoders or _decoders()
    base_cfg = config
    if base_tokens is not None and base_tokens < config.max_new_tokens:
        base_cfg = replace(config, max_new_tokens=max(int(base_tokens), 1))
    stop = should_stop or (lambda: False)
    total = 2 * rounds + (1 if warmup else 0)
    done = 0

    def progress(what: str) -> None:
        if on_progress is not None:
            on_progress(what, done / total)

    if warmup:
        progress("warming up both paths")
        short = replace(config, max_new_tokens=min(WARMUP_TOKENS, config.max_new_tokens))
        spec_decode(pair, prompt, short, should_stop=stop)
        base_decode(pair, prompt, short, should_stop=stop)
        done += 1
    pairs: list[tuple[Trace, Trace]] = []
    for i in range(rounds):
        spec = base = None
        for part in (("speculative", "baseline") if i % 2 == 0 else ("baseline", "speculative")):
            progress(f"round {i + 1} of {rounds}: "
                     + ("speculative" if part == "speculative" else "target alone"))
            writer = writer_for(part, i) if writer_for else None
            if part == "speculative":
                spec = spec_decode(pair, prompt, config, should_stop=stop, writer=writer,
                                   label=label or "speculative", command=command)
            else:
                base = base_decode(pair, prompt, base_cfg, should_stop=stop, writer=writer,
                                   label="baseline", command=command,
                                   baseline_of=spec.run.run_id if spec is not None else "")
            done += 1
            cut = (spec if part == "speculative" else base).summary.stop_reason == "stopped"
            if stop() or cut:  # a decode cut short measures nothing comparable
                kept = spec if spec is not None else (pairs[-1][0] if pairs else None)
                return Measured(kept, None, None, base_cfg.max_new_tokens)
        pairs.append((spec, base))
    return _kept(pairs, base_cfg.max_new_tokens)


def _kept(pairs: list[tuple[Trace, Trace]], base_tokens: int) -> Measured:
    """The median round's pair, each trace listing every round's tokens/s, the baseline
    linked to its speculative run."""
    found = Speedup(tuple(Round(s.summary.tokens_per_s, b.summary.tokens_per_s)
                          for s, b in pairs))
    ratios = [r.speedup if r.speedup is not None else 0.0 for r in found.rounds]
    spec, base = pairs[_median_round(ratios)]
    spec_rates = [r.spec_tokens_per_s for r in found.rounds]
    base_rates = [r.base_tokens_per_s for r in found.rounds]
    spec = replace(spec, summary=replace(spec.summary, round_tokens_per_s=spec_rates))
    base = replace(base, run=replace(base.run, baseline_of=spec.run.run_id),
                   summary=replace(base.summary, round_tokens_per_s=base_rates))
    return Measured(spec, base, found, base_tokens)
