"""Text helpers every report and message shares."""

from __future__ import annotations


def one_line(text: object, width: int = 160) -> str:
    """``text`` on one line (white space folded), cut to ``width`` characters with an ellipsis."""
    folded = " ".join(str(text).split())
    return folded if len(folded) <= width else folded[: width - 1] + "…"
