"""Image policy on hand-built facts (no Docker): a good image passes, each bad one fails its id."""

from __future__ import annotations

import copy
import gzip
import io
import json
import tarfile
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import imagegate.facts.policy as policy_mod
import imagegate.suites.test_image as generic_image  # the gate's check code (not collected here)
from imagegate.checks.catalogue import stage_ids
from imagegate.config.settings import Settings
from imagegate.facts.layers import FileInfo, read_saved
from imagegate.facts.policy import (
    BUILD_TOOLS,
    CHECKS,
    HEAD,
    ImageFacts,
    _created_by,
    build_tools,
    describe,
    first_command,
    keep_for_checks,
    keep_for_image,
    on_path,
    pip_in_image,
    resolve_path,
    run_checks,
    tools_on_path,
)
from imagegate.results.findings import Finding

SETTINGS = Settings(web_port=8000)  # the app's port (the default, 0, means "discover it")
PASSWD = b"root:x:0:0:root:/root:/bin/sh\napp:x:10001:10001:app:/nonexistent:/sbin/nologin\n"
GROUP = b"root:x:0:\napp:x:10001:\n"
VENV_PATH = "PATH=/opt/venv/bin:/usr/local/bin:/usr/bin:/bin"
SHA = "4edb4383da338767b0239fe396d4517d0589be195a5dc644d719a3a0297ab546"

# The shape of `docker image inspect` as Docker 20.10 reports it for an image built from our
# Dockerfile on imagegate/python:3.11-bookworm (fields the checks do not read trimmed).
GOOD_ATTRS: dict[str, Any] = {
    "Id": f"sha256:{SHA}",
    "RepoTags": ["imagegate/main:test"],
    "Created": "2026-11-25T14:09:23.766429155Z",
    "DockerVersion": "20.10.24+dfsg1",
    "Config": {
        "User": "10001:10001",
        "Env": [VENV_PATH, "PYTHONUNBUFFERED=1",
                "APP_ENV=production", "PORT=8000", "LANG=C.UTF-8"],
        "Cmd": ["gunicorn", "--config", "/srv/app/app/gunicorn.conf.py", "app.wsgi:app"],
        "Entrypoint": None,
        "WorkingDir": "/srv/app",
        "ExposedPorts": {"8000/tcp": {}},
        "Healthcheck": {"Test": ["CMD", "python3", "-c", "import urllib.request; ..."],
                        "Interval": 5_000_000_000, "Timeout": 3_000_000_000, "Retries": 3},
        "Labels": {
            "org.opencontainers.image.title": "imagegate-app",
            "org.opencontainers.image.version": "0.1.0",
            "org.opencontainers.image.revision": "53fc8be5e3c7af828d100c19dfc9a051e0c40da5",
            "org.opencontainers.image.created": "2026-11-25T14:11:21Z",
            "org.opencontainers.image.source": "https://github.com/imagegate/imagegate",
        },
    },
    "Architecture": "amd64",
    "Os": "linux",
    "Size": 61_200_000,
    "RootFS": {"Type": "layers", "Layers": [f"sha256:{i:064x}" for i in range(5)]},
}
GOOD_HISTORY: list[dict[str, Any]] = [
    {"CreatedBy": '/bin/sh -c #(nop)  CMD ["gunicorn" "--config" "/srv/app/app/gunicorn.conf.py"]',
     "Size": 0},
    {"CreatedBy": "/bin/sh -c #(nop) COPY dir:0a1b2c3d in /srv/app ", "Size": 180_000},
    {"CreatedBy": "/bin/sh -c #(nop) COPY dir:9f8e7d6c in /opt/venv ", "Size": 11_000_000},
    {"CreatedBy": "/bin/sh -c #(nop) COPY multi:5a6b7c8d in /etc/ ", "Size": 1_200},
    {"CreatedBy": "", "Comment": "Imported from -", "Size": 49_700_000},
]


def f(path: str, kind: str = "file", mode: int = 0o644, uid: int = 0, gid: int = 0,
      size: int = 10, content: bytes | None = None) -> FileInfo:
    """A FileInfo with the usual defaults (root-owned, read-only to others)."""
    return FileInfo(path, kind, mode, uid, gid, size, 0, "", content)


def link(path: str, target: str) -> FileInfo:
    """A symlink ``path`` → ``target``."""
    return FileInfo(path, "symlink", 0o777, 0, 0, 0, 0, target)


def script(path: str, shebang: bytes, mode: int = 0o755) -> FileInfo:
    """An executable script whose first line is ``shebang`` (as its kept head)."""
    return f(path, mode=mode, content=shebang + b"\nimport sys\n")


GOOD_FILES = [
    f("/etc/passwd", content=PASSWD), f("/etc/group", content=GROUP),
    f("/bin/busybox", mode=0o755), link("/bin/sh", "busybox"), f("/tmp", "dir", 0o1777),
    f("/usr/bin/python3.11", mode=0o755), link("/usr/bin/python3", "python3.11"),
    f("/opt/venv/bin", "dir", 0o755), link("/opt/venv/bin/python3", "/usr/bin/python3"),
    link("/opt/venv/bin/python", "python3"),
    script("/opt/venv/bin/gunicorn", b"#!/opt/venv/bin/python3"),
    f("/srv/app", "dir", 0o755), f("/srv/app/app", "dir", 0o755),
    f("/srv/app/app/__init__.py"), f("/srv/app/app/wsgi.py"),
    f("/opt/venv/lib/python3.11/site-packages/redis/tests", "dir", 0o755),
    f("/usr/lib/python3.11/test", "dir", 0o755),
    f("/opt/venv/lib/python3.11/site-packages/certifi/cacert.pem", content=b"-----BEGIN CERT"),
]


