//! What a Function becomes: rollouts, images, dependencies, merges and errors.

mod support;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
use kelp_api::Function;
use kelp_plan::{Config, FUNCTION_HASH_ANNOTATION, FunctionChildren, PlanError, function_children};
use serde_json::{Value, json};
use support::function;

fn plan(function: &Function) -> FunctionChildren {
    function_children(function, &Config::default()).unwrap()
}

fn template(function: &Function) -> PodTemplateSpec {
    plan(function).deployment.spec.unwrap().template
}

fn pod(deployment: &Deployment) -> &PodSpec {
    deployment.spec.as_ref().unwrap().template.spec.as_ref().unwrap()
}

fn init_names(deployment: &Deployment) -> Vec<&str> {
    pod(deployment).init_containers.iter().flatten().map(|c| c.name.as_str()).collect()
}

fn env(container: &Container) -> BTreeMap<&str, &str> {
    container.env.iter().flatten().map(|e| (e.name.as_str(), e.value.as_deref().unwrap_or_default())).collect()
}

fn with_labels(function: &Function, labels: Value) -> Function {
    let mut function = function.clone();
    function.metadata.labels = serde_json::from_value(labels).unwrap();
    function
}

#[test]
fn runtime_label_and_code_changes_roll_the_pods_and_nothing_else_does() {
    let base = function(json!({}));
    let before = template(&base);
    assert_eq!(template(&base), before, "planning twice changes the pod template");

    let hash = |t: &PodTemplateSpec| {
        t.metadata.as_ref().unwrap().annotations.as_ref().unwrap()[FUNCTION_HASH_ANNOTATION].clone()
    };
    for (what, changed) in [
        ("runtime", function(json!({"runtime": "python3.9"}))),
        ("label", with_labels(&base, json!({"team": "a"}))),
        ("code without a checksum", function(json!({"function": "def world(e, c): return 'bye'"}))),
        ("timeout", function(json!({"timeout": "30"}))),
    ] {
        let after = template(&changed);
        assert_ne!(after, before, "a {what} change keeps the pod template");
        assert_ne!(hash(&after), hash(&before), "a {what} change keeps the hash");
    }
    for (what, unchanged) in [
        ("service type", function(json!({"service": {"type": "NodePort"}}))),
        ("autoscaler", {
            let hpa = json!({"metadata": {"name": "fn"}, "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "fn"},
                "maxReplicas": 3, "targetCPUUtilizationPercentage": 50}});
            function(json!({"horizontalPodAutoscaler": hpa}))
        }),
    ] {
        assert_eq!(template(&unchanged), before, "a {what} change rolls the pods");
    }
}

#[test]
fn a_custom_image_runs_as_is_without_code_or_dependencies() {
    let image = json!({"spec": {"template": {"spec": {"containers": [{"image": "team/fn:1"}]}}}});
    let custom = function(json!({"deployment": image, "deps": "requests"}));
    let deployment = plan(&custom).deployment;
    let pod = pod(&deployment);
    assert_eq!(pod.containers[0].image.as_deref(), Some("team/fn:1"));
    assert!(pod.init_containers.is_none(), "{:?}", pod.init_containers);
    assert!(pod.volumes.is_none(), "{:?}", pod.volumes);
    assert!(pod.containers[0].volume_mounts.is_none());
    assert_eq!(env(&pod.containers[0])["FUNC_HANDLER"], "world");

    // Neither handler nor runtime is needed with an image.
    let bare = function(json!({"deployment": image, "handler": "", "runtime": "", "function": ""}));
    let bare = plan(&bare).deployment;
    let names: Vec<&str> = env(&self::pod(&bare).containers[0]).into_keys().collect();
    assert_eq!(names, ["FUNC_PORT", "KELP_LISTEN"]);
}

#[test]
fn code_runs_in_the_runtime_image_after_prepare() {
    let deployment = plan(&function(json!({}))).deployment;
    assert_eq!(init_names(&deployment), ["prepare"]);
    let pod = pod(&deployment);
    let container = &pod.containers[0];
    assert_eq!(container.name, "fn");
    assert_eq!(container.image.as_deref(), Some(format!("kelp/runtime-python:{}", env!("CARGO_PKG_VERSION")).as_str()));
    let order: Vec<&str> = container.env.iter().flatten().map(|e| e.name.as_str()).collect();
    assert_eq!(
        order,
        [
            "FUNC_HANDLER",
            "MOD_NAME",
            "FUNC_TIMEOUT",
            "FUNC_RUNTIME",
            "FUNC_MEMORY_LIMIT",
            "FUNC_PORT",
            "KUBELESS_INSTALL_VOLUME",
            "KELP_LISTEN"
        ]
    );
    let volumes: Vec<&str> = pod.volumes.iter().flatten().map(|v| v.name.as_str()).collect();
    assert_eq!(volumes, ["fn", "fn-deps", "kelp-tmp", "kelp-no-token"]);
}

