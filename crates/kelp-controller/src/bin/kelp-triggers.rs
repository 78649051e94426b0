//! `kelp-triggers`: the consumers of KafkaTriggers and NATSTriggers on a cluster (see
//! `kelp_controller::events`).

use clap::Parser;
use kelp_controller::events::settings::TriggerSettings;

#[tokio::main]
async fn main() {
    kelp_controller::init_logging();
    let settings = TriggerSettings::parse();
    if let Err(e) = kelp_controller::events::run(settings).await {
        eprintln!("kelp-triggers: {e:#}");
        std::process::exit(1);
    }
}