def good() -> ImageFacts:
    """Facts of an image that passes every check."""
    return ImageFacts.from_parts(copy.deepcopy(GOOD_ATTRS), GOOD_HISTORY, GOOD_FILES)


def config(**changes: Any) -> Callable[[ImageFacts], ImageFacts]:
    """A mutation setting ``Config`` keys (None deletes)."""
    def mutate(facts: ImageFacts) -> ImageFacts:
        attrs = copy.deepcopy(dict(facts.attrs))
        for key, value in changes.items():
            attrs["Config"][key] = value
        return ImageFacts.from_parts(attrs, facts.history, facts.files)
    return mutate


def label(name: str, value: str | None) -> Callable[[ImageFacts], ImageFacts]:
    """A mutation setting (or with None, removing) one OCI label."""
    labels = dict(GOOD_ATTRS["Config"]["Labels"])
    labels.pop(f"org.opencontainers.image.{name}")
    if value is not None:
        labels[f"org.opencontainers.image.{name}"] = value
    return config(Labels=labels)


def attr(**changes: Any) -> Callable[[ImageFacts], ImageFacts]:
    """A mutation setting top-level inspect keys."""
    def mutate(facts: ImageFacts) -> ImageFacts:
        return ImageFacts.from_parts({**facts.attrs, **changes}, facts.history, facts.files)
    return mutate


def files(*extra: FileInfo) -> Callable[[ImageFacts], ImageFacts]:
    """A mutation adding (or replacing) files."""
    def mutate(facts: ImageFacts) -> ImageFacts:
        return ImageFacts.from_parts(facts.attrs, facts.history,
                                     {**facts.files, **{x.path: x for x in extra}})
    return mutate


def history(created_by: str) -> Callable[[ImageFacts], ImageFacts]:
    """A mutation adding one history entry on top."""
    def mutate(facts: ImageFacts) -> ImageFacts:
        entry = {"CreatedBy": created_by, "Size": 0}
        return ImageFacts.from_parts(facts.attrs, [entry, *facts.history], facts.files)
    return mutate


def without(*paths: str) -> Callable[[ImageFacts], ImageFacts]:
    """A mutation removing files."""
    def mutate(facts: ImageFacts) -> ImageFacts:
        return ImageFacts.from_parts(facts.attrs, facts.history,
                                     {p: x for p, x in facts.files.items() if p not in paths})
    return mutate


def chain(*mutations: Callable[[ImageFacts], ImageFacts]) -> Callable[[ImageFacts], ImageFacts]:
    """Mutations applied in order."""
    def mutate(facts: ImageFacts) -> ImageFacts:
        for m in mutations:
            facts = m(facts)
        return facts
    return mutate


KEY = b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn...\n-----END OPENSSH PRIVATE KEY-----\n"

def case(check_id: str, name: str, mutate: Callable[[ImageFacts], ImageFacts], reason: str,
         *, also: tuple[str, ...] = ()) -> Any:
    """One bad image: ``mutate`` makes ``check_id`` fail saying ``reason`` (and exactly the
    ``also`` ids fail beside it). Its test id names the check: ``IG-USER-NONROOT-empty-user``."""
    return pytest.param(check_id, {check_id, *also}, mutate, reason, id=f"{check_id}-{name}",
                        marks=pytest.mark.shows_failing(check_id, *also))


