"""One error hierarchy: every failure the harness can name, with the exit code the CLI uses."""

from __future__ import annotations


class ImagegateError(Exception):
    """Base of every error the harness raises on purpose; its message is one clear line.

    ``exit_code`` follows the gate's contract: 1 means a check or stage failed, 2 means a usage or
    environment problem (no engine, bad config, missing file).
    """

    exit_code = 1

    def __init__(self, message: str, *, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        #: Longer context for a person (log tail, health log); shown under the one-line message.
        self.detail = detail


class UsageError(ImagegateError):
    """Bad flags, an unknown config key, a file that does not exist."""

    exit_code = 2


class EngineUnavailable(ImagegateError):
    """No Docker Engine answers and none could be started."""

    exit_code = 2


class CommandFailed(ImagegateError):
    """A subprocess exited non-zero or timed out."""

    def __init__(self, cmd: list[str], rc: int | None, stderr: str, *, timeout: float | None = None):
        shown = " ".join(cmd[:6]) + (" …" if len(cmd) > 6 else "")
        why = f"timed out after {timeout:g}s" if rc is None else f"exited {rc}"
        tail = stderr.strip().splitlines()[-1:] if stderr.strip() else []
        super().__init__(f"`{shown}` {why}" + (f": {tail[0]}" if tail else ""), detail=stderr)
        self.cmd, self.rc, self.stderr = cmd, rc, stderr


class BaseImageError(ImagegateError):
    """A base image could not be made, or is missing where a build needs it."""

    exit_code = 2


class WheelhouseError(ImagegateError):
    """The locked requirements could not be turned into a hash-checked wheelhouse."""

    exit_code = 2


class BuildFailed(ImagegateError):
    """`docker build` failed; ``detail`` carries the build log tail."""


class PolicyViolation(ImagegateError):
    """The built image broke an image policy check."""


class StackNotHealthy(ImagegateError):
    """The compose stack did not come up healthy; ``detail`` carries ps, logs and health logs."""


class PushFailed(ImagegateError):
    """The image could not be pushed to the registry."""
