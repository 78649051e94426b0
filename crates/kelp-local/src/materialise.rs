//! The `prepare` step of Kubeless, on the local disk: a Function's `spec.function` (text, base64
//! or URL; a single file, a zip or a compressed tarball) and `spec.deps` become a code directory,
//! content-addressed and written atomically, shared by every instance and kept across restarts.

use crate::{archive, download};
use base64::Engine;
use kelp_api::{Archive, Encoding, FunctionSpec};
use kelp_runtime::deps::hex;
use kelp_runtime::language::Language;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a function's code could not be materialised.
#[derive(Debug, thiserror::Error)]
#[error("function {function}: {kind}")]
pub struct MaterialiseError {
    /// The function, as given to [`materialise`] (the platform passes `<namespace>/<name>`).
    pub function: String,
    /// What went wrong.
    pub kind: MaterialiseErrorKind,
}

/// What went wrong while materialising.
#[derive(Debug, thiserror::Error)]
pub enum MaterialiseErrorKind {
    /// The spec cannot be materialised (handler, runtime or content type).
    #[error("{0}")]
    Spec(String),
    /// `spec.function` is not valid base64.
    #[error("spec.function is not valid base64: {0}")]
    Base64(String),
    /// The URL could not be downloaded.
    #[error("downloading {url}: {reason}")]
    Download {
        /// `spec.function`.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The code's SHA-256 is not `spec.checksum`.
    #[error("checksum mismatch: spec.checksum is sha256:{expected} but the code's SHA-256 is {actual}")]
    ChecksumMismatch {
        /// The hex digest from `spec.checksum`.
        expected: String,
        /// The hex digest of the (decoded or downloaded) code.
        actual: String,
    },
    /// The archive could not be read.
    #[error("cannot unpack the archive: {0}")]
    Archive(String),
    /// An archive entry would land outside the code directory (`..`, an absolute path or a link
    /// leading out); nothing of the archive is used.
    #[error("archive entry {0:?} points outside the code directory; refused")]
    UnsafePath(String),
    /// The code or dependency file's name is not a plain file name (the handler's module is a
    /// path): it would be written outside the code directory.
    #[error("the code file {0:?} would be written outside the code directory; refused")]
    UnsafeFileName(String),
    /// The code directory could not be written.
    #[error("{context}: {cause}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        cause: std::io::Error,
    },
}

