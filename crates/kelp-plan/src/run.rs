//! What runs a function, described once for Kelp's two executors: the steps before it serves
//! (installing its dependency file, building a compiled language's code), which the cluster's
//! controller applies as init containers ([`function_children`](crate::function_children)) and
//! `kelp up` runs as processes beside its platform; and the Kubeless environment of the process
//! that serves it. Both come from the function and the `runtime-images` of `kubeless-config`, so
//! a runtime whose phases run Kelp's commands gets the same steps on both backends.

use kelp_api::{Function, FunctionSpec, Handler};

use crate::config::Config;
use crate::error::PlanError;
use crate::images::ImageRegistry;
use crate::runtimes::{
    BUILD_COMMAND, COMPILATION_PHASE, INSTALL_DEPS_COMMAND, INSTALLATION_PHASE, PhaseImage, Runtime,
};

/// One of Kelp's steps before a function serves: `kelp-runtime <args>` in its runtime's image.
/// Ordered as they run: install, then build.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Step {
    /// `kelp-runtime --install-deps`: the dependency file, installed once per content.
    Install,
    /// `kelp-runtime --build`: a compiled language's function, built once per content.
    Build,
}

impl Step {
    /// The arguments of `kelp-runtime` that run it.
    pub fn args(self) -> &'static [&'static str] {
        match self {
            Step::Install => &["--install-deps"],
            Step::Build => &["--build"],
        }
    }

    /// Its name: the init container's, and what logs and Events say.
    pub fn name(self) -> &'static str {
        match self {
            Step::Install => "install",
            Step::Build => "build",
        }
    }

    /// The status reason while it runs: `Installing`, `Building`.
    pub fn running_reason(self) -> &'static str {
        match self {
            Step::Install => "Installing",
            Step::Build => "Building",
        }
    }

    /// The status and Event reason when it failed: `InstallFailed`, `BuildFailed`.
    pub fn failed_reason(self) -> &'static str {
        match self {
            Step::Install => "InstallFailed",
            Step::Build => "BuildFailed",
        }
    }

    /// The Event reason when it succeeded: `Installed`, `Built`.
    pub fn done_reason(self) -> &'static str {
        match self {
            Step::Install => "Installed",
            Step::Build => "Built",
        }
    }

    /// The step a runtime phase runs, when it runs Kelp's command (Kubeless's own commands, such
    /// as `/compile-function.sh`, are not Kelp's steps).
    pub(crate) fn of_phase(phase: &PhaseImage) -> Option<Step> {
        match (phase.phase.as_str(), phase.command.trim()) {
            (INSTALLATION_PHASE, INSTALL_DEPS_COMMAND) => Some(Step::Install),
            (COMPILATION_PHASE, BUILD_COMMAND) => Some(Step::Build),
            _ => None,
        }
    }
}

/// Whether the function has a dependency file to install: `spec.deps`, or one in its archive
/// (`+deps`).
pub(crate) fn has_deps(function: &Function) -> Result<bool, PlanError> {
    let deps = function.spec.deps.as_deref().unwrap_or_default();
    let content_type =
        function.spec.parsed_content_type().map_err(|e| PlanError::invalid("spec.function-content-type", e))?;
    Ok(!deps.is_empty() || content_type.deps)
}

/// The steps `function` needs before it serves, in order, from its runtime's phases in
/// `config`: the install of its dependency file when it has one and the runtime's
/// `installation` phase runs Kelp's command, then the build when its `compilation` phase does.
/// A runtime version `config` does not list (one `kelp up` serves on another interpreter) takes
/// the phases of its ID's first version, as every version of a Kelp runtime has the same; an ID
/// `config` does not know (a `kubeless-config` written before Kelp had that language) those of
/// Kelp's default `runtime-images`.
pub fn steps(function: &Function, config: &Config) -> Result<Vec<Step>, PlanError> {
    let runtime = function.spec.runtime.as_deref().unwrap_or_default();
    let phases = phases_of(&config.runtimes, runtime)
        .or_else(|| phases_of(&crate::runtimes::defaults(&ImageRegistry::default()), runtime))
        .unwrap_or_default();
    let deps = has_deps(function)?;
    Ok(phases
        .iter()
        .filter_map(Step::of_phase)
        .filter(|step| *step != Step::Install || deps)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect())
}

