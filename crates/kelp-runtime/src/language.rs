//! The languages Kelp runs, and how to start each one's worker and install its dependencies.
//!
//! Adding a language is one worker script under `runtimes/` (speaking `runtimes/PROTOCOL.md`)
//! and one entry in [`LANGUAGES`].

use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::process::Command;

/// One supported language.
#[derive(Debug)]
pub struct Language {
    /// Name used in messages and cache paths.
    pub name: &'static str,
    /// The language's own name, for people: `Python`, `Node.js`.
    pub title: &'static str,
    /// Kubeless runtime IDs (the part of `FUNC_RUNTIME` before the version) this language serves.
    pub runtime_ids: &'static [&'static str],
    /// Suffix of the code file Kubeless writes for this runtime (`MOD_NAME` + suffix).
    pub file_suffix: &'static str,
    /// The dependency file next to the code.
    pub deps_file: &'static str,
    /// The worker script's file name and its source, embedded in the binary.
    pub worker: (&'static str, &'static str),
    /// Environment variable naming the interpreter, and the interpreter used when it is unset.
    pub interpreter: (&'static str, &'static str),
    /// Arguments before the worker script.
    pub interpreter_args: &'static [&'static str],
    /// How the dependency file is installed, and what the worker's module search path gets from
    /// an install.
    pub deps: Deps,
    /// How many parts of the interpreter's version a Kubeless runtime version names: 2 for
    /// Python (`python3.8`), 1 for Node.js (`nodejs14`).
    pub version_parts: usize,
    /// Whether code for another major version cannot run on the installed one (Python 2 on
    /// Python 3): such a runtime is [`Fit::Incompatible`] rather than [`Fit::Substituted`].
    pub same_major_only: bool,
    /// The arguments that make the interpreter (or toolchain) print its version: `--version`,
    /// `version` for Go.
    pub version_args: &'static [&'static str],
    /// For a compiled language, how its code becomes a worker program (`crate::build`); `None`
    /// for a language whose worker is a script run by the interpreter.
    pub build: Option<Build>,
    /// How long a new worker may take to connect and say `hello` ([`READY_TIMEOUT`] unless a
    /// plugin says otherwise).
    pub ready_timeout: Duration,
    /// The plugin directory this language was loaded from (`crate::plugin`); `None` for a
    /// language built into Kelp.
    pub plugin: Option<&'static Path>,
}

/// How a language's dependency file is installed.
#[derive(Debug)]
pub enum Deps {
    /// Kelp's own commands (pip, npm; a compiled language's build installs its own).
    Builtin(BuiltinDeps),
    /// A plugin's install command (`crate::plugin`): run in the install directory, never with a
    /// separate download step.
    Plugin(&'static crate::plugin::Install),
}

/// The dependency commands of a language built into Kelp.
#[derive(Debug)]
pub struct BuiltinDeps {
    /// Builds the command that installs the dependency file, already copied into the fresh
    /// directory `target`, into `target`: from the network, or offline from what
    /// [`BuiltinDeps::fetch`] put in `stage` (whose [`BuiltinDeps::staged`] entries are already
    /// copied into `target`).
    pub install: fn(interpreter: &str, target: &Path, stage: Option<&Path>) -> Command,
    /// Builds the command that downloads what the dependency file, already copied into the fresh
    /// directory `stage`, needs into `stage`, running none of the packages' code.
    pub fetch: fn(interpreter: &str, stage: &Path) -> Command,
    /// The entries of a stage copied into the install directory before an offline install.
    pub staged: &'static [&'static str],
    /// Why a fetch may refuse what a plain install accepts, appended to a failed fetch's error.
    pub fetch_note: &'static str,
    /// The module search path entries of an installed `target` directory.
    pub dep_paths: fn(target: &Path) -> Vec<PathBuf>,
}

impl Deps {
    /// The command that installs the dependency file, already copied into the fresh directory
    /// `target`, into `target` with `interpreter` (offline from `stage` for a built-in language).
    pub fn install(&self, interpreter: &str, target: &Path, stage: Option<&Path>) -> Command {
        match self {
            Deps::Builtin(deps) => (deps.install)(interpreter, target, stage),
            Deps::Plugin(install) => install.command(interpreter, target),
        }
    }

