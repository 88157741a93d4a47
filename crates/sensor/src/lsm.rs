//! The BPF LSM layer (`bpf/lsm.bpf.c`): a second object, loaded only where the kernel allows BPF
//! LSM, on the main object's maps (tracked set, config, deny/allow maps, ring buffer), so its
//! decisions follow the mode and reach userspace exactly like the tracepoint and cgroup layers'.
//!
//! Where it is attached, [`Sensor::set_enforcement`] tells the kernel side (`pr_config.lsm`) that
//! exec and ptrace are decided by `bprm_check_security` and `ptrace_access_check` (EPERM before
//! the action) instead of SIGKILL from the tracepoints. `socket_connect` adds a per-task network
//! check next to the cgroup-bpf one, and `file_open` refuses the files [`Sensor::deny_open`]
//! names. On kernels without BPF LSM (ours: kernel lockdown refuses it) none of this loads,
//! and [`Sensor::attach_lsm`] says why.

use crate::{Sensor, SensorError};
use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags, OpenObject};
use proctor_probes::lsm_skel::{LsmSkel, LsmSkelBuilder};
use proctor_probes::wire::pr_file_key;
use std::collections::HashMap;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

/// The attached LSM object. Dropping it detaches the hooks.
pub struct Lsm {
    // Links before the skeleton they belong to.
    _links: Vec<libbpf_rs::Link>,
    skel: LsmSkel<'static>,
}

/// The LSM hooks and what each one does, for banners and `doctor`.
pub const HOOKS: [&str; 4] = [
    "bprm_check_security",
    "ptrace_access_check",
    "socket_connect",
    "file_open",
];

impl Sensor {
    /// Load `lsm.bpf.c` on this sensor's maps and attach its hooks. Fails (and changes nothing)
    /// where the kernel refuses BPF LSM programs or `bpf` is not in its active LSM list.
    pub fn attach_lsm(&mut self) -> Result<(), SensorError> {
        if self.lsm.is_some() {
            return Ok(());
        }
        if !crate::features::lsm_active_has_bpf() {
            return Err(SensorError::LsmInactive);
        }
        let storage: &'static mut MaybeUninit<OpenObject> =
            Box::leak(Box::new(MaybeUninit::uninit()));
        let mut open = LsmSkelBuilder::default()
            .open(storage)
            .map_err(SensorError::Open)?;
        // One set of state: every map the LSM object shares with the main one by name is the
        // main one's (libbpf dups the fd before load).
        let main: HashMap<String, RawFd> = self
            .skel
            .object()
            .maps()
            .map(|m| {
                (
                    m.name().to_string_lossy().into_owned(),
                    m.as_fd().as_raw_fd(),
                )
            })
            .collect();
        for mut m in open.open_object_mut().maps_mut() {
            let name = m.name().to_string_lossy().into_owned();
            if let Some(&fd) = main.get(&name) {
                // SAFETY: fd belongs to the main skeleton, which outlives this call; libbpf dups it.
                let fd = unsafe { BorrowedFd::borrow_raw(fd) };
                m.reuse_fd(fd).map_err(|source| SensorError::Map {
                    map: "lsm.bpf.c map shared with the main object",
                    source,
                })?;
            }
        }
        let mut skel = open.load().map_err(SensorError::LoadLsm)?;
        let mut links = Vec::new();
        let progs = &mut skel.progs;
        for prog in [
            &mut progs.pr_lsm_exec,
            &mut progs.pr_lsm_ptrace,
            &mut progs.pr_lsm_connect,
            &mut progs.pr_lsm_open,
        ] {
            let link = prog.attach_lsm().map_err(|source| SensorError::Attach {
                prog: prog.name().to_string_lossy().into_owned(),
                source,
            })?;
            self.prog_fds.push(prog.as_fd().as_raw_fd());
            links.push(link);
        }
        self.lsm = Some(Lsm {
            _links: links,
            skel,
        });
        Ok(())
    }

    /// Whether the BPF LSM programs are attached.
    pub fn lsm_attached(&self) -> bool {
        self.lsm.is_some()
    }

    /// Let tracked tasks open this file again (a reloaded policy dropped its pattern).
    pub fn undeny_open(&self, dev: u64, ino: u64) -> Result<(), SensorError> {
        let lsm = self.lsm.as_ref().ok_or(SensorError::LsmInactive)?;
        let key = pr_file_key {
            dev: crate::enforce::kernel_dev(dev),
            ino,
        };
        crate::enforce::delete_key(&lsm.skel.maps.deny_open, "deny_open", crate::as_bytes(&key))
    }

    /// Refuse opening this file (identified by `stat().st_dev` and inode) to tracked tasks: the
    /// `file_open` hook returns EPERM (enforce) or records would_block (shadow).
    pub fn deny_open(&self, dev: u64, ino: u64) -> Result<(), SensorError> {
        let lsm = self.lsm.as_ref().ok_or(SensorError::LsmInactive)?;
        let key = pr_file_key {
            dev: crate::enforce::kernel_dev(dev),
            ino,
        };
        lsm.skel
            .maps
            .deny_open
            .update(crate::as_bytes(&key), &1u32.to_ne_bytes(), MapFlags::ANY)
            .map_err(|source| SensorError::Map {
                map: "deny_open",
                source,
            })
    }
}
