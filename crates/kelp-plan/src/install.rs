//! What installs Kelp on a cluster (besides the CRDs of `deploy/crds/`): the namespace, the
//! controller's ServiceAccount and least-privilege RBAC, the `kubeless-config` ConfigMap and
//! the controller's Deployment.
//!
//! [`install_objects`] is the one source: `deploy/kelp.yaml` is rendered from it
//! ([`render_yaml`]; the test `deploy_is_up_to_date` fails when the committed file is stale and
//! `KELP_UPDATE_DEPLOY=1 cargo test -p kelp-plan --test deploy` rewrites it), and the Helm chart
//! in `deploy/helm/kelp/` is checked to template the same kinds and names.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, Namespace,
    ObjectFieldSelector, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, SecurityContext,
    ServiceAccount,
};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use crate::config::Config;

/// Where the rendered manifests are committed, relative to the workspace root.
pub const DEPLOY_FILE: &str = "deploy/kelp.yaml";
/// The name of the controller's ServiceAccount, roles, bindings and Deployment.
pub const CONTROLLER_NAME: &str = "kelp-controller";
/// The name of the configuration ConfigMap (Kubeless's, which `KUBELESS_CONFIG` names).
pub const CONFIG_NAME: &str = "kubeless-config";
/// The label of the controller's pods, as Kubeless's (`kubectl logs -n kubeless -l kubeless=controller`).
pub const CONTROLLER_LABEL: (&str, &str) = ("kubeless", "controller");
/// The port of the controller's `/metrics` and `/healthz`.
pub const CONTROLLER_PORT: i32 = 8080;

/// The first lines of [`render_yaml`]'s output.
const HEADER: &str = "# Generated from crates/kelp-plan (kelp_plan::install::install_objects); do not edit.\n\
                      # Regenerate: KELP_UPDATE_DEPLOY=1 cargo test -p kelp-plan --test deploy\n\
                      # Apply the CRDs of deploy/crds/ first (kelp install does both).\n";

/// What varies between installs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstallOptions {
    /// The namespace of the controller and of `kubeless-config` (`kubeless`).
    pub namespace: String,
    /// The controller's image (`kelp/controller:<this version>`).
    pub image: String,
    /// The controller's replicas (1).
    pub replicas: i32,
    /// The value of `functions-namespace`: the only namespace served (empty: all).
    pub functions_namespace: String,
}

impl Default for InstallOptions {
    fn default() -> Self {
        InstallOptions {
            namespace: "kubeless".into(),
            image: format!("kelp/controller:{}", env!("CARGO_PKG_VERSION")),
            replicas: 1,
            functions_namespace: String::new(),
        }
    }
}

/// The objects to apply, in an order that applies cleanly: Namespace, ServiceAccount,
/// ClusterRole, ClusterRoleBinding, Role and RoleBinding (leases), ConfigMap `kubeless-config`,
/// Deployment `kelp-controller`.
pub fn install_objects(options: &InstallOptions) -> Vec<Value> {
    let namespaced = |name: &str| ObjectMeta {
        name: Some(name.into()),
        namespace: Some(options.namespace.clone()),
        ..ObjectMeta::default()
    };
    let cluster = |name: &str| ObjectMeta { name: Some(name.into()), ..ObjectMeta::default() };
    let subject = Subject {
        kind: "ServiceAccount".into(),
        name: CONTROLLER_NAME.into(),
        namespace: Some(options.namespace.clone()),
        ..Subject::default()
    };
    let role_ref = |kind: &str| RoleRef {
        api_group: "rbac.authorization.k8s.io".into(),
        kind: kind.into(),
        name: CONTROLLER_NAME.into(),
    };
    let mut data = Config::default_data();
    data.insert("functions-namespace".into(), options.functions_namespace.clone());
    [
        to_value(Namespace { metadata: cluster(&options.namespace), ..Namespace::default() }),
        to_value(ServiceAccount { metadata: namespaced(CONTROLLER_NAME), ..ServiceAccount::default() }),
        to_value(ClusterRole {
            metadata: cluster(CONTROLLER_NAME),
            rules: Some(cluster_rules()),
            ..Default::default()
        }),
        to_value(ClusterRoleBinding {
            metadata: cluster(CONTROLLER_NAME),
            role_ref: role_ref("ClusterRole"),
            subjects: Some(vec![subject.clone()]),
        }),
        to_value(Role {
            metadata: namespaced(CONTROLLER_NAME),
            rules: Some(vec![rule("coordination.k8s.io", &["leases"], &["get", "create", "update"])]),
        }),
        to_value(RoleBinding {
            metadata: namespaced(CONTROLLER_NAME),
            role_ref: role_ref("Role"),
            subjects: Some(vec![subject]),
        }),
        to_value(ConfigMap { metadata: namespaced(CONFIG_NAME), data: Some(data), ..ConfigMap::default() }),
        to_value(controller(options, namespaced(CONTROLLER_NAME))),
    ]
    .into()
}

/// Renders objects as the multi-document YAML of [`DEPLOY_FILE`], with a header saying where
/// it comes from.
pub fn render_yaml(objects: &[Value]) -> String {
    format!("{HEADER}{}", yaml(objects))
}

