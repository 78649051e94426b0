//! The `Function` kind (`functions.kubeless.io`).

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ServiceSpec;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::autoscaler::HpaTemplate;
use crate::content_type::{ContentType, Encoding};
use crate::embedded::Embedded;
use crate::formats::{FormatError, Handler, RuntimeName, parse_checksum, parse_timeout};
use crate::status::FunctionStatus;
use crate::validation::{NameRule, Validate, ValidationErrors, collect_metadata_errors};

/// A Kubeless function: code plus runtime, turned into a ConfigMap, a Deployment, a Service
/// and optionally an HPA, all named after it.
///
/// Every field is optional because Kubeless objects in etcd may omit any of them; absent fields
/// are not written back, so stored objects round-trip unchanged.
// clippy reads the repeated `printcolumn(type_ = ...)` keys as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kubeless.io",
    version = "v1beta1",
    kind = "Function",
    plural = "functions",
    singular = "function",
    shortname = "fn",
    namespaced,
    status = "FunctionStatus",
    derive = "PartialEq",
    doc = "A Kubeless function (kubeless.io/v1beta1), served by Kelp.",
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Runtime", type_ = "string", json_path = ".spec.runtime"),
    printcolumn(name = "Handler", type_ = "string", json_path = ".spec.handler", priority = 1),
    printcolumn(name = "Replicas", type_ = "integer", json_path = ".status.readyReplicas", priority = 1),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
pub struct FunctionSpec {
    /// `"<module>.<function>"`: the module names the code file (letters, digits, `-`, `_`), the
    /// function is the entry point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self == '' || self.matches('^[^.]+[.][^.]+$')",
        "message": "must be \"<module>.<function>\" (exactly one dot)",
    }, {
        "rule": "self == '' || !self.contains('.') || self.matches('^[-_a-zA-Z0-9]{1,240}[.]')",
        "message": "the module part (before the dot) names the code file: it must be at most 240 letters, digits, '-' or '_'",
    }]))]
    pub handler: Option<String>,
    /// The code: source text, base64 of a file or archive, or a URL, per
    /// `function-content-type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// `text|base64|url` (empty: `text`), optionally `+zip` or `+compressedtar`, then
    /// optionally `+deps`.
    #[serde(rename = "function-content-type", default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self.matches('^((text|base64|url)([+](zip|compressedtar))?([+]deps)?)?$')",
        "message": "must be text, base64 or url, optionally followed by +zip or +compressedtar, then optionally +deps",
    }]))]
    pub function_content_type: Option<String>,
    /// `sha256:<hex>` of the raw file, or empty for no check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 71))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self.matches('^(sha256:[0-9a-f]{64})?$')",
        "message": "must be empty or \"sha256:<64 lowercase hex digits>\"",
    }]))]
    pub checksum: Option<String>,
    /// `<id><version>`, e.g. `python3.8`; empty only with a custom image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self == '' || self.matches('^[a-zA-Z_-]+[0-9.]+$')",
        "message": "must be \"<id><version>\", e.g. python3.8",
    }]))]
    pub runtime: Option<String>,
    /// Seconds per call as a string (empty: 180), at most 604800 (one week).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 20))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self.matches('^([0-9]*[1-9][0-9]*)?$')",
        "message": "must be empty or a positive integer number of seconds",
    }, {
        "rule": "!self.matches('^0*[1-9][0-9]*$') || (self.matches('^0*[1-9][0-9]{0,5}$') && int(self) <= 604800)",
        "message": "must be at most 604800 seconds (one week)",
    }]))]
    pub timeout: Option<String>,
    /// The full dependency file (`requirements.txt`, `package.json`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deps: Option<String>,
    /// An apps/v1 Deployment merged into the generated one; `containers[0].image` set means a
    /// custom image. Stored as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::embedded::preserve_unknown_object")]
    pub deployment: Option<Embedded<Deployment>>,
    /// The function Service's spec (default: port `http-function-port` 8080).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::embedded::preserve_unknown_object")]
    pub service: Option<Embedded<ServiceSpec>>,
    /// A whole HorizontalPodAutoscaler (Kubeless: autoscaling/v2beta1), stored as given.
    #[serde(rename = "horizontalPodAutoscaler", default, skip_serializing_if = "Option::is_none")]
    pub horizontal_pod_autoscaler: Option<HpaTemplate>,
}

