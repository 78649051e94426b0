//! The function's Service.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kelp_api::Function;

use super::Plan;
use crate::FUNCTION_PORT_NAME;
use crate::error::PlanError;
use crate::meta;

/// The port of a function whose `spec.service` has none.
const DEFAULT_PORT: i32 = 8080;

/// The Service `<fn>` with [`spec`].
pub(super) fn service(plan: &Plan<'_>) -> Service {
    Service { metadata: plan.child_meta(plan.name), spec: Some(plan.service.clone()), ..Service::default() }
}

/// `spec.service` with Kubeless's defaults filled in: the port `http-function-port` 8080 → 8080
/// when it has no ports, the selector `{created-by: kubeless, function: <fn>}` when it has none,
/// and the type `ClusterIP` when it has none.
pub(crate) fn spec(function: &Function) -> ServiceSpec {
    let mut spec = function.spec.service.as_deref().cloned().unwrap_or_default();
    if spec.ports.as_ref().is_none_or(Vec::is_empty) {
        spec.ports = Some(vec![ServicePort {
            name: Some(FUNCTION_PORT_NAME.to_owned()),
            protocol: Some("TCP".to_owned()),
            port: DEFAULT_PORT,
            target_port: Some(IntOrString::Int(DEFAULT_PORT)),
            ..ServicePort::default()
        }]);
    }
    if spec.selector.as_ref().is_none_or(|s| s.is_empty()) {
        spec.selector = Some(meta::selector(meta::name(&function.metadata)));
    }
    spec.type_.get_or_insert_with(|| "ClusterIP".to_owned());
    spec
}

/// Where a function answers inside the cluster: its Service's DNS name and first port, as the
/// CronJobs' `curl` and the `kelp-triggers` consumers call it. A template of [`function_url`].
pub const FUNCTION_URL: &str = "http://{name}.{namespace}.svc:{port}";

/// `template` with `{name}`, `{namespace}` and `{port}` (the first port of the function's
/// Service) of `function`.
pub fn function_url(template: &str, function: &Function) -> String {
    let service = spec(function);
    let port = first_port(&service).map_or(DEFAULT_PORT, |p| p.port);
    template
        .replace("{name}", meta::name(&function.metadata))
        .replace("{namespace}", function.metadata.namespace.as_deref().unwrap_or("default"))
        .replace("{port}", &port.to_string())
}

/// The first port of a Service spec: the one functions serve on.
pub(crate) fn first_port(spec: &ServiceSpec) -> Option<&ServicePort> {
    spec.ports.as_ref()?.first()
}

/// The port the function's container listens on: the first port's `targetPort` (its `port`
/// when unset). A named `targetPort` cannot be: the container's port is made from this number.
pub(super) fn target_port(spec: &ServiceSpec) -> Result<i32, PlanError> {
    let Some(port) = first_port(spec) else { return Ok(DEFAULT_PORT) };
    match &port.target_port {
        None => Ok(port.port),
        Some(IntOrString::Int(n)) => Ok(*n),
        Some(IntOrString::String(s)) => s.parse().map_err(|_| {
            PlanError::invalid("spec.service.ports[0].targetPort", format!("must be a port number, not {s:?}"))
        }),
    }
}
