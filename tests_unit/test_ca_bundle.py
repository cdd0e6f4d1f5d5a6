"""The bases' CA bundle and IG-CA-BUNDLE, without Docker: a fake ca-certificates .deb in a temporary
.deb cache, certificates made by the openssl CLI, synthetic image facts."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from imagegate.build import base
from imagegate.config import settings
from imagegate.errors import UsageError
from imagegate.facts.layers import FileInfo
from imagegate.facts.policy import CHECKS, ImageFacts
from imagegate.results.findings import Finding

VERSION = "20990101~test1"


def make_cert(where: Path, name: str, subject: str) -> Path:
    """A self-signed CA certificate (EC P-256) at ``where/name.pem`` made by the openssl CLI."""
    cert = where / f"{name}.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(where / f"{name}.key"),
                    "-out", str(cert), "-days", "2", "-subj", subject, "-utf8"],
                   check=True, capture_output=True, timeout=30)
    return cert


@pytest.fixture
def certs(tmp_path: Path) -> dict[str, Path]:
    """Four CA certificates: two "Debian" ones, a host-only (proxy) one, a declared extra."""
    where = tmp_path / "certs"
    where.mkdir()
    return {name: make_cert(where, name, subject) for name, subject in [
        ("zeta", "/C=DE/O=Zeta Trust/CN=Zeta Root"), ("alpha", "/O=Alpha/CN=Alpha Root CA"),
        ("proxy", "/CN=Intercepting Proxy CA"), ("company", "/O=Société/CN=Company CA"),
    ]}


@pytest.fixture
def fake_deb(tmp_path: Path, certs: dict[str, Path],
             monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A ca-certificates_VERSION_all.deb holding mozilla/Zeta_Root.crt (no final newline) and
    mozilla/Alpha_Root.crt, in a temporary .deb cache the code is pointed at."""
    root = tmp_path / "deb"
    mozilla = root / base.CA_DIR
    mozilla.mkdir(parents=True)
    (mozilla / "Zeta_Root.crt").write_bytes(certs["zeta"].read_bytes().rstrip(b"\n"))
    (mozilla / "Alpha_Root.crt").write_bytes(certs["alpha"].read_bytes())
    (root / "DEBIAN").mkdir()
    (root / "DEBIAN/control").write_text(
        f"Package: ca-certificates\nVersion: {VERSION}\nArchitecture: all\n"
        "Maintainer: test <test@example.invalid>\nDescription: test CA set\n")
    cache = tmp_path / "debs"
    cache.mkdir()
    deb = cache / f"ca-certificates_{VERSION}_all.deb"
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(root), str(deb)],
                   check=True, capture_output=True, timeout=60)
    monkeypatch.setattr(base, "DEB_CACHE", cache)
    base._deb_ca_files.cache_clear()
    yield deb
    base._deb_ca_files.cache_clear()


def test_debian_set_concatenated_as_update_ca_certificates(fake_deb: Path,
                                                           certs: dict[str, Path]) -> None:
    """The .deb's certificates sorted by file name (C locale), each ending in a newline."""
    debian = base.debian_ca_certs(VERSION, log=lambda _: None)
    assert [name for name, _ in debian] == ["mozilla/Alpha_Root.crt", "mozilla/Zeta_Root.crt"]
    bundle = base.Trust(VERSION).bundle(debian)
    assert bundle == certs["alpha"].read_bytes() + certs["zeta"].read_bytes().rstrip(b"\n") + b"\n"


def test_declared_extra_joins_the_bundle_as_certificates_only(
        fake_deb: Path, certs: dict[str, Path], tmp_path: Path) -> None:
    """An extra file with a certificate and its private key: only the certificate gets in."""
    company = tmp_path / "company.pem"
    company.write_bytes(b"# our proxy\n" + certs["company"].read_bytes()
                        + (tmp_path / "certs/company.key").read_bytes())
    extras = base.load_extra_ca([company])
    bundle = base.Trust(VERSION, extras).bundle(base.debian_ca_certs(VERSION, log=print))
    found = {base.fingerprint(der) for der in base.pem_certs(bundle)}
    assert base.fingerprint(base.pem_certs(certs["company"].read_bytes())[0]) in found
    assert len(found) == 3
    assert b"PRIVATE KEY" not in bundle and b"our proxy" not in bundle
    proxy = base.fingerprint(base.pem_certs(certs["proxy"].read_bytes())[0])
    assert proxy not in found


@pytest.mark.parametrize(("content", "says"), [
    (None, "cannot read it (No such file or directory)"),
    (b"just text\n", "no PEM certificate in it"),
    (b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
     "not a PEM certificate"),
], ids=["missing", "no-pem", "not-a-certificate"])
def test_bad_extra_is_one_line_naming_the_file(tmp_path: Path, content: bytes | None,
                                               says: str) -> None:
    """A missing or unparsable extra_ca_certs file: one-line UsageError (exit 2) naming it."""
    path = tmp_path / "certs" / "company.pem"
    if content is not None:
        path.parent.mkdir()
        path.write_bytes(content)
    with pytest.raises(UsageError) as raised:
        base.load_extra_ca([path])
    assert str(path) in raised.value.message and says in raised.value.message
    assert "\n" not in raised.value.message and raised.value.exit_code == 2


