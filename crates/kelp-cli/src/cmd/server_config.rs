//! `kelp get-server-config`, and the runtime check of `function deploy|update`.
//!
//! The supported runtimes are those of the `runtime-images` key of the ConfigMap
//! `$KUBELESS_NAMESPACE/$KUBELESS_CONFIG` (default `kubeless/kubeless-config`) when the server
//! has one, as for Kubeless; otherwise Kelp's own languages, with the versions installed here.

use anyhow::bail;
use k8s_openapi::api::core::v1::ConfigMap;
use kelp_runtime::language::{Interpreter, LANGUAGES, Language};
use kube::Api;
use serde_json::Value;

use crate::output::{emit, info};
use crate::target::{GlobalArgs, Target, connect};

/// Where the kubeless configuration lives: `$KUBELESS_NAMESPACE` / `$KUBELESS_CONFIG`.
fn config_location() -> (String, String) {
    let var =
        |name: &str, default: &str| std::env::var(name).ok().filter(|v| !v.is_empty()).unwrap_or(default.to_owned());
    (var("KUBELESS_NAMESPACE", "kubeless"), var("KUBELESS_CONFIG", "kubeless-config"))
}

/// The runtimes of a server or of this machine: every `<ID><version>`, and where each ID comes
/// from (`ruby: a plugin runtime (<dir>)`).
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Runtimes {
    /// `<ID><version>`, in order.
    pub(crate) names: Vec<String>,
    /// `<ID>: <where it comes from>`, one per ID, in order.
    pub(crate) origins: Vec<String>,
}

/// Where a language comes from, for people.
fn origin_of_language(language: &Language) -> String {
    match language.plugin {
        Some(dir) => format!("a plugin runtime ({})", dir.display()),
        None => "built into Kelp".to_owned(),
    }
}

/// The runtimes of a `runtime-images` JSON document: `<ID><version>` of every version, and where
/// each runtime comes from: a plugin (the directory `kelp up` recorded), a language built into
/// Kelp, or its runtime image alone.
pub(crate) fn runtimes_from_config(runtime_images: &str) -> anyhow::Result<Runtimes> {
    let images: Value = serde_json::from_str(runtime_images)
        .map_err(|e| anyhow::anyhow!("the runtime-images of the kubeless configuration are not JSON: {e}"))?;
    let mut runtimes = Runtimes::default();
    for runtime in images.as_array().into_iter().flatten() {
        let id = runtime.get("ID").and_then(Value::as_str).unwrap_or_default();
        let versions = runtime.get("versions").and_then(Value::as_array).cloned().unwrap_or_default();
        for version in &versions {
            if let Some(version) = version.get("version").and_then(Value::as_str) {
                runtimes.names.push(format!("{id}{version}"));
            }
        }
        let image = versions
            .iter()
            .flat_map(|v| v.get("images").and_then(Value::as_array).cloned().unwrap_or_default())
            .find_map(|i| {
                (i.get("phase").and_then(Value::as_str) == Some("runtime"))
                    .then(|| i.get("image").and_then(Value::as_str).map(str::to_owned))
                    .flatten()
            });
        let origin = match (runtime.get(kelp_runtime::plugin::ORIGIN_KEY).and_then(Value::as_str), image) {
            (Some(dir), _) => format!("a plugin runtime ({dir})"),
            (None, image) if Language::for_runtime(id).is_some() => {
                format!("built into Kelp{}", image.map(|i| format!(", image {i}")).unwrap_or_default())
            }
            (None, Some(image)) => format!("the image {image}"),
            (None, None) => "runtime-images, with no runtime image".to_owned(),
        };
        runtimes.origins.push(format!("{id}: {origin}"));
    }
    Ok(runtimes)
}

/// The runtimes of the server's kubeless configuration, or `None` when it has none.
async fn server_runtimes(target: &Target) -> anyhow::Result<Option<Runtimes>> {
    let (namespace, name) = config_location();
    let api: Api<ConfigMap> = Api::namespaced(target.client.clone(), &namespace);
    match api.get_opt(&name).await {
        Ok(Some(config)) => match config.data.as_ref().and_then(|d| d.get("runtime-images")) {
            Some(images) => runtimes_from_config(images).map(Some),
            None => Ok(None),
        },
        Ok(None) => Ok(None),
        // Not allowed to read it (or no such namespace): fall back to Kelp's languages.
        Err(kube::Error::Api(_)) => Ok(None),
        Err(e) => Err(super::describe(e, target)),
    }
}

