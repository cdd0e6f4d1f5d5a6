"""Push the tested image the way users' registries want it: logged in, retried, proved.

Credentials come from ``IMAGEGATE_REGISTRY_USER`` + ``IMAGEGATE_REGISTRY_PASSWORD`` when both are
set (CI secrets), else from wherever ``docker push`` would take them: the SDK reads the docker
config (``docker login``'s ``~/.docker/config.json`` or ``$DOCKER_CONFIG``) and runs its
``credsStore`` / ``credHelpers``. They go to the engine in the ``X-Registry-Auth`` header only:
never in argv, a log line, an exception or a report; any error text is scrubbed of the password
before it leaves this module.

A push is idempotent (layers the registry has are skipped), so a transient failure — connection
refused or reset, a 5xx — retries the whole push, a bounded number of times with backoff. The
digest the registry returned is then pulled back by digest and must be the tested image.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import docker.errors
import requests
import urllib3

from imagegate.errors import PushFailed, UsageError

ENV_USER = "IMAGEGATE_REGISTRY_USER"
ENV_PASSWORD = "IMAGEGATE_REGISTRY_PASSWORD"
#: Engine error texts of a registry that refused the credentials (distribution, Docker Hub,
#: the engine's own "no basic auth credentials" when it had none to send).
AUTH_FAILED = re.compile(r"unauthorized|authentication required|no basic auth credentials|"
                         r"incorrect username or password", re.I)
DENIED = re.compile(r"\bdenied\b", re.I)
#: Failures worth another try: the registry not (yet) answering, or answering 5xx.
TRANSIENT = re.compile(r"connection refused|connection reset|broken pipe|\bEOF\b|i/o timeout|"
                       r"TLS handshake timeout|timeout awaiting response|"
                       r"\b5\d\d (?:Internal Server Error|Bad Gateway|Service Unavailable|"
                       r"Gateway Timeout)|status(?: code)?:? 5\d\d", re.I)

#: How the SDK reports the engine's progress stream ending early: a read timeout (nothing said
#: for the client's timeout, e.g. a registry that stopped answering mid-upload) or a hang-up.
STREAM_BROKE = (requests.exceptions.RequestException, urllib3.exceptions.HTTPError)


class RegistryAuthFailed(PushFailed):
    """The registry refused the credentials (or had none): a setup problem, exit code 2."""

    exit_code = 2


class RegistryUnavailable(PushFailed):
    """The registry did not answer, or kept failing, through every retry: exit code 2."""

    exit_code = 2


class _Transient(Exception):
    """One attempt failed in a way another attempt may not."""


@dataclass(frozen=True)
class Pushed:
    """Where the image went: ``ref`` (registry/repo:tag) and the registry's manifest digest."""

    ref: str
    digest: str

    @property
    def pinned(self) -> str:
        """``ref@digest``: what a deployment should name."""
        return f"{self.ref}@{self.digest}"


@dataclass(frozen=True)
class Credentials:
    """A user name and password for one registry (the password never shows in a repr)."""

    username: str
    password: str = field(repr=False)

    def auth_config(self, registry: str) -> dict[str, str]:
        """The SDK's ``auth_config`` (sent to the engine as ``X-Registry-Auth``)."""
        return {"username": self.username, "password": self.password, "serveraddress": registry}


def credentials(environ: Mapping[str, str] | None = None) -> Credentials | None:
    """Credentials from ``IMAGEGATE_REGISTRY_USER`` + ``IMAGEGATE_REGISTRY_PASSWORD``, or None
    (then the SDK takes the docker config's). Only one of the two set is a usage error."""
    env = os.environ if environ is None else environ
    user, password = env.get(ENV_USER, ""), env.get(ENV_PASSWORD, "")
    if bool(user) != bool(password):
        missing = ENV_PASSWORD if user else ENV_USER
        raise UsageError(f"{ENV_USER} and {ENV_PASSWORD} go together: {missing} is not set")
    return Credentials(user, password) if user else None


def parse_ref(ref: str) -> tuple[str, str, str]:
    """``REGISTRY/REPO[:TAG]`` as (registry host, repository with host, tag); a UsageError when
    the first part names no registry host (a dot, a port, or ``localhost``) or a digest is given."""
    host = ref.split("/", 1)[0]
    if ("/" not in ref or "@" in ref
            or (not any(c in host for c in ".:") and host != "localhost")):
        raise UsageError(f"--push {ref}: expected REGISTRY/REPO:TAG, e.g. 127.0.0.1:5000/app:1.0")
    repo, _, tag = ref.rpartition(":")
    if not repo or "/" in tag:  # the only colon was the registry's port
        repo, tag = ref, "latest"
    return host, repo, tag


