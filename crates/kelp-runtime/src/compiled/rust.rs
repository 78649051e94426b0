//! Rust functions (runtime `rust<major>.<minor>`, `rust1.95`): Kelp's own, no Kubeless runtime
//! had them. The code file `<module>.rs` holds `pub fn <handler>(event: kelp::Event, context:
//! kelp::Context) -> Result<R, E>`; `kelp` is the crate of `runtimes/rust/kelp/` (the API and the
//! worker), a path dependency of the function, so it needs no network.
//!
//! A build generates, in the build directory, a Cargo package in `function/` (the copy of the
//! code directory): its manifest made from the user's `Cargo.toml` (`manifest`: their
//! dependencies, target-specific dependencies, features, patches and edition; Kelp's package,
//! binary, profile and `kelp` dependency), its `Cargo.lock` the user's or else the wrapper's (so
//! a function without dependencies resolves nothing from the network), a `main`
//! (`kelp-main.rs`) that includes `<module>.rs` as a module and runs `kelp::run` with the
//! handler, and a library (`kelp-lib.rs`, a `cdylib`) that includes it too and exports it with
//! `kelp::export!`, for the front to load into its own process (`KELP_IN_PROCESS=1`,
//! `crate::native`). `cargo build --release` compiles both with `CARGO_TARGET_DIR` and
//! `CARGO_HOME` in the namespace's toolchain cache (compiled dependencies and downloaded crates
//! are reused by the next build); the binary is moved into the build directory as `kelp-worker`,
//! the library as `kelp-function.so`.

use crate::language::{Build, BuildJob, COMPILED, Language};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use tokio::process::Command;
use toml_edit::{DocumentMut, Item, Table, value};

/// Rust.
pub const LANGUAGE: Language = Language {
    name: "rust",
    title: "Rust",
    runtime_ids: &["rust"],
    file_suffix: ".rs",
    deps_file: "Cargo.toml",
    interpreter: ("KELP_CARGO", "cargo"),
    build: Some(Build {
        wrapper: WRAPPER,
        commands,
        finish: None,
        worker: |dir| Command::new(dir.join(WORKER)),
        library: Some(LIBRARY),
    }),
    ..COMPILED
};

/// The `kelp` crate, written into `kelp/` of the build directory.
const WRAPPER: &[(&str, &str)] = &[
    ("kelp/Cargo.toml", include_str!("../../../../runtimes/rust/kelp/Cargo.toml")),
    ("kelp/Cargo.lock", include_str!("../../../../runtimes/rust/kelp/Cargo.lock")),
    ("kelp/src/lib.rs", include_str!("../../../../runtimes/rust/kelp/src/lib.rs")),
    ("kelp/src/worker.rs", include_str!("../../../../runtimes/rust/kelp/src/worker.rs")),
    ("kelp/src/native.rs", include_str!("../../../../runtimes/rust/kelp/src/native.rs")),
];

/// The worker program in a finished build directory.
const WORKER: &str = "kelp-worker";
/// The function's library in a finished build directory, for the front's own process.
const LIBRARY: &str = "kelp-function.so";
/// The generated `main`, in `function/` beside the code (a name no module can have).
const MAIN: &str = "kelp-main.rs";
/// The generated library root, beside it.
const LIB: &str = "kelp-lib.rs";
/// Names a module cannot have: they would hide the crates the generated `main` uses.
const RESERVED_MODULES: &[&str] = &["kelp", "std", "core", "alloc"];

/// Generates the package and returns the build's commands: `cargo build`, and moving the binary
/// out of the shared target directory. A function that cannot be generated (a name that is no
/// Rust identifier, a `Cargo.toml` that is not TOML) gets one command that fails saying why.
fn commands(job: &BuildJob<'_>) -> Vec<Command> {
    match generate(job) {
        Ok(bin) => vec![cargo_build(job), move_binary(job, &bin), move_library(job, &bin)],
        Err(message) => vec![fail(&format!("error: {message}"))],
    }
}

