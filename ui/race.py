"""The race at the top of a finished run: the speculative text and the target-only text
filling side by side at their measured speeds (a self-contained HTML player in an iframe of
its own, st.iframe: no network, token
texts embedded as JSON and written with textContent, never as HTML), the tokens-versus-wall-
time chart under it. Built to be read on a projector at 1024x768: large type, few words."""

from __future__ import annotations

import html
import json

import pandas as pd
import streamlit as st

from specviz import Trace
from specviz import figures as G
from specviz.figures.text import kind_style
from specviz.figures.theme import KIND_LABELS, KIND_MARKS
from specviz.measure import Speedup
from specviz.teaching.diagnosis import diagnose, measure
from specviz.teaching.race import race_data, why_line
from specviz.traces import frames as F

RACE_HEIGHT = 600  # px of the player (a two-line headline, the rates' notes and the
# key fit at 1024 px)
SPEC_KINDS = ("accepted", "resampled", "bonus")


def _json_for_script(data: dict) -> str:
    """JSON that cannot end its <script> element early: every '<', '>' and '&' escaped
    (non-ASCII characters too, so U+2028 and bidi marks stay inert)."""
    return (json.dumps(data, ensure_ascii=True).replace("<", "\\u003c")
            .replace(">", "\\u003e").replace("&", "\\u0026"))


def _legend(tree: bool) -> str:
    items = []
    for k in SPEC_KINDS:
        label = KIND_LABELS[k] if not (tree and k == "resampled") else "correction"
        items.append(f'<span class="k-{k}">{html.escape(KIND_MARKS[k])} '
                     f"{html.escape(label)}</span>")
    return " ".join(items)


_CSS = """
body{margin:0;font-family:"Source Sans Pro",Arial,sans-serif;color:#1f1f1f}
#head{font-size:22px;font-weight:700;margin:2px 0 2px 0}
#why{font-size:17px;margin:0 0 4px 0;color:#333}
#replay{font-size:16px;margin:0 0 8px 0;color:#333}
#bar{display:flex;gap:8px;align-items:center;margin-bottom:8px;font-size:19px;
 white-space:nowrap}
button,select{font-size:19px;padding:3px 10px;border-radius:6px;border:2px solid #555;
 background:#fff;cursor:pointer}
button#play{background:#0072B2;color:#fff;border-color:#0072B2;font-weight:700;
 min-width:6em}
#clock{font-variant-numeric:tabular-nums;margin-left:auto;font-weight:700;min-width:6.5em;
 text-align:right}
#lanes{display:flex;gap:12px}
.lane{flex:1;min-width:0;border:4px solid #009E73;border-radius:8px;padding:6px 10px}
.lane.base{border:4px dashed #555555}
.top{display:flex;flex-wrap:wrap;justify-content:space-between;align-items:baseline;gap:8px;
 font-size:22px;font-weight:700}
.rate{font-size:20px;font-variant-numeric:tabular-nums;white-space:nowrap}
.note{font-size:16px;color:#333}
.text{height:230px;overflow-y:auto;font-size:21px;line-height:1.5;white-space:pre-wrap;
 overflow-wrap:anywhere;margin-top:4px}
.done{font-size:18px;font-weight:700;min-height:1.4em}
#legend{font-size:16px;margin-top:6px}
"""

_JS = """
const D = JSON.parse(document.getElementById('race-data').textContent);
const lanes = D.sides.map((s, i) => ({
  s, i, box: document.getElementById('text' + i), cnt: document.getElementById('cnt' + i),
  done: document.getElementById('done' + i), next: 0, shown: 0}));
const END = Math.max(...D.sides.map(s => s.wall_s), 1e-6);
const speedSel = document.getElementById('speed');
for (const v of D.speeds) {
  const o = document.createElement('option');
  o.value = v;
  o.textContent = v === 1 ? 'real time' : v < 1 ? 'slow motion ×' + v : 'fast ×' + v;
  if (v === D.speed) o.selected = true;
  speedSel.appendChild(o);
}
const play = document.getElementById('play'), clock = document.getElementById('clock');
let t = 0, playing = false, last = null;
function reset() {
  t = 0;
  for (const L of lanes) {
    L.box.replaceChildren(); L.next = 0; L.shown = 0; L.done.textContent = '';
  }
  draw();
}
function draw() {
  for (const L of lanes) {
    let added = false;
    while (L.next < L.s.steps.length && L.s.steps[L.next][0] <= t) {
      for (const [txt, kind] of L.s.steps[L.next][1]) {
        const sp = document.createElement('span');
        sp.className = 'k-' + kind;
        sp.textContent = txt;
        L.box.appendChild(sp);
        L.shown += 1;
      }
      L.next += 1; added = true;
    }
    if (added) L.box.scrollTop = L.box.scrollHeight;
    L.cnt.textContent = L.shown + ' tokens';
    if (L.next >= L.s.steps.length && !L.done.textContent && t >= L.s.wall_s) {
      L.done.textContent = '✔ done in ' + L.s.wall_s.toFixed(2) + ' s';
    }
  }
  clock.textContent = 't = ' + Math.min(t, END).toFixed(2) + ' s';
  document.body.dataset.shown = lanes.map(L => L.shown).join(',');
}
function finish() {
  playing = false; play.textContent = '↺ Replay'; document.body.dataset.state = 'done';
}
function frame(now) {
  if (!playing) return;
  if (last !== null) t += (now - last) / 1000 * parseFloat(speedSel.value);
  last = now;
  draw();
  if (t >= END) { finish(); return; }
  requestAnimationFrame(frame);
}
play.addEventListener('click', () => {
  if (playing) {
    playing = false; play.textContent = '▶ Play'; document.body.dataset.state = 'paused';
    return;
  }
  if (t >= END) reset();
  playing = true; last = null; play.textContent = '❚❚ Pause';
  document.body.dataset.state = 'playing';
  requestAnimationFrame(frame);
});
document.getElementById('end').addEventListener('click', () => { t = END; draw(); finish(); });
document.body.dataset.state = 'ready';
draw();
"""


