//! Real-kernel tests of what a host service needs from every run: who acted (uid, gid, login
//! uid, cgroup) on each record as the kernel saw it, a string time beside `ts_ns`, the host in
//! `sensor_start`, and an output directory only its owner can read.

// Real-kernel tier: `make test` (cargo test --features proctor/kernel-tests) runs it as root.
#![cfg(feature = "kernel-tests")]

use proctor_model::{Event, Identity};
use proctor_testkit::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// The agent prints what it is (its cgroup v2 directory's inode and its login uid), then runs
/// `cat` as nobody: the records must say the same, read in the kernel.
const AGENT: &str = r#"
mnt=$(findmnt -t cgroup2 -n -o TARGET | head -n 1)
cg=$(grep '^0::' /proc/self/cgroup | cut -d: -f3)
echo "cgroup $(stat -c %i "$mnt$cg")"
echo "loginuid $(cat /proc/self/loginuid)"
setpriv --reuid=65534 --regid=65534 --clear-groups /bin/cat /etc/hostname >/dev/null
"#;

fn printed(stdout: &str, key: &str) -> u64 {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(key)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("the agent did not print {key}: {stdout}"))
}

#[test]
fn records_carry_the_kernels_uid_gid_loginuid_and_cgroup() {
    let r = run_under(&[], &["/bin/sh", "-c", AGENT]);
    assert_eq!(r.code(), Some(0), "stderr: {}", r.stderr());
    let stdout = String::from_utf8_lossy(&r.out.stdout).into_owned();
    let cgroup = printed(&stdout, "cgroup ");
    let loginuid = printed(&stdout, "loginuid ") as u32;
    let obs = r.observations();
    let cat = obs
        .iter()
        .find(|o| matches!(&o.event, Event::FileOpen(f) if f.path.0 == b"/etc/hostname"))
        .unwrap_or_else(|| panic!("no open of /etc/hostname in {obs:?}"));
    assert_eq!(
        cat.identity,
        Some(Identity {
            uid: 65534,
            gid: 65534,
            loginuid,
            cgroup_id: cgroup,
            container: None,
        }),
        "the open after setpriv runs as nobody, in the agent's cgroup"
    );
    let shell = obs
        .iter()
        .find(|o| o.pid == r.agent_pid() && matches!(o.event, Event::Exec(_)))
        .expect("the agent's exec");
    assert_eq!(
        shell.identity.map(|i| (i.uid, i.gid, i.cgroup_id)),
        Some((0, 0, cgroup)),
        "the agent itself runs as root"
    );
    for o in &obs {
        if !matches!(o.event, Event::Sched(_) | Event::Lost(_)) {
            assert!(
                o.identity.is_some(),
                "a kernel record without identity: {o:?}"
            );
        }
    }
}

#[test]
fn every_record_has_a_string_time_and_sensor_start_names_the_host() {
    let r = trigger(&["/bin/true"]);
    assert_eq!(r.code(), Some(0), "stderr: {}", r.stderr());
    assert!(r.records.len() > 3, "{:?}", r.records);
    for rec in &r.records {
        let ts = rec["ts_ns"].as_u64().expect("ts_ns");
        assert_eq!(
            rec["time"].as_str(),
            Some(proctor_model::rfc3339(ts).as_str()),
            "{rec}"
        );
    }
    let start = r.of_type("sensor_start");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(start[0]["host"].as_str(), Some(host.trim()));
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn the_output_directory_is_private_to_its_owner() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("runs/one");
    // A sensitive read raises an alert, so the certificate directory is written too.
    let out = run_command(
        &dir,
        &["--baseline", "300ms"],
        &["/bin/sh", "-c", "sleep 1; cat /etc/shadow >/dev/null"],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    for d in [tmp.path().join("runs"), dir.clone(), dir.join("alerts")] {
        assert_eq!(mode(&d), 0o700, "{}", d.display());
    }
    let mut checked = Vec::new();
    for d in [dir.clone(), dir.join("alerts")] {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            // Public keys are for everyone; sockets are checked by their peer's credentials.
            if p.is_dir() || name.ends_with(".pub.pem") || name.ends_with(".sock") {
                continue;
            }
            assert_eq!(mode(&p), 0o600, "{} is readable by others", p.display());
            assert_eq!(std::fs::metadata(&p).unwrap().uid(), 0);
            checked.push(name);
        }
    }
    for must in [
        "audit.jsonl",
        "alerts.jsonl",
        "incidents.jsonl",
        "baseline.json",
    ] {
        assert!(
            checked.iter().any(|n| n == must),
            "{must} missing: {checked:?}"
        );
    }
    assert!(
        checked.iter().any(|n| n.ends_with(".cal")),
        "no certificate written: {checked:?}"
    );
    // The string times and identity members are inside the chain and the signatures.
    let v = proctor().arg("verify").arg(&dir).output().unwrap();
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stdout));
}
