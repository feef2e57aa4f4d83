FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /srv/polly
COPY pyproject.toml README.md ./
COPY app ./app
COPY frontend-stub ./frontend-stub
RUN pip install . && useradd --system --uid 10001 polly

USER polly
EXPOSE 8787
# The sandbox, reachable from outside the container.
CMD ["polly", "sandbox", "--host", "0.0.0.0", "--port", "8787"]
