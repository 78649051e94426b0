//! Unpacking `+zip` and `+compressedtar` code into a new, empty directory, within bounds and
//! without ever writing outside it.
//!
//! - At most [`MAX_ENTRIES`] entries and [`MAX_UNPACKED_BYTES`] bytes (a zip's entries; a
//!   tarball's decompressed stream, headers included), so a zip or xz bomb stops with an error
//!   naming the limit; compressed tarballs (xz included) are decompressed as a stream, never whole
//!   in memory.
//! - An entry's path must be relative and without `..`; files are created new (`O_CREAT|O_EXCL`,
//!   which fails rather than follow a link) with their executable bits, directories as needed.
//! - Links are made last, once every file is written, so no file is ever written through one. A
//!   hard link must name a file of the archive; a symbolic link must be relative, may climb
//!   (`..`) only at its start and not above the directory, and must sit in a real directory of
//!   it: so it resolves inside the directory, and so does every link chain. Anything else refuses
//!   the archive. Other entry types (devices, FIFOs) are skipped.

use crate::materialise::MaterialiseErrorKind;
use std::cell::Cell;
use std::fs::OpenOptions;
use std::io::{self, Cursor, Read};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Component, Path, PathBuf};

/// Entries (files, directories, links) an archive may hold at most: far more than any
/// function's code, `node_modules` included.
pub(crate) const MAX_ENTRIES: usize = 100_000;
/// Bytes an archive may unpack to at most (1 GiB; AWS Lambda takes 250 MiB unzipped): the sum of
/// a zip's files, or a tarball's decompressed stream.
pub(crate) const MAX_UNPACKED_BYTES: u64 = 1 << 30;

/// The most memory an xz stream may ask for its dictionary, in KiB (256 MiB; `xz -9` asks for
/// 64 MiB).
const MAX_XZ_MEMORY_KIB: u32 = 256 << 10;

/// Why an archive is refused for its size.
fn too_large() -> MaterialiseErrorKind {
    MaterialiseErrorKind::Archive(format!(
        "it unpacks to more than {MAX_UNPACKED_BYTES} bytes ({} MiB), the most Kelp unpacks",
        MAX_UNPACKED_BYTES >> 20
    ))
}

/// Why an archive is refused for its number of entries.
fn too_many() -> MaterialiseErrorKind {
    MaterialiseErrorKind::Archive(format!("it has more than {MAX_ENTRIES} entries, the most Kelp unpacks"))
}

/// Unpacks a zip archive into `dir`.
pub(crate) fn unpack_zip(bytes: &[u8], dir: &Path) -> Result<(), MaterialiseErrorKind> {
    // The reader parses the whole central directory before an entry can be counted, so its
    // headers are counted first: every entry it can read starts with this signature.
    if bytes.windows(4).filter(|w| *w == b"PK\x01\x02").count() > MAX_ENTRIES {
        return Err(too_many());
    }
    let corrupt = |e: zip::result::ZipError| MaterialiseErrorKind::Archive(format!("zip: {e}"));
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(corrupt)?;
    let mut unpacker = Unpacker::new(dir);
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(corrupt)?;
        let name = String::from_utf8_lossy(entry.name_raw()).into_owned();
        let path = entry.enclosed_name().ok_or_else(|| MaterialiseErrorKind::UnsafePath(name.clone()))?;
        let Some(path) = unpacker.admit(&path, &name)? else { continue };
        if entry.is_dir() {
            unpacker.directory(&path)?;
        } else if entry.is_symlink() {
            let mut target = Vec::new();
            (&mut entry).take(4096).read_to_end(&mut target).map_err(|e| archive_error("zip", &e))?;
            unpacker.symlink(path, PathBuf::from(String::from_utf8_lossy(&target).into_owned()), &name)?;
        } else {
            let mode = entry.unix_mode().unwrap_or(0o644);
            let room = MAX_UNPACKED_BYTES - unpacker.unpacked;
            // Refused from its declared size; a size that lies is caught while copying.
            if entry.size() > room {
                return Err(too_large());
            }
            let written = unpacker.file(&path, mode, &mut (&mut entry).take(room + 1), "zip")?;
            if written > room {
                return Err(too_large());
            }
            unpacker.unpacked += written;
        }
    }
    unpacker.link()
}

