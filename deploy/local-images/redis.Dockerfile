# Redis from Debian's package, for machines that cannot pull redis:7-alpine
# (INFERQ_REDIS_IMAGE; make compose-test builds it on its local Debian base).
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
RUN apt-get update && apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /data
EXPOSE 6379
CMD ["redis-server"]
