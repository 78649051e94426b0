//! Plugin runtimes on the real `kelp up`: Ruby and PHP (`runtimes/ruby`, `runtimes/php`, found
//! through `KELP_RUNTIMES_PATH`, never compiled into Kelp) in `kubeless-config`, in `kelp
//! get-server-config`, and Kubeless's own Ruby and PHP examples (`examples/ruby`, `examples/php`,
//! unchanged) deployed and called end to end: hello, with data, a timeout, and with a dependency.
//! The registries of gems and Composer packages are unreachable from the test machines, so the
//! dependency files name stand-ins of the examples' packages (`up/packages/`: `logging`,
//! `monolog/monolog`) by their paths.

use crate::support::{DEADLINE, Platform, eventually, request};
use serde_json::Value;

/// `<repository>/<path>`.
fn repo(path: &str) -> String {
    kelp_testkit::repo_root().join(path).display().to_string()
}

/// The absolute path of a stand-in package under `up/packages/`.
fn package(name: &str) -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/up/packages").join(name);
    dir.canonicalize().unwrap().display().to_string()
}

/// The condition `kind` of the Function `name`.
fn condition(platform: &Platform, name: &str, kind: &str) -> Value {
    let function = platform.get_json(&format!("/apis/kubeless.io/v1beta1/namespaces/default/functions/{name}"));
    let conditions = function.pointer("/status/conditions").and_then(Value::as_array).cloned().unwrap_or_default();
    conditions.into_iter().find(|c| c["type"] == kind).unwrap_or(Value::Null)
}

/// `kelp function deploy <name> --runtime <runtime> --from-file <file> --handler <handler>
/// <extra>`, waiting until it is ready; what the CLI printed.
fn deploy(platform: &Platform, name: &str, runtime: &str, file: &str, handler: &str, extra: &[&str]) -> String {
    let mut args = vec!["function", "deploy", name, "--runtime", runtime, "--from-file", file, "--handler", handler];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--wait", "--wait-timeout", "300"]);
    let run = platform.kelp(&args);
    assert_eq!(run.code, 0, "{run:?}");
    format!("{}{}", run.stdout, run.stderr)
}

/// `POST /default/<name>/` of a JSON body: (status, body).
fn post_json(platform: &Platform, name: &str, body: &str) -> (u16, String) {
    let path = format!("/default/{name}/");
    let reply = request(platform.port, "POST", &path, &[("Content-Type", "application/json")], body).unwrap();
    (reply.status, reply.body)
}