/// Unpacks a tarball, compressed with gzip, bzip2 or xz or not at all (told by its magic bytes),
/// into `dir`.
pub(crate) fn unpack_tar(bytes: &[u8], dir: &Path) -> Result<(), MaterialiseErrorKind> {
    let stream: Box<dyn Read + '_> = match bytes {
        [0x1f, 0x8b, ..] => Box::new(flate2::read::MultiGzDecoder::new(bytes)),
        [b'B', b'Z', b'h', ..] => Box::new(bzip2::read::MultiBzDecoder::new(bytes)),
        [0xfd, b'7', b'z', b'X', b'Z', 0, ..] => {
            Box::new(lzma_rust2::XzReader::new_mem_limit(bytes, true, MAX_XZ_MEMORY_KIB))
        }
        _ if bytes.get(257..262) == Some(b"ustar") => Box::new(bytes),
        _ => {
            return Err(MaterialiseErrorKind::Archive(
                "compressedtar: not a gzip, bzip2 or xz compressed tar archive (by its magic bytes)".into(),
            ));
        }
    };
    let (left, exceeded) = (Cell::new(MAX_UNPACKED_BYTES), Cell::new(false));
    let mut tar = tar::Archive::new(Capped { inner: stream, left: &left, exceeded: &exceeded });
    // Any error once past the limit is the limit's.
    let fail = |e: io::Error| if exceeded.get() { too_large() } else { archive_error("tar", &e) };
    let mut unpacker = Unpacker::new(dir);
    for entry in tar.entries().map_err(fail)? {
        let mut entry = entry.map_err(fail)?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let Some(path) = unpacker.admit(&entry.path().map_err(fail)?, &name)? else { continue };
        let kind = entry.header().entry_type();
        let link = || entry.link_name().map_err(fail)?.map(|l| l.into_owned()).ok_or_else(|| unsafe_path(&name));
        if kind.is_dir() {
            unpacker.directory(&path)?;
        } else if kind.is_symlink() {
            let target = link()?;
            unpacker.symlink(path, target, &name)?;
        } else if kind.is_hard_link() {
            let target = link()?;
            let target = relative(&target).ok_or_else(|| unsafe_path(&name))?;
            unpacker.hard_links.push((path, target, name));
        } else if kind.is_file() || kind.is_contiguous() {
            // Refused from its header, before its data is decompressed.
            if entry.size() > left.get() {
                return Err(too_large());
            }
            let mode = entry.header().mode().unwrap_or(0o644);
            unpacker.file(&path, mode, &mut entry, "tar").map_err(|e| if exceeded.get() { too_large() } else { e })?;
        } else if kind.is_gnu_sparse() {
            return Err(MaterialiseErrorKind::Archive(format!("tar: {name}: sparse files are not supported")));
        }
    }
    unpacker.link()
}

/// `MaterialiseErrorKind::UnsafePath` for the entry `name`.
fn unsafe_path(name: &str) -> MaterialiseErrorKind {
    MaterialiseErrorKind::UnsafePath(name.to_owned())
}

/// An archive that could not be read.
fn archive_error(format: &str, e: &io::Error) -> MaterialiseErrorKind {
    MaterialiseErrorKind::Archive(format!("{format}: {e}"))
}

/// `path` as relative normal components (`.` dropped), or `None` when it is absolute or has `..`.
fn relative(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(c) => out.push(c),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// A reader that fails once more than `left` bytes were read from it, and says so in `exceeded`.
struct Capped<'a> {
    inner: Box<dyn Read + 'a>,
    left: &'a Cell<u64>,
    exceeded: &'a Cell<bool>,
}

impl Read for Capped<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        match self.left.get().checked_sub(n as u64) {
            Some(left) => {
                self.left.set(left);
                Ok(n)
            }
            None => {
                self.exceeded.set(true);
                Err(io::Error::other("the archive unpacks to more than the limit"))
            }
        }
    }
}

/// The state of one unpacking: what was counted and the links still to make.
struct Unpacker<'a> {
    dir: &'a Path,
    entries: usize,
    /// Bytes of files written (counted by the caller for zip; the stream's cap counts for tar).
    unpacked: u64,
    /// (path, target, entry name): targets relative to `dir`.
    hard_links: Vec<(PathBuf, PathBuf, String)>,
    /// (path, target, entry name): targets relative to the link's directory.
    symlinks: Vec<(PathBuf, PathBuf, String)>,
}

impl<'a> Unpacker<'a> {
    fn new(dir: &'a Path) -> Self {
        Unpacker { dir, entries: 0, unpacked: 0, hard_links: Vec::new(), symlinks: Vec::new() }
    }

