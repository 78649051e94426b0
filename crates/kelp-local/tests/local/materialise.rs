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
    let mut tar = tar::Builder::new(Vec::new());
    for (name, content) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        // Written into the header directly: `set_path` refuses `..`, which one test needs.
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_cksum();
        tar.append(&header, content.as_bytes()).unwrap();
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

fn xz(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    lzma_rs::xz_compress(&mut std::io::Cursor::new(bytes), &mut out).unwrap();
    out
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
