//! Java: Kubeless's `java1.8` and `java11` runtimes, and current JDKs (Kelp's worker needs JDK 16
//! or later: it speaks to the front over a Unix socket). The function is the class `MOD_NAME` in
//! package `io.kubeless` with an instance method `String FUNC_HANDLER(io.kubeless.Event,
//! io.kubeless.Context)`, as Kubeless called it.
//!
//! A build (`crate::build`) runs `javac` (next to `KELP_JAVA`) and, when the `pom.xml` lists
//! anything besides Kubeless's own artifacts, Maven first:
//! 1. Kelp's worker (`runtimes/java/src`: `io.kubeless.Event`, `io.kubeless.Context` and
//!    `io.kubeless.kelp.*`) is compiled once per wrapper into the toolchain cache
//!    (`worker-<digest>/worker.jar`, for the JDK 16 class format, made by `jar`) and copied into
//!    the build's `kelp/worker.jar`. It is compiled with `-XDstringConcat=inline`: its `+` on
//!    strings are `StringBuilder` calls rather than `invokedynamic` call sites, whose bootstrap
//!    cost a worker's start 15 ms of CPU (the function's own classes are compiled as javac does
//!    by default).
//! 2. Maven copies the `pom.xml`'s dependencies into the build's `lib` (Maven's local repository
//!    is in the toolchain cache). Kubeless's example `pom.xml` names the parent
//!    `io.kubeless:kubeless:1.0-SNAPSHOT` and the dependency `io.kubeless:params:1.0-SNAPSHOT`,
//!    which were Kubeless's own build: Kelp puts stand-ins for both (`runtimes/java/m2`) in that
//!    local repository, so the `pom.xml` resolves unchanged, and leaves them out of `lib`.
//! 3. `javac` compiles `<MOD_NAME>.java` into `classes`, against `kelp/worker.jar` and `lib`; the
//!    other classes it uses are compiled from the code directory as javac finds them (`X.java`
//!    next to it for `io.kubeless.X`).
//! 4. Once the build is in place (`Build::finish`), a class-data archive, `kelp/worker.jsa`: the
//!    JVM runs the worker's training run (`Worker --train`: a worker's start over a socket of its
//!    own, hello, load and one invoke, with the function's class loaded but not initialized, so
//!    none of its code runs, not even a static initializer, and no handler called) under
//!    `-XX:ArchiveClassesAtExit`, which writes every class it loaded (the JDK's, Kelp's and the
//!    function's), parsed, verified and linked, on top of the JDK's own archive. Every worker
//!    maps it (`-XX:SharedArchiveFile`) instead of loading those classes again. It is made at
//!    the build's final path because JDK 17's archive names the class path it was made with
//!    (`kelp/worker.jar`, by absolute path, size and time) and a worker on any other path
//!    would refuse it. A worker without a usable archive (none made, the JDK changed in place)
//!    starts as well, only slower: `-Xshare:auto`, the default, and the JVM's `cds` log is
//!    off so its refusal prints nothing into the function's output.
//!
//! The worker (`io.kubeless.kelp.Worker`) loads the function's class from `classes` and `lib` in
//! a class loader of its own.
//!
//! A worker's start, spawn to first answer, measured on this 2-core machine: 134 ms before the
//! archive (`bench/compiled.sh`, "deploy → first 200, build cached"), most of it the JVM loading
//! and linking some 180 classes the JDK's own archive does not hold (the Unix socket's, its
//! `SecureRandom`, the class loader's) and bootstrapping `invokedynamic` sites. With the archive
//! and the worker's inline string concatenation, its main thread spends 55 ms of CPU up to its
//! first answer instead of 72, and the JIT's threads 21 instead of 34. What is left is the JVM's
//! own start (a `java` printing hello spends about 45 ms of CPU) and what the JDK runs when a Unix socket is
//! first opened (its `SecureRandom`, the security providers behind it). Measured and not kept,
//! as they changed the start by 4 ms of CPU or less: G1 (whose start maps the JDK archive's
//! module graph, which the serial collector rebuilds), a small initial heap, a smaller code
//! cache, a fixed number of compiler threads; C1 alone (`-XX:TieredStopAtLevel=1`) saves 13 ms
//! but costs long-running code its optimized JIT.

use crate::language::{Build, BuildJob, COMPILED, Language};
use sha2::{Digest, Sha256};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use tokio::process::Command;

