//! Which interpreter runs a Function's runtime on this machine.
//!
//! Kubeless users name runtimes by language and version (`python3.8`, `nodejs14`); `kelp up`
//! runs each language on the one interpreter installed (`python3`, `node`, or what `KELP_PYTHON`
//! and `KELP_NODE` name). A runtime of another version than the interpreter's runs on it, and
//! says so: a warning when the Function is written ([`RuntimeAdmission`]) and the
//! `RuntimeSubstituted` condition of its status. A runtime whose language Kelp does not have, or
//! whose interpreter is missing, or whose code cannot run on the installed version (Python 2), is
//! refused when written.

use kelp_api::ValidationErrors;
use kelp_apiserver::{Admission, Kind};
use kelp_runtime::language::{Fit, Interpreter, LANGUAGES, Language};
use serde_json::Value;

/// The status condition saying which interpreter runs a Function: `True` when it is not the
/// version the runtime names.
pub const RUNTIME_SUBSTITUTED_CONDITION: &str = "RuntimeSubstituted";

/// How a Function's runtime runs here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeFit {
    /// Whether the interpreter is another version than the runtime names.
    pub substituted: bool,
    /// Which interpreter runs it, for people: `runtime python3.8 runs on Python 3.11.7 (python3)`.
    pub message: String,
}

/// The interpreters of this machine, found once.
#[derive(Clone, Debug, Default)]
pub struct Interpreters {
    found: Vec<Interpreter>,
}

impl Interpreters {
    /// Asks every language's interpreter for its version: the built-in languages' and the
    /// plugin runtimes' (`kelp_runtime::plugin`; a plugin that does not load is logged and left
    /// out).
    pub async fn find() -> Self {
        let mut found = Vec::new();
        for language in LANGUAGES.iter().chain(plugin_languages()) {
            found.extend(Interpreter::find(language).await);
        }
        Interpreters { found }
    }

    /// The interpreters found.
    pub fn found(&self) -> &[Interpreter] {
        &self.found
    }

    /// How `runtime` runs here, or why it cannot (a reason to put after the runtime's name:
    /// `needs Node.js, and "node" does not run on this machine ...`).
    pub fn check(&self, runtime: &str) -> Result<RuntimeFit, String> {
        let Some(language) = Language::find(runtime).map_err(|e| e.to_string())? else {
            return Err(format!(
                "not a runtime Kelp has; its runtime IDs are {}, followed by a version (python3.12, nodejs20, ...)",
                Language::known_ids()
            ));
        };
        let Some(interpreter) = self.found.iter().find(|i| std::ptr::eq(i.language, language)) else {
            return Err(format!(
                "needs {title}, and {command:?} does not run on this machine (install {title}, or name its \
                 interpreter in {variable})",
                title = language.title,
                command = language.interpreter(),
                variable = language.interpreter.0,
            ));
        };
        let described = interpreter.describe();
        match interpreter.fit(runtime) {
            Fit::Exact => {
                Ok(RuntimeFit { substituted: false, message: format!("runtime {runtime} runs on {described}") })
            }
            Fit::Substituted => Ok(RuntimeFit {
                substituted: true,
                message: format!("runtime {runtime} runs on {described}, the {} installed here", language.title),
            }),
            Fit::Incompatible => Err(format!(
                "cannot run on {described}, the {title} installed here: code for another major version of \
                 {title} does not run on it",
                title = language.title
            )),
        }
    }
}

/// The languages of the plugin runtimes that load, logging those that do not.
pub fn plugin_languages() -> Vec<&'static Language> {
    let mut languages = Vec::new();
    for plugin in kelp_runtime::plugin::all() {
        match plugin {
            Ok(plugin) => languages.push(plugin.language),
            Err(e) => tracing::warn!("{e}"),
        }
    }
    languages
}

/// The runtime of a Function object that names one (a Function with a custom image has none).
pub fn runtime_of(function: &Value) -> Option<&str> {
    function.pointer("/spec/runtime").and_then(Value::as_str).filter(|r| !r.is_empty())
}

/// Refuses Functions whose runtime cannot run here and warns about those that run on another
/// version of their language, when they are written.
#[derive(Clone, Debug)]
pub struct RuntimeAdmission(pub Interpreters);

impl Admission for RuntimeAdmission {
    fn admit(&self, kind: &Kind, object: &Value) -> Result<Vec<String>, ValidationErrors> {
        let Some(runtime) = runtime_of(object).filter(|_| kind.group == "kubeless.io" && kind.kind == "Function")
        else {
            return Ok(Vec::new());
        };
        match self.0.check(runtime) {
            Ok(fit) if fit.substituted => Ok(vec![fit.message]),
            Ok(_) => Ok(Vec::new()),
            Err(reason) => {
                let mut errors = ValidationErrors::default();
                errors.not_supported("spec.runtime", format!("{runtime:?}: {reason}"));
                Err(errors)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn python_only() -> Interpreters {
        let python = LANGUAGES.iter().find(|l| l.name == "python").unwrap();
        Interpreters {
            found: vec![Interpreter::from_version_output(python, "python3".into(), "Python 3.11.7").unwrap()],
        }
    }

    #[test]
    fn runtimes_run_on_the_installed_interpreter_or_are_refused() {
        let here = python_only();
        assert_eq!(
            here.check("python3.11"),
            Ok(RuntimeFit { substituted: false, message: "runtime python3.11 runs on Python 3.11.7 (python3)".into() })
        );
        let old = here.check("python3.8").unwrap();
        assert!(old.substituted);
        assert_eq!(old.message, "runtime python3.8 runs on Python 3.11.7 (python3), the Python installed here");
        let two = here.check("python2.7").unwrap_err();
        assert!(two.starts_with("cannot run on Python 3.11.7 (python3), the Python installed here"), "{two}");
        let ruby = here.check("ruby2.6").unwrap_err();
        assert!(ruby.starts_with("not a runtime Kelp has; its runtime IDs are python, nodejs"), "{ruby}");
        let node = here.check("nodejs14").unwrap_err();
        assert!(node.starts_with("needs Node.js, and \"node\" does not run on this machine"), "{node}");
    }

    #[test]
    fn admission_looks_at_function_runtimes_only() {
        let admission = RuntimeAdmission(python_only());
        let kinds = kelp_apiserver::Kinds::new();
        let functions = kinds.find("kubeless.io", "v1beta1", "functions").unwrap();
        let function = |runtime: &str| serde_json::json!({"spec": {"runtime": runtime}});
        assert_eq!(admission.admit(functions, &function("python3.11")).unwrap(), Vec::<String>::new());
        assert_eq!(admission.admit(functions, &function("python3.8")).unwrap().len(), 1);
        let refused = admission.admit(functions, &function("cobol85")).unwrap_err();
        assert_eq!(refused.errors()[0].field, "spec.runtime");
        assert!(refused.errors()[0].reason.starts_with("\"cobol85\": not a runtime Kelp has"), "{refused}");
        // A language Kelp has whose toolchain is not installed here: it says which.
        let go = admission.admit(functions, &function("go1.14")).unwrap_err();
        assert!(go.errors()[0].reason.starts_with("\"go1.14\": needs Go, and"), "{go}");
        let image = serde_json::json!({"spec": {"deployment": {}}});
        assert!(admission.admit(functions, &image).unwrap().is_empty());
        let triggers = kinds.find("kubeless.io", "v1beta1", "cronjobtriggers").unwrap();
        assert!(admission.admit(triggers, &function("cobol85")).unwrap().is_empty());
    }
}
