//! `spec.function`, `spec.function-content-type` and `spec.checksum` from a `--from-file`
//! argument, as the kubeless CLI computed them.

use base64::Engine as _;
use kelp_api::{Archive, ContentType, Encoding};

/// Extensions that make the code a compressed tarball (`+compressedtar`).
pub(crate) const COMPRESSED_TAR_EXTENSIONS: [&str; 9] =
    [".tar.gz", ".taz", ".tgz", ".tar.bz2", ".tb2", ".tbz", ".tbz2", ".tz2", ".tar.xz"];

/// Whether a `--from-file` / `--dependencies` argument is a URL (`http://` or `https://`).
pub(crate) fn is_url(source: &str) -> bool {
    source.starts_with("http://") || source.starts_with("https://")
}

/// The archive format a file name (or URL path, without query and fragment) implies.
pub(crate) fn archive_of(name: &str) -> Archive {
    let name = if is_url(name) { name.split(['?', '#']).next().unwrap_or(name) } else { name };
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".zip") {
        Archive::Zip
    } else if COMPRESSED_TAR_EXTENSIONS.iter().any(|ext| lower.ends_with(ext)) {
        Archive::CompressedTar
    } else {
        Archive::None
    }
}

/// `sha256:<hex>` of some bytes.
pub(crate) fn checksum(bytes: &[u8]) -> String {
    format!("sha256:{}", kelp_plan::sha256_hex(bytes))
}

/// The code fields of a Function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Code {
    /// `spec.function`: the text, its base64, or the URL.
    pub(crate) function: String,
    /// `spec.function-content-type`.
    pub(crate) content_type: ContentType,
    /// `spec.checksum`: `sha256:<hex>` of the raw bytes.
    pub(crate) checksum: String,
}

impl Code {
    /// Code read from the local file `name`: `text` when the bytes are UTF-8, otherwise
    /// `base64`; `+zip` / `+compressedtar` by extension (an archive is always `base64`, even
    /// when its bytes happen to be valid UTF-8).
    pub(crate) fn from_file(name: &str, bytes: &[u8]) -> Self {
        let archive = archive_of(name);
        let text = if archive == Archive::None { std::str::from_utf8(bytes).ok() } else { None };
        let (function, encoding) = match text {
            Some(text) => (text.to_owned(), Encoding::Text),
            None => (base64::engine::general_purpose::STANDARD.encode(bytes), Encoding::Base64),
        };
        Self { function, content_type: ContentType { encoding, archive, deps: false }, checksum: checksum(bytes) }
    }

    /// Code at `url`, whose downloaded bytes give the checksum: the Function keeps the URL.
    pub(crate) fn from_url(url: &str, bytes: &[u8]) -> Self {
        let content_type = ContentType { encoding: Encoding::Url, archive: archive_of(url), deps: false };
        Self { function: url.to_owned(), content_type, checksum: checksum(bytes) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_follow_the_kubeless_cli() {
        let text = Code::from_file("hello.py", b"def foo(event, context):\n    return 'x'\n");
        assert_eq!(text.content_type.to_string(), "text");
        assert_eq!(text.function, "def foo(event, context):\n    return 'x'\n");

        let binary = Code::from_file("hello.bin", &[0xff, 0x00, 0x80]);
        assert_eq!(binary.content_type.to_string(), "base64");
        assert_eq!(binary.function, "/wCA");

        let zip = Code::from_file("dir/func.zip", b"PK\x03\x04fake zip archive bytes");
        assert_eq!(zip.content_type.to_string(), "base64+zip");
        assert_eq!(zip.function, "UEsDBGZha2UgemlwIGFyY2hpdmUgYnl0ZXM=");
        // An empty zip is plain ASCII; it is still an archive, so base64.
        assert_eq!(Code::from_file("e.ZIP", b"PK\x05\x06").content_type.to_string(), "base64+zip");

        for name in ["f.tar.gz", "f.taz", "f.tgz", "f.tar.bz2", "f.tb2", "f.tbz", "f.tbz2", "f.tz2", "f.tar.xz"] {
            assert_eq!(Code::from_file(name, &[0x1f, 0x8b, 0xff]).content_type.to_string(), "base64+compressedtar");
        }
        assert_eq!(Code::from_file("f.tar", b"x").content_type.to_string(), "text");

        let url = Code::from_url("https://example.com/code/func.zip?ref=main", b"bytes");
        assert_eq!(url.content_type.to_string(), "url+zip");
        assert_eq!(url.function, "https://example.com/code/func.zip?ref=main");
        assert_eq!(url.checksum, checksum(b"bytes"));
        assert_eq!(Code::from_url("http://h/f.py", b"x").content_type.to_string(), "url");
        assert_eq!(Code::from_url("http://h/f.tgz", b"x").content_type.to_string(), "url+compressedtar");
    }

    #[test]
    fn checksums_are_sha256_of_the_raw_bytes() {
        assert_eq!(
            checksum(b"def foo(event, context):\n    return event[\"data\"]\n"),
            "sha256:a97785d50e3adad4e4f7b337e2af9ae193a00a144a657868d5408b0afa66d180"
        );
        assert!(is_url("https://x") && is_url("http://x") && !is_url("file.py") && !is_url("ftp://x"));
    }
}
