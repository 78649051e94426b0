//! The commands, and what they share: reading and writing objects as JSON through kube's
//! dynamic API, and turning client errors into one line that says what to fix.

pub(crate) mod autoscale;
pub(crate) mod function;
pub(crate) mod install;
pub(crate) mod manifest;
pub(crate) mod server_config;
pub(crate) mod topic;
pub(crate) mod trigger;

use std::io::IsTerminal as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::anyhow;
use kube::Api;
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::Value;

use crate::kinds::{self, KindInfo};
use crate::target::Target;

/// A bool flag's value as the kubeless CLI (Go's `strconv.ParseBool`, through pflag) reads it:
/// `--flag` alone is `true`, and `--flag=<value>` takes `1`, `t`, `T`, `TRUE`, `true`, `True`,
/// `0`, `f`, `F`, `FALSE`, `false` or `False`.
pub(crate) fn pflag_bool(value: &str) -> Result<bool, String> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("invalid boolean {value:?}: use true or false")),
    }
}

/// `--dryrun` with `-o json|yaml` (default yaml), as the kubeless CLI's create commands.
#[derive(Clone, Copy, Debug, clap::Args)]
pub(crate) struct DryRunArgs {
    /// Print the object instead of sending it
    #[arg(long, default_value = "false", action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = crate::cmd::pflag_bool, value_name = "BOOL")]
    pub(crate) dryrun: bool,
    /// Output format of --dryrun
    #[arg(short = 'o', long, value_enum, default_value = "yaml")]
    pub(crate) output: crate::output::Format,
}

/// The kind registry entry of a Kelp kind or core kind by its `kind`.
pub(crate) fn kind(kind: &str) -> &'static KindInfo {
    kinds::KINDS.iter().find(|k| k.kind == kind).unwrap_or(&kinds::KINDS[0])
}

/// The dynamic API of `kind` in the target's namespace (or cluster-wide for cluster kinds).
pub(crate) fn api(target: &Target, kind: &KindInfo, namespace: &str) -> Api<DynamicObject> {
    let resource = kind.api_resource();
    if kind.namespaced {
        Api::namespaced_with(target.client.clone(), namespace, &resource)
    } else {
        Api::all_with(target.client.clone(), &resource)
    }
}

/// An object as JSON, or `None` when it does not exist.
pub(crate) async fn get_json(
    target: &Target,
    kind: &KindInfo,
    namespace: &str,
    name: &str,
) -> anyhow::Result<Option<Value>> {
    match api(target, kind, namespace).get_opt(name).await {
        Ok(object) => Ok(object.map(|o| serde_json::to_value(o).unwrap_or_default())),
        Err(e) => Err(describe(e, target)),
    }
}

/// An object as JSON, or an error `<kind> "<name>" not found in namespace "<ns>"`.
pub(crate) async fn require_json(
    target: &Target,
    kind: &KindInfo,
    namespace: &str,
    name: &str,
) -> anyhow::Result<Value> {
    get_json(target, kind, namespace, name).await?.ok_or_else(|| not_found(kind, namespace, name))
}

/// The error for a missing object.
pub(crate) fn not_found(kind: &KindInfo, namespace: &str, name: &str) -> anyhow::Error {
    let noun = human_kind(kind);
    if kind.namespaced {
        anyhow!("{noun} {name:?} not found in namespace {namespace:?}")
    } else {
        anyhow!("{noun} {name:?} not found")
    }
}

/// `function`, `HTTP trigger`, `cron job trigger`, ... for messages.
pub(crate) fn human_kind(kind: &KindInfo) -> &'static str {
    match kind.kind {
        "Function" => "function",
        "HTTPTrigger" => "HTTP trigger",
        "CronJobTrigger" => "cronjob trigger",
        "KafkaTrigger" => "Kafka trigger",
        "NATSTrigger" => "NATS trigger",
        "KinesisTrigger" => "Kinesis trigger",
        "Namespace" => "namespace",
        "Secret" => "secret",
        _ => "configmap",
    }
}

/// Creates an object given as JSON; an existing one is an error naming it.
pub(crate) async fn create_json(
    target: &Target,
    kind: &KindInfo,
    namespace: &str,
    object: &Value,
) -> anyhow::Result<Value> {
    let dynamic: DynamicObject = serde_json::from_value(object.clone())?;
    match api(target, kind, namespace).create(&PostParams::default(), &dynamic).await {
        Ok(created) => Ok(serde_json::to_value(created)?),
        Err(kube::Error::Api(status)) if status.code == 409 => {
            let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
            Err(anyhow!("{} {name:?} already exists in namespace {namespace:?}", human_kind(kind)))
        }
        Err(e) => Err(describe(e, target)),
    }
}

/// Sends a JSON merge patch computed from `base`, the object as read (the patch carries its
/// resourceVersion). When the object changed in between (409) only in what its controller writes
/// (status, resourceVersion), the change is sent again as a JSON patch that first tests that the
/// spec, labels and annotations are still `base`'s, so it cannot lose anyone's edit and no status
/// write can make it fail; an edit of those by someone else is an error.
pub(crate) async fn patch_json(
    target: &Target,
    kind: &KindInfo,
    namespace: &str,
    name: &str,
    base: &Value,
    patch: &Value,
) -> anyhow::Result<Value> {
    let api = api(target, kind, namespace);
    let changed =
        || anyhow!("{} {name:?} was changed by someone else meanwhile; run the command again", human_kind(kind));
    let error = |e: kube::Error| match e {
        kube::Error::Api(status) if status.code == 404 => not_found(kind, namespace, name),
        kube::Error::Api(status) if status.code == 409 || status.code == 422 => changed(),
        e => describe(e, target),
    };
    match api.patch(name, &PatchParams::default(), &Patch::Merge(patch)).await {
        Ok(patched) => return Ok(serde_json::to_value(patched)?),
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(e) => return Err(error(e)),
    }
    let fresh = get_json(target, kind, namespace, name).await?.ok_or_else(|| not_found(kind, namespace, name))?;
    let mut merged = fresh.clone();
    json_patch::merge(&mut merged, patch);
    let operations = guarded_replace(base, &fresh, &merged).ok_or_else(changed)?;
    let patched = api.patch(name, &PatchParams::default(), &Patch::Json::<()>(operations)).await.map_err(error)?;
    Ok(serde_json::to_value(patched)?)
}

