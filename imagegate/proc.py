"""Subprocesses and waiting: argv lists, a timeout on every call, typed errors, one wait helper."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from imagegate.errors import CommandFailed, ImagegateError

T = TypeVar("T")


def run(
    cmd: Sequence[str],
    *,
    timeout: float,
    check: bool = True,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` (an argv list, never a shell string) and capture its output as text.

    A non-zero exit (when ``check``) or a timeout raises :class:`CommandFailed` carrying the
    command, its exit code and the tail of its stderr.
    """
    argv = [os.fspath(c) for c in cmd]
    full_env = None if env is None else {**os.environ, **env}
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=full_env,
            input=input, stdin=None if input is not None else subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else ""
        raise CommandFailed(argv, None, err or "", timeout=timeout) from None
    except FileNotFoundError:
        raise CommandFailed(argv, 127, f"{argv[0]}: command not found") from None
    if check and proc.returncode != 0:
        raise CommandFailed(argv, proc.returncode, proc.stderr or proc.stdout)
    return proc


class WaitTimeout(ImagegateError):
    """A condition did not become true in time; the message carries the last state seen."""


class StopWaiting(ImagegateError):
    """Raised by a :func:`wait_until` check when waiting longer cannot help (the container exited,
    the healthcheck said unhealthy): :func:`wait_until` re-raises it at once."""


def wait_until(
    check: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 0.2,
    what: str = "condition",
    describe: Callable[[], str] | None = None,
) -> T:
    """Call ``check`` until it returns a truthy value, and return that value.

    Exceptions from ``check`` count as "not yet" (their text is kept as the last state), except
    :class:`StopWaiting` (and its subclasses), which ends the wait at once and propagates. After
    ``timeout`` seconds a :class:`WaitTimeout` names ``what`` and the last state seen, from
    ``describe()`` when given. Never an unbounded loop, never a bare sleep.
    """
    deadline = time.monotonic() + timeout
    last = "never checked"
    while True:
        try:
            value = check()
            if value:
                return value
            last = repr(value)
        except StopWaiting:
            raise
        except Exception as exc:  # the condition may raise while the thing is still coming up
            last = f"{type(exc).__name__}: {exc}"
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            seen = describe() if describe else last
            raise WaitTimeout(f"{what}: not true after {timeout:g}s (last seen: {seen})")
        time.sleep(min(interval, remaining))


def interrupt(signum: int, frame: Any) -> None:
    """A signal handler: SIGTERM (CI cancelling a job) unwinds like Ctrl-C, so every ``finally``
    and fixture teardown still runs (the gate's CLI and the pytest plugin install it)."""
    raise KeyboardInterrupt(f"signal {signum}")


def git(root: str | os.PathLike[str], *args: str, timeout: float = 10) -> str:
    """``git -C root args…``'s output, stripped; "" when git fails, times out or is missing
    (callers ask facts a checkout may not have: a revision, a remote)."""
    try:
        out = subprocess.run(["git", "-C", os.fspath(root), *args], capture_output=True,
                             text=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""
