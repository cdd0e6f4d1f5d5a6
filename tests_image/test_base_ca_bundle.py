"""The CAs imagegate's bases trust, for real: Debian's ca-certificates set from the .deb plus the
declared extras, never the build host's bundle (which here holds a TLS-intercepting proxy's CA).

The base tests make a tiny base (busybox on Debian's packages, a throwaway repo name) with
``base.ensure_base`` — the same code that makes imagegate/python — and remove it afterwards; the
last test reads this repo's own image, built FROM imagegate/python.
"""

from __future__ import annotations

import contextlib
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from imagegate.build import base
from imagegate.config import settings
from imagegate.facts.policy import CHECKS, ImageFacts
from imagegate.results.findings import Finding
from testsupport import ci

HOST_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
Made = Callable[..., base.BaseResult]


def fingerprints(pem: bytes) -> list[str]:
    """The SHA-256 fingerprints of the certificates in ``pem``, in order."""
    return [base.fingerprint(der) for der in base.pem_certs(pem)]


def debian_set() -> tuple[str, set[str]]:
    """(apt's candidate ca-certificates version, the fingerprints of its set)."""
    version = base.ca_version()
    return version, {fp for _, pem in base.debian_ca_certs(version, log=lambda _: None)
                     for fp in fingerprints(pem)}


def host_only() -> dict[str, str]:
    """{fingerprint: subject} of the host bundle's CAs that are not in Debian's set (the proxy's
    CA on these machines; possibly none elsewhere)."""
    if not HOST_BUNDLE.is_file():
        ci.missing("host-ca-bundle", f"no host CA bundle at {HOST_BUNDLE}: no host-only CA to "
                                     "keep out of the image")
    _, debian = debian_set()
    found = {base.fingerprint(der): base.cert_subject(der)
             for der in base.pem_certs(HOST_BUNDLE.read_bytes())
             if base.fingerprint(der) not in debian}
    if not found:
        ci.missing("host-ca-bundle", f"{HOST_BUNDLE} holds only Debian's CAs: no host-only CA "
                                     "to keep out of the image")
    return found


def bundle_of(docker_client: Any, image: str) -> bytes:
    """The CA bundle in ``image``'s final filesystem (read from its saved layers)."""
    info = ImageFacts.load(docker_client, image).files[BUNDLE]
    assert info.content is not None
    return info.content


def ca_check(facts: ImageFacts, project: Path, extra: tuple[str, ...] = ()) -> Finding:
    """IG-CA-BUNDLE for a project at ``project`` declaring ``extra``."""
    s = settings.load(project, {"extra_ca_certs": extra} if extra else {}, environ={})
    found = CHECKS["IG-CA-BUNDLE"](facts, s)
    assert isinstance(found, Finding)
    return found


@pytest.fixture
def make_base(docker_client: Any) -> Iterator[Made]:
    """``make_base(extra_ca=…)``: ensure a tiny base (busybox and its libraries) under a
    throwaway name, as imagegate/python is made; every image it made is removed after."""
    recipe = base.Recipe("catest", "imagegate-test/ca-bundle", ("busybox",), ("ENV PATH=/bin",),
                         lambda rootfs, recipe: None, tag=uuid.uuid4().hex[:12])
    made: list[str] = []

    def make(**kwargs: Any) -> base.BaseResult:
        result = base.ensure_base(recipe, log=lambda _: None, **kwargs)
        made.append(result.image_id)
        return result

    yield make
    for image_id in reversed(made):
        with contextlib.suppress(Exception):  # an up-to-date run returned an id already removed
            docker_client.images.remove(image_id, force=True, noprune=True)


