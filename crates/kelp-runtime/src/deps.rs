//! Dependencies installed once per content: `requirements.txt` / `package.json` next to the code
//! go into `<deps dir>/<language>/<key>` (`KELP_DEPS_DIR`, by default `<KELP_CACHE_DIR>/deps`),
//! shared by every instance that sees the directory. The key ([`install_key`]) is the SHA-256 of
//! everything that determines the install: the file, the language, the interpreter's version
//! (compiled packages are built for one) and the function's namespace (`KELP_NAMESPACE`), so
//! that no namespace loads an install another namespace's install scripts wrote.
//!
//! An install runs in a private temporary directory that is renamed into place when it succeeds,
//! so a half-installed directory is never used. An advisory lock (`flock`) on
//! `<sha256>.lock` makes concurrent instances wait for the first one's install instead of
//! repeating it; the kernel releases it when its holder dies, so it works across the PID
//! namespaces of containers sharing a node directory. An install found in place is used
//! without taking the lock, so the directory may be mounted read-only.
//!
//! With install-time credentials, the download and the packages' code are kept apart: [`fetch`]
//! downloads into a stage directory running none of the packages' code (wheels only for pip,
//! no lifecycle scripts for npm), and [`ensure`] given that stage installs offline from it (the
//! same key, lock and rename), where the install scripts run without the credentials.
//!
//! An install (or a fetch) may take at most a time limit (`KELP_INSTALL_TIMEOUT`, default
//! [`DEFAULT_INSTALL_TIMEOUT`]): past it the installer's process group is killed and the install
//! fails with [`DepsError::TimedOut`]. An instance waiting for another one's install gives up
//! after the same limit with [`DepsError::LockTimeout`].

use crate::language::{Interpreter, Language};
use sha2::{Digest, Sha256};
use std::fs::TryLockError;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a dependency install may take unless `KELP_INSTALL_TIMEOUT` says otherwise.
pub const DEFAULT_INSTALL_TIMEOUT: Duration = Duration::from_secs(600);
/// How often a waiter tries the lock of an install under way.
const LOCK_POLL: Duration = Duration::from_millis(200);

/// Why dependencies could not be made available.
#[derive(Debug, thiserror::Error)]
pub enum DepsError {
    /// The installer (or the fetcher) ran and failed; `output` holds its error lines, which name
    /// the package, and `note` why a fetch may refuse a package.
    #[error("{step} {language} dependencies from {file} failed ({status}):\n{output}{note}")]
    InstallFailed {
        /// What was being done.
        step: Step,
        /// Language name.
        language: &'static str,
        /// The dependency file's name.
        file: &'static str,
        /// The installer's exit status.
        status: std::process::ExitStatus,
        /// The relevant lines of the installer's output.
        output: String,
        /// Empty, or a line saying why a fetch refuses what an install accepts.
        note: String,
    },
    /// The interpreter, whose version is part of the install's key, does not run.
    #[error("installing {language} dependencies: {command} --version does not run or names no version")]
    NoInterpreter {
        /// Language name.
        language: &'static str,
        /// The interpreter's command.
        command: String,
    },
    /// The installer ran past the time limit and was killed (with its process group).
    #[error("dependency install timed out after {} s: {step} {language} dependencies from {file} (KELP_INSTALL_TIMEOUT)", limit.as_secs_f64())]
    TimedOut {
        /// What was being done.
        step: Step,
        /// Language name.
        language: &'static str,
        /// The dependency file's name.
        file: &'static str,
        /// The time limit.
        limit: Duration,
    },
    /// Another process's install of the same dependencies held the lock past the time limit.
    #[error("dependency install timed out after {} s: waited for another install of the same {language} dependencies (lock {}) (KELP_INSTALL_TIMEOUT)", limit.as_secs_f64(), lock.display())]
    LockTimeout {
        /// Language name.
        language: &'static str,
        /// The lock file waited on.
        lock: PathBuf,
        /// The time limit.
        limit: Duration,
    },
    /// A plugin runtime's dependencies are installed in one step, so they cannot be fetched
    /// apart from running their install (`--fetch-deps`, the installation phase's secrets).
    #[error(
        "the {language} runtime is a plugin, whose {file} is installed in one step: its dependencies cannot be fetched apart (--fetch-deps, an installation phase with secrets); install them without a stage"
    )]
    NoFetch {
        /// Language name.
        language: &'static str,
        /// The dependency file's name.
        file: &'static str,
    },
    /// The installer could not be started or the cache could not be written.
    #[error("installing {language} dependencies: {context}: {cause}")]
    Io {
        /// Language name.
        language: &'static str,
        /// What was being done.
        context: String,
        /// The underlying error.
        cause: std::io::Error,
    },
}

