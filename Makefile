# knarr: the two commands of the quick start, and the rest of the house.
# Every target installs what it needs itself, so each works on a fresh
# Debian 12 machine as root.

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
APT_PACKAGES := busybox-static libseccomp2 iproute2 runc crun podman containerd uidmap gcc libc6-dev \
                python3-venv docker.io skopeo umoci tmux zstd debootstrap openssl apache2-utils \
                docker-registry nftables docker-compose
BENCH_APT_PACKAGES := hyperfine wrk

.PHONY: demo demo-runtime test lint unit integration bench deps clean

deps: $(VENV)/.installed

$(VENV)/.apt-installed: Makefile
	@mkdir -p $(VENV)
	@scripts/install-deps $(APT_PACKAGES)
	@touch $@

$(VENV)/.installed: pyproject.toml $(VENV)/.apt-installed
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	@scripts/install-launchers $(VENV)
	@touch $@

# The CLI starts knarrd in the background when nothing listens on its socket.
demo: deps
	@$(VENV)/bin/knarr run --rm hello-world

demo-runtime: deps
	@scripts/busybox-bundle .state/demo-bundle echo "hello from a knarr container: pid 1 in its own namespaces"
	@$(VENV)/bin/knarr-runtime --root .state/runtime run --bundle .state/demo-bundle demo-$$$$

lint: deps
	$(VENV)/bin/ruff check knarr tests bench

unit: deps
	$(PY) -m pytest -q tests/unit

integration: deps
	$(PY) -m pytest -q tests/integration

test: deps lint
	$(PY) -m pytest -q -p no:cacheprovider tests

bench: deps
	@scripts/install-deps $(BENCH_APT_PACKAGES)
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) .state build *.egg-info
