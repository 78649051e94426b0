//! `kelp function deploy` / `update`: flags → a `Function` (as the kubeless CLI built it) or a
//! JSON merge patch that changes only what the flags given say.

use std::collections::BTreeMap;

use kelp_api::{Function, check_dns1123_subdomain};
use serde_json::{Map, Value, json};

use super::content::Code;
use super::{API_VERSION, BuildError, check_resource_flag, to_object};

/// Name of the function Service's port (what `call`, `top` and the serverless plugin use).
pub(crate) const PORT_NAME: &str = "http-function-port";
/// `--port` when not given on `deploy`.
pub(crate) const DEFAULT_PORT: i32 = 8080;
/// `--timeout` when not given on `deploy`.
pub(crate) const DEFAULT_TIMEOUT: &str = "180";
/// `--image-pull-policy` when not given on `deploy`.
pub(crate) const DEFAULT_IMAGE_PULL_POLICY: &str = "Always";
/// The values `--image-pull-policy` takes.
pub(crate) const IMAGE_PULL_POLICIES: [&str; 3] = ["IfNotPresent", "Always", "Never"];

/// What the flags of `deploy`/`update` say, with files and URLs already read. `None` / empty
/// means "not given": `deploy` applies the kubeless CLI's defaults, `update` keeps the value.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct FunctionFlags {
    /// `--handler`.
    pub(crate) handler: Option<String>,
    /// `-r/--runtime`.
    pub(crate) runtime: Option<String>,
    /// `-f/--from-file`, read.
    pub(crate) code: Option<Code>,
    /// `-d/--dependencies`, read.
    pub(crate) deps: Option<String>,
    /// `-l/--label`, parsed.
    pub(crate) labels: BTreeMap<String, String>,
    /// `-e/--env`, parsed, in order.
    pub(crate) env: Vec<(String, String)>,
    /// `--secrets`.
    pub(crate) secrets: Vec<String>,
    /// `--node-selectors`, parsed.
    pub(crate) node_selectors: BTreeMap<String, String>,
    /// `--service-account`.
    pub(crate) service_account: Option<String>,
    /// `--memory`.
    pub(crate) memory: Option<String>,
    /// `--cpu`.
    pub(crate) cpu: Option<String>,
    /// `--runtime-image`.
    pub(crate) runtime_image: Option<String>,
    /// `--image-pull-policy`.
    pub(crate) image_pull_policy: Option<String>,
    /// `--timeout`.
    pub(crate) timeout: Option<String>,
    /// `--headless` (`--headless=false` undoes it on update).
    pub(crate) headless: Option<bool>,
    /// `--port`.
    pub(crate) port: Option<i32>,
    /// `--servicePort`.
    pub(crate) service_port: Option<i32>,
}

impl FunctionFlags {
    /// Checks what can be checked on the flags alone.
    fn check(&self) -> Result<(), BuildError> {
        if let Some(policy) = &self.image_pull_policy
            && !IMAGE_PULL_POLICIES.contains(&policy.as_str())
        {
            return Err(BuildError::Flag(format!(
                "--image-pull-policy must be one of {} (got {policy:?})",
                IMAGE_PULL_POLICIES.join(", ")
            )));
        }
        for (flag, port) in [("--port", self.port), ("--servicePort", self.service_port)] {
            if let Some(port) = port
                && !(1..=65535).contains(&port)
            {
                return Err(BuildError::Flag(format!("Invalid port number {port} specified for {flag} (1-65535)")));
            }
        }
        if let Some(memory) = &self.memory {
            check_resource_flag("--memory", memory)?;
        }
        if let Some(cpu) = &self.cpu {
            check_resource_flag("--cpu", cpu)?;
        }
        for secret in &self.secrets {
            check_dns1123_subdomain(secret)
                .map_err(|reason| BuildError::Flag(format!("--secrets {secret:?}: {reason}")))?;
        }
        if self.env.iter().any(|(name, _)| name.is_empty()) {
            return Err(BuildError::Flag("--env: a variable name is empty".to_owned()));
        }
        Ok(())
    }

