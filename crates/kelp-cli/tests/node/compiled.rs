//! Compiled languages on the cluster half, for real: `kelp install` on a control plane with a
//! real node (`kelp-testenv`'s `shared_node`), then Go, Java and Rust functions whose pods build
//! them in the `build` init container of Kelp's runtime images (`kelp/runtime-go`, `-java`,
//! `-rust`, imported on demand) into the node's dependency cache, and call them. A second pod of
//! the same function (a scale-out) finds the build there and compiles nothing; a Go function that
//! does not compile makes its Function `Ready=False` with `BuildFailed` and the compiler's line.
//!
//! With `KELP_REAL_NODE=0` the same functions run on kwok's node, whose pods run no code: the
//! planned `build` step is checked, and its command is run for real by `kelp-runtime --build` on
//! the function's code, as the init container would. (A module of `node.rs`, so that it shares its
//! control plane and install.)

use std::sync::Once;

use kelp_testenv::{ControlPlane, EGRESS_PROXY, ON_DEMAND_IMAGES};
use serde_json::Value;

use crate::node::{
    POD_TIMEOUT, call, deploy, eventually, json, kelp, kubectl, namespace, running_pods, stand_in_controller,
};

/// `node.rs`'s plane, with the compiled languages' runtime images imported.
fn plane() -> &'static ControlPlane {
    let plane = crate::plane();
    static IMPORT: Once = Once::new();
    IMPORT.call_once(|| plane.import_node_images(ON_DEMAND_IMAGES));
    plane
}

/// The pod's init container `name`: its image and command.
fn init_container<'a>(deployment: &'a Value, name: &str) -> &'a Value {
    let containers = deployment.pointer("/spec/template/spec/initContainers").and_then(Value::as_array).unwrap();
    containers.iter().find(|c| c["name"] == name).unwrap_or_else(|| panic!("no init container {name}: {containers:?}"))
}

/// What the `build` init container of `pod` logged.
fn build_log(plane: &ControlPlane, namespace: &str, pod: &str) -> String {
    kubectl(plane, &["-n", namespace, "logs", pod, "-c", "build"])
}

/// Runs the build step's command for real where no pod runs it (kwok's node): `kelp-runtime
/// --build` on `file` (copied in as `<module><suffix>`) with the Function's environment.
fn build_here(file: &std::path::Path, module: &str, handler: &str, runtime: &str) -> String {
    let code = tempfile::tempdir().unwrap();
    let suffix = file.extension().unwrap().to_string_lossy().into_owned();
    std::fs::copy(file, code.path().join(format!("{module}.{suffix}"))).unwrap();
    let deps = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(kelp_testkit::runtime_bin())
        .arg("--build")
        .env("KUBELESS_INSTALL_VOLUME", code.path())
        .env("KELP_DEPS_DIR", deps.path())
        .env("KELP_NAMESPACE", "compiled")
        .env("MOD_NAME", module)
        .env("FUNC_HANDLER", handler)
        .env("FUNC_RUNTIME", runtime)
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "kelp-runtime --build of {}: {text}", file.display());
    text
}

