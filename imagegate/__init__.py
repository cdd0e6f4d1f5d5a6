"""imagegate: a layered pytest gate for Flask services shipped as Docker images.

Plain modules, grouped by question (config, model, engine, build, facts, run, checks, results,
gate, scaffold), do the work and are usable without pytest; `pytest_plugin` wires them into
pytest, `suites` holds the generic checks the gate runs, and `cli` runs the gate.
"""

from __future__ import annotations

__version__ = "0.1.0"
