//! The language-neutral conformance suite: the same functions (`conformance/functions/<lang>/`)
//! and the same cases (`conformance/cases/*.json`) run against every runtime, on real
//! `kelp-runtime` processes. See `conformance/README.md`.
//!
//! Run with `cargo test -p kelp-runtime --test conformance`; the dependency tests need PyPI and
//! the npm registry.

#[path = "conformance/behaviour.rs"]
mod behaviour;
#[path = "conformance/build.rs"]
mod build;
#[path = "conformance/cases.rs"]
mod cases;
#[path = "conformance/go.rs"]
mod go_build;
#[path = "conformance/http.rs"]
mod http;
#[path = "conformance/in_process.rs"]
mod in_process;
#[path = "conformance/java.rs"]
mod java_builds;
#[path = "conformance/plugins.rs"]
mod plugins;
#[path = "conformance/process.rs"]
mod process;

/// One test module per runtime, one test per check in [`behaviour`] (or in the module named
/// before the list).
macro_rules! runtime_tests {
    ($module:ident, $runtime:path, [$($check:ident),* $(,)?]) => {
        runtime_tests!($module, $runtime, behaviour, [$($check),*]);
    };
    ($module:ident, $runtime:path, $checks:ident, [$($check:ident),* $(,)?]) => {
        mod $module {
            $(
                #[test]
                fn $check() {
                    crate::$checks::$check(&$runtime);
                }
            )*
        }
    };
}

/// Instantiates the checks for each runtime.
macro_rules! conformance_suite {
    ($checks:tt; $($module:ident => $runtime:path),* $(,)?) => {
        $( runtime_tests!($module, $runtime, $checks); )*
    };
}

conformance_suite!(
    [cases, timeout, worker_death, concurrency, pipelining, sigterm_drain, prewarm, prewarm_settings, prewarm_sigterm, dependencies, failing_install, install_deps, staged_install, load_failure, access_log, unrepresentable_settings];
    python => crate::process::PYTHON,
    nodejs => crate::process::NODEJS,
);

// The plugin runtimes (`runtimes/ruby`, `runtimes/php`, found through KELP_RUNTIMES_PATH): every
// check of an interpreted language but `staged_install`, since a plugin's dependency install is
// one step (no download apart from running the packages' code).
conformance_suite!(
    [cases, timeout, worker_death, concurrency, pipelining, sigterm_drain, prewarm, prewarm_settings, prewarm_sigterm, dependencies, failing_install, install_deps, load_failure, access_log, unrepresentable_settings];
    ruby => crate::process::RUBY,
    php => crate::process::PHP,
);

/// Plugin runtimes that are broken, and one found by its code file (`conformance/plugins.rs`).
mod plugin_runtimes {
    macro_rules! plugin_tests {
        ($($check:ident),* $(,)?) => {
            $(
                #[test]
                fn $check() {
                    crate::plugins::$check();
                }
            )*
        };
    }
    plugin_tests!(
        bad_description,
        missing_interpreter,
        worker_never_ready,
        worker_breaks_the_protocol,
        found_by_its_code_file
    );
}

// Go: no pre-warm checks (a Go worker is the function's own build, so a runtime cannot be
// pre-warmed before it knows the function), and no install checks (a Go function's modules are
// part of its build: `go_build` tests them, with the build cache and its time limit).
runtime_tests!(
    go,
    crate::process::GO,
    [
        cases,
        timeout,
        worker_death,
        concurrency,
        pipelining,
        sigterm_drain,
        load_failure,
        access_log,
        unrepresentable_settings
    ]
);

// Rust is compiled: the checks of builds apply, and not those of pre-warming (a compiled
// runtime's workers are the function's own build, so the front refuses --prewarm) nor of
// dependency installs (`dependencies`, `install_deps`, `staged_install`: Cargo.toml belongs to
// the build, checked by `build_dependencies` and `build_once`; `failing_install` applies as is).
runtime_tests!(
    rust,
    crate::process::RUST,
    [
        cases,
        timeout,
        worker_death,
        concurrency,
        pipelining,
        sigterm_drain,
        failing_install,
        load_failure,
        access_log,
        unrepresentable_settings,
        build_failure,
        build_once,
        build_timeout,
        build_dependencies,
        build_offline_with_lock,
        panic_survives,
    ]
);

// Rust and Go in the front's own process (`KELP_IN_PROCESS=1`): the same functions and builds,
// every check of a call, and those of what the function gives up (`in_process`).
runtime_tests!(
    rust_in_process,
    crate::process::RUST_IN_PROCESS,
    [cases, concurrency, sigterm_drain, load_failure, access_log, unrepresentable_settings, panic_survives]
);
runtime_tests!(
    go_in_process,
    crate::process::GO_IN_PROCESS,
    [cases, concurrency, sigterm_drain, load_failure, access_log, unrepresentable_settings]
);
// The checks of what a function gives up in process (`in_process`), for each language that has
// a library.
runtime_tests!(
    rust_in_process_only,
    crate::process::RUST_IN_PROCESS,
    in_process,
    [
        runs_in_the_front,
        timeout,
        abandoned_calls_end_the_front,
        exit_ends_the_front,
        queued_call_outlives_an_abandoned_one,
        health_while_calls_run,
        timeout_on_the_unix_socket
    ]
);
runtime_tests!(
    go_in_process_only,
    crate::process::GO_IN_PROCESS,
    in_process,
    [
        runs_in_the_front,
        timeout,
        exit_ends_the_front,
        queued_call_outlives_an_abandoned_one,
        timeout_on_the_unix_socket
    ]
);

/// Languages without a library refuse `KELP_IN_PROCESS=1`.
#[test]
fn in_process_refused_by_java_and_python() {
    crate::in_process::refused(&crate::process::JAVA);
    crate::in_process::refused(&crate::process::PYTHON);
}

// Java builds its function before serving it (`kelp_runtime::build`), so the checks of
// installing a dependency file (`dependencies`, `install_deps`, `staged_install`: the pom.xml is
// the build's, see `java_builds`) and of pre-warming (a compiled language's
// worker is its function's build, so it cannot be started before the function is known) do not
// apply.
conformance_suite!(
    [cases, timeout, worker_death, concurrency, pipelining, sigterm_drain, failing_install, load_failure, access_log, unrepresentable_settings];
    java => crate::process::JAVA,
);

// What the front does with a worker that dies holding a pipelined call, and its Unix socket, are
// the same for every language: checked once, with Python.
runtime_tests!(front, crate::process::PYTHON, [pipelined_call_outlives_a_dying_worker, unix_socket]);
