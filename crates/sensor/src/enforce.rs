//! Enforcement in the kernel, layered from what the kernel allows. Where BPF LSM is available,
//! [`crate::lsm`] refuses exec, ptrace, connects and sensitive opens with EPERM before they happen
//! and the exec/ptrace tracepoints only observe; elsewhere (kernel lockdown refuses BPF LSM) these
//! layers stand alone:
//! - **exec**: a binary named by the policy is identified by device+inode; at
//!   `sched_process_exec` the new image gets SIGKILL before it runs an instruction.
//! - **ptrace**: an attach/seize by or onto the tracked tree: the tracer gets SIGKILL at syscall
//!   entry, before it can use the attachment.
//! - **network**: `run` puts the agent in its own cgroup v2; cgroup-bpf connect4/6 and sendmsg4/6
//!   programs make connect()/sendto() to destinations outside the allow maps fail with EPERM, for
//!   every process of that cgroup and none outside it.
//!
//! The mode (audit, shadow, enforce) lives in a map, so it can change while the agent runs.

use crate::{Sensor, SensorError};
use libbpf_rs::{MapCore, MapFlags};
use proctor_probes::wire::{pr_allow4_key, pr_allow6_key, pr_config, pr_file_key};
use std::fs::File;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};

pub use proctor_model::Mode;

/// The mode as the kernel's `pr_config.mode` holds it.
fn mode_wire(m: Mode) -> u32 {
    match m {
        Mode::Audit => 0,
        Mode::Shadow => 1,
        Mode::Enforce => 2,
    }
}

/// A decision record for the audit log (typed in the model).
pub use proctor_model::DecisionRecord;

/// Userspace st_dev encoding to the kernel's dev_t (MKDEV: major << 20 | minor).
pub fn kernel_dev(user_dev: u64) -> u64 {
    let major = libc::major(user_dev) as u64;
    let minor = libc::minor(user_dev) as u64;
    (major << 20) | minor
}

/// What the kernel enforces right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnforceConfig {
    pub mode: Mode,
    pub block_ptrace: bool,
    pub block_net: bool,
    /// Operator containment: every connect/send of the agent's cgroup refused, in any mode.
    pub isolate: bool,
    /// The BPF LSM programs are attached and decide exec and ptrace (the tracepoints only
    /// observe); see [`Sensor::attach_lsm`].
    pub lsm: bool,
}

impl Sensor {
    /// Set the mode and which layers are active; takes effect at once for every tracked process.
    pub fn set_enforcement(&self, c: &EnforceConfig) -> Result<(), SensorError> {
        let cfg = pr_config {
            mode: mode_wire(c.mode),
            block_ptrace: c.block_ptrace as u32,
            block_net: c.block_net as u32,
            isolate: c.isolate as u32,
            lsm: c.lsm as u32,
            _pad: 0,
        };
        self.skel
            .maps
            .pr_config_map
            .update(&0u32.to_ne_bytes(), crate::as_bytes(&cfg), MapFlags::ANY)
            .map_err(|source| SensorError::Map {
                map: "pr_config_map",
                source,
            })
    }

    /// Refuse executing this file (identified by `stat().st_dev` and inode).
    pub fn deny_exec(&self, dev: u64, ino: u64) -> Result<(), SensorError> {
        let key = pr_file_key {
            dev: kernel_dev(dev),
            ino,
        };
        self.skel
            .maps
            .deny_exec
            .update(crate::as_bytes(&key), &1u32.to_ne_bytes(), MapFlags::ANY)
            .map_err(|source| SensorError::Map {
                map: "deny_exec",
                source,
            })
    }

    /// Refuse executing this file again (a reloaded policy dropped it).
    pub fn undeny_exec(&self, dev: u64, ino: u64) -> Result<(), SensorError> {
        let key = pr_file_key {
            dev: kernel_dev(dev),
            ino,
        };
        delete_key(
            &self.skel.maps.deny_exec,
            "deny_exec",
            crate::as_bytes(&key),
        )
    }

    /// Stop allowing egress to `net/prefix` on `port` (an entry a reloaded policy dropped): the
    /// exact entry [`Sensor::allow_net`] made, so a wider or narrower entry is untouched.
    pub fn disallow_net(
        &self,
        net: IpAddr,
        prefix: u8,
        port: Option<u16>,
    ) -> Result<(), SensorError> {
        let (map, key) = allow_key(
            &self.skel.maps.allow4,
            &self.skel.maps.allow6,
            net,
            prefix,
            port,
        );
        delete_key(map, "allow4/allow6", &key)
    }

