# nova-gateway container image: a virtualenv built against constraints.txt in a build
# stage, copied into a slim Python 3.11 runtime that runs as an unprivileged user.
#
#   docker build -t nova-gateway .
#   docker run --read-only -v ng-audit:/var/lib/nova-gateway -v ng-run:/run/nova-gateway \
#       -v /etc/nova-gateway/site:/etc/nova-gateway/nova-gateway.conf.d:ro \
#       -p 8774:8774 nova-gateway --workers 2
#
# Writable paths (volumes): /var/lib/nova-gateway (the audit trail) and /run/nova-gateway
# (TMPDIR: the metrics files of --workers N). Everything else may be read-only.
# Site configuration: *.conf files in /etc/nova-gateway/nova-gateway.conf.d (read after
# the image's nova-gateway.conf), or OS_<GROUP>__<OPTION> environment variables.
# CI lints this file with hadolint and runs deploy/image/install.sh in a fresh virtualenv.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
ENV PIP_NO_CACHE_DIR=1
COPY pyproject.toml README.md constraints.txt ./
COPY gateway ./gateway
COPY novasim ./novasim
COPY policies ./policies
COPY deploy/image/install.sh ./deploy/image/install.sh
RUN ["sh", "deploy/image/install.sh", "/opt/nova-gateway"]

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="nova-gateway" \
      org.opencontainers.image.description="A policy-enforcing reverse proxy for the OpenStack Nova compute API" \
      org.opencontainers.image.licenses="Apache-2.0"
# The only account the gateway runs as; the audit and runtime directories are its own.
RUN groupadd --system --gid 10001 nova-gateway \
    && useradd --system --uid 10001 --gid nova-gateway --no-create-home \
        --home-dir /var/lib/nova-gateway --shell /usr/sbin/nologin nova-gateway \
    && install -d -o nova-gateway -g nova-gateway -m 0700 \
        /var/lib/nova-gateway /var/lib/nova-gateway/audit /run/nova-gateway \
    && install -d -m 0755 /etc/nova-gateway/nova-gateway.conf.d
COPY --from=build /opt/nova-gateway /opt/nova-gateway
COPY etc/nova-gateway.conf.sample /etc/nova-gateway/
COPY deploy/image/nova-gateway.conf /etc/nova-gateway/
COPY policies /etc/nova-gateway/policies
ENV PATH=/opt/nova-gateway/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TMPDIR=/run/nova-gateway
VOLUME ["/var/lib/nova-gateway", "/run/nova-gateway"]
USER 10001:10001
EXPOSE 8774 9774
# The admin listener answers /healthz while the process serves (see /readyz for traffic).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["/opt/nova-gateway/bin/python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9774/healthz', timeout=2)"]
# Exec form: the gateway is PID 1 and gets SIGTERM itself (drain, then exit 0); SIGHUP
# reloads. With --workers N it supervises its workers and reaps them.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/opt/nova-gateway/bin/nova-gateway", "--config-file", "/etc/nova-gateway/nova-gateway.conf", "--config-dir", "/etc/nova-gateway/nova-gateway.conf.d"]
CMD []
