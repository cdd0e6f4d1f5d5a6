"""The sample projects here are test data for `imagegate init`, copied to tmp_path by
tests_stack/test_init_gate.py: never collected in place (their own tests import their own code)."""

collect_ignore_glob = ["*"]