#[test]
fn kubeless_ruby_and_php_examples_run_on_plugin_runtimes() {
    let runtimes = repo("runtimes");
    let platform = Platform::start_with_env(&[], &[("KELP_RUNTIMES_PATH", runtimes.as_str())]);

    // The plugins are runtimes of the platform: in kubeless-config and in get-server-config.
    let config = platform.get_json("/api/v1/namespaces/kubeless/configmaps/kubeless-config");
    let images: Vec<Value> = serde_json::from_str(config["data"]["runtime-images"].as_str().unwrap()).unwrap();
    for (id, dep_name) in [("ruby", "Gemfile"), ("php", "composer.json")] {
        let entry = images.iter().find(|r| r["ID"] == id).unwrap_or_else(|| panic!("no {id} in {images:?}"));
        assert_eq!(entry["depName"], dep_name, "{entry}");
        assert!(entry.get("kelp").is_none(), "the entry is Kubeless's shape: {entry}");
    }
    let server_config = platform.kelp(&["get-server-config"]);
    for runtime in ["ruby2.3", "ruby2.6", "php7.2", "php7.4"] {
        assert!(server_config.stdout.contains(runtime), "{runtime} in {server_config:?}");
    }
    for id in ["ruby", "php"] {
        let origin = format!("  {id}: a plugin runtime ({runtimes}/{id})");
        assert!(server_config.stderr.contains(&origin), "{origin} in {server_config:?}");
    }
    assert!(server_config.stderr.contains("  python: built into Kelp"), "{server_config:?}");

    // Ruby: Kubeless's examples, unchanged. ruby2.6 runs on the installed Ruby and says so.
    let said = deploy(&platform, "get-ruby", "ruby2.6", &repo("examples/ruby/helloget.rb"), "helloget.foo", &[]);
    assert!(said.contains("runtime ruby2.6 runs on Ruby "), "the deploy warns of the substitution: {said}");
    let substituted = condition(&platform, "get-ruby", "RuntimeSubstituted");
    assert_eq!(substituted["status"], "True", "{substituted}");
    assert_eq!(platform.call_until("get-ruby", |b| !b.is_empty()), "hello world");
    deploy(&platform, "post-ruby", "ruby2.6", &repo("examples/ruby/hellowithdata.rb"), "hellowithdata.handler", &[]);
    assert_eq!(post_json(&platform, "post-ruby", r#"{"it-s": "alive"}"#), (200, r#"{"it-s":"alive"}"#.to_owned()));
    let gemfile = platform.write("Gemfile", &format!("gem 'logging', path: '{}'\n", package("logging")));
    let with_deps = repo("examples/ruby/hellowithdeps.rb");
    deploy(&platform, "get-ruby-deps", "ruby2.6", &with_deps, "hellowithdeps.foo", &["--dependencies", &gemfile]);
    assert_eq!(platform.call_until("get-ruby-deps", |b| !b.is_empty()), "hello world");
    eventually("the dependency's log line", DEADLINE, || {
        let logs = platform.logs("get-ruby-deps");
        if logs.contains("INFO -- : it works!") { Ok(()) } else { Err(logs) }
    });
    let loop_rb = platform
        .write("hello-loop.rb", "def foo(event, context)\n    while true do;sleep(1);end\n    \"hello world\"\nend");
    deploy(&platform, "timeout-ruby", "ruby2.6", &loop_rb, "helloget.foo", &["--timeout", "4"]);
    let call = platform.kelp(&["function", "call", "timeout-ruby"]);
    assert!(format!("{}{}", call.stdout, call.stderr).contains("Request timeout exceeded"), "{call:?}");

    // PHP: Kubeless's examples, unchanged.
    let said = deploy(&platform, "get-php", "php7.4", &repo("examples/php/helloget.php"), "helloget.foo", &[]);
    assert!(said.contains("runtime php7.4 runs on PHP "), "{said}");
    assert_eq!(platform.call_until("get-php", |b| !b.is_empty()), "hello world");
    deploy(&platform, "post-php", "php7.4", &repo("examples/php/hellowithdata.php"), "hellowithdata.foo", &[]);
    assert_eq!(post_json(&platform, "post-php", r#"{"it-s": "alive"}"#), (200, r#"{"it-s":"alive"}"#.to_owned()));
    let composer = format!(
        r#"{{"repositories": [{{"type": "path", "url": "{}", "options": {{"symlink": false}}}}, {{"packagist": false}}],
            "require": {{"monolog/monolog": "^1.23"}}}}"#,
        package("monolog")
    );
    let composer = platform.write("composer.json", &composer);
    let with_deps = repo("examples/php/hellowithdeps.php");
    deploy(&platform, "get-php-deps", "php7.4", &with_deps, "hellowithdeps.foo", &["--dependencies", &composer]);
    assert_eq!(platform.call_until("get-php-deps", |b| !b.is_empty()), "hello world");
    eventually("Monolog's log lines", DEADLINE, || {
        let logs = platform.logs("get-php-deps");
        if logs.contains("name.INFO: Hello") && logs.contains("name.INFO: World") { Ok(()) } else { Err(logs) }
    });
    let loop_php = platform.write("hello-loop.php", "<?php\n function foo() { while(1) {} } \n");
    deploy(&platform, "timeout-php", "php7.4", &loop_php, "helloget.foo", &["--timeout", "4"]);
    let call = platform.kelp(&["function", "call", "timeout-php"]);
    assert!(format!("{}{}", call.stdout, call.stderr).contains("Request timeout exceeded"), "{call:?}");
}
