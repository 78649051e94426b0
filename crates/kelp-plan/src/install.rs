//! What installs Kelp on a cluster (besides the CRDs of `deploy/crds/`): the namespace, the
//! `kubeless-config` ConfigMap, and two Deployments of the controller image, each with its own
//! ServiceAccount and least-privilege RBAC:
//!
//! - `kelp-controller` reconciles Functions and triggers into native objects; one replica leads
//!   (a Lease), the others wait;
//! - `kelp-triggers` runs the consumers of KafkaTriggers, NATSTriggers and KinesisTriggers (as
//!   Kubeless's separate kafka-, nats- and kinesis-trigger-controller did) and POSTs each message
//!   to the function's Service. Its replicas share the work: one Kafka consumer group and one NATS
//!   queue group per trigger, so more replicas share the partitions and messages; the replica
//!   holding the Lease `kelp-triggers` writes the triggers' status and finalizers. Broker
//!   credentials reach only these pods: the `KAFKA_*` variables of the optional Secret
//!   [`TRIGGERS_BROKERS_SECRET`] and the certificate files of the optional Secret
//!   [`TRIGGERS_TLS_SECRET`], mounted at [`TRIGGERS_TLS_DIR`].
//!
//! [`install_objects`] is the one source: `deploy/kelp.yaml` is rendered from it
//! ([`render_yaml`]; the test `deploy_is_up_to_date` fails when the committed file is stale and
//! `KELP_UPDATE_DEPLOY=1 cargo test -p kelp-plan --test deploy` rewrites it), and the Helm chart
//! in `deploy/helm/kelp/` is checked to template the same kinds and names.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, Container, ContainerPort, EnvFromSource, EnvVar, EnvVarSource, HTTPGetAction, Namespace,
    ObjectFieldSelector, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, SecretEnvSource,
    SecretVolumeSource, SecurityContext, ServiceAccount, Volume, VolumeMount,
};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use crate::config::{Config, KAFKA_BROKERS_KEY, NATS_URL_KEY};
use crate::images::{CONTROLLER_IMAGE, ImageRegistry};

/// Where the rendered manifests are committed, relative to the workspace root.
pub const DEPLOY_FILE: &str = "deploy/kelp.yaml";
/// The name of the controller's ServiceAccount, roles, bindings and Deployment.
pub const CONTROLLER_NAME: &str = "kelp-controller";
/// The name of the configuration ConfigMap (Kubeless's, which `KUBELESS_CONFIG` names).
pub const CONFIG_NAME: &str = "kubeless-config";
/// The label of the controller's pods, as Kubeless's (`kubectl logs -n kubeless -l kubeless=controller`).
pub const CONTROLLER_LABEL: (&str, &str) = ("kubeless", "controller");
/// The port of the `/metrics` and `/healthz` of both Deployments.
pub const CONTROLLER_PORT: i32 = 8080;
/// The name of the Kafka/NATS trigger consumers' ServiceAccount, roles, bindings and
/// Deployment, and of their leader Lease; also their command.
pub const TRIGGERS_NAME: &str = "kelp-triggers";
/// The label of the trigger consumers' pods (`kubectl logs -n kubeless -l kubeless=triggers`).
pub const TRIGGERS_LABEL: (&str, &str) = ("kubeless", "triggers");
/// The optional Secret whose keys become environment variables of `kelp-triggers`: Kubeless's
/// `KAFKA_ENABLE_TLS`, `KAFKA_CACERTS`, `KAFKA_CERT`, `KAFKA_KEY`, `KAFKA_INSECURE`,
/// `KAFKA_ENABLE_SASL`, `KAFKA_USERNAME`, `KAFKA_PASSWORD` (and `KAFKA_BROKERS`, `NATS_URL`,
/// which win over `kubeless-config`). Secrets never go into `kubeless-config`.
pub const TRIGGERS_BROKERS_SECRET: &str = "kelp-triggers-brokers";
/// The optional Secret of certificate files, mounted read-only at [`TRIGGERS_TLS_DIR`].
pub const TRIGGERS_TLS_SECRET: &str = "kelp-triggers-tls";
/// Where the files of [`TRIGGERS_TLS_SECRET`] are: `KAFKA_CACERTS`, `KAFKA_CERT` and
/// `KAFKA_KEY` name files here (e.g. `/etc/kelp/kafka-tls/ca.crt`).
pub const TRIGGERS_TLS_DIR: &str = "/etc/kelp/kafka-tls";

