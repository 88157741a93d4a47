//! proctor's runtime: everything between the command line and the library crates (sensor,
//! detect, evidence, intent) that a monitoring run needs.
//!
//! - [`session`]: the run/attach session sequence (start, enforcement set-up, launch, loop, stop).
//! - [`monitor`]: the kernel-facing loop (poll the sensor, control channel, supervisor reports).
//! - [`pipeline`]: the routing half of the loop as a pure pipeline over records (audit log,
//!   detection, alerts, sinks, loss), tested without root.
//! - [`enforcement`] and [`confine`]: the policy's `[enforce]` section as kernel state, Landlock.
//! - [`seccomp`]: the seccomp supervisor (self-protection guard and ask rules).
//! - [`approval`]: the approval protocol (message types, digest), its hub and socket server.
//! - [`detection`]: the detection engine inside a live run.
//! - [`tls`]: `--capture-tls`: hooked libraries, blind binaries, the plaintext pipeline.
//! - [`kseq`]: gaps in the kernel's record numbers, declared and alerted on.
//! - [`metrics`]: `--metrics`: the Prometheus endpoint wired to the sensor and /proc.
//! - [`config`]: the host configuration file and drop-ins; [`daemon`]: `proctor daemon`, one
//!   sensor and a pipeline per agent session.
//!
//! Module dependencies point one way (no cycles): session -> {monitor, seccomp, enforcement,
//! detection}; monitor -> {pipeline, seccomp, enforcement, tls, detection}; pipeline ->
//! {detection, seccomp, tls}; seccomp -> {approval, enforcement}; enforcement -> confine;
//! approval, confine, detection and tls depend on no other module here.

pub mod approval;
pub mod config;
pub mod confine;
pub mod control;
pub mod daemon;
pub mod detection;
pub mod enforcement;
pub mod kseq;
pub mod metrics;
pub mod monitor;
pub mod pipeline;
pub mod seccomp;
pub mod session;
pub mod thp;
pub mod tls;