impl FunctionSpec {
    /// The parsed handler.
    pub fn parsed_handler(&self) -> Result<Handler<'_>, FormatError> {
        Handler::parse(self.handler.as_deref().unwrap_or_default())
    }

    /// The parsed runtime.
    pub fn parsed_runtime(&self) -> Result<RuntimeName<'_>, FormatError> {
        RuntimeName::parse(self.runtime.as_deref().unwrap_or_default())
    }

    /// The parsed content type (absent or empty: `text`).
    pub fn parsed_content_type(&self) -> Result<ContentType, FormatError> {
        ContentType::parse(self.function_content_type.as_deref().unwrap_or_default())
    }

    /// The timeout in seconds (absent or empty: 180).
    pub fn timeout_seconds(&self) -> Result<u64, FormatError> {
        parse_timeout(self.timeout.as_deref().unwrap_or_default())
    }

    /// The hex SHA-256 from `checksum`, or `None` when there is none to check.
    pub fn checksum_sha256(&self) -> Result<Option<&str>, FormatError> {
        parse_checksum(self.checksum.as_deref().unwrap_or_default())
    }

    /// The image of `deployment.spec.template.spec.containers[0]`, when set: the function
    /// then runs that prebuilt image and needs no handler, runtime or code.
    pub fn custom_image(&self) -> Option<&str> {
        let deployment = self.deployment.as_deref()?;
        let pod = deployment.spec.as_ref()?.template.spec.as_ref()?;
        pod.containers.first()?.image.as_deref().filter(|image| !image.is_empty())
    }
}

impl Validate for FunctionSpec {
    fn collect_errors(&self, errors: &mut ValidationErrors) {
        let custom_image = self.custom_image().is_some();
        let unless_image = "must not be empty unless the deployment sets a custom image \
                            (spec.template.spec.containers[0].image)";
        match self.handler.as_deref().unwrap_or_default() {
            "" if !custom_image => errors.required("spec.handler", unless_image),
            "" => {}
            _ => {
                if let Err(e) = self.parsed_handler() {
                    errors.invalid("spec.handler", e.to_string());
                }
            }
        }
        match self.runtime.as_deref().unwrap_or_default() {
            "" if !custom_image => errors.required("spec.runtime", unless_image),
            "" => {}
            _ => {
                if let Err(e) = self.parsed_runtime() {
                    errors.invalid("spec.runtime", e.to_string());
                }
            }
        }
        match self.parsed_content_type() {
            Err(e) => errors.invalid("spec.function-content-type", e.to_string()),
            Ok(ContentType { encoding: Encoding::Url, .. }) => {
                let code = self.function.as_deref().unwrap_or_default();
                if !(code.is_empty() || code.starts_with("http://") || code.starts_with("https://")) {
                    errors.invalid(
                        "spec.function",
                        "must be an http:// or https:// URL when function-content-type is url",
                    );
                }
            }
            Ok(_) => {}
        }
        if let Err(e) = self.checksum_sha256() {
            errors.invalid("spec.checksum", e.to_string());
        }
        if let Err(e) = self.timeout_seconds() {
            errors.invalid("spec.timeout", e.to_string());
        }
        if let Some(hpa) = self.horizontal_pod_autoscaler.as_ref().filter(|h| h.is_configured())
            && let Err(e) = hpa.to_v2()
        {
            errors.invalid("spec.horizontalPodAutoscaler", e.to_string());
        }
    }
}

impl Validate for Function {
    /// Checks `metadata.name` (an RFC 1035 label, since it also names the function's Service
    /// and container) and the spec.
    fn collect_errors(&self, errors: &mut ValidationErrors) {
        collect_metadata_errors(&self.metadata, NameRule::Dns1035Label, errors);
        self.spec.collect_errors(errors);
    }
}
