//! Process groups of this process's children, killed only once verified: a child started in a
//! group of its own (`process_group(0)`) leads the group with its own PID, but once the child is
//! reaped its PID, and so the group ID, may belong to another process. Before a group is
//! signalled, `/proc` must show its leader still as this process's child (running or a zombie not
//! yet reaped) and still leading that group.

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// A process's parent and process group, from `/proc/<pid>/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Its parent's PID.
    pub ppid: i32,
    /// Its process group ID.
    pub pgrp: i32,
    /// Whether it has exited and waits to be reaped.
    pub zombie: bool,
    /// When it started, in clock ticks after boot: with the PID, what tells it from a later
    /// process that got the same PID.
    pub start_time: u64,
}

/// Reads `pid`'s [`Stat`]; `None` when there is no such process (or `/proc` cannot say).
pub fn stat(pid: i32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// Parses the text of a `/proc/<pid>/stat` file: `pid (comm) state ppid pgrp ...` (`starttime`
/// is the 22nd field), where comm may contain anything, so the fields are counted after its last `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    let start_time = fields.nth(16)?.parse().ok()?;
    Some(Stat { ppid, pgrp, zombie: state == "Z", start_time })
}

/// Whether `leader` is this process's child and leads its own process group.
pub fn is_own_child_group(leader: i32) -> bool {
    leader > 1 && stat(leader).is_some_and(|s| s.ppid == std::process::id() as i32 && s.pgrp == leader)
}

/// Sends SIGKILL to the process group that `leader`, a child of this process started with
/// `process_group(0)` and not reaped yet, leads; does nothing when that cannot be verified.
pub fn kill_child_group(leader: i32) {
    if is_own_child_group(leader) {
        let _ = killpg(Pid::from_raw(leader), Signal::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_follow_the_last_parenthesis() {
        let s = parse_stat("42 (a) b (c) S 7 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 9876 1000").unwrap();
        assert_eq!(s, Stat { ppid: 7, pgrp: 42, zombie: false, start_time: 9876 });
        assert!(parse_stat("42 (x) Z 1 9 9 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5").unwrap().zombie);
        assert_eq!(parse_stat("42 (x"), None);
        assert_eq!(parse_stat("42 (x) S 1 9"), None);
        let own = stat(std::process::id() as i32).unwrap();
        assert!(own.start_time > 0 && !own.zombie);
    }

    #[test]
    fn only_a_group_led_by_an_own_child_is_killed() {
        // This test's own group is not led by a child of this process: never killed.
        assert!(!is_own_child_group(nix::unistd::getpgrp().as_raw()));
        let mut child =
            std::process::Command::new("sleep").arg("60").stdin(std::process::Stdio::null()).spawn().unwrap();
        let pid = child.id() as i32;
        // A child in this process's group does not lead a group of its own: left alone.
        kill_child_group(pid);
        assert!(child.try_wait().unwrap().is_none(), "a child in another group was not killed");
        let _ = child.kill();
        let _ = child.wait();
        let mut leader = std::process::Command::new("sleep");
        leader.arg("60");
        std::os::unix::process::CommandExt::process_group(&mut leader, 0);
        let mut leader = leader.spawn().unwrap();
        kill_child_group(leader.id() as i32);
        let status = leader.wait().unwrap();
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(9));
    }
}