/// The value of `key` in the server's kubeless configuration, if it has one and it can be read.
pub(crate) async fn config_value(target: &Target, key: &str) -> Option<String> {
    let (namespace, name) = config_location();
    let api: Api<ConfigMap> = Api::namespaced(target.client.clone(), &namespace);
    let config = api.get_opt(&name).await.ok()??;
    config.data?.remove(key).filter(|v| !v.trim().is_empty())
}

/// Kelp's languages and the plugin runtimes (`KELP_RUNTIMES_PATH`) with the interpreter versions
/// installed on this machine.
async fn local_runtimes() -> Runtimes {
    let mut runtimes = Runtimes::default();
    let plugins = kelp_runtime::plugin::all().into_iter().flatten().map(|p| p.language);
    for language in LANGUAGES.iter().chain(plugins) {
        if let Some(interpreter) = Interpreter::find(language).await {
            runtimes.names.push(interpreter.runtime());
            runtimes.origins.push(format!("{}: {}", language.runtime_ids[0], origin_of_language(language)));
        }
    }
    runtimes
}

/// Checks `--runtime`: against the server's kubeless configuration when there is one (and a
/// server), else against Kelp's languages (any version: the runtime serves every version of
/// its language).
pub(crate) async fn check_runtime(target: Option<&Target>, runtime: &str) -> anyhow::Result<()> {
    if let Some(target) = target
        && let Some(runtimes) = server_runtimes(target).await?
    {
        if !runtimes.names.iter().any(|r| r == runtime) {
            bail!("Invalid runtime: {runtime}. Supported runtimes are: {}", runtimes.names.join(", "));
        }
        return Ok(());
    }
    if Language::find(runtime)?.is_none() {
        bail!(
            "Invalid runtime: {runtime}. Supported runtimes are: {} followed by a version (e.g. python3.12, nodejs20)",
            Language::known_ids()
        );
    }
    Ok(())
}

/// `kelp get-server-config`.
pub(crate) async fn run(global: &GlobalArgs) -> anyhow::Result<()> {
    let target = connect(global).await?;
    let runtimes = match server_runtimes(&target).await? {
        Some(runtimes) => runtimes,
        None => local_runtimes().await,
    };
    info("Current Server Config:");
    emit(format!("Supported Runtimes are: {}\n", runtimes.names.join(", ")))?;
    // Where each comes from, on stderr: stdout stays Kubeless's one line, which scripts read.
    info("Where they come from:");
    runtimes.origins.iter().for_each(|origin| info(format!("  {origin}")));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtimes_of_a_kubeless_config() {
        let images = r#"[
            {"ID": "python", "depName": "requirements.txt", "versions": [
                {"name": "python36", "version": "3.6"}, {"name": "python38", "version": "3.8"}]},
            {"ID": "nodejs", "versions": [{"name": "node14", "version": "14"}]}
        ]"#;
        let runtimes = runtimes_from_config(images).unwrap();
        assert_eq!(runtimes.names, vec!["python3.6", "python3.8", "nodejs14"]);
        assert_eq!(runtimes.origins, vec!["python: built into Kelp", "nodejs: built into Kelp"]);
        let images = r#"[
            {"ID": "ruby", "kelpPlugin": "/opt/plugins/ruby", "versions": [{"name": "ruby26", "version": "2.6"}]},
            {"ID": "cobol", "versions": [{"version": "85", "images": [{"phase": "runtime", "image": "me/cobol:1"}]}]},
            {"ID": "python", "versions": [{"version": "3.8", "images": [{"phase": "runtime", "image": "kelp/runtime-python:0.1.0"}]}]},
            {"ID": "odd", "versions": [{"version": "1"}]}
        ]"#;
        assert_eq!(
            runtimes_from_config(images).unwrap().origins,
            vec![
                "ruby: a plugin runtime (/opt/plugins/ruby)",
                "cobol: the image me/cobol:1",
                "python: built into Kelp, image kelp/runtime-python:0.1.0",
                "odd: runtime-images, with no runtime image"
            ]
        );
        assert!(runtimes_from_config("{oops").is_err());
    }

    #[tokio::test]
    async fn runtime_check_without_a_server() {
        check_runtime(None, "python3.8").await.unwrap();
        check_runtime(None, "nodejs14").await.unwrap();
        let error = check_runtime(None, "ruby2.7").await.unwrap_err().to_string();
        assert!(error.starts_with("Invalid runtime: ruby2.7. Supported runtimes are: python, nodejs"), "{error}");
    }
}