    /// Whether any flag changes `deployment.spec.template.spec.containers[0]`.
    fn touches_container(&self) -> bool {
        !self.env.is_empty()
            || !self.secrets.is_empty()
            || self.memory.is_some()
            || self.cpu.is_some()
            || self.runtime_image.is_some()
            || self.image_pull_policy.is_some()
    }

    /// Whether any flag changes `spec.service`.
    fn touches_service(&self) -> bool {
        self.port.is_some() || self.service_port.is_some() || self.headless.is_some()
    }
}

/// The Function `kelp function deploy <name>` creates, as the kubeless CLI built it: labels
/// `created-by: kubeless` and `function: <name>` plus `--label`s; every string spec field
/// written (empty when not given); `timeout: "180"`; `containers[0]` with `imagePullPolicy`
/// (`Always`), `env`, `resources` and `image`; Secrets as volumes `<s>-vol` at `/<s>`; a
/// ClusterIP Service port `http-function-port` 8080 selecting the function's labels.
///
/// Unlike the kubeless CLI, `--memory` alone does not write a `cpu: "0"` request and limit (nor
/// `--cpu` alone a memory one).
pub(crate) fn new_function(name: &str, namespace: &str, flags: &FunctionFlags) -> Result<Value, BuildError> {
    flags.check()?;
    if flags.runtime.is_none() && flags.runtime_image.is_none() {
        return Err(BuildError::Flag("Either `--runtime` or `--runtime-image` flag must be specified.".to_owned()));
    }
    if flags.runtime.is_some() && flags.handler.is_none() {
        return Err(BuildError::Flag(
            "You must specify handler for the runtime (--handler module.function).".to_owned(),
        ));
    }
    if flags.runtime.is_some() && flags.runtime_image.is_none() && flags.code.is_none() {
        return Err(BuildError::Flag(
            "--from-file is required with --runtime: the function's code (a file or URL)".to_owned(),
        ));
    }

    let mut labels =
        BTreeMap::from([("created-by".to_owned(), "kubeless".to_owned()), ("function".to_owned(), name.to_owned())]);
    labels.extend(flags.labels.clone());

    let mut container = json!({
        "name": "",
        "imagePullPolicy": flags.image_pull_policy.as_deref().unwrap_or(DEFAULT_IMAGE_PULL_POLICY),
        "resources": {},
    });
    apply_container_flags(&mut container, flags);
    let mut pod = json!({"containers": [container]});
    let volumes: Vec<Value> = flags.secrets.iter().map(|secret| secret_volume(secret)).collect();
    if !volumes.is_empty() {
        pod["volumes"] = Value::Array(volumes);
    }
    if let Some(account) = &flags.service_account {
        pod["serviceAccountName"] = json!(account);
    }
    if !flags.node_selectors.is_empty() {
        pod["nodeSelector"] = json!(flags.node_selectors);
    }

    let port = flags.port.unwrap_or(DEFAULT_PORT);
    let mut service = json!({
        "ports": [{
            "name": PORT_NAME,
            "port": flags.service_port.unwrap_or(port),
            "protocol": "TCP",
            "targetPort": port,
        }],
        "selector": labels,
        "type": "ClusterIP",
    });
    if flags.headless == Some(true) {
        service["clusterIP"] = json!("None");
    }

    let code = flags.code.as_ref();
    Ok(json!({
        "apiVersion": API_VERSION,
        "kind": "Function",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "handler": flags.handler.as_deref().unwrap_or_default(),
            "runtime": flags.runtime.as_deref().unwrap_or_default(),
            "function": code.map(|c| c.function.as_str()).unwrap_or_default(),
            "function-content-type": code.map(|c| c.content_type.to_string()).unwrap_or_default(),
            "checksum": code.map(|c| c.checksum.as_str()).unwrap_or_default(),
            "deps": flags.deps.as_deref().unwrap_or_default(),
            "timeout": flags.timeout.as_deref().unwrap_or(DEFAULT_TIMEOUT),
            "deployment": {"spec": {"template": {"spec": pod}}},
            "service": service,
        },
    }))
}

