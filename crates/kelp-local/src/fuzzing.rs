//! The archive readers of `materialise`, public for the fuzz targets in `fuzz/` (feature
//! `fuzzing`, which nothing else enables); not an API for other crates.

use crate::MaterialiseErrorKind;
use std::path::Path;

/// Unpacks `+zip` code into `dir`, as `materialise` does.
pub fn unpack_zip(bytes: &[u8], dir: &Path) -> Result<(), MaterialiseErrorKind> {
    crate::archive::unpack_zip(bytes, dir)
}

/// Unpacks `+compressedtar` code (gzip, bzip2, xz or plain) into `dir`, as `materialise` does.
pub fn unpack_tar(bytes: &[u8], dir: &Path) -> Result<(), MaterialiseErrorKind> {
    crate::archive::unpack_tar(bytes, dir)
}
