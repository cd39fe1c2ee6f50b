# syntax=docker/dockerfile:1
# mesosdns: a small image running `mesos-dns` as a non-root user.
#
#   docker build -t mesosdns .
#   docker run -d --name mesos-dns -p 53:53/udp -p 53:53/tcp -p 8123:8123 \
#       -v /etc/mesos-dns/config.json:/etc/mesos-dns/config.json:ro mesosdns
#
# Port 53 as a non-root user: Docker (20.10 and later) starts containers with
# net.ipv4.ip_unprivileged_port_start=0, so any user may bind port 53 inside
# the container's own network namespace. Where a runtime does not (Podman
# with some settings, Kubernetes), pass the same sysctl, which only affects
# the container's namespace: `--sysctl net.ipv4.ip_unprivileged_port_start=53`
# (Kubernetes: securityContext.sysctls; or, with host networking, listen on a
# high port and publish it as 53). `--cap-add NET_BIND_SERVICE` alone does not
# help a non-root user. See README.md, "Running in a container".

ARG PYTHON_IMAGE=python:3.11-slim

# Stage 1: wheels for mesosdns and its dependencies (all have binary wheels
# for linux/amd64 and arm64, so no compiler is needed).
FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY mesosdns/ mesosdns/
RUN pip wheel --no-cache-dir --disable-pip-version-check --wheel-dir /wheels .

# Stage 2: the runtime image, without the sources, the build tools or pip's cache.
FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN groupadd --system --gid 10053 mesos-dns \
    && useradd --system --uid 10053 --gid mesos-dns --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin mesos-dns
# Only the wheels built above can be installed (--no-index): nothing to pin.
# hadolint ignore=DL3013
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --disable-pip-version-check --no-index \
        --find-links=/wheels mesosdns
# The example config (listens on 0.0.0.0:53 and 0.0.0.0:8123); mount your own
# over it, or build a derived image that copies it in.
COPY --chmod=0644 docker/config.json /etc/mesos-dns/config.json
# numeric, so that runtimes can check runAsNonRoot without reading /etc/passwd
USER 10053:10053
EXPOSE 53/udp 53/tcp 8123/tcp
# /health answers 200 as soon as the HTTP server runs (/ready waits for the
# first state). It assumes httpon and httpport 8123, as in the example config.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8123/health', timeout=4).status != 200)"]
# SIGTERM (docker stop) shuts down cleanly; SIGHUP (docker kill -s HUP) reloads the config.
STOPSIGNAL SIGTERM
CMD ["mesos-dns", "-config=/etc/mesos-dns/config.json"]
