//! The materialiser, per content type.

use crate::support::spec;
use base64::Engine;
use bytes::Bytes;
use http_body_util::Full;
use kelp_local::{MaterialiseErrorKind, materialise};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;

const PY: &str = "def hello(event, context):\n    return 'hello'\n";

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{file} in {}: {e}", dir.display()))
}

/// Files of an archive: `hello.py`, `lib/util.py`, `requirements.txt`.
const FILES: [(&str, &str); 3] = [("hello.py", PY), ("lib/util.py", "X = 1\n"), ("requirements.txt", "bundled==1.0\n")];

fn zip_of(files: &[(&str, &str)]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, content) in files {
        zip.start_file(*name, options).unwrap();
        zip.write_all(content.as_bytes()).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

fn tar_of(files: &[(&str, &str)]) -> Vec<u8> {
    tar_with_links(files, &[])
}

/// A tar header of `kind` for `name` (with `link` as the link's target) declaring `size` bytes.
fn tar_header(kind: tar::EntryType, name: &str, link: &str, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_size(size);
    header.set_mode(0o644);
    // Written into the header directly: `set_path` refuses `..`, which some tests need.
    header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    header.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
    header.set_cksum();
    header
}

/// A tarball of `files`, then of the symbolic links `(name, target)`.
fn tar_with_links(files: &[(&str, &str)], links: &[(&str, &str)]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (name, content) in files {
        tar.append(&tar_header(tar::EntryType::Regular, name, "", content.len() as u64), content.as_bytes()).unwrap();
    }
    for (name, target) in links {
        tar.append(&tar_header(tar::EntryType::Symlink, name, target, 0), std::io::empty()).unwrap();
    }
    tar.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn bzip2(bytes: &[u8]) -> Vec<u8> {
    let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn python(content_type: &str, function: &str) -> kelp_api::FunctionSpec {
    spec(json!({"runtime": "python3.8", "handler": "hello.hello", "function": function,
        "function-content-type": content_type, "deps": "separate==2.0\n"}))
}

#[tokio::test]
async fn text_writes_the_module_file_with_the_runtime_suffix_and_the_deps_file() {
    let root = tempfile::tempdir().unwrap();
    let dir = materialise(root.path(), "default/hello", &python("text", PY)).await.unwrap();
    assert_eq!(read(&dir, "hello.py"), PY);
    assert_eq!(read(&dir, "requirements.txt"), "separate==2.0\n");

    let empty_type = spec(json!({"runtime": "python3.8", "handler": "hello.hello", "function": PY}));
    assert_eq!(read(&materialise(root.path(), "default/hello", &empty_type).await.unwrap(), "hello.py"), PY);

    let js = "module.exports = { hello: () => 'hi' };\n";
    let node = spec(json!({"runtime": "nodejs20", "handler": "handler.hello", "function": js,
        "function-content-type": "text", "deps": "{\"dependencies\": {}}"}));
    let dir = materialise(root.path(), "default/node", &node).await.unwrap();
    assert_eq!(read(&dir, "handler.js"), js);
    assert_eq!(read(&dir, "package.json"), "{\"dependencies\": {}}");
}

#[tokio::test]
async fn directories_are_content_addressed_and_reused() {
    let root = tempfile::tempdir().unwrap();
    let a = materialise(root.path(), "default/a", &python("text", PY)).await.unwrap();
    let again = materialise(root.path(), "default/a", &python("text", PY)).await.unwrap();
    let other =
        materialise(root.path(), "default/a", &python("text", "def hello(e, c):\n    return 1\n")).await.unwrap();
    assert_eq!(a, again);
    assert_ne!(a, other);
    assert_eq!(a.parent(), Some(root.path()));
    let leftovers: Vec<_> = std::fs::read_dir(root.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary directories left: {leftovers:?}");
}

#[tokio::test]
async fn base64_is_decoded_and_checksummed() {
    let root = tempfile::tempdir().unwrap();
    let mut spec = python("base64", &b64(PY.as_bytes()));
    spec.checksum = Some(format!("sha256:{}", sha256(PY.as_bytes())));
    let dir = materialise(root.path(), "default/b64", &spec).await.unwrap();
    assert_eq!(read(&dir, "hello.py"), PY);
}

#[tokio::test]
async fn a_checksum_mismatch_names_the_function_and_both_hashes() {
    let root = tempfile::tempdir().unwrap();
    let mut spec = python("text", PY);
    let wrong = "0".repeat(64);
    spec.checksum = Some(format!("sha256:{wrong}"));
    let err = materialise(root.path(), "default/checked", &spec).await.unwrap_err();
    assert!(matches!(err.kind, MaterialiseErrorKind::ChecksumMismatch { .. }), "{err}");
    let message = err.to_string();
    for part in ["default/checked", &wrong, &sha256(PY.as_bytes())] {
        assert!(message.contains(part), "{message:?} lacks {part}");
    }
    assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0, "nothing is written");
}

#[tokio::test]
async fn zip_is_unpacked_and_deps_come_from_it_with_plus_deps() {
    let root = tempfile::tempdir().unwrap();
    let archive = zip_of(&FILES);
    let dir = materialise(root.path(), "default/zip", &python("base64+zip+deps", &b64(&archive))).await.unwrap();
    assert_eq!(read(&dir, "hello.py"), PY);
    assert_eq!(read(&dir, "lib/util.py"), "X = 1\n");
    assert_eq!(read(&dir, "requirements.txt"), "bundled==1.0\n", "+deps: the archive's file, not spec.deps");

    let dir = materialise(root.path(), "default/zip", &python("base64+zip", &b64(&archive))).await.unwrap();
    assert_eq!(read(&dir, "requirements.txt"), "separate==2.0\n", "without +deps spec.deps is written");
}

#[tokio::test]
async fn compressed_tarballs_are_told_by_their_magic_bytes() {
    let root = tempfile::tempdir().unwrap();
    let tar = tar_of(&FILES);
    for (compression, bytes) in [("gzip", gzip(&tar)), ("bzip2", bzip2(&tar)), ("xz", xz(&tar)), ("none", tar.clone())]
    {
        let mut spec = python("base64+compressedtar+deps", &b64(&bytes));
        spec.checksum = Some(format!("sha256:{}", sha256(&bytes)));
        let dir = materialise(root.path(), "default/tar", &spec).await.unwrap_or_else(|e| panic!("{compression}: {e}"));
        assert_eq!(read(&dir, "hello.py"), PY, "{compression}");
        assert_eq!(read(&dir, "lib/util.py"), "X = 1\n", "{compression}");
        assert_eq!(read(&dir, "requirements.txt"), "bundled==1.0\n", "{compression}");
    }
    let err = materialise(root.path(), "default/tar", &python("base64+compressedtar", &b64(b"not an archive")))
        .await
        .unwrap_err();
    assert!(matches!(err.kind, MaterialiseErrorKind::Archive(_)), "{err}");
}

#[tokio::test]
async fn path_traversal_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let evil = [("hello.py", PY), ("../escaped.py", "X = 1\n")];
    for (content_type, archive) in [("base64+zip", zip_of(&evil)), ("base64+compressedtar", gzip(&tar_of(&evil)))] {
        let err = materialise(root.path(), "default/evil", &python(content_type, &b64(&archive))).await.unwrap_err();
        assert!(
            matches!(&err.kind, MaterialiseErrorKind::UnsafePath(p) if p.contains("escaped")),
            "{content_type}: {err}"
        );
        assert!(err.to_string().contains("default/evil"), "{err}");
    }
    assert!(!root.path().parent().unwrap().join("escaped.py").exists());
    assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0, "no code directory is left");
}

#[tokio::test]
async fn a_module_that_is_a_path_writes_nothing_outside() {
    let root = tempfile::tempdir().unwrap();
    // A directory whose path has no dot, so that the handler has only its own.
    let outside = tempfile::Builder::new().prefix("kelp-outside").tempdir().unwrap();
    let module = outside.path().join("escaped");
    for content_type in ["text", "base64+zip"] {
        let code = if content_type == "text" { PY.to_owned() } else { b64(&zip_of(&FILES)) };
        let mut spec = python(content_type, &code);
        spec.handler = Some(format!("{}.hello", module.display()));
        let err = materialise(root.path(), "default/evil", &spec).await.unwrap_err();
        assert!(err.to_string().contains("spec.handler"), "{content_type}: {err}");
    }
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0, "nothing written outside");
    assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0, "no code directory is left");
}