    /// Counts an entry and returns its path, relative to the directory (`None`: the directory
    /// itself, as `./`), or refuses it.
    fn admit(&mut self, path: &Path, name: &str) -> Result<Option<PathBuf>, MaterialiseErrorKind> {
        self.entries += 1;
        if self.entries > MAX_ENTRIES {
            return Err(too_many());
        }
        let path = relative(path).ok_or_else(|| unsafe_path(name))?;
        Ok((!path.as_os_str().is_empty()).then_some(path))
    }

    fn directory(&self, path: &Path) -> Result<(), MaterialiseErrorKind> {
        std::fs::create_dir_all(self.dir.join(path)).map_err(|cause| io_error(path, cause))
    }

    /// Writes a file with `data` (replacing an earlier entry of the same name, never writing
    /// through a link) and returns its size.
    fn file(&self, path: &Path, mode: u32, data: &mut dyn Read, format: &str) -> Result<u64, MaterialiseErrorKind> {
        if let Some(parent) = path.parent() {
            self.directory(parent)?;
        }
        let mut file = create_new(&self.dir.join(path), 0o644 | (mode & 0o111)).map_err(|e| io_error(path, e))?;
        io::copy(data, &mut file).map_err(|e| archive_error(format, &e))
    }

    /// Checks a symbolic link and keeps it for [`Unpacker::link`].
    fn symlink(&mut self, path: PathBuf, target: PathBuf, name: &str) -> Result<(), MaterialiseErrorKind> {
        let mut climbs = 0;
        let mut descended = false;
        for component in target.components() {
            match component {
                Component::ParentDir if !descended => climbs += 1,
                Component::Normal(_) => descended = true,
                Component::CurDir => {}
                Component::ParentDir | Component::RootDir | Component::Prefix(_) => return Err(unsafe_path(name)),
            }
        }
        let depth = path.components().count() - 1;
        if climbs > depth {
            return Err(unsafe_path(name));
        }
        self.symlinks.push((path, target, name.to_owned()));
        Ok(())
    }

    /// Makes the hard links, then the symbolic links.
    fn link(self) -> Result<(), MaterialiseErrorKind> {
        for (path, target, name) in &self.hard_links {
            // Only files exist yet: the target is no link, and nothing on the way to it is.
            let source = self.dir.join(target);
            if !std::fs::symlink_metadata(&source).is_ok_and(|m| m.is_file()) {
                return Err(MaterialiseErrorKind::Archive(format!(
                    "{name}: a hard link to {}, which is no file of the archive",
                    target.display()
                )));
            }
            let at = self.dir.join(path);
            self.prepare(path, &at)?;
            std::fs::hard_link(&source, &at).map_err(|e| io_error(path, e))?;
        }
        let root = self.dir.canonicalize().map_err(|e| io_error(Path::new("."), e))?;
        for (path, target, name) in &self.symlinks {
            let at = self.dir.join(path);
            self.prepare(path, &at)?;
            // The link's directory must be a real one inside: reached through no link, so that
            // climbing from it stays inside.
            let parent = at.parent().unwrap_or(self.dir);
            if parent.canonicalize().ok() != Some(root.join(path.parent().unwrap_or(Path::new("")))) {
                return Err(unsafe_path(name));
            }
            std::os::unix::fs::symlink(target, &at).map_err(|e| io_error(path, e))?;
        }
        Ok(())
    }

    /// Makes the directories up to `path` and removes an earlier entry there (a file or link,
    /// never followed).
    fn prepare(&self, path: &Path, at: &Path) -> Result<(), MaterialiseErrorKind> {
        if let Some(parent) = path.parent() {
            self.directory(parent)?;
        }
        match std::fs::remove_file(at) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_error(path, e)),
            _ => Ok(()),
        }
    }
}

/// An error writing the entry `path`.
fn io_error(path: &Path, cause: io::Error) -> MaterialiseErrorKind {
    MaterialiseErrorKind::Io { context: format!("unpacking {}", path.display()), cause }
}

/// Creates the file `path` anew with `mode`: an earlier file or link there is removed first, and
/// the creation is exclusive (`O_CREAT|O_EXCL`, which fails rather than follow a link), so no
/// link is ever written through.
pub(crate) fn create_new(path: &Path, mode: u32) -> io::Result<std::fs::File> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    OpenOptions::new().write(true).create_new(true).mode(mode).open(path)
}