#[test]
fn dependencies_are_installed_once_into_the_namespaces_node_cache() {
    let deployment = plan(&function(json!({"deps": "requests==2.25.1\n"}))).deployment;
    assert_eq!(init_names(&deployment), ["prepare", "cache-owner", "install"]);
    let pod = pod(&deployment);
    let install = &pod.init_containers.as_ref().unwrap()[2];
    let args = &install.args.as_ref().unwrap()[0];
    assert!(args.ends_with("sha256sum -c /tmp/deps.sha256 && kelp-runtime --install-deps"), "{args}");
    assert_eq!(env(install)["KELP_DEPS_DIR"], "/kelp-deps");
    assert_eq!(env(install)["KELP_NAMESPACE"], "ns");
    assert_eq!(env(install)["KUBELESS_DEPS_FILE"], "/kubeless/requirements.txt");
    let cache = pod.volumes.iter().flatten().find(|v| v.name == "kelp-deps").unwrap();
    let host_path = cache.host_path.as_ref().unwrap();
    assert_eq!(
        (host_path.path.as_str(), host_path.type_.as_deref()),
        ("/var/cache/kelp/ns", Some("DirectoryOrCreate"))
    );

    let container = &pod.containers[0];
    assert_eq!(env(container)["KELP_DEPS_DIR"], "/kelp-deps");
    assert_eq!(env(container)["KELP_NAMESPACE"], "ns");
    let mount = container.volume_mounts.iter().flatten().find(|m| m.name == "kelp-deps").unwrap();
    assert_eq!((mount.mount_path.as_str(), mount.read_only), ("/kelp-deps", Some(true)));
}

/// The node cache of one namespace is not another's: a tenant's install scripts cannot plant an
/// install that another namespace's functions load.
#[test]
fn two_namespaces_get_two_cache_directories() {
    let cache_path = |namespace: &str| {
        let mut function = function(json!({"deps": "requests"}));
        function.metadata.namespace = Some(namespace.into());
        let deployment = plan(&function).deployment;
        let volume = pod(&deployment).volumes.iter().flatten().find(|v| v.name == "kelp-deps").cloned().unwrap();
        volume.host_path.unwrap().path
    };
    assert_eq!(cache_path("team-a"), "/var/cache/kelp/team-a");
    assert_eq!(cache_path("team-b"), "/var/cache/kelp/team-b");
}

