//! The function's Deployment.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStrategy, RollingUpdateDeployment};
use k8s_openapi::api::core::v1::{
    Affinity, ConfigMapVolumeSource, Container, ContainerPort, EnvVar, HTTPGetAction, LocalObjectReference,
    PodAffinityTerm, PodAntiAffinity, PodSecurityContext, PodSpec, Probe, Volume, WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kelp_api::Handler;

use super::Plan;
use super::init::{self, CODE_DIR, DEPS_DIR, DEPS_VOLUME, Inputs, NAMESPACE_ENV, RUNTIME_USER};
use super::service;
use crate::error::PlanError;
use crate::merge::merge_template;
use crate::meta::{self, Labels};
use crate::runtimes::RUNTIME_PHASE;
use crate::{FUNCTION_HASH_ANNOTATION, runtimes};

/// The Deployment `<fn>`: `spec.deployment` merged with the config's template, with Kubeless's
/// fields and defaults (see the crate docs).
pub(super) fn deployment(plan: &Plan<'_>) -> Result<Deployment, PlanError> {
    let own = plan.function.spec.deployment.as_deref().cloned().unwrap_or_default();
    let mut deployment = match &plan.config.deployment {
        Some(config) => merge_template(&own, config)?,
        None => own,
    };
    let target_port = service::target_port(&plan.service)?;
    let autoscaled = plan.function.spec.horizontal_pod_autoscaler.as_ref().is_some_and(|h| h.is_configured());

    deployment.metadata = ObjectMeta {
        labels: Some(union(deployment.metadata.labels.take(), &plan.labels)),
        annotations: meta::non_empty(union(
            deployment.metadata.annotations.take(),
            &meta::inherited_annotations(&plan.function.metadata),
        )),
        ..plan.child_meta(plan.name)
    };
    deployment.status = None;
    let spec = deployment.spec.get_or_insert_default();
    spec.selector = LabelSelector { match_labels: Some(meta::selector(plan.name)), ..LabelSelector::default() };
    if autoscaled {
        // The autoscaler owns the replica count.
        spec.replicas = None;
    }
    spec.strategy.get_or_insert_with(|| DeploymentStrategy {
        type_: Some("RollingUpdate".into()),
        rolling_update: Some(RollingUpdateDeployment {
            max_unavailable: Some(IntOrString::Int(0)),
            ..RollingUpdateDeployment::default()
        }),
    });
    let pod_meta = spec.template.metadata.get_or_insert_default();
    pod_meta.labels = Some(union(pod_meta.labels.take(), &plan.labels));
    let mut annotations = union(pod_meta.annotations.take(), &meta::inherited_annotations(&plan.function.metadata));
    annotations.extend([
        ("prometheus.io/scrape".to_owned(), "true".to_owned()),
        ("prometheus.io/path".to_owned(), "/metrics".to_owned()),
        ("prometheus.io/port".to_owned(), target_port.to_string()),
        (FUNCTION_HASH_ANNOTATION.to_owned(), meta::function_hash(plan.function)),
    ]);
    pod_meta.annotations = Some(annotations);
    pod(plan, spec.template.spec.get_or_insert_default(), target_port)?;
    Ok(deployment)
}

/// Fills the pod spec: code, init containers, the function's container and the pod defaults.
fn pod(plan: &Plan<'_>, pod: &mut PodSpec, target_port: i32) -> Result<(), PlanError> {
    if pod.containers.is_empty() {
        pod.containers.push(Container::default());
    }
    let custom_image = pod.containers[0].image.as_deref().is_some_and(|image| !image.is_empty());
    let code = plan.function.spec.function.as_deref().unwrap_or_default();
    let handler = plan.handler()?;
    let mut pull_secrets = pod.image_pull_secrets.take().unwrap_or_default();
    pull_secrets.extend(plan.config.image_pull_secrets.iter().cloned());
    let installs = if custom_image {
        false
    } else {
        let handler = handler.ok_or_else(|| PlanError::invalid("spec.handler", NEEDED_WITHOUT_IMAGE))?;
        if code.is_empty() {
            return Err(PlanError::invalid("spec.function", NEEDED_WITHOUT_IMAGE));
        }
        load_code(plan, pod, handler, &mut pull_secrets)?
    };
    let mut deduped = Vec::new();
    for secret in pull_secrets {
        upsert(&mut deduped, secret, |s| s.name.clone());
    }
    pod.image_pull_secrets = (!deduped.is_empty()).then_some(deduped);
    // Kubeless's function environment needs both a handler and code.
    let loaded = handler.filter(|_| !code.is_empty());
    function_container(plan, &mut pod.containers[0], loaded, target_port, installs)?;
    // Function pods that set no security context run as Kubeless ran them.
    pod.security_context.get_or_insert_with(|| PodSecurityContext {
        run_as_user: Some(RUNTIME_USER),
        fs_group: Some(RUNTIME_USER),
        ..PodSecurityContext::default()
    });
    // No API credentials unless the function asks for them: by naming a ServiceAccount, or by
    // setting `automountServiceAccountToken` itself.
    let names_account = [&pod.service_account_name, &pod.service_account]
        .into_iter()
        .any(|name| name.as_deref().is_some_and(|n| !n.is_empty() && n != "default"));
    if !names_account {
        pod.automount_service_account_token.get_or_insert(false);
    }
    pod.affinity.get_or_insert_with(|| Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![WeightedPodAffinityTerm {
                weight: 100,
                pod_affinity_term: PodAffinityTerm {
                    label_selector: Some(LabelSelector {
                        match_labels: Some(meta::selector(plan.name)),
                        ..LabelSelector::default()
                    }),
                    topology_key: "kubernetes.io/hostname".into(),
                    ..PodAffinityTerm::default()
                },
            }]),
            ..PodAntiAffinity::default()
        }),
        ..Affinity::default()
    });
    Ok(())
}

