//! The `runtime-images` key of `kubeless-config`: Kubeless's JSON list of runtimes, their
//! versions and the image of each phase, and Kelp's default list.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Probe;
use kelp_api::RuntimeName;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::PlanError;
use crate::images::ImageRegistry;

/// The config key.
pub(crate) const KEY: &str = "runtime-images";

/// The phase whose image serves the function.
pub(crate) const RUNTIME_PHASE: &str = "runtime";
/// The phase whose image installs the dependency file.
pub(crate) const INSTALLATION_PHASE: &str = "installation";
/// The phase whose image compiles the function.
pub(crate) const COMPILATION_PHASE: &str = "compilation";

/// The command of Kelp's `installation` phase: `kelp-runtime` installs the dependency file of
/// the code directory into its dependency cache and exits.
pub(crate) const INSTALL_DEPS_COMMAND: &str = "kelp-runtime --install-deps";

/// The command of Kelp's `compilation` phase: `kelp-runtime` builds a compiled language's
/// function into its dependency cache (once per content) and exits.
pub(crate) const BUILD_COMMAND: &str = "kelp-runtime --build";

/// One runtime: `{ID, depName, fileNameSuffix, livenessProbeInfo?, versions}`.
///
/// Deserialized from JSON whose keys were lower-cased first ([`parse`]), since Kubeless read
/// them with Go's case-insensitive field matching; serialized with Kubeless's spelling.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Runtime {
    #[serde(rename(serialize = "ID", deserialize = "id"))]
    pub(crate) id: String,
    #[serde(rename(serialize = "depName", deserialize = "depname"), default)]
    pub(crate) dep_name: String,
    #[serde(rename(serialize = "fileNameSuffix", deserialize = "filenamesuffix"), default)]
    pub(crate) file_name_suffix: String,
    #[serde(
        rename(serialize = "livenessProbeInfo", deserialize = "livenessprobeinfo"),
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) liveness_probe_info: Option<Probe>,
    #[serde(default)]
    pub(crate) versions: Vec<Version>,
}

/// One version of a runtime: `{name, version, imagePullSecrets?, images}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Version {
    #[serde(default)]
    pub(crate) name: String,
    pub(crate) version: String,
    #[serde(
        rename(serialize = "imagePullSecrets", deserialize = "imagepullsecrets"),
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub(crate) image_pull_secrets: Vec<ImageSecret>,
    #[serde(default)]
    pub(crate) images: Vec<PhaseImage>,
}

/// `{imageSecret}`: a Secret to pull the version's images with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct ImageSecret {
    #[serde(rename(serialize = "imageSecret", deserialize = "imagesecret"))]
    pub(crate) image_secret: String,
}

/// The image of one phase: `{phase, image, command?, env?, secrets?}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct PhaseImage {
    pub(crate) phase: String,
    pub(crate) image: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) command: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) secrets: Vec<PhaseSecret>,
}

/// `{name}`: a Secret mounted into a phase's init container.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct PhaseSecret {
    pub(crate) name: String,
}

/// A function's runtime, resolved: the runtime and its version.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Resolved<'a> {
    pub(crate) runtime: &'a Runtime,
    pub(crate) version: &'a Version,
}

impl<'a> Resolved<'a> {
    /// The image of `phase`, if the version has one.
    pub(crate) fn phase(&self, phase: &str) -> Option<&'a PhaseImage> {
        self.version.images.iter().find(|image| image.phase == phase)
    }
}

/// Parses a `runtime-images` value: JSON (or YAML, which Kubeless's parser also took), keys
/// matched case-insensitively as Kubeless did.
pub(crate) fn parse(text: &str) -> Result<Vec<Runtime>, PlanError> {
    let mut value: Value = serde_json::from_str(text)
        .or_else(|json_error| serde_saphyr::from_str(text).map_err(|_| json_error))
        .map_err(|e| PlanError::config(KEY, format!("not JSON: {e}")))?;
    lowercase_keys(&mut value);
    serde_json::from_value(value).map_err(|e| {
        PlanError::config(KEY, format!("not a list of {{ID, depName, fileNameSuffix, versions: [...]}}: {e}"))
    })
}