/// The JSON merge patch `kelp function update` sends: only what the flags given change.
///
/// Maps merge (`--label`, `--node-selectors`: other keys stay). Lists cannot be merged by a
/// merge patch, so the lists a flag touches are sent whole, computed from `current`: `--env`
/// sets or adds variables by name and keeps the others; `--secrets` adds volumes and mounts that
/// are missing; `--port` changes `targetPort` (and `port` too unless it was set apart with
/// `--servicePort`). `metadata.resourceVersion` is included, so a concurrent change makes the
/// server refuse the patch instead of losing either write.
pub(crate) fn update_patch(current: &Value, flags: &FunctionFlags) -> Result<Value, BuildError> {
    flags.check()?;
    let mut patch = json!({});
    if let Some(version) = current.pointer("/metadata/resourceVersion") {
        patch["metadata"]["resourceVersion"] = version.clone();
    }
    for (key, value) in &flags.labels {
        patch["metadata"]["labels"][key] = json!(value);
    }
    let mut spec = Map::new();
    let mut set = |key: &str, value: Option<&str>| {
        if let Some(value) = value {
            spec.insert(key.to_owned(), json!(value));
        }
    };
    set("handler", flags.handler.as_deref());
    set("runtime", flags.runtime.as_deref());
    set("deps", flags.deps.as_deref());
    set("timeout", flags.timeout.as_deref());
    if let Some(code) = &flags.code {
        set("function", Some(&code.function));
        set("function-content-type", Some(&code.content_type.to_string()));
        set("checksum", Some(&code.checksum));
    }
    for (key, value) in spec {
        patch["spec"][key] = value;
    }

    let pod_path = "/spec/deployment/spec/template/spec";
    if flags.touches_container() {
        let mut containers =
            current.pointer(&format!("{pod_path}/containers")).and_then(Value::as_array).cloned().unwrap_or_default();
        if containers.is_empty() {
            containers.push(json!({"name": ""}));
        }
        apply_container_flags(&mut containers[0], flags);
        patch["spec"]["deployment"]["spec"]["template"]["spec"]["containers"] = Value::Array(containers);
    }
    if !flags.secrets.is_empty() {
        let mut volumes =
            current.pointer(&format!("{pod_path}/volumes")).and_then(Value::as_array).cloned().unwrap_or_default();
        for secret in &flags.secrets {
            let volume = secret_volume(secret);
            if !volumes.iter().any(|v| v["name"] == volume["name"]) {
                volumes.push(volume);
            }
        }
        patch["spec"]["deployment"]["spec"]["template"]["spec"]["volumes"] = Value::Array(volumes);
    }
    if let Some(account) = &flags.service_account {
        patch["spec"]["deployment"]["spec"]["template"]["spec"]["serviceAccountName"] = json!(account);
    }
    for (key, value) in &flags.node_selectors {
        patch["spec"]["deployment"]["spec"]["template"]["spec"]["nodeSelector"][key] = json!(value);
    }

    if flags.touches_service() {
        if flags.port.is_some() || flags.service_port.is_some() {
            let mut ports =
                current.pointer("/spec/service/ports").and_then(Value::as_array).cloned().unwrap_or_default();
            if ports.is_empty() {
                ports.push(
                    json!({"name": PORT_NAME, "port": DEFAULT_PORT, "protocol": "TCP", "targetPort": DEFAULT_PORT}),
                );
            }
            let first = &mut ports[0];
            if let Some(port) = flags.port {
                let separate_service_port = first.get("port").is_some_and(|p| Some(p) != first.get("targetPort"));
                if !separate_service_port {
                    first["port"] = json!(port);
                }
                first["targetPort"] = json!(port);
            }
            if let Some(service_port) = flags.service_port {
                first["port"] = json!(service_port);
            }
            patch["spec"]["service"]["ports"] = Value::Array(ports);
        }
        match flags.headless {
            Some(true) => patch["spec"]["service"]["clusterIP"] = json!("None"),
            Some(false) if current.pointer("/spec/service/clusterIP") == Some(&json!("None")) => {
                patch["spec"]["service"]["clusterIP"] = Value::Null;
            }
            _ => {}
        }
    }

    let changes = patch.as_object().map_or(0, |p| p.keys().filter(|k| *k != "metadata").count())
        + patch.pointer("/metadata/labels").map_or(0, |_| 1);
    if changes == 0 {
        return Err(BuildError::Flag(
            "nothing to update: give at least one flag to change (see 'kelp function update --help')".to_owned(),
        ));
    }
    Ok(patch)
}

