//! The init containers of a function's pods: `prepare` (code into `/kubeless`), `cache-owner`,
//! `fetch` and `install` (dependencies) and `build` (Kelp's, of a compiled language) or
//! `compile` (a Kubeless-style compilation command), with the volumes they need.
//!
//! The installation phase's Secrets (a private package index's credentials) are never mounted
//! where the packages' install scripts run: with Secrets, Kelp's installation command is split
//! into `fetch`, which holds them and downloads into a stage on the pod's scratch volume running
//! no package code, and `install`, which installs offline from that stage without them.

use k8s_openapi::api::core::v1::{
    Capabilities, Container, EnvVar, HostPathVolumeSource, ResourceRequirements, SecretVolumeSource, SecurityContext,
    Volume, VolumeMount,
};
use kelp_api::{Encoding, Handler};

use super::Plan;
use super::deployment::set_env;
use crate::error::PlanError;
use crate::run::Step;
use crate::runtimes::{COMPILATION_PHASE, INSTALL_DEPS_COMMAND, INSTALLATION_PHASE, PhaseImage, Resolved};
use crate::shell;

/// Where the code is, in every container of the pod (`KUBELESS_INSTALL_VOLUME`).
pub(super) const CODE_DIR: &str = "/kubeless";
/// Where `prepare` finds the ConfigMap.
const SRC_DIR: &str = "/src";
/// Where the dependency cache is mounted (`KELP_DEPS_DIR`).
pub(super) const DEPS_DIR: &str = "/kelp-deps";
/// The name of the dependency cache volume.
pub(super) const DEPS_VOLUME: &str = "kelp-deps";
/// Where phase Secrets are mounted: `<dir>/<secret>`.
const SECRETS_DIR: &str = "/var/run/secrets/kubeless.io";
/// The user (and group) `prepare` and `install` run as, whatever the pod's security context
/// says: Kubeless's function user, which owns the namespace's dependency cache.
pub(super) const RUNTIME_USER: i64 = 1000;
/// The scratch `emptyDir` of `prepare` and `install`, mounted at `/tmp` (their root file system
/// is read-only).
const TMP_VOLUME: &str = "kelp-tmp";
/// Where the kubelet mounts a ServiceAccount token.
const TOKEN_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// An empty volume mounted over [`TOKEN_DIR`] in Kelp's init containers: the API server's
/// ServiceAccount admission adds no token to a container that has a mount there, so a token the
/// function asked for is never within reach of the packages' install scripts.
const NO_TOKEN_VOLUME: &str = "kelp-no-token";
/// The command of `fetch` (`kelp-runtime`'s counterpart of [`INSTALL_DEPS_COMMAND`]).
const FETCH_DEPS_COMMAND: &str = "kelp-runtime --fetch-deps";
/// Where `fetch` stages the downloads `install` installs from (`KELP_DEPS_STAGE`), on the
/// scratch volume the pod's init containers share.
const STAGE_DIR: &str = "/tmp/kelp-deps-stage";
/// The environment variable naming [`STAGE_DIR`] to `kelp-runtime`.
const STAGE_ENV: &str = "KELP_DEPS_STAGE";
/// The environment variable naming the function's namespace, part of the key of its installs
/// (`kelp-runtime`'s `deps`).
pub(super) const NAMESPACE_ENV: &str = "KELP_NAMESPACE";

/// The generated init containers and the volumes only they add.
pub(super) struct InitContainers {
    pub(super) containers: Vec<Container>,
    pub(super) volumes: Vec<Volume>,
    /// Whether `install` runs, so the function's container must mount the dependency cache.
    pub(super) installs: bool,
}

/// What the init containers are built from.
pub(super) struct Inputs<'a> {
    pub(super) handler: Handler<'a>,
    pub(super) runtime: Resolved<'a>,
    /// The environment of the function's container as the user wrote it.
    pub(super) user_env: &'a [EnvVar],
    /// `initContainers[0].resources` of the template, given to every generated init container.
    pub(super) resources: Option<ResourceRequirements>,
}

