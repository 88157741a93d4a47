//! Helpers shared by proctor's tests, one home for each.
//!
//! - [`run`]: the proctor binary cargo built, `proctor run` on a command and its records read
//!   back (as JSON and as typed [`proctor_model::Record`]s), the trigger-then-expect harness of
//!   the real-kernel tests, and the privilege helpers (`require_root`, `as_nobody`).
//! - [`policy`]: policies for tests built from typed values on top of the built-in one.
//! - [`evidence`]: alerts, records and keys for the evidence tests.
//! - [`receivers`]: a real rsyslogd, an HTTP receiver, an OTLP receiver and a real Prometheus
//!   for the output and metrics tests.
//! - [`daemon`]: `proctor daemon` on a test configuration, its session directories.
//!
//! The tiers: plain `cargo test` runs everything that needs no root, as any user; the
//! real-kernel tests are whole files behind the `kernel-tests` feature of the proctor crate
//! (`make test` turns it on), and fail, never skip, without root.

pub mod daemon;
pub mod evidence;
pub mod policy;
pub mod receivers;
pub mod run;

pub use policy::{PolicyBuilder, Verdict};
pub use run::*;
