//! What Kelp's integration tests share: the binaries they drive, found (and built when missing or
//! stale) the same way everywhere, and the [`process`] supervision of what they start. Only tests
//! depend on this crate.

pub mod disk;
pub mod process;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

/// The repository's root directory: two levels above the package under test (`crates/<name>`),
/// which `cargo test` names at run time.
pub fn repo_root() -> PathBuf {
    let package =
        std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    package.join("../..")
}

/// The `kelp-runtime` binary: `KELP_RUNTIME_BIN`, else the one [`workspace_bin`] finds or builds.
pub fn runtime_bin() -> PathBuf {
    workspace_bin("kelp-runtime", "KELP_RUNTIME_BIN", &["crates/kelp-runtime", "runtimes"])
}

/// The sources of the `kelp-controller` package's binaries.
const CONTROLLER_SOURCES: &[&str] =
    &["crates/kelp-controller", "crates/kelp-plan", "crates/kelp-api", "crates/kelp-events"];

/// The `kelp-controller` binary: `KELP_CONTROLLER_BIN`, else the one [`workspace_bin`] finds or
/// builds.
pub fn controller_bin() -> PathBuf {
    workspace_bin("kelp-controller", "KELP_CONTROLLER_BIN", CONTROLLER_SOURCES)
}

/// The `kelp-triggers` binary (of the `kelp-controller` package): `KELP_TRIGGERS_BIN`, else the
/// one [`package_bin`] finds or builds.
pub fn triggers_bin() -> PathBuf {
    package_bin("kelp-controller", "kelp-triggers", "KELP_TRIGGERS_BIN", CONTROLLER_SOURCES)
}

/// The binary `package` builds (named as the package): `$override_var` when set, else
/// `target/<profile>/<package>` next to the running test binary. `cargo test --workspace` builds
/// it; when it is missing or older than its `sources` (directories of the repository; `cargo test
/// -p <one crate>` does not build other packages' binaries), it is built here with `cargo build
/// -p <package>` into the same target directory and profile.
pub fn workspace_bin(package: &'static str, override_var: &str, sources: &[&str]) -> PathBuf {
    package_bin(package, package, override_var, sources)
}

/// Like [`workspace_bin`], for the binary `name` of `package`.
pub fn package_bin(package: &'static str, name: &'static str, override_var: &str, sources: &[&str]) -> PathBuf {
    static BINS: Mutex<BTreeMap<&'static str, PathBuf>> = Mutex::new(BTreeMap::new());
    let mut bins = BINS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(bin) = bins.get(name) {
        return bin.clone();
    }
    let bin = std::env::var_os(override_var).map_or_else(|| build(package, name, sources), PathBuf::from);
    bins.insert(name, bin.clone());
    bin
}

fn build(package: &str, name: &str, sources: &[&str]) -> PathBuf {
    // The test binary is target/<profile>/deps/<name>-<hash>.
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>").to_path_buf();
    let bin = profile_dir.join(name);
    let root = repo_root();
    let built = std::fs::metadata(&bin).and_then(|m| m.modified()).ok();
    if built.is_none_or(|built| sources.iter().any(|dir| newest(&root.join(dir)) > built)) {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = Command::new(cargo);
        build.args(["build", "-p", package, "--bin", name]);
        build.env("CARGO_TARGET_DIR", profile_dir.parent().expect("the target directory"));
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        let status = build.status().unwrap_or_else(|e| panic!("running cargo build -p {package}: {e}"));
        assert!(status.success(), "cargo build -p {package} failed");
    }
    assert!(bin.is_file(), "{} was not built", bin.display());
    bin
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

/// The original kubeless CLI v1.0.8, unchanged: `KELP_KUBELESS`, else the one `scripts/k8s-bins
/// kubeless` builds once from the Go module proxy into its cache. Panics with the script's output
/// when there is none: the tests that drive Kelp with it must not pass without it.
pub fn kubeless_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(path) = std::env::var_os("KELP_KUBELESS") {
            return PathBuf::from(path);
        }
        let bin = k8s_bin_dir(&["kubeless"]).join("kubeless");
        assert!(bin.is_file(), "scripts/k8s-bins kubeless built no {}", bin.display());
        bin
    })
    .clone()
}

/// The python of a virtual environment holding the official Python kubernetes client, pinned:
/// `KELP_PYTHON_CLIENT`, else the one `scripts/python-client` installs once from PyPI into its
/// cache. Panics with the script's output when there is none.
pub fn python_client_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| match std::env::var_os("KELP_PYTHON_CLIENT") {
        Some(path) => PathBuf::from(path),
        None => script_dir("python-client", &[]),
    })
    .clone()
}

/// The directory `scripts/k8s-bins <tools>` builds the Kubernetes `tools` into (once, from the Go
/// module proxy; a tool already built is not rebuilt) and prints. Panics with the script's output
/// when it fails: the tests that need these tools must not pass without them.
pub fn k8s_bin_dir(tools: &[&str]) -> PathBuf {
    script_dir("k8s-bins", tools)
}

/// The directory of Kelp's image archives (one `*.tar` per image, the pods' sandbox image
/// included) that `scripts/images save` builds once and prints, for a real node to import.
pub fn images_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| script_dir("images", &["save"])).clone()
}

/// The Serverless Framework's `serverless` command, with the kubeless plugin installed beside it
/// (which is where the Framework finds it): `KELP_SERVERLESS`, else the one `scripts/serverless`
/// installs once from the npm registry into its cache. Panics with the script's output when there
/// is none: the tests that need it must not pass without it.
pub fn serverless_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(path) = std::env::var_os("KELP_SERVERLESS") {
            return PathBuf::from(path);
        }
        let bin = script_dir("serverless", &[]).join("node_modules/.bin/serverless");
        assert!(bin.is_file(), "scripts/serverless installed no {}", bin.display());
        bin
    })
    .clone()
}

/// Runs `scripts/<script> <args>`, which installs or builds something into a cache once and
/// prints the directory holding it. Panics with the script's output when it fails.
fn script_dir(script: &str, args: &[&str]) -> PathBuf {
    let script = repo_root().join("scripts").join(script);
    let out = Command::new(&script)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} {} failed ({}):\n{}{}",
        script.display(),
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}
