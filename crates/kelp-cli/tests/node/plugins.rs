//! Plugin runtimes on the cluster half, for real: Ruby and PHP added to an installed cluster
//! through the `kubeless-config` ConfigMap's `runtime-images` alone (Kubeless's own shape: an ID,
//! a version and a runtime image, here Kelp's `kelp/runtime-ruby` and `kelp/runtime-php` of
//! `images/plugin/Dockerfile`), then Kubeless's Ruby and PHP examples deployed with the kubeless
//! CLI's syntax and called in their pods. Nothing in the controller names either language.
//!
//! With `KELP_REAL_NODE=0` (kwok's node, whose pods run no code) the planned pods are checked:
//! each runs its plugin's image.

use kelp_testenv::ControlPlane;
use serde_json::Value;

use crate::node::{call, deploy, json, kubectl, namespace, stand_in_controller};

/// The `runtime-images` entries of the two plugins, in Kubeless's shape.
fn plugin_entries() -> Vec<Value> {
    let tag = env!("CARGO_PKG_VERSION");
    [("ruby", "ruby2.6", "2.6", "Gemfile", ".rb"), ("php", "php7.4", "7.4", "composer.json", ".php")]
        .into_iter()
        .map(|(id, name, version, dep, suffix)| {
            serde_json::json!({
                "ID": id, "depName": dep, "fileNameSuffix": suffix,
                "versions": [{"name": name, "version": version,
                              "images": [{"phase": "runtime", "image": format!("kelp/runtime-{id}:{tag}")}]}]
            })
        })
        .collect()
}

/// Appends the plugins to the installed `kubeless-config` (once: the entries are kept when there).
fn add_plugins(plane: &ControlPlane) {
    let config = json(plane, &["-n", "kubeless", "get", "configmap", "kubeless-config"]);
    let mut runtimes: Vec<Value> =
        serde_json::from_str(config["data"]["runtime-images"].as_str().expect("runtime-images")).unwrap();
    for entry in plugin_entries() {
        if !runtimes.iter().any(|r| r["ID"] == entry["ID"]) {
            runtimes.push(entry);
        }
    }
    let patch = serde_json::json!({"data": {"runtime-images": serde_json::to_string(&runtimes).unwrap()}});
    kubectl(
        plane,
        &["-n", "kubeless", "patch", "configmap", "kubeless-config", "--type=merge", "-p", &patch.to_string()],
    );
}

#[test]
fn ruby_and_php_added_through_runtime_images_alone_run_kubelesss_examples() {
    let plane = crate::plane();
    let _controller = stand_in_controller(plane, "plugins");
    add_plugins(plane);
    let namespace = namespace(plane, "plugins");
    let examples = kelp_testkit::repo_root().join("examples");
    let data = r#"{"plugin":"data"}"#;
    for (name, runtime, file, handler, body, answer) in [
        ("hello-ruby", "ruby2.6", "ruby/helloget.rb", "helloget.foo", None, "hello world"),
        ("data-ruby", "ruby2.6", "ruby/hellowithdata.rb", "hellowithdata.handler", Some(data), data),
        ("hello-php", "php7.4", "php/helloget.php", "helloget.foo", None, "hello world"),
        ("data-php", "php7.4", "php/hellowithdata.php", "hellowithdata.foo", Some(data), data),
    ] {
        deploy(plane, &namespace, name, &examples.join(file), handler, runtime, &[]);
        let deployment = json(plane, &["-n", &namespace, "get", "deployment", name]);
        let image = deployment.pointer("/spec/template/spec/containers/0/image").and_then(Value::as_str).unwrap();
        let id = runtime.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
        assert!(image.contains(&format!("kelp/runtime-{id}:")), "{name}: {image}");
        if !plane.has_real_node() {
            continue;
        }
        let extra: Vec<&str> = body.map(|b| vec!["--data", b]).unwrap_or_default();
        let said = call(plane, &namespace, name, &extra);
        assert_eq!(said.trim(), answer, "{name}");
    }
}