#[test]
fn go_java_and_rust_functions_are_built_by_their_pods_once_per_node() {
    let plane = plane();
    let _controller = stand_in_controller(plane, "compiled");
    let namespace = namespace(plane, "compiled");
    let examples = kelp_testkit::repo_root().join("examples");
    // The builds reach the Go module proxy and crates.io through the node's egress proxy.
    let proxy = format!("https_proxy={EGRESS_PROXY}");
    for (name, runtime, file, handler, answer) in [
        ("hello-go", "go1.14", examples.join("go/hello.go"), "hello.Hello", "Hello world!"),
        ("hello-java", "java11", examples.join("java/HelloGet.java"), "Foo.foo", "Hello world!"),
        ("hello-rust", "rust1.95", examples.join("rust/hello.rs"), "hello.hello", "\"hello\":\"world\""),
    ] {
        deploy(plane, &namespace, name, &file, handler, runtime, &["--env", &proxy]);
        let deployment = json(plane, &["-n", &namespace, "get", "deployment", name]);
        let build = init_container(&deployment, "build");
        let language = runtime.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
        assert!(build["image"].as_str().unwrap().contains(&format!("runtime-{language}:")), "{name}: {build}");
        assert_eq!(build["args"][0], "kelp-runtime --build", "{name}: {build}");
        let (module, function) = handler.split_once('.').unwrap();
        if !plane.has_real_node() {
            let said = build_here(&file, module, function, runtime);
            assert!(said.contains(&format!("built {language} function {handler}")), "{name}: {said}");
            continue;
        }
        let body = call(plane, &namespace, name, &[]);
        assert!(body.contains(answer), "{name}: {body}");
        let first = running_pods(plane, &namespace, name);
        let log = build_log(plane, &namespace, &first[0]);
        assert!(log.contains(&format!("built {language} function {handler} from key")), "{name}: {log}");

        // A second pod on the node: the build is in the node's cache, nothing is compiled.
        kubectl(plane, &["-n", &namespace, "scale", "deployment", name, "--replicas=2"]);
        let second = eventually(plane, &format!("{name}: a second pod runs"), POD_TIMEOUT, || {
            running_pods(plane, &namespace, name).into_iter().find(|p| !first.contains(p))
        });
        let log = build_log(plane, &namespace, &second);
        assert!(
            log.contains(&format!("found in the cache the build of {language} function {handler}")),
            "{name}: {log}"
        );
    }
    if plane.has_real_node() {
        // The same Rust function in its front's own process: its build (found in the node's
        // cache) holds the library the pod's front loads.
        let rust = examples.join("rust/hello.rs");
        let env = ["--env", &proxy, "--env", "KELP_IN_PROCESS=1"];
        deploy(plane, &namespace, "rust-in-process", &rust, "hello.hello", "rust1.95", &env);
        let body = call(plane, &namespace, "rust-in-process", &[]);
        assert!(body.contains("\"hello\":\"world\""), "rust-in-process: {body}");
    }
}

#[test]
fn a_go_function_that_does_not_compile_is_build_failed_with_the_compilers_line() {
    let plane = plane();
    let _controller = stand_in_controller(plane, "broken");
    let namespace = namespace(plane, "broken");
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.go");
    std::fs::write(
        &broken,
        "package kubeless\n\nimport \"github.com/kubeless/kubeless/pkg/functions\"\n\n\
         func Foo(event functions.Event, context functions.Context) (string, error) {\n\treturn greeting, nil\n}\n",
    )
    .unwrap();
    let file = broken.display().to_string();
    let out = kelp(
        plane,
        &[
            "function",
            "deploy",
            "broken",
            "-n",
            &namespace,
            "--runtime",
            "go1.14",
            "--from-file",
            &file,
            "--handler",
            "broken.Foo",
            "--image-pull-policy",
            "IfNotPresent",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    if !plane.has_real_node() {
        return; // No pod runs its build: nothing fails.
    }
    let condition = eventually(plane, "the Function is BuildFailed", POD_TIMEOUT, || {
        let function = json(plane, &["-n", &namespace, "get", "function", "broken"]);
        let conditions = function.pointer("/status/conditions").and_then(Value::as_array).cloned().unwrap_or_default();
        conditions.into_iter().find(|c| c["type"] == "Ready" && c["reason"] == "BuildFailed")
    });
    let message = condition["message"].as_str().unwrap();
    assert!(message.contains("broken.go:6:") && message.contains("undefined: greeting"), "{message}");
    let events = json(plane, &["-n", &namespace, "get", "events", "--field-selector", "reason=BuildFailed"]);
    let messages: Vec<&str> =
        events["items"].as_array().unwrap().iter().filter_map(|e| e["message"].as_str()).collect();
    assert!(messages.iter().any(|m| m.contains("undefined: greeting")), "{messages:?}");
}