/// `current` with `patch` applied, decoded and validated: what the server will store.
pub(crate) fn patched_function(current: &Value, patch: &Value) -> Result<Function, BuildError> {
    let mut merged = current.clone();
    json_patch::merge(&mut merged, patch);
    to_object("Function", &merged)
}

/// Sets what the flags say on a container (JSON), keeping everything else.
fn apply_container_flags(container: &mut Value, flags: &FunctionFlags) {
    if !flags.env.is_empty() {
        let mut env = container.get("env").and_then(Value::as_array).cloned().unwrap_or_default();
        for (name, value) in &flags.env {
            let var = if value.is_empty() { json!({"name": name}) } else { json!({"name": name, "value": value}) };
            match env.iter_mut().find(|e| e["name"] == json!(name)) {
                Some(existing) => *existing = var,
                None => env.push(var),
            }
        }
        container["env"] = Value::Array(env);
    }
    for (resource, value) in [("memory", &flags.memory), ("cpu", &flags.cpu)] {
        if let Some(value) = value {
            container["resources"]["limits"][resource] = json!(value);
            container["resources"]["requests"][resource] = json!(value);
        }
    }
    if let Some(image) = &flags.runtime_image {
        container["image"] = json!(image);
    }
    if let Some(policy) = &flags.image_pull_policy {
        container["imagePullPolicy"] = json!(policy);
    }
    if !flags.secrets.is_empty() {
        let mut mounts = container.get("volumeMounts").and_then(Value::as_array).cloned().unwrap_or_default();
        for secret in &flags.secrets {
            let name = format!("{secret}-vol");
            if !mounts.iter().any(|m| m["name"] == json!(name)) {
                mounts.push(json!({"name": name, "mountPath": format!("/{secret}")}));
            }
        }
        container["volumeMounts"] = Value::Array(mounts);
    }
}

/// The volume for `--secrets <secret>`.
fn secret_volume(secret: &str) -> Value {
    json!({"name": format!("{secret}-vol"), "secret": {"secretName": secret}})
}

#[cfg(test)]
mod tests {
    use kelp_api::{Conditions as _, Validate as _};

    use super::*;

    fn deploy_flags() -> FunctionFlags {
        FunctionFlags {
            handler: Some("test.foo".into()),
            runtime: Some("python3.8".into()),
            code: Some(Code::from_file("test.py", b"def foo(event, context):\n    return event[\"data\"]\n")),
            env: vec![("FOO".into(), "bar".into())],
            ..FunctionFlags::default()
        }
    }

