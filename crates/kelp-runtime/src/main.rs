//! `kelp-runtime`: serve one Kubeless function over HTTP.
//!
//! Usage: `kelp-runtime` reads the function from the environment (`FUNC_HANDLER`, `MOD_NAME`,
//! `FUNC_RUNTIME`, ...). `kelp-runtime --prewarm` starts its workers before it knows the
//! function, then reads one line of JSON on stdin: an object of environment variables (the same
//! names) that completes its environment, and loads the function they describe.
//! `kelp-runtime --install-deps` installs the dependency file of the code directory into
//! `KELP_DEPS_DIR` (what a Kubernetes `install` init container runs) and exits: 0 when the
//! dependencies are in place (or there are none), 1 with the installer's error; with
//! `KELP_DEPS_STAGE` it installs offline from that directory, which `kelp-runtime --fetch-deps`
//! filled (downloading, running none of the packages' code) in an earlier init container that
//! held the install-time credentials.
//! `kelp-runtime --build` builds a compiled language's function (Go, Java, Rust) into
//! `KELP_DEPS_DIR` once per content (`kelp_runtime::build`; what a `build` init container runs)
//! and exits; serving such a function builds it first when no earlier build is found.
//! `--cgroup <dir>` (repeatable, before the rest) makes the process a member of that cgroup
//! directory before it does anything else, so that everything it starts is in it too (`kelp up`
//! starts each instance so).

use anyhow::{Context, bail};
use kelp_runtime::config::Config;
use kelp_runtime::in_process::InProcess;
use kelp_runtime::language::Language;
use kelp_runtime::pool::Pool;
use kelp_runtime::protocol::Load;
use kelp_runtime::server::{self, App, Backend, Settings};
use kelp_runtime::worker::Spawner;
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::Instant;

fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("KELP_LOG").unwrap_or_else(|_| "info".into()))
        .init();
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    while args.first().is_some_and(|a| a == "--cgroup") {
        let Some(dir) = args.get(1) else {
            eprintln!("kelp-runtime: --cgroup needs a cgroup directory");
            std::process::exit(2);
        };
        let procs = std::path::Path::new(dir).join("cgroup.procs");
        if let Err(e) = std::fs::write(&procs, std::process::id().to_string()) {
            eprintln!("kelp-runtime: cannot join the cgroup {dir}: {e}");
            std::process::exit(1);
        }
        args.drain(..2);
    }
    let mode = match args.first().map(String::as_str) {
        None => Mode::Serve,
        Some("--prewarm") => Mode::Prewarm,
        Some("--install-deps") => Mode::InstallDeps,
        Some("--fetch-deps") => Mode::FetchDeps,
        Some("--build") => Mode::Build,
        Some("--version") => {
            println!("kelp-runtime {}", env!("CARGO_PKG_VERSION"));
            return;
        }
        Some(other) => {
            eprintln!(
                "kelp-runtime: unknown argument {other:?}; usage: kelp-runtime [--cgroup <dir>]... [--prewarm | --fetch-deps | --install-deps | --build | --version]"
            );
            std::process::exit(2);
        }
    };
    // Read once: it sizes the runtime, and every mode runs on it.
    let config = Config::from_env();
    let result = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(front_threads(mode, &config))
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| {
            let result = rt.block_on(async {
                let config = match config {
                    Ok(config) => config,
                    Err(e) => return Err(anyhow::Error::from(e)),
                };
                match mode {
                    Mode::Serve => run(config, false).await,
                    Mode::Prewarm => run(config, true).await,
                    Mode::InstallDeps => install_deps(&config).await,
                    Mode::FetchDeps => fetch_deps(&config).await,
                    Mode::Build => build(&config).await.map(|built| println!("{}", built.summary())),
                }
            });
            // A pending read of stdin (a pre-warmed runtime stopped before its hand-off) must not
            // keep the process alive.
            rt.shutdown_background();
            result
        });
    if let Err(e) = result {
        eprintln!("kelp-runtime: {e:#}");
        std::process::exit(1);
    }
}

/// What the process was started to do.
#[derive(Clone, Copy)]
enum Mode {
    /// Serve the function of the environment.
    Serve,
    /// Start the workers, then read the function on stdin and serve it.
    Prewarm,
    /// Install the function's dependencies and exit.
    InstallDeps,
    /// Fetch the function's dependencies into `KELP_DEPS_STAGE` and exit.
    FetchDeps,
    /// Build the function (a compiled language's) and exit.
    Build,
}