/// A local HTTP server: `/code.py`, `/code.tgz`, `/moved` (a redirect to `/code.py`), else 404.
async fn code_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let service = hyper::service::service_fn(|req: http::Request<hyper::body::Incoming>| async move {
                let mut res = http::Response::new(Full::new(Bytes::new()));
                match req.uri().path() {
                    "/code.py" => *res.body_mut() = Full::new(Bytes::from_static(PY.as_bytes())),
                    "/code.tgz" => *res.body_mut() = Full::new(Bytes::from(gzip(&tar_of(&FILES)))),
                    "/moved" => {
                        *res.status_mut() = http::StatusCode::FOUND;
                        res.headers_mut().insert(http::header::LOCATION, http::HeaderValue::from_static("/code.py"));
                    }
                    _ => *res.status_mut() = http::StatusCode::NOT_FOUND,
                }
                Ok::<_, std::convert::Infallible>(res)
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service),
            );
        }
    });
    base
}

#[tokio::test]
async fn urls_are_downloaded_following_redirects() {
    let root = tempfile::tempdir().unwrap();
    let base = code_server().await;
    let mut spec = python("url", &format!("{base}/moved"));
    spec.checksum = Some(format!("sha256:{}", sha256(PY.as_bytes())));
    let dir = materialise(root.path(), "default/url", &spec).await.unwrap();
    assert_eq!(read(&dir, "hello.py"), PY);

    let dir = materialise(root.path(), "default/url", &python("url+compressedtar+deps", &format!("{base}/code.tgz")))
        .await
        .unwrap();
    assert_eq!(read(&dir, "lib/util.py"), "X = 1\n");

    let err = materialise(root.path(), "default/url", &python("url", &format!("{base}/missing"))).await.unwrap_err();
    assert!(matches!(err.kind, MaterialiseErrorKind::Download { .. }), "{err}");
    assert!(err.to_string().contains("404"), "{err}");
}