/// Java functions.
pub const LANGUAGE: Language = Language {
    name: "java",
    title: "Java",
    runtime_ids: &["java"],
    file_suffix: ".java",
    deps_file: "pom.xml",
    interpreter: ("KELP_JAVA", "java"),
    version_parts: 1,
    build: Some(Build { wrapper: WRAPPER, commands, finish: Some(archive), worker, library: None }),
    ..COMPILED
};

/// Kelp's Java sources and the Maven stand-ins for Kubeless's artifacts, under `kelp/` in the
/// build directory.
const WRAPPER: &[(&str, &str)] = &[
    ("kelp/src/io/kubeless/Event.java", include_str!("../../../../runtimes/java/src/io/kubeless/Event.java")),
    ("kelp/src/io/kubeless/Context.java", include_str!("../../../../runtimes/java/src/io/kubeless/Context.java")),
    (
        "kelp/src/io/kubeless/kelp/Extensions.java",
        include_str!("../../../../runtimes/java/src/io/kubeless/kelp/Extensions.java"),
    ),
    ("kelp/src/io/kubeless/kelp/Json.java", include_str!("../../../../runtimes/java/src/io/kubeless/kelp/Json.java")),
    (
        "kelp/src/io/kubeless/kelp/Request.java",
        include_str!("../../../../runtimes/java/src/io/kubeless/kelp/Request.java"),
    ),
    (
        "kelp/src/io/kubeless/kelp/Response.java",
        include_str!("../../../../runtimes/java/src/io/kubeless/kelp/Response.java"),
    ),
    (
        "kelp/src/io/kubeless/kelp/Worker.java",
        include_str!("../../../../runtimes/java/src/io/kubeless/kelp/Worker.java"),
    ),
    (
        "kelp/m2/io/kubeless/kubeless/1.0-SNAPSHOT/kubeless-1.0-SNAPSHOT.pom",
        include_str!("../../../../runtimes/java/m2/io/kubeless/kubeless/1.0-SNAPSHOT/kubeless-1.0-SNAPSHOT.pom"),
    ),
    (
        "kelp/m2/io/kubeless/params/1.0-SNAPSHOT/params-1.0-SNAPSHOT.pom",
        include_str!("../../../../runtimes/java/m2/io/kubeless/params/1.0-SNAPSHOT/params-1.0-SNAPSHOT.pom"),
    ),
    ("kelp/m2/io/kubeless/params/1.0-SNAPSHOT/params-1.0-SNAPSHOT.jar", EMPTY_JAR),
];

/// A jar with no entries (a zip's end-of-central-directory record alone): the stand-in for
/// `io.kubeless:params`, whose classes the worker provides.
const EMPTY_JAR: &str = "PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0";

/// The group of Kubeless's own artifacts, which Kelp provides.
const KUBELESS_GROUP: &str = "io.kubeless";

/// The Maven plugin that copies the dependencies, pinned so that a warm cache needs no lookup.
const COPY_DEPENDENCIES: &str = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies";

/// JVM options of the short-lived tools, javac and Maven: only the quick JIT and the serial
/// collector (on two busy cores, a compile of Kelp's worker takes 1.9 s with them instead of 4.2
/// s, and a warm Maven run 2.0 s instead of 3.2 s).
const QUICK_JVM: &str = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC";

/// [`QUICK_JVM`] as javac's (and jar's) options.
const JAVAC_JVM: &[&str] = &["-J-XX:TieredStopAtLevel=1", "-J-XX:+UseSerialGC"];

/// javac's options for Kelp's worker: string concatenation as `StringBuilder` calls, which need
/// no `invokedynamic` bootstrap when a worker starts.
const WORKER_JAVAC: &[&str] = &["-encoding", "UTF-8", "--release", "16", "-nowarn", "-XDstringConcat=inline"];

/// JVM options of a worker: the serial collector (a worker runs one request at a time; after
/// 100,000 calls of hello its RSS is 154 MiB against G1's 287 MiB, for a start as quick), no
/// `hsperfdata` files, a worker that ran out of memory exits (and is replaced) rather than
/// serving on in an unknown state, and UTF-8 for the function's output whatever the locale. The
/// JIT is left whole: C1 alone started no faster, measured, and would cost long-running code.
const WORKER_JVM: &[&str] = &[
    "-XX:+UseSerialGC",
    "-XX:-UsePerfData",
    "-XX:+ExitOnOutOfMemoryError",
    "-Dfile.encoding=UTF-8",
    "-Dsun.stdout.encoding=UTF-8",
    "-Dsun.stderr.encoding=UTF-8",
    "-Dstdout.encoding=UTF-8",
    "-Dstderr.encoding=UTF-8",
];

