"""The checks judged on the stack the gate brought up with the tested image, the build, and the
project's own tests: facts their stage gathers (the services' states, the web service's
processes, HTTP answers, a build's outcome), each judged here by one declared function."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from imagegate.checks.catalogue import check
from imagegate.results.findings import Finding
from imagegate.text import first_line


@check("IG-BUILD", title="the image builds", stage="build", evidence="image", baseline="error")
def built(result: Any, where: str, service: str = "") -> Finding:
    """The build's outcome: ``result`` is the build's result (image id, builder, seconds) or the
    error that stopped it (its message, and the build log's tail as detail)."""
    if isinstance(result, Exception):
        return Finding("IG-BUILD", False, getattr(result, "message", str(result)), where,
                       detail=getattr(result, "detail", ""), severity="error", stage="build")
    what = f" for service {service}" if service else ""
    return Finding("IG-BUILD", True, f"built {result.image_id[7:19]}{what} with {result.builder} "
                   f"in {result.seconds:.1f}s", where, severity="error", stage="build")


@check("IG-STACK-HEALTHY", title="every service runs, and is healthy where it has a healthcheck",
       stage="stack", evidence="runtime", baseline="error")
def stack_healthy(states: Mapping[str, Mapping[str, Any]], one_shot: Sequence[str]) -> Finding:
    """Every service runs, and every one with a healthcheck is healthy; a one-shot service
    (``restart: "no"``, or awaited with service_completed_successfully) has exited 0.
    ``states``: service → its container's ``State``."""
    bad = []
    for svc, state in states.items():
        health = (state.get("Health") or {}).get("Status", "none")
        if state.get("Status") == "exited" and state.get("ExitCode") == 0 and svc in one_shot:
            continue  # a one-shot (schema, seed) that did its job
        if state.get("Status") != "running" or health not in ("healthy", "none"):
            bad.append(f"{svc}: status={state.get('Status')} health={health}")
    if bad:
        return Finding("IG-STACK-HEALTHY", False, "services not up and healthy: " + "; ".join(bad))
    return Finding("IG-STACK-HEALTHY", True, f"{len(states)} services up: {', '.join(states)}")


@check("IG-STACK-WEB-NONROOT", title="the web service runs as a non-root uid", stage="stack",
       evidence="runtime", baseline="error", category="security")
def web_nonroot(service: str, procs: Sequence[Any]) -> Finding:
    """No process of the web service (``procs``: pid, uid, command) runs as uid 0."""
    root = [f"pid {p.pid} {p.command[:80]}" for p in procs if p.uid == 0]
    if not procs or root:
        return Finding("IG-STACK-WEB-NONROOT", False,
                       f"{service} runs processes as uid 0: " + "; ".join(root) if root
                       else f"{service}: no processes seen", f"service {service}")
    return Finding("IG-STACK-WEB-NONROOT", True, f"{service}: {len(procs)} processes, none as "
                   "uid 0", f"service {service}")


@check("IG-STACK-HTTP", title="each http_checks entry (or the health probe) answers as expected",
       stage="stack", evidence="runtime", baseline="error")
def http_answer(said: str, at: str, answer: Any, *, status: int = 0,
                contains: str = "") -> Finding:
    """One way of asking ``GET path`` (``said``): ``answer`` has the expected ``status`` (with
    none given, anything below 500) and body text; an exception is no HTTP answer."""
    if isinstance(answer, BaseException):
        reason = getattr(answer, "message", str(answer))
        return Finding("IG-STACK-HTTP", False, f"{said}: no HTTP answer ({reason})", at)
    expected = f"{status}" if status else "below 500"
    problems = []
    if answer.status_code != status if status else answer.status_code >= 500:
        problems.append(f"expected {expected}, got {answer.status_code}: {answer.text[:200]!r}")
    if contains and contains not in answer.text:
        problems.append(f"{contains!r} not in {answer.text[:200]!r}")
    return Finding("IG-STACK-HTTP", not problems, f"{said}: " + (
        "; ".join(problems) if problems else f"{answer.status_code} (expected {expected})"), at)


@check("IG-PROJECT-TEST", title="the project's own tests pass", stage="tests", evidence="tests",
       baseline="error")
def project_test(passed: bool, text: str, where: str, name: str, stage: str = "tests") -> Finding:
    """A test of the project's own suites (``name``, a pytest node id, at ``where``) passed, or
    failed saying ``text`` (its failure: the first line is the message, all of it the detail)."""
    if passed:
        return Finding("IG-PROJECT-TEST", True, "passed", where, stage=stage, name=name)
    return Finding("IG-PROJECT-TEST", False, first_line(text), where, detail=text, severity="error",
                   stage=stage, name=name)
