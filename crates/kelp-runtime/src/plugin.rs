//! Plugin runtimes: a language added without rebuilding Kelp.
//!
//! A plugin is a directory named after its runtime ID holding a description, [`DESCRIPTION`]
//! (`runtime.json`), and its worker script (speaking `runtimes/PROTOCOL.md`). The description is
//! the runtime's `runtime-images` entry in Kubeless's own shape (`ID`, `depName`,
//! `fileNameSuffix`, `versions`, and on a cluster the versions' `images`), plus a `kelp` object
//! saying how to start the worker and install the dependency file:
//!
//! ```json
//! {"ID": "ruby", "depName": "Gemfile", "fileNameSuffix": ".rb",
//!  "versions": [{"name": "ruby26", "version": "2.6"}],
//!  "kelp": {"title": "Ruby", "worker": "kelp_worker.rb",
//!           "interpreter": "ruby", "interpreterEnv": "KELP_RUBY",
//!           "install": ["{interpreter}", "-S", "bundle", "install", "--quiet"],
//!           "installEnv": {"BUNDLE_PATH": "vendor/bundle"}, "depPaths": ["."]}}
//! ```
//!
//! JSON, because the description is a `runtime-images` entry, which is JSON, and `kelp up` adds
//! it to `kubeless-config` as it is (less its `kelp` object). Every field is checked when the
//! plugin is loaded ([`PluginError::Field`] names the field and the reason).
//!
//! Plugins are found in the directories of [`PATH_VAR`] (`KELP_RUNTIMES_PATH`, `:`-separated;
//! [`DEFAULT_PATH`] when unset): `<dir>/<ID>/runtime.json`, the first directory that has one
//! winning. A loaded plugin becomes a [`Language`] like the built-in ones, leaked once per
//! directory and process (a few hundred bytes, loaded when the process starts): the front, the
//! pool, the dependency installs and the workers take `&'static Language` and need no second kind
//! of language.

use crate::language::{Deps, LANGUAGES, Language};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// The description's file name in a plugin directory.
pub const DESCRIPTION: &str = "runtime.json";

/// The variable listing the directories plugins are found in, `:`-separated.
pub const PATH_VAR: &str = "KELP_RUNTIMES_PATH";

/// Where plugins are found when [`PATH_VAR`] is unset: where Kelp's runtime images put them.
pub const DEFAULT_PATH: &str = "/usr/share/kelp/runtimes";

/// The key of a `runtime-images` entry naming the plugin directory it came from (`kelp up` adds
/// it; Kubeless's readers ignore keys they do not know).
pub const ORIGIN_KEY: &str = "kelpPlugin";

/// The largest description or worker script read.
const MAX_FILE: u64 = 1 << 20;

/// The longest a worker may be given to say hello ([`Language::ready_timeout`]).
const MAX_READY_TIMEOUT: u64 = 600;

/// The word of an install command replaced by the interpreter's command.
const INTERPRETER_WORD: &str = "{interpreter}";

/// Why a plugin could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// A file of the plugin could not be read.
    #[error("runtime plugin {}: cannot read {}: {cause}", dir.display(), file.display())]
    Read {
        /// The plugin directory.
        dir: PathBuf,
        /// The file.
        file: PathBuf,
        /// The underlying error.
        cause: std::io::Error,
    },
    /// The description is not a JSON object.
    #[error("runtime plugin {}: {DESCRIPTION} is not a JSON object: {cause}", dir.display())]
    Json {
        /// The plugin directory.
        dir: PathBuf,
        /// Why.
        cause: String,
    },
    /// A field of the description is missing or wrong.
    #[error("runtime plugin {}: {DESCRIPTION}: field {field}: {reason}", dir.display())]
    Field {
        /// The plugin directory.
        dir: PathBuf,
        /// The field, as a path (`kelp.install[0]`).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// A plugin's dependency install, run in the install directory (the dependency file copied in).
#[derive(Debug)]
pub struct Install {
    /// The command's words; `{interpreter}` stands for the interpreter's command.
    pub argv: &'static [&'static str],
    /// Environment variables of the command.
    pub env: &'static [(&'static str, &'static str)],
    /// The module search path entries of an install, relative to its directory.
    pub paths: &'static [&'static str],
}

