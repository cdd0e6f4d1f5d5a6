"""The gate on the most-copied production tutorial shape: Flask + Postgres + Gunicorn + Nginx.

`projects/proxied` (see its README) is gated as its owner would run it, with zero configuration
but the compose file's name: the web service is built from `services/web` (`Dockerfile.prod`, no
CMD: compose's `command:` starts gunicorn), only `expose`s its port, reads `env_file`, waits for
Postgres; nginx, built from `services/nginx`, publishes the only port. Three variants: as
written (passes, gating the web image and reaching it directly and through nginx), with the
database driver left out of the requirements (fails in seconds naming the exception), and its
dev compose file (source mount, `flask run` as root: fails naming the mount).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from stack_helpers import findings, gate, result

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("proxied")]

SAMPLE = Path(__file__).parent / "projects" / "proxied"
PROD = "docker-compose.prod.yml"


@pytest.fixture
def proxied(tmp_path: Path, python_slim_image: str, postgres_image: str, nginx_image: str,
            ) -> Callable[..., Path]:
    """``proxied(name, edit=None)``: a fresh copy of the sample (stand-ins made first), with
    ``edit(project)`` applied."""
    def make(name: str = "proxied", edit: Callable[[Path], None] | None = None) -> Path:
        dest = tmp_path / name
        shutil.copytree(SAMPLE, dest)
        if edit is not None:
            edit(dest)
        return dest
    return make


def _by_id(out: Path, check_id: str) -> list[dict[str, Any]]:
    """The findings of ``check_id`` in the gate's result."""
    return [f for f in result(out)["findings"] if f["check_id"] == check_id]


def test_proxied_project_passes_gating_the_web_image(proxied: Callable[..., Path],
                                                     leftovers: Callable[[], list[str]]) -> None:
    """As written, the production compose passes at baseline. Discovery gates `web` (not nginx,
    the only service publishing a port) on port 5000 from `expose`, builds nginx beside it, and
    says why; the run checks pass on web as compose runs it (gunicorn from `command:`, its
    env_file, Postgres up); the app answers from inside the network and through nginx."""
    project = proxied()
    proc = gate(project, "--compose-file", PROD)
    out = project / ".imagegate-out"
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    said = proc.stdout
    assert ("web_service: web [discovered: docker-compose.prod.yml: builds services/web "
            "(Dockerfile.prod) (nginx: FROM nginx:1.25: a proxy, never the app)]") in said, said
    assert "web_port: 5000 [discovered: docker-compose.prod.yml: web expose 5000]" in said
    assert "dockerfile: services/web/Dockerfile.prod [discovered:" in said
    assert "also built: nginx (their own build:, run in the stack, linted as advice)" in said
    assert result(out)["image"]["tags"] == f"imagegate/{project.name}:local"
    built = [f["message"] for f in _by_id(out, "IG-BUILD")]
    assert len(built) == 2 and sum(" for service nginx with " in m for m in built) == 1, built
    healthy = {f["check_id"] for f in findings(out, outcome="passed")}
    assert {"IG-RUN-HEALTHY", "IG-RUN-PROCS-NONROOT", "IG-RUN-HTTP-HEALTH", "IG-RUN-PIP-CHECK",
            "IG-STACK-HEALTHY", "IG-STACK-WEB-NONROOT", "IG-LINT-SERVICES"} <= healthy, healthy
    http = sorted(f["message"] for f in _by_id(out, "IG-STACK-HTTP"))
    assert len(http) == 2 and all(f["ok"] for f in _by_id(out, "IG-STACK-HTTP")), http
    assert http[0].startswith("GET / (through nginx's published port 127.0.0.1:"), http
    assert http[0].endswith("): 200 (expected below 500)"), http
    assert http[1] == "GET / (web:5000 from inside the network): 200 (expected below 500)", http
    assert not findings(out, outcome="failed", severity="error")
    assert leftovers() == []