BAD = [
    case("IG-USER-NONROOT", "empty-user", config(User=""), "Config.User is empty: the container "
         "runs as root", also=("IG-USER-NUMERIC", "IG-APP-NOT-WRITABLE")),
    case("IG-USER-NONROOT", "uid-0", config(User="0:0"), "USER '0:0' is uid 0, i.e. root",
         also=("IG-APP-NOT-WRITABLE",)),
    case("IG-USER-NONROOT", "named-root", config(User="root"), "USER 'root' is uid 0, i.e. root",
         also=("IG-USER-NUMERIC", "IG-APP-NOT-WRITABLE")),
    case("IG-USER-NONROOT", "unknown-name", config(User="ghost"),
         "USER 'ghost' is not in the image's /etc/passwd: the engine cannot start it",
         also=("IG-USER-NUMERIC", "IG-APP-NOT-WRITABLE")),
    case("IG-USER-NUMERIC", "named-user", config(User="app:app"),
         "USER 'app:app' is a name: runAsNonRoot can only verify a numeric UID"),
    case("IG-HEALTHCHECK", "none", config(Healthcheck=None), "no HEALTHCHECK (expected"),
    case("IG-HEALTHCHECK", "disabled", config(Healthcheck={"Test": ["NONE"]}),
         "HEALTHCHECK NONE disables the health check"),
    case("IG-HEALTHCHECK", "shell-form",
         config(Healthcheck={"Test": ["CMD-SHELL", "curl -f localhost:8000"]}),
         "HEALTHCHECK is shell form (curl -f localhost:8000): it needs /bin/sh"),
    case("IG-CMD-EXEC", "shell-cmd", config(Cmd=["/bin/sh", "-c", "gunicorn app.wsgi:app"]),
         "Cmd is shell form (/bin/sh -c gunicorn app.wsgi:app): /bin/sh is PID 1"),
    case("IG-CMD-EXEC", "shell-entrypoint", config(Entrypoint=["/bin/sh", "-c", "exec gunicorn"]),
         "Entrypoint is shell form"),
    case("IG-CMD-EXEC", "no-cmd", config(Cmd=None), "no CMD or ENTRYPOINT (expected an exec-form "
         "CMD)"),
    case("IG-CMD-EXISTS", "missing", without("/opt/venv/bin/gunicorn"),
         'CMD runs "gunicorn", which is not in the image (searched PATH '
         "/opt/venv/bin:/usr/local/bin:/usr/bin:/bin)"),
    case("IG-PORT-EXPOSED", "other-port", config(ExposedPorts={"5000/tcp": {}}),
         "expected 8000/tcp exposed; exposed: 5000/tcp"),
    case("IG-LABELS", "no-title", label("title", None), "org.opencontainers.image.title missing"),
    case("IG-LABELS", "bad-revision", label("revision", "unknown"),
         "revision 'unknown' is not a 7-40 hex git sha"),
    case("IG-LABELS", "bad-created", label("created", "unknown"),
         "created 'unknown' is not RFC 3339"),
    case("IG-LABELS", "impossible-date", label("created", "2026-13-45T99:00:00Z"),
         "created '2026-13-45T99:00:00Z' is not RFC 3339"),
    case("IG-LABELS", "source-not-url", label("source", "github.com/x/y"),
         "source 'github.com/x/y' is not a URL"),
    case("IG-SIZE-BUDGET", "over", attr(Size=95_000_000),
         "image is 95.0 MB, budget 80 MB; largest layers: 49.7 MB (imported: Imported from -); "
         "11.0 MB COPY dir:9f8e7d6c in /opt/venv"),
    case("IG-LAYER-BUDGET", "over", attr(RootFS={"Layers": ["sha256:x"] * 25}),
         "25 filesystem layers, budget 20"),
    case("IG-NO-SETUID", "setuid-and-setgid",
         files(f("/usr/bin/su", mode=0o4755), f("/usr/bin/wall", mode=0o2755)),
         "expected no setuid/setgid files, found 2: /usr/bin/su (4755), /usr/bin/wall (2755)"),
    case("IG-NO-SECRET-FILES", "dotenv", files(f("/srv/app/.env")),
         "expected no secret files, found 1: /srv/app/.env"),
    case("IG-NO-SECRET-FILES", "git-dir",
         files(f("/srv/app/.git", "dir", 0o755), f("/srv/app/.git/HEAD")),
         "expected no secret files, found 1: /srv/app/.git"),
    case("IG-NO-SECRET-FILES", "ssh-key", files(f("/root/.ssh/id_ed25519", mode=0o600)),
         "found 1: /root/.ssh/id_ed25519"),
    case("IG-NO-SECRET-FILES", "pem-key", files(f("/srv/app/server.key", content=KEY)),
         "found 1: /srv/app/server.key"),
    case("IG-NO-TEST-OR-CACHE", "our-tests",
         files(f("/srv/app/tests_unit", "dir", 0o755), f("/srv/app/tests_unit/test_x.py")),
         "expected no test or cache paths, found 1: /srv/app/tests_unit"),
    case("IG-NO-TEST-OR-CACHE", "app-tests", files(f("/srv/app/tests", "dir", 0o755)),
         "found 1: /srv/app/tests"),
    case("IG-NO-TEST-OR-CACHE", "pytest-cache", files(f("/srv/app/.pytest_cache", "dir", 0o755)),
         "found 1: /srv/app/.pytest_cache"),
    case("IG-NO-TEST-OR-CACHE", "pip-cache", files(f("/root/.cache/pip/http/a/b")),
         "found 1: /root/.cache/pip/http/a/b"),
    case("IG-NO-TEST-OR-CACHE", "apt-archives",
         files(f("/var/cache/apt/archives/curl_7.88_amd64.deb")),
         "found 1: /var/cache/apt/archives/curl_7.88_amd64.deb"),
    case("IG-NO-TEST-OR-CACHE", "apt-lists",
         files(f("/var/lib/apt/lists/deb.debian.org_debian_Packages")),
         "found 1: /var/lib/apt/lists/deb.debian.org_debian_Packages"),
    case("IG-NO-SECRET-ENV", "env-password", config(Env=[VENV_PATH, "DB_PASSWORD=hunter2"]),
         "expected no secrets in env/history: Config.Env DB_PASSWORD looks secret and has a "
         "literal value"),
    case("IG-NO-SECRET-ENV", "env-aws-key", config(Env=[VENV_PATH, "AWS=AKIAIOSFODNN7EXAMPLE"]),
         "Config.Env AWS holds an AWS access key id"),
    case("IG-NO-SECRET-ENV", "history-arg", history("/bin/sh -c #(nop)  ARG API_TOKEN=abc"),
         "history[0] API_TOKEN looks secret and has a literal value"),
    case("IG-NO-SECRET-ENV", "history-run-args",
         history("|2 API_TOKEN=abc APP_UID=10001 /bin/sh -c set -eux; true"),
         "history[0] API_TOKEN looks secret and has a literal value"),
    case("IG-APP-NOT-WRITABLE", "owned-file",
         files(f("/srv/app/app/state.db", uid=10001, mode=0o444)),
         "expected no paths under /srv/app writable by uid 10001, found 1: "
         "/srv/app/app/state.db (10001:0 444)"),
    case("IG-APP-NOT-WRITABLE", "group-writable-dir",
         files(f("/srv/app/app", "dir", 0o775, gid=10001)), "/srv/app/app (0:10001 775)"),
    case("IG-APP-NOT-WRITABLE", "world-writable-file",
         files(f("/srv/app/app/wsgi.py", mode=0o666)), "/srv/app/app/wsgi.py (0:0 666)"),
]


def failed(findings: list[Finding]) -> dict[str, Finding]:
    """The failed findings by id."""
    return {x.check_id: x for x in findings if not x.ok}


