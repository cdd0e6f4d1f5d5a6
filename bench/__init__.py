"""Benchmarks of the imagegate image and gate against the seed's recipe (``make bench``)."""
