FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY pyproject.toml ./
COPY api ./api
COPY worker ./worker
COPY core ./core
COPY config ./config
COPY cli ./cli
COPY loadtest ./loadtest
COPY scripts ./scripts
RUN pip install . && mkdir -p logs metrics && useradd --create-home inferq && chown inferq logs metrics
USER inferq

EXPOSE 8000
CMD ["uvicorn", "api.main:app", "--host", "0.0.0.0", "--port", "8000"]
