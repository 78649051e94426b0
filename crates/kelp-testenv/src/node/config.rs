//! The node components' configuration files, and the teardown script.

use std::io;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use super::PAUSE_IMAGE;
use super::netns::{BRIDGE, NODE_IP, POD_CIDR};

/// Writes `containerd.toml`, `cni/10-kelp.conflist`, `kubelet.yaml`, `resolv.conf` and
/// `Corefile` into `dir`.
pub(super) fn write(dir: &Path, cgroup_root: &str, kubeconfig: &Path, cni_bin_dir: &Path) -> io::Result<()> {
    let d = dir.display();
    std::fs::create_dir_all(dir.join("cni"))?;
    std::fs::create_dir_all(dir.join("pod-logs"))?;
    std::fs::write(
        dir.join("containerd.toml"),
        format!(
            r#"version = 2
root = "{d}/containerd/root"
state = "{d}/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "{d}/containerd.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  # The machine withholds CAP_SYS_RESOURCE: a container's oom_score_adj may not go below ours.
  restrict_oom_score_adj = true
  # The pods' network namespaces under the state directory, so the teardown finds them.
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = "{d}/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni}"
    conf_dir = "{d}/cni"
"#,
            cni = cni_bin_dir.display()
        ),
    )?;
    std::fs::write(
        dir.join("cni/10-kelp.conflist"),
        format!(
            r#"{{"cniVersion": "0.4.0", "name": "kelp", "plugins": [
  {{"type": "bridge", "bridge": "{BRIDGE}", "isGateway": true, "hairpinMode": true,
   "ipam": {{"type": "host-local", "dataDir": "{d}/cni-ipam",
            "ranges": [[{{"subnet": "{POD_CIDR}", "rangeStart": "10.88.1.2", "rangeEnd": "10.88.255.254", "gateway": "{NODE_IP}"}}]],
            "routes": [{{"dst": "0.0.0.0/0"}}]}}}},
  {{"type": "portmap", "capabilities": {{"portMappings": true}}}}
]}}
"#
        ),
    )?;
    std::fs::write(dir.join("resolv.conf"), format!("nameserver {NODE_IP}\n"))?;
    std::fs::write(
        dir.join("kubelet.yaml"),
        format!(
            r#"apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# The machine has cgroup v1; Kubernetes 1.35+ refuses it unless told (KEP-5573).
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /{cgroup_root}
failSwapOn: false
containerRuntimeEndpoint: unix://{d}/containerd.sock
address: {NODE_IP}
port: 10250
healthzPort: 0
readOnlyPort: 0
# Only the API server (in the same private namespace) reaches the kubelet.
authentication:
  anonymous: {{enabled: true}}
  webhook: {{enabled: false}}
authorization: {{mode: AlwaysAllow}}
clusterDNS: [{NODE_IP}]
clusterDomain: cluster.local
resolvConf: {d}/resolv.conf
podLogsDir: {d}/pod-logs
serializeImagePulls: false
# A test machine's disk is shared and may be nearly full (a 252 GB disk at 99% still has GBs):
# never evict for disk ("0%" switches a signal off), evict only on memory exhaustion, and
# collect no images. A disk that really fills fails the test that writes, with ENOSPC.
evictionHard: {{memory.available: "100Mi", nodefs.available: "0%", nodefs.inodesFree: "0%", imagefs.available: "0%", imagefs.inodesFree: "0%", containerfs.available: "0%", containerfs.inodesFree: "0%"}}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
shutdownGracePeriod: 0s
"#
        ),
    )?;
    std::fs::write(
        dir.join("Corefile"),
        format!(
            r#".:53 {{
    bind {NODE_IP}
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig} kelp-testenv
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    cache 5
}}
"#,
            kubeconfig = kubeconfig.display()
        ),
    )?;
    Ok(())
}

/// Writes `<plane_dir>/teardown`: what the node leaves outside its process groups (the
/// containers, containerd's shims), then its mounts, cgroups and network namespace, removed.
/// Run by the control plane's drop and by the watchdog; harmless to run twice.
pub(super) fn write_teardown(plane_dir: &Path, netns: &str, cgroup_root: &str) -> io::Result<()> {
    let path = plane_dir.join("teardown");
    std::fs::write(
        &path,
        format!(
            r#"#!/bin/sh
# Written by kelp-testenv: removes what the real node of {dir} leaves behind.
dir='{dir}'
for c in /sys/fs/cgroup/*/'{cgroup_root}'; do
  [ -d "$c" ] && find "$c" -name cgroup.procs -exec cat {{}} + 2>/dev/null | xargs -r kill -KILL 2>/dev/null
done
for p in /proc/[0-9]*; do
  pid=${{p#/proc/}}
  [ "$pid" = $$ ] && continue
  tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -qF -- "-address $dir/" && kill -KILL "$pid" 2>/dev/null
done
sleep 0.2
awk -v d="$dir/" 'index($5, d) == 1 {{print $5}}' /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m"; done
for c in /sys/fs/cgroup/*/'{cgroup_root}'; do
  [ -d "$c" ] && find "$c" -depth -type d -exec rmdir {{}} + 2>/dev/null
done
ip netns delete '{netns}' 2>/dev/null
exit 0
"#,
            dir = plane_dir.display()
        ),
    )?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
}