/// The first lines of [`render_yaml`]'s output.
const HEADER: &str = "# Generated from crates/kelp-plan (kelp_plan::install::install_objects); do not edit.\n\
                      # Regenerate: KELP_UPDATE_DEPLOY=1 cargo test -p kelp-plan --test deploy\n\
                      # Apply the CRDs of deploy/crds/ first (kelp install does both).\n";

/// What varies between installs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstallOptions {
    /// The namespace of both Deployments and of `kubeless-config` (`kubeless`).
    pub namespace: String,
    /// Where Kelp's images live: the controller image of both Deployments unless [`image`]
    /// is given, and the runtime and provision images written into `kubeless-config`
    /// ([`Config::default_data_for`]).
    ///
    /// [`image`]: InstallOptions::image
    pub image_registry: ImageRegistry,
    /// The image of both Deployments, over `<image_registry>/controller:<this version>`.
    pub image: Option<String>,
    /// The controller's replicas (1); one leads, the others wait.
    pub replicas: i32,
    /// The replicas of `kelp-triggers` (1). More replicas share the work: every trigger is one
    /// Kafka consumer group and one NATS queue group, whose partitions and messages the
    /// replicas divide among themselves.
    pub trigger_replicas: i32,
    /// The value of `functions-namespace`: the only namespace served (empty: all).
    pub functions_namespace: String,
    /// The value of `kafka-brokers`, written when given (else `kelp-triggers` uses Kubeless's).
    pub kafka_brokers: Option<String>,
    /// The value of `nats-url`, written when given (else `kelp-triggers` uses Kubeless's).
    pub nats_url: Option<String>,
}

impl InstallOptions {
    /// The image of both Deployments: [`InstallOptions::image`], else the controller image of
    /// the registry.
    fn controller_image(&self) -> String {
        self.image.clone().unwrap_or_else(|| self.image_registry.image(CONTROLLER_IMAGE))
    }
}

impl Default for InstallOptions {
    fn default() -> Self {
        InstallOptions {
            namespace: "kubeless".into(),
            image_registry: ImageRegistry::default(),
            image: None,
            replicas: 1,
            trigger_replicas: 1,
            functions_namespace: String::new(),
            kafka_brokers: None,
            nats_url: None,
        }
    }
}