def test_good_image_passes_every_check() -> None:
    """Every registered check passes on the good facts, each with a one-line message."""
    found = run_checks(good(), SETTINGS)
    assert failed(found) == {}, [str(x) for x in found if not x.ok]
    assert {x.check_id for x in found} == set(CHECKS)
    assert all(x.message and "\n" not in x.message for x in found)


@pytest.mark.parametrize(("check_id", "ids", "mutate", "reason"), BAD)
def test_bad_image_fails_its_check(check_id: str, ids: set[str],
                                   mutate: Callable[[ImageFacts], ImageFacts], reason: str) -> None:
    """Each bad image fails its check with the expected one-line message, and fails exactly the
    expected ids (a mutation that trips an unrelated check is a broken test)."""
    found = failed(run_checks(mutate(good()), SETTINGS))
    assert set(found) == ids, [str(x) for x in found.values()]
    assert found[check_id].check_id == check_id
    assert reason in found[check_id].message, found[check_id].message
    assert all("\n" not in x.message for x in found.values())


def test_user_name_resolves_through_the_images_passwd() -> None:
    """USER app is uid 10001 per the image's own /etc/passwd: non-root, but not numeric."""
    facts = config(User="app")(good())
    assert facts.runtime_ids() == (10001, {10001}, "")
    found = {x.check_id: x for x in run_checks(facts, SETTINGS)}
    assert found["IG-USER-NONROOT"].ok
    assert not found["IG-USER-NUMERIC"].ok


def test_supplementary_groups_count_for_writability() -> None:
    """A group-writable file of a group the user is a member of is writable by it."""
    extra = f("/etc/group", content=GROUP + b"deploy:x:2000:app\n")
    writable = f("/srv/app/app/wsgi.py", mode=0o664, gid=2000)
    facts = files(extra, writable)(config(User="app")(good()))
    found = failed(run_checks(facts, SETTINGS))
    assert "IG-APP-NOT-WRITABLE" in found
    assert "/srv/app/app/wsgi.py (0:2000 664)" in found["IG-APP-NOT-WRITABLE"].message


def test_ignore_drops_a_check() -> None:
    """A check on settings.ignore is not run and not reported."""
    settings = Settings(web_port=8000, ignore=("IG-HEALTHCHECK",))
    found = run_checks(config(Healthcheck=None)(good()), settings)
    assert "IG-HEALTHCHECK" not in {x.check_id for x in found}
    assert failed(found) == {}


def test_every_check_has_a_description() -> None:
    """Every check on the image's facts is an image-stage catalogue id — or IG-RUN-NO-BUILD-TOOLS,
    a run-stage check read from the layers, as the container resolves PATH — described by its
    docstring."""
    judged = set(stage_ids("image")) | {"IG-RUN-NO-BUILD-TOOLS"}
    assert set(CHECKS) <= judged, sorted(set(CHECKS) - judged)
    for check_id in CHECKS:
        assert describe(check_id)


# --- layers: the final filesystem from a docker-save tar -----------------------------------------