impl Install {
    /// The install command, with `interpreter` for `{interpreter}`, run in `target`.
    pub fn command(&self, interpreter: &str, target: &Path) -> tokio::process::Command {
        let word = |w: &&'static str| if *w == INTERPRETER_WORD { interpreter } else { *w };
        let mut words = self.argv.iter().map(word);
        let mut cmd = tokio::process::Command::new(words.next().unwrap_or_default());
        cmd.args(words).envs(self.env.iter().copied()).current_dir(target);
        cmd
    }
}

/// A loaded plugin.
#[derive(Debug)]
pub struct Plugin {
    /// Its language, as the front runs it.
    pub language: &'static Language,
    /// Its directory.
    pub dir: PathBuf,
    /// Its `runtime-images` entry: the description without its `kelp` object.
    pub entry: Map<String, Value>,
    /// The versions it lists (`2.6`), in their order.
    pub versions: Vec<String>,
}

/// The directories plugins are found in: [`PATH_VAR`]'s, or [`DEFAULT_PATH`].
pub fn search_path() -> Vec<PathBuf> {
    let path = std::env::var(PATH_VAR).unwrap_or_else(|_| DEFAULT_PATH.to_owned());
    path.split(':').filter(|d| !d.is_empty()).map(PathBuf::from).collect()
}

/// The plugins loaded by this process, by directory: each is leaked once.
static LOADED: Mutex<BTreeMap<PathBuf, &'static Plugin>> = Mutex::new(BTreeMap::new());

/// The plugin serving the runtime ID `id`: the first `<dir>/<id>/runtime.json` of the
/// [`search_path`]; `Ok(None)` when there is none.
pub fn find(id: &str) -> Result<Option<&'static Plugin>, PluginError> {
    if !valid_id(id) {
        return Ok(None);
    }
    match search_path().into_iter().map(|d| d.join(id)).find(|d| d.join(DESCRIPTION).is_file()) {
        Some(dir) => load(&dir).map(Some),
        None => Ok(None),
    }
}

/// Every plugin of the [`search_path`], by ID in their directories' order (a later directory's
/// plugin of an ID already found is skipped), with the error of each that does not load.
pub fn all() -> Vec<Result<&'static Plugin, PluginError>> {
    let mut seen = std::collections::BTreeSet::new();
    let mut plugins = Vec::new();
    for dir in search_path() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        let mut dirs: Vec<PathBuf> =
            entries.flatten().map(|e| e.path()).filter(|p| p.join(DESCRIPTION).is_file()).collect();
        dirs.sort();
        for dir in dirs {
            let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if seen.insert(name) {
                plugins.push(load(&dir));
            }
        }
    }
    plugins
}

/// Loads the plugin in `dir` (once per process: a second call returns the first one's).
pub fn load(dir: &Path) -> Result<&'static Plugin, PluginError> {
    let mut loaded = LOADED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(plugin) = loaded.get(dir) {
        return Ok(plugin);
    }
    let plugin: &'static Plugin = Box::leak(Box::new(parse(dir)?));
    loaded.insert(dir.to_owned(), plugin);
    Ok(plugin)
}

/// The `kelp` object of a description.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Kelp {
    title: String,
    worker: String,
    interpreter: String,
    interpreter_env: String,
    #[serde(default)]
    interpreter_args: Vec<String>,
    #[serde(default = "version_args")]
    version_args: Vec<String>,
    #[serde(default = "version_parts")]
    version_parts: usize,
    #[serde(default)]
    same_major_only: bool,
    install: Vec<String>,
    #[serde(default)]
    install_env: BTreeMap<String, String>,
    dep_paths: Vec<String>,
    #[serde(default = "ready_timeout")]
    ready_timeout_seconds: u64,
}

fn version_args() -> Vec<String> {
    vec!["--version".to_owned()]
}

fn version_parts() -> usize {
    2
}

fn ready_timeout() -> u64 {
    crate::language::READY_TIMEOUT.as_secs()
}

/// Reads a file of the plugin, at most [`MAX_FILE`] bytes.
fn read(dir: &Path, file: &Path) -> Result<Vec<u8>, PluginError> {
    let read_err = |cause| PluginError::Read { dir: dir.to_owned(), file: file.to_owned(), cause };
    let size = std::fs::metadata(file).map_err(read_err)?.len();
    if size > MAX_FILE {
        let cause = std::io::Error::other(format!("{size} bytes, more than the {MAX_FILE} a plugin's file may have"));
        return Err(read_err(cause));
    }
    std::fs::read(file).map_err(read_err)
}