/// Runs the code in the runtime's image: the init containers that put it (and its
/// dependencies) into `/kubeless`, their volumes, the image and its pull secrets. Returns
/// whether the dependencies are installed into the cache, which the function then mounts.
fn load_code(
    plan: &Plan<'_>,
    pod: &mut PodSpec,
    handler: Handler<'_>,
    pull_secrets: &mut Vec<LocalObjectReference>,
) -> Result<bool, PlanError> {
    let runtime = plan.required_runtime()?;
    let image = runtime.phase(RUNTIME_PHASE).ok_or_else(|| {
        let runtime = plan.function.spec.runtime.as_deref().unwrap_or_default();
        let reason =
            format!("runtime {runtime} has no image for the \"runtime\" phase (the one that serves the function)");
        PlanError::config(runtimes::KEY, reason)
    })?;
    let user_init = pod.init_containers.take().unwrap_or_default();
    let user_env = pod.containers[0].env.clone().unwrap_or_default();
    let inputs = Inputs {
        handler,
        runtime,
        user_env: &user_env,
        resources: user_init.first().and_then(|c| c.resources.clone()),
    };
    let generated = init::init_containers(plan, &inputs)?;
    // The user's own init containers run after Kelp's; an entry without an image only carried
    // the resources of Kelp's (Kubeless's convention), and Kelp's names are taken.
    let mut init_containers = generated.containers;
    for container in user_init {
        let has_image = container.image.as_deref().is_some_and(|image| !image.is_empty());
        if has_image && !init_containers.iter().any(|c| c.name == container.name) {
            init_containers.push(container);
        }
    }
    pod.init_containers = Some(init_containers);
    let volumes = pod.volumes.get_or_insert_default();
    let code_volume = Volume { name: plan.name.into(), empty_dir: Some(Default::default()), ..Volume::default() };
    let source = ConfigMapVolumeSource { name: plan.name.into(), ..ConfigMapVolumeSource::default() };
    let source_volume = Volume { name: format!("{}-deps", plan.name), config_map: Some(source), ..Volume::default() };
    for volume in [code_volume, source_volume].into_iter().chain(generated.volumes) {
        upsert(volumes, volume, |v| v.name.clone());
    }
    let runtime_secrets = runtime.version.image_pull_secrets.iter();
    pull_secrets.extend(runtime_secrets.map(|s| LocalObjectReference { name: s.image_secret.clone() }));
    let container = &mut pod.containers[0];
    container.image = Some(image.image.clone());
    let mounts = container.volume_mounts.get_or_insert_default();
    upsert(mounts, init::code_mount(plan), |m| m.mount_path.clone());
    if generated.installs {
        upsert(mounts, init::mount(DEPS_VOLUME, DEPS_DIR, true), |m| m.mount_path.clone());
    }
    Ok(generated.installs)
}