def layer_tar(entries: list[tuple[str, str, int, bytes]], *, compress: bool = False) -> bytes:
    """A layer tar of (name, kind, mode, data) entries; kind is file, dir or link (hardlink)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, kind, mode, data in entries:
            info = tarfile.TarInfo(name)
            info.mode, info.uid, info.gid = mode, 0, 0
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif kind == "link":
                info.type, info.linkname = tarfile.LNKTYPE, data.decode()
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    return gzip.compress(raw) if compress else raw


def saved_image(path: Path, layers: list[bytes]) -> Path:
    """A docker-save tar at ``path``: manifest.json, a config, layers (the last one twice, as a
    symlink, as Docker writes identical layers)."""
    names = [f"l{i}/layer.tar" for i in range(len(layers))]
    config = {"config": {"User": "10001"}, "rootfs": {"type": "layers"}}
    manifest = [{"Config": "cfg.json", "RepoTags": None, "Layers": [*names, "dup/layer.tar"]}]
    with tarfile.open(path, "w") as tar:
        members = [("manifest.json", json.dumps(manifest).encode()),
                   ("cfg.json", json.dumps(config).encode()), *zip(names, layers, strict=True)]
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        dup = tarfile.TarInfo("dup/layer.tar")
        dup.type, dup.linkname = tarfile.SYMTYPE, f"../{names[-1]}"
        tar.addfile(dup)
    return path


def test_whiteouts_and_opaque_dirs_give_the_final_filesystem(tmp_path: Path) -> None:
    """.wh.NAME deletes NAME (and what is under it); .wh..wh..opq empties a lower directory;
    a file replacing a directory hides its children; later layers win."""
    base = layer_tar([
        ("etc/", "dir", 0o755, b""), ("etc/passwd", "file", 0o644, PASSWD),
        ("usr/", "dir", 0o755, b""), ("usr/lib/", "dir", 0o755, b""),
        ("usr/lib/a", "file", 0o644, b"a"), ("usr/lib/gone/", "dir", 0o755, b""),
        ("usr/lib/gone/x", "file", 0o644, b"x"), ("usr/lib/sub/", "dir", 0o755, b""),
        ("usr/lib/sub/b", "file", 0o644, b"b"), ("opt/", "dir", 0o755, b""),
        ("opt/x/", "dir", 0o755, b""), ("opt/x/old", "file", 0o644, b"o"),
        ("bin/", "dir", 0o755, b""), ("bin/su", "file", 0o755, b"su"),
    ])
    upper = layer_tar([
        ("usr/lib/.wh.a", "file", 0o644, b""), ("usr/lib/.wh.gone", "file", 0o644, b""),
        ("usr/lib/sub", "file", 0o644, b"now a file"),
        ("opt/x/", "dir", 0o755, b""), ("opt/x/.wh..wh..opq", "file", 0o644, b""),
        ("opt/x/new", "file", 0o644, b"n"),
    ], compress=True)  # OCI-style saves compress layers
    top = layer_tar([("bin/su", "file", 0o4755, b"su2"),
                     ("bin/su-again", "link", 0o4755, b"bin/su")])
    saved = read_saved(saved_image(tmp_path / "image.tar", [base, upper, top]), keep_for_checks)
    paths = set(saved.files)
    assert {"/usr/lib/a", "/usr/lib/gone", "/usr/lib/gone/x", "/usr/lib/sub/b", "/opt/x/old"} \
        .isdisjoint(paths)
    assert {"/usr/lib", "/usr/lib/sub", "/opt/x", "/opt/x/new", "/etc/passwd"} <= paths
    assert saved.files["/usr/lib/sub"].type == "file"
    assert (saved.files["/opt/x/new"].layer, saved.files["/bin/su"].layer) == (1, 3)
    assert saved.files["/bin/su"].mode == 0o4755 and saved.files["/bin/su"].size == 3
    assert saved.files["/bin/su-again"].type == "hardlink"
    assert saved.files["/etc/passwd"].content == PASSWD  # kept: the checks read it
    assert saved.files["/usr/lib/sub"].content is None  # not kept: metadata only
    assert saved.config["config"]["User"] == "10001"
    facts = ImageFacts.from_parts({"Config": {"User": "10001"}}, [], saved.files)
    assert "/bin/su (4755)" in failed(run_checks(facts, SETTINGS))["IG-NO-SETUID"].message


class FakeImage:
    """An engine image whose ``save`` streams a prepared docker-save tar and counts calls."""

    def __init__(self, tar: Path, layers: list[str], config: dict[str, Any]) -> None:
        self.tar, self.saves = tar, 0
        self.attrs = {"Config": config, "RootFS": {"Type": "layers", "Layers": layers}}

    def save(self, chunk_size: int, named: bool) -> Any:
        self.saves += 1
        yield self.tar.read_bytes()

    def history(self) -> list[dict[str, Any]]:
        return []


def test_image_files_are_cached_by_layer_digests(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Read once per layer chain: the same layers (another tag, a new label) come from the cache
    with the same files and kept contents; other layers, or another CMD program, are read."""
    monkeypatch.setattr(policy_mod, "FACTS_CACHE", tmp_path / "facts")
    tar = saved_image(tmp_path / "image.tar", [layer_tar([
        ("etc/", "dir", 0o755, b""), ("etc/passwd", "file", 0o644, PASSWD),
        ("bin/", "dir", 0o755, b""), ("bin/run", "file", 0o4755, b"#!/bin/sh\nexec x\n")])])
    config = {"Cmd": ["/bin/run"], "WorkingDir": "/"}
    first = FakeImage(tar, ["sha256:" + "a" * 64], config)
    images = {"one": first}
    cli = types.SimpleNamespace(images=types.SimpleNamespace(get=images.__getitem__))

    read = ImageFacts.load(cli, "one")
    images["relabelled"] = again = FakeImage(tar, ["sha256:" + "a" * 64],
                                             {**config, "Labels": {"rev": "2"}})
    cached = ImageFacts.load(cli, "relabelled")
    assert (first.saves, again.saves) == (1, 0)
    assert cached.files == read.files and cached.files["/etc/passwd"].content == PASSWD
    assert cached.files["/bin/run"].mode == 0o4755

    images["other-layers"] = other = FakeImage(tar, ["sha256:" + "b" * 64], config)
    images["other-cmd"] = cmd = FakeImage(tar, ["sha256:" + "a" * 64],
                                          {**config, "Cmd": ["/bin/other"]})
    ImageFacts.load(cli, "other-layers")
    ImageFacts.load(cli, "other-cmd")
    assert (other.saves, cmd.saves) == (1, 1)
    for entry in (tmp_path / "facts").glob("*.json"):
        entry.write_text("{broken")  # a bad entry is read again, not trusted
    assert ImageFacts.load(cli, "one").files == read.files and first.saves == 2


def test_a_save_without_manifest_is_a_clear_error(tmp_path: Path) -> None:
    """A tar that is not a docker save names what it lacks."""
    bogus = tmp_path / "bogus.tar"
    with tarfile.open(bogus, "w"):
        pass
    with pytest.raises(ValueError, match=r"manifest\.json"):
        read_saved(bogus)


# --- IG-CMD-EXISTS: the program the container runs, found in the image's own files ---------------


def cmd_finding(facts: ImageFacts) -> Finding:
    """The IG-CMD-EXISTS finding for ``facts``."""
    result = CHECKS["IG-CMD-EXISTS"](facts, SETTINGS)
    assert isinstance(result, Finding) and result.check_id == "IG-CMD-EXISTS"
    assert result.message and "\n" not in result.message
    return result


