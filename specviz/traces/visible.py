"""Text from a trace made to show rather than act: control and bidirectional characters
written as escapes. Used wherever a trace's text is drawn (figures, colored text, tables,
run names, captions)."""

from __future__ import annotations

import re

# Characters that would act instead of show: C0/C1 controls (\n and \t have their own
# marks where token text is drawn), the bidirectional embeddings, overrides, isolates and
# marks (U+202E draws what follows reversed), line and paragraph separators, and invisible
# format characters that could hide text. U+200D (the joiner of emoji sequences) stays.
_INVISIBLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b\u200e\u200f"
                        "\u202a-\u202e\u2028\u2029\u2060-\u2064\u2066-\u2069\ufeff"
                        "\ufff9-\ufffb]")


def visible(text: str) -> str:
    """``text`` with every control, bidirectional and invisible format character written as
    an escape (U+202E as ``\\u202e``), so it shows instead of acting: a token holding
    U+202E cannot draw the text after it reversed. Other characters are kept."""
    return _INVISIBLE.sub(lambda m: f"\\u{ord(m[0]):04x}", text)