/// The worker's main class.
const WORKER_CLASS: &str = "io.kubeless.kelp.Worker";

/// The worker's classes in a build directory: a jar, as the JVM archives the classes of its
/// class path from jars only.
const WORKER_JAR: &str = "kelp/worker.jar";

/// The class-data archive in a build directory (see the module's documentation).
const ARCHIVE: &str = "kelp/worker.jsa";

/// Silences the JVM's `cds` log, whose warnings (an archive it cannot use) go to stdout, the
/// function's.
const QUIET_ARCHIVE: &str = "-Xlog:cds=off,cds+dynamic=off";

/// Compiles the worker's sources (the arguments after the cache directory, javac and jar; the
/// tools' JVM options in `$JVM`) into `worker.jar` of the cache directory `$1` unless it is
/// there, then copies the jar into the build. A compile is published by a rename, so a concurrent build sees all of it or none.
const WORKER_SCRIPT: &str = r#"set -e
dest=$1 javac=$2 jar=$3
shift 3
if [ ! -f "$dest/worker.jar" ]; then
  tmp=$dest.tmp-$$
  rm -rf "$tmp"
  "$javac" $JVM "$@" -d "$tmp/classes"
  "$jar" $JVM --create --file "$tmp/worker.jar" -C "$tmp/classes" .
  rm -rf "$tmp/classes"
  mv -T "$tmp" "$dest" 2>/dev/null || rm -rf "$tmp"
fi
cp "$dest/worker.jar" kelp/worker.jar
"#;

/// Runs the rest of the arguments (the training JVM, writing the archive `$1.tmp`), then puts
/// the archive in place as `$1` by a rename: a worker starting meanwhile finds none, never half
/// of one.
const ARCHIVE_SCRIPT: &str = r#"set -e
archive=$1
shift
rm -f "$archive.tmp"
"$@"
mv -f "$archive.tmp" "$archive"
"#;

/// Puts the stand-ins for Kubeless's artifacts into Maven's local repository `$1`, then runs
/// the rest of the arguments (Maven), whose log is printed if it fails: Maven's log file, as its
/// console output carries terminal escapes whatever it is told.
const MAVEN_SCRIPT: &str = r#"set -e
mkdir -p "$1"
cp -R kelp/m2/. "$1"/
shift
if "$@" -l kelp/maven.log >/dev/null 2>&1; then
  rm -f kelp/maven.log
else
  status=$?
  cat kelp/maven.log >&2
  exit $status
fi
"#;

/// Makes the code directory the package `io.kubeless` of the source path `src`, then runs the
/// arguments (javac).
const JAVAC_SCRIPT: &str = r#"set -e
mkdir -p src/io
ln -sfn ../../function src/io/kubeless
exec "$@"
"#;

fn commands(job: &BuildJob<'_>) -> Vec<Command> {
    let cache = std::path::absolute(job.cache).unwrap_or_else(|_| job.cache.to_owned());
    let dir = std::path::absolute(job.dir).unwrap_or_else(|_| job.dir.to_owned());
    let (javac, jar) = (sibling(job.toolchain, "javac"), sibling(job.toolchain, "jar"));
    let mut commands = Vec::new();

    let sources = WRAPPER.iter().map(|(path, _)| *path).filter(|path| path.ends_with(".java"));
    let worker = cache.join(format!("worker-{}", wrapper_digest()));
    let mut compile_worker = script(WORKER_SCRIPT);
    compile_worker.arg(&worker).arg(&javac).arg(&jar).args(WORKER_JAVAC).env("JVM", JAVAC_JVM.join(" "));
    compile_worker.args(sources);
    commands.push(compile_worker);

    if std::fs::read_to_string(dir.join("function").join(LANGUAGE.deps_file)).is_ok_and(|pom| needs_maven(&pom)) {
        let repo = cache.join("m2");
        let mut maven = script(MAVEN_SCRIPT);
        maven.arg(&repo).arg(maven_command(job.toolchain));
        maven.args(["-B", "-q", "-U", "-f", "function/pom.xml"]).arg(prefixed("-Dmaven.repo.local=", &repo));
        maven.arg(COPY_DEPENDENCIES).arg(prefixed("-DoutputDirectory=", &dir.join("lib")));
        maven.args(["-Dmdep.prependGroupId=true", &format!("-DexcludeGroupIds={KUBELESS_GROUP}")]);
        // After the MAVEN_OPTS of the environment (a proxy's settings, say), which they keep.
        let opts = std::env::var("MAVEN_OPTS").unwrap_or_default();
        maven.env("MAVEN_OPTS", format!("{opts} {QUICK_JVM}").trim_start());
        commands.push(maven);
    }

    let mut compile = script(JAVAC_SCRIPT);
    compile.arg(&javac).args(JAVAC_JVM).args(["-encoding", "UTF-8", "-d", "classes"]);
    compile.args(["-cp", &format!("{WORKER_JAR}:lib/*"), "-sourcepath", "src:function"]);
    compile.arg(Path::new("function").join(format!("{}{}", job.module, LANGUAGE.file_suffix)));
    commands.push(compile);
    commands
}

