//! Which container a process runs in, read from the path of its cgroup v2 directory as the
//! kernel names it. Container runtimes put every container in a cgroup of their own, named after
//! the container's id, in a handful of layouts:
//!
//! | runtime | cgroup v2 path (systemd driver / cgroupfs driver) |
//! |---|---|
//! | docker | `/system.slice/docker-ID.scope` / `/docker/ID` |
//! | podman | `/machine.slice/libpod-ID.scope` (rootless: under `user@UID.service/`) / `/libpod_parent/libpod-ID` |
//! | containerd (CRI) | `/kubepods.slice/kubepods-QOS.slice/kubepods-QOS-podUID.slice/cri-containerd-ID.scope` / `/kubepods/QOS/podUID/ID` |
//! | CRI-O | `.../kubepods-QOS-podUID.slice/crio-ID.scope` |
//!
//! The path is not trusted: a process with write access to its own cgroup (a container given
//! cgroup delegation) can create sub-cgroups with any name, including one shaped like another
//! container's. So the *outermost* container component wins (a container cannot create cgroups
//! above its own), ids must be exactly 64 lowercase hex digits and pod UIDs a UUID, and nothing
//! else of the path is ever copied into a record: what a record carries is a runtime from a
//! fixed list, a hex id and a UUID, or nothing.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The runtime that made a container's cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContainerRuntime {
    Docker,
    Podman,
    Containerd,
    CriO,
    /// A Kubernetes container under a pod cgroup whose name does not say the runtime (the
    /// cgroupfs driver names it by its bare id).
    Cri,
}

impl ContainerRuntime {
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerRuntime::Docker => "docker",
            ContainerRuntime::Podman => "podman",
            ContainerRuntime::Containerd => "containerd",
            ContainerRuntime::CriO => "cri-o",
            ContainerRuntime::Cri => "cri",
        }
    }

    pub fn parse(s: &str) -> Option<ContainerRuntime> {
        Some(match s {
            "docker" => ContainerRuntime::Docker,
            "podman" => ContainerRuntime::Podman,
            "containerd" => ContainerRuntime::Containerd,
            "cri-o" => ContainerRuntime::CriO,
            "cri" => ContainerRuntime::Cri,
            _ => return None,
        })
    }
}

/// A container's identity as its cgroup names it. Fixed-size (so [`crate::Identity`] stays
/// `Copy`); in JSON, flattened beside the other identity members:
/// `"container_runtime": "podman", "container_id": "<64 hex>", "pod_uid": "<uuid>"` (the last
/// only under a Kubernetes pod).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Container {
    pub runtime: ContainerRuntime,
    id: [u8; 32],
    pod_uid: Option<[u8; 16]>,
}

impl Container {
    /// The container id as runtimes print it (64 lowercase hex digits; `docker ps` and
    /// `podman ps` show its first 12).
    pub fn id(&self) -> String {
        hex::encode(self.id)
    }

    /// The Kubernetes pod UID (`kubectl get pod -o jsonpath='{.metadata.uid}'`), if any.
    pub fn pod_uid(&self) -> Option<String> {
        self.pod_uid.map(|u| {
            let h = hex::encode(u);
            format!(
                "{}-{}-{}-{}-{}",
                &h[..8],
                &h[8..12],
                &h[12..16],
                &h[16..20],
                &h[20..]
            )
        })
    }

    /// From the three JSON members; None unless all present ones are well formed.
    pub fn from_fields(runtime: &str, id: &str, pod_uid: Option<&str>) -> Option<Container> {
        Some(Container {
            runtime: ContainerRuntime::parse(runtime)?,
            id: hex64(id.as_bytes())?,
            pod_uid: match pod_uid {
                Some(u) => Some(uuid(u.as_bytes(), b'-')?),
                None => None,
            },
        })
    }

    /// The container a cgroup v2 path (as in `/proc/PID/cgroup` after `0::`, or relative to the
    /// cgroup2 mount) belongs to: the outermost component any runtime's layout names. Any bytes
    /// are accepted; None when no layout matches.
    pub fn from_cgroup_path(path: &[u8]) -> Option<Container> {
        let parts: Vec<&[u8]> = path
            .split(|&b| b == b'/')
            .filter(|p| !p.is_empty())
            .collect();
        let mut pod: Option<[u8; 16]> = None;
        let mut kube = false;
        for (i, &p) in parts.iter().enumerate() {
            let prev = i.checked_sub(1).map(|j| parts[j]);
            if p == b"kubepods" || p == b"kubepods.slice" {
                kube = true;
            }
            if kube && pod.is_none() {
                pod = pod_of(p);
                if pod.is_some() {
                    continue;
                }
            }
            let found = runtime_of(p, prev).or_else(|| {
                // cgroupfs driver under a pod: the container's cgroup is its bare id.
                (pod.is_some() && prev.and_then(pod_of).is_some())
                    .then(|| hex64(p).map(|id| (ContainerRuntime::Cri, id)))
                    .flatten()
            });
            if let Some((runtime, id)) = found {
                return Some(Container {
                    runtime,
                    id,
                    pod_uid: if kube { pod } else { None },
                });
            }
        }
        None
    }
}

