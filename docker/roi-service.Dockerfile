# syntax=docker/dockerfile:1
# roi_service for a site server (amd64 or arm64): FastAPI + ingest from the site's Mosquitto.
#   docker build -f docker/roi-service.Dockerfile -t edge-roi-service:0.1.0 .
# Used by deploy/docker-compose.site.yml; settings come from ROI_* variables and secret files.
FROM python:3.11.11-slim-bookworm

LABEL org.opencontainers.image.title="roi_service" \
      org.opencontainers.image.licenses="Apache-2.0"

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/roi-service/venv/bin:$PATH \
    ROI_HOST=0.0.0.0 \
    ROI_PORT=8080 \
    ROI_DATABASE_URL=sqlite:////data/roi.db

WORKDIR /src
COPY pyproject.toml README.md ./
COPY edge_agent ./edge_agent
COPY roi_service ./roi_service

RUN python -m venv /opt/roi-service/venv \
    && /opt/roi-service/venv/bin/pip install ".[cloud]" \
    && groupadd --system --gid 10002 roi \
    && useradd --system -l --uid 10002 --gid roi --home-dir /data --shell /usr/sbin/nologin roi \
    && mkdir -p /data && chown roi:roi /data \
    && rm -rf /src

WORKDIR /data
USER 10002:10002
VOLUME ["/data"]
EXPOSE 8080

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]

CMD ["roi-service", "serve"]
