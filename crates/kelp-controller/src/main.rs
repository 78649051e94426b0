//! `kelp-controller`: the Kelp controller process (see the library's docs).

use clap::Parser;
use kelp_controller::settings::Settings;

#[tokio::main]
async fn main() {
    kelp_controller::init_logging();
    let settings = Settings::parse();
    if let Err(e) = kelp_controller::run::run(settings).await {
        eprintln!("kelp-controller: {e:#}");
        std::process::exit(1);
    }
}
