"""Small edits that break a Dockerfile in one named way (for the mutation tests)."""

from __future__ import annotations


def replace_line(text: str, startswith: str, new: str) -> str:
    """Replace the (last) line starting with ``startswith`` — from the final stage — by ``new``."""
    lines = text.splitlines()
    idx = max(i for i, line in enumerate(lines) if line.startswith(startswith))
    lines[idx] = new
    return "\n".join(lines) + "\n"


def drop_instruction(text: str, startswith: str) -> str:
    """Remove the last instruction starting with ``startswith``, continuation lines included."""
    lines = text.splitlines()
    idx = max(i for i, line in enumerate(lines) if line.startswith(startswith))
    end = idx
    while lines[end].rstrip().endswith("\\"):
        end += 1
    del lines[idx:end + 1]
    return "\n".join(lines) + "\n"


def before_user(text: str, instruction: str) -> str:
    """Insert ``instruction`` in the final stage just before its USER (still running as root)."""
    return replace_line(text, "USER ", f"{instruction}\nUSER 10001:10001")