    /// The command that downloads what the dependency file in `stage` needs, running none of its
    /// code; `None` for a plugin, whose install is one step.
    pub fn fetch(&self, interpreter: &str, stage: &Path) -> Option<Command> {
        match self {
            Deps::Builtin(deps) => Some((deps.fetch)(interpreter, stage)),
            Deps::Plugin(_) => None,
        }
    }

    /// The entries of a stage copied into the install directory before an offline install.
    pub fn staged(&self) -> &'static [&'static str] {
        match self {
            Deps::Builtin(deps) => deps.staged,
            Deps::Plugin(_) => &[],
        }
    }

    /// Why a fetch may refuse what a plain install accepts (empty when nothing).
    pub fn fetch_note(&self) -> &'static str {
        match self {
            Deps::Builtin(deps) => deps.fetch_note,
            Deps::Plugin(_) => "",
        }
    }

    /// The module search path entries of an installed `target` directory.
    pub fn paths(&self, target: &Path) -> Vec<PathBuf> {
        match self {
            Deps::Builtin(deps) => (deps.dep_paths)(target),
            Deps::Plugin(install) => install.paths.iter().map(|p| target.join(p)).collect(),
        }
    }
}

/// How a compiled language turns a function's code into a worker program. A build runs once per
/// key (`crate::build`): the code, the dependency file, the toolchain's version, the wrapper, the
/// handler and the namespace.
#[derive(Debug)]
pub struct Build {
    /// Kelp's wrapper, written into the build directory before the commands run: (path relative
    /// to the build directory, content), embedded in the binary. Part of the build key.
    pub wrapper: &'static [(&'static str, &'static str)],
    /// The commands of one build, run one after the other (the first that fails ends it).
    pub commands: fn(job: &BuildJob<'_>) -> Vec<Command>,
    /// Commands run in the build directory once it is in place at its final path (`job.dir`),
    /// still under the build's lock and within its time limit: what must name that path, as a
    /// JVM's class-data archive does. They only add to a build that works without them: when
    /// one fails, the build stays as it is and the failure is logged as a warning.
    pub finish: Option<fn(job: &BuildJob<'_>) -> Vec<Command>>,
    /// The command that starts one worker of the finished build in `dir`; the front adds
    /// `KELP_WORKER_SOCKET` and its own standard streams.
    pub worker: fn(dir: &Path) -> Command,
    /// The function as a library the front can load into its own process (`KELP_IN_PROCESS=1`,
    /// `crate::native`), a file of the build directory; `None` when the language has none.
    pub library: Option<&'static str>,
}

/// What one build of a compiled language is made from.
#[derive(Debug)]
pub struct BuildJob<'a> {
    /// The toolchain's command (what [`Language::interpreter`] names: `go`, `javac`, `cargo`).
    pub toolchain: &'a str,
    /// The build directory. For [`Build::commands`], fresh: the wrapper's files, and under
    /// `function/` a copy of the code directory (the code file and the dependency file); what is
    /// left in it is the build. For [`Build::finish`], that build at its final path.
    pub dir: &'a Path,
    /// `MOD_NAME`: the code file's name without its suffix (the class name for Java).
    pub module: &'a str,
    /// `FUNC_HANDLER`: the function's name in that module.
    pub handler: &'a str,
    /// A directory the toolchain keeps its own caches in (downloaded modules, compiled
    /// dependencies), shared by the builds of one namespace and kept between them.
    pub cache: &'a Path,
}

/// How long a new worker may take to start its interpreter, connect and say `hello`, unless its
/// language says otherwise.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Every language built into this runtime; plugins (`crate::plugin`) add others.
pub static LANGUAGES: &[Language] = &[
    Language {
        name: "python",
        title: "Python",
        runtime_ids: &["python"],
        file_suffix: ".py",
        deps_file: "requirements.txt",
        worker: ("kelp_worker.py", include_str!("../../../runtimes/python/kelp_worker.py")),
        interpreter: ("KELP_PYTHON", "python3"),
        interpreter_args: &["-u"],
        deps: Deps::Builtin(BuiltinDeps {
            install: pip_install,
            fetch: pip_fetch,
            staged: &[],
            fetch_note: "with the installation phase's secrets, dependencies are fetched as wheels only: \
                a package published only as a source distribution (sdist) is refused, since building it \
                runs its code",
            dep_paths: |target| vec![target.to_path_buf()],
        }),
        version_parts: 2,
        same_major_only: true,
        version_args: &["--version"],
        build: None,
        ready_timeout: READY_TIMEOUT,
        plugin: None,
    },
    Language {
        name: "nodejs",
        title: "Node.js",
        runtime_ids: &["nodejs", "nodejs_distroless", "nodejsCE"],
        file_suffix: ".js",
        deps_file: "package.json",
        worker: ("kelp_worker.js", include_str!("../../../runtimes/nodejs/kelp_worker.js")),
        interpreter: ("KELP_NODE", "node"),
        interpreter_args: &[],
        deps: Deps::Builtin(BuiltinDeps {
            install: npm_install,
            fetch: npm_fetch,
            staged: &["node_modules"],
            fetch_note: "",
            dep_paths: |target| vec![target.join("node_modules")],
        }),
        version_parts: 1,
        same_major_only: false,
        version_args: &["--version"],
        build: None,
        ready_timeout: READY_TIMEOUT,
        plugin: None,
    },
    crate::compiled::go::LANGUAGE,
    crate::compiled::java::LANGUAGE,
    crate::compiled::rust::LANGUAGE,
];

/// pip's options of every command: quiet, no prompt, no version check.
const PIP_QUIET: [&str; 3] = ["--disable-pip-version-check", "--no-input", "--quiet"];

fn pip_install(python: &str, target: &Path, stage: Option<&Path>) -> Command {
    let mut cmd = Command::new(python);
    cmd.args(["-m", "pip", "install"]).args(PIP_QUIET);
    if let Some(stage) = stage {
        cmd.args(["--no-index", "--find-links"]).arg(stage);
    }
    cmd.args(["--target", ".", "-r", "requirements.txt"]).current_dir(target);
    cmd
}

/// `pip download` of wheels only: an sdist would need its `setup.py` run to be built.
fn pip_fetch(python: &str, stage: &Path) -> Command {
    let mut cmd = Command::new(python);
    cmd.args(["-m", "pip", "download"])
        .args(PIP_QUIET)
        .args(["--only-binary=:all:", "--dest", ".", "-r", "requirements.txt"])
        .current_dir(stage);
    cmd
}

/// npm, as `KELP_NPM` names it.
fn npm() -> Command {
    Command::new(std::env::var("KELP_NPM").unwrap_or_else(|_| "npm".into()))
}

/// npm's options of an install from `package.json`.
const NPM_INSTALL: [&str; 6] =
    ["install", "--omit=dev", "--no-audit", "--no-fund", "--no-package-lock", "--loglevel=error"];

fn npm_install(_node: &str, target: &Path, stage: Option<&Path>) -> Command {
    let mut cmd = npm();
    match stage {
        // The stage's node_modules is in place: run the packages' install scripts, offline.
        Some(_) => cmd.args(["rebuild", "--offline", "--loglevel=error"]),
        // npm installs what the package.json in its working directory lists, into ./node_modules.
        None => cmd.args(NPM_INSTALL),
    };
    cmd.current_dir(target);
    cmd
}

/// `npm install` without lifecycle scripts; local `file:` packages are copied rather than
/// linked, so the stage holds everything the install needs.
fn npm_fetch(_node: &str, stage: &Path) -> Command {
    let mut cmd = npm();
    cmd.args(NPM_INSTALL).args(["--ignore-scripts", "--install-links"]).current_dir(stage);
    cmd
}

/// What every compiled language has in common, for its entry's other fields
/// (`Language { name: "go", .., ..COMPILED }`): no worker script (its worker is its build's
/// program), no install or fetch of its own (its dependency file is its build's), no module search
/// path, and any major version served by the installed toolchain as another version of it.
pub const COMPILED: Language = Language {
    name: "",
    title: "",
    runtime_ids: &[],
    file_suffix: "",
    deps_file: "",
    worker: ("", ""),
    interpreter: ("", ""),
    interpreter_args: &[],
    deps: Deps::Builtin(BuiltinDeps {
        install: installed_by_build,
        fetch: fetched_by_build,
        staged: &[],
        fetch_note: "",
        dep_paths: |_| Vec::new(),
    }),
    version_parts: 2,
    same_major_only: false,
    version_args: &["--version"],
    build: None,
    ready_timeout: READY_TIMEOUT,
    plugin: None,
};

/// The `install` of a compiled language: never run, as its dependency file belongs to its build
/// (`crate::build`), which installs what it lists.
pub fn installed_by_build(_toolchain: &str, _target: &Path, _stage: Option<&Path>) -> Command {
    Command::new("true")
}

/// The `fetch` of a compiled language: never run (see [`installed_by_build`]).
pub fn fetched_by_build(_toolchain: &str, _stage: &Path) -> Command {
    Command::new("true")
}

/// A Kubeless runtime string split into its ID and version: `python3.8` is `("python", "3.8")`.
fn split_runtime(runtime: &str) -> (&str, &str) {
    let id = runtime.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    (id, &runtime[id.len()..])
}

impl Language {
    /// Finds the built-in language of a Kubeless runtime string such as `python3.8` or `nodejs14`.
    pub fn for_runtime(runtime: &str) -> Option<&'static Language> {
        let (id, _) = split_runtime(runtime);
        LANGUAGES.iter().find(|l| l.runtime_ids.contains(&id))
    }

