//! Where the brokers are and how to reach them, from Kubeless's environment names:
//! `KAFKA_BROKERS` with its TLS (`KAFKA_ENABLE_TLS`, `KAFKA_CACERTS`, `KAFKA_CERT`, `KAFKA_KEY`,
//! `KAFKA_INSECURE`) and SASL (`KAFKA_ENABLE_SASL`, `KAFKA_USERNAME`, `KAFKA_PASSWORD`) variables,
//! `NATS_URL`, and `BACKOFF_INTERVAL` (a Go duration capping the retry backoff).

use std::time::Duration;

use rdkafka::ClientConfig;

use crate::Error;

/// Kubeless's default brokers (the `kafka` Service in namespace `kubeless`).
pub const DEFAULT_KAFKA_BROKERS: &str = "kafka.kubeless:9092";
/// Kubeless's default NATS server.
pub const DEFAULT_NATS_URL: &str = "nats://nats.nats-io.svc.cluster.local:4222";

/// How to reach the Kafka cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KafkaSettings {
    /// Bootstrap servers, comma-separated (`KAFKA_BROKERS`).
    pub brokers: String,
    /// TLS, when `KAFKA_ENABLE_TLS` is `true`.
    pub tls: Option<KafkaTls>,
    /// SASL/PLAIN user name and password, when `KAFKA_ENABLE_SASL` is `true`.
    pub sasl: Option<(String, String)>,
}

/// Kafka TLS files, as Kubeless named them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KafkaTls {
    /// CA certificates (PEM file, `KAFKA_CACERTS`); the system's when unset.
    pub ca_file: Option<String>,
    /// Client certificate (PEM file, `KAFKA_CERT`).
    pub cert_file: Option<String>,
    /// Client key (PEM file, `KAFKA_KEY`).
    pub key_file: Option<String>,
    /// Do not verify the brokers' certificates (`KAFKA_INSECURE`).
    pub insecure: bool,
}

impl KafkaSettings {
    /// The settings `brokers` (e.g. from a flag) or `KAFKA_BROKERS`, and the TLS/SASL variables,
    /// read through `env` (`|name| std::env::var(name).ok()` in a program).
    pub fn from_env(brokers: Option<String>, env: impl Fn(&str) -> Option<String>) -> KafkaSettings {
        let set = |name: &str| env(name).filter(|v| !v.is_empty());
        let on = |name: &str| set(name).is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
        KafkaSettings {
            brokers: brokers.or_else(|| set("KAFKA_BROKERS")).unwrap_or_else(|| DEFAULT_KAFKA_BROKERS.to_owned()),
            tls: on("KAFKA_ENABLE_TLS").then(|| KafkaTls {
                ca_file: set("KAFKA_CACERTS"),
                cert_file: set("KAFKA_CERT"),
                key_file: set("KAFKA_KEY"),
                insecure: on("KAFKA_INSECURE"),
            }),
            sasl: on("KAFKA_ENABLE_SASL")
                .then(|| (set("KAFKA_USERNAME").unwrap_or_default(), set("KAFKA_PASSWORD").unwrap_or_default())),
        }
    }

    /// A librdkafka configuration with the brokers, security and client id set.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers).set("client.id", crate::event::KAFKA_CLIENT_ID);
        let protocol = match (&self.tls, &self.sasl) {
            (None, None) => "plaintext",
            (Some(_), None) => "ssl",
            (None, Some(_)) => "sasl_plaintext",
            (Some(_), Some(_)) => "sasl_ssl",
        };
        config.set("security.protocol", protocol);
        if let Some(tls) = &self.tls {
            for (key, value) in [
                ("ssl.ca.location", &tls.ca_file),
                ("ssl.certificate.location", &tls.cert_file),
                ("ssl.key.location", &tls.key_file),
            ] {
                if let Some(value) = value {
                    config.set(key, value);
                }
            }
            if tls.insecure {
                config.set("enable.ssl.certificate.verification", "false");
            }
        }
        if let Some((user, password)) = &self.sasl {
            config.set("sasl.mechanisms", "PLAIN").set("sasl.username", user).set("sasl.password", password);
        }
        config
    }
}

/// The NATS server: `url` (e.g. from a flag), else `NATS_URL`, else Kubeless's default.
pub fn nats_url(url: Option<String>, env: impl Fn(&str) -> Option<String>) -> String {
    url.or_else(|| env("NATS_URL").filter(|v| !v.is_empty())).unwrap_or_else(|| DEFAULT_NATS_URL.to_owned())
}

/// Parses a Go duration (`BACKOFF_INTERVAL`): a sequence of decimal numbers with units `ns`,
/// `us` (or `µs`), `ms`, `s`, `m`, `h`, such as `300ms`, `1.5s` or `2m30s`; `0` alone is zero.
pub fn parse_go_duration(text: &str) -> Result<Duration, Error> {
    let invalid = || Error::Setting { name: "BACKOFF_INTERVAL", reason: format!("{text:?} is not a Go duration") };
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = text;
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(invalid)?;
        let number: f64 = rest[..number_len].parse().map_err(|_| invalid())?;
        rest = &rest[number_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(invalid()),
        };
        total += number * seconds;
        rest = &rest[unit_len..];
    }
    if text.is_empty() {
        return Err(invalid());
    }
    Duration::try_from_secs_f64(total).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("300ms").unwrap(), Duration::from_millis(300));
        assert_eq!(parse_go_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_go_duration("2m30s").unwrap(), Duration::from_secs(150));
        assert_eq!(parse_go_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_go_duration("0").unwrap(), Duration::ZERO);
        for bad in ["", "10", "s", "5 s", "1d", "-1s"] {
            assert!(parse_go_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn kafka_settings_from_kubeless_names() {
        let plain = KafkaSettings::from_env(None, env(&[]));
        assert_eq!(plain.brokers, DEFAULT_KAFKA_BROKERS);
        assert_eq!(plain.client_config().get("security.protocol"), Some("plaintext"));
        let flag = KafkaSettings::from_env(Some("a:1".into()), env(&[("KAFKA_BROKERS", "b:2")]));
        assert_eq!(flag.brokers, "a:1");
        let secure = KafkaSettings::from_env(
            None,
            env(&[
                ("KAFKA_BROKERS", "k1:9093,k2:9093"),
                ("KAFKA_ENABLE_TLS", "true"),
                ("KAFKA_CACERTS", "/certs/ca.pem"),
                ("KAFKA_INSECURE", "true"),
                ("KAFKA_ENABLE_SASL", "true"),
                ("KAFKA_USERNAME", "u"),
                ("KAFKA_PASSWORD", "p"),
            ]),
        );
        let config = secure.client_config();
        assert_eq!(config.get("bootstrap.servers"), Some("k1:9093,k2:9093"));
        assert_eq!(config.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(config.get("ssl.ca.location"), Some("/certs/ca.pem"));
        assert_eq!(config.get("enable.ssl.certificate.verification"), Some("false"));
        assert_eq!((config.get("sasl.username"), config.get("sasl.password")), (Some("u"), Some("p")));
        assert_eq!(nats_url(None, env(&[("NATS_URL", "nats://x:4222")])), "nats://x:4222");
        assert_eq!(nats_url(None, env(&[])), DEFAULT_NATS_URL);
    }
}
