"""imagegate: a layered pytest gate for Flask services shipped as Docker images.

Plain modules (engine, base, wheelhouse, build, lint, policy, stack, report) do the work and are
usable without pytest; `plugin` wires them into pytest and `cli` runs the gate.
"""

from __future__ import annotations

__version__ = "0.1.0"
