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
# Packaging and the live view: systemd-analyze checks the unit, dpkg-dev gives cargo-deb the
# shared-library dependencies, python3-venv holds the Kubernetes schema checker and the OTLP
# output's test receiver (`make otlp-venv`), tmux drives `proctor top` in its test.
DEB_PKGS += systemd dpkg-dev python3-venv tmux
# Container identity: the daemon's test runs a real podman container on a local root
# filesystem (`podman run --rootfs`, no image pull) and checks the id on its alert; runc, as
# crun refuses a hybrid cgroup host with a controller on the v2 side.
DEB_PKGS += podman runc
# The container's root filesystem of that test is a static busybox (the VM tier uses it too).
DEB_PKGS += busybox-static
# iproute2: the inbound test puts a second "host" in a network namespace behind a veth pair.
DEB_PKGS += iproute2
# bindfs (FUSE, with fusermount): an agent's own file system that stops answering must not hold
# proctor's loop (tests/evasion_records.rs).
DEB_PKGS += bindfs
# A JDK (javac and jar build a real -javaagent): a JVM made to run a jar the agent wrote is
# write-then-exec (tests/evasion_records.rs).
DEB_PKGS += openjdk-17-jdk-headless
# dbus-daemon: an agent that asks a real message bus outside its tree is alerted
# (tests/evasion_records.rs).
DEB_PKGS += dbus-daemon
CARGO ?= cargo
OUT ?= proctor-out

.PHONY: deps build demo test test-lsm fmt-check clippy bench agents otlp-venv
.PHONY: install uninstall deb package-test k8s-check

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
# fails without it), and the BPF LSM tier in a VM. tests/run-tests.py builds the test binaries
# once, with clippy's features (no rebuild), and runs TEST_JOBS of them at once, the VM tier
# among them: most of them wait on agents, baselines and the VM rather than compute. The VM
# (qemu TCG, CPU-bound) runs at a lower priority, so the timed windows of the host tests (the real
# agents' 30 s warm-up) get the CPU first. It prints each binary's wall and CPU time; logs in
# target/test-logs/. docs/testing.md has the tiers and their times.
TEST_JOBS ?= 3
test: deps fmt-check clippy agents otlp-venv k8s-check
	tests/run-tests.py --jobs $(TEST_JOBS) --with 'vm-lsm=nice -n 5 tests/vm/test-lsm.sh' -- \
		--locked --workspace $(KERNEL_TESTS)

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

# ---- Packaging: `make build && make install` (as root), `make deb`, `make package-test`. ----
# Standard GNU variables: PREFIX, DESTDIR (staged installs), SYSCONFDIR. PROCTOR_BIN is the
# binary installed (the release build by default). Man page and completions are generated from
# the binary itself, so they match it. The configuration example is installed only where none
# exists: an operator's /etc/proctor/proctor.toml is never overwritten.
PREFIX ?= /usr/local
SYSCONFDIR ?= /etc
BINDIR ?= $(PREFIX)/bin
UNITDIR ?= $(PREFIX)/lib/systemd/system
MANDIR ?= $(PREFIX)/share/man
DATADIR ?= $(PREFIX)/share
PROCTOR_BIN ?= target/release/proctor
CARGO_DEB_VERSION := 3.8.0
K8S_VENV := target/k8s-venv
KUBERNETES_VALIDATE_VERSION := 1.37.0