ENV_SCRIPT = script("/opt/venv/bin/gunicorn", b"#!/usr/bin/env python3")
CMD_EXISTS = [
    # (case, mutation, passes, what the message must say)
    ("found on PATH, a script for the venv's python", lambda x: x, True,
     'CMD runs "gunicorn" (/opt/venv/bin/gunicorn, a script for /opt/venv/bin/python3 → '
     "/usr/bin/python3.11)"),
    ("missing", without("/opt/venv/bin/gunicorn"), False,
     'CMD runs "gunicorn", which is not in the image '
     "(searched PATH /opt/venv/bin:/usr/local/bin:/usr/bin:/bin)"),
    ("missing, no PATH in the image: Docker's default", chain(
        config(Env=["LANG=C.UTF-8"]), without("/opt/venv/bin/gunicorn")), False,
     "searched PATH /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)"),
    ("absolute path missing", config(Cmd=["/srv/app/run"]), False,
     'CMD runs "/srv/app/run", which is not in the image'),
    ("relative to WORKDIR", chain(config(Cmd=["./run"]), files(f("/srv/app/run", mode=0o755))),
     True, 'CMD runs "./run" (/srv/app/run)'),
    ("ENTRYPOINT + CMD: the entrypoint is what runs", config(Entrypoint=["/docker-entrypoint.sh"]),
     False, 'ENTRYPOINT runs "/docker-entrypoint.sh", which is not in the image'),
    ("symlink chain: relative, absolute, through a symlinked dir", chain(
        config(Cmd=["app"], Env=["PATH=/bin"]),
        files(link("/bin", "usr/bin"), link("/usr/bin/app", "../lib/app/current"),
              link("/usr/lib/app/current", "/opt/app/v2/bin/app"),
              link("/opt/app/v2", "releases/2"), f("/opt/app/releases/2/bin/app", mode=0o755))),
     True, 'CMD runs "app" (/bin/app → /opt/app/releases/2/bin/app)'),
    ("dangling symlink, by path", chain(
        config(Cmd=["/opt/venv/bin/gunicorn"]),
        files(link("/opt/venv/bin/gunicorn", "/nowhere/gunicorn"))), False,
     'which is a dangling symlink (/opt/venv/bin/gunicorn → /nowhere/gunicorn; '
     "/nowhere/gunicorn does not exist)"),
    ("dangling symlink, on PATH: not found, and said why", files(
        link("/opt/venv/bin/gunicorn", "../lib/gunicorn")), False,
     "is not in the image (searched PATH /opt/venv/bin:/usr/local/bin:/usr/bin:/bin; "
     "/opt/venv/bin/gunicorn is a dangling symlink"),
    ("symlink loop", chain(config(Cmd=["/a"]), files(link("/a", "b"), link("/b", "/a"))), False,
     'CMD runs "/a", which is a symlink loop'),
    ("script whose interpreter is missing", without("/opt/venv/bin/python3"), False,
     'CMD runs "gunicorn", which is a script (/opt/venv/bin/gunicorn) whose interpreter '
     '"/opt/venv/bin/python3" is not in the image'),
    ("script whose interpreter is a dangling symlink", without("/usr/bin/python3.11"), False,
     'whose interpreter "/opt/venv/bin/python3" is a dangling symlink'),
    ("#!/usr/bin/env python3 with python3 on PATH", files(ENV_SCRIPT, link("/usr/bin/env",
                                                                           "/bin/busybox")),
     True, "/opt/venv/bin/gunicorn, a script for /usr/bin/env → /bin/busybox running python3 = "
     "/opt/venv/bin/python3 → /usr/bin/python3.11)"),
    ("#!/usr/bin/env python3 without python3", chain(
        files(ENV_SCRIPT, link("/usr/bin/env", "/bin/busybox")),
        without("/opt/venv/bin/python3", "/usr/bin/python3")), False,
     'run by "/usr/bin/env python3", and "python3" is not in the image (searched PATH'),
    ("#!/usr/bin/env python3 without env", files(ENV_SCRIPT), False,
     'whose interpreter "/usr/bin/env" is not in the image'),
    ("not executable", files(f("/opt/venv/bin/gunicorn", mode=0o644)), False,
     "is not in the image (searched PATH /opt/venv/bin:/usr/local/bin:/usr/bin:/bin; "
     "/opt/venv/bin/gunicorn is not executable (mode 644)"),
    ("not executable, by path", chain(config(Cmd=["/srv/app/run.sh"]),
                                      files(f("/srv/app/run.sh", mode=0o644))), False,
     'CMD runs "/srv/app/run.sh", which is not executable (mode 644)'),
    ("a directory", config(Cmd=["/opt/venv/bin"]), False, "which is a directory"),
    ("executable by root only, run as 10001", files(f("/opt/venv/bin/gunicorn", mode=0o700)),
     False, "which uid 10001 cannot execute (/opt/venv/bin/gunicorn 0:0 700)"),
    ("owned by the user, user-executable", files(
        f("/opt/venv/bin/gunicorn", mode=0o700, uid=10001)), True, "/opt/venv/bin/gunicorn"),
    ("shell form: /bin/sh and the first command found",
     config(Cmd=["/bin/sh", "-c", "set -eu; exec gunicorn app.wsgi:app"]), True,
     'its command "gunicorn" (/opt/venv/bin/gunicorn'),
    ("shell form without /bin/sh", chain(
        config(Cmd=["/bin/sh", "-c", "gunicorn app"]), without("/bin/sh")), False,
     'CMD runs "/bin/sh", which is not in the image'),
    ("shell form, command missing", config(Cmd=["/bin/sh", "-c", "exec uvicorn app:app"]), False,
     'CMD runs "/bin/sh -c exec uvicorn app:app", whose command "uvicorn" is not in the image'),
    ("shell form, first command unknowable", config(Cmd=["/bin/sh", "-c", 'exec "$APP"']), True,
     "not knowable without running it"),
]


@pytest.mark.parametrize(("case", "mutate", "ok", "says"), CMD_EXISTS,
                         ids=[c[0] for c in CMD_EXISTS])
def test_cmd_exists(case: str, mutate: Callable[[ImageFacts], ImageFacts], ok: bool,
                    says: str) -> None:
    """IG-CMD-EXISTS resolves ENTRYPOINT/CMD argv[0] like the engine and the kernel do."""
    finding = cmd_finding(mutate(good()))
    assert finding.ok is ok, finding.message
    assert says in finding.message, finding.message


