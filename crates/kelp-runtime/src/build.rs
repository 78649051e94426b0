//! Builds of compiled languages (Go, Java, Rust), once per content: the code directory becomes a
//! worker program in `<deps dir>/<language>/build-<key>` (`KELP_DEPS_DIR`, shared by every
//! instance that sees it, as dependency installs are). The key ([`build_key`]) is the SHA-256 of
//! everything that determines the build's output: the language, the toolchain's version, Kelp's
//! wrapper (its files), `MOD_NAME` and `FUNC_HANDLER`, the function's namespace and every file of
//! the code directory (the code, the dependency file and its lock file).
//!
//! A build runs in a private temporary directory renamed into place when it succeeds, under the
//! same advisory lock as a dependency install (`crate::deps`), so two instances never build the
//! same key twice and a half-built directory is never used; a build found in place is used
//! without the lock (the directory may be mounted read-only). A language's finishing step
//! (`Build::finish`: Java's class-data archive, which names the build's final path) then runs in
//! the directory in place, still under the lock and the time limit; it only adds to a build that
//! works without it (a worker starting meanwhile starts without it), and its failure is a warning. It runs the language's commands
//! in a process group of their own for at most `KELP_BUILD_TIMEOUT` (default
//! [`DEFAULT_BUILD_TIMEOUT`]); past it the group is killed. A failure carries the compiler's
//! first error lines.
//!
//! The toolchain keeps its own caches (downloaded modules, compiled dependencies) in
//! `<deps dir>/<language>/toolchain-<namespace digest>`: shared by the builds of one namespace
//! (so a second function's build reuses the first one's downloads), never across namespaces (a
//! build may run code, as Cargo build scripts and Maven plugins do).

use crate::deps::{Once, copy_tree, error_lines, hex, once, remove_abandoned_installs, run_bounded};
use crate::language::{BuildJob, Interpreter, Language};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a build may take unless `KELP_BUILD_TIMEOUT` says otherwise.
pub const DEFAULT_BUILD_TIMEOUT: Duration = Duration::from_secs(300);
/// At most this many files in a code directory to build (the key reads them all).
pub const MAX_CODE_FILES: usize = 10_000;
/// At most this many bytes in a code directory to build.
pub const MAX_CODE_BYTES: u64 = 256 << 20;
/// The compiler's lines a failure quotes, at most.
const ERROR_LINES: usize = 20;

/// Why a function could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The compiler (or the dependency resolver) ran and failed; `output` holds its first error
    /// lines.
    #[error("build of {language} function {function} failed ({status}), key {key}:\n{output}")]
    Failed {
        /// Language name.
        language: &'static str,
        /// `module.handler`.
        function: String,
        /// The build's key.
        key: String,
        /// The failing command's exit status.
        status: std::process::ExitStatus,
        /// The compiler's first error lines.
        output: String,
    },
    /// The build ran past the time limit and was killed (with its process group).
    #[error("build of {language} function {function} timed out after {} s and was killed (KELP_BUILD_TIMEOUT), key {key}", limit.as_secs_f64())]
    TimedOut {
        /// Language name.
        language: &'static str,
        /// `module.handler`.
        function: String,
        /// The build's key.
        key: String,
        /// The time limit.
        limit: Duration,
    },
    /// Another process's build of the same key held the lock past the time limit.
    #[error("build timed out after {} s: waited for another build of the same {language} code (lock {}) (KELP_BUILD_TIMEOUT)", limit.as_secs_f64(), lock.display())]
    LockTimeout {
        /// Language name.
        language: &'static str,
        /// The lock file waited on.
        lock: PathBuf,
        /// The time limit.
        limit: Duration,
    },
    /// The toolchain, whose version is part of the key, does not run.
    #[error(
        "building {language} functions needs {command}, which does not run or names no version (set {env} to its path)"
    )]
    NoToolchain {
        /// Language name.
        language: &'static str,
        /// The toolchain's command.
        command: String,
        /// The variable naming it.
        env: &'static str,
    },
    /// The code directory holds more than a build reads.
    #[error("the code directory {} is too large to build: more than {MAX_CODE_FILES} files or {MAX_CODE_BYTES} bytes", dir.display())]
    TooLarge {
        /// The code directory.
        dir: PathBuf,
    },
    /// A file could not be read or written.
    #[error("building {language}: {context}: {cause}")]
    Io {
        /// Language name.
        language: &'static str,
        /// What was being done.
        context: String,
        /// The underlying error.
        cause: std::io::Error,
    },
}