/// Builds the function `config` describes, a compiled language's, into `KELP_DEPS_DIR` (or
/// finds it built), saying what was built from which key and how long it took.
async fn build(config: &Config) -> anyhow::Result<kelp_runtime::build::Built> {
    let lang = language(config)?;
    let (Some(module), Some(handler)) = (config.module.as_deref(), config.handler.as_deref()) else {
        bail!("MOD_NAME and FUNC_HANDLER must name the function (handler \"<MOD_NAME>.<FUNC_HANDLER>\")");
    };
    if lang.build.is_none() {
        bail!("{} functions are not compiled: there is nothing to build", lang.title);
    }
    let source =
        kelp_runtime::build::Source { code_dir: &config.code_dir, module, handler, namespace: &config.namespace };
    let built = kelp_runtime::build::ensure(lang, source, &config.deps_dir, config.build_timeout).await?;
    tracing::info!(dir = %built.dir.display(), "{}", built.summary());
    Ok(built)
}

/// Downloads what the dependency file of the code directory (if any) needs into
/// `KELP_DEPS_STAGE`, running none of the packages' code, unless `KELP_DEPS_DIR` already has
/// the install.
async fn fetch_deps(config: &Config) -> anyhow::Result<()> {
    let lang = language(config)?;
    let stage =
        config.deps_stage.as_deref().context("--fetch-deps needs KELP_DEPS_STAGE: the directory to fetch into")?;
    kelp_runtime::deps::fetch(
        lang,
        &config.code_dir,
        &config.deps_dir,
        &config.namespace,
        stage,
        config.install_timeout,
    )
    .await?;
    Ok(())
}

/// The dependencies of the function `config` describes, installed (or found) as it says:
/// [`kelp_runtime::deps::ensure`] with the code, cache and stage directories, namespace and time
/// limit of `config`.
async fn ensure_deps(
    lang: &'static Language,
    config: &Config,
) -> Result<Vec<std::path::PathBuf>, kelp_runtime::deps::DepsError> {
    let (code, deps, stage) = (&config.code_dir, &config.deps_dir, config.deps_stage.as_deref());
    kelp_runtime::deps::ensure(lang, code, deps, &config.namespace, stage, config.install_timeout).await
}

/// Installs the dependency file of the code directory (if any) into `KELP_DEPS_DIR`, for the
/// namespace `KELP_NAMESPACE`.
async fn install_deps(config: &Config) -> anyhow::Result<()> {
    let lang = language(config)?;
    let paths = ensure_deps(lang, config).await?;
    match paths.first() {
        Some(path) => tracing::info!(language = lang.name, dir = %path.display(), "dependencies ready"),
        None => tracing::info!(language = lang.name, "no dependencies to install"),
    }
    Ok(())
}

/// Threads for the front: `TOKIO_WORKER_THREADS`, else half the cores (at least one). The front
/// only moves bytes; the workers need the other cores, and on two cores a second front thread
/// costs more in wake-ups than it brings (see bench/README.md).
fn io_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::env::var("TOKIO_WORKER_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or((cores / 2).max(1))
}

/// Threads for the front: [`io_threads`], and with an in-process function
/// ([`kelp_runtime::in_process::threads`]) those its calls run on.
fn front_threads<E>(mode: Mode, config: &Result<Config, E>) -> usize {
    match (mode, config) {
        (Mode::Serve, Ok(config)) if config.in_process => {
            kelp_runtime::in_process::threads(io_threads(), config.max_workers)
        }
        _ => io_threads(),
    }
}

async fn run(config: Config, prewarm: bool) -> anyhow::Result<()> {
    let lang = language(&config)?;
    let built = if lang.build.is_some() {
        if prewarm {
            bail!("{} workers are the function's own build: a {} runtime cannot be pre-warmed", lang.title, lang.title);
        }
        Some(build(&config).await?.dir)
    } else {
        None
    };
    let backend = if config.in_process {
        let library = kelp_runtime::in_process::library(lang, built.as_deref())?;
        Backend::InProcess(InProcess::new(library, config.max_workers).context("starting the in-process watchdog")?)
    } else {
        let spawner = match &built {
            Some(dir) => Spawner::built(lang, dir)
                .with_context(|| format!("preparing the {} worker of {}", lang.name, dir.display()))?,
            None => Spawner::new(lang, &config.cache_dir)
                .with_context(|| format!("preparing the {} worker in {}", lang.name, config.cache_dir.display()))?,
        };
        let pool = Pool::start(spawner, config.min_workers, config.max_workers, config.pipeline_below).await?;
        if prewarm {
            // Waiting for its function: the other workers start now, so that all are ready for it.
            pool.fill();
        }
        Backend::Workers(pool)
    };
    let addr = std::net::SocketAddr::new(config.listen, config.port);
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
    let app = Arc::new(App::new(backend, config.access_log));
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let exit_with_parent = config.exit_with_parent;
    tokio::spawn(async move {
        tokio::select! {
            () = shutdown_signal() => {}
            () = parent_died(), if exit_with_parent => tracing::warn!("the parent process died; shutting down"),
        }
        let _ = stop.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stopped| *stopped).await;
    };
    let grace = config.shutdown_timeout;
    let server = tokio::spawn(server::serve(listener, app.clone(), stopped(stopping.clone()), grace));
    let unix_server = match &config.unix_listen {
        Some(path) => {
            let listener = unix_listener(path)?;
            Some(tokio::spawn(server::serve(listener, app.clone(), stopped(stopping.clone()), grace)))
        }
        None => None,
    };
    tokio::select! {
        loaded = load_function(config, prewarm, lang, &app, addr) => loaded?,
        // Stopped before the function was ready (e.g. a pre-warmed runtime never given one).
        () = stopped(stopping) => {}
    }
    server.await?;
    if let Some(unix_server) = unix_server {
        unix_server.await?;
    }
    app.backend().close();
    tracing::info!("stopped");
    Ok(())
}

