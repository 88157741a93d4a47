#!/usr/bin/env bash
# The whole demo cycle: for each attack, monitor the benign agent (baseline), let it run the
# injected attack, and check the live alerts (DIR/alerts.jsonl) for the expected kind; then
# replay the recorded audit log offline and check that it gives the same alerts, and verify
# the run's signed evidence (audit chain and certificates).
# Needs root (proctor loads eBPF) and python3. Loopback only; about 3 minutes.
#
#   sudo demo/run_all.sh [OUT_DIR]          # PROCTOR=path/to/proctor to pick the binary
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-proctor-demo-out}"
proctor="${PROCTOR:-proctor}"
baseline="${BASELINE:-10s}"
# The real interpreter, not a version-manager shim (a shim's own shells would be learned).
py="$(python3 -c 'import sys; print(sys.executable)')"

declare -A expect=(
  [shell_spawn]=LLM_AGENT_HIJACK
  [credential_read]=SENSITIVE_FILE
  [unknown_destination]=UNKNOWN_DESTINATION
  [egress_burst]=NET_EGRESS_BURST
  [dns_tunnel]=DNS_ANOMALY
  [ptrace_attach]=PTRACE_ATTACH_DETECTED
  [scheduling_noise]=DRIFT_DETECTED
  [write_then_exec]=CAUSAL_CYCLE_DETECTED
  [persistence]=PERSISTENCE
)

fail=0
run_one() { # name duration [attack]
  local name="$1" dur="$2" attack="${3:-}"
  rm -rf "$out/$name"
  local args=(--duration "$dur")
  [ -n "$attack" ] && args+=(--then "$attack" --after 3)
  "$proctor" run --baseline "$baseline" --out "$out/$name" -- "$py" "$here/agent.py" "${args[@]}"
  touch "$out/$name/alerts.jsonl"
  "$proctor" replay "$out/$name/audit.jsonl" --baseline "$baseline" > "$out/$name/replayed-alerts.jsonl"
  if ! cmp -s "$out/$name/alerts.jsonl" "$out/$name/replayed-alerts.jsonl"; then
    echo "   replay differs from the live alerts"; fail=1
  fi
  # The signed evidence of the run: audit chain and certificates, checked offline.
  if "$proctor" verify "$out/$name" > "$out/$name/verify.txt"; then
    echo "   evidence verified: $(grep -c . "$out/$name/verify.txt") line(s), $(ls "$out/$name/alerts/"*.cal 2>/dev/null | wc -l) certificate(s)"
  else
    echo "   EVIDENCE INVALID:"; cat "$out/$name/verify.txt"; fail=1
  fi
}

mkdir -p "$out"
for attack in "${!expect[@]}"; do
  echo "== $attack (expect ${expect[$attack]})"
  run_one "$attack" 12 "$attack"
  if grep -q "\"kind\":\"${expect[$attack]}\"" "$out/$attack/alerts.jsonl"; then
    echo "   detected: $(grep -o '"kind":"[A-Z_]*"' "$out/$attack/alerts.jsonl" | sort | uniq -c | tr '\n' ' ')"
  else
    echo "   NOT DETECTED"; fail=1
  fi
done
echo "== benign loop for 60 s (expect no alert)"
run_one benign 60
if [ -s "$out/benign/alerts.jsonl" ]; then
  echo "   alerts on the benign loop:"; cat "$out/benign/alerts.jsonl"; fail=1
else
  echo "   no alert"
fi
exit "$fail"