/// What is being done with a dependency file, as error messages say it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Downloading into a stage, running no package code ([`fetch`]).
    Fetching,
    /// Installing into the cache ([`ensure`]).
    Installing,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Step::Fetching => "fetching",
            Step::Installing => "installing",
        })
    }
}

/// A dependency file and where its install goes.
struct Install {
    /// The dependency file's content.
    content: Vec<u8>,
    /// `<deps dir>/<language>`.
    dir: PathBuf,
    /// `<deps dir>/<language>/<key>`.
    target: PathBuf,
}

impl Install {
    /// The install of the dependency file in `code_dir` for a function of `namespace`, or `None`
    /// when there is no (or an empty) dependency file.
    async fn of(
        lang: &'static Language,
        code_dir: &Path,
        deps_dir: &Path,
        namespace: &str,
    ) -> Result<Option<Install>, DepsError> {
        if lang.build.is_some() {
            // A compiled language's dependency file is its build's (`crate::build`).
            return Ok(None);
        }
        let content = match tokio::fs::read(code_dir.join(lang.deps_file)).await {
            Ok(c) if !c.iter().all(u8::is_ascii_whitespace) => c,
            _ => return Ok(None),
        };
        let interpreter = Interpreter::find(lang)
            .await
            .ok_or_else(|| DepsError::NoInterpreter { language: lang.name, command: lang.interpreter() })?;
        let dir = deps_dir.join(lang.name);
        let target = dir.join(install_key(lang, &content, &interpreter.version, namespace));
        Ok(Some(Install { content, dir, target }))
    }
}

/// Downloads what the dependency file in `code_dir` needs into `stage` (emptied first), running
/// none of the packages' code, for an [`ensure`] given the same stage; does nothing when that
/// install is already in `deps_dir` or there are no dependencies. Takes at most `limit`.
pub async fn fetch(
    lang: &'static Language,
    code_dir: &Path,
    deps_dir: &Path,
    namespace: &str,
    stage: &Path,
    limit: Duration,
) -> Result<(), DepsError> {
    let io = |context: String| move |cause| DepsError::Io { language: lang.name, context, cause };
    let Some(Install { content, target, .. }) = Install::of(lang, code_dir, deps_dir, namespace).await? else {
        return Ok(());
    };
    if target.is_dir() {
        tracing::info!(language = lang.name, dir = %target.display(), "dependencies already installed; nothing to fetch");
        return Ok(());
    }
    let _ = std::fs::remove_dir_all(stage);
    std::fs::create_dir_all(stage).map_err(io(format!("creating {}", stage.display())))?;
    std::fs::write(stage.join(lang.deps_file), &content).map_err(io(format!("writing into {}", stage.display())))?;
    let Some(fetch) = lang.deps.fetch(&lang.interpreter(), stage) else {
        return Err(DepsError::NoFetch { language: lang.name, file: lang.deps_file });
    };
    run(lang, Step::Fetching, fetch, limit).await?;
    tracing::info!(language = lang.name, stage = %stage.display(), "dependencies fetched");
    Ok(())
}

/// Installs the dependency file in `code_dir`, if there is one, under `deps_dir` for a function
/// of `namespace`, and returns the module search path entries to give the worker (empty when
/// the function has no dependencies). With a `stage` ([`fetch`]), the install runs offline from
/// it. The install, or the wait for another process's install of the same file, takes at most
/// `limit`.
pub async fn ensure(
    lang: &'static Language,
    code_dir: &Path,
    deps_dir: &Path,
    namespace: &str,
    stage: Option<&Path>,
    limit: Duration,
) -> Result<Vec<PathBuf>, DepsError> {
    let io = |context: String| move |cause| DepsError::Io { language: lang.name, context, cause };
    let Some(Install { content, dir, target }) = Install::of(lang, code_dir, deps_dir, namespace).await? else {
        return Ok(Vec::new());
    };
    tokio::fs::create_dir_all(&dir).await.map_err(io(format!("creating {}", dir.display())))?;
    remove_abandoned_installs(&dir, limit);
    let made = once(&target, limit, || install(lang, &content, &target, stage, limit)).await;
    match made {
        Ok(_) => Ok(lang.deps.paths(&target)),
        Err(Once::Failed(e)) => Err(e),
        Err(Once::LockTimeout(lock)) => Err(DepsError::LockTimeout { language: lang.name, lock, limit }),
        Err(Once::Lock(context, cause)) => Err(DepsError::Io { language: lang.name, context, cause }),
    }
}

