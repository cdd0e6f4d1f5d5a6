"""Text helpers every report and message shares."""

from __future__ import annotations


def one_line(text: object, width: int = 160) -> str:
    """``text`` on one line (white space folded), cut to ``width`` characters with an ellipsis."""
    folded = " ".join(str(text).split())
    return folded if len(folded) <= width else folded[: width - 1] + "…"


def first_line(text: str, default: str = "failed") -> str:
    """The first non-empty line of a failure text (at most 400 characters), else ``default``."""
    return next((line.strip()[:400] for line in text.strip().splitlines() if line.strip()),
                default)
