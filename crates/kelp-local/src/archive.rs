//! Unpacking `+zip` and `+compressedtar` code, refusing entries that lead outside the directory.

use crate::materialise::MaterialiseErrorKind;
use std::io::{Cursor, Read};
use std::path::{Component, Path};

/// Unpacks a zip archive into `dir`.
pub(crate) fn unpack_zip(bytes: &[u8], dir: &Path) -> Result<(), MaterialiseErrorKind> {
    let corrupt = |e: zip::result::ZipError| MaterialiseErrorKind::Archive(format!("zip: {e}"));
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(corrupt)?;
    for i in 0..zip.len() {
        let entry = zip.by_index_raw(i).map_err(corrupt)?;
        if entry.enclosed_name().is_none() {
            return Err(MaterialiseErrorKind::UnsafePath(String::from_utf8_lossy(entry.name_raw()).into_owned()));
        }
    }
    // `extract` also refuses symbolic links leading out of `dir`.
    zip.extract(dir).map_err(corrupt)
}

/// Unpacks a tarball, compressed with gzip, bzip2 or xz or not at all (told by its magic bytes),
/// into `dir`.
pub(crate) fn unpack_tar(bytes: &[u8], dir: &Path) -> Result<(), MaterialiseErrorKind> {
    let archive_err = |e: std::io::Error| MaterialiseErrorKind::Archive(format!("tar: {e}"));
    let reader: Box<dyn Read> = match bytes {
        [0x1f, 0x8b, ..] => Box::new(flate2::read::MultiGzDecoder::new(bytes)),
        [b'B', b'Z', b'h', ..] => Box::new(bzip2::read::MultiBzDecoder::new(bytes)),
        [0xfd, b'7', b'z', b'X', b'Z', 0, ..] => {
            let mut tar = Vec::new();
            lzma_rs::xz_decompress(&mut Cursor::new(bytes), &mut tar)
                .map_err(|e| MaterialiseErrorKind::Archive(format!("xz: {e}")))?;
            Box::new(Cursor::new(tar))
        }
        _ if bytes.get(257..262) == Some(b"ustar") => Box::new(bytes),
        _ => {
            return Err(MaterialiseErrorKind::Archive(
                "compressedtar: not a gzip, bzip2 or xz compressed tar archive (by its magic bytes)".into(),
            ));
        }
    };
    let mut tar = tar::Archive::new(reader);
    tar.set_preserve_permissions(true);
    tar.set_overwrite(true);
    for entry in tar.entries().map_err(archive_err)? {
        let mut entry = entry.map_err(archive_err)?;
        let path = entry.path().map_err(archive_err)?.into_owned();
        let outside =
            path.components().any(|c| matches!(c, Component::ParentDir | Component::RootDir | Component::Prefix(_)));
        // `unpack_in` also refuses (returns false for) paths through links leading out of `dir`.
        if outside || !entry.unpack_in(dir).map_err(archive_err)? {
            return Err(MaterialiseErrorKind::UnsafePath(path.display().to_string()));
        }
    }
    Ok(())
}