    /// Finds the language of a Kubeless runtime string: a built-in one, else the plugin of its
    /// ID (`crate::plugin::find`); `Ok(None)` when neither serves it, an error when the plugin
    /// that would does not load.
    pub fn find(runtime: &str) -> Result<Option<&'static Language>, crate::plugin::PluginError> {
        if let Some(language) = Language::for_runtime(runtime) {
            return Ok(Some(language));
        }
        Ok(crate::plugin::find(split_runtime(runtime).0)?.map(|p| p.language))
    }

    /// Finds the language whose code file for `module` exists in `code_dir`: a built-in one, or
    /// a plugin runtime's (those that load).
    pub fn for_code(code_dir: &Path, module: &str) -> Option<&'static Language> {
        let plugins = || crate::plugin::all().into_iter().flatten().map(|p| p.language);
        LANGUAGES.iter().chain(plugins()).find(|l| code_dir.join(format!("{module}{}", l.file_suffix)).is_file())
    }

    /// The interpreter to run: the value of the language's environment variable, or its default.
    pub fn interpreter(&self) -> String {
        std::env::var(self.interpreter.0).unwrap_or_else(|_| self.interpreter.1.to_string())
    }

    /// A comma-separated list of the runtime IDs of every built-in language and of every plugin
    /// that loads, for error messages.
    pub fn known_ids() -> String {
        let plugins = crate::plugin::all().into_iter().flatten().map(|p| p.language);
        let languages = LANGUAGES.iter().chain(plugins);
        languages.flat_map(|l| l.runtime_ids).copied().collect::<Vec<_>>().join(", ")
    }
}