/// Lower-cases the keys of every object, except inside `env` maps (variable names) and
/// `livenessProbeInfo` (a Kubernetes Probe, read with its own spelling).
fn lowercase_keys(value: &mut Value) {
    match value {
        Value::Object(map) => {
            *map = std::mem::take(map)
                .into_iter()
                .map(|(key, mut value)| {
                    let key = key.to_ascii_lowercase();
                    if key != "env" && key != "livenessprobeinfo" {
                        lowercase_keys(&mut value);
                    }
                    (key, value)
                })
                .collect();
        }
        Value::Array(items) => items.iter_mut().for_each(lowercase_keys),
        _ => {}
    }
}

/// Finds a function's runtime (`<ID><version>`) in `runtimes`.
pub(crate) fn resolve<'a>(runtimes: &'a [Runtime], runtime: &str) -> Result<Resolved<'a>, PlanError> {
    let unknown = || PlanError::UnknownRuntime { runtime: runtime.to_owned(), available: names(runtimes) };
    let name = RuntimeName::parse(runtime).map_err(|_| unknown())?;
    runtimes
        .iter()
        .filter(|r| r.id == name.id)
        .find_map(|r| {
            r.versions.iter().find(|v| v.version == name.version).map(|version| Resolved { runtime: r, version })
        })
        .ok_or_else(unknown)
}

/// Every `<ID><version>` of `runtimes`, in their order.
pub(crate) fn names(runtimes: &[Runtime]) -> Vec<String> {
    runtimes.iter().flat_map(|r| r.versions.iter().map(move |v| format!("{}{}", r.id, v.version))).collect()
}

/// Kelp's runtimes under Kubeless's IDs: Python 3 (`python3`, `python3.6` … `python3.12`) and
/// Node.js (`nodejs10` … `nodejs22`), whose dependencies `kelp-runtime --install-deps` installs,
/// and the compiled languages, which `kelp-runtime --build` builds: Go (`go1.10` … `go1.14` as
/// Kubeless listed them, and `go1.19`, the runtime image's), Java (`java1.8`, `java11`,
/// `java17`) and Rust (`rust1.63`, the runtime image's, and `rust1.95`, the toolchain Kelp is built with). Every version is served
/// by the one image of its language in `registry`, tagged with this crate's version.
pub(crate) fn defaults(registry: &ImageRegistry) -> Vec<Runtime> {
    let python = std::iter::once("3".to_owned()).chain((6..=12).map(|minor| format!("3.{minor}")));
    let go = (10..=14).chain([19]).map(|minor| format!("1.{minor}"));
    let rust = ["1.63", "1.95"].map(String::from);
    vec![
        kelp_runtime(registry, "python", ("requirements.txt", ".py"), "python", python.collect(), Steps::Install),
        kelp_runtime(
            registry,
            "nodejs",
            ("package.json", ".js"),
            "node",
            (10..=22).map(|major| major.to_string()).collect(),
            Steps::Install,
        ),
        kelp_runtime(registry, "go", ("go.mod", ".go"), "go", go.collect(), Steps::Build),
        kelp_runtime(
            registry,
            "java",
            ("pom.xml", ".java"),
            "java",
            vec!["1.8".into(), "11".into(), "17".into()],
            Steps::Build,
        ),
        kelp_runtime(registry, "rust", ("Cargo.toml", ".rs"), "rust", rust.into(), Steps::Build),
    ]
}

/// What a Kelp runtime image does before it serves.
#[derive(Clone, Copy)]
enum Steps {
    /// Installs the dependency file (`installation`: [`INSTALL_DEPS_COMMAND`]).
    Install,
    /// Builds the function (`compilation`: [`BUILD_COMMAND`]).
    Build,
}

