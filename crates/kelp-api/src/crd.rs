//! The CustomResourceDefinitions generated from the types, and their committed YAML.
//!
//! The YAML lives in `deploy/crds/kubeless.io_<plural>.yaml` (one file per kind) at the
//! workspace root. The test `crds_are_up_to_date` (`crates/kelp-api/tests/crds.rs`) fails when
//! those files differ from [`render_all`], and rewrites them when run with
//! `KELP_UPDATE_CRDS=1 cargo test -p kelp-api --test crds`.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::{CronJobTrigger, Function, HTTPTrigger, KafkaTrigger, KinesisTrigger, NATSTrigger};

/// Where the CRD files are committed, relative to the workspace root.
pub const CRD_DIR: &str = "deploy/crds";

/// The first lines of every generated file.
const HEADER: &str = "# Generated from crates/kelp-api (kelp_api::crd::render_all); do not edit.\n\
                      # Regenerate: KELP_UPDATE_CRDS=1 cargo test -p kelp-api --test crds\n";

/// One rendered CRD file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrdFile {
    /// The file name inside [`CRD_DIR`], `kubeless.io_<plural>.yaml`.
    pub file_name: String,
    /// The file's content: a header comment and the CRD as YAML.
    pub yaml: String,
}

/// Every CRD Kelp serves, in a fixed order: functions, then the trigger kinds.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        Function::crd(),
        HTTPTrigger::crd(),
        CronJobTrigger::crd(),
        KafkaTrigger::crd(),
        NATSTrigger::crd(),
        KinesisTrigger::crd(),
    ]
}

/// Renders one CRD as YAML (deterministic: schema maps are sorted).
pub fn render(crd: &CustomResourceDefinition) -> String {
    // Serializing a CRD has no failure mode: it is plain data with string keys.
    let yaml = serde_saphyr::to_string(crd).expect("a CRD serializes to YAML");
    format!("{HEADER}{yaml}")
}

/// Renders every CRD into its file.
pub fn render_all() -> Vec<CrdFile> {
    crds()
        .iter()
        .map(|crd| CrdFile {
            file_name: format!("{}_{}.yaml", crd.spec.group, crd.spec.names.plural),
            yaml: render(crd),
        })
        .collect()
}
