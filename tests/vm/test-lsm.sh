#!/bin/sh
# `make test-lsm`: the BPF LSM tier. Builds proctor and the LSM tests (crates/proctor/tests/lsm.rs,
# `#[ignore]`d in the main suite) on this machine, then boots Debian's kernel with BPF LSM under
# qemu (tests/vm/run.sh) and runs there: `proctor doctor` (the main object and the LSM object
# must both load on that kernel), then every LSM test. Exit status: the VM's, 0 when all passed.
set -eu
cd "$(dirname "$0")/../.."
CARGO=${CARGO:-cargo}

# The test binary's path, from cargo's own report (it builds the proctor binary too).
bin=$($CARGO test --locked -p proctor --features kernel-tests --test lsm --no-run --message-format=json |
	python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "lsm" and m.get("executable"):
        print(m["executable"])')
[ -n "$bin" ] || { echo "tests/vm/test-lsm.sh: cargo built no lsm test binary" >&2; exit 2; }
proctor=$(dirname "$(dirname "$bin")")/proctor
[ -x "$proctor" ] || { echo "tests/vm/test-lsm.sh: no proctor binary at $proctor" >&2; exit 2; }

start=$(date +%s)
set +e
tests/vm/run.sh sh -c "'$proctor' doctor && '$bin' --ignored --test-threads=1 $*"
rc=$?
set -e
echo "tests/vm/test-lsm.sh: $( [ $rc -eq 0 ] && echo passed || echo FAILED ) in $(( $(date +%s) - start )) s (VM boot included)" >&2
exit $rc