#[tokio::test]
async fn unsupported_runtimes_are_named() {
    let root = tempfile::tempdir().unwrap();
    let ruby = spec(json!({"runtime": "ruby2.6", "handler": "hello.hello", "function": "x"}));
    let err = materialise(root.path(), "default/ruby", &ruby).await.unwrap_err();
    assert!(err.to_string().contains("ruby2.6") && err.to_string().contains("python"), "{err}");
}

/// A file outside every code directory, which no archive may reach.
struct Victim {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

impl Victim {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("victim.txt");
        std::fs::write(&path, "precious\n").unwrap();
        Victim { _dir: dir, path }
    }

    fn untouched(&self) -> bool {
        std::fs::read_to_string(&self.path).unwrap() == "precious\n"
    }
}

#[tokio::test]
async fn links_leading_outside_refuse_the_archive_and_nothing_is_written_through_one() {
    let root = tempfile::tempdir().unwrap();
    let victim = Victim::new();
    let absolute = victim.path.display().to_string();
    let climbing = format!("../../..{absolute}");
    let code = [("hello.py", PY)];
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    zip.start_file("hello.py", zip::write::SimpleFileOptions::default()).unwrap();
    zip.write_all(PY.as_bytes()).unwrap();
    zip.add_symlink("requirements.txt", &absolute, zip::write::SimpleFileOptions::default()).unwrap();
    let zip = zip.finish().unwrap().into_inner();
    let cases = [
        (
            "an absolute tar link",
            "base64+compressedtar",
            gzip(&tar_with_links(&code, &[("requirements.txt", &absolute)])),
        ),
        (
            "a climbing tar link",
            "base64+compressedtar",
            gzip(&tar_with_links(&code, &[("requirements.txt", &climbing)])),
        ),
        // `a` is the directory itself, so `a/..` is its parent: `..` after a name is refused.
        (
            "a link through a link",
            "base64+compressedtar",
            gzip(&tar_with_links(&code, &[("a", "."), ("requirements.txt", "a/../victim.txt")])),
        ),
        ("an absolute zip link", "base64+zip", zip),
    ];
    for (case, content_type, archive) in cases {
        // spec.deps is written as requirements.txt after unpacking: it must never go through the link.
        let err = materialise(root.path(), "default/links", &python(content_type, &b64(&archive))).await.unwrap_err();
        assert!(matches!(&err.kind, MaterialiseErrorKind::UnsafePath(p) if p == "requirements.txt"), "{case}: {err}");
        assert!(victim.untouched(), "{case}: the file outside was written");
    }
    assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0, "no code directory is left");
}

