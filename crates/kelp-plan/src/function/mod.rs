//! A Function's children: ConfigMap, Deployment, Service and HorizontalPodAutoscaler.

mod config_map;
mod deployment;
mod init;
mod service;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kelp_api::{ContentType, Function, Handler};

use crate::config::Config;
use crate::error::PlanError;
use crate::meta::{self, Labels};
use crate::runtimes::{self, Resolved};

pub(crate) use service::first_port;
pub use service::{FUNCTION_URL, function_url};

/// The objects a Function becomes, all named after it, labelled with its labels plus
/// `function: <name>` and `created-by: kubeless`, and controlled by it (ownerReference).
#[derive(Clone, Debug, PartialEq)]
pub struct FunctionChildren {
    /// The code, the handler and the dependency file, which the `prepare` init container copies
    /// into the pod.
    pub config_map: ConfigMap,
    /// The function's pods.
    pub deployment: Deployment,
    /// `http-function-port` (8080 unless `spec.service` says otherwise) to the pods.
    pub service: Service,
    /// The autoscaling/v2 autoscaler of the Deployment, when `spec.horizontalPodAutoscaler` is
    /// configured; `None` means the function has none (delete any left from before).
    pub hpa: Option<HorizontalPodAutoscaler>,
}

/// Plans a Function's children from the Function and the `kubeless-config` [`Config`].
///
/// Errors name the field at fault: an unknown runtime (listing the configured ones), a malformed
/// handler, content type, checksum, timeout, Service port or autoscaler, a function with neither
/// code nor a custom image, a Function without `metadata.uid`.
pub fn function_children(function: &Function, config: &Config) -> Result<FunctionChildren, PlanError> {
    let plan = Plan::new(function, config)?;
    Ok(FunctionChildren {
        config_map: config_map::config_map(&plan),
        deployment: deployment::deployment(&plan)?,
        service: service::service(&plan),
        hpa: hpa(&plan)?,
    })
}

/// What every child is computed from.
struct Plan<'a> {
    function: &'a Function,
    config: &'a Config,
    name: &'a str,
    labels: Labels,
    owner: OwnerReference,
    content_type: ContentType,
    /// The runtime, when `spec.runtime` names one of the configuration's.
    runtime: Option<Resolved<'a>>,
    /// The Service spec, defaults filled in.
    service: k8s_openapi::api::core::v1::ServiceSpec,
}

impl<'a> Plan<'a> {
    fn new(function: &'a Function, config: &'a Config) -> Result<Self, PlanError> {
        let runtime_name = function.spec.runtime.as_deref().unwrap_or_default();
        let runtime = (!runtime_name.is_empty()).then(|| runtimes::resolve(&config.runtimes, runtime_name));
        Ok(Plan {
            function,
            config,
            name: meta::name(&function.metadata),
            labels: meta::function_labels(function),
            owner: meta::owner_reference("Function", &function.metadata)?,
            content_type: function
                .spec
                .parsed_content_type()
                .map_err(|e| PlanError::invalid("spec.function-content-type", e))?,
            runtime: runtime.and_then(Result::ok),
            service: service::spec(function),
        })
    }

    /// The handler; an error when it is malformed.
    fn handler(&self) -> Result<Option<Handler<'a>>, PlanError> {
        match self.function.spec.handler.as_deref().unwrap_or_default() {
            "" => Ok(None),
            handler => Handler::parse(handler).map(Some).map_err(|e| PlanError::invalid("spec.handler", e)),
        }
    }

    /// The runtime, which code (as opposed to a custom image) needs.
    fn required_runtime(&self) -> Result<Resolved<'a>, PlanError> {
        let runtime = self.function.spec.runtime.as_deref().unwrap_or_default();
        match self.runtime {
            Some(resolved) => Ok(resolved),
            None if runtime.is_empty() => Err(PlanError::invalid(
                "spec.runtime",
                "must not be empty unless the deployment sets a custom image (spec.template.spec.containers[0].image)",
            )),
            None => runtimes::resolve(&self.config.runtimes, runtime),
        }
    }

    /// The name of the code file: `<module><fileNameSuffix>` for a single file of a known
    /// runtime, the bare module for archives and `+deps` (as Kubeless named it). A module that
    /// is not a plain file name is an error, whoever built the handler: the name becomes a path
    /// in `prepare`'s shell step.
    fn file_name(&self, handler: Handler<'_>) -> Result<String, PlanError> {
        if !kelp_api::is_module_name(handler.module) {
            return Err(PlanError::invalid("spec.handler", kelp_api::FormatError::HandlerModule));
        }
        Ok(match self.runtime {
            Some(resolved) if !self.content_type.is_archive() && !self.content_type.deps => {
                format!("{}{}", handler.module, resolved.runtime.file_name_suffix)
            }
            _ => handler.module.to_owned(),
        })
    }

    /// The dependency file's name, when the runtime has one.
    fn dep_name(&self) -> Option<&'a str> {
        self.runtime.map(|r| r.runtime.dep_name.as_str()).filter(|name| !name.is_empty())
    }

    /// The function's namespace (`default` when the object names none).
    fn namespace(&self) -> &'a str {
        self.function.metadata.namespace.as_deref().filter(|ns| !ns.is_empty()).unwrap_or("default")
    }

    /// Metadata of a child: the function's name, namespace and labels, controlled by it.
    fn child_meta(&self, name: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.to_owned()),
            namespace: self.function.metadata.namespace.clone(),
            labels: Some(self.labels.clone()),
            owner_references: Some(vec![self.owner.clone()]),
            ..ObjectMeta::default()
        }
    }
}

/// The autoscaler: `spec.horizontalPodAutoscaler` in autoscaling/v2, named after the function
/// and aimed at its Deployment, or `None` when it is not configured.
fn hpa(plan: &Plan<'_>) -> Result<Option<HorizontalPodAutoscaler>, PlanError> {
    let Some(template) = plan.function.spec.horizontal_pod_autoscaler.as_ref().filter(|h| h.is_configured()) else {
        return Ok(None);
    };
    let mut hpa = template.to_v2().map_err(|e| PlanError::invalid("spec.horizontalPodAutoscaler", e))?;
    let mut labels = hpa.metadata.labels.take().unwrap_or_default();
    labels.extend(plan.labels.clone());
    hpa.metadata = ObjectMeta { labels: Some(labels), ..plan.child_meta(plan.name) };
    let spec = hpa.spec.get_or_insert_default();
    spec.scale_target_ref.api_version = Some("apps/v1".into());
    spec.scale_target_ref.kind = "Deployment".into();
    spec.scale_target_ref.name = plan.name.to_owned();
    Ok(Some(hpa))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handler_built_around_the_parser_still_cannot_name_a_path() {
        let function: Function = serde_json::from_value(serde_json::json!({
            "apiVersion": "kubeless.io/v1beta1", "kind": "Function",
            "metadata": {"name": "fn", "namespace": "default", "uid": "u"},
            "spec": {"handler": "hello.world", "runtime": "python3.12", "function": "x"},
        }))
        .unwrap();
        let config = Config::default();
        let plan = Plan::new(&function, &config).unwrap();
        assert_eq!(plan.file_name(Handler { module: "hello", function: "world" }).unwrap(), "hello.py");
        for module in ["/etc/x", "../x", "x;reboot"] {
            let err = plan.file_name(Handler { module, function: "world" }).unwrap_err();
            assert!(matches!(&err, PlanError::Invalid { field, .. } if field == "spec.handler"), "{err:?}");
        }
    }
}
