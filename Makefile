# fluxdeploy: the two commands of the README are `make demo` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
WHEELS ?= $(or $(PIP_FIND_LINKS),/opt/wheels)
TORCH_VERSION ?= 2.13.0
# Which system step runs first: `make demo` installs only what the demo needs.
SETUP := $(if $(filter demo,$(MAKECMDGOALS)),system-demo,system)
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
# Image names (FLUXDEPLOY_BASE_IMAGE, FLUXDEPLOY_SERVER_IMAGE), shared with the scripts.
include scripts/images.env
BASE_IMAGE ?= $(FLUXDEPLOY_BASE_IMAGE)
# `image: bundled` offline (no registry, no PyPI torch here): the preset's build section
# overridden through FLUXDEPLOY_BUILD_* (flag > env > preset): the debootstrap base, no torch
# index, and server/.build-extra (local torch wheel, host CA bundle, pins) streamed with the
# context. FLUXDEPLOY_BUILD_TORCH is what scripts/prepare_build_extra.sh prints.
OFFLINE_BUILD = FLUXDEPLOY_BUILD_BASE_IMAGE=$(BASE_IMAGE) FLUXDEPLOY_BUILD_TORCH_INDEX= \
	FLUXDEPLOY_BUILD_EXTRA_DIR=$(CURDIR)/server/.build-extra

.PHONY: system system-demo install engine base-image image demo test test-fast bench lint clean

# System packages (apt): the one list lives in scripts/setup_system.sh. Idempotent: a second
# run installs nothing and says so. `make demo` needs the demo set, `make test` the test set.
system:
	bash scripts/setup_system.sh

system-demo:
	SETUP_PROFILE=demo bash scripts/setup_system.sh

# Order-only: the venv needs python3-venv from the system step, but is not rebuilt by it.
$(VENV)/.installed: pyproject.toml server/pyproject.toml | $(SETUP)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q --find-links $(WHEELS) torch==$(TORCH_VERSION)
	$(PIP) install -q --find-links $(WHEELS) -e '.[test]' -e './server[test,quant,scale]' torch==$(TORCH_VERSION)
	touch $@

install: $(VENV)/.installed

engine: $(SETUP)
	bash scripts/docker_engine.sh

# The offline Debian base image (debootstrap), standing in for the registry's base images.
base-image: install engine
	BASE_IMAGE=$(BASE_IMAGE) bash scripts/build_base_image.sh

# The tests' server image (tests/fixtures/docker_env.py builds it too).
image: base-image
	BASE_IMAGE=$(BASE_IMAGE) bash scripts/build_server_image.sh

# The main job on the local default: `fluxdeploy up --preset local` builds the bundled server
# on the local Docker engine (image: bundled, offline overrides above) and runs it (tiny FLUX
# on CPU), then one generation written to fox.png. A second `make demo` builds nothing.
demo: system-demo base-image
	torch="$$(bash scripts/prepare_build_extra.sh)" && \
	$(OFFLINE_BUILD) FLUXDEPLOY_BUILD_TORCH="$$torch" fluxdeploy up --preset local
	fluxdeploy generate "a red fox in the snow" -o fox.png --width 128 --height 128
	@echo "Wrote fox.png. Stop it with: fluxdeploy down"

# Every test, the end-to-end ones included (they start dockerd, a registry and sshd).
test: system install engine image
	$(PY) -m pytest -q -ra

test-fast: install
	$(PY) -m pytest -q -m "not e2e and not docker"

bench: install
	$(PY) bench/cli_startup.py
	$(PY) bench/server_overhead.py

lint: install
	$(VENV)/bin/ruff check intelligensi_deploy server/flux_server server/tests tests bench

clean:
	rm -rf $(VENV) .pytest_cache