/// `prepare`, then `install` (after `cache-owner` for a node cache, and after `fetch` when the
/// phase has Secrets) when there are dependencies and the runtime has an `installation` phase,
/// then `build` when it has a `compilation` phase running Kelp's [`Step::Build`], or `compile`
/// for another command.
pub(super) fn init_containers(plan: &Plan<'_>, inputs: &Inputs<'_>) -> Result<InitContainers, PlanError> {
    let mut init = InitContainers { containers: Vec::new(), volumes: Vec::new(), installs: false };
    if !plan.function.spec.function.as_deref().unwrap_or_default().is_empty() {
        init.containers.push(prepare(plan, inputs)?);
        add_scratch_volumes(&mut init.volumes);
    }
    let deps = plan.function.spec.deps.as_deref().unwrap_or_default();
    if crate::run::has_deps(plan.function)?
        && let Some(phase) = inputs.runtime.phase(INSTALLATION_PHASE)
    {
        add_cache(plan, inputs, &mut init)?;
        let install_step = |command: &str| install(plan, inputs, phase, deps, command);
        let mut install = install_step(&phase.command);
        let secrets = phase_secrets(phase, &mut init.volumes);
        if secrets.is_empty() || phase.command.trim() != INSTALL_DEPS_COMMAND {
            // Without Secrets there is nothing to keep apart; a command of the operator's own
            // (Kubeless's pip and npm lines) cannot be split, and keeps its Secrets.
            install.volume_mounts.get_or_insert_default().extend(secrets);
        } else {
            init.containers.push(fetch(install_step(FETCH_DEPS_COMMAND), secrets));
            set_env(install.env.get_or_insert_default(), STAGE_ENV, STAGE_DIR);
        }
        init.containers.push(install);
        init.installs = true;
    }
    match inputs.runtime.phase(COMPILATION_PHASE) {
        Some(phase) if Step::of_phase(phase) == Some(Step::Build) => {
            add_cache(plan, inputs, &mut init)?;
            init.containers.push(build(plan, inputs, phase));
            init.installs = true;
        }
        // A command of the operator's own (Kubeless's `/compile-function.sh`).
        Some(phase) => init.containers.push(compile(plan, inputs, phase, &mut init.volumes)),
        None => {}
    }
    Ok(init)
}

/// Adds the scratch volumes and the dependency cache (with `cache-owner` for a node cache), once.
fn add_cache(plan: &Plan<'_>, inputs: &Inputs<'_>, init: &mut InitContainers) -> Result<(), PlanError> {
    add_scratch_volumes(&mut init.volumes);
    if init.volumes.iter().any(|v| v.name == DEPS_VOLUME) {
        return Ok(());
    }
    init.volumes.push(cache_volume(plan)?);
    if plan.config.dependency_cache_path.is_some() {
        init.containers.push(cache_owner(plan, inputs));
    }
    Ok(())
}