/// A component naming a container by one runtime's convention (`prev` is the component above
/// it, for the cgroupfs layouts `/docker/ID` and `/libpod_parent/libpod-ID`).
fn runtime_of(p: &[u8], prev: Option<&[u8]>) -> Option<(ContainerRuntime, [u8; 32])> {
    // Conmon (podman's and CRI-O's monitor) has a scope of its own beside the container's;
    // it is not in the container.
    if p.starts_with(b"libpod-conmon-") || p.starts_with(b"crio-conmon-") {
        return None;
    }
    let scoped = |prefix: &[u8]| {
        let rest = p.strip_prefix(prefix)?;
        hex64(rest.strip_suffix(b".scope").unwrap_or(rest))
    };
    if let Some(id) = scoped(b"docker-") {
        return Some((ContainerRuntime::Docker, id));
    }
    if let Some(id) = scoped(b"libpod-") {
        return Some((ContainerRuntime::Podman, id));
    }
    if let Some(id) = scoped(b"cri-containerd-") {
        return Some((ContainerRuntime::Containerd, id));
    }
    if let Some(id) = scoped(b"crio-") {
        return Some((ContainerRuntime::CriO, id));
    }
    if prev == Some(b"docker".as_slice()) {
        return hex64(p).map(|id| (ContainerRuntime::Docker, id));
    }
    None
}

/// `kubepods-besteffort-pod<uid with _>.slice` (systemd driver) or `pod<uid with ->` (cgroupfs).
fn pod_of(p: &[u8]) -> Option<[u8; 16]> {
    if let Some(rest) = p.strip_suffix(b".slice") {
        let at = rest.windows(3).rposition(|w| w == b"pod")?;
        let before = &rest[..at];
        if !before.starts_with(b"kubepods") || !before.ends_with(b"-") {
            return None;
        }
        return uuid(&rest[at + 3..], b'_');
    }
    uuid(p.strip_prefix(b"pod")?, b'-')
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// Exactly 64 lowercase hex digits.
fn hex64(s: &[u8]) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(s.chunks(2)) {
        *o = hex_val(pair[0])? << 4 | hex_val(pair[1])?;
    }
    Some(out)
}

/// A UUID in the 8-4-4-4-12 form, groups separated by `sep`, lowercase hex.
fn uuid(s: &[u8], sep: u8) -> Option<[u8; 16]> {
    if s.len() != 36 {
        return None;
    }
    let mut digits = Vec::with_capacity(32);
    for (i, &c) in s.iter().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            if c != sep {
                return None;
            }
        } else {
            digits.push(c);
        }
    }
    let mut out = [0u8; 16];
    for (o, pair) in out.iter_mut().zip(digits.chunks(2)) {
        *o = hex_val(pair[0])? << 4 | hex_val(pair[1])?;
    }
    Some(out)
}

#[derive(Serialize, Deserialize)]
struct Wire {
    container_runtime: String,
    container_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pod_uid: Option<String>,
}