/// A Unix socket listening at `path` (a stale one replaced), readable and writable by this user
/// only.
fn unix_listener(path: &std::path::Path) -> anyhow::Result<tokio::net::UnixListener> {
    let _ = std::fs::remove_file(path);
    let listener = tokio::net::UnixListener::bind(path)
        .with_context(|| format!("cannot listen on the Unix socket {} (KELP_UNIX_LISTEN)", path.display()))?;
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .with_context(|| format!("cannot make {} private", path.display()))?;
    Ok(listener)
}

/// Installs the function's dependencies and loads it into the workers, then opens the front to it.
async fn load_function(
    config: Config,
    prewarm: bool,
    lang: &'static Language,
    app: &App,
    addr: std::net::SocketAddr,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let (config, env) = if prewarm { function_from_stdin().await? } else { (config, Map::new()) };
    let (Some(module), Some(handler)) = (config.module.clone(), config.handler.clone()) else {
        bail!("MOD_NAME and FUNC_HANDLER must name the function (handler \"<MOD_NAME>.<FUNC_HANDLER>\")");
    };
    if Language::find(config.runtime.as_deref().unwrap_or(lang.runtime_ids[0]))?.is_none_or(|l| !std::ptr::eq(l, lang))
    {
        bail!("FUNC_RUNTIME={:?} is not a {} runtime, which this runtime was started for", config.runtime, lang.name);
    }
    let paths = if lang.build.is_some() { Vec::new() } else { ensure_deps(lang, &config).await? };
    let load = Load {
        code_dir: config.code_dir.clone(),
        module: module.clone(),
        handler: handler.clone(),
        paths,
        env,
        context: json!({
            "function-name": handler,
            "timeout": config.timeout_secs,
            "runtime": config.runtime.clone().unwrap_or_default(),
            "memory-limit": config.memory_limit,
        }),
    };
    app.backend().load(load).await?;
    app.loaded(Settings { timeout: config.timeout(), max_body: config.max_body, access_log: config.access_log });
    tracing::info!(function = %format!("{module}.{handler}"), language = lang.name, %addr,
        workers = app.backend().live(), ms = started.elapsed().as_millis() as u64, "function loaded; serving");
    Ok(())
}

/// The language of the function: from `FUNC_RUNTIME`, else from the code file that exists.
fn language(config: &Config) -> anyhow::Result<&'static Language> {
    match (&config.runtime, &config.module) {
        (Some(runtime), _) => Language::find(runtime)?.with_context(|| {
            format!(
                "FUNC_RUNTIME={runtime:?} is not supported; supported runtime IDs: {} (plugins are found in {})",
                Language::known_ids(),
                kelp_runtime::plugin::PATH_VAR
            )
        }),
        (None, Some(module)) => Language::for_code(&config.code_dir, module).with_context(|| {
            format!(
                "FUNC_RUNTIME is not set and no code file for MOD_NAME={module:?} was found in {}",
                config.code_dir.display()
            )
        }),
        (None, None) => bail!(
            "FUNC_RUNTIME is not set; a pre-warmed runtime must know its language (for example FUNC_RUNTIME=python3)"
        ),
    }
}

/// Reads the pre-warm hand-off: one JSON object of environment variables on stdin.
async fn function_from_stdin() -> anyhow::Result<(Config, Map<String, Value>)> {
    use tokio::io::AsyncBufReadExt;
    let mut line = String::new();
    tokio::io::BufReader::new(tokio::io::stdin())
        .read_line(&mut line)
        .await
        .context("reading the function from stdin")?;
    let env: Map<String, Value> = serde_json::from_str(&line)
        .context("the pre-warm hand-off must be one JSON object of environment variables")?;
    let lookup = |k: &str| match env.get(k) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => std::env::var(k).ok(),
    };
    Ok((Config::from_lookup(lookup)?, env))
}

/// Completes when this process is re-parented: the process that started it has died.
async fn parent_died() {
    let parent = nix::unistd::getppid();
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        if nix::unistd::getppid() != parent {
            return;
        }
    }
}

/// Completes on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
