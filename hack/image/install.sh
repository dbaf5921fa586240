#!/bin/sh
# Installs the operator into a fresh virtualenv VENV_DIR: exactly the pinned runtime closure
# (requirements.lock, --no-deps so nothing unpinned can slip in), binary wheels only (the slim
# image has no compiler), then the project's wheel, then `pip check` to prove the lock is complete
# and consistent. The Dockerfile's runtime stage runs it, and so does verify.sh.
#   [PYTHON=python3.11] install.sh VENV_DIR WHEEL_DIR LOCK_FILE
set -eu
venv=${1:?usage: install.sh VENV_DIR WHEEL_DIR LOCK_FILE}
wheels=${2:?usage: install.sh VENV_DIR WHEEL_DIR LOCK_FILE}
lock=${3:?usage: install.sh VENV_DIR WHEEL_DIR LOCK_FILE}
"${PYTHON:-python}" -m venv "$venv"
"$venv/bin/pip" install --no-deps --only-binary=:all: -r "$lock"
"$venv/bin/pip" install --no-deps "$wheels"/taskaction_operator-*.whl
"$venv/bin/pip" check