def test_cmd_exists_is_not_applicable_without_a_command() -> None:
    """No CMD: IG-CMD-EXEC reports that; IG-CMD-EXISTS is skipped, not failed."""
    finding = cmd_finding(config(Cmd=None)(good()))
    assert finding.ok and finding.skipped


def test_resolve_path_follows_every_component() -> None:
    """A symlinked directory in the middle of a path is followed; ``..`` works after it."""
    facts = files(link("/bin", "usr/bin"), f("/usr/lib/x", mode=0o755),
                  link("/usr/bin/x", "../lib/x"))(good())
    resolved = resolve_path(facts, "/bin/x")
    assert (resolved.final, resolved.problem, resolved.executable) == ("/usr/lib/x", "", True)
    assert resolved.links == ("/bin → usr/bin", "/usr/bin/x → ../lib/x")
    assert "not a directory" in resolve_path(facts, "/usr/lib/x/y").problem


def test_tools_on_path_is_evidence_from_the_files() -> None:
    """Build tools count when an executable is on PATH: symlinks followed; a non-executable file
    or a tool in a directory not on PATH does not count."""
    facts = files(link("/usr/bin/gcc", "gcc-12"), f("/usr/bin/gcc-12", mode=0o755),
                  f("/usr/bin/pip3", mode=0o644), f("/usr/lib/make/make", mode=0o755),
                  link("/bin/dpkg", "/nowhere"), link("/usr/bin/cc", "gcc"))(good())
    assert tools_on_path(facts) == {"gcc": "/usr/bin/gcc", "cc": "/usr/bin/cc"}
    assert on_path(facts, "gunicorn") == "/opt/venv/bin/gunicorn"
    assert on_path(facts, "python3") == "/opt/venv/bin/python3"  # first on PATH wins
    assert on_path(facts, "make") is None
    assert on_path(facts, "/usr/bin/gcc") == "/usr/bin/gcc"
    assert [(x.ok, x.message) for x in build_tools(facts, SETTINGS)] == [
        (False, "gcc is on PATH in the final image (/usr/bin/gcc)"),
        (False, "cc is on PATH in the final image (/usr/bin/cc)")]
    assert [x.ok for x in build_tools(good(), SETTINGS)] == [True]


def generic_build_tools(facts: ImageFacts) -> list[Finding]:
    """What the gate's own IG-RUN-NO-BUILD-TOOLS check records for ``facts``."""
    recorded: list[Finding] = []
    generic_image.TestImagePolicy().test_policy("IG-RUN-NO-BUILD-TOOLS", facts, SETTINGS,
                                                recorded.extend)
    return recorded


BUILD_TOOL_FILES = [
    # (tool, the files that put it on PATH as its Debian package does, the path it is found at)
    ("gcc", (link("/usr/bin/gcc", "gcc-12"), f("/usr/bin/gcc-12", mode=0o755)), "/usr/bin/gcc"),
    ("cc", (link("/usr/bin/cc", "/etc/alternatives/cc"),
            link("/etc/alternatives/cc", "/usr/bin/x86_64-linux-gnu-gcc-12"),
            f("/usr/bin/x86_64-linux-gnu-gcc-12", mode=0o755)), "/usr/bin/cc"),
    ("make", (f("/usr/bin/make", mode=0o755),), "/usr/bin/make"),
    ("pip", (script("/opt/venv/bin/pip", b"#!/opt/venv/bin/python3"),), "/opt/venv/bin/pip"),
    ("pip3", (script("/usr/bin/pip3", b"#!/usr/bin/python3"),), "/usr/bin/pip3"),
    ("apt-get", (f("/usr/bin/apt-get", mode=0o755),), "/usr/bin/apt-get"),
    ("dpkg", (link("/bin/dpkg", "/usr/bin/dpkg"), f("/usr/bin/dpkg", mode=0o755)),
     "/usr/bin/dpkg"),
]


@pytest.mark.shows_failing("IG-RUN-NO-BUILD-TOOLS")
@pytest.mark.parametrize(("tool", "extra", "path"), [
    pytest.param(*t, id=f"IG-RUN-NO-BUILD-TOOLS-{t[0]}") for t in BUILD_TOOL_FILES])
def test_a_build_tool_on_path_fails_IG_RUN_NO_BUILD_TOOLS(tool: str, extra: tuple[FileInfo, ...],
                                                          path: str) -> None:
    """Each build tool, alone on the image's PATH, fails the gate's IG-RUN-NO-BUILD-TOOLS check
    naming that tool and where it is (and nothing else)."""
    assert tool in BUILD_TOOLS and tools_on_path(good()) == {}
    facts = files(*extra)(good())
    assert [(x.check_id, x.ok, x.message, x.where) for x in generic_build_tools(facts)] == [
        ("IG-RUN-NO-BUILD-TOOLS", False, f"{tool} is on PATH in the final image ({path})", path)]
    assert generic_build_tools(facts) == build_tools(facts, SETTINGS)


def test_every_build_tool_has_a_negative_case() -> None:
    """BUILD_TOOL_FILES covers every tool the check looks for; the good image passes it."""
    assert {t[0] for t in BUILD_TOOL_FILES} == set(BUILD_TOOLS)
    assert [(x.check_id, x.ok) for x in generic_build_tools(good())] == [
        ("IG-RUN-NO-BUILD-TOOLS", True)]