install:
	@test -x $(PROCTOR_BIN) || { echo "make install: $(PROCTOR_BIN) is missing: run make build first (or set PROCTOR_BIN)" >&2; exit 2; }
	install -D -m 0755 $(PROCTOR_BIN) $(DESTDIR)$(BINDIR)/proctor
	install -d -m 0755 $(DESTDIR)$(UNITDIR) $(DESTDIR)$(MANDIR)/man1 \
		$(DESTDIR)$(DATADIR)/bash-completion/completions $(DESTDIR)$(DATADIR)/zsh/site-functions \
		$(DESTDIR)$(DATADIR)/fish/vendor_completions.d
	sed -e 's|/usr/bin/proctor|$(BINDIR)/proctor|' -e 's|/etc/proctor/|$(SYSCONFDIR)/proctor/|g' \
		packaging/proctor.service > $(DESTDIR)$(UNITDIR)/proctor.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/proctor.service
	$(PROCTOR_BIN) man > $(DESTDIR)$(MANDIR)/man1/proctor.1
	$(PROCTOR_BIN) completions bash > $(DESTDIR)$(DATADIR)/bash-completion/completions/proctor
	$(PROCTOR_BIN) completions zsh > $(DESTDIR)$(DATADIR)/zsh/site-functions/_proctor
	$(PROCTOR_BIN) completions fish > $(DESTDIR)$(DATADIR)/fish/vendor_completions.d/proctor.fish
	install -d -m 0755 $(DESTDIR)$(SYSCONFDIR)/proctor/proctor.d
	test -e $(DESTDIR)$(SYSCONFDIR)/proctor/proctor.toml || \
		install -m 0644 packaging/proctor.toml $(DESTDIR)$(SYSCONFDIR)/proctor/proctor.toml
	@echo "installed; as a service: systemctl daemon-reload && systemctl enable --now proctor"

# Removes what install put there. The configuration stays if it was edited, and the state
# directory (/var/lib/proctor: signed evidence and keys) always stays.
uninstall:
	rm -f $(DESTDIR)$(BINDIR)/proctor $(DESTDIR)$(UNITDIR)/proctor.service \
		$(DESTDIR)$(MANDIR)/man1/proctor.1 \
		$(DESTDIR)$(DATADIR)/bash-completion/completions/proctor \
		$(DESTDIR)$(DATADIR)/zsh/site-functions/_proctor \
		$(DESTDIR)$(DATADIR)/fish/vendor_completions.d/proctor.fish
	if cmp -s packaging/proctor.toml $(DESTDIR)$(SYSCONFDIR)/proctor/proctor.toml; then \
		rm -f $(DESTDIR)$(SYSCONFDIR)/proctor/proctor.toml; fi
	-rmdir $(DESTDIR)$(SYSCONFDIR)/proctor/proctor.d $(DESTDIR)$(SYSCONFDIR)/proctor 2>/dev/null

# A Debian package by cargo-deb (installed pinned if missing) from the release build:
# target/debian/proctor_VERSION_ARCH.deb (binary stripped: the release profile keeps line tables) with the unit (enabled, not started), the man page, the
# completions and /etc/proctor/proctor.toml as a conffile.
deb: build
	@command -v cargo-deb >/dev/null || $(CARGO) install --locked cargo-deb --version $(CARGO_DEB_VERSION)
	rm -rf target/packaging && mkdir -p target/packaging
	./target/release/proctor man | gzip -9n > target/packaging/proctor.1.gz
	./target/release/proctor completions bash > target/packaging/proctor.bash
	./target/release/proctor completions zsh > target/packaging/_proctor
	./target/release/proctor completions fish > target/packaging/proctor.fish
	$(CARGO) deb --locked -p proctor --no-build --strip

# Builds the .deb (a release build: minutes and ~5 GB the first time, hence not in `make test`),
# inspects it, unpacks it into a temporary root and runs the packaged proctor from there.
package-test: deb
	packaging/test-package.sh target/debian/proctor_*.deb

# The Kubernetes manifests against the Kubernetes API schemas (kubernetes-validate, offline,
# pinned, in a venv), then what proctor itself needs of the DaemonSet.
k8s-check: deps $(K8S_VENV)/.installed
	$(K8S_VENV)/bin/kubernetes-validate --strict packaging/k8s/daemonset.yaml
	$(K8S_VENV)/bin/python packaging/check-k8s.py packaging/k8s/daemonset.yaml

$(K8S_VENV)/.installed:
	python3 -m venv $(K8S_VENV)
	$(K8S_VENV)/bin/pip install --quiet kubernetes-validate==$(KUBERNETES_VALIDATE_VERSION)
	@touch $@
