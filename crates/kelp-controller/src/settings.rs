//! The controller's command line and environment (Kubeless's environment names where it had
//! them).

use std::net::SocketAddr;
use std::time::Duration;

/// How the controller is run.
#[derive(Clone, Debug, clap::Parser)]
#[command(name = "kelp-controller", version, about = "Reconciles kubeless.io objects into Kubernetes objects")]
pub struct Settings {
    /// What every Kelp process in a cluster is told.
    #[command(flatten)]
    pub cluster: ClusterSettings,
    /// The name of the leader Lease.
    #[arg(long, default_value = "kelp-controller")]
    pub lease_name: String,
    /// Objects reconciled at the same time, per kind.
    #[arg(long, env = "KELP_CONCURRENCY", default_value_t = 16)]
    pub concurrency: u16,
}

/// What the controller and `kelp-triggers` share: where to serve, where the configuration is,
/// which namespaces to watch, and how to elect a leader.
#[derive(Clone, Debug, clap::Args)]
pub struct ClusterSettings {
    /// Where `/healthz` and `/metrics` are served. Loopback by default; the Deployments that
    /// `kelp install` creates listen on the pod's address.
    #[arg(long, env = "KELP_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The namespace of the `kubeless-config` ConfigMap (and of the leader Lease).
    #[arg(long, env = "KUBELESS_NAMESPACE", default_value = "kubeless")]
    pub config_namespace: String,
    /// The name of the configuration ConfigMap.
    #[arg(long, env = "KUBELESS_CONFIG", default_value = "kubeless-config")]
    pub config_name: String,
    /// Watch only this namespace; overrides the configuration's `functions-namespace`. Empty:
    /// all namespaces.
    #[arg(long, env = "KELP_FUNCTIONS_NAMESPACE")]
    pub functions_namespace: Option<String>,
    /// Elect one leader replica through a Lease.
    #[arg(long, env = "KELP_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    /// This replica's identity in the Lease (the pod name in a cluster).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Seconds a leader's Lease lasts without renewal before another replica takes over.
    #[arg(long, default_value_t = 15)]
    pub lease_seconds: u64,
}

impl ClusterSettings {
    /// The identity written into the Lease: `--identity`, else the host name plus the PID.
    pub fn identity(&self) -> String {
        self.identity.clone().filter(|i| !i.is_empty()).unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
            format!("{}-{}", host.trim(), std::process::id())
        })
    }

    /// How long a Lease lasts.
    pub fn lease_duration(&self) -> Duration {
        Duration::from_secs(self.lease_seconds.max(2))
    }

    /// The Lease `name` this replica competes for, unless leader election is off.
    pub fn lease(&self, client: &kube::Client, name: &str) -> Option<crate::leader::LeaseLock> {
        self.leader_elect.then(|| {
            let api = kube::Api::namespaced(client.clone(), &self.config_namespace);
            crate::leader::LeaseLock::new(api, name, &self.identity(), self.lease_duration())
        })
    }

    /// The namespace to watch (empty: all): `--functions-namespace`, else the configuration's.
    pub fn scope(&self, config: &kelp_plan::Config) -> String {
        self.functions_namespace.clone().or_else(|| config.functions_namespace().map(String::from)).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// The environment the installed Deployment gives the controller (`deploy/kelp.yaml`).
    fn installed_env() -> Vec<(String, String)> {
        let objects = kelp_plan::install::install_objects(&kelp_plan::install::InstallOptions::default());
        let deployment = objects.iter().find(|o| o["kind"] == "Deployment").expect("the controller Deployment");
        let env = deployment["spec"]["template"]["spec"]["containers"][0]["env"].as_array().unwrap();
        env.iter().filter_map(|e| Some((e["name"].as_str()?.to_owned(), e["value"].as_str()?.to_owned()))).collect()
    }

    #[test]
    fn the_installed_deployment_configures_what_the_binary_reads() {
        let env = installed_env();
        let value = |name: &str| env.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        let listen = value("KELP_LISTEN").expect("the Deployment sets KELP_LISTEN");
        let settings = Settings::try_parse_from(["kelp-controller", "--listen", &listen]).unwrap();
        assert!(settings.cluster.listen.ip().is_unspecified(), "probes reach the pod's address");
        assert_eq!(settings.cluster.listen.port(), 8080);
        let config = value("KUBELESS_CONFIG").unwrap();
        let settings = Settings::try_parse_from(["kelp-controller", "--config-name", &config]).unwrap();
        assert_eq!(settings.cluster.config_name, "kubeless-config");
    }

    #[test]
    fn loopback_unless_told() {
        let settings = Settings::try_parse_from(["kelp-controller"]).unwrap();
        assert!(settings.cluster.listen.ip().is_loopback());
        assert!(settings.cluster.leader_elect);
    }
}