def test_pip_in_image_finds_installed_pip_packages_only() -> None:
    """site-packages/pip and dist-packages/pip count; dist-info, wheels and pipx do not."""
    facts = files(
        f("/opt/venv/lib/python3.11/site-packages/pip", "dir", 0o755),
        f("/usr/lib/python3/dist-packages/pip", "dir", 0o755),
        f("/opt/venv/lib/python3.11/site-packages/pip-24.0.dist-info", "dir", 0o755),
        f("/usr/share/python-wheels/pip-23.0-py3-none-any.whl"),
        f("/opt/venv/lib/python3.11/site-packages/pipx", "dir", 0o755),
    )(good())
    assert pip_in_image(facts) == ["/opt/venv/lib/python3.11/site-packages/pip",
                                   "/usr/lib/python3/dist-packages/pip"]
    assert pip_in_image(good()) == []


@pytest.mark.parametrize(("script_text", "first"), [
    ("gunicorn app:app", "gunicorn"),
    ("set -eux; exec gunicorn -b :8000 app", "gunicorn"),
    ("FOO=1 exec python3 -m app", "python3"),
    ("echo starting\n/srv/app/run", "/srv/app/run"),
    ("cd /srv && ./run.sh", None),  # relative to where `cd` went
    ("if true; then x; fi", None),
    ('exec "$@"', None),
    ("$HOME/bin/x", None),
])
def test_first_command_of_a_shell_script(script_text: str, first: str | None) -> None:
    """Best effort: past assignments, exec and state-setting builtins; None when unknowable."""
    assert first_command(script_text) == first


def test_keep_holds_script_heads_in_bin_dirs_only(tmp_path: Path) -> None:
    """Files in */bin and */sbin keep their first 256 bytes (a #! line), whatever their size;
    key files and passwd stay whole; other files keep nothing; a hardlink shares its target's."""
    assert keep_for_checks("/opt/venv/bin/gunicorn", 10_000_000) == HEAD
    assert keep_for_checks("/usr/local/sbin/x", 10) == HEAD
    assert keep_for_checks("/etc/passwd", 10) is True
    assert keep_for_checks("/srv/app/binary", 10) is False
    assert keep_for_image({"Cmd": ["/docker-entrypoint.sh"]})("/docker-entrypoint.sh", 10) == HEAD
    assert keep_for_image({"Cmd": ["/docker-entrypoint.sh"]})("/other.sh", 10) is False
    long_script = b"#!/opt/venv/bin/python3\n" + b"# padding\n" * 500
    layer = layer_tar([("opt/venv/bin/", "dir", 0o755, b""),
                       ("opt/venv/bin/gunicorn", "file", 0o755, long_script),
                       ("opt/venv/bin/gunicorn2", "link", 0o755, b"opt/venv/bin/gunicorn"),
                       ("srv/app.py", "file", 0o644, b"print(1)\n")])
    saved = read_saved(saved_image(tmp_path / "image.tar", [layer]), keep_for_checks)
    head = saved.files["/opt/venv/bin/gunicorn"].content
    assert head == long_script[:HEAD]
    assert saved.files["/opt/venv/bin/gunicorn2"].content == head
    assert saved.files["/srv/app.py"].content is None


@pytest.mark.parametrize(("created_by", "shown"), [
    ("RUN |1 APP_UID=10001 /bin/sh -c set -eux; echo hi > /y # buildkit", "RUN set -eux; echo hi"),
    ("RUN |1 APP_UID=10001 python3 -c print(1) # buildkit", "RUN python3 -c print(1)"),
    ("RUN /bin/sh -c pip install x # buildkit", "RUN pip install x"),
    ("COPY /wheels /wheels # buildkit", "COPY /wheels /wheels"),
    ('CMD ["python3" "-m" "http.server"]', 'CMD ["python3" "-m" "http.server"]'),
    ("/bin/sh -c #(nop) COPY dir:9f8e7d6c in /opt/venv ", "COPY dir:9f8e7d6c in /opt/venv"),
    ("|2 A=b C=d /bin/sh -c set -eux; true", "RUN set -eux; true"),
])
def test_history_renders_classic_and_buildkit_alike(created_by: str, shown: str) -> None:
    """Layer listings show the instruction, from either builder's history format."""
    assert _created_by({"CreatedBy": created_by}).startswith(shown)


@pytest.mark.shows_failing("IG-PACKAGED-KEYS")
def test_keys_shipped_by_installed_packages_are_advice() -> None:
    """A key file an installed distribution lists in its RECORD (a library's test certificate)
    is IG-PACKAGED-KEYS advice naming the package and version; the project's own key in its
    WORKDIR stays an IG-NO-SECRET-FILES error."""
    site = "/usr/local/lib/python3.11/site-packages"
    record = f("/".join((site, "aiosmtpd-1.4.6.dist-info/RECORD")),
               content=b"aiosmtpd/__init__.py,sha256=x,10\naiosmtpd/tests/certs/server.key,"
                       b"sha256=y,1704\naiosmtpd-1.4.6.dist-info/RECORD,,\n")
    packaged = f(f"{site}/aiosmtpd/tests/certs/server.key", content=KEY)
    facts = files(record, packaged)(good())
    found = {x.check_id: x for x in run_checks(facts, SETTINGS)}
    assert found["IG-NO-SECRET-FILES"].ok, found["IG-NO-SECRET-FILES"].message
    advice = found["IG-PACKAGED-KEYS"]
    assert not advice.ok and advice.where == f"{site}/aiosmtpd/tests/certs/server.key"
    assert f"{site}/aiosmtpd/tests/certs/server.key (aiosmtpd 1.4.6)" in advice.message
    own = files(record, packaged, f("/srv/app/server.key", content=KEY))(good())
    mine = [x for x in run_checks(own, SETTINGS) if x.check_id == "IG-NO-SECRET-FILES"]
    assert not mine[0].ok and mine[0].message == ("expected no secret files, found 1: "
                                                  "/srv/app/server.key")
