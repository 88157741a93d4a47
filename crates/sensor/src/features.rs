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
    mount_fs("tracefs", TRACEFS_PATH)
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

/// Every feature, judged on the machine as `run` finds it: first the same preflight
/// `Sensor::load` runs (the privilege check, then the mounts it makes, tracefs), so a fresh
/// machine where nothing is mounted yet passes as `run` would. Without the privilege to load
/// eBPF nothing else can be judged honestly (a refused probe would look like a missing kernel
/// feature): that is the one error.
pub fn probe_all() -> Result<Vec<Feature>, crate::SensorError> {
    // A missing BTF or a failed mount is judged below, feature by feature.
    if let Err(e @ crate::SensorError::NotRoot) = crate::preflight() {
        return Err(e);
    }
    // A no-op when the preflight mounted it; its error when that failed (or BTF stopped the
    // preflight before it).
    let tracefs_mount = ensure_tracefs().err();
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
            None => match &tracefs_mount {
                Some(e) => {
                    format!("tracefs not mounted, and mounting it at {TRACEFS_PATH} failed: {e}")
                }
                None => "tracefs not mounted".into(),
            },
        },
        consequence: match &tracefs {
            Some(_) if syscalls => "file, network and ptrace events are recorded".into(),
            Some(_) => "proctor cannot record opens, connects or ptrace on this kernel".into(),
            None => "proctor cannot attach its syscall tracepoints without tracefs".into(),
        },
    });
    // Module and kexec calls exist only on kernels built with them (ours are not): then their
    // programs stay unattached, as there is nothing an agent could call.
    let events = Path::new(TRACEFS_PATH).join("events/syscalls");
    let has = |call: &str| events.join(format!("sys_exit_{call}")).exists();
    let (modules, kexec) = (
        has("finit_module"),
        has("kexec_load") || has("kexec_file_load"),
    );
    out.push(Feature {
        name: "module and kexec calls",
        available: modules && kexec,
        required: false,
        detail: format!(
            "{}; {}",
            if modules {
                "kernel modules: yes"
            } else {
                "no kernel modules (CONFIG_MODULES off)"
            },
            if kexec {
                "kexec: yes"
            } else {
                "no kexec (CONFIG_KEXEC, CONFIG_KEXEC_FILE off)"
            },
        ),
        consequence: if modules || kexec {
            "their calls are `privileged` records and PRIVILEGED_CALL alerts".into()
        } else {
            "the agent cannot make these calls here (ENOSYS): nothing to watch".into()
        },
    });
    // The honest check for everything else proctor loads (tp_btf programs, bpf_loop, CO-RE
    // relocations): load and attach the real programs, then let them go.
    let mut load = crate::Sensor::load(crate::SensorConfig {
        agent_id: "doctor".into(),
        ringbuf_bytes: 1 << 16,
        // With TLS capture: its syscall programs attach too, so a kernel refusing them shows.
        tls_max_bytes: Some(crate::TLS_DEFAULT_MAX_BYTES),
        ..crate::SensorConfig::default()
    });
    let plain_loads = load.as_ref().ok().map(|s| s.btf_file_reads());
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
    out.push(Feature {
        name: "bpf_rdonly_cast kfunc",
        available: plain_loads == Some(true),
        required: false,
        detail: match plain_loads {
            Some(true) => {
                "the openat program reads the opened file with plain loads, and every program \
                 the current task through the cast"
                    .into()
            }
            Some(false) if crate::has_rdonly_cast() => {
                "the kernel has the kfunc but refused it to the openat program".into()
            }
            Some(false) => "no bpf_rdonly_cast kfunc in the kernel's BTF (kernel < 6.2?)".into(),
            None => "proctor's main programs did not load".into(),
        },
        consequence: if plain_loads == Some(true) {
            "an open costs the agent one load per field of the file it opened".into()
        } else {
            "opens are read with one probe-read helper call per kernel object (~50 ns more per open); \
             from 6.2 on loading takes longer (the verifier searches the kernel's BTF by name)"
                .into()
        },
    });
    // BPF LSM: the honest check is the same as above, our LSM object loaded and attached on the
    // main one's maps.
    let lsm = match &mut load {
        Ok(s) => s.attach_lsm().map_err(|e| error_chain(&e)),
        Err(_) => Err("proctor's main programs did not load".to_string()),
    };
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
    out.push(Feature {
        name: "BPF LSM",
        available: lsm.is_ok(),
        required: false,
        detail: match &lsm {
            Ok(()) => format!(
                "bpf in the active LSM list; {} hooks loaded and attached",
                crate::lsm::HOOKS.join(", ")
            ),
            Err(e) => e.clone(),
        },
        consequence: blocking_layers(lsm.is_ok()).join("; "),
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
            "`run` holds ask actions for approval and guards proctor against signals and ptrace from the agent".into()
        } else {
            "no approval flow (ask rules are an error in shadow/enforce) and no self-protection guard for a root agent".into()
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
    Ok(out)
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

/// Which kernel layer stops each action, with BPF LSM (`lsm`) or without it: the lines the
/// start-up banner and `doctor` print.
pub fn blocking_layers(lsm: bool) -> [&'static str; 4] {
    if lsm {
        [
            "exec: BPF LSM bprm_check_security -> EPERM",
            "ptrace: BPF LSM ptrace_access_check -> EPERM",
            "network: cgroup-bpf connect/sendmsg and BPF LSM socket_connect -> EPERM",
            "files: BPF LSM file_open -> EPERM (run and attach; Landlock too for run)",
        ]
    } else {
        [
            "exec: sched_process_exec tracepoint -> SIGKILL",
            "ptrace: sys_enter_ptrace tracepoint -> SIGKILL",
            "network: cgroup-bpf connect/sendmsg -> EPERM",
            "files: Landlock -> EACCES (run only)",
        ]
    }
}

/// BPF LSM programs load and `bpf` is in the active LSM list (a cheap check; loading proctor's
/// own LSM object, [`crate::Sensor::attach_lsm`], is the one that counts).
pub fn bpf_lsm_available() -> bool {
    probe_prog(libbpf_rs::libbpf_sys::BPF_PROG_TYPE_LSM) && lsm_active_has_bpf()
}

pub const SECURITYFS_PATH: &str = "/sys/kernel/security";

/// `bpf` is in the kernel's active LSM list (mounting securityfs to read it if needed).
pub fn lsm_active_has_bpf() -> bool {
    let list = Path::new(SECURITYFS_PATH).join("lsm");
    if !list.exists() && mount_of("securityfs").is_none() {
        if let Err(e) = mount_fs("securityfs", SECURITYFS_PATH) {
            tracing::debug!("cannot mount securityfs at {SECURITYFS_PATH}: {e}");
        }
    }
    std::fs::read_to_string(list)
        .map(|s| s.trim().split(',').any(|l| l == "bpf"))
        .unwrap_or(false)
}

fn mount_fs(fstype: &str, target: &str) -> std::io::Result<()> {
    let target = std::ffi::CString::new(target).map_err(std::io::Error::other)?;
    let fs = std::ffi::CString::new(fstype).map_err(std::io::Error::other)?;
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
    tracing::info!("mounted {} at {}", fstype, target.to_string_lossy());
    Ok(())
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
