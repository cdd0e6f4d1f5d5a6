"""The generic pytest suites the gate runs, one per stage (lint, image, stack)."""
