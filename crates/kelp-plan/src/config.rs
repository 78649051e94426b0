//! [`Config`]: the `kubeless-config` ConfigMap, parsed.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::LocalObjectReference;

use crate::error::PlanError;
use crate::images::{ImageRegistry, PROVISION_IMAGE};
use crate::merge;
use crate::runtimes::{self, Runtime};

/// The node directory holding installed dependencies when `dependency-cache-path` is not set
/// (see the crate docs).
pub const DEFAULT_DEPENDENCY_CACHE_PATH: &str = "/var/cache/kelp";

/// The key naming the Kafka brokers of KafkaTriggers (`host:port`, comma-separated), read by
/// `kelp-triggers`; `kelp install --kafka-brokers` writes it.
pub const KAFKA_BROKERS_KEY: &str = "kafka-brokers";

/// The key naming the NATS server of NATSTriggers (`nats://host:port`), read by
/// `kelp-triggers`; `kelp install --nats-url` writes it.
pub const NATS_URL_KEY: &str = "nats-url";

/// The keys read from `kubeless-config`.
mod key {
    pub(super) const DEPLOYMENT: &str = "deployment";
    pub(super) const PROVISION_IMAGE: &str = "provision-image";
    pub(super) const PROVISION_IMAGE_SECRET: &str = "provision-image-secret";
    pub(super) const BUILDER_IMAGE_SECRET: &str = "builder-image-secret";
    pub(super) const FUNCTIONS_NAMESPACE: &str = "functions-namespace";
    pub(super) const DEPENDENCY_CACHE_PATH: &str = "dependency-cache-path";
    pub(super) const INGRESS_ANNOTATIONS: &str = "ingress-annotations";
}

/// The most entries `ingress-annotations` may list.
const MAX_INGRESS_ANNOTATIONS: usize = 256;

/// Kubeless's keys that Kelp writes with the values saying what Kelp does, and then ignores:
/// no image build step (dependencies are installed once per node instead), and the two keys
/// Kubeless itself no longer used. Tools that read them (the Serverless Framework's plugin reads
/// the whole ConfigMap) find them.
const IGNORED_KEYS: [(&str, &str); 5] = [
    ("enable-build-step", "false"),
    ("function-registry-tls-verify", "true"),
    ("builder-image", ""),
    ("ingress-enabled", "false"),
    ("service-type", "ClusterIP"),
];

/// The `kubeless-config` ConfigMap, parsed: what every planned object depends on besides its
/// own kind.
///
/// Keys (absent keys take the value of [`Config::default_data`]):
///
/// | Key | Meaning |
/// |---|---|
/// | `runtime-images` | Kubeless's JSON list `[{ID, depName, fileNameSuffix, livenessProbeInfo?, versions: [{name, version, imagePullSecrets?: [{imageSecret}], images: [{phase: installation\|compilation\|runtime, image, command?, env?, secrets?: [{name}]}]}]}]`; keys match case-insensitively, as Kubeless read them |
/// | `deployment` | a Deployment (YAML or JSON) merged into every function's: the function's own fields win; inside containers (matched by position) the config's `env`, `ports`, `volumeMounts`, ... are appended. Parsed strictly: an unknown or duplicated field is an error |
/// | `provision-image` | the image of the `prepare` and `cache-owner` init containers and of the CronJobs' `curl`: `sh`, `curl`, `base64`, `sha256sum`, `unzip` and `tar` (Kelp's `kelp/provision:<version>`, [`PROVISION_IMAGE`](crate::images::PROVISION_IMAGE)) |
/// | `provision-image-secret`, `builder-image-secret` | Secrets added to the `imagePullSecrets` of every function pod and CronJob |
/// | `functions-namespace` | the only namespace whose objects the controller serves (empty: all) |
/// | `dependency-cache-path` | the node directory of installed dependencies ([`DEFAULT_DEPENDENCY_CACHE_PATH`]), one subdirectory `<namespace>` each; empty: a per-pod `emptyDir` |
/// | `ingress-annotations` | HTTPTrigger annotations copied onto Ingresses besides [`ALLOWED_INGRESS_ANNOTATIONS`](crate::ALLOWED_INGRESS_ANNOTATIONS): keys separated by commas or white space, `prefix*` for every key starting with `prefix`; absent by default |
/// | `kafka-brokers` | the Kafka brokers of KafkaTriggers, `host:port[,host:port...]`, for `kelp-triggers`; absent by default (then `kelp-triggers` uses Kubeless's `kafka.kubeless:9092`). Credentials never go here: they are the `KAFKA_*` variables of the Secret `kelp-triggers-brokers` |
/// | `nats-url` | the NATS server of NATSTriggers, for `kelp-triggers`; absent by default (then Kubeless's `nats://nats.nats-io.svc.cluster.local:4222`) |
///
/// Kubeless's other keys (`enable-build-step`, `builder-image`, `function-registry-tls-verify`,
/// `ingress-enabled`, `service-type`) are written by [`Config::default_data`] (`false`, empty,
/// `true`, `false`, `ClusterIP`), accepted, and ignored: Kelp has no image build step
/// (dependencies are installed once per node instead), and the last two were unused already.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub(crate) runtimes: Vec<Runtime>,
    pub(crate) deployment: Option<Deployment>,
    pub(crate) provision_image: String,
    pub(crate) image_pull_secrets: Vec<LocalObjectReference>,
    functions_namespace: Option<String>,
    pub(crate) dependency_cache_path: Option<String>,
    kafka_brokers: Option<String>,
    nats_url: Option<String>,
    ingress_annotations: Vec<String>,
}