/// How long `<interpreter> --version` may take.
const VERSION_TIMEOUT: Duration = Duration::from_secs(5);

/// The interpreter of a language installed on this machine: what [`Language::interpreter`]
/// names, and the version it reports.
#[derive(Clone, Debug)]
pub struct Interpreter {
    /// Its language.
    pub language: &'static Language,
    /// The command (`python3`, or what `KELP_PYTHON` says).
    pub command: String,
    /// Its version: `3.11.7`, `20.20.2`.
    pub version: String,
}

/// How an [`Interpreter`] serves a runtime string of its language.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fit {
    /// The runtime names the interpreter's version (`python3.11` or `python3` on 3.11.7).
    Exact,
    /// The runtime names another version, which the interpreter runs (`python3.8` or
    /// `nodejs14` on Python 3.11.7 and Node.js 20).
    Substituted,
    /// Code for the runtime's version cannot run on the interpreter (`python2.7` on Python 3).
    Incompatible,
}

impl Interpreter {
    /// Runs `<interpreter> --version` (the language's `version_args`) for `language`: `None` when it does not run or says no
    /// version.
    pub async fn find(language: &'static Language) -> Option<Interpreter> {
        let command = language.interpreter();
        let mut probe = Command::new(&command);
        probe.args(language.version_args).kill_on_drop(true);
        let output = tokio::time::timeout(VERSION_TIMEOUT, probe.output()).await.ok()?.ok()?;
        let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        Interpreter::from_version_output(language, command, &text)
    }

