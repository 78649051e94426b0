//! Collection of what the platform no longer uses, every [`COLLECT_INTERVAL`] (at start only
//! temporaries: which directories are in use is known once the functions are deployed again):
//!
//! - code directories (`code/<sha256>`) that no revision of a live function uses, and installed
//!   dependencies (`cache/deps/<language>/<key>`, holding a copy of their dependency file) whose
//!   dependency file no live function's code has, once older than
//!   [`PlatformConfig::collect_grace`](crate::PlatformConfig::collect_grace);
//! - temporaries a process that is gone left behind (it crashed or was killed): `code/.tmp-<key>-<pid>-<n>`,
//!   `cache/deps/<language>/<key>.tmp-<pid>`, worker scripts' `cache/workers/<digest>/.<file>.<pid>`
//!   and runtimes' socket directories `<tmp>/kelp-runtime-<pid>` (those of this user);
//! - lock files of dependency installs (`<key>.lock`) that nobody holds, once older than the grace.
//!
//! The platform holds a lock while it deploys or removes a function, which the collector takes
//! exclusively, so a directory is never collected between its materialisation and its use.

use kelp_runtime::language::LANGUAGES;
use std::collections::{BTreeSet, HashSet};
use std::fs::TryLockError;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// How often the platform collects.
pub(crate) const COLLECT_INTERVAL: Duration = Duration::from_secs(600);

/// What the platform's directories hold, and what of it is in use.
#[derive(Debug)]
pub(crate) struct Collector<'a> {
    /// `<data>/code`.
    pub(crate) code_root: &'a Path,
    /// `<data>/cache` (`KELP_CACHE_DIR` of every instance).
    pub(crate) cache_dir: &'a Path,
    /// Unused directories younger than this are kept; `None` keeps them all (only temporaries
    /// are collected).
    pub(crate) grace: Option<Duration>,
}

impl Collector<'_> {
    /// Removes what is not in use (see the module docs), given the code directories of every live
    /// function's revisions; returns what was removed.
    pub(crate) fn collect(&self, live_code: &BTreeSet<PathBuf>) -> Vec<PathBuf> {
        let mut removed = Vec::new();
        let mut remove = |path: PathBuf| {
            let gone = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
            match gone {
                Ok(()) => removed.push(path),
                Err(e) => tracing::warn!(path = %path.display(), error = %e, "cannot remove an unused file"),
            }
        };
        for entry in entries(self.code_root) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            match name.strip_prefix(".tmp-") {
                // `.tmp-<key>-<pid>-<n>`
                Some(rest) if rest.rsplit('-').nth(1).is_some_and(is_dead_pid) => remove(path),
                Some(_) => {}
                None if !live_code.contains(&path) && self.is_old(&path) => remove(path),
                None => {}
            }
        }
        let live_deps: HashSet<(&str, Vec<u8>)> = LANGUAGES
            .iter()
            .flat_map(|lang| {
                live_code.iter().filter_map(|dir| Some((lang.name, std::fs::read(dir.join(lang.deps_file)).ok()?)))
            })
            .collect();
        for lang in LANGUAGES {
            let dir = self.cache_dir.join("deps").join(lang.name);
            for entry in entries(&dir) {
                let name = entry.file_name().to_string_lossy().into_owned();
                let path = entry.path();
                if let Some((_, pid)) = name.rsplit_once(".tmp-") {
                    if is_dead_pid(pid) {
                        remove(path);
                    }
                } else if name.ends_with(".lock") {
                    if self.is_old(&path) && nobody_holds(&path) {
                        remove(path);
                    }
                } else if path.is_dir() {
                    let content = std::fs::read(path.join(lang.deps_file)).unwrap_or_default();
                    if !live_deps.contains(&(lang.name, content)) && self.is_old(&path) {
                        remove(path);
                    }
                }
            }
        }
        for scripts in entries(&self.cache_dir.join("workers")) {
            for entry in entries(&scripts.path()) {
                let name = entry.file_name().to_string_lossy().into_owned();
                // `.<file>.<pid>`
                if name.starts_with('.') && name.rsplit('.').next().is_some_and(is_dead_pid) {
                    remove(entry.path());
                }
            }
        }
        let uid = std::fs::metadata(self.cache_dir).map(|m| m.uid()).ok();
        for entry in entries(&std::env::temp_dir()) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let owned = entry.metadata().ok().map(|m| m.uid()) == uid;
            if owned && name.strip_prefix("kelp-runtime-").is_some_and(is_dead_pid) {
                remove(entry.path());
            }
        }
        removed
    }

    /// Whether `path` was last modified longer than the grace period ago.
    fn is_old(&self, path: &Path) -> bool {
        let Some(grace) = self.grace else { return false };
        let modified = std::fs::symlink_metadata(path).and_then(|m| m.modified()).unwrap_or_else(|_| SystemTime::now());
        modified.elapsed().is_ok_and(|age| age >= grace)
    }
}

/// The entries of `dir` (none when it cannot be read).
fn entries(dir: &Path) -> impl Iterator<Item = std::fs::DirEntry> {
    std::fs::read_dir(dir).into_iter().flatten().flatten()
}

/// Whether `pid` is a process ID that no running process has (any more).
fn is_dead_pid(pid: &str) -> bool {
    pid.parse::<u32>()
        .is_ok_and(|pid| pid > 0 && pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists())
}

/// Whether no process holds the lock file `path` (taken and released again to find out).
fn nobody_holds(path: &Path) -> bool {
    std::fs::File::open(path).is_ok_and(|f| !matches!(f.try_lock(), Err(TryLockError::WouldBlock)))
}
