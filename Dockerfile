# The taskaction-operator image (see hack/image/README.md).
#   build stage:   the project's wheel, built with the pinned backend (hack/image/build.lock)
#   install stage: a virtualenv holding exactly the pinned runtime closure (hack/image/requirements.lock)
#                  plus that wheel
#   runtime stage: that virtualenv alone; no wheel, no lock, no compiler, no source tree, no build tools
# No BuildKit-only syntax (no RUN --mount, no COPY --chmod, no syntax directive to pull): the legacy
# builder of an engine without buildx builds it too (hack/kind/README.md). PYTHON_IMAGE overrides the
# base, e.g. with the Debian-made one of hack/kind/images.sh where no registry is reachable.
# The build and install stages run the same scripts that hack/image/verify.sh runs without Docker, so the recipe is
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

FROM ${PYTHON_IMAGE} AS install
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
COPY --from=build /wheels /wheels
COPY hack/image/ /image/
RUN sh /image/install.sh /opt/venv /wheels /image/requirements.lock

FROM ${PYTHON_IMAGE} AS runtime
# Only the virtualenv crosses over: the wheel and the lock leave no layer behind.
COPY --from=install /opt/venv /opt/venv
# pip compiled the bytecode in the install stage; at run time nothing writes beside it.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
USER 65532:65532
# kopf liveness (/healthz) and Prometheus metrics; see taskaction_operator/config.py.
EXPOSE 8080 9090
ENTRYPOINT ["taskaction-operator", "run"]
