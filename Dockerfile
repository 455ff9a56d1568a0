# The hub's one image: `lienthong worker`, `lienthong gateway`, and the other commands.
# Production runs against a real Kafka (docker-compose.yml); the embedded broker is for
# development only and is not used here.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Only what the package needs, so a change to tests or docs does not rebuild the install layer.
COPY pyproject.toml README.md* ./
COPY lienthong ./lienthong
COPY hubbase ./hubbase
COPY schemas ./schemas
COPY connectors ./connectors
COPY streams ./streams
COPY bench ./bench
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /data lienthong \
    && mkdir -p /data \
    && chown lienthong /data

USER lienthong
# Listen on every interface inside the container; the compose file decides what is published.
ENV LIENTHONG_DATA_DIR=/data \
    LIENTHONG_WEB_HOST=0.0.0.0 \
    LIENTHONG_WEB_PORT=6066 \
    LIENTHONG_GATEWAY_PORT=6070
EXPOSE 6066 6070
VOLUME ["/data"]

ENTRYPOINT ["lienthong"]
CMD ["worker"]
