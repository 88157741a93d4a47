//! Detection: learn an agent's baseline, then judge its process tree's records against that
//! baseline and a [`Policy`]. Pure logic over [`proctor_model::Record`]s: no kernel, and no I/O
//! except reading a profile or policy the caller names and, at [`Engine::new`], stat-ing the
//! policy's interpreters and reading /etc/resolv.conf ([`HostFacts::discover`]).
//!
//! # The contract `run`, `calibrate` and `replay` use
//! ```no_run
//! use proctor_detect::{Baseline, Engine, EngineConfig, Output, Policy};
//! # fn records() -> Vec<proctor_model::Record> { vec![] }
//! let policy = Policy::builtin(); // or Policy::from_toml_str(&text, "policy.toml")?
//! let mut engine = Engine::new(policy, EngineConfig {
//!     baseline_ns: 30_000_000_000,
//!     home: Some("/home/agent".into()),
//!     cwd: Some("/work/project".into()),
//!     profile: None, // or Some(Baseline::load(path)?): judge from the first record
//! });
//! for r in records() {
//!     for out in engine.observe(&r) {
//!         match out {
//!             Output::Alert(a) => { /* audit log, alerts.jsonl, certificate */ }
//!             Output::Evidence(_) => { /* low severity: kept for incidents */ }
//!             Output::Incident(i) => { /* DIR/incidents.jsonl: the last line of an id is its state */ }
//!             Output::BaselineEstablished(s) => {
//!                 eprintln!("proctor: {s}");
//!                 let sha = engine.baseline().unwrap().save("out/baseline.json".as_ref());
//!             }
//!         }
//!     }
//! }
//! // Call engine.tick(now_ns) about once a second when no record arrives, and at the end:
//! let _rest: Vec<Output> = engine.finish();
//! ```
//! Time comes only from record timestamps and `tick` arguments, so replaying a log gives the
//! same alerts as the live run (on the same host: interpreter device+inode and resolvers are
//! this host's).
//!
//! # Channels, kinds and their `divergence`
//! - **L1 `DRIFT_DETECTED`**: each `sched` summary is compared with the baseline: its window
//!   divergence is the larger of the histogram shape divergence (Jensen-Shannon, base 2, 0..1,
//!   mean of the on-CPU and off-CPU histograms) and the switch-rate divergence (|ln ratio| / ln 64,
//!   capped at 1). A one-sided CUSUM accumulates the excess over the baseline windows' own mean +
//!   max(slack, slack_sigma·sd); one window adds at most 1 - slack, so with the default threshold
//!   (1.0) one noisy window never fires. Divergence is the CUSUM value when it crossed the
//!   threshold (then it restarts at 0). Summaries with fewer than `min_switches` are skipped.
//! - **L2 `LLM_AGENT_HIJACK`**: an exec of a shell/interpreter whose family (`python3.11` ->
//!   `python`) was not spawned in the baseline. Identified by the resolved basename, else by the
//!   device+inode of the interpreters on this host. The agent's own first exec is never judged.
//!   Divergence 1.0.
//! - **`RISKY_BINARY`**: an exec matching a risky rule (basename glob, optional argument glob)
//!   that did not match in the baseline. Divergence 1.0.
//! - **L3 `STRUCTURAL_DRIFT`**: a new edge kind in the causal graph (`spawn A -> B`,
//!   `write A -> AREA`, `connect A -> PROTO/SCOPE`; A and B are tool families such as `@text`
//!   where the policy's `[graph.families]` lists them; see the `[graph]` policy comments). Only
//!   edges that touch a sensitive class alert (divergence 1.0): a shell/interpreter from a
//!   parent that ran none of its family, a never-seen program run from scratch space, a write
//!   outside `quiet_write_areas`. Every other new edge is [`Output::Evidence`] (divergence 0.5),
//!   attached to the incident of its tool call if one opens. A program re-executing itself is
//!   never new. **`CAUSAL_CYCLE_DETECTED`**: an exec of a file the tree wrote or created in
//!   this run (same device+inode or path, or the script an interpreter is given in argv), unless
//!   the same writer -> area -> executor cycle happened in the baseline. Divergence 1.0.
//! - **L4 `UNKNOWN_DESTINATION`**: an inet connect/send to an `addr:port` neither allowed nor in
//!   the baseline. Divergence 1.0, +0.5 for a non-standard port, +0.5 for a public raw IP with no
//!   DNS query by the tree within `resolve_window` (the sensor sees queries, not answers, so this
//!   only raises the score and never alerts alone). When host names are allowed (policy or
//!   profile), a TCP connect waits up to 2 s for its TLS server name: an allowed one clears
//!   that connection. **`NET_SCAN`**: at least `scan_min_destinations` distinct unknown
//!   destinations of one tool call within `scan_window`: one alert with count, ports and address
//!   range replaces the rest of the scan's UNKNOWN_DESTINATION alerts, and one more closes it.
//!   **`NET_EGRESS_BURST`**: connects+sends in the
//!   last second above max(burst_min, mean + k·sd of the baseline's per-second counts), capped by
//!   burst_cap; divergence = rate / threshold; one alert per burst episode. Unix-domain and other
//!   non-inet sockets are not judged by L4.
//! - **L5 `PTRACE_ATTACH_DETECTED`**: any ptrace attach/seize by or onto the tree. Divergence 1.0.
//! - **L5 `PROCESS_MEMORY_ACCESS`**: `process_vm_readv`/`writev`, `pidfd_getfd` or an open of
//!   `/proc/PID/mem` onto another process. L5 requests crossing the tree's edge alert inside
//!   the learning window too.
//! - **`SENSITIVE_FILE`** / **`PERSISTENCE`**: opens of credential material; write-intent opens
//!   of persistence locations (persistence wins when both match). Refused attempts alert too.
//!   Paths seen in the baseline do not alert. Divergence 1.0, 0.5 for a refused attempt.
//! - **`DNS_ANOMALY`**: tunnelling-like names (label too long, name too long, or a long label of
//!   high entropy), resolvers other than the system's (or the baseline's), domains (last two
//!   labels) neither expected nor in the baseline. Divergence = the highest Shannon entropy
//!   (bits/char) among the query's labels.
//!
//! # Limits (honest ones)
//! - The agent's own first exec, and an exec by a process whose pid and parent were never seen
//!   (e.g. after lost fork records), start a tree and are not judged.
//! - Device+inode follows hard links and renames of an interpreter, not a byte copy; a copy made
//!   by the tree is caught when it runs (the write-then-exec cycle) and as a new binary (L3).
//! - DNS answers name an address only as the one answer to a query the tree sent to that
//!   server; an agent that runs its own DNS server and queries it can still name any address
//!   (its server's sends are in the log). DNS over TLS/HTTPS is not seen.
//! - Domains are compared by their last two labels (`x.co.uk` counts as `co.uk`).
//! - Replaying on another host uses that host's interpreter identities and resolvers.
//!
//! # Incidents
//! Every alert goes out with an id, a severity, a rule id, an RFC 3339 time and the id of its
//! [`proctor_model::Incident`], followed by [`Output::Incident`] (the incident as it is now):
//! see [`incident`] for how alerts are correlated and scored.
//!
//! Noise: nothing alerts while learning; writes under the policy's noise prefixes are no graph
//! edges; repeats of an alert key within the cooldown are counted and sent once as a follow-up
//! alert with `count` when the cooldown ends (or at [`Engine::finish`]).

mod baseline;
mod cooldown;
mod engine;
pub mod generate;
mod glob;
pub mod identity;
pub mod incident;
mod policy;
pub mod replay;
mod stats;

pub use baseline::{
    builtin_profile_for, Baseline, BaselineError, BaselineSummary, RateProfile, SchedProfile,
    BASELINE_VERSION, BUILTIN_PROFILES,
};
pub use cooldown::Cooldown;
pub use engine::{
    canonical_interpreter, parse_resolv_conf, rfc3339, Engine, EngineConfig, HostFacts, Output,
};
pub use glob::{Anchor, BoundPattern, PathPattern, PatternSet};
pub use policy::{
    parse_duration, parse_duration_ns, AllowEntry, AllowHost, EnforcePolicy, Policy, PolicyError,
    Resolver, DEFAULT_POLICY_TOML,
};
pub use stats::{entropy, jsd};
// Layering of TOML files (policy overlays, daemon config drop-ins).
pub use policy::merge_tables;
