# pgfailover: the daemon in a small image.
#
#   docker build -t pgfailover .                                    # Ubuntu 24.04
#   docker build --build-arg BASE_IMAGE=debian:bookworm -t pgfailover .
#
# Two stages from the same BASE_IMAGE (Debian 12 or Ubuntu 24.04; any apt-based image with the
# build dependencies packaged). The runtime stage installs exactly the packages that own the
# shared libraries the binary links (found with ldd + dpkg -S in the builder), so the same file
# works where package names differ between releases (libcpp-httplib0.11 vs 0.14, the t64
# renames of Ubuntu 24.04, ...). Only the classic builder's features are used, so it also builds
# with docker-compose 1.29 and without BuildKit.
ARG BASE_IMAGE=ubuntu:24.04

FROM ${BASE_IMAGE} AS builder
ARG DEBIAN_FRONTEND=noninteractive
# Parallel compile jobs; empty means one per CPU (nproc). The compose lab passes PGF_BUILD_JOBS.
ARG BUILD_JOBS=
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      cmake make g++ pkg-config binutils \
      libpq-dev libcpp-httplib-dev nlohmann-json3-dev libssh-dev prometheus-cpp-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Only what the daemon's build reads: a change to docs or tests does not rebuild the image.
COPY CMakeLists.txt ./
COPY src ./src
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DPGFAILOVER_BUILD_TESTS=OFF \
 && cmake --build /build --target pgfailover -j "${BUILD_JOBS:-$(nproc)}" \
 && strip /build/pgfailover \
 && /build/pgfailover --version
# The runtime packages: whichever packages own the libraries the dynamic linker resolves.
# (/lib and /usr/lib are one folder on merged-/usr systems, but dpkg knows each file under
# one of the two names, so both are tried.)
RUN set -e; \
    for lib in $(ldd /build/pgfailover | awk '$2 == "=>" && $3 ~ /^\// {print $3}'); do \
      real=$(readlink -f "$lib"); \
      owner=$(dpkg -S "$lib" 2>/dev/null || dpkg -S "/usr$lib" 2>/dev/null \
              || dpkg -S "$real" 2>/dev/null || dpkg -S "${real#/usr}" 2>/dev/null) \
        || { echo "no package owns $lib" >&2; exit 1; }; \
      echo "${owner%%: *}" | tr ',' '\n' | tr -d ' '; \
    done | sort -u > /build/runtime-packages; \
    echo "runtime packages:"; cat /build/runtime-packages

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
COPY --from=builder /build/runtime-packages /usr/share/pgfailover/runtime-packages
# curl is for the HEALTHCHECK; iputils-ping for probe.icmp (the seed's ping check), if enabled.
RUN apt-get update \
 && xargs -a /usr/share/pgfailover/runtime-packages apt-get install -y --no-install-recommends \
      curl iputils-ping \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/pgfailover --create-home \
      --shell /usr/sbin/nologin pgfailover \
 && install -d -m 0750 -o pgfailover -g pgfailover /etc/pgfailover /var/lib/pgfailover
COPY --from=builder /build/pgfailover /usr/local/bin/pgfailover
# Fails the build when a library is missing rather than at the first start.
RUN if ldd /usr/local/bin/pgfailover | grep 'not found'; then exit 1; fi \
 && /usr/local/bin/pgfailover --version
USER pgfailover
WORKDIR /var/lib/pgfailover
EXPOSE 8008
# /healthz answers 200 while the loop ticks. The configuration must listen where this URL
# points (http.listen_address 0.0.0.0 in a container), or set PGFAILOVER_HEALTHCHECK_URL.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD curl -fsS -o /dev/null --max-time 2 "${PGFAILOVER_HEALTHCHECK_URL:-http://127.0.0.1:8008/healthz}" || exit 1
ENTRYPOINT ["/usr/local/bin/pgfailover"]
CMD ["run", "--config", "/etc/pgfailover/pgfailover.json"]
