//! The function's ConfigMap: what `prepare` copies into the pod.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;

use super::Plan;

/// The ConfigMap `<fn>`: `handler`, the code under its file name and the dependency file under
/// the runtime's `depName`; empty when the function has no handler (a custom image).
pub(super) fn config_map(plan: &Plan<'_>) -> ConfigMap {
    let spec = &plan.function.spec;
    let mut data = BTreeMap::new();
    // A malformed handler is reported by the Deployment, which cannot be built without it.
    if let Ok(Some(handler)) = plan.handler()
        && let Ok(file_name) = plan.file_name(handler)
    {
        data.insert("handler".to_owned(), handler.to_string());
        data.insert(file_name, spec.function.clone().unwrap_or_default());
        if let Some(dep_name) = plan.dep_name() {
            data.insert(dep_name.to_owned(), spec.deps.clone().unwrap_or_default());
        }
    }
    ConfigMap { metadata: plan.child_meta(plan.name), data: Some(data), ..ConfigMap::default() }
}