#[tokio::test]
async fn links_inside_are_kept_and_the_deps_file_replaces_a_link_without_following_it() {
    let root = tempfile::tempdir().unwrap();
    let files = [("hello.py", PY), ("lib/req.txt", "inner==1.0\n"), ("node_modules/tool/cli.js", "cli\n")];
    let links = [("requirements.txt", "lib/req.txt"), ("node_modules/.bin/cli", "../tool/cli.js")];
    let archive = gzip(&tar_with_links(&files, &links));
    let dir =
        materialise(root.path(), "default/inside", &python("base64+compressedtar", &b64(&archive))).await.unwrap();
    assert_eq!(read(&dir, "requirements.txt"), "separate==2.0\n", "spec.deps is written");
    assert!(std::fs::symlink_metadata(dir.join("requirements.txt")).unwrap().is_file(), "as a file of its own");
    assert_eq!(read(&dir, "lib/req.txt"), "inner==1.0\n", "the link's target is not written");
    assert_eq!(std::fs::read_link(dir.join("node_modules/.bin/cli")).unwrap(), Path::new("../tool/cli.js"));
    assert_eq!(read(&dir, "node_modules/.bin/cli"), "cli\n");

    let dir =
        materialise(root.path(), "default/inside", &python("base64+compressedtar+deps", &b64(&archive))).await.unwrap();
    assert_eq!(read(&dir, "requirements.txt"), "inner==1.0\n", "+deps: the archive's link is kept");
}

/// The start of a tarball whose one file declares `size` bytes of zeros: its first MiB, cut
/// short there (the whole would be gigabytes), so only a refusal from the header succeeds.
fn tar_declaring(size: u64) -> Vec<u8> {
    let mut tar = tar_header(tar::EntryType::Regular, "big.bin", "", size).as_bytes().to_vec();
    tar.resize(512 + (1 << 20), 0);
    tar
}

fn xz(bytes: &[u8]) -> Vec<u8> {
    let mut writer = lzma_rust2::XzWriter::new(Vec::new(), lzma_rust2::XzOptions::with_preset(6)).unwrap();
    writer.write_all(bytes).unwrap();
    writer.finish().unwrap()
}

