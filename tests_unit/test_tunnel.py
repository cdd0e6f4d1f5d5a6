"""The probe forward's exec stream parsing (imagegate.run.tunnel): no Docker needed."""

from __future__ import annotations

import struct

import pytest

from imagegate.run.tunnel import split_frames


def frame(stream: int, payload: bytes) -> bytes:
    """One frame as the engine sends it (tty off)."""
    return bytes([stream, 0, 0, 0]) + struct.pack(">I", len(payload)) + payload


@pytest.mark.parametrize(("cut", "complete"), [(0, 0), (7, 0), (8, 0), (8 + 5, 0), (8 + 17, 1),
                                               (8 + 17 + 8 + 2, 1), (8 + 17 + 8 + 3, 2),
                                               (8 + 17 + 8 + 3 + 8 + 4, 3)])
def test_split_frames_keeps_an_incomplete_frame(cut: int, complete: int) -> None:
    """A stream cut anywhere: the complete frames come out in order, the rest waits for more."""
    stream = frame(1, b"HTTP/1.1 200 OK\r\n") + frame(2, b"err") + frame(1, b"body")
    frames, rest = split_frames(stream[:cut])
    assert frames == [(1, b"HTTP/1.1 200 OK\r\n"), (2, b"err"), (1, b"body")][:complete]
    assert (b"".join(frame(s, p) for s, p in frames) + rest) == stream[:cut]


def test_split_frames_empty_payload() -> None:
    """A zero-length frame is a frame."""
    assert split_frames(frame(1, b"") + b"\x01") == ([(1, b"")], b"\x01")
