//! What real nodes of test processes that are gone left behind: their whole process tree was
//! SIGKILLed, the watchdog included, so nothing ran their teardown. A node's namespace is named
//! `kelp-<pid>-<plane directory>`; when that process is gone (or a zombie), what the watchdog
//! would have done is done: the process groups the plane directory lists are killed, its
//! `teardown` (containers, mounts, cgroups, the namespace) runs and the directory goes; without
//! a directory, the namespace is deleted. Run before each real node starts.

use std::path::Path;
use std::process::Command;

/// The prefix of a control plane's directory (`tempfile`'s, in the temporary directory).
const PLANE_PREFIX: &str = "kelp-testenv-";

/// Sweeps the namespaces under `netns_dir` (`/run/netns`) of processes that are gone, whose
/// plane directories are in `temp_dir`.
pub(super) fn sweep(netns_dir: &Path, temp_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(netns_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((pid, plane)) = name.strip_prefix("kelp-").and_then(|rest| rest.split_once('-')) else {
            continue;
        };
        let alive = pid.parse::<u32>().map_or(true, is_running);
        if alive || !plane.starts_with(PLANE_PREFIX) || plane.contains(['/', '.']) {
            continue;
        }
        let dir = temp_dir.join(plane);
        let teardown = dir.join("teardown");
        eprintln!("kelp-testenv: removing the node {name} of a test process that is gone");
        if teardown.is_file() {
            let groups = std::fs::read_to_string(dir.join("pids")).unwrap_or_default();
            groups.lines().filter_map(|g| g.trim().parse().ok()).for_each(kelp_testkit::process::kill_group);
            let _ = Command::new(&teardown).status();
            let _ = std::fs::remove_dir_all(&dir);
        } else {
            let _ = Command::new("ip").args(["netns", "delete", &name]).status();
        }
    }
}

/// Whether `pid` is a process that has not ended (a zombie has).
fn is_running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // `pid (comm) state ...`: the state follows the last `)`.
        Ok(stat) => stat.rsplit_once(')').is_none_or(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_of_a_process_that_is_gone_is_torn_down_and_a_live_ones_is_left_alone() {
        let netns = tempfile::tempdir().unwrap();
        let temp = tempfile::tempdir().unwrap();
        // A PID above the kernel's largest (2^22) belongs to no process.
        let gone = "kelp-4194305-kelp-testenv-gone01";
        let live = format!("kelp-{}-kelp-testenv-live01", std::process::id());
        for name in [gone, live.as_str()] {
            std::fs::write(netns.path().join(name), "").unwrap();
        }
        let plane = temp.path().join("kelp-testenv-gone01");
        std::fs::create_dir(&plane).unwrap();
        let marker = temp.path().join("torn-down");
        let script =
            format!("#!/bin/sh\ntouch '{}'\nrm -f '{}'\n", marker.display(), netns.path().join(gone).display());
        std::fs::write(plane.join("teardown"), script).unwrap();
        std::fs::set_permissions(plane.join("teardown"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();

        sweep(netns.path(), temp.path());

        assert!(marker.exists(), "the teardown of the gone process's node did not run");
        assert!(!plane.exists(), "its directory is still there");
        assert!(!netns.path().join(gone).exists());
        assert!(netns.path().join(&live).exists(), "a live process's node was touched");
    }
}
