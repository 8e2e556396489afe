"""specviz: an instrumented speculative decoder and the views that explain it.

Notation everywhere: p = target distribution, q = draft distribution.

Public API::

    pair = load_pair()                                   # embedded target (+ draft if shipped)
    cfg = DecodeConfig(drafter=pair.default_drafter, gamma=4)
    trace = speculative_decode(pair, "Tell me a story", cfg, on_step=print)
    base = target_only_decode(pair, "Tell me a story", cfg)
    write_traces("run.jsonl", [trace, base]); read_traces("run.jsonl")
"""

__version__ = "0.1.0"

from .decoding import (  # noqa: E402
                       DecodeConfig,
                       DecodeError,
                       encode_prompt,
                       speculative_decode,
                       target_only_decode,
)
from .models import DEFAULT_TARGET, ModelPair, ModelSourceError, embedded_names, load_pair  # noqa: E402
from .trace import (  # noqa: E402
                       RunRecord,
                       StepRecord,
                       SummaryRecord,
                       Trace,
                       TraceError,
                       TraceWriter,
                       read_trace,
                       read_traces,
                       write_traces,
)

__all__ = [
    "DEFAULT_TARGET", "DecodeConfig", "DecodeError", "ModelPair", "ModelSourceError",
    "RunRecord", "StepRecord", "SummaryRecord", "Trace", "TraceError", "TraceWriter",
    "embedded_names", "encode_prompt", "load_pair", "read_trace", "read_traces",
    "speculative_decode", "target_only_decode", "write_traces",
]