    /// Allow egress to `net/prefix`, on `port` or on any port.
    pub fn allow_net(&self, net: IpAddr, prefix: u8, port: Option<u16>) -> Result<(), SensorError> {
        allow_in(
            &self.skel.maps.allow4,
            &self.skel.maps.allow6,
            net,
            prefix,
            port,
        )
    }

    /// A handle on the network allowlist maps that another thread can own: the approval
    /// supervisor asks it what the kernel allows and adds approved destinations.
    pub fn net_allow(&self) -> Result<NetAllow, SensorError> {
        let err = |map: &'static str| move |source| SensorError::Map { map, source };
        Ok(NetAllow {
            v4: libbpf_rs::MapHandle::try_from(&self.skel.maps.allow4).map_err(err("allow4"))?,
            v6: libbpf_rs::MapHandle::try_from(&self.skel.maps.allow6).map_err(err("allow6"))?,
        })
    }

    /// Attach the network enforcement programs and the TLS ClientHello reader (SNI of every
    /// TLS connection, observe only) to a cgroup (v2).
    pub fn attach_cgroup(&mut self, cgroup: &AgentCgroup) -> Result<(), SensorError> {
        use std::os::fd::AsFd;
        let fd = cgroup.dir.as_raw_fd();
        let progs = &mut self.skel.progs;
        for prog in [
            &mut progs.pr_cg_connect4,
            &mut progs.pr_cg_connect6,
            &mut progs.pr_cg_sendmsg4,
            &mut progs.pr_cg_sendmsg6,
            &mut progs.pr_cg_sni,
        ] {
            let link = prog
                .attach_cgroup(fd)
                .map_err(|source| SensorError::Attach {
                    prog: prog.name().to_string_lossy().into_owned(),
                    source,
                })?;
            self.prog_fds.push(prog.as_fd().as_raw_fd());
            self._links.push(link);
        }
        Ok(())
    }

    /// Enforcement decisions decoded since the previous call.
    pub fn take_decisions(&mut self) -> Vec<DecisionRecord> {
        std::mem::take(&mut self.decisions)
    }
}

/// The agent's own cgroup v2, created under the cgroup2 mount and removed on drop (once its
/// processes are gone).
pub struct AgentCgroup {
    pub path: PathBuf,
    dir: File,
    procs: File,
}

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("no cgroup v2 hierarchy is mounted (network enforcement needs one)")]
    NoCgroup2,
    #[error("cannot create cgroup {path}")]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl AgentCgroup {
    pub fn create(name: &str) -> Result<AgentCgroup, CgroupError> {
        let root = crate::features::mount_of("cgroup2").ok_or(CgroupError::NoCgroup2)?;
        let path = Path::new(&root).join("proctor").join(name);
        let err = |source| CgroupError::Create {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&path).map_err(err)?;
        let dir = File::open(&path).map_err(err)?;
        let procs = std::fs::OpenOptions::new()
            .write(true)
            .open(path.join("cgroup.procs"))
            .map_err(err)?;
        Ok(AgentCgroup { path, dir, procs })
    }

    /// Raw fd of the cgroup's directory, to attach more programs to it.
    pub fn dir_fd(&self) -> RawFd {
        self.dir.as_raw_fd()
    }

    /// Raw fd of `cgroup.procs`, for a forked child to join with [`join_cgroup_raw`].
    pub fn procs_fd(&self) -> RawFd {
        self.procs.as_raw_fd()
    }

    /// Move a running process (all its threads) into the cgroup.
    pub fn add(&self, pid: u32) -> std::io::Result<()> {
        std::fs::write(self.path.join("cgroup.procs"), pid.to_string())
    }

    /// Freeze (true) or thaw (false) every process of the cgroup.
    pub fn freeze(&self, frozen: bool) -> std::io::Result<()> {
        std::fs::write(
            self.path.join("cgroup.freeze"),
            if frozen { "1" } else { "0" },
        )
    }

    /// SIGKILL every process of the cgroup at once (cgroup.kill, Linux 5.14+).
    pub fn kill_all(&self) -> std::io::Result<()> {
        std::fs::write(self.path.join("cgroup.kill"), "1")
    }
}

impl Drop for AgentCgroup {
    fn drop(&mut self) {
        // Fails with EBUSY while descendants of the agent still live there; they keep the
        // cgroup (and its programs stay attached until proctor exits and the links close).
        if let Err(e) = std::fs::remove_dir(&self.path) {
            tracing::warn!("cannot remove cgroup {}: {e}", self.path.display());
        }
    }
}