/// A runtime served by the image `<registry>/runtime-<id>`, installing or building with
/// `kelp-runtime`; `files` are the dependency file's name and the code file's suffix.
fn kelp_runtime(
    registry: &ImageRegistry,
    id: &str,
    (dep_name, suffix): (&str, &str),
    name_prefix: &str,
    versions: Vec<String>,
    steps: Steps,
) -> Runtime {
    let image = registry.runtime(id);
    let phase = |phase: &str, command: &str| PhaseImage {
        phase: phase.into(),
        image: image.clone(),
        command: command.into(),
        env: BTreeMap::new(),
        secrets: Vec::new(),
    };
    let before = match steps {
        Steps::Install => phase(INSTALLATION_PHASE, INSTALL_DEPS_COMMAND),
        Steps::Build => phase(COMPILATION_PHASE, BUILD_COMMAND),
    };
    Runtime {
        id: id.into(),
        dep_name: dep_name.into(),
        file_name_suffix: suffix.into(),
        liveness_probe_info: None,
        versions: versions
            .into_iter()
            .map(|version| Version {
                name: format!("{name_prefix}{}", version.replace('.', "")),
                version,
                image_pull_secrets: Vec::new(),
                images: vec![before.clone(), phase(RUNTIME_PHASE, "")],
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_case_insensitively_but_env_names_keep_their_case() {
        let runtimes = parse(
            r#"[{"id": "python", "DEPNAME": "requirements.txt", "FileNameSuffix": ".py", "Versions": [
                {"Name": "python38", "Version": "3.8", "ImagePullSecrets": [{"ImageSecret": "regcred"}],
                 "Images": [{"Phase": "runtime", "Image": "py:3.8", "Env": {"PythonPath": "/x"}}]}]}]"#,
        )
        .unwrap();
        let resolved = resolve(&runtimes, "python3.8").unwrap();
        assert_eq!(resolved.runtime.dep_name, "requirements.txt");
        assert_eq!(resolved.version.image_pull_secrets[0].image_secret, "regcred");
        let image = resolved.phase(RUNTIME_PHASE).unwrap();
        assert_eq!((image.image.as_str(), image.env.get("PythonPath").map(String::as_str)), ("py:3.8", Some("/x")));
    }

    #[test]
    fn yaml_is_read_too() {
        let runtimes =
            parse("- ID: nodejs\n  versions:\n  - {version: '14', images: [{phase: runtime, image: n:14}]}\n");
        assert_eq!(resolve(&runtimes.unwrap(), "nodejs14").unwrap().phase(RUNTIME_PHASE).unwrap().image, "n:14");
    }

    #[test]
    fn an_unknown_runtime_lists_the_available_ones() {
        let defaults = defaults(&ImageRegistry::default());
        let err = resolve(&defaults, "ruby2.6").unwrap_err();
        let PlanError::UnknownRuntime { runtime, available } = &err else { panic!("{err:?}") };
        assert_eq!(runtime, "ruby2.6");
        assert_eq!(available.len(), 8 + 13 + 6 + 3 + 2);
        assert!(err.to_string().contains("python3, python3.6, python3.7"), "{err}");
        assert!(matches!(resolve(&defaults, "python2.7"), Err(PlanError::UnknownRuntime { .. })));
        assert!(matches!(resolve(&defaults, "not a runtime"), Err(PlanError::UnknownRuntime { .. })));
    }

    #[test]
    fn defaults_serialize_with_kubeless_keys_and_read_back() {
        let json = serde_json::to_string(&defaults(&ImageRegistry::default())).unwrap();
        assert!(json.contains(r#""ID":"python","depName":"requirements.txt","fileNameSuffix":".py""#), "{json}");
        assert!(json.contains(r#"{"name":"python312","version":"3.12","images":"#), "{json}");
        assert_eq!(parse(&json).unwrap(), defaults(&ImageRegistry::default()));
    }

    #[test]
    fn malformed_values_name_the_key() {
        for bad in ["{", r#"{"ID": "python"}"#, r#"[{"versions": []}]"#] {
            let err = parse(bad).unwrap_err();
            assert!(matches!(&err, PlanError::Config { key, .. } if key == KEY), "{bad}: {err:?}");
        }
    }
}
