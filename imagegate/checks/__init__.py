"""The checks: the catalogue (registry) and the check families."""