/// Move the calling process into the cgroup whose `cgroup.procs` is open as `procs_fd`
/// ("0" means the writer). Async-signal-safe: for a forked child before exec.
pub fn join_cgroup_raw(procs_fd: RawFd) -> std::io::Result<()> {
    // SAFETY: writes one byte from a static buffer to an fd the caller owns.
    let n = unsafe { libc::write(procs_fd, b"0".as_ptr().cast(), 1) };
    if n != 1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Resume a process a blocked PTRACE_ATTACH left stopped (its SIGSTOP was already queued when
/// the tracer died).
pub fn resume_if_stopped(pid: u32) {
    if matches!(crate::procfs::state(pid), Some('T') | Some('t')) {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(pid as i32, libc::SIGCONT) };
    }
}

/// The allow map an entry goes in (v4 or v6) and its LPM key.
fn allow_key<'m>(
    v4: &'m dyn MapCore,
    v6: &'m dyn MapCore,
    net: IpAddr,
    prefix: u8,
    port: Option<u16>,
) -> (&'m dyn MapCore, Vec<u8>) {
    let port = port.unwrap_or(0).to_be_bytes();
    match net {
        IpAddr::V4(a) => (
            v4,
            crate::as_bytes(&pr_allow4_key {
                prefixlen: 16 + u32::from(prefix.min(32)),
                port,
                addr: a.octets(),
                _pad: [0; 2],
            })
            .to_vec(),
        ),
        IpAddr::V6(a) => (
            v6,
            crate::as_bytes(&pr_allow6_key {
                prefixlen: 16 + u32::from(prefix.min(128)),
                port,
                addr: a.octets(),
                _pad: [0; 2],
            })
            .to_vec(),
        ),
    }
}

fn allow_in(
    v4: &dyn MapCore,
    v6: &dyn MapCore,
    net: IpAddr,
    prefix: u8,
    port: Option<u16>,
) -> Result<(), SensorError> {
    let (map, key) = allow_key(v4, v6, net, prefix, port);
    map.update(&key, &1u32.to_ne_bytes(), MapFlags::ANY)
        .map_err(|source| SensorError::Map {
            map: "allow4/allow6",
            source,
        })
}

/// Delete `key` from `map`; a key that is not there is no error (removing twice is harmless).
pub(crate) fn delete_key(
    map: &dyn MapCore,
    name: &'static str,
    key: &[u8],
) -> Result<(), SensorError> {
    match map.delete(key) {
        Err(e) if e.kind() == libbpf_rs::ErrorKind::NotFound => Ok(()),
        r => r.map_err(|source| SensorError::Map { map: name, source }),
    }
}

/// The network allowlist as the kernel sees it (the cgroup-bpf programs' LPM tries), usable
/// from any thread.
pub struct NetAllow {
    v4: libbpf_rs::MapHandle,
    v6: libbpf_rs::MapHandle,
}

impl NetAllow {
    /// Would the kernel layer let a connect to `ip:port` through? The same two lookups as the
    /// BPF side (`net_allowed4/6` in enforce.h): this port, then any port.
    pub fn allows(&self, ip: IpAddr, port: u16) -> bool {
        let lookup =
            |m: &dyn MapCore, key: &[u8]| matches!(m.lookup(key, MapFlags::ANY), Ok(Some(_)));
        for p in [port, 0] {
            let hit = match ip {
                IpAddr::V4(a) => lookup(
                    &self.v4,
                    crate::as_bytes(&pr_allow4_key {
                        prefixlen: 48,
                        port: p.to_be_bytes(),
                        addr: a.octets(),
                        _pad: [0; 2],
                    }),
                ),
                IpAddr::V6(a) => lookup(
                    &self.v6,
                    crate::as_bytes(&pr_allow6_key {
                        prefixlen: 16 + 128,
                        port: p.to_be_bytes(),
                        addr: a.octets(),
                        _pad: [0; 2],
                    }),
                ),
            };
            if hit {
                return true;
            }
        }
        false
    }

    /// Allow `ip:port` from now on (an approved destination).
    pub fn allow(&self, ip: IpAddr, port: u16) -> Result<(), SensorError> {
        let bits = if ip.is_ipv4() { 32 } else { 128 };
        allow_in(&self.v4, &self.v6, ip, bits, Some(port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_dev_is_the_inverse_of_user_dev() {
        let user = libc::makedev(253, 7);
        let k = kernel_dev(user);
        assert_eq!(k, (253 << 20) | 7);
        assert_eq!(crate::decode::user_dev(k), user);
    }
}