impl Config {
    /// Parses the `data` of a `kubeless-config` ConfigMap.
    pub fn from_data(data: &BTreeMap<String, String>) -> Result<Config, PlanError> {
        let get = |key: &str| data.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
        let runtimes = match get(runtimes::KEY) {
            Some(text) => runtimes::parse(text)?,
            None => runtimes::defaults(&ImageRegistry::default()),
        };
        let deployment = get(key::DEPLOYMENT).map(merge::parse_template).transpose()?;
        // An empty template (`{}`) merges nothing.
        let deployment = deployment.filter(|d| *d != Deployment::default());
        let image_pull_secrets = [key::PROVISION_IMAGE_SECRET, key::BUILDER_IMAGE_SECRET]
            .into_iter()
            .filter_map(|k| get(k).map(|name| LocalObjectReference { name: name.to_owned() }))
            .collect();
        let dependency_cache_path = match data.get(key::DEPENDENCY_CACHE_PATH).map(|v| v.trim()) {
            None => Some(DEFAULT_DEPENDENCY_CACHE_PATH.to_owned()),
            Some("") => None,
            Some(path) if path.starts_with('/') => Some(path.to_owned()),
            Some(_) => {
                return Err(PlanError::config(
                    key::DEPENDENCY_CACHE_PATH,
                    "must be an absolute path on the nodes, or empty for a per-pod emptyDir",
                ));
            }
        };
        let ingress_annotations: Vec<String> = get(key::INGRESS_ANNOTATIONS)
            .unwrap_or_default()
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|entry| !entry.is_empty())
            .map(str::to_owned)
            .collect();
        if ingress_annotations.len() > MAX_INGRESS_ANNOTATIONS {
            return Err(PlanError::config(
                key::INGRESS_ANNOTATIONS,
                format!("lists {} keys; at most {MAX_INGRESS_ANNOTATIONS}", ingress_annotations.len()),
            ));
        }
        if let Some(bad) = ingress_annotations.iter().find(|entry| entry.trim_end_matches('*').is_empty()) {
            return Err(PlanError::config(
                key::INGRESS_ANNOTATIONS,
                format!("{bad:?} allows every annotation; name keys, or prefixes followed by '*'"),
            ));
        }
        Ok(Config {
            runtimes,
            deployment,
            provision_image: get(key::PROVISION_IMAGE)
                .map_or_else(|| ImageRegistry::default().image(PROVISION_IMAGE), str::to_owned),
            image_pull_secrets,
            functions_namespace: get(key::FUNCTIONS_NAMESPACE).map(str::to_owned),
            dependency_cache_path,
            kafka_brokers: get(KAFKA_BROKERS_KEY).map(str::to_owned),
            nats_url: get(NATS_URL_KEY).map(str::to_owned),
            ingress_annotations,
        })
    }

    /// The `data` of the `kubeless-config` that `kelp install` writes, for Kelp's images in the
    /// default registry ([`Config::default_data_for`]).
    pub fn default_data() -> BTreeMap<String, String> {
        Config::default_data_for(&ImageRegistry::default())
    }

    /// The `data` of the `kubeless-config` that `kelp install --image-registry` writes: Kelp's
    /// runtimes under Kubeless's IDs and versions (Python `python3`, `python3.6` … `python3.12`;
    /// Node.js `nodejs10` … `nodejs22`, each served by `<registry>/runtime-python` /
    /// `<registry>/runtime-nodejs` of this version), an empty `deployment`, the provision image
    /// `<registry>/provision` of this version, the default dependency cache,
    /// every namespace served, and Kubeless's other keys with the values that say what Kelp does
    /// (no build step). `kafka-brokers` and `nats-url` are left out, so `kelp-triggers` uses
    /// Kubeless's addresses until `kelp install --kafka-brokers` / `--nats-url` sets them.
    /// `kelp install` writes it, and `kelp up` serves it, so both backends answer readers of the
    /// ConfigMap (the `kelp` CLI, the Serverless Framework) alike.
    pub fn default_data_for(registry: &ImageRegistry) -> BTreeMap<String, String> {
        // Plain data: serializing it has no failure mode.
        let runtime_images =
            serde_json::to_string_pretty(&runtimes::defaults(registry)).expect("the runtime list serializes to JSON");
        let ignored = IGNORED_KEYS.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
        ignored
            .chain([
                (runtimes::KEY.to_owned(), runtime_images),
                (key::DEPLOYMENT.to_owned(), "{}".to_owned()),
                (key::PROVISION_IMAGE.to_owned(), registry.image(PROVISION_IMAGE)),
                (key::PROVISION_IMAGE_SECRET.to_owned(), String::new()),
                (key::BUILDER_IMAGE_SECRET.to_owned(), String::new()),
                (key::FUNCTIONS_NAMESPACE.to_owned(), String::new()),
                (key::DEPENDENCY_CACHE_PATH.to_owned(), DEFAULT_DEPENDENCY_CACHE_PATH.to_owned()),
            ])
            .collect()
    }

    /// `functions-namespace`: the only namespace to serve, or `None` for all of them.
    pub fn functions_namespace(&self) -> Option<&str> {
        self.functions_namespace.as_deref()
    }

    /// `kafka-brokers`: the Kafka brokers of KafkaTriggers, or `None` when not configured.
    pub fn kafka_brokers(&self) -> Option<&str> {
        self.kafka_brokers.as_deref()
    }

    /// `nats-url`: the NATS server of NATSTriggers, or `None` when not configured.
    pub fn nats_url(&self) -> Option<&str> {
        self.nats_url.as_deref()
    }

    /// Whether `ingress-annotations` lets HTTPTriggers set the annotation `key` on their Ingress.
    pub fn allows_ingress_annotation(&self, key: &str) -> bool {
        self.ingress_annotations.iter().any(|entry| match entry.strip_suffix('*') {
            Some(prefix) => key.starts_with(prefix),
            None => key == entry,
        })
    }

    /// Every runtime the configuration offers, as `<ID><version>` (e.g. `python3.8`).
    pub fn runtimes(&self) -> Vec<String> {
        runtimes::names(&self.runtimes)
    }
}