const NEEDED_WITHOUT_IMAGE: &str =
    "must not be empty unless the deployment sets a custom image (spec.template.spec.containers[0].image)";

/// The function's container: its name, Kubeless's environment (the `FUNC_*` of `handler`'s
/// function when there is one), its port and probes.
fn function_container(
    plan: &Plan<'_>,
    container: &mut Container,
    handler: Option<Handler<'_>>,
    target_port: i32,
    installs: bool,
) -> Result<(), PlanError> {
    let spec = &plan.function.spec;
    container.name = plan.name.to_owned();
    let memory_limit = container
        .resources
        .as_ref()
        .and_then(|r| r.limits.as_ref()?.get("memory"))
        .map_or_else(|| "0".to_owned(), |q| q.0.clone());
    let env = container.env.get_or_insert_default();
    if let Some(handler) = handler {
        for (name, value) in crate::run::function_env(spec, handler, &memory_limit)? {
            set_env(env, name, &value);
        }
    }
    set_env(env, "FUNC_PORT", &target_port.to_string());
    if let Some(runtime) = plan.runtime {
        set_env(env, "KUBELESS_INSTALL_VOLUME", CODE_DIR);
        for (name, value) in runtime.phase(RUNTIME_PHASE).map(|p| &p.env).into_iter().flatten() {
            set_env(env, name, value);
        }
    }
    set_env(env, "KELP_LISTEN", "0.0.0.0");
    if installs {
        set_env(env, "KELP_DEPS_DIR", DEPS_DIR);
        set_env(env, NAMESPACE_ENV, plan.namespace());
    }
    let port = ContainerPort { container_port: target_port, protocol: Some("TCP".into()), ..ContainerPort::default() };
    upsert(container.ports.get_or_insert_default(), port, |p| p.container_port);
    let healthz = || Probe {
        http_get: Some(HTTPGetAction {
            path: Some("/healthz".into()),
            port: IntOrString::Int(target_port),
            ..HTTPGetAction::default()
        }),
        ..Probe::default()
    };
    let liveness = plan.runtime.and_then(|r| r.runtime.liveness_probe_info.clone());
    container.liveness_probe.get_or_insert_with(|| {
        liveness.unwrap_or(Probe { initial_delay_seconds: Some(3), period_seconds: Some(30), ..healthz() })
    });
    // Every second: kelp-runtime answers /healthz within milliseconds of starting, so the probe's
    // period is most of the time between a pod starting and its Service sending it requests.
    container.readiness_probe.get_or_insert_with(|| Probe { period_seconds: Some(1), ..healthz() });
    Ok(())
}

/// Sets an environment variable: replaces an entry of that name, else appends one.
pub(super) fn set_env(env: &mut Vec<EnvVar>, name: &str, value: &str) {
    upsert(env, EnvVar { name: name.into(), value: Some(value.into()), ..EnvVar::default() }, |e| e.name.clone());
}

/// Adds `item` to `list`, removing the entry with the same key first: the lists of a pod spec
/// are maps to server-side apply, which rejects two entries with one key.
fn upsert<T, K: PartialEq>(list: &mut Vec<T>, item: T, key: impl Fn(&T) -> K) {
    let item_key = key(&item);
    list.retain(|existing| key(existing) != item_key);
    list.push(item);
}

/// `base` with `overrides` added (and winning).
fn union(base: Option<Labels>, overrides: &Labels) -> Labels {
    let mut labels = base.unwrap_or_default();
    labels.extend(overrides.iter().map(|(k, v)| (k.clone(), v.clone())));
    labels
}