/// Materialises `spec`'s code under `code_root` and returns its directory,
/// `<code_root>/<sha256 of (content type, function, checksum, deps, module, language)>`.
///
/// - `text` (or empty): the source is written to `<module><suffix>` (`.py`, `.js`: the
///   language's suffix); `base64`: the decoded bytes; `url`: the downloaded bytes (http and https,
///   following redirects).
/// - `+zip` / `+compressedtar`: the bytes are an archive unpacked into the directory; the
///   tarball's compression (gzip, bzip2, xz, or none) is detected from its magic bytes. Entries
///   leading outside the directory are refused.
/// - `spec.deps` is written as the language's dependency file (`requirements.txt`,
///   `package.json`) unless the content type has `+deps` (the archive carries it).
/// - `checksum` `sha256:<hex>` is checked against the decoded or downloaded bytes.
///
/// An existing directory is reused as is; a new one is built in a temporary directory and renamed
/// into place, so a half-written directory is never used. `function` names the function in errors.
pub async fn materialise(code_root: &Path, function: &str, spec: &FunctionSpec) -> Result<PathBuf, MaterialiseError> {
    let fail = |kind| MaterialiseError { function: function.to_owned(), kind };
    let spec_err = |e: &dyn std::fmt::Display, field: &str| fail(MaterialiseErrorKind::Spec(format!("{field}: {e}")));
    let content_type = spec.parsed_content_type().map_err(|e| spec_err(&e, "spec.function-content-type"))?;
    let module = spec.parsed_handler().map_err(|e| spec_err(&e, "spec.handler"))?.module.to_owned();
    let language = language(spec).map_err(|reason| fail(MaterialiseErrorKind::Spec(reason)))?;
    let checksum = spec.checksum_sha256().map_err(|e| spec_err(&e, "spec.checksum"))?;
    let code = spec.function.as_deref().unwrap_or_default();
    let deps = spec.deps.as_deref().unwrap_or_default();

    let key = digest_of(&[
        content_type.to_string().as_bytes(),
        code.as_bytes(),
        checksum.unwrap_or_default().as_bytes(),
        deps.as_bytes(),
        module.as_bytes(),
        language.name.as_bytes(),
    ]);
    let dir = code_root.join(&key);
    if dir.is_dir() {
        return Ok(dir);
    }

    let raw = match content_type.encoding {
        Encoding::Text => code.as_bytes().to_vec(),
        Encoding::Base64 => {
            let compact: Vec<u8> = code.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
            base64::engine::general_purpose::STANDARD
                .decode(compact)
                .map_err(|e| fail(MaterialiseErrorKind::Base64(e.to_string())))?
        }
        Encoding::Url => download::fetch(code)
            .await
            .map_err(|reason| fail(MaterialiseErrorKind::Download { url: code.to_owned(), reason }))?,
    };
    if let Some(expected) = checksum {
        let actual = hex(&Sha256::digest(&raw));
        if actual != expected {
            return Err(fail(MaterialiseErrorKind::ChecksumMismatch { expected: expected.to_owned(), actual }));
        }
    }

    let io = |context: String| move |cause| fail(MaterialiseErrorKind::Io { context, cause });
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let tmp = code_root.join(format!(".tmp-{key}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed)));
    std::fs::create_dir_all(&tmp).map_err(io(format!("creating {}", tmp.display())))?;
    let file_name = format!("{module}{}", language.file_suffix);
    let deps_file = (!content_type.deps && !deps.is_empty()).then(|| (language.deps_file, deps.to_owned()));
    let build_dir = tmp.clone();
    let written = tokio::task::spawn_blocking(move || -> Result<(), MaterialiseErrorKind> {
        // A new file: never through a link the archive left under that name.
        let write = |name: &str, bytes: &[u8]| {
            if !kelp_runtime::config::is_file_name(name) {
                return Err(MaterialiseErrorKind::UnsafeFileName(name.to_owned()));
            }
            archive::create_new(&build_dir.join(name), 0o644)
                .and_then(|mut file| std::io::Write::write_all(&mut file, bytes))
                .map_err(|cause| MaterialiseErrorKind::Io { context: format!("writing {name}"), cause })
        };
        match content_type.archive {
            Archive::None => write(&file_name, &raw)?,
            Archive::Zip => archive::unpack_zip(&raw, &build_dir)?,
            Archive::CompressedTar => archive::unpack_tar(&raw, &build_dir)?,
        }
        if let Some((name, content)) = deps_file {
            write(name, content.as_bytes())?;
        }
        Ok(())
    })
    .await
    .unwrap_or_else(|e| Err(MaterialiseErrorKind::Archive(format!("unpacking panicked: {e}"))));
    if let Err(kind) = written {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(fail(kind));
    }
    if let Err(e) = std::fs::rename(&tmp, &dir) {
        let _ = std::fs::remove_dir_all(&tmp);
        // Another deploy of the same code got there first.
        if !dir.is_dir() {
            return Err(io(format!("moving the code into {}", dir.display()))(e));
        }
    }
    Ok(dir)
}

/// The language of `spec.runtime`: a built-in one, or a plugin runtime's.
pub(crate) fn language(spec: &FunctionSpec) -> Result<&'static Language, String> {
    let runtime = spec.runtime.as_deref().unwrap_or_default();
    Language::find(runtime).map_err(|e| e.to_string())?.ok_or_else(|| {
        format!("spec.runtime {runtime:?} is not supported; supported runtime IDs: {}", Language::known_ids())
    })
}

/// The hex SHA-256 of `parts`, each length-prefixed so that no two lists collide.
pub(crate) fn digest_of(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hex(&hasher.finalize())
}
