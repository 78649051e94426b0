//! The controller when things fail: killed in the middle of its work, the API server restarted,
//! two replicas behind one Lease. Real control plane (`kelp-testenv`), real processes.

mod common;

use common::{ControllerProcess, eventually, kubectl};
use k8s_openapi::api::coordination::v1::Lease;
use kelp_api::{Conditions, Function};
use kelp_testenv::ControlPlane;
use kube::api::Api;
use serde_json::json;
use std::time::Duration;

const CONVERGE: Duration = Duration::from_secs(120);

fn function(name: &str) -> String {
    json!({
        "apiVersion": "kubeless.io/v1beta1",
        "kind": "Function",
        "metadata": {"name": name},
        "spec": {"runtime": "python3.11", "handler": "f.handler", "function": format!("def handler(e, c):\n    return '{name}'\n")},
    })
    .to_string()
}

fn create(plane: &ControlPlane, ns: &str, names: impl Iterator<Item = String>) {
    let docs: Vec<String> = names.map(|n| function(&n)).collect();
    let list = format!("{{\"apiVersion\":\"v1\",\"kind\":\"List\",\"items\":[{}]}}", docs.join(","));
    let (ok, _, err) = kubectl(plane, &["apply", "-n", ns, "-f", "-"], Some(&list));
    assert!(ok, "kubectl apply: {err}");
}

/// Waits until every Function in `ns` is Ready for its generation; returns how many.
async fn all_ready(api: &Api<Function>, expected: usize, controller: &ControllerProcess) -> usize {
    let check = || async {
        let list = api.list(&Default::default()).await.ok()?;
        let ready = list
            .items
            .iter()
            .filter(|f| {
                f.status.as_ref().is_some_and(|s| s.is_ready() && s.observed_generation == f.metadata.generation)
            })
            .count();
        (list.items.len() == expected && ready == expected).then_some(ready)
    };
    match tokio::time::timeout(CONVERGE, async {
        loop {
            if let Some(n) = check().await {
                return n;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
    .await
    {
        Ok(n) => n,
        Err(_) => panic!("not every function became Ready; controller log:\n{}", controller.log_tail()),
    }
}

#[tokio::test]
async fn a_controller_killed_mid_reconcile_converges_after_restart() {
    let plane = ControlPlane::shared();
    let ns = plane.namespace("killed").await;
    let args = ["--leader-elect=false", "--functions-namespace", ns.as_str()];
    let first = ControllerProcess::start(plane, "killed-1", &args);
    create(plane, &ns, (0..40).map(|i| format!("f{i}")));
    // Let it get part of the way, then SIGKILL it.
    tokio::time::sleep(Duration::from_millis(700)).await;
    drop(first);
    let second = ControllerProcess::start(plane, "killed-2", &args);
    let api: Api<Function> = Api::namespaced(plane.client().await, &ns);
    assert_eq!(all_ready(&api, 40, &second).await, 40);
}

#[tokio::test]
async fn the_controller_recovers_when_the_api_server_restarts() {
    let plane = ControlPlane::start();
    let ns = plane.namespace("restart").await;
    let controller =
        ControllerProcess::start(&plane, "restart", &["--leader-elect=false", "--functions-namespace", &ns]);
    create(&plane, &ns, ["before".to_string()].into_iter());
    let api: Api<Function> = Api::namespaced(plane.client().await, &ns);
    all_ready(&api, 1, &controller).await;
    plane.restart_apiserver();
    create(&plane, &ns, ["after".to_string()].into_iter());
    let api: Api<Function> = Api::namespaced(plane.client().await, &ns);
    assert_eq!(all_ready(&api, 2, &controller).await, 2);
}

#[tokio::test]
async fn of_two_replicas_one_leads_and_the_other_takes_over() {
    let plane = ControlPlane::shared();
    let ns = plane.namespace("leader").await;
    let lease_name = format!("kelp-controller-{ns}");
    let args =
        ["--functions-namespace", ns.as_str(), "--config-namespace", ns.as_str(), "--lease-name", lease_name.as_str()];
    let a = ControllerProcess::start(plane, "replica-a", &args);
    let b = ControllerProcess::start(plane, "replica-b", &args);
    let leases: Api<Lease> = Api::namespaced(plane.client().await, &ns);
    let holder = eventually("a leader", CONVERGE, || async {
        leases.get_opt(&lease_name).await.ok().flatten()?.spec?.holder_identity
    })
    .await;
    let (leader, follower) = if holder == "replica-a" { (a, b) } else { (b, a) };
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(leader.metric("kelp_controller_leader"), Some(1.0));
    assert_eq!(follower.metric("kelp_controller_leader"), Some(0.0), "only one replica leads");

    create(plane, &ns, ["led".to_string()].into_iter());
    let api: Api<Function> = Api::namespaced(plane.client().await, &ns);
    all_ready(&api, 1, &leader).await;

    // The leader is killed (SIGKILL, no release): the follower takes over once the Lease expires.
    drop(leader);
    eventually("the follower to take the Lease", CONVERGE, || async {
        let now = leases.get_opt(&lease_name).await.ok().flatten()?.spec?.holder_identity?;
        (now != holder).then_some(())
    })
    .await;
    eventually("the follower's leader metric", CONVERGE, || async {
        (follower.metric("kelp_controller_leader") == Some(1.0)).then_some(())
    })
    .await;
    create(plane, &ns, ["after-failover".to_string()].into_iter());
    assert_eq!(all_ready(&api, 2, &follower).await, 2);
}