/// The packages' install scripts run in `install`: never as root, without capabilities, a
/// writable root, a ServiceAccount token or Secrets other than the phase's; only `cache-owner`,
/// which runs one fixed `chown` and nothing of the user's, is root (with `CHOWN` alone).
#[test]
fn the_init_containers_run_as_the_function_user_without_privileges() {
    let user_env = json!({"spec": {"template": {"spec": {"serviceAccountName": "reader",
        "securityContext": {"runAsUser": 0},
        "containers": [{"env": [{"name": "A", "value": "a"},
            {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}]}]}}}});
    let deployment = plan(&function(json!({"deps": "requests", "deployment": user_env}))).deployment;
    let pod = pod(&deployment);
    let init = pod.init_containers.as_ref().unwrap();
    for container in init.iter().filter(|c| c.name != "cache-owner") {
        let security = container.security_context.as_ref().unwrap();
        let name = &container.name;
        assert_eq!((security.run_as_user, security.run_as_group), (Some(1000), Some(1000)), "{name}");
        assert_eq!(security.run_as_non_root, Some(true), "{name}");
        assert_eq!(security.allow_privilege_escalation, Some(false), "{name}");
        assert_eq!(security.read_only_root_filesystem, Some(true), "{name}");
        let capabilities = security.capabilities.as_ref().unwrap();
        assert_eq!((capabilities.drop.as_deref(), capabilities.add.as_deref()), (Some(&["ALL".to_owned()][..]), None));
    }
    let owner = init.iter().find(|c| c.name == "cache-owner").unwrap();
    assert_eq!(owner.command.as_deref().unwrap(), ["chown", "1000:1000", "/kelp-deps"]);
    assert!(owner.env.is_none() && owner.args.is_none(), "{owner:?}");
    let security = owner.security_context.as_ref().unwrap();
    assert_eq!((security.run_as_user, security.allow_privilege_escalation), (Some(0), Some(false)));
    let capabilities = security.capabilities.as_ref().unwrap();
    assert_eq!(capabilities.add.as_deref().unwrap(), ["CHOWN"]);

    for container in init {
        let mounts: Vec<(&str, &str)> =
            container.volume_mounts.iter().flatten().map(|m| (m.name.as_str(), m.mount_path.as_str())).collect();
        assert!(
            mounts.contains(&("kelp-no-token", "/var/run/secrets/kubernetes.io/serviceaccount")),
            "{}: {mounts:?}",
            container.name
        );
        assert!(mounts.iter().all(|(_, path)| !path.starts_with("/var/run/secrets/kubeless.io")), "{mounts:?}");
    }
    let install = init.iter().find(|c| c.name == "install").unwrap();
    let secret_env: Vec<&str> = install
        .env
        .iter()
        .flatten()
        .filter(|e| e.value_from.as_ref().is_some_and(|v| v.secret_key_ref.is_some()))
        .map(|e| e.name.as_str())
        .collect();
    assert!(secret_env.is_empty(), "{secret_env:?}");
    assert_eq!(env(install)["A"], "a", "the function's plain environment (proxies) still reaches install");
    let function_env = env(&pod.containers[0]);
    assert!(function_env.contains_key("DB_PASSWORD"), "the function keeps its Secret: {function_env:?}");
    assert!(install.env_from.is_none());
    // The function named its account, so the pod keeps the token (for the function only).
    assert_eq!(pod.automount_service_account_token, None);
}

/// A `kubeless-config` whose `installation` phases all carry `secrets` (and `command`, when
/// given, instead of Kelp's).
fn config_with_installation_secrets(command: Option<&str>) -> Config {
    let mut data = Config::default_data();
    let mut runtimes: Value = serde_json::from_str(&data["runtime-images"]).unwrap();
    for version in runtimes.as_array_mut().unwrap().iter_mut().flat_map(|r| r["versions"].as_array_mut().unwrap()) {
        for image in version["images"].as_array_mut().unwrap().iter_mut().filter(|i| i["phase"] == "installation") {
            image["secrets"] = json!([{"name": "pip-index"}]);
            if let Some(command) = command {
                image["command"] = command.into();
            }
        }
    }
    data.insert("runtime-images".into(), runtimes.to_string());
    Config::from_data(&data).unwrap()
}

fn mounts(container: &Container) -> Vec<(&str, &str, bool)> {
    let mounts = container.volume_mounts.iter().flatten();
    mounts.map(|m| (m.name.as_str(), m.mount_path.as_str(), m.read_only == Some(true))).collect()
}

