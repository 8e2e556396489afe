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

# Imported on first use, so that reading traces (the app's landing page) does not wait for
# torch and transformers to load.
_EXPORTS = {
    "DecodeConfig": "decoding", "DecodeError": "decoding", "encode_prompt": "decoding",
    "speculative_decode": "decoding", "target_only_decode": "decoding",
    "DEFAULT_TARGET": "models", "ModelPair": "models", "ModelSourceError": "models",
    "load_pair": "models", "embedded_names": "models",
    "RunRecord": "traces.records", "StepRecord": "traces.records",
    "SummaryRecord": "traces.records", "Trace": "traces.records",
    "TraceError": "traces.records", "TraceWriter": "traces.records",
    "read_trace": "traces.records", "read_traces": "traces.records",
    "write_traces": "traces.records",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'specviz' has no attribute {name!r}")


__all__ = [
    "DEFAULT_TARGET", "DecodeConfig", "DecodeError", "ModelPair", "ModelSourceError",
    "RunRecord", "StepRecord", "SummaryRecord", "Trace", "TraceError", "TraceWriter",
    "embedded_names", "encode_prompt", "load_pair", "read_trace", "read_traces",
    "speculative_decode", "target_only_decode", "write_traces",
]
