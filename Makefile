# proctor: the two commands a newcomer types are `make demo` and `make test` (as root).

# Debian packages the build and the tests need. clang-19 compiles the eBPF programs; libelf and
# zlib are libbpf's; libseccomp-dev builds the seccomp filter of `run` (guard and ask); python3,
# openssl and util-linux (setpriv) are used by demo agents and tests; python3-cryptography and
# openssl verify proctor's signatures independently in the tests, and nodejs cross-checks the
# canonical JSON. The TLS tests use curl (OpenSSL), gnutls-cli and git (GnuTLS) and build a
# statically linked OpenSSL client (libssl-dev). The report test renders HTML in headless
# chromium; the timestamp tests run a local TSA with `openssl ts`.
DEB_PKGS := clang-19 libelf-dev zlib1g-dev pkg-config make python3 python3-cryptography openssl \
	libseccomp-dev curl gnutls-bin libssl-dev git \
	nodejs util-linux chromium
# The metrics test scrapes a live run with a real Prometheus server and reads its query API.
DEB_PKGS += prometheus
# rsyslog: the syslog output's tests run a real rsyslogd with a private configuration (the
# package's own service is not started in containers; the tests never touch /dev/log).
DEB_PKGS += rsyslog
# python3-venv: `make otlp-venv` (the OTLP output's test receiver).
DEB_PKGS += python3-venv
CARGO ?= cargo
OUT ?= proctor-out

.PHONY: deps build demo test test-lsm fmt-check clippy bench agents otlp-venv

# Install missing packages only, so repeated runs cost nothing.
deps:
	@if ! dpkg -s $(DEB_PKGS) >/dev/null 2>&1; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(DEB_PKGS); \
	fi

# The OTLP output's test decodes what proctor sends with the OpenTelemetry project's own
# protobuf classes (opentelemetry-proto from PyPI), in a venv of its own under target/.
OTLP_VENV := target/otlp-venv
otlp-venv: $(OTLP_VENV)/bin/python
$(OTLP_VENV)/bin/python:
	python3 -m venv $(OTLP_VENV)
	$(OTLP_VENV)/bin/pip install --quiet 'opentelemetry-proto>=1.20,<2'

build: deps
	$(CARGO) build --release --locked

# The whole cycle on the embedded defaults: what the kernel offers, then for each demo attack a
# monitored agent that learns its baseline and is hijacked (live alerts, replayed offline), then
# a quiet benign run; finally a summary of one recorded run.
demo: build
	./target/release/proctor doctor
	rm -rf $(OUT)
	PROCTOR=./target/release/proctor demo/run_all.sh $(OUT)
	@python3 demo/show.py $(OUT)/shell_spawn/audit.jsonl

fmt-check:
	$(CARGO) fmt --all --check

# The real-kernel test files are compiled only with this feature: lint them too.
KERNEL_TESTS := --features proctor/kernel-tests

clippy: deps
	$(CARGO) clippy --locked --workspace --all-targets $(KERNEL_TESTS) -- -D warnings

# The real agent CLIs of the real-agent test tier (crates/proctor/tests/real_agents.rs), at the
# versions tests/agents/package-lock.json pins, from the npm registry into tests/agents/node_modules
# (about 1 GB: Claude Code is a ~400 MB native executable). Only Claude Code's install script runs
# (it places that executable); package.json's allowScripts denies the others. Reinstalls only when
# the lock file changes.
agents: tests/agents/node_modules/.package-lock.json

tests/agents/node_modules/.package-lock.json: tests/agents/package-lock.json tests/agents/package.json
	@command -v npm >/dev/null || { echo "make agents: npm is missing (Node.js with npm installs the agent CLIs)" >&2; exit 2; }
	cd tests/agents && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# Gates, then every test: pure logic and recorded fixtures (all that plain `cargo test` runs, as
# any user), the real-kernel tier with the real agent CLIs (the kernel-tests feature: needs root,
# fails without it), then the BPF LSM tier in a VM.
test: deps fmt-check clippy agents otlp-venv
	$(CARGO) test --locked --workspace $(KERNEL_TESTS)
	$(MAKE) test-lsm

# The BPF LSM tier: our machines refuse BPF LSM programs, so the LSM tests run in a qemu VM that
# boots Debian's own kernel with lsm=...,bpf, with this checkout shared into it (tests/vm/; the
# script apt-get installs qemu-system-x86, busybox-static, kmod and cpio, and downloads the
# kernel). `make test` ends with it.
test-lsm: deps
	tests/vm/test-lsm.sh

# Benchmarks: bare vs proctor vs bpftrace vs auditd, interleaved, then the real agent CLIs bare
# vs proctor vs proctor --capture-tls; writes bench/results.md, bench/results.json and
# bench/agents-bench.json.
bench: build agents
	$(CARGO) run --release --locked -p proctor-bench -- $(BENCH_ARGS)