/// The installation phase's Secrets (a private index's credentials) go to `fetch`, which runs no
/// package code, and never to `install`, where the packages' install scripts run: it installs
/// offline from the stage `fetch` filled. A command of the operator's own keeps them (it cannot
/// be split), and without Secrets there is one `install`, as before.
#[test]
fn the_installation_secrets_reach_fetch_and_never_the_install_scripts() {
    let with_deps = function(json!({"deps": "requests"}));
    let deployment = function_children(&with_deps, &config_with_installation_secrets(None)).unwrap().deployment;
    assert_eq!(init_names(&deployment), ["prepare", "cache-owner", "fetch", "install"]);
    let pod = pod(&deployment);
    let init = pod.init_containers.as_ref().unwrap();
    let (fetch, install) = (&init[2], &init[3]);
    let secret = ("pip-index", "/var/run/secrets/kubeless.io/pip-index", true);
    assert!(mounts(fetch).contains(&secret), "{:?}", mounts(fetch));
    assert!(mounts(fetch).contains(&("kelp-deps", "/kelp-deps", true)), "fetch writes no install");
    assert!(mounts(fetch).contains(&("kelp-tmp", "/tmp", false)), "the stage is on the shared scratch volume");
    assert!(fetch.args.as_ref().unwrap()[0].ends_with("kelp-runtime --fetch-deps"), "{:?}", fetch.args);
    assert!(mounts(install).iter().all(|(name, path, _)| *name != "pip-index" && !path.contains("kubeless.io")));
    assert!(mounts(install).contains(&("kelp-tmp", "/tmp", false)));
    assert!(install.args.as_ref().unwrap()[0].ends_with("kelp-runtime --install-deps"), "{:?}", install.args);
    for container in [fetch, install] {
        assert_eq!(env(container)["KELP_DEPS_STAGE"], "/tmp/kelp-deps-stage", "{}", container.name);
        assert_eq!(container.security_context, install.security_context, "{}", container.name);
        assert_eq!(container.image, install.image);
    }
    let volumes: Vec<&str> = pod.volumes.iter().flatten().map(|v| v.name.as_str()).collect();
    assert_eq!(volumes.iter().filter(|v| **v == "pip-index").count(), 1, "{volumes:?}");

    let custom = config_with_installation_secrets(Some("pip install --prefix=$KUBELESS_INSTALL_VOLUME -r req.txt"));
    let deployment = function_children(&with_deps, &custom).unwrap().deployment;
    assert_eq!(init_names(&deployment), ["prepare", "cache-owner", "install"]);
    let install = &self::pod(&deployment).init_containers.as_ref().unwrap()[2];
    assert!(mounts(install).contains(&secret), "{:?}", mounts(install));

    let deployment = plan(&with_deps).deployment;
    assert_eq!(init_names(&deployment), ["prepare", "cache-owner", "install"]);
    let install = &self::pod(&deployment).init_containers.as_ref().unwrap()[2];
    assert!(!env(install).contains_key("KELP_DEPS_STAGE"), "{:?}", env(install));
}

#[test]
fn a_function_gets_no_api_token_unless_it_asks_for_one() {
    let deployment = plan(&function(json!({}))).deployment;
    assert_eq!(pod(&deployment).automount_service_account_token, Some(false));
    for asks in [json!({"serviceAccountName": "reader"}), json!({"automountServiceAccountToken": true})] {
        let template = json!({"spec": {"template": {"spec": asks}}});
        let deployment = plan(&function(json!({"deployment": template}))).deployment;
        let pod = pod(&deployment);
        assert_ne!(pod.automount_service_account_token, Some(false), "{asks}");
    }
}

#[test]
fn bundled_dependencies_are_installed_without_checking_spec_deps() {
    let bundled = function(json!({"function": "https://example.test/f.zip", "function-content-type": "url+zip+deps",
        "deps": "ignored"}));
    let deployment = plan(&bundled).deployment;
    let init = pod(&deployment).init_containers.clone().unwrap();
    assert_eq!(init[2].args.as_ref().unwrap(), &["kelp-runtime --install-deps"]);
    let prepare = &init[0].args.as_ref().unwrap()[0];
    assert!(prepare.starts_with("curl 'https://example.test/f.zip' -L"), "{prepare}");
    assert!(!prepare.contains("requirements.txt"), "{prepare}");
}

#[test]
fn the_users_entries_are_kept_once() {
    let user = json!({"spec": {"template": {"spec": {
        "imagePullSecrets": [{"name": "mine"}],
        "initContainers": [{"name": "", "resources": {"limits": {"cpu": "1"}}}, {"name": "warm", "image": "busybox"}],
        "containers": [{"env": [{"name": "FUNC_PORT", "value": "1"}, {"name": "A", "value": "a"}],
            "ports": [{"containerPort": 8080, "protocol": "TCP"}]}]}}}});
    let mut data = Config::default_data();
    data.insert("provision-image-secret".into(), "pull".into());
    let config = Config::from_data(&data).unwrap();
    let deployment = function_children(&function(json!({"deployment": user})), &config).unwrap().deployment;
    let pod = pod(&deployment);
    let container = &pod.containers[0];
    let names: Vec<&str> = container.env.iter().flatten().map(|e| e.name.as_str()).collect();
    assert_eq!(names.iter().filter(|n| **n == "FUNC_PORT").count(), 1, "{names:?}");
    assert_eq!(env(container)["FUNC_PORT"], "8080");
    assert_eq!(names[0], "A");
    assert_eq!(container.ports.as_ref().unwrap().len(), 1);
    assert_eq!(init_names(&deployment), ["prepare", "warm"]);
    let prepare = &pod.init_containers.as_ref().unwrap()[0];
    assert_eq!(prepare.resources.as_ref().unwrap().limits.as_ref().unwrap()["cpu"].0, "1");
    let secrets: Vec<&str> = pod.image_pull_secrets.iter().flatten().map(|s| s.name.as_str()).collect();
    assert_eq!(secrets, ["mine", "pull"]);
}