/// `prepare`: Kubeless's `sh -c` step string, in the provision image.
fn prepare(plan: &Plan<'_>, inputs: &Inputs<'_>) -> Result<Container, PlanError> {
    let spec = &plan.function.spec;
    let file_name = plan.file_name(inputs.handler)?;
    let mut origin = format!("{SRC_DIR}/{file_name}");
    let mut steps = Vec::new();
    match plan.content_type.encoding {
        Encoding::Text => {}
        Encoding::Base64 => {
            steps.push(format!("base64 -d < {origin} > /tmp/func.decoded"));
            origin = "/tmp/func.decoded".into();
        }
        Encoding::Url => {
            let url = spec.function.as_deref().unwrap_or_default();
            steps.push(format!("curl {} -L --silent --output /tmp/func.fromurl", shell::quote(url)));
            origin = "/tmp/func.fromurl".into();
        }
    }
    if let Some(sha) = spec.checksum_sha256().map_err(|e| PlanError::invalid("spec.checksum", e))? {
        steps.push(format!("echo '{sha}  {origin}' > /tmp/func.sha256"));
        steps.push("sha256sum -c /tmp/func.sha256".into());
    }
    steps.push(match plan.content_type.archive {
        kelp_api::Archive::Zip => format!("unzip -o {origin} -d {CODE_DIR}"),
        kelp_api::Archive::CompressedTar => format!("tar xf {origin} -C {CODE_DIR}"),
        kelp_api::Archive::None => format!("cp {origin} {CODE_DIR}/{file_name}"),
    });
    // An empty dependency file (the ConfigMap always has one, as Kubeless's did) is not copied:
    // Node.js refuses to load a module beside an empty package.json.
    if let Some(dep_name) = plan.dep_name().filter(|_| !plan.content_type.deps) {
        steps.push(format!("if [ -s {SRC_DIR}/{dep_name} ]; then cp {SRC_DIR}/{dep_name} {CODE_DIR}; fi"));
    }
    Ok(Container {
        name: "prepare".into(),
        image: Some(plan.config.provision_image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(vec!["sh".into(), "-c".into()]),
        args: Some(vec![shell::escape_kubelet(&steps.join(" && "))]),
        volume_mounts: Some(vec![
            code_mount(plan),
            mount(&format!("{}-deps", plan.name), SRC_DIR, false),
            mount(TMP_VOLUME, "/tmp", false),
            mount(NO_TOKEN_VOLUME, TOKEN_DIR, true),
        ]),
        resources: inputs.resources.clone(),
        security_context: Some(restricted(RUNTIME_USER)),
        ..Container::default()
    })
}

/// `cache-owner`: gives the namespace's cache directory, which the kubelet creates owned by root
/// (`hostPath` `DirectoryOrCreate`), to [`RUNTIME_USER`], so that `install` need not run as root.
/// It runs only this fixed command, as root with no capability but `CHOWN`, without the user's
/// environment, Secrets or a ServiceAccount token.
fn cache_owner(plan: &Plan<'_>, inputs: &Inputs<'_>) -> Container {
    let mut security = restricted(0);
    if let Some(capabilities) = security.capabilities.as_mut() {
        capabilities.add = Some(vec!["CHOWN".into()]);
    }
    Container {
        name: "cache-owner".into(),
        image: Some(plan.config.provision_image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(vec!["chown".into(), format!("{RUNTIME_USER}:{RUNTIME_USER}"), DEPS_DIR.into()]),
        volume_mounts: Some(vec![mount(DEPS_VOLUME, DEPS_DIR, false), mount(NO_TOKEN_VOLUME, TOKEN_DIR, true)]),
        resources: inputs.resources.clone(),
        security_context: Some(security),
        ..Container::default()
    }
}

/// `install`: the `installation` phase's command, after checking the dependency file against
/// `spec.deps`, with the dependency cache mounted (see the crate docs); without the phase's
/// Secrets, which the caller adds or gives to [`fetch`]. `command` is the phase's.
fn install(plan: &Plan<'_>, inputs: &Inputs<'_>, phase: &PhaseImage, deps: &str, command: &str) -> Container {
    let dep_name = plan.dep_name().unwrap_or_default();
    let deps_file = format!("{CODE_DIR}/{dep_name}");
    let mut steps = Vec::new();
    // With `+deps` the file comes from the archive, not from `spec.deps`.
    if !deps.is_empty() && !plan.content_type.deps {
        let sha = crate::sha256_hex(deps.as_bytes());
        steps.push(format!("echo '{sha}  {deps_file}' > /tmp/deps.sha256"));
        steps.push("sha256sum -c /tmp/deps.sha256".into());
    }
    steps.push(command.to_owned());
    // The packages' install scripts run here: as the function's user, never root.
    kelp_step(plan, inputs, phase, Step::Install.name(), &steps, &[("KUBELESS_DEPS_FILE", &deps_file)])
}

/// `build`: a compiled language's function built by `kelp-runtime --build` ([`Step::Build`])
/// into the dependency cache, once per content on the node (an instance on the same node, a
/// restarted pod or a scaled-out one finds it there and builds nothing). Its log's last lines
/// (the compiler's first errors) become its termination message when it fails.
fn build(plan: &Plan<'_>, inputs: &Inputs<'_>, phase: &PhaseImage) -> Container {
    let own = [("MOD_NAME", inputs.handler.module), ("FUNC_HANDLER", inputs.handler.function)];
    let mut build = kelp_step(plan, inputs, phase, Step::Build.name(), &[kelp_runtime(Step::Build)], &own);
    build.termination_message_policy = Some("FallbackToLogsOnError".into());
    build
}

/// The command line of `step`: `kelp-runtime <args>`.
fn kelp_runtime(step: Step) -> String {
    std::iter::once("kelp-runtime").chain(step.args().iter().copied()).collect::<Vec<_>>().join(" ")
}

/// One of Kelp's own steps in the phase's image, running `steps` (`sh -c`, joined with `&&`) in
/// the code directory as the function's user (never root), with the dependency cache mounted
/// and writable, the scratch `/tmp` as `HOME`, no ServiceAccount token, the function's
/// environment without its Secret-valued variables (those are for the function), then `own`
/// and the phase's environment.
fn kelp_step(
    plan: &Plan<'_>,
    inputs: &Inputs<'_>,
    phase: &PhaseImage,
    name: &str,
    steps: &[String],
    own: &[(&str, &str)],
) -> Container {
    let runtime = plan.function.spec.runtime.as_deref().unwrap_or_default();
    let user_env: Vec<EnvVar> = inputs
        .user_env
        .iter()
        .filter(|e| e.value_from.as_ref().is_none_or(|from| from.secret_key_ref.is_none()))
        .cloned()
        .collect();
    let mut kelp_env = own.to_vec();
    kelp_env.extend([
        ("FUNC_RUNTIME", runtime),
        ("KELP_DEPS_DIR", DEPS_DIR),
        (NAMESPACE_ENV, plan.namespace()),
        // The root file system is read-only: the tools' caches go to the scratch volume.
        ("HOME", "/tmp"),
    ]);
    let env = phase_env(&user_env, phase, &kelp_env);
    let mounts = vec![
        code_mount(plan),
        mount(DEPS_VOLUME, DEPS_DIR, false),
        mount(TMP_VOLUME, "/tmp", false),
        mount(NO_TOKEN_VOLUME, TOKEN_DIR, true),
    ];
    Container {
        name: name.into(),
        image: Some(phase.image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(vec!["sh".into(), "-c".into()]),
        args: Some(vec![shell::escape_kubelet(&steps.join(" && "))]),
        working_dir: Some(CODE_DIR.into()),
        env: Some(env),
        volume_mounts: Some(mounts),
        resources: inputs.resources.clone(),
        security_context: Some(restricted(RUNTIME_USER)),
        ..Container::default()
    }
}

/// `fetch`: an `install` container running [`FETCH_DEPS_COMMAND`], given the phase's Secrets
/// (`secrets`) and the dependency cache read-only: it downloads into [`STAGE_DIR`], running
/// none of the packages' code, what `install` then installs offline.
fn fetch(mut fetch: Container, secrets: Vec<VolumeMount>) -> Container {
    fetch.name = "fetch".into();
    set_env(fetch.env.get_or_insert_default(), STAGE_ENV, STAGE_DIR);
    let mounts = fetch.volume_mounts.get_or_insert_default();
    for deps in mounts.iter_mut().filter(|m| m.name == DEPS_VOLUME) {
        deps.read_only = Some(true);
    }
    mounts.extend(secrets);
    fetch
}

/// The security context of Kelp's own init containers: `user`, no privilege escalation, no
/// capability, a read-only root file system.
fn restricted(user: i64) -> SecurityContext {
    SecurityContext {
        run_as_user: Some(user),
        run_as_group: Some(user),
        run_as_non_root: Some(user != 0),
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), ..Capabilities::default() }),
        read_only_root_filesystem: Some(true),
        ..SecurityContext::default()
    }
}

