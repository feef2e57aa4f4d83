# The front-end stub's WebSocket client (graphql-ws's browser build), fetched from npm.
FROM node:20-slim AS stub
WORKDIR /stub
COPY frontend-stub/package.json ./
RUN npm install --no-audit --no-fund --legacy-peer-deps --no-package-lock --loglevel=error

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    POLLY_FRONTEND_DIR=/srv/polly/frontend-stub

WORKDIR /srv/polly
COPY pyproject.toml README.md ./
COPY app ./app
COPY frontend-stub ./frontend-stub
COPY --from=stub /stub/node_modules ./frontend-stub/node_modules
RUN pip install . && useradd --system --uid 10001 polly

USER polly
EXPOSE 8000 8787
# The whole stack, Redis embedded (fakeredis: the image has no redis-server). For production
# run `polly api` and `polly bot` with POLLY_DISCORD_TOKEN, POLLY_REDIS_URL and friends set.
CMD ["polly", "demo", "--host", "0.0.0.0"]
