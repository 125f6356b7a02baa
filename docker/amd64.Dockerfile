# syntax=docker/dockerfile:1
# Any x86_64 Linux box (an industrial PC, a NUC, a VM): Debian slim, Python 3.11, onnxruntime (CPU), LiteRT
# and, for Intel CPUs and iGPUs, OpenVINO (model.runtime.kind: openvino), the shipped models.
#   docker build --platform linux/amd64 -f docker/amd64.Dockerfile -t edge-agent-amd64:0.1.0 .
#   docker run -d --name edge-agent -v edge-data:/data -e EDGE_AGENT_PROFILE=defect-usb \
#       --device /dev/video0 edge-agent-amd64:0.1.0
# The last build step loads every shipped model and runs one inference: a broken image fails here.
FROM --platform=linux/amd64 python:3.11.11-slim-bookworm

LABEL org.opencontainers.image.title="edge-agent (any Linux box, amd64)" \
      org.opencontainers.image.licenses="Apache-2.0"

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/edge-agent/venv/bin:$PATH \
    EDGE_AGENT_CONFIG=/data/config/agent.yaml \
    EDGE_AGENT_PROFILES=/opt/edge-agent/profiles \
    EDGE_AGENT__HTTP__PORT=9100 \
    EDGE_AGENT__OUTBOX__PATH=/data/outbox/outbox.db

WORKDIR /src
COPY pyproject.toml README.md ./
COPY edge_agent ./edge_agent
COPY bench ./bench
COPY docker ./docker
COPY models /opt/edge-agent/models
COPY deploy/profiles /opt/edge-agent/profiles

RUN docker/install.sh --target amd64 --venv /opt/edge-agent/venv --src /src --models /opt/edge-agent/models \
    && install -m 0755 docker/entrypoint.sh docker/healthcheck.py /opt/edge-agent/ \
    && groupadd --system --gid 10001 edge \
    && useradd --system -l --uid 10001 --gid edge --groups video --home-dir /data --shell /usr/sbin/nologin edge \
    && mkdir -p /data/config /data/outbox /data/tls /data/models \
    && chown -R edge:edge /data \
    && rm -rf /src

WORKDIR /data
USER 10001:10001

# One volume for everything a device keeps across image updates: config/, outbox/, tls/, models/.
VOLUME ["/data"]
EXPOSE 9100

HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 CMD ["python", "/opt/edge-agent/healthcheck.py"]

ENTRYPOINT ["tini", "--", "/opt/edge-agent/entrypoint.sh"]
CMD ["run"]
