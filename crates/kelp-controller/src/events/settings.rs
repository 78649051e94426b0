//! `kelp-triggers`' command line and environment: the cluster settings of every Kelp process,
//! plus the brokers with Kubeless's environment names.

use std::time::Duration;

use kelp_events::{Brokers, KafkaSettings};

use crate::settings::ClusterSettings;

/// How `kelp-triggers` is run.
#[derive(Clone, Debug, clap::Parser)]
#[command(
    name = "kelp-triggers",
    version,
    about = "Consumes Kafka topics and NATS subjects for KafkaTriggers and NATSTriggers and calls their functions"
)]
pub struct TriggerSettings {
    /// What every Kelp process in a cluster is told.
    #[command(flatten)]
    pub cluster: ClusterSettings,
    /// The name of the Lease whose holder writes the triggers' status and finalizers (every
    /// replica consumes).
    #[arg(long, default_value = "kelp-triggers")]
    pub lease_name: String,
    /// Kafka bootstrap servers, comma-separated; else `kafka-brokers` of the configuration, else
    /// Kubeless's `kafka.kubeless:9092`. TLS and SASL: Kubeless's KAFKA_ENABLE_TLS,
    /// KAFKA_CACERTS, KAFKA_CERT, KAFKA_KEY, KAFKA_INSECURE, KAFKA_ENABLE_SASL, KAFKA_USERNAME,
    /// KAFKA_PASSWORD.
    #[arg(long, value_name = "HOST:PORT,...", env = "KAFKA_BROKERS")]
    pub kafka_brokers: Option<String>,
    /// The NATS server; else `nats-url` of the configuration, else Kubeless's default.
    #[arg(long, value_name = "URL", env = "NATS_URL")]
    pub nats_url: Option<String>,
    /// Longest wait between retries of a failed delivery (a Go duration: 500ms, 10s, 1m).
    #[arg(long, value_name = "DURATION", env = "BACKOFF_INTERVAL", default_value = "10s", value_parser = kelp_events::parse_go_duration)]
    pub backoff_interval: Duration,
    /// Where functions are called: a template with {name}, {namespace} and {port} (the first
    /// port of the function's Service).
    #[arg(long, value_name = "TEMPLATE", default_value = kelp_plan::FUNCTION_URL)]
    pub function_url: String,
}

impl TriggerSettings {
    /// The brokers: flags and environment first, then the configuration's keys, then
    /// Kubeless's defaults.
    pub fn brokers(&self, config: &kelp_plan::Config) -> Brokers {
        let brokers =
            self.kafka_brokers.clone().filter(|b| !b.is_empty()).or_else(|| config.kafka_brokers().map(str::to_owned));
        Brokers {
            kafka: KafkaSettings::from_env(brokers, |name| std::env::var(name).ok()),
            nats_url: self
                .nats_url
                .clone()
                .filter(|u| !u.is_empty())
                .or_else(|| config.nats_url().map(str::to_owned))
                .unwrap_or_else(|| kelp_events::DEFAULT_NATS_URL.to_owned()),
            backoff_cap: self.backoff_interval,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn flags_win_over_the_configuration_which_wins_over_kubeless_defaults() {
        let mut data = kelp_plan::Config::default_data();
        data.insert(kelp_plan::KAFKA_BROKERS_KEY.into(), "kafka.config:9092".into());
        data.insert(kelp_plan::NATS_URL_KEY.into(), "nats://config:4222".into());
        let config = kelp_plan::Config::from_data(&data).unwrap();
        let parse = |args: &[&str]| TriggerSettings::try_parse_from([&["kelp-triggers"], args].concat()).unwrap();
        let flags = parse(&["--kafka-brokers", "a:9092", "--nats-url", "nats://b:4222", "--backoff-interval", "2s"]);
        let brokers = flags.brokers(&config);
        assert_eq!((brokers.kafka.brokers.as_str(), brokers.nats_url.as_str()), ("a:9092", "nats://b:4222"));
        assert_eq!(brokers.backoff_cap, Duration::from_secs(2));
        let configured = TriggerSettings { kafka_brokers: None, nats_url: None, ..flags.clone() }.brokers(&config);
        assert_eq!(
            (configured.kafka.brokers.as_str(), configured.nats_url.as_str()),
            ("kafka.config:9092", "nats://config:4222")
        );
        let defaults = TriggerSettings { kafka_brokers: None, nats_url: None, ..flags }
            .brokers(&kelp_plan::Config::from_data(&kelp_plan::Config::default_data()).unwrap());
        assert_eq!(defaults.nats_url, kelp_events::DEFAULT_NATS_URL);
        assert_eq!(parse(&[]).function_url, kelp_plan::FUNCTION_URL);
        assert_eq!(parse(&[]).lease_name, "kelp-triggers");
    }

    #[test]
    fn the_installed_deployment_runs_the_binary_with_arguments_it_reads() {
        let objects = kelp_plan::install::install_objects(&kelp_plan::install::InstallOptions::default());
        let deployment = objects
            .iter()
            .find(|o| o["kind"] == "Deployment" && o["metadata"]["name"] == "kelp-triggers")
            .expect("the kelp-triggers Deployment");
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        let words: Vec<&str> = container["command"]
            .as_array()
            .into_iter()
            .chain(container["args"].as_array())
            .flatten()
            .filter_map(|w| w.as_str())
            .collect();
        assert_eq!(words[0], "kelp-triggers");
        let settings = TriggerSettings::try_parse_from(&words).unwrap_or_else(|e| panic!("{words:?}: {e}"));
        assert!(settings.cluster.leader_elect);
    }
}