def push(cli: Any, image_id: str, ref: str, *, log: Callable[[str], None], retries: int = 3,
         backoff: float = 2.0, environ: Mapping[str, str] | None = None) -> Pushed:
    """Tag ``image_id`` as ``ref``, push it, pull the digest back and check it is the image.

    A transient failure retries the whole push up to ``retries`` attempts in all, waiting
    ``backoff`` seconds, then twice that, … between them. Raises :class:`RegistryAuthFailed`
    ("authentication failed for HOST"), :class:`RegistryUnavailable` (naming the registry) or
    :class:`PushFailed`.
    """
    host, repo, tag = parse_ref(ref)
    creds = credentials(environ)
    secret = creds.password if creds else ""
    auth = creds.auth_config(host) if creds else None
    source = (f"{ENV_USER}/{ENV_PASSWORD}" if creds
              else "the docker config (docker login, credential helpers)")
    try:
        cli.images.get(image_id).tag(repo, tag)
    except docker.errors.APIError as exc:
        why = _scrub(_text(exc), secret)
        raise PushFailed(f"push {ref}: cannot tag the image: {why}") from None
    log(f"push {repo}:{tag} (credentials: {source})")
    last = ""
    for attempt in range(1, retries + 1):
        try:
            digest = _push_once(cli, repo, tag, auth, host, secret, log)
            _pull_back(cli, repo, digest, image_id, auth, host, secret)
            return Pushed(f"{repo}:{tag}", digest)
        except _Transient as exc:
            last = str(exc)
        if attempt < retries:
            delay = backoff * 2 ** (attempt - 1)
            log(f"push attempt {attempt}/{retries} failed ({last}); retrying in {delay:g}s")
            time.sleep(delay)  # bounded: ``retries`` attempts in all
    raise RegistryUnavailable(f"registry {host} unavailable after {retries} attempts: {last}",
                              detail=f"pushing {repo}:{tag}; credentials from {source}")


def _push_once(cli: Any, repo: str, tag: str, auth: dict[str, str] | None, host: str,
               secret: str, log: Callable[[str], None]) -> str:
    """One ``docker push``; the registry's digest, or the classified failure. The engine's own
    retries of a layer upload (a 5xx on one blob) are logged as they happen."""
    digest = ""
    try:
        for chunk in cli.api.push(repo, tag=tag, stream=True, decode=True, auth_config=auth):
            error = chunk.get("error") or (chunk.get("errorDetail") or {}).get("message")
            if error:
                raise _classify(str(error), f"push {repo}:{tag}", host, secret)
            status = str(chunk.get("status") or "")
            if status.startswith("Retrying"):
                log(f"layer {chunk.get('id', '?')}: the engine is retrying its upload "
                    f"({_scrub(status, secret)})")
            digest = (chunk.get("aux") or {}).get("Digest", digest)
    except docker.errors.APIError as exc:
        raise _classify(_text(exc), f"push {repo}:{tag}", host, secret) from None
    except STREAM_BROKE as exc:  # the engine said nothing for the client's timeout, or hung up
        raise _Transient(_scrub(f"the engine's push stream broke off: {exc}", secret)) from None
    if not digest:
        raise PushFailed(f"push {repo}:{tag}: the registry returned no digest")
    return str(digest)


def _pull_back(cli: Any, repo: str, digest: str, image_id: str, auth: dict[str, str] | None,
               host: str, secret: str) -> None:
    """Pull ``repo@digest`` from the registry and check it is the image that was pushed."""
    try:
        for chunk in cli.api.pull(repo, tag=digest, stream=True, decode=True, auth_config=auth):
            error = chunk.get("error") or (chunk.get("errorDetail") or {}).get("message")
            if error:
                raise _classify(str(error), f"pull {repo}@{digest}", host, secret)
        pulled = cli.images.get(f"{repo}@{digest}").id
    except docker.errors.APIError as exc:
        raise _classify(_text(exc), f"pull {repo}@{digest}", host, secret) from None
    except STREAM_BROKE as exc:
        raise _Transient(_scrub(f"the engine's pull stream broke off: {exc}", secret)) from None
    if pulled != image_id:
        raise PushFailed(f"{repo}@{digest} pulled back as {pulled[7:19]}, not the pushed image "
                         f"{image_id[7:19]}")


def _classify(text: str, doing: str, host: str, secret: str) -> Exception:
    """The exception an engine error text stands for (never carrying the password)."""
    text = _scrub(text, secret)
    if AUTH_FAILED.search(text):
        return RegistryAuthFailed(f"authentication failed for {host}", detail=f"{doing}: {text}")
    if DENIED.search(text):
        return RegistryAuthFailed(f"access denied for {host}: the credentials may not {doing}",
                                  detail=text)
    if TRANSIENT.search(text):
        return _Transient(text)
    return PushFailed(f"{doing}: {text}")


def _text(exc: Any) -> str:
    """An SDK APIError's explanation (the engine's message), else its string."""
    return str(getattr(exc, "explanation", "") or exc)


def _scrub(text: str, secret: str) -> str:
    """``text`` with the password replaced, should an error ever echo it."""
    return text.replace(secret, "***") if secret else text
