//! Java only: Kubeless's own Java examples, unchanged (`examples/java/`), and the build
//! (`kelp_runtime::build`): once per content (a second start runs no compiler, which a JDK whose
//! tools log their invocations shows), Maven only for a `pom.xml` that needs it, javac's errors
//! reported, and the build's time limit.

use crate::http::Request;
use crate::process::{Function, JAVA, READY_TIMEOUT, scratch_root};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a build may take that resolves Maven dependencies into an empty local repository.
const MAVEN_TIMEOUT: Duration = Duration::from_secs(300);

/// A fresh directory under the suite's scratch directory.
fn scratch() -> tempfile::TempDir {
    std::fs::create_dir_all(scratch_root()).expect("creating the scratch directory");
    tempfile::tempdir_in(scratch_root()).expect("creating a scratch directory")
}

/// A code directory as Kubeless writes one for `--handler <class>.<method>`: the example file
/// `file` of `examples/java/` as `<class>.java`, and the example `pom` as `pom.xml`.
fn kubeless_code(file: &str, class: &str, pom: Option<&str>) -> tempfile::TempDir {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/java");
    let dir = scratch();
    std::fs::copy(examples.join(file), dir.path().join(format!("{class}.java"))).expect("copying the example");
    if let Some(pom) = pom {
        std::fs::copy(examples.join(pom), dir.path().join("pom.xml")).expect("copying the example pom.xml");
    }
    dir
}

#[test]
fn kubeless_hello_get() {
    let code = kubeless_code("HelloGet.java", "Foo", None);
    let hello = Function::new(&JAVA, "Foo", "foo").code_dir(code.path()).start().ready();
    let r = hello.get("/");
    assert_eq!((r.status, r.text().as_str()), (200, "Hello world!"), "{}", hello.diagnostics());
}

