//! Linux control groups for instances: each `kelp-runtime` process, with everything it starts,
//! in a cgroup of its own, so that it can be killed whole (a process that leaves its process
//! group, with `setsid` or a double fork, stays in its cgroup) and its memory limit is the
//! kernel's, counted over every process of the instance.
//!
//! The platform creates `kelp-<its PID>/` under its own cgroup (from `/proc/self/cgroup`) in
//! every hierarchy where it may (root, or a subtree delegated to the user), and one child per
//! process there: in the unified (v2) hierarchy for killing (`cgroup.kill`, or freezing then
//! killing every member) and, when the memory controller is enabled there, `memory.max`; else in
//! the v1 `memory` hierarchy for `memory.limit_in_bytes` and the v1 `freezer` for killing.
//! Without a memory cgroup, the memory limit is a watchdog over the resident memory of the
//! cgroup's members. Where no cgroup can be created, instances are killed by process group and
//! the watchdog sums their process tree (see `procs` and `memory`); the platform says so once in
//! its log.
//!
//! The runtime joins its cgroups itself, first thing (`kelp-runtime --cgroup <dir>`), so nothing
//! of the instance runs outside them. Only paths this module created are ever written to.

use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long a freeze may take before the members are killed anyway.
const FREEZE_WAIT: Duration = Duration::from_secs(1);
/// How long the removal of an instance's emptied cgroup is retried.
const REMOVE_WAIT: Duration = Duration::from_secs(10);

/// Where this process creates its instances' cgroups, found once.
#[derive(Debug, Default)]
struct Roots {
    /// `<unified mount>/<own cgroup>/kelp-<pid>`.
    unified: Option<PathBuf>,
    /// `<v1 memory mount>/<own cgroup>/kelp-<pid>`.
    memory: Option<PathBuf>,
    /// `<v1 freezer mount>/<own cgroup>/kelp-<pid>`.
    freezer: Option<PathBuf>,
}

/// How one cgroup directory kills its members.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Killer {
    /// v2 `cgroup.kill`.
    Kill,
    /// v2 `cgroup.freeze`, then SIGKILL to every member.
    Freeze,
    /// v1 `freezer.state`, then SIGKILL to every member.
    Freezer,
}

/// Which memory files a cgroup directory has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Memory {
    /// v2: `memory.max`, `memory.swap.max`, `memory.oom.group`, `memory.events`, `memory.peak`.
    V2,
    /// v1: `memory.limit_in_bytes`, `memory.memsw.limit_in_bytes`, `memory.oom_control`,
    /// `memory.max_usage_in_bytes`.
    V1,
}

/// The cgroups of one instance process; removed (after killing what is left in them) on drop.
#[derive(Debug)]
pub(crate) struct Cgroup {
    /// Every directory created for it (the runtime joins each).
    dirs: Vec<PathBuf>,
    /// The directory that kills, and how.
    killer: (PathBuf, Killer),
    /// The directory that limits memory, and how.
    memory: Option<(PathBuf, Memory)>,
}

/// The roots, created at the first call; the log says once what instances are contained by.
fn roots() -> &'static Roots {
    static ROOTS: OnceLock<Roots> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let roots = Roots::find();
        match (&roots.unified, &roots.freezer, &roots.memory) {
            (None, None, _) => tracing::warn!(
                "no cgroup can be created here (not root and no delegated cgroup subtree): instances are \
                 killed by process group, which a process that calls setsid escapes, and their memory \
                 limit is a watchdog over their process tree"
            ),
            (_, _, None) => tracing::info!(
                "instances run in cgroups of their own; no memory cgroup can be created, so their memory \
                 limit is a watchdog over their process tree"
            ),
            _ => tracing::info!("instances run in cgroups of their own, with the kernel enforcing memory limits"),
        }
        roots
    })
}