/// What is built: the function of a code directory, for a namespace.
#[derive(Clone, Copy, Debug)]
pub struct Source<'a> {
    /// The code directory (`KUBELESS_INSTALL_VOLUME`).
    pub code_dir: &'a Path,
    /// `MOD_NAME`.
    pub module: &'a str,
    /// `FUNC_HANDLER`.
    pub handler: &'a str,
    /// `KELP_NAMESPACE`.
    pub namespace: &'a str,
}

/// A finished build.
#[derive(Debug)]
pub struct Built {
    /// The build directory: what [`crate::language::Build::worker`] starts a worker from.
    pub dir: PathBuf,
    /// The build's key.
    pub key: String,
    /// How long the build took when this process ran it; `None` when it was found in place
    /// (built earlier, or by another process meanwhile).
    pub took: Option<Duration>,
    /// What the build's [`RECORD_FILE`] says (`None` for a build without one).
    pub record: Option<Record>,
}

/// The build of `source` in `lang`, under `deps_dir`: found in place, or run now (at most
/// once across the processes sharing `deps_dir`) within `limit`.
pub async fn ensure(
    lang: &'static Language,
    source: Source<'_>,
    deps_dir: &Path,
    limit: Duration,
) -> Result<Built, BuildError> {
    let io = |context: String| move |cause| BuildError::Io { language: lang.name, context, cause };
    let build = lang.build.as_ref().expect("ensure is called for compiled languages only");
    let toolchain = toolchain(lang, deps_dir).await.ok_or_else(|| BuildError::NoToolchain {
        language: lang.name,
        command: lang.interpreter(),
        env: lang.interpreter.0,
    })?;
    let files = code_files(source.code_dir).map_err(|e| match e {
        Walk::TooLarge => BuildError::TooLarge { dir: source.code_dir.to_owned() },
        Walk::Io(cause) => io(format!("reading {}", source.code_dir.display()))(cause),
    })?;
    let key = build_key(lang, &toolchain.version, source, &files);
    let dir = deps_dir.join(lang.name);
    let target = dir.join(format!("build-{key}"));
    tokio::fs::create_dir_all(&dir).await.map_err(io(format!("creating {}", dir.display())))?;
    remove_abandoned_installs(&dir, limit);
    let namespace_digest = hex(&Sha256::digest(source.namespace.as_bytes()));
    let cache = dir.join(format!("toolchain-{}", &namespace_digest[..16]));
    let started = Instant::now();
    let made = once(&target, limit, || async {
        let tmp = target.with_extension(format!("tmp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let result = run_build(lang, build, source, &toolchain.command, &tmp, &cache, &key, limit).await;
        let mut record = Record {
            key: key.clone(),
            language: lang.name.to_owned(),
            function: format!("{}.{}", source.module, source.handler),
            toolchain: toolchain.describe(),
            seconds: started.elapsed().as_secs_f64(),
        };
        let result = result.and_then(|()| {
            write_record(&tmp, &record).map_err(io(format!("writing {}", tmp.join(RECORD_FILE).display())))
        });
        let moved = result.and_then(|()| {
            std::fs::rename(&tmp, &target)
                .or_else(|e| if target.is_dir() { Ok(()) } else { Err(e) })
                .map_err(io(format!("moving the build into {}", target.display())))
        });
        let _ = std::fs::remove_dir_all(&tmp);
        moved?;
        if let Some(finish) = build.finish {
            let job = BuildJob {
                toolchain: &toolchain.command,
                dir: &target,
                module: source.module,
                handler: source.handler,
                cache: &cache,
            };
            let left = limit.saturating_sub(started.elapsed());
            if let Err(e) = run_commands(lang, (finish)(&job), &target, left, &record.function, &key).await {
                let why = match e {
                    BuildError::Failed { status, output, .. } => format!("failed ({status}):\n{output}"),
                    other => format!("did not finish: {other}"),
                };
                tracing::warn!(
                    language = lang.name,
                    key = %key,
                    "the build of {} is in place, but its last step {why}\n(its workers start without what that step adds)",
                    record.function
                );
            }
            record.seconds = started.elapsed().as_secs_f64();
            // Best effort: the record written before the move stays if this fails.
            let _ = write_record(&target, &record);
        }
        Ok(())
    })
    .await;
    let took = match made {
        Ok(true) => Some(started.elapsed()),
        Ok(false) => None,
        Err(Once::Failed(e)) => return Err(e),
        Err(Once::LockTimeout(lock)) => return Err(BuildError::LockTimeout { language: lang.name, lock, limit }),
        Err(Once::Lock(context, cause)) => return Err(BuildError::Io { language: lang.name, context, cause }),
    };
    let record = std::fs::read(target.join(RECORD_FILE)).ok().and_then(|b| serde_json::from_slice(&b).ok());
    Ok(Built { dir: target, key, took, record })
}

impl Built {
    /// One line for people: what was built, from which key, with which toolchain and how long
    /// it took, and whether this process built it or found it built.
    pub fn summary(&self) -> String {
        let Some(r) = &self.record else {
            return format!("found the build of key {} in the cache", self.key);
        };
        let how = match self.took {
            Some(_) => "built",
            None => "found in the cache the build of",
        };
        format!("{how} {} function {} from key {} ({}, {:.2} s)", r.language, r.function, r.key, r.toolchain, r.seconds)
    }
}

/// The file in a build directory that says what was built, from which key, and how long it
/// took: what an instance serving it logs.
pub const RECORD_FILE: &str = ".kelp-build.json";

/// Writes `record` as the [`RECORD_FILE`] of `dir`, by a rename: a reader sees the whole of the
/// old record or of the new one.
fn write_record(dir: &Path, record: &Record) -> std::io::Result<()> {
    let file = dir.join(RECORD_FILE);
    let tmp = file.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&tmp, serde_json::to_vec(record).unwrap_or_default())?;
    std::fs::rename(&tmp, &file)
}

/// What [`RECORD_FILE`] holds.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Record {
    /// The build's key.
    pub key: String,
    /// The language's name.
    pub language: String,
    /// `module.handler`.
    pub function: String,
    /// The toolchain that built it: `Go 1.26.8 (go)`.
    pub toolchain: String,
    /// How long the build took, in seconds.
    pub seconds: f64,
}