#[test]
fn kubeless_hello_with_data() {
    let code = kubeless_code("HelloWithData.java", "Foo", None);
    let function = Function::new(&JAVA, "Foo", "foo").code_dir(code.path()).start().ready();
    let mut post = Request::new("POST", "/");
    post.headers = vec![("Content-Type".into(), "application/json".into())];
    post.body = br#"{"it-s": "alive"}"#.to_vec();
    let r = function.must_send(&post);
    assert_eq!((r.status, r.text().as_str()), (200, r#"{"it-s": "alive"}"#), "{}", function.diagnostics());
    let deadline = Instant::now() + Duration::from_secs(5);
    while !function.stdout().contains(r#"{"it-s": "alive"}"#) {
        assert!(Instant::now() < deadline, "the data is not printed on stdout:\n{}", function.stdout());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn kubeless_hello_with_deps() {
    let code = kubeless_code("withdeps/HelloWithDeps.java", "Hello", Some("withdeps/pom.xml"));
    let mut function = Function::new(&JAVA, "Hello", "sayHello").code_dir(code.path()).start();
    function.wait_ready(MAVEN_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    let r = function.get("/");
    assert_eq!(r.status, 200, "{}", function.diagnostics());
    assert!(r.text().starts_with("Hello world! Current local time is: "), "{:?}", r.text());
}

/// A JDK whose `java`, `javac`, `jar` and `mvn` append their arguments to `invocations.log` and
/// run the real tool.
struct LoggingJdk {
    dir: tempfile::TempDir,
}

impl LoggingJdk {
    /// Logging tools in front of the real ones: `KELP_JAVA` (else `java` on `PATH`), the
    /// `javac` and `jar` next to it, and `mvn` (`KELP_MAVEN`, else on `PATH`); a tool named in
    /// `overrides` runs that shell script instead (`$real` is the real tool).
    fn new(overrides: &[(&str, &str)]) -> Self {
        let java = std::env::var_os("KELP_JAVA").map_or_else(|| on_path("java"), PathBuf::from);
        let next_to_java = |tool: &str| if java.is_absolute() { java.with_file_name(tool) } else { on_path(tool) };
        let maven = std::env::var_os("KELP_MAVEN").map_or_else(|| on_path("mvn"), PathBuf::from);
        let dir = scratch();
        let log = dir.path().join("invocations.log");
        for (name, real) in
            [("java", java.clone()), ("javac", next_to_java("javac")), ("jar", next_to_java("jar")), ("mvn", maven)]
        {
            let run =
                overrides.iter().find(|(tool, _)| *tool == name).map_or("exec \"$real\" \"$@\"", |(_, script)| script);
            let script =
                format!("#!/bin/sh\nreal='{}'\necho \"{name} $*\" >> '{}'\n{run}\n", real.display(), log.display());
            let path = dir.path().join(name);
            std::fs::write(&path, script).expect("writing a logging tool");
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        }
        LoggingJdk { dir }
    }

    /// The `KELP_JAVA` of this JDK.
    fn java(&self) -> String {
        self.dir.path().join("java").to_string_lossy().into_owned()
    }

    /// The invocations of `tool` so far.
    fn invocations(&self, tool: &str) -> Vec<String> {
        let log = std::fs::read_to_string(self.dir.path().join("invocations.log")).unwrap_or_default();
        log.lines().filter(|l| l.split(' ').next() == Some(tool)).map(str::to_owned).collect()
    }
}

/// `name` as found on `PATH`.
fn on_path(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|file| file.is_file())
        .unwrap_or_else(|| panic!("{name} is not on PATH"))
}

/// The build of Kubeless's example `pom.xml` runs Maven (Kelp providing Kubeless's own parent
/// and `params`, which stay out of the build) and javac, once: a second start of the same
/// content runs neither. A function without Maven dependencies is built by javac alone.
#[test]
fn builds_run_once_and_maven_only_when_needed() {
    let jdk = LoggingJdk::new(&[]);
    let deps = scratch();
    let function = |module: &str| {
        Function::new(&JAVA, module, "check")
            .code_subdir(module)
            .env("KELP_JAVA", &jdk.java())
            .env("KELP_DEPS_DIR", &deps.path().to_string_lossy())
    };
    let mut first = function("withdeps").start();
    first.wait_ready(MAVEN_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(first.get("/").text(), "deps ok", "{}", first.diagnostics());
    let (maven, javac) = (jdk.invocations("mvn"), jdk.invocations("javac"));
    assert_eq!(maven.len(), 1, "Maven runs once: {maven:?}");
    // One javac for Kelp's worker (once per toolchain cache), one for the function.
    assert_eq!(javac.len(), 2, "javac runs twice: {javac:?}");
    let builds = builds(deps.path());
    assert_eq!(builds.len(), 1, "{builds:?}");
    let jars: Vec<String> = std::fs::read_dir(builds[0].join("lib"))
        .expect("the build's lib")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(jars, ["joda-time.joda-time-2.9.2.jar"], "the build's lib holds joda-time, and no io.kubeless artifact");
    drop(first);

    let mut second = function("withdeps").start();
    second.wait_ready(READY_TIMEOUT).unwrap_or_else(|e| panic!("second start: {e}"));
    assert_eq!(second.get("/").text(), "deps ok");
    assert_eq!(jdk.invocations("mvn"), maven, "the second start ran Maven");
    assert_eq!(jdk.invocations("javac"), javac, "the second start ran javac");
    assert!(second.stderr().contains("found in the cache the build of"), "{}", second.diagnostics());

    let mut hello = Function::new(&JAVA, "conf", "hello")
        .env("KELP_JAVA", &jdk.java())
        .env("KELP_DEPS_DIR", &deps.path().to_string_lossy())
        .build_only()
        .spawn();
    let status = hello.wait_exit(READY_TIMEOUT);
    assert_eq!(status.and_then(|s| s.code()), Some(0), "--build of conf.hello\n{}", hello.diagnostics());
    assert_eq!(jdk.invocations("mvn"), maven, "a function without Maven dependencies ran Maven");
    assert_eq!(jdk.invocations("javac").len(), 3, "only the function is compiled: Kelp's worker is in the cache");
}

/// A class that does not compile: `--build` exits 1 with javac's first error lines.
#[test]
fn compile_error_fails_the_build() {
    let deps = scratch();
    let mut bad =
        Function::new(&JAVA, "bad", "hello").env("KELP_DEPS_DIR", &deps.path().to_string_lossy()).build_only().spawn();
    let status = bad.wait_exit(READY_TIMEOUT);
    assert_eq!(status.and_then(|s| s.code()), Some(1), "exit status\n{}", bad.diagnostics());
    let stderr = bad.stderr();
    assert!(stderr.contains("build of java function bad.hello failed"), "{}", bad.diagnostics());
    assert!(stderr.contains("function/bad.java:6: error: ';' expected"), "{}", bad.diagnostics());
}

/// A build past `KELP_BUILD_TIMEOUT` is killed, javac with it, and the runtime exits 1 saying so.
#[test]
fn a_build_past_its_time_limit_is_killed() {
    let pid_file = scratch();
    let pid = pid_file.path().join("javac.pid");
    let jdk = LoggingJdk::new(&[("javac", &format!("echo $$ > '{}'\nexec sleep 600", pid.display()))]);
    let deps = scratch();
    let mut hung = Function::new(&JAVA, "conf", "hello")
        .env("KELP_JAVA", &jdk.java())
        .env("KELP_DEPS_DIR", &deps.path().to_string_lossy())
        .env("KELP_BUILD_TIMEOUT", "2")
        .build_only()
        .spawn();
    let status = hung.wait_exit(READY_TIMEOUT);
    assert_eq!(status.and_then(|s| s.code()), Some(1), "exit status\n{}", hung.diagnostics());
    assert!(hung.stderr().contains("timed out after 2 s"), "{}", hung.diagnostics());
    let pid = std::fs::read_to_string(&pid).expect("javac started");
    let proc = PathBuf::from(format!("/proc/{}", pid.trim()));
    let deadline = Instant::now() + Duration::from_secs(5);
    while proc.exists() && !std::fs::read_to_string(proc.join("stat")).unwrap_or_default().contains(") Z ") {
        assert!(Instant::now() < deadline, "javac (pid {}) outlived the build", pid.trim());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The build directories under `deps` (`<deps>/java/build-<key>`).
fn builds(deps: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(deps.join("java"))
        .expect("the build directory")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir() && p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("build-")))
        .collect()
}

/// A function whose class's static initializer creates the file `marker`: it shows when the
/// function's own code ran.
fn marking_code(marker: &Path) -> tempfile::TempDir {
    let code = scratch();
    let source = format!(
        "package io.kubeless;\n\npublic class Marked {{\n    static {{\n        try {{\n            new java.io.File(\"{}\").createNewFile();\n        }} catch (java.io.IOException e) {{\n            throw new RuntimeException(e);\n        }}\n    }}\n\n    public String hello(Event event, Context context) {{\n        return \"marked\";\n    }}\n}}\n",
        marker.display()
    );
    std::fs::write(code.path().join("Marked.java"), source).expect("writing the function");
    code
}

/// The build leaves a class-data archive, `kelp/worker.jsa`, made by a training run that runs
/// none of the function's code (its static initializer has not run when the build is done), and
/// every worker starts from it: its command names it, and the JVM maps the file, which it does
/// not when it refuses an archive.
#[test]
fn workers_start_from_the_builds_class_data_archive() {
    let jdk = LoggingJdk::new(&[]);
    let (deps, marks) = (scratch(), scratch());
    let marker = marks.path().join("initialized");
    let code = marking_code(&marker);
    let function = Function::new(&JAVA, "Marked", "hello")
        .code_dir(code.path())
        .env("KELP_JAVA", &jdk.java())
        .env("KELP_DEPS_DIR", &deps.path().to_string_lossy());
    let mut build = function.clone().build_only().spawn();
    let status = build.wait_exit(READY_TIMEOUT);
    assert_eq!(status.and_then(|s| s.code()), Some(0), "--build\n{}", build.diagnostics());
    let built = builds(deps.path());
    assert_eq!(built.len(), 1, "{built:?}");
    let archive = built[0].join("kelp/worker.jsa");
    let size = std::fs::metadata(&archive).map(|m| m.len()).unwrap_or(0);
    assert!(size > 0, "no class-data archive {} in the build\n{}", archive.display(), build.diagnostics());
    let training: Vec<String> = jdk.invocations("java").into_iter().filter(|i| i.contains("--train")).collect();
    assert_eq!(training.len(), 1, "one training run: {:?}", jdk.invocations("java"));
    assert!(!marker.exists(), "the build ran the function's static initializer");
    assert!(!built[0].join("kelp/train.sock").exists(), "the training run left its socket");

    let served = function.start().ready();
    assert_eq!(served.get("/").text(), "marked", "{}", served.diagnostics());
    assert!(marker.exists(), "the worker did not initialize the function's class");
    let archive = archive.to_string_lossy().into_owned();
    let workers: Vec<String> = jdk
        .invocations("java")
        .into_iter()
        .filter(|i| i.contains("io.kubeless.kelp.Worker") && !i.contains("--train"))
        .collect();
    assert!(!workers.is_empty(), "no worker started: {:?}", jdk.invocations("java"));
    for worker in &workers {
        assert!(worker.contains(&format!("-XX:SharedArchiveFile={archive}")), "{worker}");
    }
    let pids = served.worker_pids();
    assert!(!pids.is_empty(), "{}", served.diagnostics());
    for pid in pids {
        let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
        assert!(maps.contains(&archive), "worker {pid} does not map {archive}\n{}", served.diagnostics());
    }
    assert!(
        !served.stdout().contains("cds"),
        "the JVM's archive log reached the function's output: {}",
        served.stdout()
    );
    drop(served);

    // A jar changed since the archive was made: the JVM refuses the archive, silently.
    let jar = built[0].join("kelp/worker.jar");
    let later = std::fs::metadata(&jar).and_then(|m| m.modified()).unwrap() + Duration::from_secs(60);
    std::fs::File::options().write(true).open(&jar).and_then(|f| f.set_modified(later)).expect("touching the jar");
    let refused = function.start().ready();
    assert_eq!(refused.get("/").text(), "marked", "{}", refused.diagnostics());
    for pid in refused.worker_pids() {
        let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
        assert!(!maps.contains(&archive), "worker {pid} maps an archive made for another jar");
    }
    assert!(!refused.stdout().contains("cds"), "the JVM's refusal reached the function's output: {}", refused.stdout());
}

/// A build whose archive cannot be made (the training JVM fails) is in place all the same,
/// with a warning quoting the failure, and its workers serve without an archive.
#[test]
fn a_build_without_its_archive_serves() {
    let jdk = LoggingJdk::new(&[(
        "java",
        "case \"$*\" in *ArchiveClassesAtExit*) echo 'archive refused here' >&2; exit 3;; esac\nexec \"$real\" \"$@\"",
    )]);
    let deps = scratch();
    let function = Function::new(&JAVA, "conf", "hello")
        .env("KELP_JAVA", &jdk.java())
        .env("KELP_DEPS_DIR", &deps.path().to_string_lossy());
    let mut build = function.clone().build_only().spawn();
    let status = build.wait_exit(READY_TIMEOUT);
    assert_eq!(status.and_then(|s| s.code()), Some(0), "--build\n{}", build.diagnostics());
    let stderr = build.stderr();
    assert!(stderr.contains("is in place, but its last step failed"), "{}", build.diagnostics());
    assert!(stderr.contains("archive refused here"), "{}", build.diagnostics());
    let built = builds(deps.path());
    assert_eq!(built.len(), 1, "{built:?}");
    assert!(!built[0].join("kelp/worker.jsa").exists(), "an archive after a failed training run");

    let served = function.start().ready();
    assert_eq!(served.get("/").text(), "hello world", "{}", served.diagnostics());
    assert!(
        !served.stdout().contains("cds"),
        "the JVM's archive log reached the function's output: {}",
        served.stdout()
    );
}

/// `io.kubeless.kelp.Json` reads what serde_json writes and writes back the same value: escapes,
/// surrogate pairs, numbers of every form, nesting; input nested too deeply is a 400, not a
/// crashed worker.
#[test]
fn json_round_trips() {
    let code = scratch();
    let source = "package io.kubeless;\n\npublic class RoundTrip {\n    public String echo(Event event, Context context) {\n        return io.kubeless.kelp.Json.stringify(io.kubeless.kelp.Json.parse(event.Data));\n    }\n}\n";
    std::fs::write(code.path().join("RoundTrip.java"), source).expect("writing the function");
    let function = Function::new(&JAVA, "RoundTrip", "echo").code_dir(code.path()).start().ready();
    let json = |body: &str| {
        let mut post = Request::new("POST", "/");
        post.headers = vec![("Content-Type".into(), "application/json".into())];
        post.body = body.as_bytes().to_vec();
        function.must_send(&post)
    };
    let value = serde_json::json!({
        "numbers": [0, 1, -2, 3.5e10, -0.25, 1e-7, 9007199254740993_i64, 12345678901234567890_u64, 1.5],
        "strings": ["", "q\"\\/\u{8}\u{c}\n\r\t\u{1}\u{1f}", "h\u{e9}llo \u{2713} \u{1f600}", "\u{2028}"],
        "literals": [true, false, null],
        "nested": [[[{"k": {}, "l": []}]]],
    });
    for text in [value.to_string(), serde_json::to_string_pretty(&value).unwrap(), r#""\ud83d\ude00 \u00e9""#.into()] {
        let r = json(&text);
        assert_eq!(r.status, 200, "{text}: {}\n{}", r.text(), function.diagnostics());
        let back: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.text()));
        assert_eq!(back, serde_json::from_str::<serde_json::Value>(&text).unwrap(), "{text}");
    }
    let deep = format!("{}{}", "[".repeat(600), "]".repeat(600));
    let r = json(&deep);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("nested more than 512 levels deep"), "{}", r.text());
    assert_eq!(json("[1]").status, 200, "the worker serves on after the deep input");
}