def test_image_alone_fails_where_compose_runs_it_correctly(proxied: Callable[..., Path]) -> None:
    """The same image run alone (`compose_file = none`), as the gate used to: its ENTRYPOINT
    script runs no CMD and exits 0, a false error the compose-run gate above does not make."""
    project = proxied()
    proc = gate(project, "--compose-file", "none", "--context", "services/web", "--dockerfile",
                "services/web/Dockerfile.prod", "--web-port", "5000", "--quiet")
    out = project / ".imagegate-out"
    assert proc.returncode == 1, proc.stdout[-4000:]
    healthy = _by_id(out, "IG-RUN-HEALTHY")
    assert healthy and not healthy[0]["ok"] and "exited 0" in healthy[0]["message"], healthy
    stages = {s["name"]: s["status"] for s in result(out)["stages"]}
    assert stages["stack"] == "skipped", stages


def test_missing_driver_fails_fast_naming_the_exception(proxied: Callable[..., Path],
                                                        docker_client: Any,
                                                        leftovers: Callable[[], list[str]]
                                                        ) -> None:
    """psycopg2 left out of the requirements: the build passes, web dies at import in the
    stack. IG-STACK-HEALTHY (and IG-RUN-HEALTHY, on web as compose runs it) fail naming the
    service, its exit code and the exception line, well before the 120 s budget."""
    def drop_driver(project: Path) -> None:
        reqs = project / "services/web/requirements.txt"
        kept = [ln for ln in reqs.read_text().splitlines() if not ln.startswith("psycopg2")]
        assert len(kept) == len(reqs.read_text().splitlines()) - 1
        reqs.write_text("\n".join(kept) + "\n")

    project = proxied("nodriver", drop_driver)
    proc = gate(project, "--compose-file", PROD, "--quiet")
    out = project / ".imagegate-out"
    assert proc.returncode == 1, proc.stdout[-4000:]
    for check_id in ("IG-STACK-HEALTHY", "IG-RUN-HEALTHY"):
        failed = [f for f in _by_id(out, check_id) if not f["ok"] and not f["skipped"]]
        assert failed, (check_id, _by_id(out, check_id))
        message = failed[0]["message"]
        assert "service web exited with code 3" in message, message
        assert "ModuleNotFoundError: No module named 'psycopg2'" in message, message
        assert "Worker failed to boot" in message, message
    stages = {s["name"]: s for s in result(out)["stages"]}
    assert stages["stack"]["status"] == "failed", stages
    # well before the budget: the stage ends seconds after web died, not at wait_timeout (120 s)
    # (the stage's own time: a cold build before it does not count)
    assert stages["stack"]["seconds"] < 60, stages["stack"]
    assert "ModuleNotFoundError" in proc.stdout
    assert leftovers() == []


def test_dev_compose_fails_naming_the_source_mount(proxied: Callable[..., Path]) -> None:
    """The dev compose (the one the Compose spec's names find): the source bind mount fails
    the stack, and the app runs as root."""
    project = proxied()
    proc = gate(project, "--quiet")
    out = project / ".imagegate-out"
    assert proc.returncode == 1, proc.stdout[-4000:]
    assert "compose_file: docker-compose.yml [discovered: found]" in proc.stdout
    mount = [f for f in findings(out, outcome="failed") if f["check_id"] == "IG-STACK-SOURCE-MOUNT"]
    assert mount and mount[0]["message"].startswith(
        "web: bind mount ./services/web:/usr/src/app lays the project's files over the image"), mount
    assert mount[0]["where"] == "docker-compose.yml:service web"
    errors = {f["check_id"] for f in findings(out, outcome="failed", severity="error")}
    assert {"IG-STACK-SOURCE-MOUNT", "IG-RUN-PROCS-NONROOT"} <= errors, errors
    assert "IG-STACK-SOURCE-MOUNT" in proc.stdout