/// Adds the scratch `/tmp` and the empty token volume of Kelp's init containers (once).
fn add_scratch_volumes(volumes: &mut Vec<Volume>) {
    for name in [TMP_VOLUME, NO_TOKEN_VOLUME] {
        if !volumes.iter().any(|v| v.name == name) {
            volumes.push(Volume { name: name.into(), empty_dir: Some(Default::default()), ..Volume::default() });
        }
    }
}

/// `compile`: the `compilation` phase's command.
fn compile(plan: &Plan<'_>, inputs: &Inputs<'_>, phase: &PhaseImage, volumes: &mut Vec<Volume>) -> Container {
    let env = phase_env(inputs.user_env, phase, &[("KUBELESS_FUNC_NAME", inputs.handler.function)]);
    let mut mounts = vec![code_mount(plan)];
    mounts.extend(phase_secrets(phase, volumes));
    Container {
        name: "compile".into(),
        image: Some(phase.image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(vec!["sh".into(), "-c".into()]),
        args: Some(vec![shell::escape_kubelet(&phase.command)]),
        working_dir: Some(CODE_DIR.into()),
        env: Some(env),
        volume_mounts: Some(mounts),
        resources: inputs.resources.clone(),
        ..Container::default()
    }
}

/// The environment of a phase's container: `user_env`, `KUBELESS_INSTALL_VOLUME`, `own`, then
/// the phase's.
fn phase_env(user_env: &[EnvVar], phase: &PhaseImage, own: &[(&str, &str)]) -> Vec<EnvVar> {
    let mut env = user_env.to_vec();
    set_env(&mut env, "KUBELESS_INSTALL_VOLUME", CODE_DIR);
    for (name, value) in own {
        set_env(&mut env, name, value);
    }
    for (name, value) in &phase.env {
        set_env(&mut env, name, value);
    }
    env
}

/// The dependency cache: the namespace's directory `<dependency-cache-path>/<namespace>` on the
/// node, or an `emptyDir`.
fn cache_volume(plan: &Plan<'_>) -> Result<Volume, PlanError> {
    let host_path = match plan.config.dependency_cache_path.as_deref() {
        Some(path) => {
            let namespace = plan.namespace();
            // A namespace name cannot climb out of the cache (no `/`, no `..`); check anyway,
            // since this one becomes a node path.
            kelp_api::check_dns1123_subdomain(namespace).map_err(|e| PlanError::invalid("metadata.namespace", e))?;
            Some(HostPathVolumeSource {
                path: format!("{}/{namespace}", path.trim_end_matches('/')),
                type_: Some("DirectoryOrCreate".into()),
            })
        }
        None => None,
    };
    Ok(Volume {
        name: DEPS_VOLUME.into(),
        empty_dir: host_path.is_none().then(Default::default),
        host_path,
        ..Volume::default()
    })
}

/// The phase's Secrets: one volume each (added to `volumes` once), mounted read-only.
fn phase_secrets(phase: &PhaseImage, volumes: &mut Vec<Volume>) -> Vec<VolumeMount> {
    phase
        .secrets
        .iter()
        .map(|secret| {
            if !volumes.iter().any(|v| v.name == secret.name) {
                volumes.push(Volume {
                    name: secret.name.clone(),
                    secret: Some(SecretVolumeSource { secret_name: Some(secret.name.clone()), ..Default::default() }),
                    ..Volume::default()
                });
            }
            mount(&secret.name, &format!("{SECRETS_DIR}/{}", secret.name), true)
        })
        .collect()
}

/// The code volume `<fn>` at `/kubeless`.
pub(super) fn code_mount(plan: &Plan<'_>) -> VolumeMount {
    mount(plan.name, CODE_DIR, false)
}

/// A volume mount.
pub(super) fn mount(volume: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: volume.into(),
        mount_path: path.into(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    }
}