    fn yaml_to_json(yaml: &str) -> Value {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn deploy_matches_what_the_kubeless_cli_stored() {
        // The Kubeless reference object of kelp-api's round-trip suite.
        let expected = yaml_to_json(include_str!("../../../kelp-api/tests/fixtures/function-minimal-text.yaml"));
        let built = new_function("hello", "default", &deploy_flags()).unwrap();
        assert_eq!(built, expected);
        let function = to_object::<Function>("Function", &built).unwrap();
        assert_eq!(serde_json::to_value(&function).unwrap(), expected, "round-trips through kelp-api");
    }

    #[test]
    fn deploy_with_every_flag() {
        let flags = FunctionFlags {
            labels: BTreeMap::from([("tier".into(), "web".into())]),
            env: vec![("A".into(), "1".into()), ("B".into(), String::new())],
            secrets: vec!["db-creds".into(), "api-key".into()],
            node_selectors: BTreeMap::from([("disk".into(), "ssd".into())]),
            service_account: Some("runner".into()),
            memory: Some("128Mi".into()),
            cpu: Some("250m".into()),
            image_pull_policy: Some("IfNotPresent".into()),
            timeout: Some("30".into()),
            deps: Some("requests==2.31.0\n".into()),
            headless: Some(true),
            port: Some(9090),
            service_port: Some(80),
            ..deploy_flags()
        };
        let built = new_function("web", "prod", &flags).unwrap();
        let pod = &built["spec"]["deployment"]["spec"]["template"]["spec"];
        assert_eq!(
            pod["containers"][0],
            json!({
                "name": "",
                "imagePullPolicy": "IfNotPresent",
                "env": [{"name": "A", "value": "1"}, {"name": "B"}],
                "resources": {"limits": {"cpu": "250m", "memory": "128Mi"}, "requests": {"cpu": "250m", "memory": "128Mi"}},
                "volumeMounts": [{"name": "db-creds-vol", "mountPath": "/db-creds"}, {"name": "api-key-vol", "mountPath": "/api-key"}],
            })
        );
        assert_eq!(
            pod["volumes"],
            json!([
                {"name": "db-creds-vol", "secret": {"secretName": "db-creds"}},
                {"name": "api-key-vol", "secret": {"secretName": "api-key"}},
            ])
        );
        assert_eq!(pod["serviceAccountName"], "runner");
        assert_eq!(pod["nodeSelector"], json!({"disk": "ssd"}));
        assert_eq!(
            built["spec"]["service"],
            json!({
                "clusterIP": "None",
                "ports": [{"name": "http-function-port", "port": 80, "protocol": "TCP", "targetPort": 9090}],
                "selector": {"created-by": "kubeless", "function": "web", "tier": "web"},
                "type": "ClusterIP",
            })
        );
        assert_eq!(built["metadata"]["labels"], json!({"created-by": "kubeless", "function": "web", "tier": "web"}));
        assert_eq!(built["spec"]["timeout"], "30");
        assert_eq!(built["spec"]["deps"], "requests==2.31.0\n");
        to_object::<Function>("Function", &built).unwrap();
    }

    #[test]
    fn memory_alone_writes_no_cpu() {
        let flags = FunctionFlags { memory: Some("64Mi".into()), ..deploy_flags() };
        let built = new_function("m", "default", &flags).unwrap();
        assert_eq!(
            built["spec"]["deployment"]["spec"]["template"]["spec"]["containers"][0]["resources"],
            json!({"limits": {"memory": "64Mi"}, "requests": {"memory": "64Mi"}})
        );
    }

    #[test]
    fn deploy_archives_urls_and_custom_images() {
        let zip = FunctionFlags {
            handler: Some("hellowithdeps.foo".into()),
            code: Some(Code::from_file("func.zip", b"PK\x03\x04fake zip archive bytes")),
            deps: Some("requests==2.25.1\n".into()),
            ..deploy_flags()
        };
        let built = new_function("zipped", "default", &FunctionFlags { env: vec![], ..zip }).unwrap();
        let expected = yaml_to_json(include_str!("../../../kelp-api/tests/fixtures/function-base64-zip.yaml"));
        assert_eq!(built["spec"]["function"], expected["spec"]["function"]);
        assert_eq!(built["spec"]["function-content-type"], "base64+zip");
        assert_eq!(built["spec"]["deployment"], expected["spec"]["deployment"]);
        assert_eq!(built["spec"]["deps"], expected["spec"]["deps"]);

        let url =
            FunctionFlags { code: Some(Code::from_url("https://example.com/f.tar.gz", b"tarball")), ..deploy_flags() };
        let built = new_function("fromurl", "default", &url).unwrap();
        assert_eq!(built["spec"]["function"], "https://example.com/f.tar.gz");
        assert_eq!(built["spec"]["function-content-type"], "url+compressedtar");
        assert_eq!(built["spec"]["checksum"], super::super::content::checksum(b"tarball"));
        to_object::<Function>("Function", &built).unwrap();

        let image = FunctionFlags { runtime_image: Some("me/fn:1".into()), ..FunctionFlags::default() };
        let built = new_function("custom", "default", &image).unwrap();
        assert_eq!(built["spec"]["deployment"]["spec"]["template"]["spec"]["containers"][0]["image"], "me/fn:1");
        assert_eq!(built["spec"]["handler"], "");
        let function = to_object::<Function>("Function", &built).unwrap();
        assert_eq!(function.spec.custom_image(), Some("me/fn:1"));
    }

    #[test]
    fn deploy_refuses_what_kubeless_refused() {
        let message = |flags: FunctionFlags| new_function("f", "default", &flags).unwrap_err().to_string();
        assert!(message(FunctionFlags::default()).contains("Either `--runtime` or `--runtime-image`"));
        assert!(message(FunctionFlags { handler: None, ..deploy_flags() }).contains("handler"));
        assert!(message(FunctionFlags { code: None, ..deploy_flags() }).contains("--from-file"));
        assert!(message(FunctionFlags { port: Some(0), ..deploy_flags() }).contains("Invalid port number 0"));
        assert!(message(FunctionFlags { service_port: Some(70000), ..deploy_flags() }).contains("--servicePort"));
        assert!(
            message(FunctionFlags { image_pull_policy: Some("Sometimes".into()), ..deploy_flags() })
                .contains("--image-pull-policy")
        );
        assert!(message(FunctionFlags { memory: Some("lots".into()), ..deploy_flags() }).contains("--memory"));
        assert!(message(FunctionFlags { secrets: vec!["Bad_Secret".into()], ..deploy_flags() }).contains("--secrets"));

        // What validation catches names the field.
        let built =
            new_function("f", "default", &FunctionFlags { handler: Some("nodot".into()), ..deploy_flags() }).unwrap();
        let error = to_object::<Function>("Function", &built).unwrap_err().to_string();
        assert!(error.starts_with("invalid Function \"f\": spec.handler: "), "{error}");
        let built =
            new_function("f", "default", &FunctionFlags { timeout: Some("soon".into()), ..deploy_flags() }).unwrap();
        assert!(to_object::<Function>("Function", &built).unwrap_err().to_string().contains("spec.timeout"));
        let built = new_function("Bad_Name", "default", &deploy_flags()).unwrap();
        assert!(to_object::<Function>("Function", &built).unwrap_err().to_string().contains("metadata.name"));
    }

    fn stored() -> Value {
        let mut current = new_function(
            "hello",
            "default",
            &FunctionFlags {
                labels: BTreeMap::from([("tier".into(), "web".into())]),
                env: vec![("KEEP".into(), "1".into()), ("CHANGE".into(), "old".into())],
                memory: Some("128Mi".into()),
                secrets: vec!["creds".into()],
                port: Some(8080),
                service_port: Some(80),
                timeout: Some("60".into()),
                ..deploy_flags()
            },
        )
        .unwrap();
        current["metadata"]["resourceVersion"] = json!("42");
        current["status"] = json!({"readyReplicas": 1});
        current
    }

    #[test]
    fn update_changes_only_what_the_flags_say() {
        let current = stored();
        let flags = FunctionFlags {
            env: vec![("CHANGE".into(), "new".into()), ("ADDED".into(), "x".into())],
            labels: BTreeMap::from([("stage".into(), "beta".into())]),
            ..FunctionFlags::default()
        };
        let patch = update_patch(&current, &flags).unwrap();
        assert_eq!(patch["metadata"], json!({"resourceVersion": "42", "labels": {"stage": "beta"}}));
        assert!(patch["spec"].get("timeout").is_none(), "timeout is not reset to 180");
        assert!(patch["spec"].get("service").is_none(), "the port is not reset to 8080");
        let function = patched_function(&current, &patch).unwrap();
        let container = &function
            .spec
            .deployment
            .as_ref()
            .unwrap()
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0];
        let env: Vec<_> =
            container.env.iter().flatten().map(|e| (e.name.as_str(), e.value.as_deref().unwrap_or(""))).collect();
        assert_eq!(env, vec![("KEEP", "1"), ("CHANGE", "new"), ("ADDED", "x")]);
        assert_eq!(container.image_pull_policy.as_deref(), Some("Always"));
        assert_eq!(container.resources.as_ref().unwrap().limits.as_ref().unwrap()["memory"].0, "128Mi");
        assert_eq!(container.volume_mounts.as_ref().unwrap().len(), 1);
        assert_eq!(function.spec.timeout.as_deref(), Some("60"));
        assert_eq!(function.metadata.labels.as_ref().unwrap()["tier"], "web");
        assert_eq!(function.metadata.labels.as_ref().unwrap()["stage"], "beta");
        assert_eq!(function.spec.service.as_ref().unwrap().ports.as_ref().unwrap()[0].port, 80);
        assert_eq!(function.spec.function, current["spec"]["function"].as_str().map(str::to_owned));
        assert!(function.status.as_ref().is_none_or(|s| !s.is_ready()));
    }