/// The toolchain of `lang` and its version: what `<toolchain> --version` said the last time
/// for the same program file (its path, size and modification time, once links are resolved),
/// remembered under `<deps dir>/<language>/versions/`, else asked now. Asking costs a process
/// start at every instance start (a second JVM start for Java), where the build it keys is
/// usually found built; a toolchain replaced in place has another size or time, and is asked.
async fn toolchain(lang: &'static Language, deps_dir: &Path) -> Option<Interpreter> {
    let command = lang.interpreter();
    let program = which(&command).and_then(|p| std::fs::canonicalize(p).ok());
    let meta = program.as_ref().and_then(|p| std::fs::metadata(p).ok());
    let memo = program.zip(meta).map(|(path, meta)| {
        let modified = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
        let identity =
            format!("{}\n{}\n{}\n{}", command, path.display(), meta.len(), modified.unwrap_or_default().as_nanos());
        let name = hex(&Sha256::digest(identity.as_bytes()));
        deps_dir.join(lang.name).join("versions").join(&name[..32])
    });
    if let Some(version) = memo.as_ref().and_then(|m| std::fs::read_to_string(m).ok()) {
        let version = version.trim();
        if !version.is_empty() {
            return Some(Interpreter { language: lang, command, version: version.to_owned() });
        }
    }
    let found = Interpreter::find(lang).await?;
    if let Some(memo) = memo {
        // Best effort: a read-only cache (a pod's function container) asks every time.
        let _ = std::fs::create_dir_all(memo.parent().unwrap_or(deps_dir)).and_then(|()| {
            let tmp = memo.with_extension(format!("tmp-{}", std::process::id()));
            std::fs::write(&tmp, &found.version).and_then(|()| std::fs::rename(&tmp, &memo))
        });
    }
    Some(found)
}

/// The program file `command` runs: itself when it names a path, else the first executable of
/// that name on `PATH`.
fn which(command: &str) -> Option<PathBuf> {
    if command.contains('/') {
        return Some(PathBuf::from(command));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(command)).find(|candidate| {
        std::fs::metadata(candidate)
            .is_ok_and(|m| m.is_file() && std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0)
    })
}

/// Writes the wrapper and a copy of the code into the fresh directory `tmp` and runs the
/// language's build commands there.
#[allow(clippy::too_many_arguments)]
async fn run_build(
    lang: &'static Language,
    build: &crate::language::Build,
    source: Source<'_>,
    toolchain: &str,
    tmp: &Path,
    cache: &Path,
    key: &str,
    limit: Duration,
) -> Result<(), BuildError> {
    let io = |context: String| move |cause| BuildError::Io { language: lang.name, context, cause };
    let function = format!("{}.{}", source.module, source.handler);
    std::fs::create_dir_all(cache).map_err(io(format!("creating {}", cache.display())))?;
    std::fs::create_dir_all(tmp).map_err(io(format!("creating {}", tmp.display())))?;
    for (path, content) in build.wrapper {
        let file = tmp.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).map_err(io(format!("creating {}", parent.display())))?;
        }
        std::fs::write(&file, content).map_err(io(format!("writing {}", file.display())))?;
    }
    let copy = tmp.join("function");
    copy_tree(source.code_dir, &copy).map_err(io(format!(
        "copying {} into {}",
        source.code_dir.display(),
        copy.display()
    )))?;
    let job = BuildJob { toolchain, dir: tmp, module: source.module, handler: source.handler, cache };
    run_commands(lang, (build.commands)(&job), tmp, limit, &function, key).await
}

