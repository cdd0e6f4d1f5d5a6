"""Image policy on hand-built facts (no Docker): a good image passes, each bad one fails its id."""

from __future__ import annotations

import copy
import gzip
import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from imagegate.findings import Finding
from imagegate.layers import FileInfo, read_saved
from imagegate.policy import CHECKS, ImageFacts, describe, keep_for_checks, run_checks
from imagegate.settings import Settings

SETTINGS = Settings()
PASSWD = b"root:x:0:0:root:/root:/bin/sh\napp:x:10001:10001:app:/nonexistent:/sbin/nologin\n"
GROUP = b"root:x:0:\napp:x:10001:\n"
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
        "Env": ["PATH=/opt/venv/bin:/usr/local/bin:/usr/bin:/bin", "PYTHONUNBUFFERED=1",
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


GOOD_FILES = [
    f("/etc/passwd", content=PASSWD), f("/etc/group", content=GROUP),
    f("/bin/busybox", mode=0o755), f("/tmp", "dir", 0o1777),
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


KEY = b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn...\n-----END OPENSSH PRIVATE KEY-----\n"

BAD = [
    # (ids that fail, mutation, what the first id's message must say)
    ({"IG-USER-NONROOT", "IG-USER-NUMERIC", "IG-APP-NOT-WRITABLE"}, config(User=""),
     "Config.User is empty"),
    ({"IG-USER-NONROOT", "IG-APP-NOT-WRITABLE"}, config(User="0:0"), "uid 0, i.e. root"),
    ({"IG-USER-NONROOT", "IG-USER-NUMERIC", "IG-APP-NOT-WRITABLE"}, config(User="root"),
     "uid 0, i.e. root"),
    ({"IG-USER-NONROOT", "IG-USER-NUMERIC", "IG-APP-NOT-WRITABLE"}, config(User="ghost"),
     "'ghost' is not in the image's /etc/passwd"),
    ({"IG-USER-NUMERIC"}, config(User="app:app"), "USER 'app:app' is a name"),
    ({"IG-HEALTHCHECK"}, config(Healthcheck=None), "no HEALTHCHECK"),
    ({"IG-HEALTHCHECK"}, config(Healthcheck={"Test": ["NONE"]}), "HEALTHCHECK NONE"),
    ({"IG-HEALTHCHECK"}, config(Healthcheck={"Test": ["CMD-SHELL", "curl -f localhost:8000"]}),
     "shell form (curl -f localhost:8000)"),
    ({"IG-CMD-EXEC"}, config(Cmd=["/bin/sh", "-c", "gunicorn app.wsgi:app"]), "Cmd is shell form"),
    ({"IG-CMD-EXEC"}, config(Entrypoint=["/bin/sh", "-c", "exec gunicorn"]),
     "Entrypoint is shell form"),
    ({"IG-CMD-EXEC"}, config(Cmd=None), "no CMD or ENTRYPOINT"),
    ({"IG-PORT-EXPOSED"}, config(ExposedPorts={"5000/tcp": {}}),
     "expected 8000/tcp exposed; exposed: 5000/tcp"),
    ({"IG-LABELS"}, label("title", None), "org.opencontainers.image.title missing"),
    ({"IG-LABELS"}, label("revision", "unknown"), "revision 'unknown' is not a 7-40 hex git sha"),
    ({"IG-LABELS"}, label("created", "unknown"), "created 'unknown' is not RFC 3339"),
    ({"IG-LABELS"}, label("created", "2026-13-45T99:00:00Z"), "is not RFC 3339"),
    ({"IG-LABELS"}, label("source", "github.com/x/y"), "source 'github.com/x/y' is not a URL"),
    ({"IG-SIZE-BUDGET"}, attr(Size=95_000_000),
     "image is 95.0 MB, budget 80 MB; largest layers: 49.7 MB (imported: Imported from -); "
     "11.0 MB COPY dir:9f8e7d6c in /opt/venv"),
    ({"IG-LAYER-BUDGET"}, attr(RootFS={"Layers": ["sha256:x"] * 25}),
     "25 filesystem layers, budget 20"),
    ({"IG-NO-SETUID"}, files(f("/usr/bin/su", mode=0o4755), f("/usr/bin/wall", mode=0o2755)),
     "found 2: /usr/bin/su (4755), /usr/bin/wall (2755)"),
    ({"IG-NO-SECRET-FILES"}, files(f("/srv/app/.env")), "found 1: /srv/app/.env"),
    ({"IG-NO-SECRET-FILES"}, files(f("/srv/app/.git", "dir", 0o755), f("/srv/app/.git/HEAD")),
     "found 1: /srv/app/.git"),
    ({"IG-NO-SECRET-FILES"}, files(f("/root/.ssh/id_ed25519", mode=0o600)),
     "/root/.ssh/id_ed25519"),
    ({"IG-NO-SECRET-FILES"}, files(f("/srv/app/server.key", content=KEY)),
     "/srv/app/server.key"),
    ({"IG-NO-TEST-OR-CACHE"}, files(f("/srv/app/tests_unit", "dir", 0o755),
                                    f("/srv/app/tests_unit/test_x.py")),
     "found 1: /srv/app/tests_unit"),
    ({"IG-NO-TEST-OR-CACHE"}, files(f("/srv/app/tests", "dir", 0o755)), "/srv/app/tests"),
    ({"IG-NO-TEST-OR-CACHE"}, files(f("/srv/app/.pytest_cache", "dir", 0o755)),
     "/srv/app/.pytest_cache"),
    ({"IG-NO-TEST-OR-CACHE"}, files(f("/root/.cache/pip/http/a/b")), "/root/.cache/pip/http/a/b"),
    ({"IG-NO-TEST-OR-CACHE"}, files(f("/var/cache/apt/archives/curl_7.88_amd64.deb")),
     "/var/cache/apt/archives/curl_7.88_amd64.deb"),
    ({"IG-NO-TEST-OR-CACHE"}, files(f("/var/lib/apt/lists/deb.debian.org_debian_Packages")),
     "/var/lib/apt/lists/deb.debian.org_debian_Packages"),
    ({"IG-NO-SECRET-ENV"}, config(Env=["DB_PASSWORD=hunter2"]),
     "Config.Env DB_PASSWORD looks secret and has a literal value"),
    ({"IG-NO-SECRET-ENV"}, config(Env=["AWS=AKIAIOSFODNN7EXAMPLE"]),
     "Config.Env AWS holds an AWS access key id"),
    ({"IG-NO-SECRET-ENV"}, history("/bin/sh -c #(nop)  ARG API_TOKEN=abc"),
     "history[0] API_TOKEN looks secret"),
    ({"IG-NO-SECRET-ENV"}, history("|2 API_TOKEN=abc APP_UID=10001 /bin/sh -c set -eux; true"),
     "history[0] API_TOKEN looks secret"),
    ({"IG-APP-NOT-WRITABLE"}, files(f("/srv/app/app/state.db", uid=10001, mode=0o444)),
     "/srv/app/app/state.db (10001:0 444)"),
    ({"IG-APP-NOT-WRITABLE"}, files(f("/srv/app/app", "dir", 0o775, gid=10001)),
     "/srv/app/app (0:10001 775)"),
    ({"IG-APP-NOT-WRITABLE"}, files(f("/srv/app/app/wsgi.py", mode=0o666)),
     "/srv/app/app/wsgi.py (0:0 666)"),
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


@pytest.mark.parametrize(("ids", "mutate", "reason"), BAD,
                         ids=[f"{sorted(b[0])[0]}:{b[2][:40]}" for b in BAD])
def test_bad_image_fails_its_check(ids: set[str], mutate: Callable[[ImageFacts], ImageFacts],
                                   reason: str) -> None:
    """Each bad image fails exactly the expected ids, saying why on one line."""
    found = failed(run_checks(mutate(good()), SETTINGS))
    assert set(found) == ids, [str(x) for x in found.values()]
    messages = [x.message for x in found.values()]
    assert any(reason in m for m in messages), messages
    assert all("\n" not in m for m in messages)


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
    settings = Settings(ignore=("IG-HEALTHCHECK",))
    found = run_checks(config(Healthcheck=None)(good()), settings)
    assert "IG-HEALTHCHECK" not in {x.check_id for x in found}
    assert failed(found) == {}


def test_every_check_has_a_description() -> None:
    """The registry names 13 checks, each described by its docstring's first line."""
    assert len(CHECKS) == 13
    for check_id in CHECKS:
        assert check_id.startswith("IG-") and describe(check_id)


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


def test_a_save_without_manifest_is_a_clear_error(tmp_path: Path) -> None:
    """A tar that is not a docker save names what it lacks."""
    bogus = tmp_path / "bogus.tar"
    with tarfile.open(bogus, "w"):
        pass
    with pytest.raises(ValueError, match=r"manifest\.json"):
        read_saved(bogus)
