# imagegate app image: multi-stage, built by the classic builder with `--network none`
# (no BuildKit-only syntax). Both stages use one base so the venv's interpreter path and ABI match.
#   PYTHON_IMAGE  the base; `imagegate base` makes imagegate/python:3.11-bookworm from Debian
#                 packages. With a registry, `--build-arg PYTHON_IMAGE=python:3.12-slim` works too.
#   .wheels/      the hash-checked wheelhouse for that base (`imagegate build` fills it).
ARG PYTHON_IMAGE=imagegate/python:3.11-bookworm

FROM ${PYTHON_IMAGE} AS builder
ARG APP_UID=10001
WORKDIR /build
# The app user, fixed UID/GID, added to the base's own passwd/group (copied to the final stage).
RUN set -eux; \
    grep -q '^app:' /etc/group || echo "app:x:${APP_UID}:" >> /etc/group; \
    grep -q '^app:' /etc/passwd || echo "app:x:${APP_UID}:${APP_UID}:app:/nonexistent:/sbin/nologin" >> /etc/passwd
# Dependencies first: this layer is reused until the lock or the wheelhouse changes.
COPY requirements.lock requirements-bootstrap.lock ./
COPY .wheels/ /wheels/
RUN set -eux; \
    python3 -m venv --without-pip /opt/venv; \
    set -- /wheels/pip-*.whl; \
    /opt/venv/bin/python "$1/pip" install --no-index --find-links /wheels --require-hashes \
        --only-binary=:all: --no-cache-dir --disable-pip-version-check -r requirements.lock; \
    /opt/venv/bin/python "$1/pip" check; \
    /opt/venv/bin/python -m compileall -q /opt/venv; \
    chmod -R u=rwX,go=rX /opt/venv
# Then the code: a change under app/ rebuilds only from here.
COPY app/ /srv/app/app/
RUN set -eux; \
    find /srv/app -name '__pycache__' -prune -exec rm -rf {} +; \
    /opt/venv/bin/python -m compileall -q /srv/app; \
    chmod -R u=rwX,go=rX /srv/app; \
    PYTHONPATH=/srv/app /opt/venv/bin/python -c 'import app, app.config, gunicorn, flask, redis'

FROM ${PYTHON_IMAGE}
COPY --from=builder /etc/passwd /etc/group /etc/
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /srv/app /srv/app
ENV PATH=/opt/venv/bin:/usr/local/bin:/usr/bin:/bin \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    APP_ENV=production \
    PORT=8000
WORKDIR /srv/app
USER 10001:10001
EXPOSE 8000
# One HTTP/1.0 GET of /healthz with the socket module only (-I -S: no site-packages), expecting
# 200: several times less CPU per probe than urllib.request (see compose.yml for the numbers).
# A failure is one line in the health log ("unhealthy: …"), not a traceback.
HEALTHCHECK --interval=3s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python3", "-I", "-S", "-c", "import os, socket, sys; sys.excepthook = lambda t, e, tb: print('unhealthy:', e, file=sys.stderr); s = socket.create_connection(('127.0.0.1', int(os.environ.get('PORT', '8000'))), 2); s.sendall(b'GET /healthz HTTP/1.0\\r\\n\\r\\n'); status = s.makefile('rb').readline().split()[1:2]; raise SystemExit(None if status == [b'200'] else f'unhealthy: /healthz answered {status}')"]
CMD ["gunicorn", "--config", "/srv/app/app/gunicorn.conf.py", "app.wsgi:app"]
# Last, so a new commit changes only this metadata layer.
ARG VERSION=dev
ARG VCS_REF=unknown
ARG CREATED=unknown
ARG SOURCE=https://github.com/imagegate/imagegate
LABEL org.opencontainers.image.title="imagegate-app" \
      org.opencontainers.image.description="Flask service gated by imagegate" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${VCS_REF}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="MIT"
