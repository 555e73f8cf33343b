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

.PHONY: demo demo-runtime test lint unit integration bench deps clean hardening fuzz

# knarr's .pyc files written ahead (a shell with PYTHONDONTWRITEBYTECODE=1 would otherwise
# compile every changed module again at each daemon and CLI start); quick when up to date
deps: $(VENV)/.installed $(VENV)/lib/knarr-runtime.bundle $(VENV)/lib/knarr-cli.bundle
	@$(PY) -m compileall -q -j 0 knarr

$(VENV)/.apt-installed: Makefile
	@mkdir -p $(VENV)
	@scripts/install-deps $(APT_PACKAGES)
	@touch $@

$(VENV)/.installed: pyproject.toml scripts/install-launchers $(VENV)/.apt-installed
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	@scripts/install-launchers $(VENV)
	@touch $@

# knarr-runtime's modules compiled into one file (knarr/codebundle.py), rebuilt with the
# launchers when a source it holds changes (a stale module still runs, from its source).
BUNDLED := $(wildcard knarr/*.py knarr/runtime/*.py knarr/runtime/cgroups/*.py \
                      knarr/runtime_cli/*.py knarr/sys/*.py knarr/oci/*.py)

$(VENV)/lib/knarr-runtime.bundle: $(BUNDLED) | $(VENV)/.installed
	@scripts/install-launchers $(VENV)

# the knarr CLI's (knarr, knarr.cli, knarr.client), the same way
CLI_BUNDLED := $(wildcard knarr/*.py knarr/cli/*.py knarr/client/*.py)

$(VENV)/lib/knarr-cli.bundle: $(CLI_BUNDLED) | $(VENV)/.installed
	@scripts/install-launchers $(VENV)

# The CLI starts knarrd in the background when nothing listens on its socket.
demo: deps
	@$(VENV)/bin/knarr run --rm hello-world

demo-runtime: deps
	@scripts/busybox-bundle .state/demo-bundle echo "hello from a knarr container: pid 1 in its own namespaces"
	@$(VENV)/bin/knarr-runtime --root .state/runtime run --bundle .state/demo-bundle demo-$$$$

lint: deps
	$(VENV)/bin/ruff check knarr tests bench fuzz

unit: deps
	$(PY) -m pytest -q tests/unit

integration: deps
	$(PY) -m pytest -q tests/integration

test: deps lint
	$(PY) -m pytest -q -p no:cacheprovider tests

# The hardening suite in full: probes side by side with Docker, 100 crash rounds, 50
# concurrent run --rm and 500 lifecycles, 2000 examples per property; figures (JSON) in
# .state/hardening/. `make test` runs the quick versions of the same tests.
HARDENING_TESTS := tests/integration/test_hardening_probes.py \
                   tests/integration/test_hardening_crash.py \
                   tests/integration/test_hardening_load.py tests/unit/test_fuzz_properties.py
hardening: deps
	@mkdir -p .state/hardening
	KNARR_HARDENING=full KNARR_HARDENING_OUT=$(CURDIR)/.state/hardening \
	    $(PY) -m pytest -q -s -p no:cacheprovider $(HARDENING_TESTS)

# Every atheris target for FUZZ_SECONDS each; corpora grow in .state/fuzz/<target>/,
# a crash leaves .state/fuzz/crash-<sha1>; libFuzzer's figures are in .state/fuzz/*.log.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := reference image_spec dockerfile layer_tar http_request
fuzz: deps
	@$(PY) -m pip install -q --disable-pip-version-check -e '.[fuzz]'
	@mkdir -p .state/fuzz
	@status=0; for t in $(FUZZ_TARGETS); do \
	    mkdir -p .state/fuzz/$$t; \
	    (cd .state/fuzz && $(CURDIR)/$(PY) $(CURDIR)/fuzz/harness.py $$t \
	        -max_total_time=$(FUZZ_SECONDS) -timeout=30 -rss_limit_mb=4096 \
	        $$t $(CURDIR)/fuzz/seeds/$$t) > .state/fuzz/$$t.log 2>&1 || status=1; \
	    echo "fuzz $$t: $$(grep -o 'Done [0-9]* runs in [0-9]* second(s)' .state/fuzz/$$t.log ||\
	        echo CRASHED, see .state/fuzz/$$t.log)"; \
	done; exit $$status

bench: deps
	@scripts/install-deps $(BENCH_APT_PACKAGES)
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) .state build *.egg-info