impl Serialize for Container {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Wire {
            container_runtime: self.runtime.as_str().into(),
            container_id: self.id(),
            pod_uid: self.pod_uid(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Container {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = Wire::deserialize(d)?;
        Container::from_fields(&w.container_runtime, &w.container_id, w.pod_uid.as_deref())
            .ok_or_else(|| serde::de::Error::custom("malformed container identity"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f1c8e2a9b7d4c6e5f0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6a";
    const ID2: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const POD: &str = "5d8e2f1a-3b4c-4d5e-8f90-a1b2c3d4e5f6";

    fn parse(p: &str) -> Option<(&'static str, String, Option<String>)> {
        Container::from_cgroup_path(p.as_bytes()).map(|c| (c.runtime.as_str(), c.id(), c.pod_uid()))
    }

    fn is(p: &str, runtime: &'static str, pod: Option<&str>) {
        assert_eq!(
            parse(p),
            Some((runtime, ID.to_string(), pod.map(String::from))),
            "{p}"
        );
    }

    #[test]
    fn recorded_layouts() {
        let pod_ = POD.replace('-', "_");
        // docker, systemd and cgroupfs drivers, rootless
        is(&format!("/system.slice/docker-{ID}.scope"), "docker", None);
        is(&format!("/docker/{ID}"), "docker", None);
        is(
            &format!("/user.slice/user-1000.slice/user@1000.service/docker-{ID}.scope"),
            "docker",
            None,
        );
        // podman: root (systemd), rootless, cgroupfs, and a process in the container's
        // sub-cgroup (podman 4 puts the init in `container` with --cgroups=split)
        is(&format!("/machine.slice/libpod-{ID}.scope"), "podman", None);
        is(
            &format!("/machine.slice/libpod-{ID}.scope/container"),
            "podman",
            None,
        );
        is(
            &format!("/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope"),
            "podman",
            None,
        );
        is(&format!("/libpod_parent/libpod-{ID}"), "podman", None);
        // Kubernetes: containerd and CRI-O with the systemd driver in each QoS class, and the
        // cgroupfs driver
        is(
            &format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{pod_}.slice/cri-containerd-{ID}.scope"),
            "containerd",
            Some(POD),
        );
        is(
            &format!("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{pod_}.slice/crio-{ID}.scope"),
            "cri-o",
            Some(POD),
        );
        is(
            &format!("/kubepods.slice/kubepods-pod{pod_}.slice/cri-containerd-{ID}.scope"),
            "containerd",
            Some(POD),
        );
        is(
            &format!("/kubepods/burstable/pod{POD}/{ID}"),
            "cri",
            Some(POD),
        );
        is(&format!("/kubepods/pod{POD}/{ID}"), "cri", Some(POD));
        // kind / docker-in-docker: the node's own container is the outermost
        is(
            &format!("/system.slice/docker-{ID}.scope/kubelet.slice/kubepods.slice/kubepods-pod{pod_}.slice/cri-containerd-{ID2}.scope"),
            "docker",
            None,
        );
    }

    #[test]
    fn not_containers() {
        for p in [
            "/",
            "",
            "/user.slice/user-0.slice/session-3.scope",
            "/system.slice/sshd.service",
            "/proctor/agent-42",
            "/system.slice/docker.service",
            &format!("/machine.slice/libpod-conmon-{ID}.scope"),
            &format!("/kubepods.slice/kubepods-burstable.slice/crio-conmon-{ID}.scope"),
            // wrong lengths, upper case, not hex
            &format!("/system.slice/docker-{}.scope", &ID[..63]),
            &format!("/system.slice/docker-{ID}0.scope"),
            &format!("/system.slice/docker-{}.scope", ID.to_uppercase()),
            &format!("/system.slice/docker-{}g.scope", &ID[..63]),
            // a bare id outside a pod or docker/ is not enough
            &format!("/{ID}"),
            &format!("/machine.slice/{ID}"),
        ] {
            assert_eq!(parse(p), None, "{p}");
        }
    }

    #[test]
    fn hostile_paths() {
        // A container with cgroup delegation names a sub-cgroup after another container: the
        // outer (runtime-made) one still wins.
        is(
            &format!("/system.slice/docker-{ID}.scope/docker-{ID2}.scope"),
            "docker",
            None,
        );
        is(
            &format!("/machine.slice/libpod-{ID}.scope/kubepods/pod{POD}/{ID2}"),
            "podman",
            None,
        );
        // A forged pod under a real container does not attach a pod uid.
        is(
            &format!(
                "/system.slice/docker-{ID}.scope/kubepods-pod{}.slice",
                POD.replace('-', "_")
            ),
            "docker",
            None,
        );
        // Bytes that would break a record if copied: newlines, quotes, NULs, invalid UTF-8,
        // huge inputs. None of it reaches a field.
        let mut evil = b"/system.slice/docker-".to_vec();
        evil.extend_from_slice(ID.as_bytes());
        evil.extend_from_slice(b".scope\n0::/\"x\xff\x00");
        assert_eq!(Container::from_cgroup_path(&evil), None);
        let huge = "/a".repeat(1 << 16) + &format!("/docker-{ID}.scope");
        assert_eq!(parse(&huge).map(|c| c.0), Some("docker"));
        let slashes = "/".repeat(1 << 16);
        assert_eq!(parse(&slashes), None);
        // Pod-looking components with the wrong separators or lengths.
        for p in [
            format!("/kubepods/pod{}/{ID}", POD.replace('-', "_")),
            format!("/kubepods.slice/kubepods-pod{POD}.slice/{ID}"),
            format!("/kubepods/podx{POD}/{ID}"),
        ] {
            assert_eq!(parse(&p), None, "{p}");
        }
    }

    #[test]
    fn json_round_trip_and_refusals() {
        let c = Container::from_cgroup_path(format!("/kubepods/pod{POD}/{ID}").as_bytes()).unwrap();
        let v = serde_json::to_value(c).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"container_runtime": "cri", "container_id": ID, "pod_uid": POD})
        );
        assert_eq!(serde_json::from_value::<Container>(v).unwrap(), c);
        for bad in [
            serde_json::json!({"container_runtime": "lxc", "container_id": ID}),
            serde_json::json!({"container_runtime": "docker", "container_id": "abc"}),
            serde_json::json!({"container_runtime": "docker", "container_id": ID, "pod_uid": "x"}),
        ] {
            assert!(serde_json::from_value::<Container>(bad).is_err());
        }
    }
}