impl Default for Config {
    /// The configuration of [`Config::default_data`].
    fn default() -> Self {
        Config::from_data(&Config::default_data()).expect("the default kubeless-config parses")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn absent_keys_take_the_defaults() {
        let config = Config::from_data(&BTreeMap::new()).unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.provision_image, format!("kelp/provision:{}", env!("CARGO_PKG_VERSION")));
        assert_eq!(config.dependency_cache_path.as_deref(), Some(DEFAULT_DEPENDENCY_CACHE_PATH));
        assert_eq!(config.functions_namespace(), None);
        assert_eq!((config.kafka_brokers(), config.nats_url()), (None, None));
        assert!(config.runtimes().contains(&"nodejs20".to_owned()));
    }

    #[test]
    fn the_default_data_has_every_kubeless_key() {
        let data = Config::default_data();
        for key in [
            "runtime-images",
            "deployment",
            "provision-image",
            "provision-image-secret",
            "builder-image-secret",
            "enable-build-step",
            "function-registry-tls-verify",
            "builder-image",
            "functions-namespace",
            "ingress-enabled",
            "service-type",
        ] {
            assert!(data.contains_key(key), "{key}");
        }
        assert_eq!((data["enable-build-step"].as_str(), data["service-type"].as_str()), ("false", "ClusterIP"));
    }

