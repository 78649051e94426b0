//! The dashboard on a cluster (issue 17), in headless Chromium: `kelp dashboard` with the
//! kubeconfig's own credentials in front of the real node's control plane.

use crate::dashboard::{Dashboard, run_browser_script};
use crate::node::{call, deploy, namespace, stand_in_controller};
use crate::plane;

/// A function called three times through the service proxy: the function list shows its calls,
/// errors and latency percentiles, read from its pod's `/metrics` through the pod proxy, and its
/// page charts its one instance (`dashboard/cluster.cjs`). Its pod must run code: on kwok's node
/// the test says so and stops.
#[test]
fn the_dashboard_reads_a_functions_figures_from_its_pods_on_a_cluster() {
    let plane = plane();
    if !plane.has_real_node() {
        eprintln!(
            "kwok's pods run no code, so they have no figures: the dashboard's cluster figures need the real node"
        );
        return;
    }
    let _controller = stand_in_controller(plane, "dashboard");
    let namespace = namespace(plane, "dashboard");
    let hello = kelp_testkit::repo_root().join("examples/python/hello.py");
    deploy(plane, &namespace, "hello-py", &hello, "hello.hello", "python3.11", &[]);
    for _ in 0..3 {
        assert_eq!(call(plane, &namespace, "hello-py", &[]).trim(), "hello world");
    }
    let dashboard = Dashboard::start_with(plane.kubeconfig(), &["-n", &namespace]);
    run_browser_script(
        "cluster.cjs",
        &[
            ("KELP_DASHBOARD_URL", dashboard.login.as_str()),
            ("KELP_NAMESPACE", namespace.as_str()),
            ("KELP_FUNCTION", "hello-py"),
            ("KELP_CALLS", "3"),
        ],
    );
}