@pytest.mark.slow
def test_base_trusts_debian_set_not_the_hosts(make_base: Made, docker_client: Any,
                                             tmp_path: Path) -> None:
    """The bundle is byte for byte what update-ca-certificates makes of the .deb's set; none of
    the host's own CAs is in it; a second run with the same inputs is a no-op."""
    first = make_base()
    bundle = bundle_of(docker_client, first.image_id)
    version, debian = debian_set()
    labels = docker_client.images.get(first.image_id).labels
    assert labels[base.CA_LABEL] == version
    assert set(fingerprints(bundle)) == debian
    assert bundle == reference_bundle(version, tmp_path)
    leaked = {fp: subject for fp, subject in host_only().items() if fp in fingerprints(bundle)}
    assert leaked == {}, f"host CAs in the base: {leaked}"
    assert ca_check(ImageFacts.load(docker_client, first.image_id), tmp_path).ok
    again = make_base()
    assert (again.built, again.image_id, again.digest) == (False, first.image_id, first.digest)


@pytest.mark.slow
def test_declared_extra_reaches_the_base(make_base: Made, docker_client: Any,
                                         tmp_path: Path) -> None:
    """extra_ca_certs adds its certificate (and only that: not the key beside it); the digest
    changes, so the base is remade; IG-CA-BUNDLE passes with it declared, fails naming it not."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(tmp_path / "company.key"),
                    "-out", str(tmp_path / "company.pem"), "-days", "2", "-subj",
                    "/O=Example Corp/CN=Example Corp Proxy CA"],
                   check=True, capture_output=True, timeout=30)
    extra = tmp_path / "company.pem"
    plain = make_base()
    with_extra = make_base(extra_ca=[extra])
    assert with_extra.built and with_extra.digest != plain.digest
    bundle = bundle_of(docker_client, with_extra.image_id)
    (company,) = fingerprints(extra.read_bytes())
    _, debian = debian_set()
    assert set(fingerprints(bundle)) == debian | {company}
    assert b"PRIVATE KEY" not in bundle
    facts = ImageFacts.load(docker_client, with_extra.image_id)
    assert ca_check(facts, tmp_path, ("company.pem",)).ok
    undeclared = ca_check(facts, tmp_path)
    assert not undeclared.ok
    assert f'"O=Example Corp, CN=Example Corp Proxy CA" {company}' in undeclared.message
    assert not make_base(extra_ca=[extra]).built


def test_app_image_trusts_only_debian_set(image_facts: Any, imagegate_settings: Any) -> None:
    """This repo's image (FROM imagegate/python) passes IG-CA-BUNDLE for real — it applies, it
    is not skipped — and holds none of the host's own CAs."""
    finding = CHECKS["IG-CA-BUNDLE"](image_facts, imagegate_settings)
    assert isinstance(finding, Finding)
    assert finding.ok and not finding.skipped, str(finding)
    found = set(fingerprints(image_facts.files[BUNDLE].content or b""))
    assert not found & set(host_only()), "a host-only CA reached the app image"


def reference_bundle(version: str, tmp_path: Path) -> bytes:
    """What Debian's own update-ca-certificates writes for the .deb of ``version``, run in a
    scratch directory (its config generated as the package's postinst does: every .crt, sorted)."""
    if subprocess.run(["sh", "-c", "command -v update-ca-certificates"],
                      capture_output=True, timeout=10).returncode != 0:
        ci.missing("update-ca-certificates", "update-ca-certificates is not installed on this host")
    deb = base.download({base.CA_PACKAGE: version}, log=lambda _: None)[base.CA_PACKAGE]
    root, etc, local = tmp_path / "root", tmp_path / "etc", tmp_path / "local"
    for folder in (etc, local):
        folder.mkdir()
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True, timeout=120)
    share = root / "usr/share/ca-certificates"
    names = sorted((str(p.relative_to(share)) for p in share.rglob("*.crt")), key=str.encode)
    (tmp_path / "ca-certificates.conf").write_text("\n".join(names) + "\n")
    subprocess.run(["update-ca-certificates", "--hooksdir", str(tmp_path / "no-hooks"),
                    "--certsconf", str(tmp_path / "ca-certificates.conf"), "--certsdir",
                    str(share), "--localcertsdir", str(local), "--etccertsdir", str(etc)],
                   check=True, capture_output=True, timeout=120)
    return (etc / "ca-certificates.crt").read_bytes()
