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
CARGO ?= cargo
OUT ?= proctor-out

.PHONY: deps build demo test test-lsm fmt-check clippy bench

# Install missing packages only, so repeated runs cost nothing.
deps:
	@if ! dpkg -s $(DEB_PKGS) >/dev/null 2>&1; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(DEB_PKGS); \
	fi

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

clippy: deps
	$(CARGO) clippy --locked --all-targets -- -D warnings

# Gates, then every test: pure logic, recorded fixtures, and real-kernel tests (need root).
test: deps fmt-check clippy
	$(CARGO) test --locked --workspace

# The BPF LSM tier: our machines refuse BPF LSM programs, so the LSM tests run in a qemu VM that
# boots Debian's own kernel with lsm=...,bpf on this machine's root filesystem (tests/vm/; the
# script apt-get installs qemu-system-x86, busybox-static and kmod, and downloads the kernel).
test-lsm: deps
	tests/vm/test-lsm.sh

# Benchmarks (issue 6): bare vs proctor vs bpftrace vs auditd, interleaved; writes
# bench/results.md and bench/results.json.
bench: build
	$(CARGO) run --release --locked -p proctor-bench -- $(BENCH_ARGS)