/// The phases of `runtime` (`<ID><version>`) in `runtimes`: its version's, else its ID's first
/// version's; `None` when no runtime has its ID.
fn phases_of(runtimes: &[Runtime], runtime: &str) -> Option<Vec<PhaseImage>> {
    if let Ok(resolved) = crate::runtimes::resolve(runtimes, runtime) {
        return Some(resolved.version.images.clone());
    }
    let name = kelp_api::RuntimeName::parse(runtime).ok()?;
    let first = runtimes.iter().filter(|r| r.id == name.id).find_map(|r| r.versions.first())?;
    Some(first.images.clone())
}

/// The Kubeless environment of the process serving `handler` of `spec` with the memory limit
/// `memory_limit` (a quantity, `0` for none): `FUNC_HANDLER`, `MOD_NAME`, `FUNC_TIMEOUT`,
/// `FUNC_RUNTIME`, `FUNC_MEMORY_LIMIT`, the same on a cluster and on `kelp up`.
pub fn function_env(
    spec: &FunctionSpec,
    handler: Handler<'_>,
    memory_limit: &str,
) -> Result<Vec<(&'static str, String)>, PlanError> {
    let timeout = spec.timeout_seconds().map_err(|e| PlanError::invalid("spec.timeout", e))?;
    Ok(vec![
        ("FUNC_HANDLER", handler.function.to_owned()),
        ("MOD_NAME", handler.module.to_owned()),
        ("FUNC_TIMEOUT", timeout.to_string()),
        ("FUNC_RUNTIME", spec.runtime.clone().unwrap_or_default()),
        ("FUNC_MEMORY_LIMIT", memory_limit.to_owned()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn function(runtime: &str, deps: &str) -> Function {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "kubeless.io/v1beta1", "kind": "Function",
            "metadata": {"name": "f", "namespace": "default"},
            "spec": {"handler": "f.run", "runtime": runtime, "function": "x", "deps": deps},
        }))
        .unwrap()
    }

    #[test]
    fn steps_come_from_the_runtime_phases() {
        let config = Config::default();
        let steps = |runtime, deps| steps(&function(runtime, deps), &config).unwrap();
        assert_eq!(steps("python3.11", ""), vec![]);
        assert_eq!(steps("python3.11", "six\n"), vec![Step::Install]);
        assert_eq!(steps("go1.14", ""), vec![Step::Build]);
        assert_eq!(steps("go1.14", "module function\n"), vec![Step::Build], "go.mod is the build's");
        // A version only kelp up's toolchain serves takes its ID's phases.
        assert_eq!(steps("go1.26", ""), vec![Step::Build]);
        assert_eq!(steps("java21", ""), vec![Step::Build]);
        assert_eq!(steps("cobol85", "x"), vec![]);
        // A configuration written before Kelp had Go still builds Go.
        let mut data = Config::default_data();
        data.insert("runtime-images".into(), r#"[{"ID": "python", "versions": []}]"#.into());
        let old = Config::from_data(&data).unwrap();
        assert_eq!(super::steps(&function("go1.14", ""), &old).unwrap(), vec![Step::Build]);
    }

    #[test]
    fn kubeless_commands_are_not_kelp_steps() {
        let phase = |phase: &str, command: &str| PhaseImage {
            phase: phase.into(),
            image: "i".into(),
            command: command.into(),
            env: Default::default(),
            secrets: Vec::new(),
        };
        assert_eq!(Step::of_phase(&phase(COMPILATION_PHASE, "/compile-function.sh")), None);
        assert_eq!(Step::of_phase(&phase(COMPILATION_PHASE, " kelp-runtime --build ")), Some(Step::Build));
        assert_eq!(Step::of_phase(&phase(INSTALLATION_PHASE, BUILD_COMMAND)), None);
        assert_eq!(Step::Build.args(), ["--build"]);
    }

    #[test]
    fn the_function_env_is_kubeless_s() {
        let f = function("go1.14", "");
        let handler = Handler::parse("hello.Foo").unwrap();
        let env = function_env(&f.spec, handler, "128Mi").unwrap();
        assert_eq!(
            env,
            vec![
                ("FUNC_HANDLER", "Foo".to_owned()),
                ("MOD_NAME", "hello".to_owned()),
                ("FUNC_TIMEOUT", "180".to_owned()),
                ("FUNC_RUNTIME", "go1.14".to_owned()),
                ("FUNC_MEMORY_LIMIT", "128Mi".to_owned()),
            ]
        );
    }
}