def test_digest_covers_the_bundle_inputs(certs: dict[str, Path]) -> None:
    """The base's digest changes with the Debian version and with each extra's certificate,
    not with the extra file's name (so a second run with the same inputs is a no-op)."""
    recipe = base.Recipe("python", "imagegate/python", ("busybox",), (), lambda *_: None)
    packages = {"busybox": "1:1.35.0-4"}
    company = base.load_extra_ca([certs["company"]])
    proxy = base.load_extra_ca([certs["proxy"]])
    renamed = (base.ExtraCa("elsewhere.pem", company[0].certs),)

    def digest(trust: base.Trust) -> str:
        return base.package_digest(recipe, packages, trust.key())

    plain = digest(base.Trust(VERSION))
    assert plain == digest(base.Trust(VERSION))
    assert plain != digest(base.Trust("20990102"))
    assert plain != digest(base.Trust(VERSION, company)) != digest(base.Trust(VERSION, proxy))
    assert digest(base.Trust(VERSION, company)) == digest(base.Trust(VERSION, renamed))


def test_subject_reads_like_openssl(certs: dict[str, Path]) -> None:
    """The minimal DER reader names the subject as openssl does (UTF-8 included)."""
    der = base.pem_certs(certs["company"].read_bytes())[0]
    assert base.cert_subject(der) == "O=Société, CN=Company CA"
    shown = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in",
                            str(certs["company"])], capture_output=True, text=True, timeout=30,
                           check=True).stdout
    assert base.fingerprint(der) == "sha256:" + shown.split("=", 1)[1].strip().replace(
        ":", "").lower()
    with pytest.raises(ValueError):
        base.cert_subject(b"\x30\x03\x02\x01\x01")


# -- IG-CA-BUNDLE on synthetic facts ------------------------------------------------------------

Facts = Callable[..., ImageFacts]


@pytest.fixture
def facts(fake_deb: Path) -> Facts:
    """``facts(bundle, labels=…)``: an image whose CA bundle is ``bundle``, on an imagegate
    base (made with the fake Debian set) unless ``labels`` says otherwise."""
    def make(bundle: bytes | None, labels: dict[str, str] | None = None) -> ImageFacts:
        if labels is None:
            labels = {base.KIND_LABEL: "python", base.CA_LABEL: VERSION}
        files = [] if bundle is None else [FileInfo("/etc/ssl/certs/ca-certificates.crt", "file",
                                                    0o644, size=len(bundle), content=bundle)]
        return ImageFacts.from_parts({"Config": {"Labels": labels}}, [], files)
    return make


def debian_bundle() -> bytes:
    """What the base writes from the fake .deb, no extras."""
    return base.Trust(VERSION).bundle(base.debian_ca_certs(VERSION, log=print))


def check(facts: ImageFacts, tmp_path: Path, extra: tuple[str, ...] = ()) -> Finding:
    """IG-CA-BUNDLE with the project at ``tmp_path`` declaring ``extra``."""
    s = settings.load(tmp_path, {"extra_ca_certs": extra} if extra else {}, environ={})
    found = CHECKS["IG-CA-BUNDLE"](facts, s)
    assert isinstance(found, Finding)
    return found


def test_debian_set_passes(facts: Facts, tmp_path: Path) -> None:
    """Exactly Debian's set: passes, saying so."""
    finding = check(facts(debian_bundle()), tmp_path)
    assert finding.ok and not finding.skipped, finding
    assert f"2 CAs: Debian's ca-certificates {VERSION} set, nothing else" in str(finding)


@pytest.mark.shows_failing("IG-CA-BUNDLE")
def test_stray_certificate_fails_naming_subject_and_fingerprint(
        facts: Facts, certs: dict[str, Path], tmp_path: Path) -> None:
    """A CA that is neither Debian's nor declared (the host's proxy CA, appended by a build
    step): failed, naming its subject and SHA-256 fingerprint."""
    proxy = certs["proxy"].read_bytes()
    finding = check(facts(debian_bundle() + proxy), tmp_path)
    fp = base.fingerprint(base.pem_certs(proxy)[0])
    assert not finding.ok
    assert finding.message == (
        f"expected only Debian's ca-certificates {VERSION} set plus extra_ca_certs, found 1 "
        f'other CA(s): "CN=Intercepting Proxy CA" {fp}')
    assert finding.where == "/etc/ssl/certs/ca-certificates.crt"


def test_declared_extra_passes(facts: Facts, certs: dict[str, Path], tmp_path: Path) -> None:
    """The same kind of CA, declared in extra_ca_certs (project-relative): passes."""
    (tmp_path / "company.pem").write_bytes(certs["company"].read_bytes())
    bundle = debian_bundle() + certs["company"].read_bytes()
    finding = check(facts(bundle), tmp_path, ("company.pem",))
    assert finding.ok, finding
    assert "plus 1 declared extra" in str(finding)
    assert not check(facts(bundle), tmp_path).ok


def test_stock_image_does_not_apply(facts: Facts, certs: dict[str, Path],
                                    tmp_path: Path) -> None:
    """Not on an imagegate base (python:3.11-slim, a company base with its own CA): a skip,
    never a failure, whatever its bundle holds."""
    finding = check(facts(debian_bundle() + certs["proxy"].read_bytes(), labels={}), tmp_path)
    assert finding.ok and "not built on an imagegate base" in finding.skipped


def test_base_made_before_the_ca_label_fails(facts: Facts, tmp_path: Path) -> None:
    """A base made by an older imagegate copied the host's bundle: failed, saying to rebuild."""
    finding = check(facts(debian_bundle(), labels={base.KIND_LABEL: "python"}), tmp_path)
    assert not finding.ok and "imagegate base --force" in finding.message
