# The operator's image. The same image runs the operator (the default command) and every
# migration, seed and purge Job it starts (`raycesctl migrate --to REV --output json`), so
# `raycesctl` and its revision scripts come from the project's package, not the source tree.
#
# The base is a build argument, pinned by Python and Debian version; pin it by digest for
# releases (README, "The image"). hack/build-image.sh builds this file without a registry, on a
# local stand-in base of the same Debian release.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: a virtual environment with the package and its dependencies, nothing else --------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore
RUN python3 -m venv /opt/rayces
WORKDIR /src
COPY pyproject.toml README.md alembic.ini ./
COPY operator ./operator
COPY alembic ./alembic
# A machine behind its own TLS setup passes its CA bundle and pip configuration as build
# secrets: mounted for this step only, never written to a layer.
RUN --mount=type=secret,id=ca-certificates,target=/etc/ssl/certs/ca-certificates.crt \
    --mount=type=secret,id=pip.conf,target=/etc/pip.conf \
    /opt/rayces/bin/pip install --no-compile . \
    # What a run never uses: pip and setuptools (nothing installs at run time), and the
    # kubernetes client's asyncio copy, kubernetes.aio (68 MB with its bytecode; the operator
    # uses the synchronous client, and kopf its own).
    && /opt/rayces/bin/pip uninstall --yes pip setuptools \
    && rm -rf /opt/rayces/lib/python3*/site-packages/kubernetes/aio \
    # Bytecode compiled now, since a read-only root filesystem cannot cache it at run time;
    # unchecked, because nothing in the image changes after the build.
    && /opt/rayces/bin/python -m compileall -q -j 0 --invalidation-mode unchecked-hash /opt/rayces/lib

# --- run: the base, an unprivileged user and the environment copied in ----------------------
FROM ${PYTHON_IMAGE}
RUN groupadd --gid 10001 rayces \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin rayces
COPY --from=build /opt/rayces /opt/rayces
# Nothing is written outside /tmp (an emptyDir in the operator's Jobs), so the root filesystem
# can be read-only. No DATABASE_URL here: without one raycesctl says so and stops.
ENV PATH=/opt/rayces/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
USER 10001:10001
WORKDIR /tmp
CMD ["raycesctl", "operator"]