/// Renders objects as multi-document YAML in the style of Kelp's generated files: multi-line
/// strings as literal blocks, long lines never folded (so no line ends in a space).
pub fn yaml(objects: &[Value]) -> String {
    let mut options = serde_saphyr::SerializerOptions::default();
    options.folded_wrap_chars = usize::MAX;
    // Plain JSON values: rendering them has no failure mode.
    serde_saphyr::to_string_multiple_with_options(objects, options).expect("JSON values serialize to YAML")
}

/// The controller's cluster-wide permissions: no wildcard, and no verb it does not use.
fn cluster_rules() -> Vec<PolicyRule> {
    const KINDS: [&str; 5] = ["functions", "httptriggers", "cronjobtriggers", "kafkatriggers", "natstriggers"];
    const MANAGE: [&str; 7] = ["get", "list", "watch", "create", "update", "patch", "delete"];
    let subresources = |suffix: &str| KINDS.iter().map(|kind| format!("{kind}/{suffix}")).collect::<Vec<_>>();
    let mut status_and_finalizers = subresources("status");
    status_and_finalizers.extend(subresources("finalizers"));
    vec![
        rule(kelp_api::GROUP, &KINDS, &["get", "list", "watch", "update", "patch"]),
        // A deleted Function takes its HTTP and cron triggers along, as with Kubeless.
        rule(kelp_api::GROUP, &["httptriggers", "cronjobtriggers"], &["delete"]),
        rule(kelp_api::GROUP, &status_and_finalizers, &["update", "patch"]),
        rule("", &["configmaps", "services"], &MANAGE),
        rule("apps", &["deployments"], &MANAGE),
        rule("autoscaling", &["horizontalpodautoscalers"], &MANAGE),
        rule("networking.k8s.io", &["ingresses"], &MANAGE),
        rule("batch", &["cronjobs"], &MANAGE),
        rule("", &["pods"], &["get", "list", "watch"]),
        rule("", &["events"], &["create", "patch"]),
        rule("events.k8s.io", &["events"], &["create", "patch"]),
    ]
}

fn rule(group: &str, resources: &[impl AsRef<str>], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![group.into()]),
        resources: Some(resources.iter().map(|r| r.as_ref().to_owned()).collect()),
        verbs: verbs.iter().map(|v| v.to_string()).collect(),
        ..PolicyRule::default()
    }
}

/// The controller's Deployment.
fn controller(options: &InstallOptions, metadata: ObjectMeta) -> Deployment {
    let labels = BTreeMap::from([(CONTROLLER_LABEL.0.to_owned(), CONTROLLER_LABEL.1.to_owned())]);
    let env = |name: &str, value: Option<&str>, field: Option<&str>| EnvVar {
        name: name.into(),
        value: value.map(Into::into),
        value_from: field.map(|path| EnvVarSource {
            field_ref: Some(ObjectFieldSelector { field_path: path.into(), ..ObjectFieldSelector::default() }),
            ..EnvVarSource::default()
        }),
    };
    let healthz = Probe {
        http_get: Some(HTTPGetAction {
            path: Some("/healthz".into()),
            port: IntOrString::String("metrics".into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(10),
        ..Probe::default()
    };
    let quantity = |v: &str| Quantity(v.into());
    let container = Container {
        name: CONTROLLER_NAME.into(),
        image: Some(options.image.clone()),
        env: Some(vec![
            env("KUBELESS_NAMESPACE", None, Some("metadata.namespace")),
            env("KUBELESS_CONFIG", Some(CONFIG_NAME), None),
            // The pod's own address, so the kubelet's probes reach /healthz.
            env("KELP_LISTEN", Some(&format!("0.0.0.0:{CONTROLLER_PORT}")), None),
            // Each replica's identity in the leader Lease.
            env("POD_NAME", None, Some("metadata.name")),
        ]),
        ports: Some(vec![ContainerPort {
            name: Some("metrics".into()),
            container_port: CONTROLLER_PORT,
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        }]),
        liveness_probe: Some(healthz.clone()),
        readiness_probe: Some(healthz),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([("cpu".into(), quantity("50m")), ("memory".into(), quantity("64Mi"))])),
            limits: Some(BTreeMap::from([("memory".into(), quantity("256Mi"))])),
            ..ResourceRequirements::default()
        }),
        security_context: Some(SecurityContext {
            run_as_non_root: Some(true),
            read_only_root_filesystem: Some(true),
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), ..Capabilities::default() }),
            seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), ..SeccompProfile::default() }),
            ..SecurityContext::default()
        }),
        ..Container::default()
    };
    Deployment {
        metadata: ObjectMeta { labels: Some(labels.clone()), ..metadata },
        spec: Some(DeploymentSpec {
            replicas: Some(options.replicas),
            selector: LabelSelector { match_labels: Some(labels.clone()), ..LabelSelector::default() },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(labels), ..ObjectMeta::default() }),
                spec: Some(PodSpec {
                    service_account_name: Some(CONTROLLER_NAME.into()),
                    containers: vec![container],
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        status: None,
    }
}

/// A typed object as JSON (with its `apiVersion` and `kind`).
fn to_value(object: impl serde::Serialize) -> Value {
    // Typed Kubernetes objects have string keys only: serializing them has no failure mode.
    serde_json::to_value(object).expect("a Kubernetes object serializes to JSON")
}
