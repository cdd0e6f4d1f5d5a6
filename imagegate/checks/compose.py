"""The checks judged on the compose model as the user wrote it (not as the gate runs it): a source
bind mount, ports published on every interface, privileged services. They need no engine and are
judged even when the stack never comes up."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from imagegate.checks.catalogue import check, family
from imagegate.model.compose import exposed_beyond_loopback, source_mounts
from imagegate.results.findings import Finding

#: Every check declared on :class:`ComposeFacts`.
COMPOSE_CHECKS = family("compose")


@dataclass(frozen=True)
class ComposeFacts:
    """The facts the compose checks take: the resolved model and the gate's settings (which
    name the web service), and the services that run the gated image."""

    model: Any
    settings: Any
    gated: tuple[str, ...] = ()

    def at(self, service: str) -> str:
        """A finding location: the service in the first compose file."""
        return f"{self.model.files[0].name}:service {service}"


def judge(facts: ComposeFacts) -> list[Finding]:
    """Every compose check's findings on ``facts`` (passes included)."""
    return [f for fn in COMPOSE_CHECKS.values() for f in fn(facts)]


@check("IG-STACK-SOURCE-MOUNT", title="no service bind-mounts the project's source over the image",
       stage="stack", evidence="compose", baseline="error", category="security", facts="compose")
def source_mount(facts: ComposeFacts) -> list[Finding]:
    """No service running an image of this project (those building it, the gated ones, the web
    service) bind-mounts the project's source over it: the stack would test the working tree."""
    model, s = facts.model, facts.settings
    judged = {*(svc for svc in model.services if model.build(svc)), *facts.gated,
              *([s.web_service] if s.web_service else [])}
    found = source_mounts(model, s.project_dir, judged)
    return ([Finding("IG-STACK-SOURCE-MOUNT", False, text, facts.at(svc)) for svc, text in found]
            or [Finding("IG-STACK-SOURCE-MOUNT", True, "no source bind mounts")])


@check("IG-STACK-LOOPBACK-ONLY", title="published ports bind to 127.0.0.1, not every interface",
       stage="stack", evidence="compose", baseline="warning", category="security",
       facts="compose")
def loopback_only(facts: ComposeFacts) -> list[Finding]:
    """Published ports name 127.0.0.1 (``8000:8000`` publishes on every interface of the host);
    the gate's own run moves them to 127.0.0.1 anyway."""
    found = exposed_beyond_loopback(facts.model)
    return ([Finding("IG-STACK-LOOPBACK-ONLY", False, text, facts.at(svc)) for svc, text in found]
            or [Finding("IG-STACK-LOOPBACK-ONLY", True, "every published port is on 127.0.0.1")])


@check("IG-STACK-NOT-PRIVILEGED", title="no service is privileged or adds capabilities",
       stage="stack", evidence="compose", baseline="error", category="security", facts="compose")
def not_privileged(facts: ComposeFacts) -> list[Finding]:
    """No service runs privileged or adds capabilities."""
    found = []
    for svc in facts.model.services:
        spec = facts.model.service(svc)
        if spec.get("privileged"):
            found.append(Finding("IG-STACK-NOT-PRIVILEGED", False,
                                 f"{svc} runs privileged (expected no privileged: true)",
                                 facts.at(svc)))
        if spec.get("cap_add"):
            found.append(Finding("IG-STACK-NOT-PRIVILEGED", False,
                                 f"{svc} adds capabilities {sorted(spec['cap_add'])} "
                                 "(expected no cap_add)", facts.at(svc)))
    return found or [Finding("IG-STACK-NOT-PRIVILEGED", True, "no privileged service, no cap_add")]
