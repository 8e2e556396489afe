"""Traces whose every string field carries markup and control characters: Plotly's HTML
(links, CSS that fetches), markdown, and bidirectional overrides (U+202E draws what follows
reversed). Shared by tests/test_escape.py, tests/test_fuzz_pages.py and the browser test."""

from __future__ import annotations

import dataclasses
import json

from specviz.traces.records import Trace

RLO = "\u202e"  # RIGHT-TO-LEFT OVERRIDE


def payload(host: str, tag: str) -> str:
    """Markup that would fetch ``host``/<tag>/... or link to it if it were drawn, bold text,
    an entity, and a bidi override before digits."""
    u = f"{host}/{tag}"
    return (f'<a href="{u}/link">L</a><span style="background-image:url({u}/bg);'
            f'mask-image:url({u}/mask);cursor:url({u}/cur),auto;fill:url({u}/fill)">S</span>'
            f"<b>PWN</b><img src={u}/img>&amp;![i]({u}/md.png){RLO}12345")


def hostile(trace: Trace, host: str = "http://127.0.0.1:9") -> Trace:
    """``trace`` with every string a trace carries (run, model, hardware, config, tokens,
    top-k texts, output) replaced by ``payload``; the structure and numbers are kept."""
    p = lambda tag: payload(host, tag)  # noqa: E731
    r = trace.run
    hw = {"device": p("device"), "cpu": p("cpu"), "gpu": p("gpu"), "torch": p("torch"),
          "engine": {"path": p("path"), "why": p("why"), "cuda_graphs": False,
                     "static_cache": False}}
    run = dataclasses.replace(
        r, run_id=p("id"), label=p("label"), created=p("created"),
        specviz_version=p("version"), command=p("command"), prompt_text=p("prompt"),
        prompt_last_text=p("last")[:1000], hardware=hw,
        target={**r.target, "source": p("target"), "name": p("tname")},
        draft=None if r.draft is None else {**r.draft, "source": p("draft")},
        config={**r.config, "policy": r.config.get("policy", "fixed"), "note": p("config")},
        baseline_of=r.baseline_of and p("base")[:200])
    tok = [p("tok" + str(i % 3)) for i in range(3)]

    def texts(n: int) -> list[str]:
        return [tok[i % 3] for i in range(n)]

    steps = tuple(dataclasses.replace(
        s, drafted_text=texts(s.gamma), emitted_text=texts(len(s.emitted_ids)),
        p_top_texts=[texts(len(row)) for row in s.p_top_texts],
        q_top_texts=None if s.q_top_texts is None else [texts(len(row))
                                                        for row in s.q_top_texts])
        for s in trace.steps)
    summary = trace.summary and dataclasses.replace(trace.summary, output_text=p("out"))
    return Trace(run, steps, summary)


def raw_markup(text: str) -> list[str]:
    """The pieces of ``payload`` found unescaped in ``text`` (a figure's JSON or a page's
    HTML): a tag that would be drawn, or the raw override character."""
    found = [m for m in ("<a href", "<span style", "<b>PWN", "<img src", RLO)
             if m in text]
    return found


def json_text(obj) -> str:
    return json.dumps(obj, ensure_ascii=False)