    #[test]
    fn update_code_ports_secrets_and_headless() {
        let current = stored();
        let flags = FunctionFlags {
            code: Some(Code::from_file("hello.py", b"def foo(event, context):\n    return 'v2'\n")),
            handler: Some("hello.foo".into()),
            secrets: vec!["creds".into(), "other".into()],
            port: Some(9000),
            headless: Some(true),
            timeout: Some("90".into()),
            image_pull_policy: Some("Never".into()),
            ..FunctionFlags::default()
        };
        let patch = update_patch(&current, &flags).unwrap();
        assert_eq!(patch["spec"]["handler"], "hello.foo");
        assert_eq!(patch["spec"]["function"], "def foo(event, context):\n    return 'v2'\n");
        assert_eq!(patch["spec"]["function-content-type"], "text");
        assert_eq!(patch["spec"]["timeout"], "90");
        // The service port was set apart (80): only the target port follows --port.
        assert_eq!(patch["spec"]["service"]["ports"][0]["port"], 80);
        assert_eq!(patch["spec"]["service"]["ports"][0]["targetPort"], 9000);
        assert_eq!(patch["spec"]["service"]["clusterIP"], "None");
        let pod = &patch["spec"]["deployment"]["spec"]["template"]["spec"];
        assert_eq!(pod["volumes"].as_array().unwrap().len(), 2, "the existing secret is not mounted twice");
        assert_eq!(pod["containers"][0]["volumeMounts"].as_array().unwrap().len(), 2);
        assert_eq!(pod["containers"][0]["imagePullPolicy"], "Never");
        assert_eq!(pod["containers"][0]["env"].as_array().unwrap().len(), 2, "env kept");
        patched_function(&current, &patch).unwrap().validate().unwrap();

        let mut headless = current.clone();
        headless["spec"]["service"]["clusterIP"] = json!("None");
        let patch =
            update_patch(&headless, &FunctionFlags { headless: Some(false), ..FunctionFlags::default() }).unwrap();
        assert_eq!(patch["spec"]["service"], json!({"clusterIP": null}));

        let mut plain = current.clone();
        plain["spec"]["service"]["ports"][0]["port"] = json!(8080);
        let patch = update_patch(&plain, &FunctionFlags { port: Some(9000), ..FunctionFlags::default() }).unwrap();
        assert_eq!(patch["spec"]["service"]["ports"][0]["port"], 9000);
    }

    #[test]
    fn update_needs_a_flag_and_valid_values() {
        let current = stored();
        assert!(
            update_patch(&current, &FunctionFlags::default()).unwrap_err().to_string().contains("nothing to update")
        );
        let patch =
            update_patch(&current, &FunctionFlags { runtime: Some("python".into()), ..FunctionFlags::default() })
                .unwrap();
        let error = patched_function(&current, &patch).unwrap_err().to_string();
        assert!(error.contains("spec.runtime"), "{error}");
        // A Function stored without a deployment gets one.
        let mut bare = current.clone();
        bare["spec"].as_object_mut().unwrap().remove("deployment");
        let patch = update_patch(&bare, &FunctionFlags { cpu: Some("1".into()), ..FunctionFlags::default() }).unwrap();
        assert_eq!(
            patch["spec"]["deployment"]["spec"]["template"]["spec"]["containers"],
            json!([{"name": "", "resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "1"}}}])
        );
        patched_function(&bare, &patch).unwrap();
    }
}