/// A runtime ID: ASCII letters, `_` and `-`, starting with a letter, at most 63 bytes (no digit
/// or dot: those begin the version in `ruby2.6`).
fn valid_id(id: &str) -> bool {
    id.len() <= 63
        && id.starts_with(|c: char| c.is_ascii_alphabetic())
        && id.bytes().all(|b| b.is_ascii_alphabetic() || b == b'_' || b == b'-')
}

/// A file name alone: not empty, no `/`, not `.` or `..`.
fn plain_file_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('/') && !name.contains('\0') && name != "." && name != ".."
}

/// An environment variable's name: `[A-Za-z_][A-Za-z0-9_]*`.
fn env_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Leaks `s` for the life of the process (see the module's documentation).
fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// Reads and checks the plugin in `dir`.
fn parse(dir: &Path) -> Result<Plugin, PluginError> {
    let field =
        |field: &str, reason: String| PluginError::Field { dir: dir.to_owned(), field: field.to_owned(), reason };
    let text = read(dir, &dir.join(DESCRIPTION))?;
    let mut entry: Map<String, Value> =
        serde_json::from_slice(&text).map_err(|e| PluginError::Json { dir: dir.to_owned(), cause: e.to_string() })?;
    let string = |entry: &Map<String, Value>, key: &str| match entry.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(field(key, "must be a string".into())),
        None => Err(field(key, "is missing".into())),
    };
    let id = string(&entry, "ID")?;
    if !valid_id(&id) {
        return Err(field(
            "ID",
            format!("{id:?} is not a runtime ID (ASCII letters, `_` and `-`, starting with a letter, at most 63)"),
        ));
    }
    if dir.file_name().is_none_or(|name| name != id.as_str()) {
        return Err(field("ID", format!("{id:?} is not the name of the plugin's directory")));
    }
    if let Some(builtin) = LANGUAGES.iter().find(|l| l.runtime_ids.contains(&id.as_str())) {
        return Err(field(
            "ID",
            format!("{id:?} is served by the {} built into Kelp; give the plugin another ID", builtin.title),
        ));
    }
    let deps_file = string(&entry, "depName")?;
    if !plain_file_name(&deps_file) {
        return Err(field("depName", format!("{deps_file:?} is not a file name")));
    }
    let suffix = string(&entry, "fileNameSuffix")?;
    if !suffix.starts_with('.') || !plain_file_name(&suffix) || suffix.len() < 2 {
        return Err(field("fileNameSuffix", format!("{suffix:?} is not a file suffix such as \".rb\"")));
    }
    let versions = versions(&entry).map_err(|(f, reason)| field(&f, reason))?;
    let kelp =
        entry.remove("kelp").ok_or_else(|| field("kelp", "is missing: it says how Kelp runs the runtime".into()))?;
    let kelp: Kelp = serde_json::from_value(kelp).map_err(|e| field("kelp", e.to_string()))?;
    if kelp.title.trim().is_empty() {
        return Err(field("kelp.title", "is empty".into()));
    }
    if !plain_file_name(&kelp.worker) {
        return Err(field("kelp.worker", format!("{:?} is not a file name in the plugin's directory", kelp.worker)));
    }
    let source = read(dir, &dir.join(&kelp.worker))?;
    let source =
        String::from_utf8(source).map_err(|_| field("kelp.worker", format!("{} is not UTF-8 text", kelp.worker)))?;
    if kelp.interpreter.trim().is_empty() {
        return Err(field("kelp.interpreter", "is empty".into()));
    }
    if !env_name(&kelp.interpreter_env) {
        return Err(field(
            "kelp.interpreterEnv",
            format!("{:?} is not an environment variable's name", kelp.interpreter_env),
        ));
    }
    if kelp.version_args.is_empty() {
        return Err(field(
            "kelp.versionArgs",
            "is empty: the interpreter's version is part of every install's key".into(),
        ));
    }
    if !(1..=3).contains(&kelp.version_parts) {
        return Err(field("kelp.versionParts", format!("{} is not 1, 2 or 3", kelp.version_parts)));
    }
    if kelp.install.first().is_none_or(|w| w.is_empty()) {
        return Err(field("kelp.install", "must name a command (its words: [\"bundle\", \"install\"])".into()));
    }
    if let Some(name) = kelp.install_env.keys().find(|n| !env_name(n)) {
        return Err(field("kelp.installEnv", format!("{name:?} is not an environment variable's name")));
    }
    if let Some(path) =
        kelp.dep_paths.iter().find(|p| p.is_empty() || p.starts_with('/') || p.split('/').any(|c| c == ".."))
    {
        return Err(field("kelp.depPaths", format!("{path:?} is not a path inside the install directory")));
    }
    if !(1..=MAX_READY_TIMEOUT).contains(&kelp.ready_timeout_seconds) {
        return Err(field(
            "kelp.readyTimeoutSeconds",
            format!("{} is not between 1 and {MAX_READY_TIMEOUT}", kelp.ready_timeout_seconds),
        ));
    }
    let strs = |v: Vec<String>| -> &'static [&'static str] { Box::leak(v.into_iter().map(leak).collect()) };
    let install = Install {
        argv: strs(kelp.install),
        env: Box::leak(kelp.install_env.into_iter().map(|(k, v)| (leak(k), leak(v))).collect()),
        paths: strs(kelp.dep_paths),
    };
    let dir_static: &'static Path = Box::leak(dir.to_path_buf().into_boxed_path());
    let id = leak(id);
    let language = Language {
        name: id,
        title: leak(kelp.title),
        runtime_ids: Box::leak(Box::new([id])),
        file_suffix: leak(suffix),
        deps_file: leak(deps_file),
        worker: (leak(kelp.worker), leak(source)),
        interpreter: (leak(kelp.interpreter_env), leak(kelp.interpreter)),
        interpreter_args: strs(kelp.interpreter_args),
        deps: Deps::Plugin(Box::leak(Box::new(install))),
        version_parts: kelp.version_parts,
        same_major_only: kelp.same_major_only,
        version_args: strs(kelp.version_args),
        build: None,
        ready_timeout: Duration::from_secs(kelp.ready_timeout_seconds),
        plugin: Some(dir_static),
    };
    Ok(Plugin { language: Box::leak(Box::new(language)), dir: dir.to_owned(), entry, versions })
}

