"""Negative evidence: for every check in the catalogue, the tests that make that check fail.

A check no test has ever seen fail is not known to work. This table, kept next to
:mod:`imagegate.checks.catalogue`, names for each check id the pytest node ids (relative to the repo
root) of the tests that break exactly that check and assert its id and its message: unit tests on
synthetic facts where the evidence allows (policy checks on ``ImageFacts.from_parts``, the lint on
Dockerfile text, the compose checks on a resolved compose model), a real image, container or stack
where the evidence is runtime. Each node id names its check (the id, or the id with underscores)
or its test file does, so a reader can find it by grepping for the id.

``tests_unit/test_evidence.py`` keeps the table honest both ways: every catalogue id (and
hadolint's rules, one DL and one SC rule) has an entry, every entry is a catalogue id, and every
test listed is collected by pytest — so a new check without a negative test, or a renamed test,
fails the unit suite.
"""

from __future__ import annotations

#: The catalogue's row for hadolint's own rules (``catalogue.rows``): one DL and one SC rule.
HADOLINT_RULES = "DL*/SC*"

_LINT = "tests_unit/test_lint.py::test_mutation_fails_exactly_its_check"
_POLICY = "tests_unit/test_policy.py::test_bad_image_fails_its_check"
_TOOLS = "tests_unit/test_policy.py::test_a_build_tool_on_path_fails_IG_RUN_NO_BUILD_TOOLS"
_MUTATED = "tests_image/test_mutations.py::test_check_fails_on_mutated_dockerfile"
_RUNNING = ("tests_image/test_mutations_running.py::"
            "test_running_check_fails_on_an_image_made_to_break_it")
_COMPOSE = "tests_stack/test_negative_stack.py::test_compose_check_fails_on_an_edited_compose_file"
_STACK = "tests_stack/test_negative_stack.py::test_stack_check_fails_on_a_variant_stack"
_FLASK = "tests_unit/test_flask_checks.py"
_FLASKR = "tests_stack/test_flask_gate.py"


def _image(check_id: str, *cases: str) -> tuple[str, ...]:
    """An image check: its synthetic-facts cases, then the real image built from a mutated
    Dockerfile."""
    return (*(f"{_POLICY}[{check_id}-{case}]" for case in cases), f"{_MUTATED}[{check_id}]")