/// Why [`once`] did not leave its target in place.
#[derive(Debug)]
pub(crate) enum Once<E> {
    /// The work ran here and failed.
    Failed(E),
    /// Another process held the lock (the path) for longer than the time limit.
    LockTimeout(PathBuf),
    /// The lock file could not be opened or locked: what was being done, and why.
    Lock(String, std::io::Error),
}

/// Makes the directory `target` exist, running `make` (which must create it, atomically) at most
/// once across the processes sharing its parent: an advisory lock on `<target>.lock` makes the
/// others wait, for at most `limit`. `Ok(true)` when `make` ran here, `Ok(false)` when the
/// target was found in place (made earlier, or by another process meanwhile).
pub(crate) async fn once<E, F: Future<Output = Result<(), E>>>(
    target: &Path,
    limit: Duration,
    make: impl FnOnce() -> F,
) -> Result<bool, Once<E>> {
    let lock_path = target.with_extension("lock");
    let waiting_since = Instant::now();
    loop {
        if target.is_dir() {
            return Ok(false);
        }
        // The lock file stays: removing it could let a waiter lock an unlinked file.
        let lock = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| Once::Lock(format!("opening {}", lock_path.display()), e))?;
        match lock.try_lock() {
            // The holder before us may have finished while we opened the file.
            Ok(()) if target.is_dir() => return Ok(false),
            Ok(()) => return make().await.map(|()| true).map_err(Once::Failed),
            Err(TryLockError::WouldBlock) if waiting_since.elapsed() >= limit => {
                return Err(Once::LockTimeout(lock_path));
            }
            Err(TryLockError::WouldBlock) => tokio::time::sleep(LOCK_POLL).await,
            Err(TryLockError::Error(e)) => return Err(Once::Lock(format!("locking {}", lock_path.display()), e)),
        }
    }
}