impl Roots {
    /// Creates `kelp-<pid>` in every hierarchy where this process may, after removing those of
    /// platform processes that are gone.
    fn find() -> Roots {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let root = |fs_type: &str, controller: Option<&str>| -> Option<PathBuf> {
            let (mount_root, mount_point) = mount_of(&mountinfo, fs_type, controller)?;
            let own_path = own_cgroup(&own, controller)?;
            let relative = own_path.strip_prefix(&mount_root).ok()?;
            let parent = mount_point.join(relative);
            // Moving a process from this cgroup into a child needs write access to this cgroup's
            // cgroup.procs (the common ancestor's), not only to the directory.
            if let Err(e) = std::fs::OpenOptions::new().write(true).open(parent.join("cgroup.procs")) {
                tracing::debug!(dir = %parent.display(), error = %e, "cannot move processes out of this cgroup");
                return None;
            }
            sweep(&parent);
            let base = parent.join(format!("kelp-{}", std::process::id()));
            match std::fs::create_dir(&base) {
                Ok(()) => Some(base),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => Some(base),
                Err(e) => {
                    tracing::debug!(dir = %base.display(), error = %e, "cannot create a cgroup");
                    None
                }
            }
        };
        Roots {
            unified: root("cgroup2", None),
            memory: root("cgroup", Some("memory")),
            freezer: root("cgroup", Some("freezer")),
        }
    }
}

/// The (root within the hierarchy, mount point) of the hierarchy of `fs_type` with `controller`
/// (v1) from `/proc/self/mountinfo`.
fn mount_of(mountinfo: &str, fs_type: &str, controller: Option<&str>) -> Option<(PathBuf, PathBuf)> {
    mountinfo.lines().find_map(|line| {
        // `id parent major:minor root mount-point options [optional...] - fstype source super-options`
        let (head, tail) = line.split_once(" - ")?;
        let mut tail = tail.split_whitespace();
        if tail.next()? != fs_type {
            return None;
        }
        let super_options = tail.nth(1).unwrap_or_default();
        if controller.is_some_and(|c| !super_options.split(',').any(|o| o == c)) {
            return None;
        }
        let mut head = head.split_whitespace();
        let root = head.nth(3)?;
        let point = head.next()?;
        Some((PathBuf::from(unescape(root)), PathBuf::from(unescape(point))))
    })
}

/// A mountinfo field with its octal escapes (`\040` for a space) decoded.
fn unescape(field: &str) -> String {
    let mut out = Vec::new();
    let bytes = field.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| u8::from_str_radix(std::str::from_utf8(d).ok()?, 8).ok());
        match (bytes[i], octal) {
            (b'\\', Some(b)) => {
                out.push(b);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// This process's cgroup in the v2 hierarchy (`controller` `None`) or in the v1 hierarchy of
/// `controller`, from `/proc/self/cgroup`.
fn own_cgroup(proc_cgroup: &str, controller: Option<&str>) -> Option<PathBuf> {
    proc_cgroup.lines().find_map(|line| {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        let wanted = match controller {
            None => controllers.is_empty(),
            Some(c) => controllers.split(',').any(|x| x == c),
        };
        wanted.then(|| PathBuf::from(path))
    })
}

/// Kills what is left in, and removes, the `kelp-<pid>` cgroups under `parent` whose platform
/// process is gone (it crashed, or was killed with SIGKILL).
fn sweep(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("kelp-")).and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let children = std::fs::read_dir(entry.path()).into_iter().flatten().flatten();
        for child in children.filter(|c| c.path().is_dir()) {
            let dir = child.path();
            let killer = killer_of(&dir);
            if let Some(killer) = killer {
                kill_members(&dir, killer);
            }
            remove_when_empty(dir);
        }
        remove_when_empty(entry.path());
    }
}

/// How `dir` can kill its members, from the files it has.
fn killer_of(dir: &Path) -> Option<Killer> {
    [("cgroup.kill", Killer::Kill), ("cgroup.freeze", Killer::Freeze), ("freezer.state", Killer::Freezer)]
        .into_iter()
        .find(|(file, _)| dir.join(file).exists())
        .map(|(_, killer)| killer)
}

/// Kills every process in `dir` (and, for `cgroup.kill`, in its descendants).
fn kill_members(dir: &Path, killer: Killer) {
    match killer {
        Killer::Kill => {
            let _ = std::fs::write(dir.join("cgroup.kill"), "1");
        }
        Killer::Freeze => freeze_and_kill(dir, ("cgroup.freeze", "1", "0"), |d| {
            std::fs::read_to_string(d.join("cgroup.events")).is_ok_and(|e| e.lines().any(|l| l == "frozen 1"))
        }),
        Killer::Freezer => freeze_and_kill(dir, ("freezer.state", "FROZEN", "THAWED"), |d| {
            std::fs::read_to_string(d.join("freezer.state")).is_ok_and(|s| s.trim() == "FROZEN")
        }),
    }
}

