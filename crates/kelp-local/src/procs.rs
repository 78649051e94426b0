//! The process table from `/proc`: an instance's process tree (the `kelp-runtime` front and its
//! language workers, which run in process groups of their own), its resident memory, and killing
//! all of it: what contains an instance where it has no cgroup. A process that leaves the tree
//! (a double fork re-parents it) escapes this; a process group is only signalled when its
//! leader is in the tree, so a process that joins another group cannot aim a kill at it.

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How old a shared table may be before it is read again.
const SHARED_MAX_AGE: Duration = Duration::from_millis(150);

/// Parent and process group of every process on the machine.
#[derive(Debug, Default)]
pub(crate) struct Table {
    children: HashMap<i32, Vec<i32>>,
    group: HashMap<i32, i32>,
    start_time: HashMap<i32, u64>,
}

/// Process groups to signal: each group's ID (its leader's PID) and its leader's start time, so
/// that a later process given the same PID is not taken for the leader.
pub(crate) type Groups = BTreeMap<i32, u64>;

impl Table {
    /// Reads `/proc`.
    pub(crate) fn read() -> Table {
        let mut table = Table::default();
        let Ok(entries) = std::fs::read_dir("/proc") else { return table };
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
            let Some(kelp_runtime::group::Stat { ppid, pgrp, start_time, .. }) = kelp_runtime::group::parse_stat(&stat)
            else {
                continue;
            };
            table.children.entry(ppid).or_default().push(pid);
            table.group.insert(pid, pgrp);
            table.start_time.insert(pid, start_time);
        }
        table
    }

    /// A table at most [`SHARED_MAX_AGE`] old, shared by every memory watchdog.
    pub(crate) fn shared() -> Arc<Table> {
        type Cached = Option<(Instant, Arc<Table>)>;
        static SHARED: OnceLock<Mutex<Cached>> = OnceLock::new();
        let mut cached = SHARED.get_or_init(Mutex::default).lock().unwrap();
        match &*cached {
            Some((at, table)) if at.elapsed() < SHARED_MAX_AGE => table.clone(),
            _ => {
                let table = Arc::new(Table::read());
                *cached = Some((Instant::now(), table.clone()));
                table
            }
        }
    }

    /// `root` and all its descendants that are still running.
    pub(crate) fn tree(&self, root: i32) -> Vec<i32> {
        if !self.group.contains_key(&root) {
            return Vec::new();
        }
        let mut tree = vec![root];
        let mut i = 0;
        while let Some(&pid) = tree.get(i) {
            tree.extend(self.children.get(&pid).into_iter().flatten().copied());
            i += 1;
        }
        tree
    }

    /// The process groups led by a process of `root`'s tree, never the caller's own: a group
    /// whose leader is elsewhere (another instance's, joined with `setpgid`) is not the tree's.
    pub(crate) fn tree_groups(&self, root: i32) -> Groups {
        let own = nix::unistd::getpgrp().as_raw();
        let tree = self.tree(root);
        tree.iter()
            .filter_map(|pid| self.group.get(pid))
            .copied()
            .filter(|&g| g != own && g > 1 && tree.contains(&g))
            .map(|g| (g, self.start_time.get(&g).copied().unwrap_or_default()))
            .collect()
    }
}

/// The resident memory of `pid` in bytes (0 when it is gone).
pub(crate) fn rss_bytes(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Sends `signal` to every process group in `groups`; groups already gone are ignored, and so is
/// a group whose leader's PID now belongs to another process (a PID stays reserved while a group
/// of that ID has members, so a leader that is gone leaves only its own group's members).
pub(crate) fn signal_groups(groups: &Groups, signal: Signal) {
    for (&group, &start_time) in groups {
        if kelp_runtime::group::stat(group).is_some_and(|leader| leader.start_time != start_time) {
            continue;
        }
        let _ = killpg(Pid::from_raw(group), signal);
    }
}

/// Kills `root`'s whole tree (every process in it, and every process group it leads) with
/// SIGKILL. `root` must not have been reaped yet (so its PID cannot belong to another process).
pub(crate) fn kill_tree(root: i32) {
    let table = Table::read();
    signal_groups(&table.tree_groups(root), Signal::SIGKILL);
    for pid in table.tree(root) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_groups_led_from_the_tree_are_the_tree_s() {
        // 100 is an instance (its group 100) with a worker 101 (group 101); 101 started 102, which
        // joined group 200, another instance's (leader 200, outside the tree).
        let mut table = Table::default();
        for (pid, ppid, pgrp) in [(100, 1, 100), (101, 100, 101), (102, 101, 200), (200, 1, 200), (201, 200, 200)] {
            table.children.entry(ppid).or_default().push(pid);
            table.group.insert(pid, pgrp);
            table.start_time.insert(pid, 1000 + pid as u64);
        }
        assert_eq!(table.tree(100), vec![100, 101, 102]);
        assert_eq!(table.tree_groups(100), Groups::from([(100, 1100), (101, 1101)]));
        assert!(table.tree(999).is_empty());
    }

    #[test]
    fn a_group_whose_leader_pid_was_reused_is_not_signalled() {
        let mut cmd = std::process::Command::new("sleep");
        cmd.arg("60");
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut leader = cmd.spawn().unwrap();
        let pid = leader.id() as i32;
        let started = kelp_runtime::group::stat(pid).unwrap().start_time;
        // Recorded for an earlier process with the same PID: left alone.
        signal_groups(&Groups::from([(pid, started + 1)]), Signal::SIGKILL);
        assert!(leader.try_wait().unwrap().is_none(), "a later process with the leader's PID was signalled");
        signal_groups(&Groups::from([(pid, started)]), Signal::SIGKILL);
        let status = leader.wait().unwrap();
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(9));
    }
}
