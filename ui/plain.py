"""Strings from traces, models and uploads, shown literally in elements that render markdown
(st.caption, st.error, st.info, ...): a crafted trace must not draw an image, a link, a
heading or a formula, nor make the browser fetch anything."""

from __future__ import annotations

import re

from specviz.traces.visible import visible

# characters that open a markdown or Streamlit construct within a line: images and links,
# autolinks and raw HTML, emphasis and code, formulas, :directives: and :emoji:, e-mail links
_INLINE = re.compile(r"([\\`*_~\[\]<>!:$|{}^&#@])")
_LINE_START = re.compile(r"^(\d+)([.)])|^([-+=])")  # a list item or an underline
# GFM turns bare URLs and e-mail addresses into links after escapes are resolved; an
# invisible word joiner after the scheme (or before the @) keeps them text
_BARE_LINK = re.compile(r"(?i)\b(https?|ftp|mailto|xmpp|www)(?=\\[:.])|(?=\\@)")
WORD_JOINER = "\u2060"


def as_text(value: object) -> str:
    """``value`` on one line, every character that could start markdown backslash-escaped
    (CommonMark shows an escaped punctuation character as itself) and bare URLs kept from
    becoming links; the text reads the same."""
    text = _INLINE.sub(r"\\\1", " ".join(visible(str(value)).split()))
    text = re.sub(r"(?i)\b(www)\.", r"\1\\.", text)
    text = _BARE_LINK.sub(lambda m: (m[1] or "") + WORD_JOINER, text)
    return _LINE_START.sub(lambda m: f"{m[1]}\\{m[2]}" if m[1] else f"\\{m[3]}", text)


def visible_frame(df):
    """A copy of a table whose text cells show control and bidirectional characters as
    escapes (specviz.figures.theme.visible): a token holding U+202E cannot reverse a cell."""
    from pandas.api.types import is_object_dtype, is_string_dtype

    text = [c for c in df.columns if is_object_dtype(df[c]) or is_string_dtype(df[c])]
    return df.assign(**{c: df[c].map(lambda v: visible(v) if isinstance(v, str) else v)
                        for c in text})
