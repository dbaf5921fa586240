# One front door for people, CI and scripts. State lives under .local/ (git-ignored).
SHELL := /bin/bash
.DEFAULT_GOAL := help
PY := .venv/bin/python
VENV_STAMP := .venv/.installed
KUBECONFIG_LOCAL := .local/cluster/kubeconfig
DEV_LOCK := hack/venv.lock

.PHONY: help venv relock lint unit e2e test demo demo-down cluster-up cluster-down cluster-status db-up db-down kind-e2e bench image-check

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

# The venv is exactly hack/venv.lock (pip included, --no-deps: nothing unpinned slips in), then the
# project itself, editable, its build backend pinned by hack/image/build.lock; `pip check` proves
# the lock is closed. Only `make relock` resolves afresh.
$(VENV_STAMP): pyproject.toml $(DEV_LOCK)
	@test -x $(PY) || python3 -m venv .venv
	@.venv/bin/pip install -q --disable-pip-version-check --no-deps -r $(DEV_LOCK)
	@PIP_CONSTRAINT=$(CURDIR)/hack/image/build.lock .venv/bin/pip install -q --no-deps -e .
	@.venv/bin/pip check -q || { echo "hack/venv.lock is not closed over pyproject.toml: run 'make relock'" >&2; exit 1; }
	@touch $@

venv: $(VENV_STAMP) ## create .venv with the project and its dev tools, pinned by hack/venv.lock

relock: ## resolve every dependency afresh into a new .venv and rewrite the locks (then commit them)
	rm -rf .venv
	python3 -m venv .venv
	.venv/bin/pip install -q --upgrade pip
	.venv/bin/pip install -q -e '.[dev]'
	bash hack/image/lock.sh
	@touch $(VENV_STAMP)

cluster-up: ## start the local control plane (builds it once, cached); kubeconfig in .local/cluster/kubeconfig
	@bash hack/cluster/cluster.sh up

cluster-down: ## stop the local control plane and remove its state
	@bash hack/cluster/cluster.sh down

cluster-status: ## what of the control plane runs
	@bash hack/cluster/cluster.sh status

db-up: ## start the throwaway PostgreSQL; DSN in .local/db/dsn
	@bash hack/db/db.sh up

db-down: ## stop the throwaway PostgreSQL and remove its data
	@bash hack/db/db.sh down

lint: $(VENV_STAMP) ## ruff, mypy --strict, import layers, shellcheck, hadolint
	.venv/bin/ruff check taskaction_operator tests benchmarks examples
	.venv/bin/ruff format --check taskaction_operator tests benchmarks examples
	.venv/bin/mypy
	.venv/bin/lint-imports
	bash hack/lint-shell.sh
	bash hack/image/lint.sh

image-check: $(VENV_STAMP) ## lint the Dockerfile and prove its install steps in a throwaway venv (no Docker)
	bash hack/image/lint.sh
	bash hack/image/verify.sh

unit: $(VENV_STAMP) ## unit tests only (no cluster, no database)
	.venv/bin/pytest tests/unit -q

e2e: $(VENV_STAMP) cluster-up db-up ## integration (PostgreSQL) and e2e tests against the real control plane and PostgreSQL
	KUBECONFIG=$(CURDIR)/$(KUBECONFIG_LOCAL) TASKACTION_DATABASE_URL=$$(cat .local/db/dsn) \
	  .venv/bin/pytest tests/integration tests/e2e -q

test: $(VENV_STAMP) lint cluster-up db-up ## the whole suite: lint, unit, e2e (installs and starts what it needs)
	KUBECONFIG=$(CURDIR)/$(KUBECONFIG_LOCAL) TASKACTION_DATABASE_URL=$$(cat .local/db/dsn) \
	  .venv/bin/pytest tests -q -p no:cacheprovider

demo: $(VENV_STAMP) ## cluster, database, operator, an example run driven to the end, its recorded tree, and Flyte's API on it
	@bash hack/demo.sh

demo-down: ## stop what the demo started
	@bash hack/demo.sh down

kind-e2e: $(VENV_STAMP) ## kind cluster (offline when no registry answers), our image as Pods, tests/kind, then the e2e suite
	@bash hack/kind/e2e.sh

bench: $(VENV_STAMP) cluster-up db-up ## end-to-end benchmark (BENCH_ARGS: more options); figures printed and saved to .local/bench/latest.json
	KUBECONFIG=$(CURDIR)/$(KUBECONFIG_LOCAL) TASKACTION_DATABASE_URL=$$(cat .local/db/dsn) \
	  $(PY) benchmarks/bench_operator.py $(BENCH_ARGS)
