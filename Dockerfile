# The worker image: `arq src.worker.Settings` (compose.yaml also runs `alembic upgrade head` with it).
# Runtime dependencies only, at the versions of requirements.lock; runs as an unprivileged user.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /build
COPY requirements.lock pyproject.toml README.md ./
COPY src ./src
# requirements.lock pins every package (dev tools included); as constraints it fixes the versions of the
# runtime dependencies without installing the dev tools.
RUN pip install --constraint requirements.lock .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --user-group --home-dir /app --shell /usr/sbin/nologin cerniq
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --chown=root:root alembic.ini ./
COPY --chown=root:root alembic ./alembic
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER cerniq
# SIGTERM drains the queue workers (SHUTDOWN_GRACE_S) and exits 0.
STOPSIGNAL SIGTERM
CMD ["arq", "src.worker.Settings"]
