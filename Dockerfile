# The image for the API, the consumers and the load generator (docker-compose.yml).
# BASE_IMAGE: any Debian-like image with python3 and its venv module; users get Docker's
# official Python image, the compose test (make compose-test) a Debian built locally.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
# PIP_CERT: the system's CA bundle, so a CA that the base image trusts is trusted here too.
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt
RUN python3 -m venv /opt/inferq
# Dependencies first, from the lock (plus the build backend pyproject.toml names), so a
# code change rebuilds only the layers below.
COPY deploy/requirements.lock /tmp/requirements.lock
RUN /opt/inferq/bin/pip install --no-deps -r /tmp/requirements.lock setuptools==80.9.0
WORKDIR /app
COPY pyproject.toml ./
COPY api ./api
COPY worker ./worker
COPY core ./core
COPY config ./config
COPY cli ./cli
COPY loadtest ./loadtest
COPY scripts ./scripts
RUN /opt/inferq/bin/pip install --no-deps --no-build-isolation . && /opt/inferq/bin/pip check \
    && rm -rf build *.egg-info

FROM ${BASE_IMAGE}
ENV PATH=/opt/inferq/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    INFERQ_LOG_DIR=/app/logs INFERQ_METRICS_DIR=/app/metrics
COPY --from=build /opt/inferq /opt/inferq
COPY --from=build /app /app
WORKDIR /app
RUN useradd --create-home inferq && mkdir -p logs metrics && chown inferq logs metrics
USER inferq

EXPOSE 8000
CMD ["uvicorn", "api.main:app", "--host", "0.0.0.0", "--port", "8000"]
