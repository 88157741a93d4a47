//! What this kernel offers proctor, feature by feature, and what proctor does where one is
//! missing (`proctor doctor`). Every check asks the kernel (a syscall, a probe load, a file it
//! exports); nothing is inferred from version numbers.

use serde::Serialize;
use std::path::Path;

pub const BTF_PATH: &str = "/sys/kernel/btf/vmlinux";
pub const TRACEFS_PATH: &str = "/sys/kernel/tracing";

#[derive(Debug, Clone, Serialize)]
pub struct Feature {
    pub name: &'static str,
    pub available: bool,
    /// Required for `proctor run`/`attach` to monitor at all.
    pub required: bool,
    /// What was found (a path, a version, an error).
    pub detail: String,
    /// What proctor does because of it.
    pub consequence: String,
}

/// Mount tracefs if it is not mounted: libbpf resolves syscall tracepoints through it.
pub fn ensure_tracefs() -> std::io::Result<()> {
    if mount_of("tracefs").is_some() || Path::new(TRACEFS_PATH).join("events").exists() {
        return Ok(());
    }
    let target = std::ffi::CString::new(TRACEFS_PATH).expect("no NUL");
    let fs = std::ffi::CString::new("tracefs").expect("no NUL");
    // SAFETY: all pointers are valid NUL-terminated strings; data is NULL.
    let rc = unsafe {
        libc::mount(
            fs.as_ptr(),
            target.as_ptr(),
            fs.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    tracing::info!("mounted tracefs at {TRACEFS_PATH}");
    Ok(())
}

/// Mount point of the first filesystem of type `fstype` in /proc/self/mountinfo.
pub fn mount_of(fstype: &str) -> Option<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|line| {
        // "<id> <parent> <maj:min> <root> <mount point> <opts> [optional...] - <fstype> <src> <opts>"
        let (left, right) = line.split_once(" - ")?;
        let ty = right.split_whitespace().next()?;
        (ty == fstype).then(|| left.split_whitespace().nth(4).map(str::to_string))?
    })
}

