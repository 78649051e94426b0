//! What Kelp's integration tests share: the binaries they drive, found (and built when missing or
//! stale) the same way everywhere. Only tests depend on this crate.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::SystemTime;

/// The repository's root directory: two levels above the package under test (`crates/<name>`),
/// which `cargo test` names at run time.
pub fn repo_root() -> PathBuf {
    let package =
        std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    package.join("../..")
}

/// The `kelp-runtime` binary: `KELP_RUNTIME_BIN`, else `target/<profile>/kelp-runtime` next to
/// the running test binary. `cargo test --workspace` builds it; when it is missing or older than
/// the runtime's sources (`cargo test -p <one crate>` does not build it), it is built here with
/// `cargo build -p kelp-runtime` into the same target directory and profile.
pub fn runtime_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("KELP_RUNTIME_BIN") {
            return PathBuf::from(bin);
        }
        // The test binary is target/<profile>/deps/<name>-<hash>.
        let exe = std::env::current_exe().expect("the test binary's path");
        let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>").to_path_buf();
        let bin = profile_dir.join("kelp-runtime");
        let root = repo_root();
        let sources = [root.join("crates/kelp-runtime"), root.join("runtimes")];
        let built = std::fs::metadata(&bin).and_then(|m| m.modified()).ok();
        if built.is_none_or(|built| sources.iter().any(|dir| newest(dir) > built)) {
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let mut build = Command::new(cargo);
            build.args(["build", "-p", "kelp-runtime", "--bin", "kelp-runtime"]);
            build.env("CARGO_TARGET_DIR", profile_dir.parent().expect("the target directory"));
            if profile_dir.file_name().is_some_and(|n| n == "release") {
                build.arg("--release");
            }
            let status = build.status().expect("running cargo build -p kelp-runtime");
            assert!(status.success(), "cargo build -p kelp-runtime failed");
        }
        assert!(bin.is_file(), "{} was not built", bin.display());
        bin
    })
    .clone()
}

/// The latest modification time of the files under `dir` (`tests` directories excluded).
fn newest(dir: &Path) -> SystemTime {
    let mut latest = SystemTime::UNIX_EPOCH;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let time = if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "tests") {
                continue;
            }
            newest(&path)
        } else {
            entry.metadata().and_then(|m| m.modified()).unwrap_or(SystemTime::UNIX_EPOCH)
        };
        latest = latest.max(time);
    }
    latest
}

/// The real kubectl: `KELP_KUBECTL`, else the one `scripts/k8s-bins kubectl` builds once from the
/// Go module proxy into its cache. Panics with the script's output when there is none: the tests
/// that need kubectl must not pass without it.
pub fn kubectl_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(path) = std::env::var_os("KELP_KUBECTL") {
            return PathBuf::from(path);
        }
        let dir = k8s_bin_dir(&["kubectl"]);
        let bin = dir.join("kubectl");
        assert!(bin.is_file(), "scripts/k8s-bins printed {}, which holds no kubectl", dir.display());
        bin
    })
    .clone()
}

/// The directory `scripts/k8s-bins <tools>` builds the Kubernetes `tools` into (once, from the Go
/// module proxy; a tool already built is not rebuilt) and prints. Panics with the script's output
/// when it fails: the tests that need these tools must not pass without them.
pub fn k8s_bin_dir(tools: &[&str]) -> PathBuf {
    let script = repo_root().join("scripts/k8s-bins");
    let out = Command::new(&script).args(tools).stdin(Stdio::null()).output().expect("running scripts/k8s-bins");
    assert!(
        out.status.success(),
        "{} {} failed ({}):\n{}{}",
        script.display(),
        tools.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}