#: check id → node ids of tests that make that check fail (fast, unit-level ones first).
EVIDENCE: dict[str, tuple[str, ...]] = {
    # -- lint: the Dockerfile's text ----------------------------------------------------------------
    "IG-LINT-HADOLINT": (
        "tests_unit/test_lint.py::test_IG_LINT_HADOLINT_fails_on_an_unknown_threshold",
        "tests_unit/test_lint.py::test_IG_LINT_HADOLINT_fails_on_empty_output",
    ),
    "IG-LINT-USER-MISSING": (f"{_LINT}[IG-LINT-USER-MISSING-no-user]",),
    "IG-LINT-USER-ROOT": (f"{_LINT}[IG-LINT-USER-ROOT-named-root]",
                          f"{_LINT}[IG-LINT-USER-ROOT-root-from-arg]"),
    "IG-LINT-SECRET": (f"{_LINT}[IG-LINT-SECRET-env-password]",
                       f"{_LINT}[IG-LINT-SECRET-github-token-value]"),
    "IG-LINT-ADD-URL": (f"{_LINT}[IG-LINT-ADD-URL-url]",),
    "IG-LINT-CMD-SHELL": (f"{_LINT}[IG-LINT-CMD-SHELL-shell-form-cmd]",),
    "IG-LINT-HEALTHCHECK-MISSING": (f"{_LINT}[IG-LINT-HEALTHCHECK-MISSING-none]",
                                    f"{_LINT}[IG-LINT-HEALTHCHECK-MISSING-disabled]"),
    "IG-LINT-BUILDKIT-SYNTAX": (f"{_LINT}[IG-LINT-BUILDKIT-SYNTAX-syntax-directive]",
                                f"{_LINT}[IG-LINT-BUILDKIT-SYNTAX-run-mount]",
                                "tests_unit/test_lint.py::"
                                "test_IG_LINT_BUILDKIT_SYNTAX_in_the_gates_lint[classic-failed]"),
    "IG-LINT-SERVICES": ("tests_unit/test_lint.py::"
                         "test_IG_LINT_SERVICES_lints_the_other_built_services_as_advice",),
    HADOLINT_RULES: (f"{_LINT}[DL3007-latest-tag]", f"{_LINT}[SC2045-loop-over-ls]"),
    # -- build ------------------------------------------------------------------------------------
    "IG-BUILD": ("tests_image/test_mutations.py::"
                 "test_IG_BUILD_fails_when_the_dockerfile_does_not_build",),
    # -- image: metadata and layers -------------------------------------------------------------
    "IG-USER-NONROOT": _image("IG-USER-NONROOT", "uid-0", "empty-user"),
    "IG-USER-NUMERIC": _image("IG-USER-NUMERIC", "named-user"),
    "IG-HEALTHCHECK": _image("IG-HEALTHCHECK", "none", "shell-form"),
    "IG-CMD-EXEC": _image("IG-CMD-EXEC", "shell-cmd"),
    "IG-CMD-EXISTS": _image("IG-CMD-EXISTS", "missing"),
    "IG-PORT-EXPOSED": _image("IG-PORT-EXPOSED", "other-port"),
    "IG-LABELS": _image("IG-LABELS", "no-title", "bad-revision"),
    "IG-SIZE-BUDGET": _image("IG-SIZE-BUDGET", "over"),
    "IG-LAYER-BUDGET": _image("IG-LAYER-BUDGET", "over"),
    "IG-NO-SETUID": _image("IG-NO-SETUID", "setuid-and-setgid"),
    "IG-NO-SECRET-FILES": _image("IG-NO-SECRET-FILES", "dotenv", "pem-key"),
    "IG-PACKAGED-KEYS": ("tests_unit/test_policy.py::"
                         "test_keys_shipped_by_installed_packages_are_advice",),
    "IG-NO-TEST-OR-CACHE": _image("IG-NO-TEST-OR-CACHE", "our-tests", "pip-cache"),
    "IG-NO-SECRET-ENV": _image("IG-NO-SECRET-ENV", "env-password", "history-arg"),
    "IG-APP-NOT-WRITABLE": _image("IG-APP-NOT-WRITABLE", "owned-file"),
    "IG-CA-BUNDLE": (
        "tests_unit/test_ca_bundle.py::test_stray_certificate_fails_naming_subject_and_fingerprint",
        f"{_MUTATED}[IG-CA-BUNDLE]",
    ),
    # -- run: one container of the image ----------------------------------------------------------
    "IG-RUN-HEALTHY": (f"{_RUNNING}[IG-RUN-HEALTHY-unhealthy]",
                       f"{_RUNNING}[IG-RUN-HEALTHY-healthy-after-start-period]"),
    "IG-RUN-USER-NONROOT": (f"{_RUNNING}[IG-RUN-USER-NONROOT-root-user]",),
    "IG-RUN-PROCS-NONROOT": (f"{_RUNNING}[IG-RUN-PROCS-NONROOT-root-user]",),
    "IG-RUN-PORT-LISTENING": (f"{_RUNNING}[IG-RUN-PORT-LISTENING-port-8001]",),
    "IG-RUN-HTTP-HEALTH": (f"{_RUNNING}[IG-RUN-HTTP-HEALTH-readyz-as-health-path]",
                           f"{_RUNNING}[IG-RUN-HTTP-HEALTH-port-8001]"),
    "IG-RUN-APP-NOT-WRITABLE": (f"{_RUNNING}[IG-RUN-APP-NOT-WRITABLE-app-owned-by-user]",
                                f"{_RUNNING}[IG-RUN-APP-NOT-WRITABLE-root-user]"),
    "IG-RUN-NO-BUILD-TOOLS": (
        *(f"{_TOOLS}[IG-RUN-NO-BUILD-TOOLS-{tool}]"
          for tool in ("gcc", "cc", "make", "pip", "pip3", "apt-get", "dpkg")),
        f"{_RUNNING}[IG-RUN-NO-BUILD-TOOLS-pip-installed]",
    ),
    "IG-RUN-NO-PIP-MODULE": (f"{_RUNNING}[IG-RUN-NO-PIP-MODULE-pip-installed]",),
    "IG-RUN-PIP-CHECK": (f"{_RUNNING}[IG-RUN-PIP-CHECK-broken-requirement]",),
    # -- stack: the compose model, and the running stack ------------------------------------------
    "IG-STACK-HEALTHY": (f"{_STACK}[IG-STACK-HEALTHY-never-healthy]",
                         "tests_stack/test_gate.py::test_gate_never_healthy_fails_IG_STACK_HEALTHY"),
    "IG-STACK-LOOPBACK-ONLY": (f"{_COMPOSE}[IG-STACK-LOOPBACK-ONLY-no-host-ip]",
                               f"{_COMPOSE}[IG-STACK-LOOPBACK-ONLY-all-interfaces]"),
    "IG-STACK-WEB-NONROOT": (f"{_STACK}[IG-STACK-WEB-NONROOT-web-root]",),
    "IG-STACK-NOT-PRIVILEGED": (f"{_COMPOSE}[IG-STACK-NOT-PRIVILEGED-privileged]",
                                f"{_COMPOSE}[IG-STACK-NOT-PRIVILEGED-cap-add]",
                                f"{_STACK}[IG-STACK-NOT-PRIVILEGED-cap-add]"),
    "IG-STACK-HTTP": (f"{_STACK}[IG-STACK-HTTP-http-answers-differ]",),
    "IG-STACK-SOURCE-MOUNT": (f"{_COMPOSE}[IG-STACK-SOURCE-MOUNT-app-dir]",
                              f"{_COMPOSE}[IG-STACK-SOURCE-MOUNT-project-dir]"),
    # -- the project's own tests ------------------------------------------------------------------
    # -- Flask's own foot-guns ----------------------------------------------------------------------
    "IG-FLASK-DEBUGGER": (f"{_FLASK}::test_IG_FLASK_DEBUGGER_fails_on_the_debuggers_script",
                          f"{_FLASKR}::test_flask_run_debug_fails_naming_the_debugger_and_the_"
                          "dev_server"),
    "IG-FLASK-DEV-SERVER": (
        *(f"{_FLASK}::test_IG_FLASK_DEV_SERVER_fails_on_werkzeug[argv{n}-{h}-{s}]"
          for n, h, s in ((0, "", "development server (flask run: "),
                          (1, "", "development server (flask run: "),
                          (2, "", "a FlaskGroup run command"),
                          (3, "Werkzeug/3.1.3 Python/3.11.2", "answers as Werkzeug/3.1.3"))),
        f"{_FLASKR}::test_flask_run_debug_fails_naming_the_debugger_and_the_dev_server"),
    "IG-FLASK-DEBUG-ENV": (f"{_FLASK}::test_IG_FLASK_DEBUG_ENV_names_each_source",),
    "IG-FLASK-SECRET-KEY": (f"{_FLASK}::test_IG_FLASK_SECRET_KEY_fails_on_a_weak_key[known-SECRET_KEY "
                            "is a well-known default from docs and tutorials]",
                            f"{_FLASK}::test_introspection_reads_the_app_as_gunicorn_loads_it",
                            f"{_FLASK}::test_IG_FLASK_SECRET_KEY_proven_from_a_session_cookie",
                            f"{_FLASKR}::test_tutorial_app_as_written_fails_naming_SECRET_KEY"),
    "IG-FLASK-ROUTES": (f"{_FLASK}::test_IG_FLASK_ROUTES_fails_naming_the_route_and_its_log_line",
                        f"{_FLASKR}::test_a_raising_route_fails_naming_the_route"),
    "IG-LINT-FLASK-SOURCE": (f"{_FLASK}::test_IG_LINT_FLASK_SOURCE_finds_the_static_twins["
                             "app.run(debug = True)-True]",),
    "IG-PROJECT-TEST": ("tests_unit/test_harness.py::"
                        "test_IG_PROJECT_TEST_fails_when_a_project_test_fails",),
}


def files() -> list[str]:
    """The test files the table names (repo-relative), sorted."""
    return sorted({node.split("::", 1)[0] for nodes in EVIDENCE.values() for node in nodes})