/// Runs `commands` one after the other in `dir`, all of them within `limit` (past it the
/// running one is killed with its process group); the first that fails ends the run.
async fn run_commands(
    lang: &'static Language,
    commands: Vec<tokio::process::Command>,
    dir: &Path,
    limit: Duration,
    function: &str,
    key: &str,
) -> Result<(), BuildError> {
    let deadline = Instant::now() + limit;
    for mut cmd in commands {
        cmd.current_dir(dir);
        let left = deadline.saturating_duration_since(Instant::now());
        let out = run_bounded(cmd, left).await.map_err(|cause| BuildError::Io {
            language: lang.name,
            context: format!("starting the {} build", lang.title),
            cause,
        })?;
        let Some(out) = out else {
            return Err(BuildError::TimedOut {
                language: lang.name,
                function: function.to_owned(),
                key: key.to_owned(),
                limit,
            });
        };
        if !out.status.success() {
            let output = first_lines(&error_lines(&out.stdout, &out.stderr), ERROR_LINES);
            return Err(BuildError::Failed {
                language: lang.name,
                function: function.to_owned(),
                key: key.to_owned(),
                status: out.status,
                output,
            });
        }
    }
    Ok(())
}

/// The first `n` lines of `text`.
fn first_lines(text: &str, n: usize) -> String {
    text.lines().take(n).collect::<Vec<_>>().join("\n")
}

/// Why the code directory could not be read whole.
enum Walk {
    TooLarge,
    Io(std::io::Error),
}

/// Every regular file under `dir` (links followed as the build's copy keeps them: as links,
/// keyed by their target), as (relative path, content), sorted by path; bounded by
/// [`MAX_CODE_FILES`] and [`MAX_CODE_BYTES`].
fn code_files(dir: &Path) -> Result<Vec<(String, Vec<u8>)>, Walk> {
    let mut files = Vec::new();
    let mut bytes = 0u64;
    let mut pending = vec![PathBuf::new()];
    while let Some(rel) = pending.pop() {
        for entry in std::fs::read_dir(dir.join(&rel)).map_err(Walk::Io)? {
            let entry = entry.map_err(Walk::Io)?;
            let path = rel.join(entry.file_name());
            let kind = entry.file_type().map_err(Walk::Io)?;
            let content = if kind.is_dir() {
                pending.push(path);
                continue;
            } else if kind.is_symlink() {
                std::fs::read_link(entry.path()).map_err(Walk::Io)?.into_os_string().into_encoded_bytes()
            } else {
                let size = entry.metadata().map_err(Walk::Io)?.len();
                bytes = bytes.saturating_add(size);
                if bytes > MAX_CODE_BYTES {
                    return Err(Walk::TooLarge);
                }
                std::fs::read(entry.path()).map_err(Walk::Io)?
            };
            if files.len() >= MAX_CODE_FILES {
                return Err(Walk::TooLarge);
            }
            files.push((path.to_string_lossy().into_owned(), content));
        }
    }
    files.sort();
    Ok(files)
}

/// The name of a build: the SHA-256 of the language, the toolchain's version, the wrapper's
/// files, the function, the namespace and the code directory's files, each prefixed with its
/// length (so no two different inputs run together into one).
pub fn build_key(lang: &Language, toolchain_version: &str, source: Source<'_>, files: &[(String, Vec<u8>)]) -> String {
    let mut digest = Sha256::new();
    let mut part = |bytes: &[u8]| {
        digest.update((bytes.len() as u64).to_le_bytes());
        digest.update(bytes);
    };
    for fixed in [lang.name, toolchain_version, source.module, source.handler, source.namespace] {
        part(fixed.as_bytes());
    }
    for (path, content) in lang.build.iter().flat_map(|b| b.wrapper) {
        part(path.as_bytes());
        part(content.as_bytes());
    }
    part(&(files.len() as u64).to_le_bytes());
    for (path, content) in files {
        part(path.as_bytes());
        part(content);
    }
    hex(&digest.finalize())
}
