# The front-end stub's WebSocket client (graphql-ws's browser build), as package-lock.json pins it.
FROM node:20-slim AS stub
WORKDIR /stub
COPY frontend-stub/package.json frontend-stub/package-lock.json frontend-stub/.npmrc ./
RUN npm ci --no-audit --no-fund --loglevel=error

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/srv/polly/.venv \
    PATH=/srv/polly/.venv/bin:$PATH \
    POLLY_FRONTEND_DIR=/srv/polly/frontend-stub \
    POLLY_DATA_DIR=/var/lib/polly \
    POLLY_BOT_METRICS_HOST=0.0.0.0

WORKDIR /srv/polly
# uv at the version and hashes scripts/uv-requirements.txt pins; it installs exactly uv.lock
# (--locked: the build stops if pyproject.toml and the lock disagree), never a fresh resolution.
COPY scripts/uv-requirements.txt /tmp/uv-requirements.txt
RUN pip install --no-deps --require-hashes -r /tmp/uv-requirements.txt
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --locked --no-install-project
COPY app ./app
RUN uv sync --locked --no-editable && useradd --system --uid 10001 polly \
    && mkdir -p /var/lib/polly && chown polly:polly /var/lib/polly
COPY frontend-stub ./frontend-stub
COPY --from=stub /stub/node_modules ./frontend-stub/node_modules

USER polly
# The SQLite database (when POLLY_DATABASE_URL is not set) lives here: a volume, so that it
# outlives the container. Declared after the chown above: changes to a volume's path made after
# VOLUME would be discarded.
VOLUME /var/lib/polly
# 8000: polly api (and polly demo's API); 8787: polly demo's Discord sandbox; 9101: polly bot's
# /metrics (POLLY_BOT_METRICS_PORT), which listens on every interface here (POLLY_BOT_METRICS_HOST
# above) so that Prometheus in another container can scrape it.
EXPOSE 8000 8787 9101
# /healthz answers while the process serves (polly api, polly demo); the slim image has no curl.
# A container running polly bot or a one-off command sets its own check, or none (compose.yaml).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
# The API, as deploy/compose.yaml runs it beside polly bot, Redis and PostgreSQL (POLLY_DISCORD_TOKEN,
# POLLY_SECRET_KEY, POLLY_REDIS_URL and friends set). The whole stack in one container, nothing
# else to run: docker run -p 8000:8000 -p 8787:8787 IMAGE polly demo --host 0.0.0.0
CMD ["polly", "api", "--host", "0.0.0.0"]