#[test]
fn the_config_template_fills_what_the_function_leaves_empty() {
    let mut data = Config::default_data();
    data.insert(
        "deployment".into(),
        "spec:\n  replicas: 3\n  template:\n    spec:\n      nodeSelector: {pool: fns}\n      containers:\n      - env: [{name: PROXY, value: http://proxy}]\n".into(),
    );
    let config = Config::from_data(&data).unwrap();
    let deployment = function_children(&function(json!({})), &config).unwrap().deployment;
    assert_eq!(deployment.spec.as_ref().unwrap().replicas, Some(3));
    let pod = pod(&deployment);
    assert_eq!(pod.node_selector.as_ref().unwrap()["pool"], "fns");
    assert_eq!(env(&pod.containers[0])["PROXY"], "http://proxy");
}

#[test]
fn an_autoscaled_deployment_leaves_its_replicas_to_the_autoscaler() {
    let hpa = json!({"metadata": {"name": "other"}, "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "other"},
        "minReplicas": 2, "maxReplicas": 3, "targetCPUUtilizationPercentage": 50}});
    let replicas = json!({"spec": {"replicas": 2}});
    let children = plan(&function(json!({"horizontalPodAutoscaler": hpa, "deployment": replicas})));
    assert_eq!(children.deployment.spec.unwrap().replicas, None);
    let hpa = children.hpa.unwrap();
    assert_eq!(hpa.metadata.name.as_deref(), Some("fn"));
    assert_eq!(hpa.spec.unwrap().scale_target_ref.name, "fn");
    assert_eq!(plan(&function(json!({"deployment": replicas}))).deployment.spec.unwrap().replicas, Some(2));
    assert!(plan(&function(json!({}))).hpa.is_none());
}

#[test]
fn selector_and_labels_always_name_the_function() {
    let labelled = with_labels(&function(json!({})), json!({"function": "other", "app": "x"}));
    let children = plan(&labelled);
    let labels = children.deployment.metadata.labels.unwrap();
    assert_eq!(
        (labels["function"].as_str(), labels["created-by"].as_str(), labels["app"].as_str()),
        ("fn", "kubeless", "x")
    );
    let selector = children.deployment.spec.unwrap().selector.match_labels.unwrap();
    assert_eq!(selector, BTreeMap::from([("created-by".into(), "kubeless".into()), ("function".into(), "fn".into())]));
    assert_eq!(children.service.spec.unwrap().selector.unwrap(), selector);
}

#[test]
fn errors_name_what_is_wrong() {
    let err = |f: Function| function_children(&f, &Config::default()).unwrap_err();
    match err(function(json!({"runtime": "ruby2.6"}))) {
        PlanError::UnknownRuntime { runtime, available } => {
            assert_eq!(runtime, "ruby2.6");
            assert!(available.contains(&"python3.12".to_owned()) && available.contains(&"nodejs22".to_owned()));
        }
        other => panic!("{other:?}"),
    }
    let cases = [
        (function(json!({"handler": "a.b.c"})), "spec.handler"),
        (function(json!({"function": ""})), "spec.function"),
        (function(json!({"runtime": ""})), "spec.runtime"),
        (function(json!({"timeout": "soon"})), "spec.timeout"),
        // Stored before the bound, or written straight to etcd: refused, not overflowing.
        (function(json!({"timeout": "18446744073709551615"})), "spec.timeout"),
        (function(json!({"handler": "/etc/cron.d/x.hello"})), "spec.handler"),
        (function(json!({"checksum": "md5:0"})), "spec.checksum"),
        (function(json!({"function-content-type": "gzip"})), "spec.function-content-type"),
        (
            function(json!({"service": {"ports": [{"port": 80, "targetPort": "http"}]}})),
            "spec.service.ports[0].targetPort",
        ),
    ];
    for (function, field) in cases {
        assert!(
            matches!(err(function.clone()), PlanError::Invalid { field: f, .. } if f == field),
            "{field}: {:?}",
            err(function)
        );
    }
    let mut no_uid = function(json!({}));
    no_uid.metadata.uid = None;
    assert_eq!(err(no_uid), PlanError::MissingUid { kind: "Function", name: "fn".into() });
}
