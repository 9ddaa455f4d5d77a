# techfeed-ingestd (and the techfeed CLI) as a container image.
#
#   docker build -t techfeed .
#   docker run -d --name techfeed -v techfeed-data:/var/lib/techfeed \
#       -e TECHFEED_INSECURE=true \
#       -p 127.0.0.1:5560-5562:5560-5562 -p 127.0.0.1:8080:8080 techfeed
#   docker exec techfeed techfeed status
#
# The service binds every interface of the container, so it wants CURVE
# (TECHFEED_CURVE_SECRET, TECHFEED_WRITERS) or, on a network of your own,
# TECHFEED_INSECURE=true; without either it refuses to start (exit 69).
#
# Stage 1 builds on debian:bookworm with the -dev packages and installs into
# /out with `make install DESTDIR=/out PREFIX=/usr`; stage 2 is
# debian:bookworm-slim with the runtime libraries only (RUNTIME_PACKAGES:
# tests/integration/test_install.c checks that they cover every library the
# installed programs link directly).

FROM debian:bookworm AS build
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
       build-essential pkg-config protobuf-c-compiler libprotobuf-c-dev libzmq3-dev \
       libczmq-dev libsqlite3-dev libjansson-dev libmicrohttpd-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN make -j"$(nproc)" O=/tmp/build install DESTDIR=/out PREFIX=/usr

FROM debian:bookworm-slim
ARG RUNTIME_PACKAGES="libczmq4 libzmq5 libprotobuf-c1 libsqlite3-0 libjansson4 libmicrohttpd12"
# A numeric user (no name needed: runs under any orchestrator's runAsNonRoot)
# owns the data directories; the mirror client's directory is made here too
# so that a new named volume mounted there starts out owned by it.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $RUNTIME_PACKAGES \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /var/lib/techfeed /var/lib/techfeed-mirror \
    && chown 10001:10001 /var/lib/techfeed /var/lib/techfeed-mirror \
    && chmod 0750 /var/lib/techfeed /var/lib/techfeed-mirror
# The programs link libtechfeed statically: bin/ and the demo data are all
# the runtime needs (headers, archives and man pages stay in the build stage).
COPY --from=build /out/usr/bin/techfeed-ingestd /out/usr/bin/techfeed /usr/bin/
COPY --from=build /out/usr/share/techfeed/ /usr/share/techfeed/
RUN ! ldd /usr/bin/techfeed-ingestd /usr/bin/techfeed | grep 'not found'

# Every setting is a flag and a TECHFEED_* variable (techfeed-ingestd --help).
# The image sets the data directory, JSON logs and the HTTP address of
# /healthz, /readyz and /metrics. The bind endpoints are flags in CMD, not
# TECHFEED_INGEST/EVENTS/SYNC variables: the CLI reads those same variables
# as the endpoints to connect to, so in the environment they would send
# `docker exec ... techfeed status`, the HEALTHCHECK and every client
# container of this image to tcp://*:5560.
ENV TECHFEED_DATA_DIR=/var/lib/techfeed \
    TECHFEED_HTTP_ADDR=0.0.0.0:8080 \
    TECHFEED_LOG_FORMAT=json

USER 10001:10001
WORKDIR /var/lib/techfeed
VOLUME ["/var/lib/techfeed"]
EXPOSE 5560 5561 5562 8080

# The image has no curl: the CLI asks the service on 127.0.0.1 (its default).
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["techfeed", "health"]

# Exec form: the service is PID 1 and receives docker stop's SIGTERM itself
# (it finishes in-flight writes and exits 0 within the 10 s grace period).
ENTRYPOINT ["techfeed-ingestd"]
CMD ["--ingest", "tcp://*:5560", "--events", "tcp://*:5561", "--sync", "tcp://*:5562"]