def _lane(i: int, side: dict) -> str:
    rate = side["tokens_per_s"]
    rate_txt = f"{rate:.1f} tokens/s" if rate is not None else "– tokens/s"
    # the rate is the replayed round's; over rounds, the side's median under it
    said = [side.get("median_label", ""), side.get("note", "")]
    note = "".join(f'<div class="note">{html.escape(x)}</div>' for x in said if x)
    return (f'<div class="lane{" base" if i else ""}"><div class="top">'
            f'<span>{html.escape(side["name"])}</span>'
            f'<span class="rate" id="rate{i}">{html.escape(rate_txt)}</span></div>'
            f'<div id="notes{i}">{note}</div>'
            f'<div class="top" style="font-size:18px;font-weight:400">'
            f'<span id="cnt{i}">0 tokens</span><span class="done" id="done{i}"></span></div>'
            f'<div class="text" id="text{i}"></div></div>')


def race_html(data: dict, tree: bool = False) -> str:
    """The player as one HTML document (no network, no innerHTML): ``data`` from
    specviz.teaching.race.race_data."""
    kinds = "".join(f".k-{k}{{{kind_style(k)}}}" for k in (*SPEC_KINDS, "target"))
    return (f"<!doctype html><html><head><meta charset='utf-8'><style>{_CSS}{kinds}</style>"
            f"</head><body><div id='head'>{html.escape(data['headline'])}</div>"
            f"<div id='why'>{html.escape(data.get('why', ''))}</div>"
            f"<div id='replay'>{html.escape(data.get('replay', ''))}</div>"
            "<div id='bar'><button id='play'>▶ Play</button>"
            "<button id='end'>End</button>"
            "<select id='speed' aria-label='replay speed'></select>"
            "<span id='clock'>t = 0.00 s</span></div>"
            f"<div id='lanes'>{''.join(_lane(i, s) for i, s in enumerate(data['sides']))}"
            f"</div><div id='legend'>{_legend(tree)}</div>"
            f"<script type='application/json' id='race-data'>{_json_for_script(data)}</script>"
            f"<script>{_JS}</script></body></html>")


def race_steps(spec: Trace, base: Trace) -> pd.DataFrame:
    """Both runs' steps frames, named for the race chart."""
    return pd.concat([F.tag(F.steps_frame(spec), "speculative"),
                      F.tag(F.steps_frame(base), "target alone")], ignore_index=True)


def _why(spec: Trace, base: Trace, speedup: Speedup | None) -> str:
    """The line under the race's headline, from the run's measured costs."""
    costs = measure(spec, base)
    tree = F.is_tree(spec)
    slower = speedup is not None and speedup.verdict == "slower"
    limiter = diagnose(costs).headline if slower and not tree else ""
    return why_line(speedup, costs.tokens_per_target_pass, costs.alpha, limiter, tree)


def race_ui(spec: Trace, base: Trace, speedup: Speedup | None, key: str) -> None:
    """The race player and, under it, the tokens-versus-wall-time chart of both runs."""
    data = race_data(spec, base, speedup, _why(spec, base, speedup))
    medians = ",".join(str(s.get("median_tokens_per_s", "")) for s in data["sides"])
    st.html(f'<div class="specviz-race" data-speed="{data["speed"]}" '
            f'data-tokens="{data["sides"][0]["tokens"]},{data["sides"][1]["tokens"]}" '
            f'data-medians="{medians}"></div>')
    st.iframe(race_html(data, tree=F.is_tree(spec)), height=RACE_HEIGHT)  # its own document
    st.plotly_chart(G.fig_race(race_steps(spec, base)), key=f"{key}_race_chart")