/// A zip with one deflated file of 1 GiB + 1 zeros, its true size in its headers, built from
/// ~1 MiB of deflate data (a MiB of zeros deflated and flushed to a byte boundary, repeated).
fn zip_bomb() -> Vec<u8> {
    let deflate = |data: &[u8], flush| {
        let mut out = Vec::with_capacity(1 << 20);
        flate2::Compress::new(flate2::Compression::best(), false).compress_vec(data, &mut out, flush).unwrap();
        out
    };
    let mut data = deflate(&vec![0; 1 << 20], flate2::FlushCompress::Sync).repeat(1024);
    data.extend(deflate(&[0], flate2::FlushCompress::Finish));
    let (name, size) = (b"big.bin", (1u32 << 30) + 1);
    let common = |out: &mut Vec<u8>| {
        for v in [20u16, 0, 8, 0, 0x21] {
            out.extend(v.to_le_bytes());
        }
        // CRC-32 (not computed: the file is refused before its end), sizes, name length, no extra.
        for v in [0u32, data.len() as u32, size] {
            out.extend(v.to_le_bytes());
        }
        out.extend((name.len() as u16).to_le_bytes());
        out.extend(0u16.to_le_bytes());
    };
    let mut zip = 0x04034b50u32.to_le_bytes().to_vec();
    common(&mut zip);
    zip.extend(name);
    zip.extend(&data);
    let central_at = zip.len() as u32;
    zip.extend(0x02014b50u32.to_le_bytes());
    zip.extend(0x031eu16.to_le_bytes());
    common(&mut zip);
    // Comment length, disk, internal attributes, external attributes (a regular file), offset.
    for v in [0u16, 0, 0] {
        zip.extend(v.to_le_bytes());
    }
    zip.extend((0o100644u32 << 16).to_le_bytes());
    zip.extend(0u32.to_le_bytes());
    zip.extend(name);
    let central_len = zip.len() as u32 - central_at;
    zip.extend(0x06054b50u32.to_le_bytes());
    for v in [0u16, 0, 1, 1] {
        zip.extend(v.to_le_bytes());
    }
    zip.extend(central_len.to_le_bytes());
    zip.extend(central_at.to_le_bytes());
    zip.extend(0u16.to_le_bytes());
    zip
}

#[tokio::test]
async fn archive_bombs_stop_at_the_limits_with_an_error_naming_them() {
    let root = tempfile::tempdir().unwrap();
    let too_large = |err: &kelp_local::MaterialiseError| {
        matches!(err.kind, MaterialiseErrorKind::Archive(_)) && err.to_string().contains("more than 1073741824 bytes")
    };
    let big = tar_declaring((1 << 30) + 1);
    for (compression, bytes) in [("gzip", gzip(&big)), ("bzip2", bzip2(&big)), ("xz", xz(&big)), ("none", big.clone())]
    {
        let err =
            materialise(root.path(), "default/bomb", &python("base64+compressedtar", &b64(&bytes))).await.unwrap_err();
        assert!(too_large(&err), "{compression}: {err}");
    }
    let err = materialise(root.path(), "default/bomb", &python("base64+zip", &b64(&zip_bomb()))).await.unwrap_err();
    assert!(too_large(&err), "zip: {err}");

    // One entry more than the limit: the same directory over and over, or distinct ones.
    let mut tar = tar::Builder::new(Vec::new());
    for _ in 0..=100_000 {
        tar.append(&tar_header(tar::EntryType::Directory, "d/", "", 0), std::io::empty()).unwrap();
    }
    let tar = gzip(&tar.into_inner().unwrap());
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for i in 0..=100_000 {
        zip.add_directory(format!("d{i}/"), zip::write::SimpleFileOptions::default()).unwrap();
    }
    let zip = zip.finish().unwrap().into_inner();
    for (content_type, archive) in [("base64+compressedtar", tar), ("base64+zip", zip)] {
        let err = materialise(root.path(), "default/many", &python(content_type, &b64(&archive))).await.unwrap_err();
        assert!(err.to_string().contains("more than 100000 entries"), "{content_type}: {err}");
    }
    assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0, "no code directory is left");
}