/// Writes `function/Cargo.toml`, `function/kelp-main.rs` and (unless the user gave one)
/// `function/Cargo.lock`; returns the binary's name, unique to this build directory (builds of
/// one namespace share the target directory, where `cargo` leaves the binary under its name).
fn generate(job: &BuildJob<'_>) -> Result<String, String> {
    let function = job.dir.join("function");
    for (what, name) in [("module", job.module), ("handler", job.handler)] {
        if !is_identifier(name) {
            return Err(format!(
                "the {what} name {name:?} is not a Rust identifier (letters, digits and _, not a keyword)"
            ));
        }
    }
    if RESERVED_MODULES.contains(&job.module) {
        return Err(format!(
            "the module name {:?} is reserved (it would hide the crate of that name): rename {}.rs",
            job.module, job.module
        ));
    }
    let user = match std::fs::read_to_string(function.join("Cargo.toml")) {
        Ok(text) => Some(text.parse::<DocumentMut>().map_err(|e| format!("Cargo.toml is not valid TOML: {e}"))?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("reading Cargo.toml: {e}")),
    };
    let digest = Sha256::digest(job.dir.as_os_str().as_encoded_bytes());
    let bin = format!("kelp-function-{}", &crate::deps::hex(&digest)[..16]);
    let write = |name: &str, content: &str| {
        std::fs::write(function.join(name), content).map_err(|e| format!("writing function/{name}: {e}"))
    };
    let kelp =
        kelp_crate(job.cache).map_err(|e| format!("writing the kelp crate into {}: {e}", job.cache.display()))?;
    write("Cargo.toml", &manifest(user.as_ref(), &bin, &kelp)?.to_string())?;
    write(MAIN, &main(job.module, job.handler))?;
    write(LIB, &library(job.module, job.handler))?;
    if !function.join("Cargo.lock").exists() {
        let lock = WRAPPER.iter().find(|(path, _)| *path == "kelp/Cargo.lock").map_or("", |(_, lock)| lock);
        write("Cargo.lock", lock)?;
    }
    Ok(bin)
}

/// The manifest of the function's package: Kelp's package, binary `bin`, release profile and
/// `kelp` dependency, with what the user's `Cargo.toml` (if any) says of dependencies
/// (`[dependencies]`, `[target.*]`, `[features]`, `[patch]`) and `package.edition`.
fn manifest(user: Option<&DocumentMut>, bin: &str, kelp_crate: &Path) -> Result<DocumentMut, String> {
    let mut doc = DocumentMut::new();
    let edition = user.and_then(|u| u.get("package")?.get("edition")?.as_str()).unwrap_or("2024");
    let mut package = Table::new();
    for (key, v) in [("name", "kelp-function"), ("version", "0.0.0"), ("edition", edition)] {
        package.insert(key, value(v));
    }
    package.insert("publish", value(false));
    for auto in ["autolib", "autobins", "autoexamples", "autotests", "autobenches"] {
        package.insert(auto, value(false));
    }
    doc.insert("package", Item::Table(package));
    let mut target = Table::new();
    target.insert("name", value(bin));
    target.insert("path", value(MAIN));
    let mut bins = toml_edit::ArrayOfTables::new();
    bins.push(target);
    let mut lib = Table::new();
    lib.insert("name", value(library_name(bin)));
    lib.insert("path", value(LIB));
    lib.insert("crate-type", value(toml_edit::Array::from_iter(["cdylib"])));
    doc.insert("lib", Item::Table(lib));
    doc.insert("bin", Item::ArrayOfTables(bins));
    // A table however written: `[dependencies]`, `dependencies.x = ..` or `dependencies = {..}`.
    let mut dependencies = Table::new();
    if let Some(item) = user.and_then(|u| u.get("dependencies")) {
        let table = item.as_table_like().ok_or("Cargo.toml: [dependencies] is not a table")?;
        for (name, dependency) in table.iter() {
            dependencies.insert(name, dependency.clone());
        }
    }
    if dependencies.contains_key("kelp") {
        return Err("Cargo.toml: the dependency `kelp` is Kelp's own crate, which every function has: remove it".into());
    }
    let mut kelp = toml_edit::InlineTable::new();
    kelp.insert("path", kelp_crate.to_string_lossy().as_ref().into());
    dependencies.insert("kelp", value(kelp));
    doc.insert("dependencies", Item::Table(dependencies));
    for key in ["target", "features", "patch"] {
        if let Some(item) = user.and_then(|u| u.get(key)) {
            doc.insert(key, item.clone());
        }
    }
    let profile: DocumentMut = PROFILE.parse().map_err(|e| format!("Kelp's release profile: {e}"))?;
    for (key, item) in profile.iter() {
        doc.insert(key, item.clone());
    }
    Ok(doc)
}

