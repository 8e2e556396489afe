"""Strings from traces, models and uploads, shown literally in elements that render markdown
(st.caption, st.error, st.info, ...): a crafted trace must not draw an image, a link, a
heading or a formula, nor make the browser fetch anything."""

from __future__ import annotations

import re

# characters that open a markdown or Streamlit construct within a line: images and links,
# autolinks and raw HTML, emphasis and code, formulas, :directives: and :emoji:, e-mail links
_INLINE = re.compile(r"([\\`*_~\[\]<>!:$|{}^&#@])")
_LINE_START = re.compile(r"^(\d+)([.)])|^([-+=])")  # a list item or an underline
_WWW = re.compile(r"(?i)\b(www)\.")  # an autolink without a scheme


def as_text(value: object) -> str:
    """``value`` on one line, every character that could start markdown backslash-escaped
    (CommonMark shows an escaped punctuation character as itself); other text unchanged."""
    text = _INLINE.sub(r"\\\1", " ".join(str(value).split()))
    text = _WWW.sub(r"\1\\.", text)
    return _LINE_START.sub(lambda m: f"{m[1]}\\{m[2]}" if m[1] else f"\\{m[3]}", text)