/// The objects to apply, in an order that applies cleanly: Namespace; for `kelp-controller`
/// then `kelp-triggers` a ServiceAccount, ClusterRole, ClusterRoleBinding, Role and RoleBinding;
/// ConfigMap `kubeless-config`; Deployments `kelp-controller` and `kelp-triggers`.
pub fn install_objects(options: &InstallOptions) -> Vec<Value> {
    let mut data = Config::default_data_for(&options.image_registry);
    data.insert("functions-namespace".into(), options.functions_namespace.clone());
    for (key, value) in [(KAFKA_BROKERS_KEY, &options.kafka_brokers), (NATS_URL_KEY, &options.nats_url)] {
        if let Some(value) = value {
            data.insert(key.to_owned(), value.clone());
        }
    }
    let mut objects = vec![to_value(Namespace { metadata: cluster_meta(&options.namespace), ..Namespace::default() })];
    objects.extend(identity(options, CONTROLLER_NAME, controller_cluster_rules(), controller_namespace_rules()));
    objects.extend(identity(options, TRIGGERS_NAME, triggers_cluster_rules(), triggers_namespace_rules()));
    objects.push(to_value(ConfigMap {
        metadata: namespaced_meta(options, CONFIG_NAME),
        data: Some(data),
        ..ConfigMap::default()
    }));
    objects.push(to_value(deployment(options, controller(options))));
    objects.push(to_value(deployment(options, triggers(options))));
    objects
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

/// The metadata of a namespaced object of the install.
fn namespaced_meta(options: &InstallOptions, name: &str) -> ObjectMeta {
    ObjectMeta { name: Some(name.into()), namespace: Some(options.namespace.clone()), ..ObjectMeta::default() }
}

/// The metadata of a cluster-scoped object.
fn cluster_meta(name: &str) -> ObjectMeta {
    ObjectMeta { name: Some(name.into()), ..ObjectMeta::default() }
}

/// A component's identity and rights, all named `name`: its ServiceAccount, a ClusterRole and
/// ClusterRoleBinding with `cluster_rules`, and a Role and RoleBinding with `namespace_rules` in
/// the install namespace.
fn identity(
    options: &InstallOptions,
    name: &str,
    cluster_rules: Vec<PolicyRule>,
    namespace_rules: Vec<PolicyRule>,
) -> [Value; 5] {
    let subject = Subject {
        kind: "ServiceAccount".into(),
        name: name.into(),
        namespace: Some(options.namespace.clone()),
        ..Subject::default()
    };
    let role_ref =
        |kind: &str| RoleRef { api_group: "rbac.authorization.k8s.io".into(), kind: kind.into(), name: name.into() };
    [
        to_value(ServiceAccount { metadata: namespaced_meta(options, name), ..ServiceAccount::default() }),
        to_value(ClusterRole { metadata: cluster_meta(name), rules: Some(cluster_rules), ..Default::default() }),
        to_value(ClusterRoleBinding {
            metadata: cluster_meta(name),
            role_ref: role_ref("ClusterRole"),
            subjects: Some(vec![subject.clone()]),
        }),
        to_value(Role { metadata: namespaced_meta(options, name), rules: Some(namespace_rules) }),
        to_value(RoleBinding {
            metadata: namespaced_meta(options, name),
            role_ref: role_ref("Role"),
            subjects: Some(vec![subject]),
        }),
    ]
}

/// The controller's cluster-wide permissions: no wildcard, and no verb it does not use.
fn controller_cluster_rules() -> Vec<PolicyRule> {
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

/// The controller's permissions in the install namespace: its leader Lease.
fn controller_namespace_rules() -> Vec<PolicyRule> {
    vec![rule("coordination.k8s.io", &["leases"], &["get", "create", "update"])]
}

/// The cluster-wide permissions of `kelp-triggers`: reading Functions and the Kafka, NATS and
/// Kinesis triggers, their finalizers (by patching or updating the trigger) and status; reading
/// Secrets (the AWS credentials a KinesisTrigger names, as Kubeless's kinesis-trigger-controller
/// did) and keeping ConfigMaps (a KinesisTrigger's checkpoints, `kelp-kinesis-<trigger>`, which
/// RBAC cannot name in advance). Nothing else: no Deployments, Services or pods.
fn triggers_cluster_rules() -> Vec<PolicyRule> {
    const KINDS: [&str; 3] = ["kafkatriggers", "natstriggers", "kinesistriggers"];
    vec![
        rule(
            kelp_api::GROUP,
            &["functions", "kafkatriggers", "natstriggers", "kinesistriggers"],
            &["get", "list", "watch"],
        ),
        rule(kelp_api::GROUP, &KINDS, &["update", "patch"]),
        rule(kelp_api::GROUP, &KINDS.map(|kind| format!("{kind}/status")), &["patch"]),
        rule("", &["secrets"], &["get"]),
        rule("", &["configmaps"], &["get", "create", "patch"]),
    ]
}

/// The permissions of `kelp-triggers` in the install namespace: reading `kubeless-config`, and
/// its own leader Lease (RBAC cannot limit `create` to a name, which the request does not carry
/// in its path).
fn triggers_namespace_rules() -> Vec<PolicyRule> {
    vec![
        PolicyRule { resource_names: Some(vec![CONFIG_NAME.into()]), ..rule("", &["configmaps"], &["get"]) },
        rule("coordination.k8s.io", &["leases"], &["create"]),
        PolicyRule {
            resource_names: Some(vec![TRIGGERS_NAME.into()]),
            ..rule("coordination.k8s.io", &["leases"], &["get", "update"])
        },
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

/// What differs between Kelp's two Deployments; [`deployment`] adds what they share.
#[derive(Default)]
struct Workload {
    /// The name of the Deployment, its container and its ServiceAccount.
    name: &'static str,
    /// The label of the Deployment and its pods, which selects them.
    label: (&'static str, &'static str),
    replicas: i32,
    /// The container's command (the image's entrypoint, `kelp-controller`, when `None`).
    command: Option<Vec<String>>,
    args: Option<Vec<String>>,
    /// Environment between the shared `KUBELESS_NAMESPACE` and `KELP_LISTEN`.
    env: Vec<EnvVar>,
    env_from: Option<Vec<EnvFromSource>>,
    volume_mounts: Option<Vec<VolumeMount>>,
    volumes: Option<Vec<Volume>>,
}

/// The controller's Deployment.
fn controller(options: &InstallOptions) -> Workload {
    Workload {
        name: CONTROLLER_NAME,
        label: CONTROLLER_LABEL,
        replicas: options.replicas,
        env: vec![value_env("KUBELESS_CONFIG", CONFIG_NAME)],
        ..Workload::default()
    }
}

/// The Deployment of `kelp-triggers`: leader election on, the config namespace its own (from
/// `KUBELESS_NAMESPACE`), the optional broker Secrets as environment and files.
fn triggers(options: &InstallOptions) -> Workload {
    const TLS_VOLUME: &str = "kafka-tls";
    let strings = |items: &[&str]| Some(items.iter().map(|s| s.to_string()).collect());
    Workload {
        name: TRIGGERS_NAME,
        label: TRIGGERS_LABEL,
        replicas: options.trigger_replicas,
        command: strings(&[TRIGGERS_NAME]),
        args: strings(&["--leader-elect=true", "--config-namespace=$(KUBELESS_NAMESPACE)"]),
        env: Vec::new(),
        env_from: Some(vec![EnvFromSource {
            secret_ref: Some(SecretEnvSource { name: TRIGGERS_BROKERS_SECRET.into(), optional: Some(true) }),
            ..EnvFromSource::default()
        }]),
        volume_mounts: Some(vec![VolumeMount {
            name: TLS_VOLUME.into(),
            mount_path: TRIGGERS_TLS_DIR.into(),
            read_only: Some(true),
            ..VolumeMount::default()
        }]),
        volumes: Some(vec![Volume {
            name: TLS_VOLUME.into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(TRIGGERS_TLS_SECRET.into()),
                optional: Some(true),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        }]),
    }
}

/// A Deployment of the controller image: `workload` plus what both share (the image, the
/// environment naming the namespace, `/healthz` and `/metrics` on [`CONTROLLER_PORT`], the pod
/// name for the Lease, probes, resources and a locked-down security context).
fn deployment(options: &InstallOptions, workload: Workload) -> Deployment {
    let labels = BTreeMap::from([(workload.label.0.to_owned(), workload.label.1.to_owned())]);
    let mut env = vec![field_env("KUBELESS_NAMESPACE", "metadata.namespace")];
    env.extend(workload.env);
    // The pod's own address, so the kubelet's probes reach /healthz.
    env.push(value_env("KELP_LISTEN", &format!("0.0.0.0:{CONTROLLER_PORT}")));
    // Each replica's identity in the leader Lease.
    env.push(field_env("POD_NAME", "metadata.name"));
    let container = Container {
        name: workload.name.into(),
        image: Some(options.controller_image()),
        command: workload.command,
        args: workload.args,
        env: Some(env),
        env_from: workload.env_from,
        volume_mounts: workload.volume_mounts,
        ..hardened_container()
    };
    Deployment {
        metadata: ObjectMeta { labels: Some(labels.clone()), ..namespaced_meta(options, workload.name) },
        spec: Some(DeploymentSpec {
            replicas: Some(workload.replicas),
            selector: LabelSelector { match_labels: Some(labels.clone()), ..LabelSelector::default() },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(labels), ..ObjectMeta::default() }),
                spec: Some(PodSpec {
                    service_account_name: Some(workload.name.into()),
                    containers: vec![container],
                    volumes: workload.volumes,
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        status: None,
    }
}

/// What every Kelp container has: the `metrics` port, `/healthz` probes, requests and a memory
/// limit, and a security context without privileges on a read-only root.
fn hardened_container() -> Container {
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
    Container {
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
    }
}

/// An environment variable with a value.
fn value_env(name: &str, value: &str) -> EnvVar {
    EnvVar { name: name.into(), value: Some(value.into()), value_from: None }
}

/// An environment variable from a field of the pod (the downward API).
fn field_env(name: &str, field_path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector { field_path: field_path.into(), ..ObjectFieldSelector::default() }),
            ..EnvVarSource::default()
        }),
    }
}

/// A typed object as JSON (with its `apiVersion` and `kind`).
fn to_value(object: impl serde::Serialize) -> Value {
    // Typed Kubernetes objects have string keys only: serializing them has no failure mode.
    serde_json::to_value(object).expect("a Kubernetes object serializes to JSON")
}