/// The `kelp` crate in the namespace's toolchain cache, written there once per version of the
/// wrapper: at one path, Cargo compiles it once for every function of the namespace (the copy in
/// each build directory, at a path of its own, would be compiled by each build).
fn kelp_crate(cache: &Path) -> std::io::Result<PathBuf> {
    let mut digest = Sha256::new();
    for (path, content) in WRAPPER {
        digest.update(format!("{}:{path}:{}:", path.len(), content.len()));
        digest.update(content);
    }
    let dir = cache.join(format!("kelp-{}", &crate::deps::hex(&digest.finalize())[..16]));
    if dir.is_dir() {
        return Ok(dir);
    }
    let tmp = dir.with_extension(format!("tmp-{}", std::process::id()));
    for (path, content) in WRAPPER {
        let file = tmp.join(path.strip_prefix("kelp/").unwrap_or(path));
        std::fs::create_dir_all(file.parent().unwrap_or(&tmp))?;
        std::fs::write(file, content)?;
    }
    let renamed = std::fs::rename(&tmp, &dir);
    let _ = std::fs::remove_dir_all(&tmp);
    match renamed {
        // Another build of the namespace put it in place meanwhile.
        Err(_) if dir.is_dir() => Ok(dir),
        other => other.map(|()| dir),
    }
}

/// The release profile of every function, and the empty `[workspace]` that makes the package its
/// own workspace wherever the build directory is.
const PROFILE: &str = "
[profile.release]
opt-level = 2
debug = false
strip = true
incremental = false
codegen-units = 16
panic = \"unwind\"

[workspace]
";

/// The generated `main`: the code file as a module, and the worker calling its handler.
fn main(module: &str, handler: &str) -> String {
    format!(
        "//! Generated by Kelp: the worker of the function `{module}.{handler}`.\n\n\
         #[allow(dead_code)]\n#[path = \"{module}.rs\"]\nmod {module};\n\n\
         fn main() {{\n    kelp::run(\"{module}\", \"{handler}\", {module}::{handler})\n}}\n"
    )
}

/// The generated library: the code file as a module, exported for the front's process.
fn library(module: &str, handler: &str) -> String {
    format!(
        "//! Generated by Kelp: the function `{module}.{handler}` as a library for kelp-runtime's process.\n\n\
         #[allow(dead_code)]\n#[path = \"{module}.rs\"]\nmod {module};\n\n\
         kelp::export!(\"{module}\", \"{handler}\", {module}::{handler});\n"
    )
}

/// Whether `name` can name a Rust module or function: ASCII letters, digits and `_`, not starting
/// with a digit, not `_` alone, and not a keyword.
fn is_identifier(name: &str) -> bool {
    const KEYWORDS: &[&str] = &[
        "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern", "false", "fn",
        "for", "gen", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return", "self",
        "Self", "static", "struct", "super", "trait", "true", "type", "unsafe", "use", "where", "while", "abstract",
        "become", "box", "do", "final", "macro", "override", "priv", "try", "typeof", "unsized", "virtual", "yield",
    ];
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name != "_"
        && !KEYWORDS.contains(&name)
}

/// `cargo build --release` of the generated package, with the namespace's caches.
fn cargo_build(job: &BuildJob<'_>) -> Command {
    let mut cmd = Command::new(job.toolchain);
    cmd.args(["build", "--release", "--message-format", "short", "--manifest-path", "function/Cargo.toml"]);
    // Settings of the environment that would change how every function is compiled (or where):
    // the build is Kelp's to describe.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if ["CARGO_BUILD_", "CARGO_PROFILE_", "CARGO_TARGET_"].iter().any(|p| name.starts_with(p))
            || ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_INCREMENTAL"].contains(&name.as_ref())
        {
            cmd.env_remove(name.as_ref());
        }
    }
    cmd.env("CARGO_TARGET_DIR", job.cache.join("target"))
        .env("CARGO_HOME", job.cache.join("cargo-home"))
        .env("CARGO_TERM_COLOR", "never")
        .env("CARGO_TERM_PROGRESS_WHEN", "never");
    cmd
}

/// Moves the binary `bin` out of the namespace's target directory into the build directory.
fn move_binary(job: &BuildJob<'_>, bin: &str) -> Command {
    let mut cmd = Command::new("mv");
    cmd.arg(job.cache.join("target").join("release").join(bin)).arg(Path::new(WORKER));
    cmd
}

/// The library target's name, beside the binary `bin`'s (Cargo names a library with `_`).
fn library_name(bin: &str) -> String {
    bin.replace('-', "_")
}

/// Moves the library beside `bin` out of the namespace's target directory into the build
/// directory, as [`LIBRARY`].
fn move_library(job: &BuildJob<'_>, bin: &str) -> Command {
    let mut cmd = Command::new("mv");
    let file = format!("lib{}.so", library_name(bin));
    cmd.arg(job.cache.join("target").join("release").join(file)).arg(Path::new(LIBRARY));
    cmd
}

