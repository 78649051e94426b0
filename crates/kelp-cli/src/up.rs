//! `kelp up`: runs the single-machine platform in the foreground (`kelp-up`), and points a
//! kubeconfig context at it.

use crate::target::GlobalArgs;
use anyhow::Context as _;
use std::net::SocketAddr;
use std::path::PathBuf;

/// `kelp up` flags.
#[derive(Debug, clap::Args)]
pub(crate) struct UpArgs {
    /// Address of the Kubernetes API and the functions: the API over HTTPS with the bearer token
    /// written into the kubeconfig context, functions over HTTP or HTTPS on the same port
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Connections served at once; further ones wait until one ends
    #[arg(long, value_name = "N", default_value_t = kelp_up::listener::Limits::default().max_connections,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    max_connections: usize,
    /// Where objects, code, dependencies and logs are kept (default: $XDG_DATA_HOME/kelp, or
    /// ~/.local/share/kelp)
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Do not add the `kelp-local` context to a kubeconfig (the API's token is written nowhere
    /// else: only function URLs are then usable)
    #[arg(long)]
    no_kubeconfig: bool,
    /// Pre-warmed runtimes kept per language, so a first call does not wait for an interpreter
    #[arg(long, value_name = "N", default_value_t = 1)]
    prewarm: usize,
    /// The kelp-runtime binary (default: the one next to `kelp`, else `kelp-runtime` on PATH)
    #[arg(long, value_name = "FILE", env = "KELP_RUNTIME_BIN")]
    runtime_bin: Option<PathBuf>,
    /// Kafka bootstrap servers of KafkaTriggers, comma-separated (TLS and SASL: Kubeless's
    /// KAFKA_ENABLE_TLS, KAFKA_CACERTS, KAFKA_CERT, KAFKA_KEY, KAFKA_INSECURE, KAFKA_ENABLE_SASL,
    /// KAFKA_USERNAME, KAFKA_PASSWORD)
    #[arg(long, value_name = "HOST:PORT,...", env = "KAFKA_BROKERS", default_value = kelp_events::DEFAULT_KAFKA_BROKERS)]
    kafka_brokers: String,
    /// NATS server of NATSTriggers
    #[arg(long, value_name = "URL", env = "NATS_URL", default_value = kelp_events::DEFAULT_NATS_URL)]
    nats_url: String,
    /// Longest wait between retries of a failed event delivery (a Go duration: 500ms, 10s, 1m)
    #[arg(long, value_name = "DURATION", env = "BACKOFF_INTERVAL", default_value = "10s", value_parser = kelp_events::parse_go_duration)]
    backoff_interval: std::time::Duration,
    /// Loopback address of the web dashboard (as `kelp dashboard` serves it, with the kelp-local
    /// context; default: a free port), which `/ui/` on --listen leads to; its login URL is
    /// printed once the platform is ready
    #[arg(long, value_name = "ADDR")]
    dashboard: Option<SocketAddr>,
    /// Serve no web dashboard
    #[arg(long, conflicts_with = "dashboard")]
    no_dashboard: bool,
    /// Testing aid: cron schedules run this many times faster than real time
    #[arg(long, hide = true, default_value_t = 1.0)]
    cron_speed: f64,
}

/// Runs the platform until Ctrl-C or SIGTERM.
pub(crate) async fn run(global: &GlobalArgs, args: UpArgs) -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("KELP_LOG").unwrap_or_else(|_| "warn".into()))
        .try_init();
    let data_dir = args.data_dir.map_or_else(default_data_dir, Ok)?;
    let kubeconfig = (!args.no_kubeconfig).then(|| kelp_up::kubeconfig::default_path(global.kubeconfig.as_deref()));
    let mut config = kelp_up::UpConfig {
        listen: args.listen,
        data_dir,
        kubeconfig,
        runtime_bin: args.runtime_bin.unwrap_or_else(default_runtime_bin),
        prewarm_per_language: args.prewarm,
        cron_clock: kelp_up::cron::Clock::sped_up(args.cron_speed),
        events: kelp_events::Brokers {
            kafka: kelp_events::KafkaSettings::from_env(Some(args.kafka_brokers), |name| std::env::var(name).ok()),
            nats_url: args.nats_url,
            backoff_cap: args.backoff_interval,
        },
        limits: kelp_up::listener::Limits {
            max_connections: args.max_connections,
            ..kelp_up::listener::Limits::default()
        },
        dashboard: None,
    };
    // By default on a free loopback port, unless there is no kelp-local context to act with.
    let wanted = match (args.dashboard, args.no_dashboard || args.no_kubeconfig) {
        (Some(_), _) if args.no_kubeconfig => {
            anyhow::bail!("--dashboard needs the kelp-local context: it cannot be used with --no-kubeconfig")
        }
        (Some(listen), _) => Some(listen),
        (None, true) => None,
        (None, false) => Some(SocketAddr::from(([127, 0, 0, 1], 0))),
    };
    let dashboard = match wanted {
        None => None,
        Some(listen) => {
            // Bound first: a taken port fails the start, not the dashboard later.
            let socket = crate::dashboard::bind(listen, "--dashboard").await?;
            config.dashboard = Some(socket.local_addr().context("the dashboard's address")?);
            let local = GlobalArgs {
                kubeconfig: config.kubeconfig.clone(),
                context: Some(kelp_up::kubeconfig::CONTEXT.to_owned()),
                namespace: global.namespace.clone(),
            };
            Some(tokio::spawn(async move {
                let target = ready_platform(&local).await;
                if let Err(error) = crate::dashboard::serve(socket, &target, "kelp up").await {
                    eprintln!("kelp up: the dashboard stopped: {error:#}");
                }
            }))
        }
    };
    let result = kelp_up::run(config, stop_signal()).await;
    if let Some(dashboard) = dashboard {
        dashboard.abort();
    }
    result?;
    Ok(())
}

/// The kelp-local context once it reaches this start of the platform (the kubeconfig is written
/// when the platform is ready; until then it is missing or holds an earlier start's token).
async fn ready_platform(local: &GlobalArgs) -> crate::target::Target {
    loop {
        if let Ok(target) = crate::target::connect(local).await
            && target.client.apiserver_version().await.is_ok()
        {
            return target;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

fn default_data_dir() -> anyhow::Result<PathBuf> {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .context("cannot choose a data directory: set --data-dir, $XDG_DATA_HOME or $HOME")?;
    Ok(base.join("kelp"))
}

/// `kelp-runtime` next to this binary, else the one on PATH.
fn default_runtime_bin() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("kelp-runtime")))
        .filter(|path| path.is_file())
        .unwrap_or_else(|| PathBuf::from("kelp-runtime"))
}

/// Completes on Ctrl-C or SIGTERM.
pub(crate) async fn stop_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
}