/// The training run of the build in place at `job.dir`, writing its class-data archive.
fn archive(job: &BuildJob<'_>) -> Vec<Command> {
    let dir = std::path::absolute(job.dir).unwrap_or_else(|_| job.dir.to_owned());
    let archive = dir.join(ARCHIVE);
    let mut train = script(ARCHIVE_SCRIPT);
    train.arg(&archive).arg(job.toolchain).args(WORKER_JVM);
    train.arg(prefixed("-XX:ArchiveClassesAtExit=", &archive.with_extension("jsa.tmp")));
    train
        .arg("-cp")
        .arg(dir.join(WORKER_JAR))
        .arg(WORKER_CLASS)
        .arg("--train")
        .arg(&dir)
        .args([job.module, job.handler]);
    vec![train]
}

fn worker(dir: &Path) -> Command {
    let mut cmd = Command::new(LANGUAGE.interpreter());
    cmd.args(WORKER_JVM).arg(prefixed("-XX:SharedArchiveFile=", &dir.join(ARCHIVE))).arg(QUIET_ARCHIVE);
    cmd.arg("-cp").arg(dir.join(WORKER_JAR)).arg(WORKER_CLASS).arg(dir);
    cmd
}

/// `sh -c <script>`, its arguments to follow.
fn script(script: &str) -> Command {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", script, "sh"]);
    cmd
}

/// `<flag><path>` as one argument.
fn prefixed(flag: &str, path: &Path) -> OsString {
    let mut arg = OsString::from(flag);
    arg.push(path);
    arg
}

/// The tool `name` of the JDK whose `java` is `java`: in the same directory when `java` is a
/// path, else found on `PATH` as `java` is.
fn sibling(java: &str, name: &str) -> PathBuf {
    if java.contains('/') { Path::new(java).with_file_name(name) } else { PathBuf::from(name) }
}

/// Maven: what `KELP_MAVEN` names, else `mvn` next to `java` when it is there, else `mvn`.
fn maven_command(java: &str) -> PathBuf {
    if let Some(maven) = std::env::var_os("KELP_MAVEN") {
        return maven.into();
    }
    let next_to_java = sibling(java, "mvn");
    if next_to_java.is_absolute() && next_to_java.is_file() { next_to_java } else { PathBuf::from("mvn") }
}

/// A digest of the worker's sources and of how they are compiled: the name of their jar's
/// directory in the toolchain cache.
fn wrapper_digest() -> String {
    let mut digest = Sha256::new();
    for part in std::iter::once(WORKER_SCRIPT).chain(WORKER_JAVAC.iter().copied()) {
        digest.update((part.len() as u64).to_le_bytes());
        digest.update(part);
    }
    for (path, content) in WRAPPER.iter().filter(|(path, _)| path.ends_with(".java")) {
        digest.update((path.len() as u64).to_le_bytes());
        digest.update(path);
        digest.update((content.len() as u64).to_le_bytes());
        digest.update(content);
    }
    crate::deps::hex(&digest.finalize())[..16].to_owned()
}

/// Whether a `pom.xml` needs Maven: it names a parent or a dependency outside Kubeless's own
/// group (which Kelp provides), or one whose group it does not say. An empty `pom.xml`, or one
/// listing only `io.kubeless` artifacts (as Kubeless's function template did), is built by
/// javac alone.
fn needs_maven(pom: &str) -> bool {
    let pom = without_comments(pom);
    ["dependency", "parent"].iter().any(|element| {
        elements(&pom, element).any(|body| elements(body, "groupId").next().is_none_or(|g| g.trim() != KUBELESS_GROUP))
    })
}

