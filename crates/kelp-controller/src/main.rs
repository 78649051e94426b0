//! `kelp-controller`: the Kelp controller process (see the library's docs).

use clap::Parser;
use kelp_controller::settings::Settings;

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KELP_LOG").unwrap_or_else(|_| "info,kube_runtime=warn".into()),
        )
        .init();
    let settings = Settings::parse();
    if let Err(e) = kelp_controller::run::run(settings).await {
        eprintln!("kelp-controller: {e:#}");
        std::process::exit(1);
    }
}
