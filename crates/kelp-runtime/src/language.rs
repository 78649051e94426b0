//! The languages Kelp runs, and how to start each one's worker and install its dependencies.
//!
//! Adding a language is one worker script under `runtimes/` (speaking `runtimes/PROTOCOL.md`)
//! and one entry in [`LANGUAGES`].

use std::path::{Path, PathBuf};
use tokio::process::Command;

/// One supported language.
#[derive(Debug)]
pub struct Language {
    /// Name used in messages and cache paths.
    pub name: &'static str,
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
    /// Builds the command that installs the dependency file, already copied into the fresh
    /// directory `target`, into `target`.
    pub install: fn(interpreter: &str, target: &Path) -> Command,
    /// The module search path entries of an installed `target` directory.
    pub dep_paths: fn(target: &Path) -> Vec<PathBuf>,
}

/// Every language this runtime can run.
pub static LANGUAGES: &[Language] = &[
    Language {
        name: "python",
        runtime_ids: &["python"],
        file_suffix: ".py",
        deps_file: "requirements.txt",
        worker: ("kelp_worker.py", include_str!("../../../runtimes/python/kelp_worker.py")),
        interpreter: ("KELP_PYTHON", "python3"),
        interpreter_args: &["-u"],
        install: pip_install,
        dep_paths: |target| vec![target.to_path_buf()],
    },
    Language {
        name: "nodejs",
        runtime_ids: &["nodejs", "nodejs_distroless", "nodejsCE"],
        file_suffix: ".js",
        deps_file: "package.json",
        worker: ("kelp_worker.js", include_str!("../../../runtimes/nodejs/kelp_worker.js")),
        interpreter: ("KELP_NODE", "node"),
        interpreter_args: &[],
        install: npm_install,
        dep_paths: |target| vec![target.join("node_modules")],
    },
];

fn pip_install(python: &str, target: &Path) -> Command {
    let mut cmd = Command::new(python);
    cmd.args(["-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--quiet"])
        .args(["--target", ".", "-r", "requirements.txt"])
        .current_dir(target);
    cmd
}

fn npm_install(_node: &str, target: &Path) -> Command {
    let npm = std::env::var("KELP_NPM").unwrap_or_else(|_| "npm".into());
    let mut cmd = Command::new(npm);
    // npm installs what the package.json in its working directory lists, into ./node_modules.
    cmd.args(["install", "--omit=dev", "--no-audit", "--no-fund", "--no-package-lock", "--loglevel=error"])
        .current_dir(target);
    cmd
}

impl Language {
    /// Finds the language of a Kubeless runtime string such as `python3.8` or `nodejs14`.
    pub fn for_runtime(runtime: &str) -> Option<&'static Language> {
        let id = runtime.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
        LANGUAGES.iter().find(|l| l.runtime_ids.contains(&id))
    }

    /// Finds the language whose code file for `module` exists in `code_dir`.
    pub fn for_code(code_dir: &Path, module: &str) -> Option<&'static Language> {
        LANGUAGES.iter().find(|l| code_dir.join(format!("{module}{}", l.file_suffix)).is_file())
    }

    /// The interpreter to run: the value of the language's environment variable, or its default.
    pub fn interpreter(&self) -> String {
        std::env::var(self.interpreter.0).unwrap_or_else(|_| self.interpreter.1.to_string())
    }

    /// A comma-separated list of the runtime IDs of every language, for error messages.
    pub fn known_ids() -> String {
        LANGUAGES.iter().flat_map(|l| l.runtime_ids).copied().collect::<Vec<_>>().join(", ")
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
        ] {
            assert_eq!(Language::for_runtime(runtime).map(|l| l.name), Some(name), "{runtime}");
        }
        assert!(Language::for_runtime("ruby2.6").is_none());
        assert!(Language::for_runtime("go1.14").is_none());
    }
}