/// The contents of every `<name>...</name>` element of `xml`, in order (not nested in itself).
fn elements<'a>(xml: &'a str, name: &str) -> impl Iterator<Item = &'a str> {
    let (open, close) = (format!("<{name}>"), format!("</{name}>"));
    let mut rest = xml;
    std::iter::from_fn(move || {
        let start = rest.find(&open)? + open.len();
        let len = rest[start..].find(&close)?;
        let body = &rest[start..start + len];
        rest = &rest[start + len + close.len()..];
        Some(body)
    })
}

/// `xml` without its `<!-- -->` comments.
fn without_comments(xml: &str) -> String {
    let mut out = String::with_capacity(xml.len());
    let mut rest = xml;
    while let Some(start) = rest.find("<!--") {
        out.push_str(&rest[..start]);
        rest = rest[start..].find("-->").map_or("", |end| &rest[start + end + 3..]);
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::language::{Fit, Interpreter};

    const KUBELESS_POM: &str = r#"<project>
  <artifactId>function</artifactId>
  <dependencies>
     <dependency>
       <groupId>joda-time</groupId>
       <artifactId>joda-time</artifactId>
       <version>2.9.2</version>
     </dependency>
      <dependency>
          <groupId>io.kubeless</groupId>
          <artifactId>params</artifactId>
          <version>1.0-SNAPSHOT</version>
      </dependency>
  </dependencies>
  <parent>
    <groupId>io.kubeless</groupId>
    <artifactId>kubeless</artifactId>
    <version>1.0-SNAPSHOT</version>
  </parent>
</project>"#;

    #[test]
    fn maven_runs_only_for_artifacts_kelp_does_not_provide() {
        assert!(needs_maven(KUBELESS_POM), "joda-time needs Maven");
        let template = KUBELESS_POM.replace("<groupId>joda-time</groupId>", "<groupId>io.kubeless</groupId>");
        assert!(!needs_maven(&template), "Kubeless's own artifacts need no Maven");
        assert!(!needs_maven(""), "an empty pom.xml");
        let commented =
            KUBELESS_POM.replace("<dependency>\n       <groupId>joda", "<!-- <dependency>\n       <groupId>joda");
        let commented =
            commented.replace("2.9.2</version>\n     </dependency>", "2.9.2</version>\n     </dependency> -->");
        assert!(!needs_maven(&commented), "a commented-out dependency");
        let parent = template.replace(
            "<groupId>io.kubeless</groupId>\n    <artifactId>kubeless",
            "<groupId>org.acme</groupId>\n    <artifactId>kubeless",
        );
        assert!(needs_maven(&parent), "a parent of another group");
        assert!(needs_maven("<dependencies><dependency><artifactId>x</artifactId></dependency></dependencies>"));
    }

    #[test]
    fn kubeless_java_runtimes_run_on_the_installed_jdk() {
        let jdk = Interpreter::from_version_output(
            &LANGUAGE,
            "java".into(),
            "openjdk 17.0.15 2025-04-15\nOpenJDK Runtime Environment (build 17.0.15+6-Debian-1deb12u1)\n",
        )
        .unwrap();
        assert_eq!((jdk.version.as_str(), jdk.runtime()), ("17.0.15", "java17".to_owned()));
        for (runtime, fit) in [("java17", Fit::Exact), ("java1.8", Fit::Substituted), ("java11", Fit::Substituted)] {
            assert_eq!(jdk.fit(runtime), fit, "{runtime}");
        }
        assert_eq!(Language::for_runtime("java11").map(|l| l.name), Some("java"));
    }

    #[test]
    fn javac_and_maven_come_from_the_jdk_of_kelp_java() {
        assert_eq!(sibling("/opt/jdk/bin/java", "javac"), Path::new("/opt/jdk/bin/javac"));
        assert_eq!(sibling("java", "javac"), Path::new("javac"));
        let empty = tempfile::tempdir().unwrap();
        let java = empty.path().join("java");
        assert_eq!(maven_command(&java.to_string_lossy()), Path::new("mvn"), "no mvn next to java");
        std::fs::write(empty.path().join("mvn"), "").unwrap();
        assert_eq!(maven_command(&java.to_string_lossy()), empty.path().join("mvn"));
    }
}