/// The `versions` of a description: each `version` (digits and dots), at least one; or the
/// field and why not.
fn versions(entry: &Map<String, Value>) -> Result<Vec<String>, (String, String)> {
    let Some(Value::Array(list)) = entry.get("versions") else {
        return Err(("versions".into(), "must be a list of {\"name\", \"version\"}".into()));
    };
    if list.is_empty() {
        return Err(("versions".into(), "is empty: a runtime lists at least one version".into()));
    }
    list.iter()
        .enumerate()
        .map(|(i, v)| match v.get("version") {
            Some(Value::String(s))
                if !s.is_empty() && s.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())) =>
            {
                Ok(s.clone())
            }
            _ => Err((format!("versions[{i}].version"), "must be a version such as \"2.6\" (digits and dots)".into())),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plugin directory `<tmp>/<id>` with `description` and a worker `w.rb`.
    fn plugin_dir(id: &str, description: &str) -> (tempfile::TempDir, PathBuf) {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join(id);
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join(DESCRIPTION), description).unwrap();
        std::fs::write(dir.join("w.rb"), "# worker\n").unwrap();
        (root, dir)
    }

    const GOOD: &str = r#"{"ID": "rubyx", "depName": "Gemfile", "fileNameSuffix": ".rb",
        "versions": [{"name": "rubyx26", "version": "2.6"}, {"name": "rubyx", "version": "3"}],
        "kelp": {"title": "Ruby", "worker": "w.rb", "interpreter": "ruby", "interpreterEnv": "KELP_RUBY",
                 "install": ["{interpreter}", "-S", "bundle", "install"], "installEnv": {"BUNDLE_PATH": "b"},
                 "depPaths": ["."]}}"#;

    #[test]
    fn a_description_becomes_a_language() {
        let (_root, dir) = plugin_dir("rubyx", GOOD);
        let plugin = load(&dir).unwrap();
        let lang = plugin.language;
        assert_eq!((lang.name, lang.title, lang.runtime_ids), ("rubyx", "Ruby", &["rubyx"][..]));
        assert_eq!((lang.file_suffix, lang.deps_file, lang.interpreter), (".rb", "Gemfile", ("KELP_RUBY", "ruby")));
        assert_eq!(lang.worker, ("w.rb", "# worker\n"));
        assert_eq!((lang.version_parts, lang.same_major_only, lang.version_args), (2, false, &["--version"][..]));
        assert_eq!(lang.plugin, Some(dir.as_path()));
        assert_eq!(plugin.versions, ["2.6", "3"]);
        assert!(!plugin.entry.contains_key("kelp") && plugin.entry["ID"] == "rubyx");
        assert_eq!(lang.deps.paths(Path::new("/i")), [PathBuf::from("/i/.")]);
        let cmd = lang.deps.install("/opt/ruby", Path::new("/i"), None);
        let std = cmd.as_std();
        assert_eq!(std.get_program(), "/opt/ruby");
        assert_eq!(std.get_args().collect::<Vec<_>>(), ["-S", "bundle", "install"]);
        assert!(std::ptr::eq(load(&dir).unwrap(), plugin), "a plugin is loaded once per process");
    }

    #[test]
    fn every_bad_field_is_named_with_its_reason() {
        for (from, to, id, field, reason) in [
            (r#""ID": "rubyx""#, r#""ID": 3"#, "rubyx", "ID", "must be a string"),
            (r#""ID": "rubyx""#, r#""ID": "ruby2""#, "rubyx", "ID", "is not a runtime ID"),
            (r#""ID": "rubyx""#, r#""ID": "other""#, "rubyx", "ID", "is not the name of the plugin's directory"),
            (r#""ID": "rubyx""#, r#""ID": "python""#, "python", "ID", "built into Kelp"),
            (r#""depName": "Gemfile","#, "", "rubyx", "depName", "is missing"),
            (r#""Gemfile""#, r#""../Gemfile""#, "rubyx", "depName", "is not a file name"),
            (r#"".rb""#, r#""rb""#, "rubyx", "fileNameSuffix", "is not a file suffix"),
            (r#""version": "2.6""#, r#""version": "2.x""#, "rubyx", "versions[0].version", "digits and dots"),
            (r#""title": "Ruby""#, r#""title": "Ruby", "colour": 1"#, "rubyx", "kelp", "unknown field `colour`"),
            (r#""title": "Ruby","#, "", "rubyx", "kelp", "missing field `title`"),
            (r#""w.rb""#, r#""../w.rb""#, "rubyx", "kelp.worker", "is not a file name"),
            (r#""KELP_RUBY""#, r#""KELP RUBY""#, "rubyx", "kelp.interpreterEnv", "environment variable"),
            (
                r#""install": ["{interpreter}", "-S", "bundle", "install"]"#,
                r#""install": []"#,
                "rubyx",
                "kelp.install",
                "must name a command",
            ),
            (r#""BUNDLE_PATH""#, r#""1X""#, "rubyx", "kelp.installEnv", "environment variable"),
            (
                r#""depPaths": ["."]"#,
                r#""depPaths": ["../x"]"#,
                "rubyx",
                "kelp.depPaths",
                "inside the install directory",
            ),
            (
                r#""depPaths": ["."]"#,
                r#""depPaths": ["."], "versionParts": 0"#,
                "rubyx",
                "kelp.versionParts",
                "not 1, 2 or 3",
            ),
            (
                r#""depPaths": ["."]"#,
                r#""depPaths": ["."], "readyTimeoutSeconds": 0"#,
                "rubyx",
                "kelp.readyTimeoutSeconds",
                "between 1 and 600",
            ),
        ] {
            assert!(GOOD.contains(from), "{from}");
            let (_root, dir) = plugin_dir(id, &GOOD.replacen(from, to, 1));
            let error = parse(&dir).unwrap_err().to_string();
            assert!(error.contains(&format!("field {field}: ")) && error.contains(reason), "{from} → {to}: {error}");
        }
        let (_root, dir) = plugin_dir("rubyx", "[1]");
        assert!(parse(&dir).unwrap_err().to_string().contains("runtime.json is not a JSON object"));
        let (_root, dir) = plugin_dir("rubyx", &GOOD.replace("w.rb", "missing.rb"));
        let error = parse(&dir).unwrap_err().to_string();
        assert!(error.contains("cannot read") && error.contains("missing.rb"), "{error}");
    }
}