/// The user-owned parts of an object: its spec, labels and annotations.
const USER_FIELDS: [&str; 3] = ["/spec", "/metadata/labels", "/metadata/annotations"];

/// A JSON patch that tests each of [`USER_FIELDS`] still has `base`'s value, then sets it to
/// `merged`'s; `None` when `fresh` already differs from `base` there.
fn guarded_replace(base: &Value, fresh: &Value, merged: &Value) -> Option<json_patch::Patch> {
    let mut operations = Vec::new();
    for field in USER_FIELDS {
        if base.pointer(field) != fresh.pointer(field) {
            return None;
        }
        let path = json_patch::jsonptr::PointerBuf::parse(field).ok()?;
        if let Some(value) = base.pointer(field) {
            operations.push(json_patch::PatchOperation::Test(json_patch::TestOperation {
                path: path.clone(),
                value: value.clone(),
            }));
        }
        match merged.pointer(field) {
            Some(value) => operations
                .push(json_patch::PatchOperation::Add(json_patch::AddOperation { path, value: value.clone() })),
            None if base.pointer(field).is_some() => {
                operations.push(json_patch::PatchOperation::Remove(json_patch::RemoveOperation { path }))
            }
            None => {}
        }
    }
    Some(json_patch::Patch(operations))
}

/// Deletes an object; `Ok(false)` when it did not exist.
pub(crate) async fn delete_object(
    target: &Target,
    kind: &KindInfo,
    namespace: &str,
    name: &str,
) -> anyhow::Result<bool> {
    match api(target, kind, namespace).delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
        Err(e) => Err(describe(e, target)),
    }
}

/// One line for a client error: the API server's message, or what to check when it cannot be
/// reached.
pub(crate) fn describe(error: kube::Error, target: &Target) -> anyhow::Error {
    let place = format!("the API server at {} (context {:?})", target.server, target.context);
    match &error {
        kube::Error::Api(status) => {
            let message = if status.message.is_empty() { status.reason.clone() } else { status.message.clone() };
            match status.code {
                401 => anyhow!("{place} refused the credentials: {message} (check the user of the context)"),
                403 => anyhow!("forbidden: {message}"),
                _ => anyhow!("{message}"),
            }
        }
        kube::Error::HyperError(_) | kube::Error::Service(_) => {
            let chain = error_chain(&error);
            if chain.contains("onnection refused") {
                anyhow!(
                    "cannot connect to {place}: connection refused; is it running (`kelp up`), and are --kubeconfig and --context right?"
                )
            } else {
                anyhow!("cannot reach {place}: {chain}")
            }
        }
        _ => anyhow!("{}", error_chain(&error)),
    }
}

pub(crate) use kelp_api::error_chain;

/// A spinner on stderr while something long runs, only when stderr is a terminal (scripts
/// and logs stay quiet).
pub(crate) struct Spinner {
    stop: Arc<AtomicBool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Spinner {
    /// Starts spinning with `message` (no-op when stderr is not a terminal).
    pub(crate) fn start(message: String) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        if !std::io::stderr().is_terminal() {
            return Self { stop, task: None };
        }
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            const FRAMES: [char; 4] = ['|', '/', '-', '\\'];
            let mut i = 0usize;
            while !flag.load(Ordering::Relaxed) {
                eprint!("\r{} {message}", FRAMES[i % FRAMES.len()]);
                i += 1;
                tokio::time::sleep(Duration::from_millis(120)).await;
            }
            eprint!("\r\x1b[2K");
        });
        Self { stop, task: Some(task) }
    }

    /// Stops and clears the line.
    pub(crate) async fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

#[cfg(test)]
mod patch_tests {
    use super::guarded_replace;
    use serde_json::json;

    #[test]
    fn a_retry_tests_the_user_fields_and_sets_them() {
        let base = json!({"metadata": {"labels": {"a": "1"}, "resourceVersion": "1"}, "spec": {"x": 1}});
        let fresh =
            json!({"metadata": {"labels": {"a": "1"}, "resourceVersion": "7"}, "spec": {"x": 1}, "status": {"n": 3}});
        let mut merged = fresh.clone();
        json_patch::merge(&mut merged, &json!({"spec": {"x": 2}, "metadata": {"labels": null}}));
        let patch = guarded_replace(&base, &fresh, &merged).unwrap();
        let mut applied = fresh.clone();
        json_patch::patch(&mut applied, &patch).unwrap();
        assert_eq!(applied["spec"], json!({"x": 2}));
        assert_eq!(applied["status"], json!({"n": 3}), "the status is not touched");
        assert!(applied["metadata"].get("labels").is_none(), "a removed field is removed");
        // Someone changed the spec meanwhile: the test operation refuses the patch.
        let edited = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"x": 5}});
        assert!(json_patch::patch(&mut edited.clone(), &patch).is_err());
        assert!(guarded_replace(&base, &edited, &merged).is_none(), "an edit seen before sending is refused");
    }
}
