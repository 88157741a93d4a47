//! `--metrics ADDR`: the Prometheus endpoint of a monitoring run, wired to the sensor (per-program
//! kernel stats, ring-buffer fill) and to /proc (proctor's own CPU and memory). The endpoint
//! itself lives in `proctor_metrics`; this module is the glue a live run needs.

use proctor_metrics::{Metrics, MetricsConfig, ProcessStat, ProgStat, Recorder, Server};
use proctor_sensor::{procfs, Sensor};
use std::sync::Arc;

/// What `--metrics` asks for.
#[derive(Clone, Debug)]
pub struct MetricsOpts {
    pub config: MetricsConfig,
    /// proctor's version, in `proctor_build_info`.
    pub version: String,
}

/// A running endpoint: the shared metrics and the HTTP thread (stopped when dropped).
pub struct Endpoint {
    pub metrics: Arc<Metrics>,
    server: Server,
}

impl Endpoint {
    /// Serve the endpoint for a run on `sensor`; returns it and the run loop's recorder. A bind
    /// failure is an error (before the agent starts); a kernel that refuses per-program stats
    /// is said once on stderr and those series are left out.
    pub fn start(opts: &MetricsOpts, sensor: &Sensor) -> anyhow::Result<(Endpoint, Recorder)> {
        let metrics = Arc::new(Metrics::new(&opts.version));
        match sensor.program_stats() {
            Ok(stats) => metrics.set_programs(move || {
                stats
                    .read()
                    .into_iter()
                    .map(|(name, run_time_ns, run_cnt)| ProgStat {
                        name,
                        run_time_ns,
                        run_cnt,
                    })
                    .collect()
            }),
            Err(e) => eprintln!("proctor: metrics without proctor_bpf_program_* series: {e}"),
        }
        metrics.set_process(process_stat);
        metrics.set_agents(1, 1);
        let server = Server::start(&opts.config, metrics.clone())?;
        eprintln!(
            "proctor: metrics on http://{}/metrics (health: /healthz)",
            server.addr()
        );
        let recorder = Recorder::new(metrics.clone());
        Ok((Endpoint { metrics, server }, recorder))
    }

    /// The address served (the port chosen when the configuration said 0).
    pub fn addr(&self) -> std::net::SocketAddr {
        self.server.addr()
    }

    /// Sample what the sensor's rings hold now.
    pub fn sample(&self, sensor: &Sensor) {
        for (ring, used, size) in sensor.ring_fill() {
            self.metrics.ring(ring, used, size);
        }
    }
}

/// proctor's CPU time (user + system) and resident memory, from /proc.
fn process_stat() -> Option<ProcessStat> {
    let pid = std::process::id();
    let st = procfs::stat(pid)?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let rss_kb: u64 = procfs::status_field(pid, "VmRSS:")?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(ProcessStat {
        cpu_seconds: (st.utime + st.stime) as f64 / hz,
        resident_bytes: rss_kb * 1024,
    })
}

/// Serve the outputs' sent/dropped/failed counters on the endpoint, read at scrape time.
pub fn watch_outputs(endpoint: &Endpoint, outputs: proctor_outputs::StatsWatcher) {
    endpoint.metrics.add_outputs(move || {
        outputs
            .stats()
            .into_iter()
            .map(|s| proctor_metrics::OutputStat {
                name: s.name,
                sent: s.sent,
                dropped: s.dropped,
                failed: s.failed,
            })
            .collect()
    });
}
