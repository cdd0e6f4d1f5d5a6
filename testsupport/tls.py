"""Certificates for the tests' own TLS servers (a registry, a second engine), made by the openssl
CLI: a throwaway CA (P-256, two days) and the certificates it signs."""

from __future__ import annotations

import subprocess
from pathlib import Path

EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]


def openssl(where: Path, *args: str) -> None:
    """One openssl command run in ``where``."""
    subprocess.run(["openssl", *args], cwd=where, check=True, capture_output=True, timeout=60)


def make_ca(where: Path, cn: str, cert: str, key: str) -> None:
    """A self-signed CA ``cn``: certificate ``cert`` and key ``key`` in ``where``."""
    openssl(where, "req", "-x509", *EC, "-keyout", key, "-out", cert, "-days", "2",
            "-subj", f"/CN={cn}", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")


def issue(where: Path, name: str, subject: str, extensions: str, *, ca: tuple[str, str],
          cert: str, key: str) -> None:
    """A certificate for ``subject`` signed by ``ca`` (its certificate and key files), not a CA,
    with ``extensions`` (openssl extfile lines): ``cert`` and ``key`` in ``where``."""
    openssl(where, "req", *EC, "-keyout", key, "-out", f"{name}.csr", "-subj", subject)
    (where / f"{name}.ext").write_text(f"basicConstraints=CA:FALSE\n{extensions}")
    openssl(where, "x509", "-req", "-in", f"{name}.csr", "-CA", ca[0], "-CAkey", ca[1],
            "-CAcreateserial", "-out", cert, "-days", "2", "-extfile", f"{name}.ext")
