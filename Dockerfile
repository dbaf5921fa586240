# syntax=docker/dockerfile:1
# The taskaction-operator image (see hack/image/README.md).
#   build stage:   the project's wheel, built with the pinned backend (hack/image/build.lock)
#   runtime stage: a virtualenv holding exactly the pinned runtime closure (hack/image/requirements.lock)
#                  plus that wheel; no compiler, no source tree, no build tools
# Both stages run the same scripts that hack/image/verify.sh runs without Docker, so the recipe is
# tested on every `make test` even where no Docker engine exists.
# Runs as a numeric non-root user on a read-only root filesystem: nothing is written outside /tmp
# (the Deployment mounts an emptyDir there); bytecode is compiled at install time.
# No HEALTHCHECK: Kubernetes probes kopf's liveness endpoint (:8080/healthz) instead.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
COPY pyproject.toml README.md ./
COPY hack/image/ hack/image/
COPY crds/ crds/
COPY taskaction_operator/ taskaction_operator/
RUN sh hack/image/build-wheel.sh /src /wheels

FROM ${PYTHON_IMAGE} AS runtime
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
# The wheel and the lock are bind-mounted, not copied: they leave no layer behind.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    --mount=type=bind,source=hack/image,target=/image \
    sh /image/install.sh /opt/venv /wheels /image/requirements.lock
# Set only after the install, so pip still precompiles bytecode into the image.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
USER 65532:65532
# kopf liveness (/healthz) and Prometheus metrics; see taskaction_operator/config.py.
EXPOSE 8080 9090
ENTRYPOINT ["taskaction-operator", "run"]