    /// The interpreter `command` of `language` whose `--version` printed `output`
    /// (`Python 3.11.7`, `v20.20.2`, `go version go1.26.8 linux/amd64`): the first word that is a
    /// version once its leading letters are dropped.
    pub fn from_version_output(language: &'static Language, command: String, output: &str) -> Option<Interpreter> {
        let words = output.split_whitespace().map(|w| w.trim_start_matches(|c: char| c.is_ascii_alphabetic()));
        let version = words.into_iter().find(|w| {
            w.split('.').next().is_some_and(|major| !major.is_empty() && major.bytes().all(|b| b.is_ascii_digit()))
        })?;
        Some(Interpreter { language, command, version: version.to_owned() })
    }

    /// Its Kubeless runtime string: `python3.11`, `nodejs20`.
    pub fn runtime(&self) -> String {
        let parts: Vec<&str> = self.version.split('.').take(self.language.version_parts).collect();
        format!("{}{}", self.language.runtime_ids[0], parts.join("."))
    }

    /// How it serves `runtime`, a runtime string of its language.
    pub fn fit(&self, runtime: &str) -> Fit {
        let (_, wanted) = split_runtime(runtime);
        let wanted: Vec<&str> = wanted.split('.').filter(|p| !p.is_empty()).collect();
        let installed: Vec<&str> = self.version.split('.').collect();
        if wanted.first().is_some_and(|major| Some(major) != installed.first()) && self.language.same_major_only {
            Fit::Incompatible
        } else if installed.starts_with(&wanted) {
            Fit::Exact
        } else {
            Fit::Substituted
        }
    }

    /// `Python 3.11.7 (python3)`.
    pub fn describe(&self) -> String {
        format!("{} {} ({})", self.language.title, self.version, self.command)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_strings_map_to_languages() {
        for (runtime, name) in [
            ("python3.8", "python"),
            ("python3", "python"),
            ("nodejs14", "nodejs"),
            ("nodejs_distroless8", "nodejs"),
            ("nodejsCE8", "nodejs"),
            ("go1.14", "go"),
            ("go1.26", "go"),
        ] {
            assert_eq!(Language::for_runtime(runtime).map(|l| l.name), Some(name), "{runtime}");
        }
        assert!(Language::for_runtime("ruby2.6").is_none());
    }

    fn interpreter(language: &str, output: &str) -> Interpreter {
        let language = LANGUAGES.iter().find(|l| l.name == language).unwrap();
        Interpreter::from_version_output(language, language.interpreter.1.to_owned(), output).unwrap()
    }

    #[test]
    fn interpreter_versions_and_runtimes() {
        let python = interpreter("python", "Python 3.11.7\n");
        assert_eq!((python.version.as_str(), python.runtime()), ("3.11.7", "python3.11".to_owned()));
        assert_eq!(python.describe(), "Python 3.11.7 (python3)");
        let node = interpreter("nodejs", "v20.20.2\n");
        assert_eq!((node.version.as_str(), node.runtime()), ("20.20.2", "nodejs20".to_owned()));
        let python = LANGUAGES.iter().find(|l| l.name == "python").unwrap();
        assert!(Interpreter::from_version_output(python, "python3".into(), "command not found").is_none());
    }

    #[test]
    fn runtimes_fit_the_installed_interpreter() {
        let python = interpreter("python", "Python 3.11.7");
        for (runtime, fit) in [
            ("python3.11", Fit::Exact),
            ("python3", Fit::Exact),
            ("python3.8", Fit::Substituted),
            ("python3.1", Fit::Substituted),
            ("python2.7", Fit::Incompatible),
        ] {
            assert_eq!(python.fit(runtime), fit, "{runtime}");
        }
        let go = interpreter("go", "go version go1.26.8 linux/amd64\n");
        assert_eq!((go.version.as_str(), go.runtime()), ("1.26.8", "go1.26".to_owned()));
        for (runtime, fit) in [("go1.26", Fit::Exact), ("go1.14", Fit::Substituted), ("go1.10", Fit::Substituted)] {
            assert_eq!(go.fit(runtime), fit, "{runtime}");
        }
        let node = interpreter("nodejs", "v20.20.2");
        for (runtime, fit) in
            [("nodejs20", Fit::Exact), ("nodejs14", Fit::Substituted), ("nodejsCE8", Fit::Substituted)]
        {
            assert_eq!(node.fit(runtime), fit, "{runtime}");
        }
    }
}
