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
    POLLY_FRONTEND_DIR=/srv/polly/frontend-stub

WORKDIR /srv/polly
# uv at the version and hashes scripts/uv-requirements.txt pins; it installs exactly uv.lock
# (--locked: the build stops if pyproject.toml and the lock disagree), never a fresh resolution.
COPY scripts/uv-requirements.txt /tmp/uv-requirements.txt
RUN pip install --no-deps --require-hashes -r /tmp/uv-requirements.txt
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --locked --no-install-project
COPY app ./app
RUN uv sync --locked --no-editable && useradd --system --uid 10001 polly
COPY frontend-stub ./frontend-stub
COPY --from=stub /stub/node_modules ./frontend-stub/node_modules

USER polly
EXPOSE 8000 8787
# The whole stack, Redis embedded (fakeredis: the image has no redis-server). For production
# run `polly api` and `polly bot` with POLLY_DISCORD_TOKEN, POLLY_REDIS_URL and friends set.
CMD ["polly", "demo", "--host", "0.0.0.0"]