/// A command that fails printing `message` (how a build that cannot start reports why).
fn fail(message: &str) -> Command {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "printf '%s\\n' \"$1\" >&2; exit 1", "kelp-build", message]);
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::language::{Fit, Interpreter};

    #[test]
    fn runtimes_and_the_toolchain_version() {
        assert_eq!(Language::for_runtime("rust1.95").map(|l| l.name), Some("rust"));
        let cargo = Language::for_runtime("rust").unwrap();
        let found = Interpreter::from_version_output(cargo, "cargo".into(), "cargo 1.95.0 (f2d3ce0bd 2026-03-21)\n");
        let found = found.unwrap();
        assert_eq!((found.version.as_str(), found.runtime()), ("1.95.0", "rust1.95".to_owned()));
        for (runtime, fit) in [("rust1.95", Fit::Exact), ("rust", Fit::Exact), ("rust1.80", Fit::Substituted)] {
            assert_eq!(found.fit(runtime), fit, "{runtime}");
        }
    }

    #[test]
    fn identifiers() {
        for good in ["conf", "hello_world", "_private", "Handler2", "r#"] {
            assert_eq!(is_identifier(good), good != "r#", "{good}");
        }
        for bad in ["", "_", "2fast", "my-func", "mod", "fn", "a.b", "héllo", "conf "] {
            assert!(!is_identifier(bad), "{bad}");
        }
    }

    fn parse(text: &str) -> DocumentMut {
        text.parse().unwrap()
    }

    #[test]
    fn the_manifest_takes_the_dependencies_of_the_users_cargo_toml() {
        let user = parse(
            r#"
[package]
name = "kelp"
version = "1.0.0"
edition = "2021"
build = "build.rs"

[dependencies]
hex = "0.4"
local = { path = "vendor/local" }

[dependencies.serde]
version = "1"
features = ["derive"]

[target.'cfg(unix)'.dependencies]
libc = "0.2"

[features]
fast = []

[profile.release]
panic = "abort"

[[bin]]
name = "other"
path = "other.rs"
"#,
        );
        let doc = manifest(Some(&user), "kelp-function-0123", Path::new("/cache/kelp-abc")).unwrap();
        let again: DocumentMut = doc.to_string().parse().expect("the manifest is TOML");
        let package = again["package"].as_table().unwrap();
        assert_eq!(package["name"].as_str(), Some("kelp-function"), "the user's package name is not used");
        assert_eq!(package["edition"].as_str(), Some("2021"), "the user's edition is kept");
        assert!(package.get("build").is_none(), "a build script is not the function's");
        let deps = again["dependencies"].as_table().unwrap();
        assert_eq!(deps["hex"].as_str(), Some("0.4"));
        assert_eq!(deps["local"]["path"].as_str(), Some("vendor/local"), "paths stay relative to function/");
        assert_eq!(deps["serde"]["features"].as_array().map(|a| a.len()), Some(1));
        assert_eq!(deps["kelp"]["path"].as_str(), Some("/cache/kelp-abc"));
        assert_eq!(again["target"]["cfg(unix)"]["dependencies"]["libc"].as_str(), Some("0.2"));
        assert!(again["features"]["fast"].is_array());
        assert_eq!(again["profile"]["release"]["panic"].as_str(), Some("unwind"), "panics must unwind to be caught");
        let bins = again["bin"].as_array_of_tables().unwrap();
        assert_eq!(bins.len(), 1);
        let bin = bins.get(0).unwrap();
        assert_eq!((bin["name"].as_str(), bin["path"].as_str()), (Some("kelp-function-0123"), Some(MAIN)));
        let lib = again["lib"].as_table().expect("the function as a library, for KELP_IN_PROCESS=1");
        assert_eq!((lib["name"].as_str(), lib["path"].as_str()), (Some("kelp_function_0123"), Some(LIB)));
        assert_eq!(
            lib["crate-type"].as_array().map(|a| a.iter().filter_map(|v| v.as_str()).collect()),
            Some(vec!["cdylib"])
        );
        assert!(again["workspace"].is_table(), "the package is its own workspace");
    }

    #[test]
    fn the_manifest_takes_tables_however_written() {
        for user in [
            "dependencies.hex = \"0.4\"\ntarget.'cfg(unix)'.dependencies.libc = \"0.2\"\n",
            "dependencies = { hex = \"0.4\" }\ntarget = { 'cfg(unix)' = { dependencies = { libc = \"0.2\" } } }\n",
            "[dependencies]\nhex = \"0.4\"\n[target.'cfg(unix)'.dependencies.libc]\nversion = \"0.2\"\n",
        ] {
            let doc = manifest(Some(&parse(user)), "bin", Path::new("/k")).unwrap().to_string();
            let again: DocumentMut = doc.parse().unwrap_or_else(|e| panic!("{user}\nmade\n{doc}\n{e}"));
            assert_eq!(again["dependencies"]["hex"].as_str(), Some("0.4"), "{user}\nmade\n{doc}");
            assert_eq!(again["dependencies"]["kelp"]["path"].as_str(), Some("/k"), "{user}\nmade\n{doc}");
            let libc = &again["target"]["cfg(unix)"]["dependencies"]["libc"];
            assert!(libc.as_str() == Some("0.2") || libc["version"].as_str() == Some("0.2"), "{user}\nmade\n{doc}");
        }
    }

    #[test]
    fn the_manifest_without_a_cargo_toml_and_what_it_refuses() {
        let doc = manifest(None, "bin", Path::new("/k")).unwrap();
        assert_eq!(doc["package"]["edition"].as_str(), Some("2024"));
        assert_eq!(doc["dependencies"].as_table().map(|t| t.len()), Some(1));
        let own = manifest(Some(&parse("[dependencies]\nkelp = \"1\"\n")), "bin", Path::new("/k")).unwrap_err();
        assert!(own.contains("`kelp` is Kelp's own crate"), "{own}");
        let flat = manifest(Some(&parse("dependencies = 3\n")), "bin", Path::new("/k")).unwrap_err();
        assert!(flat.contains("[dependencies] is not a table"), "{flat}");
    }

    #[test]
    fn generating_refuses_what_cannot_be_a_rust_function() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("function")).unwrap();
        let cache = dir.path().join("cache");
        let job = |module, handler| BuildJob { toolchain: "cargo", dir: dir.path(), module, handler, cache: &cache };
        let err = generate(&job("my-func", "hello")).unwrap_err();
        assert!(err.contains("the module name \"my-func\" is not a Rust identifier"), "{err}");
        let err = generate(&job("conf", "fn")).unwrap_err();
        assert!(err.contains("the handler name \"fn\" is not a Rust identifier"), "{err}");
        let err = generate(&job("kelp", "hello")).unwrap_err();
        assert!(err.contains("reserved"), "{err}");
        std::fs::write(dir.path().join("function/Cargo.toml"), "[dependencies\n").unwrap();
        let err = generate(&job("conf", "hello")).unwrap_err();
        assert!(err.contains("Cargo.toml is not valid TOML"), "{err}");

        std::fs::write(dir.path().join("function/Cargo.toml"), "[dependencies]\nhex = \"0.4\"\n").unwrap();
        let bin = generate(&job("conf", "hello")).unwrap();
        let main = std::fs::read_to_string(dir.path().join("function").join(MAIN)).unwrap();
        assert!(main.contains("#[path = \"conf.rs\"]\nmod conf;"), "{main}");
        assert!(main.contains("kelp::run(\"conf\", \"hello\", conf::hello)"), "{main}");
        let lock = std::fs::read_to_string(dir.path().join("function/Cargo.lock")).unwrap();
        assert!(lock.contains("name = \"serde_json\""), "the wrapper's lock is the default:\n{lock}");
        let kelp = std::fs::read_dir(&cache).unwrap().flatten().map(|e| e.path()).collect::<Vec<_>>();
        assert_eq!(kelp.len(), 1, "one kelp crate in the cache: {kelp:?}");
        assert!(kelp[0].join("src/worker.rs").is_file());
        std::fs::write(dir.path().join("function/Cargo.toml"), "[dependencies]\nhex = \"0.4\"\n").unwrap();
        assert_eq!(generate(&job("conf", "hello")).unwrap(), bin, "the binary's name is the build directory's");
        assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 1, "the kelp crate is written once");
    }

    #[test]
    fn a_failure_to_generate_is_a_failing_command() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("function")).unwrap();
        let job = BuildJob { toolchain: "cargo", dir: dir.path(), module: "a-b", handler: "h", cache: dir.path() };
        let mut commands = commands(&job);
        assert_eq!(commands.len(), 1);
        let out = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async { commands.remove(0).output().await })
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.starts_with("error: the module name \"a-b\" is not a Rust identifier"), "{stderr}");
    }
}
