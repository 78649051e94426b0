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

use crate::language::{Interpreter, Language};
use sha2::{Digest, Sha256};
use std::fs::TryLockError;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why dependencies could not be made available.
#[derive(Debug, thiserror::Error)]
pub enum DepsError {
    /// The installer ran and failed; `output` holds its error lines, which name the package.
    #[error("installing {language} dependencies from {file} failed ({status}):\n{output}")]
    InstallFailed {
        /// Language name.
        language: &'static str,
        /// The dependency file's name.
        file: &'static str,
        /// The installer's exit status.
        status: std::process::ExitStatus,
        /// The relevant lines of the installer's output.
        output: String,
    },
    /// The interpreter, whose version is part of the install's key, does not run.
    #[error("installing {language} dependencies: {command} --version does not run or names no version")]
    NoInterpreter {
        /// Language name.
        language: &'static str,
        /// The interpreter's command.
        command: String,
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

/// Installs the dependency file in `code_dir`, if there is one, under `deps_dir` for a function
/// of `namespace`, and returns the module search path entries to give the worker (empty when
/// the function has no dependencies).
pub async fn ensure(
    lang: &'static Language,
    code_dir: &Path,
    deps_dir: &Path,
    namespace: &str,
) -> Result<Vec<PathBuf>, DepsError> {
    let io = |context: String| move |cause| DepsError::Io { language: lang.name, context, cause };
    let deps_file = code_dir.join(lang.deps_file);
    let content = match tokio::fs::read(&deps_file).await {
        Ok(c) if !c.iter().all(u8::is_ascii_whitespace) => c,
        _ => return Ok(Vec::new()),
    };
    let interpreter = Interpreter::find(lang)
        .await
        .ok_or_else(|| DepsError::NoInterpreter { language: lang.name, command: lang.interpreter() })?;
    let dir = deps_dir.join(lang.name);
    let target = dir.join(install_key(lang, &content, &interpreter.version, namespace));
    tokio::fs::create_dir_all(&dir).await.map_err(io(format!("creating {}", dir.display())))?;
    let lock_path = target.with_extension("lock");
    loop {
        if target.is_dir() {
            return Ok((lang.dep_paths)(&target));
        }
        // The lock file stays: removing it could let a waiter lock an unlinked file.
        let lock = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(io(format!("opening {}", lock_path.display())))?;
        match lock.try_lock() {
            // The holder before us may have finished the install while we opened the file.
            Ok(()) if target.is_dir() => return Ok((lang.dep_paths)(&target)),
            Ok(()) => return install(lang, &content, &target).await.map(|()| (lang.dep_paths)(&target)),
            Err(TryLockError::WouldBlock) => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(TryLockError::Error(e)) => return Err(io(format!("locking {}", lock_path.display()))(e)),
        }
    }
}

async fn install(lang: &'static Language, content: &[u8], target: &Path) -> Result<(), DepsError> {
    let io = |context: String| move |cause| DepsError::Io { language: lang.name, context, cause };
    let tmp = target.with_extension(format!("tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(io(format!("creating {}", tmp.display())))?;
    std::fs::write(tmp.join(lang.deps_file), content).map_err(io(format!("writing into {}", tmp.display())))?;
    let interpreter = lang.interpreter();
    let started = std::time::Instant::now();
    let out = (lang.install)(&interpreter, &tmp)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(io(format!("starting the installer for {}", lang.deps_file)))?;
    if !out.status.success() {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(DepsError::InstallFailed {
            language: lang.name,
            file: lang.deps_file,
            status: out.status,
            output: error_lines(&out.stdout, &out.stderr),
        });
    }
    std::fs::rename(&tmp, target)
        .or_else(|e| if target.is_dir() { Ok(()) } else { Err(e) })
        .map_err(io(format!("moving the install into {}", target.display())))?;
    let _ = std::fs::remove_dir_all(&tmp);
    tracing::info!(language = lang.name, dir = %target.display(), secs = started.elapsed().as_secs_f64(), "dependencies installed");
    Ok(())
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

/// The installer's lines that say what failed (they name the package), or its last lines.
fn error_lines(stdout: &[u8], stderr: &[u8]) -> String {
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
}
