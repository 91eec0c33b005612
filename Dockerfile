# pgfailover: the daemon in a small image, installed from the Debian package users install.
#
#   docker build -t pgfailover .                                    # Ubuntu 24.04
#   docker build --build-arg BASE_IMAGE=debian:bookworm -t pgfailover .
#   docker build --build-arg BASE_IMAGE=debian:bookworm \
#     --build-arg PGFAILOVER_DEB=dist/pgfailover_0.1.0_amd64.deb -t pgfailover .
#
# The builder stage yields the package: PGFAILOVER_DEB, one that scripts/package.sh built for
# the same release as BASE_IMAGE (the compose lab and CI pass it: the image then runs the very
# file users install), or else one built here with dpkg-buildpackage from debian/ (any Debian
# 12 or Ubuntu 24.04 base; Depends computed for that release). The runtime stage installs it
# with apt, which pulls exactly the libraries the package depends on. docker/postgres/Dockerfile
# has the same builder stage, so a compose build compiles once. Only the classic builder's
# features are used, so it also builds with docker-compose 1.29 and without BuildKit.
ARG BASE_IMAGE=ubuntu:24.04

FROM ${BASE_IMAGE} AS builder
ARG DEBIAN_FRONTEND=noninteractive
# Parallel compile jobs; empty means one per CPU (nproc). The compose lab passes PGF_BUILD_JOBS.
ARG BUILD_JOBS=
ARG PGFAILOVER_DEB=
WORKDIR /src
COPY . ./
RUN set -e; mkdir -p /out; \
    if [ -n "$PGFAILOVER_DEB" ]; then \
      cp "/src/$PGFAILOVER_DEB" /out/pgfailover.deb; \
    else \
      apt-get update; \
      apt-get install -y --no-install-recommends build-essential debhelper dpkg-dev cmake pkgconf \
        libpq-dev libcpp-httplib-dev nlohmann-json3-dev libssh-dev prometheus-cpp-dev libsystemd-dev libssl-dev; \
      rm -rf /var/lib/apt/lists/*; \
      DEB_BUILD_OPTIONS="parallel=${BUILD_JOBS:-$(nproc)} nocheck" dpkg-buildpackage -b -uc -us; \
      cp /pgfailover_*.deb /out/pgfailover.deb; \
    fi; \
    dpkg-deb --field /out/pgfailover.deb Package Version Architecture Depends

FROM ${BASE_IMAGE}
ARG DEBIAN_FRONTEND=noninteractive
ARG VERSION=0.1.0
ARG VCS_REF=unknown
LABEL org.opencontainers.image.title="pgfailover" \
      org.opencontainers.image.description="PostgreSQL high-availability sidecar: probes a primary and its streaming replica, fails over without false failovers or split brain, serves a health API and Prometheus metrics" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${VCS_REF}" \
      org.opencontainers.image.documentation="README.md, docs/lab-compose.md" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"
COPY --from=builder /out/pgfailover.deb /tmp/pgfailover.deb
# The user first, with the uid the compose lab and the Helm chart expect (10001); the package's
# postinst keeps a user that exists. curl is for the HEALTHCHECK; iputils-ping for probe.icmp.
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/pgfailover --create-home \
      --shell /usr/sbin/nologin pgfailover \
 && apt-get update \
 && apt-get install -y --no-install-recommends /tmp/pgfailover.deb curl iputils-ping \
 && rm -rf /var/lib/apt/lists/* /tmp/pgfailover.deb \
 && chmod 0750 /var/lib/pgfailover \
 && ln -s /usr/bin/pgfailover /usr/local/bin/pgfailover \
 && if ldd /usr/bin/pgfailover | grep 'not found'; then exit 1; fi \
 && pgfailover --version
USER pgfailover
WORKDIR /var/lib/pgfailover
EXPOSE 8008
# /healthz answers 200 while the loop ticks. The configuration must listen where this URL
# points (http.listen_address 0.0.0.0 in a container), or set PGFAILOVER_HEALTHCHECK_URL.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD curl -fsS -o /dev/null --max-time 2 "${PGFAILOVER_HEALTHCHECK_URL:-http://127.0.0.1:8008/healthz}" || exit 1
ENTRYPOINT ["/usr/bin/pgfailover"]
CMD ["run", "--config", "/etc/pgfailover/pgfailover.json"]