/// Freezes `dir` (so that no member can fork meanwhile), sends SIGKILL to every member listed in
/// its `cgroup.procs`, and thaws it so that the signals are delivered.
fn freeze_and_kill(dir: &Path, (file, frozen, thawed): (&str, &str, &str), is_frozen: impl Fn(&Path) -> bool) {
    let _ = std::fs::write(dir.join(file), frozen);
    let since = Instant::now();
    while !is_frozen(dir) && since.elapsed() < FREEZE_WAIT {
        std::thread::sleep(Duration::from_millis(1));
    }
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
    let own = std::process::id() as i32;
    for pid in procs.lines().filter_map(|p| p.trim().parse::<i32>().ok()).filter(|&p| p > 1 && p != own) {
        // Listed in the instance's own cgroup, which its processes joined.
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
    let _ = std::fs::write(dir.join(file), thawed);
}

/// Removes the cgroup `dir` once its members are gone (retried in the background for a while:
/// killed processes leave their cgroup when they have exited).
fn remove_when_empty(dir: PathBuf) {
    if std::fs::remove_dir(&dir).is_ok() || !dir.exists() {
        return;
    }
    let retry = move || {
        let since = Instant::now();
        while dir.exists() && std::fs::remove_dir(&dir).is_err() && since.elapsed() < REMOVE_WAIT {
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let _ = std::thread::Builder::new().name("kelp-cgroup-rmdir".into()).spawn(retry);
}

impl Cgroup {
    /// New cgroups for one process, with `memory_limit` bytes (0: none); `None` when no cgroup
    /// can be created here (the caller falls back to process groups).
    pub(crate) fn create(memory_limit: u64) -> Option<Cgroup> {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let roots = roots();
        if roots.unified.is_none() && roots.freezer.is_none() {
            return None;
        }
        let name = NEXT.fetch_add(1, Ordering::Relaxed).to_string();
        let mut dirs = Vec::new();
        let mut make = |root: &Option<PathBuf>| -> Option<PathBuf> {
            let dir = root.as_ref()?.join(&name);
            match std::fs::create_dir(&dir) {
                Ok(()) => {
                    dirs.push(dir.clone());
                    Some(dir)
                }
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot create an instance's cgroup");
                    None
                }
            }
        };
        let unified = make(&roots.unified);
        let unified_killer = unified.as_ref().and_then(|d| killer_of(d).map(|k| (d.clone(), k)));
        let freezer = if unified_killer.is_some() { None } else { make(&roots.freezer) };
        let unified_memory =
            unified.as_ref().filter(|d| d.join("memory.max").exists()).map(|d| (d.clone(), Memory::V2));
        let memory = match unified_memory {
            Some(memory) => Some(memory),
            None => make(&roots.memory).map(|d| (d, Memory::V1)),
        };
        let Some(killer) = unified_killer.or_else(|| freezer.map(|d| (d, Killer::Freezer))) else {
            dirs.into_iter().for_each(remove_when_empty);
            return None;
        };
        let cgroup = Cgroup { dirs, killer, memory };
        if let Err(e) = cgroup.limit_memory(memory_limit) {
            tracing::warn!(error = %e, "cannot set an instance's memory limit in its cgroup");
            return None;
        }
        Some(cgroup)
    }

    /// The directories the process must join (`kelp-runtime --cgroup <dir>`).
    pub(crate) fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// Whether the kernel enforces the memory limit (else the caller watches the process tree).
    pub(crate) fn limits_memory(&self) -> bool {
        self.memory.is_some()
    }

    /// Limits the memory of every process in the cgroup to `bytes` (0: no limit), swap included;
    /// on v2 an OOM kill takes the whole cgroup.
    pub(crate) fn limit_memory(&self, bytes: u64) -> io::Result<()> {
        let Some((dir, kind)) = &self.memory else { return Ok(()) };
        if bytes == 0 {
            return Ok(());
        }
        let write_if_present = |file: &str, value: &str| match std::fs::write(dir.join(file), value) {
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            other => other,
        };
        match kind {
            Memory::V2 => {
                std::fs::write(dir.join("memory.max"), bytes.to_string())?;
                write_if_present("memory.swap.max", "0")?;
                write_if_present("memory.oom.group", "1")
            }
            Memory::V1 => {
                std::fs::write(dir.join("memory.limit_in_bytes"), bytes.to_string())?;
                write_if_present("memory.memsw.limit_in_bytes", &bytes.to_string())
            }
        }
    }

    /// Once the kernel has killed a process of the cgroup for exceeding the memory limit: the most
    /// memory the cgroup used ([`Cgroup::peak_memory`]); `None` before.
    pub(crate) fn oom_killed(&self) -> Option<u64> {
        (self.oom_kills() > 0).then(|| self.peak_memory())
    }

    /// How many processes of the cgroup the kernel killed for exceeding the memory limit.
    fn oom_kills(&self) -> u64 {
        let Some((dir, kind)) = &self.memory else { return 0 };
        let file = match kind {
            Memory::V2 => "memory.events",
            Memory::V1 => "memory.oom_control",
        };
        let text = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
        text.lines().find_map(|l| l.strip_prefix("oom_kill ")).and_then(|n| n.trim().parse().ok()).unwrap_or(0)
    }

    /// The most memory the cgroup's processes used at once, in bytes (0 when unknown).
    fn peak_memory(&self) -> u64 {
        let Some((dir, kind)) = &self.memory else { return 0 };
        let file = match kind {
            Memory::V2 => "memory.peak",
            Memory::V1 => "memory.max_usage_in_bytes",
        };
        std::fs::read_to_string(dir.join(file)).ok().and_then(|t| t.trim().parse().ok()).unwrap_or(0)
    }

    /// The processes in the cgroup that kills (the one every process of the instance is in).
    pub(crate) fn members(&self) -> Vec<i32> {
        let procs = std::fs::read_to_string(self.killer.0.join("cgroup.procs")).unwrap_or_default();
        procs.lines().filter_map(|p| p.trim().parse().ok()).collect()
    }

    /// Kills every process in the cgroup.
    pub(crate) fn kill(&self) {
        kill_members(&self.killer.0, self.killer.1);
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        self.kill();
        for dir in self.dirs.drain(..) {
            remove_when_empty(dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_and_proc_cgroup_name_the_hierarchies() {
        let mountinfo = "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
                         37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer\n\
                         41 31 0:38 /user.slice /sys/fs/cgroup/uni\\040fied rw,relatime - cgroup2 cgroup2 rw\n";
        assert_eq!(
            mount_of(mountinfo, "cgroup2", None),
            Some((PathBuf::from("/user.slice"), PathBuf::from("/sys/fs/cgroup/uni fied")))
        );
        assert_eq!(mount_of(mountinfo, "cgroup", Some("freezer")).unwrap().1, PathBuf::from("/sys/fs/cgroup/freezer"));
        assert_eq!(mount_of(mountinfo, "cgroup", Some("pids")), None);
        let own = "9:name=systemd:/\n4:memory,hugetlb:/system.slice/kelp.service\n0::/user.slice/app.scope\n";
        assert_eq!(own_cgroup(own, Some("memory")), Some(PathBuf::from("/system.slice/kelp.service")));
        assert_eq!(own_cgroup(own, None), Some(PathBuf::from("/user.slice/app.scope")));
        assert_eq!(own_cgroup(own, Some("freezer")), None);
    }

    #[test]
    fn members_are_listed_and_killed_together() {
        let Some(cgroup) = Cgroup::create(0) else {
            println!("skipped: no cgroup can be created here");
            return;
        };
        let mut sleeper = std::process::Command::new("sleep").arg("60").spawn().unwrap();
        let pid = sleeper.id();
        for dir in cgroup.dirs() {
            std::fs::write(dir.join("cgroup.procs"), pid.to_string()).unwrap();
        }
        assert_eq!(cgroup.members(), vec![pid as i32]);
        assert!(crate::memory::Members::Cgroup(std::sync::Arc::new(cgroup)).rss() > 0);
        // Dropping the last handle killed it.
        let status = sleeper.wait().unwrap();
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(9));
    }
}
