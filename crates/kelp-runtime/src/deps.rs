//! Dependencies installed once per content: `requirements.txt` / `package.json` next to the code
//! go into `<cache>/deps/<language>/<sha256 of the file>`, shared by every instance on the machine.
//!
//! An install runs in a private temporary directory that is renamed into place when it succeeds,
//! so a half-installed directory is never used. A lock file makes concurrent instances wait for
//! the first one's install instead of repeating it.

use crate::language::Language;
use sha2::{Digest, Sha256};
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

/// Installs the dependency file in `code_dir`, if there is one, and returns the module search path
/// entries to give the worker (empty when the function has no dependencies).
pub async fn ensure(lang: &'static Language, code_dir: &Path, cache: &Path) -> Result<Vec<PathBuf>, DepsError> {
    let io = |context: String| move |cause| DepsError::Io { language: lang.name, context, cause };
    let deps_file = code_dir.join(lang.deps_file);
    let content = match tokio::fs::read(&deps_file).await {
        Ok(c) if !c.iter().all(u8::is_ascii_whitespace) => c,
        _ => return Ok(Vec::new()),
    };
    let dir = cache.join("deps").join(lang.name);
    let target = dir.join(hex(&Sha256::digest(&content)));
    tokio::fs::create_dir_all(&dir).await.map_err(io(format!("creating {}", dir.display())))?;
    let lock = target.with_extension("lock");
    loop {
        if target.is_dir() {
            return Ok((lang.dep_paths)(&target));
        }
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&lock) {
            Ok(_) => break,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                if lock_is_stale(&lock) {
                    let _ = std::fs::remove_file(&lock);
                } else {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            Err(e) => return Err(io(format!("creating {}", lock.display()))(e)),
        }
    }
    std::fs::write(&lock, std::process::id().to_string()).map_err(io(format!("writing {}", lock.display())))?;
    let result = install(lang, &content, &target).await;
    let _ = std::fs::remove_file(&lock);
    result.map(|()| (lang.dep_paths)(&target))
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

/// A lock whose writer is no longer running (it was killed mid-install) can be taken over.
fn lock_is_stale(lock: &Path) -> bool {
    let Ok(pid) = std::fs::read_to_string(lock) else { return false };
    let Ok(pid) = pid.trim().parse::<i32>() else {
        // Just created, pid not written yet; a lock that stays unreadable for long is stale.
        return std::fs::metadata(lock)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().unwrap_or_default() > Duration::from_secs(10));
    };
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err()
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

    #[test]
    fn error_lines_prefer_lines_naming_the_failure() {
        let out = error_lines(b"Collecting x\n", b"ERROR: No matching distribution found for nosuchpkg\n");
        assert_eq!(out, "ERROR: No matching distribution found for nosuchpkg");
        assert_eq!(error_lines(b"a\nb\n", b""), "a\nb");
    }
}