    #[test]
    fn keys_are_read() {
        let config = Config::from_data(&data(&[
            ("provision-image", "registry.example/unzip:1"),
            ("provision-image-secret", "pull-a"),
            ("builder-image-secret", "pull-b"),
            ("functions-namespace", "fns"),
            ("dependency-cache-path", ""),
            ("enable-build-step", "true"),
        ]))
        .unwrap();
        assert_eq!(config.provision_image, "registry.example/unzip:1");
        let secrets: Vec<&str> = config.image_pull_secrets.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(secrets, ["pull-a", "pull-b"]);
        assert_eq!(config.functions_namespace(), Some("fns"));
        assert_eq!(config.dependency_cache_path, None);
    }

    #[test]
    fn the_broker_addresses_are_read_and_empty_ones_are_absent() {
        let config = Config::from_data(&data(&[
            ("kafka-brokers", " kafka-0.kafka:9092,kafka-1.kafka:9092 "),
            ("nats-url", "nats://nats.messaging:4222"),
        ]))
        .unwrap();
        assert_eq!(config.kafka_brokers(), Some("kafka-0.kafka:9092,kafka-1.kafka:9092"));
        assert_eq!(config.nats_url(), Some("nats://nats.messaging:4222"));
        let empty = Config::from_data(&data(&[("kafka-brokers", ""), ("nats-url", "  ")])).unwrap();
        assert_eq!((empty.kafka_brokers(), empty.nats_url()), (None, None));
        assert_eq!(empty, Config::default(), "an empty key is an absent key");
    }

    #[test]
    fn the_default_data_leaves_the_brokers_to_kelp_triggers() {
        let data = Config::default_data();
        assert!(!data.contains_key(KAFKA_BROKERS_KEY) && !data.contains_key(NATS_URL_KEY));
    }

    #[test]
    fn ingress_annotations_extend_the_allow_list_by_key_or_prefix() {
        let config = Config::from_data(&data(&[(
            "ingress-annotations",
            "example.com/team, alb.ingress.kubernetes.io/*\nhaproxy.org/timeout-server",
        )]))
        .unwrap();
        assert!(config.allows_ingress_annotation("example.com/team"));
        assert!(config.allows_ingress_annotation("alb.ingress.kubernetes.io/scheme"));
        assert!(config.allows_ingress_annotation("haproxy.org/timeout-server"));
        assert!(!config.allows_ingress_annotation("example.com/team2"));
        assert!(!Config::default().allows_ingress_annotation("example.com/team"));
        let err = Config::from_data(&data(&[("ingress-annotations", "a/b, *")])).unwrap_err();
        assert!(err.to_string().contains("\"ingress-annotations\""), "{err}");
    }

    #[test]
    fn a_relative_cache_path_is_refused() {
        let err = Config::from_data(&data(&[("dependency-cache-path", "cache")])).unwrap_err();
        assert!(err.to_string().starts_with("kubeless-config key \"dependency-cache-path\""), "{err}");
    }
}
