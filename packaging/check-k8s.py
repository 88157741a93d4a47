"""What the schema check cannot say: the DaemonSet has what proctor needs on a node.

Run by `make k8s-check` after kubernetes-validate accepted the manifests against the schemas.
"""
import sys

import yaml

docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
ds = next(d for d in docs if d["kind"] == "DaemonSet")
pod = ds["spec"]["template"]["spec"]
problems = []
if not pod.get("hostPID"):
    problems.append("hostPID is not true: proctor must see the host's processes")
(ctr,) = [c for c in pod["containers"] if c["name"] == "proctor"]
if not ctr.get("securityContext", {}).get("privileged"):
    problems.append("the proctor container is not privileged: it loads eBPF")
host_paths = {v["name"]: v["hostPath"]["path"] for v in pod["volumes"] if "hostPath" in v}
mounts = {m["mountPath"]: m["name"] for m in ctr["volumeMounts"]}
for path in ["/sys/kernel/debug", "/sys/fs/bpf", "/sys/fs/cgroup", "/var/lib/proctor"]:
    if host_paths.get(mounts.get(path)) != path:
        problems.append(f"{path} is not the host's {path} mounted at the same place")
for p in problems:
    print(f"check-k8s: {sys.argv[1]}: {p}", file=sys.stderr)
if problems:
    sys.exit(1)
print(f"check-k8s: {sys.argv[1]}: hostPID, privileged, kernel filesystems and state mounted")