pub fn probe_all() -> Vec<Feature> {
    let mut out = Vec::new();
    let btf = Path::new(BTF_PATH).exists();
    out.push(Feature {
        name: "BTF",
        available: btf,
        required: true,
        detail: if btf {
            BTF_PATH.into()
        } else {
            format!("{BTF_PATH} missing")
        },
        consequence: if btf {
            "CO-RE programs relocate to this kernel".into()
        } else {
            "proctor cannot load: its programs need kernel BTF (CONFIG_DEBUG_INFO_BTF=y)".into()
        },
    });
    let rb = probe_map(libbpf_rs::libbpf_sys::BPF_MAP_TYPE_RINGBUF);
    out.push(Feature {
        name: "ring buffer",
        available: rb,
        required: true,
        detail: if rb {
            "BPF_MAP_TYPE_RINGBUF".into()
        } else {
            "not supported (kernel < 5.8?)".into()
        },
        consequence: if rb {
            "events reach userspace in order; losses are counted per kind".into()
        } else {
            "proctor cannot run: it needs the BPF ring buffer".into()
        },
    });
    let tracefs = mount_of("tracefs");
    let syscalls = Path::new(TRACEFS_PATH)
        .join("events/syscalls/sys_enter_openat")
        .exists();
    out.push(Feature {
        name: "syscall tracepoints",
        available: tracefs.is_some() && syscalls,
        required: true,
        detail: match &tracefs {
            Some(m) if syscalls => format!("tracefs at {m}"),
            Some(m) => {
                format!("tracefs at {m} but no syscalls events (CONFIG_FTRACE_SYSCALLS off?)")
            }
            None => "tracefs not mounted".into(),
        },
        consequence: match &tracefs {
            Some(_) if syscalls => "file, network and ptrace events are recorded".into(),
            Some(_) => "proctor cannot record opens, connects or ptrace on this kernel".into(),
            None => format!("proctor mounts tracefs at {TRACEFS_PATH} when it starts"),
        },
    });
    // The honest check for everything else proctor loads (tp_btf programs, bpf_loop, CO-RE
    // relocations): load and attach the real programs, then let them go.
    let load = crate::Sensor::load(crate::SensorConfig {
        agent_id: "doctor".into(),
        ringbuf_bytes: 1 << 16,
        // With TLS capture: its syscall programs attach too, so a kernel refusing them shows.
        tls_max_bytes: Some(crate::TLS_DEFAULT_MAX_BYTES),
    });
    out.push(Feature {
        name: "proctor's eBPF programs",
        available: load.is_ok(),
        required: true,
        detail: match &load {
            Ok(s) => format!("{} programs loaded and attached", s.program_count()),
            Err(e) => error_chain(e),
        },
        consequence: if load.is_ok() {
            "process tree followed in the kernel at fork; scheduler summaries aggregated in the kernel".into()
        } else {
            "proctor cannot monitor on this kernel (RUST_LOG=debug shows the verifier log)".into()
        },
    });
    drop(load);
    let cg2 = mount_of("cgroup2");
    out.push(Feature {
        name: "cgroup v2",
        available: cg2.is_some(),
        required: false,
        detail: cg2.clone().unwrap_or_else(|| "not mounted".into()),
        consequence: if cg2.is_some() {
            "available for per-agent cgroup network enforcement".into()
        } else {
            "no per-agent cgroup: network enforcement by cgroup-bpf is unavailable".into()
        },
    });
    let lsm = bpf_lsm_available();
    out.push(Feature {
        name: "BPF LSM",
        available: lsm,
        required: false,
        detail: if lsm {
            "bpf in the active LSM list".into()
        } else {
            "not available (LSM programs refused or bpf not in lsm=)".into()
        },
        consequence: if lsm {
            "blocking can use LSM hooks".into()
        } else {
            "blocking falls back to cgroup-bpf, Landlock and tracepoint SIGKILL".into()
        },
    });
    let landlock = landlock_abi();
    out.push(Feature {
        name: "Landlock",
        available: landlock.is_some(),
        required: false,
        detail: landlock.map_or_else(|| "not available".into(), |v| format!("ABI v{v}")),
        consequence: if landlock.is_some() {
            "file-access rules can confine an agent started by `run`".into()
        } else {
            "no unprivileged file confinement for `run`".into()
        },
    });
    let notif = std::fs::read_to_string("/proc/sys/kernel/seccomp/actions_avail")
        .map(|s| s.split_whitespace().any(|a| a == "user_notif"))
        .unwrap_or(false);
    out.push(Feature {
        name: "seccomp user notification",
        available: notif,
        required: false,
        detail: if notif {
            "user_notif in actions_avail".into()
        } else {
            "not available".into()
        },
        consequence: if notif {
            "risky actions can be held for approval".into()
        } else {
            "no approval flow: ask rules cannot hold actions".into()
        },
    });
    let uprobe = Path::new("/sys/bus/event_source/devices/uprobe/type").exists();
    out.push(Feature {
        name: "uprobes",
        available: uprobe,
        required: false,
        detail: if uprobe {
            "uprobe PMU present".into()
        } else {
            "no uprobe PMU".into()
        },
        consequence: if uprobe {
            "TLS plaintext capture possible when asked".into()
        } else {
            "no TLS plaintext capture".into()
        },
    });
    out
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn probe_prog(ty: libbpf_rs::libbpf_sys::bpf_prog_type) -> bool {
    // SAFETY: libbpf's probe loads a trivial program of `ty` and unloads it; no pointers passed.
    unsafe { libbpf_rs::libbpf_sys::libbpf_probe_bpf_prog_type(ty, std::ptr::null()) == 1 }
}

fn probe_map(ty: libbpf_rs::libbpf_sys::bpf_map_type) -> bool {
    // SAFETY: as above, for a map of type `ty`.
    unsafe { libbpf_rs::libbpf_sys::libbpf_probe_bpf_map_type(ty, std::ptr::null()) == 1 }
}

/// BPF LSM programs load and `bpf` is in the active LSM list.
pub fn bpf_lsm_available() -> bool {
    probe_prog(libbpf_rs::libbpf_sys::BPF_PROG_TYPE_LSM) && lsm_active_has_bpf()
}

fn lsm_active_has_bpf() -> bool {
    std::fs::read_to_string("/sys/kernel/security/lsm")
        .map(|s| s.trim().split(',').any(|l| l == "bpf"))
        .unwrap_or(false)
}

/// Landlock ABI version, asked from the kernel (LANDLOCK_CREATE_RULESET_VERSION).
pub fn landlock_abi() -> Option<i64> {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with the VERSION flag the kernel reads no attr and returns the ABI version.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    (v > 0).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_parsing_finds_proc() {
        // /proc is mounted in every environment these tests run in.
        assert_eq!(mount_of("proc").as_deref(), Some("/proc"));
        assert_eq!(mount_of("no-such-fs"), None);
    }
}