async fn install(
    lang: &'static Language,
    content: &[u8],
    target: &Path,
    stage: Option<&Path>,
    limit: Duration,
) -> Result<(), DepsError> {
    let io = |context: String| move |cause| DepsError::Io { language: lang.name, context, cause };
    let tmp = target.with_extension(format!("tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let started = std::time::Instant::now();
    let installed = async {
        std::fs::create_dir_all(&tmp).map_err(io(format!("creating {}", tmp.display())))?;
        std::fs::write(tmp.join(lang.deps_file), content).map_err(io(format!("writing into {}", tmp.display())))?;
        if let Some(stage) = stage {
            if !stage.is_dir() {
                let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
                return Err(io(format!("the stage {} (KELP_DEPS_STAGE) that --fetch-deps fills", stage.display()))(
                    missing,
                ));
            }
            for entry in lang.deps.staged().iter().map(|e| stage.join(e)).filter(|e| e.exists()) {
                let to = tmp.join(entry.file_name().unwrap_or_default());
                copy_tree(&entry, &to).map_err(io(format!("copying {} into {}", entry.display(), tmp.display())))?;
            }
        }
        run(lang, Step::Installing, lang.deps.install(&lang.interpreter(), &tmp, stage), limit).await
    };
    if let Err(e) = installed.await {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, target)
        .or_else(|e| if target.is_dir() { Ok(()) } else { Err(e) })
        .map_err(io(format!("moving the install into {}", target.display())))?;
    let _ = std::fs::remove_dir_all(&tmp);
    tracing::info!(language = lang.name, dir = %target.display(), secs = started.elapsed().as_secs_f64(), "dependencies installed");
    Ok(())
}

/// Runs `cmd`, the installer or fetcher of `lang`'s dependency file, in a process group of its
/// own, for at most `limit` (then the whole group is killed).
async fn run(
    lang: &'static Language,
    step: Step,
    cmd: tokio::process::Command,
    limit: Duration,
) -> Result<(), DepsError> {
    let io = |context: String| move |cause| DepsError::Io { language: lang.name, context, cause };
    let out = run_bounded(cmd, limit).await.map_err(io(format!("running {step} {}", lang.deps_file)))?;
    let Some(out) = out else {
        return Err(DepsError::TimedOut { step, language: lang.name, file: lang.deps_file, limit });
    };
    if !out.status.success() {
        let note = match step {
            Step::Fetching if !lang.deps.fetch_note().is_empty() => format!("\n({})", lang.deps.fetch_note()),
            _ => String::new(),
        };
        return Err(DepsError::InstallFailed {
            step,
            language: lang.name,
            file: lang.deps_file,
            status: out.status,
            output: error_lines(&out.stdout, &out.stderr),
            note,
        });
    }
    Ok(())
}

/// Runs `cmd` with its output captured (the first [`OUTPUT_MAX`] bytes of each stream), in a
/// process group of its own, for at most `limit`: `None` when it ran past it (then the whole
/// group was killed).
pub async fn run_bounded(
    mut cmd: tokio::process::Command,
    limit: Duration,
) -> std::io::Result<Option<std::process::Output>> {
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()?;
    let leader = child.id();
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let finished = async {
        let (status, stdout, stderr) = tokio::join!(child.wait(), read_all(stdout), read_all(stderr));
        status.map(|status| std::process::Output { status, stdout, stderr })
    };
    match tokio::time::timeout(limit, finished).await {
        Ok(out) => out.map(Some),
        Err(_) => {
            // Not reaped yet (its wait was pending), so its PID, and the group it leads, are still its.
            if let Some(leader) = leader.and_then(|p| i32::try_from(p).ok()) {
                crate::group::kill_child_group(leader);
            }
            let _ = child.kill().await;
            Ok(None)
        }
    }
}

/// Copies the directory tree `from` to `to` (which must not exist), symbolic links as links.
pub(crate) fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    let kind = std::fs::symlink_metadata(from)?.file_type();
    if kind.is_symlink() {
        std::os::unix::fs::symlink(std::fs::read_link(from)?, to)
    } else if kind.is_dir() {
        std::fs::create_dir(to)?;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
        Ok(())
    } else {
        std::fs::copy(from, to).map(drop)
    }
}

/// The name of the directory an install goes to: the SHA-256 of the language, the interpreter's
/// version, the namespace and the dependency file, each prefixed with its length (so no two
/// different inputs run together into one).
pub fn install_key(lang: &Language, content: &[u8], interpreter_version: &str, namespace: &str) -> String {
    let mut digest = Sha256::new();
    for part in [lang.name.as_bytes(), interpreter_version.as_bytes(), namespace.as_bytes(), content] {
        digest.update((part.len() as u64).to_le_bytes());
        digest.update(part);
    }
    hex(&digest.finalize())
}

/// Removes the temporary directories (`<key>.tmp-<pid>`) in `dir` of installs that were
/// abandoned (their process was killed): untouched for twice the time limit, past which no
/// install of a live process is still under way. The PID in the name cannot tell, as processes of
/// other containers sharing the directory have PIDs of their own namespaces.
pub(crate) fn remove_abandoned_installs(dir: &Path, limit: Duration) {
    let entries = std::fs::read_dir(dir).into_iter().flatten().flatten();
    for entry in entries.filter(|e| e.file_name().to_string_lossy().contains(".tmp-")) {
        let modified = entry.metadata().and_then(|m| m.modified());
        if modified.is_ok_and(|m| m.elapsed().is_ok_and(|age| age >= limit.saturating_mul(2))) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The most of a child's stdout, or of its stderr, [`run_bounded`] keeps.
pub const OUTPUT_MAX: usize = 1 << 20;

/// The first [`OUTPUT_MAX`] bytes `pipe` yields, reading the rest to its end (nothing when it is
/// absent or fails).
async fn read_all(pipe: Option<impl tokio::io::AsyncRead + Unpin>) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    if let Some(mut pipe) = pipe {
        let mut chunk = [0u8; 8192];
        while let Ok(n @ 1..) = pipe.read(&mut chunk).await {
            let room = OUTPUT_MAX.saturating_sub(buf.len());
            buf.extend_from_slice(&chunk[..n.min(room)]);
        }
    }
    buf
}

/// The installer's lines that say what failed (they name the package), or its last lines.
pub(crate) fn error_lines(stdout: &[u8], stderr: &[u8]) -> String {
    let text = format!("{}{}", String::from_utf8_lossy(stdout), String::from_utf8_lossy(stderr));
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let errors: Vec<&str> = lines.iter().copied().filter(|l| l.to_ascii_lowercase().contains("err")).collect();
    let chosen = if errors.is_empty() { &lines[lines.len().saturating_sub(10)..] } else { &errors[..] };
    chosen.join("\n")
}

/// Lower-case hexadecimal of a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::language::LANGUAGES;

    #[test]
    fn the_install_key_covers_namespace_interpreter_language_and_file() {
        let [python, node] = [&LANGUAGES[0], &LANGUAGES[1]];
        let key = |lang, file: &[u8], version, namespace| install_key(lang, file, version, namespace);
        let base = key(python, b"requests\n", "3.11.7", "team-a");
        assert_eq!(base, key(python, b"requests\n", "3.11.7", "team-a"), "the key is stable");
        assert_ne!(base, key(python, b"requests\n", "3.11.7", "team-b"), "two namespaces share an install");
        assert_ne!(base, key(python, b"requests\n", "3.12.1", "team-a"), "two interpreters share an install");
        assert_ne!(base, key(node, b"requests\n", "3.11.7", "team-a"), "two languages share an install");
        assert_ne!(base, key(python, b"flask\n", "3.11.7", "team-a"), "two files share an install");
        // The parts do not run together.
        assert_ne!(key(python, b"1team-a", "3.11.7", ""), key(python, b"team-a", "3.11.7", "1"));
    }

    #[test]
    fn error_lines_prefer_lines_naming_the_failure() {
        let out = error_lines(b"Collecting x\n", b"ERROR: No matching distribution found for nosuchpkg\n");
        assert_eq!(out, "ERROR: No matching distribution found for nosuchpkg");
        assert_eq!(error_lines(b"a\nb\n", b""), "a\nb");
    }

    /// Processes whose working directory is under `dir`.
    fn working_in(dir: &Path) -> Vec<String> {
        let entries = std::fs::read_dir("/proc").into_iter().flatten().flatten();
        entries
            .filter_map(|e| std::fs::read_link(e.path().join("cwd")).ok().map(|cwd| (e.file_name(), cwd)))
            .filter(|(_, cwd)| cwd.starts_with(dir))
            .map(|(pid, cwd)| format!("{} in {}", pid.to_string_lossy(), cwd.display()))
            .collect()
    }

    #[test]
    fn abandoned_install_directories_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let abandoned = dir.path().join("abc.tmp-123");
        let recent = dir.path().join("def.tmp-456");
        let installed = dir.path().join("abc");
        for d in [&abandoned, &recent, &installed] {
            std::fs::create_dir(d).unwrap();
        }
        let long_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
        for d in [&abandoned, &installed] {
            std::fs::File::open(d).unwrap().set_modified(long_ago).unwrap();
        }
        remove_abandoned_installs(dir.path(), Duration::from_secs(600));
        assert!(!abandoned.exists(), "an install left for twice the limit is removed");
        assert!(recent.exists() && installed.exists(), "a recent install and finished ones stay");
    }

    #[tokio::test]
    async fn a_hung_install_is_killed_and_its_waiters_give_up() {
        // A package index that accepts connections and never answers (a real socket).
        let index = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = index.local_addr().unwrap().port();
        std::thread::spawn(move || index.incoming().collect::<Vec<_>>());
        let python = Language::for_runtime("python3").unwrap();
        let code = tempfile::tempdir().unwrap();
        let requirements = format!("--index-url http://127.0.0.1:{port}/simple\nkelp-no-such-package\n");
        std::fs::write(code.path().join("requirements.txt"), requirements).unwrap();
        let deps = tempfile::tempdir().unwrap();

        let first = tokio::spawn({
            let (code, deps) = (code.path().to_owned(), deps.path().to_owned());
            async move { ensure(python, &code, &deps, "default", None, Duration::from_secs(3)).await }
        });
        // Once the first install holds its lock, a second instance waits for it, with a shorter limit.
        let lock = loop {
            let held = std::fs::read_dir(deps.path().join("python")).into_iter().flatten().flatten().find(|e| {
                e.path().extension().is_some_and(|x| x == "lock")
                    && std::fs::File::open(e.path())
                        .is_ok_and(|f| matches!(f.try_lock(), Err(TryLockError::WouldBlock)))
            });
            match held {
                Some(entry) => break entry.path(),
                None => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        let second = ensure(python, code.path(), deps.path(), "default", None, Duration::from_secs(1)).await;
        match second {
            Err(DepsError::LockTimeout { lock: waited, .. }) => assert_eq!(waited, lock),
            other => panic!("the waiter gives up on the lock: {other:?}"),
        }
        let first = first.await.unwrap();
        assert!(matches!(first, Err(DepsError::TimedOut { .. })), "{first:?}");
        let message = first.unwrap_err().to_string();
        assert!(message.starts_with("dependency install timed out after 3 s"), "{message}");
        // SIGKILL takes a moment to end a process.
        let mut left = working_in(deps.path());
        for _ in 0..200 {
            if left.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            left = working_in(deps.path());
        }
        assert_eq!(left, Vec::<String>::new(), "the installer's processes were killed");
        let python_dir = std::fs::read_dir(deps.path().join("python")).unwrap().flatten();
        let left: Vec<_> = python_dir.map(|e| e.file_name()).filter(|n| n != lock.file_name().unwrap()).collect();
        assert!(left.is_empty(), "no install directory is left: {left:?}");
    }

    #[tokio::test]
    async fn fetch_refuses_a_package_published_only_as_source() {
        // A local package index holding only an sdist (never opened: pip refuses it by its name).
        let index = tempfile::tempdir().unwrap();
        std::fs::write(index.path().join("kelp_sdist_only-1.0.tar.gz"), b"not built").unwrap();
        let code = tempfile::tempdir().unwrap();
        let requirements = format!("--no-index\n--find-links {}\nkelp-sdist-only\n", index.path().display());
        std::fs::write(code.path().join("requirements.txt"), requirements).unwrap();
        let (deps, stage) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let python = Language::for_runtime("python3").unwrap();
        let fetched = fetch(python, code.path(), deps.path(), "default", stage.path(), Duration::from_secs(120)).await;
        let Err(e @ DepsError::InstallFailed { step: Step::Fetching, .. }) = fetched else {
            panic!("an sdist-only requirement is refused: {fetched:?}");
        };
        let message = e.to_string();
        assert!(message.starts_with("fetching python dependencies from requirements.txt failed"), "{message}");
        assert!(message.contains("kelp-sdist-only"), "the error names the package: {message}");
        assert!(message.contains("source distribution (sdist) is refused"), "the error says why: {message}");
    }

    #[tokio::test]
    async fn node_install_scripts_run_at_install_not_at_fetch() {
        // A local `file:` package whose install script leaves a marker in its own directory.
        let package = tempfile::tempdir().unwrap();
        let script = r#"node -e \"require('fs').writeFileSync('installed', '')\""#;
        let manifest =
            format!(r#"{{"name": "kelp-marker", "version": "1.0.0", "scripts": {{"install": "{script}"}}}}"#);
        std::fs::write(package.path().join("package.json"), manifest).unwrap();
        std::fs::write(package.path().join("index.js"), "module.exports = 1;\n").unwrap();
        let code = tempfile::tempdir().unwrap();
        let dependency = format!("file:{}", package.path().display());
        let root = serde_json::json!({"name": "f", "version": "1.0.0", "dependencies": {"kelp-marker": dependency}});
        std::fs::write(code.path().join("package.json"), root.to_string()).unwrap();
        let (deps, scratch) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let stage = scratch.path().join("stage");
        let node = Language::for_runtime("nodejs20").unwrap();
        let limit = Duration::from_secs(120);

        fetch(node, code.path(), deps.path(), "default", &stage, limit).await.unwrap();
        let fetched = stage.join("node_modules/kelp-marker");
        assert!(fetched.join("index.js").is_file(), "the package is in the stage");
        assert!(!fetched.join("installed").exists(), "its install script ran during the fetch");
        assert!(!package.path().join("installed").exists(), "its install script ran during the fetch");
        let installs = deps.path().join("nodejs").read_dir().into_iter().flatten().flatten().count();
        assert_eq!(installs, 0, "the fetch installed something");

        let paths = ensure(node, code.path(), deps.path(), "default", Some(&stage), limit).await.unwrap();
        assert!(paths[0].join("kelp-marker/installed").is_file(), "its install script ran at install: {paths:?}");
    }
}
