//! Events on a real node (`kelp-testenv`'s `shared_node`), after `kelp install` there: a
//! KafkaTrigger consumed by `kelp-triggers` in its pod, from a Kafka broker the test runs on the
//! machine and forwards to the node's address, calling a Python function in its pod.
//!
//! With `KELP_REAL_NODE=0` the same scenarios run on kwok's node, whose pods run no code: the
//! objects are checked, the deliveries are not (no broker is started there).

#[path = "common/node.rs"]
mod node;

use std::sync::OnceLock;
use std::time::Duration;

use kelp_brokers::Kafka;
use kelp_testenv::ControlPlane;

use crate::node::{POD_TIMEOUT, deploy, eventually, install, json, kelp, ok, stand_in_controller};

/// The control plane, installed once per test binary; with a real node, `kelp-triggers` is told
/// the Kafka broker's address as the pods reach it.
fn plane() -> &'static ControlPlane {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    let plane = ControlPlane::shared_node();
    INSTALLED.get_or_init(|| match kafka(plane) {
        Some(kafka) => {
            let (_, brokers) = kafka.forwarded().expect("the broker's forwarded listener");
            install(plane, &["--kafka-brokers", brokers]);
        }
        None => install(plane, &[]),
    });
    plane
}

/// With a real node, a Kafka broker on the machine whose second listener is forwarded to the
/// node's address (and advertised there, so that `kelp-triggers` in its pod is sent back to the
/// forward); `None` on kwok.
fn kafka(plane: &ControlPlane) -> Option<&'static Kafka> {
    static KAFKA: OnceLock<Option<Kafka>> = OnceLock::new();
    KAFKA
        .get_or_init(|| {
            plane.has_real_node().then(|| {
                Kafka::start_forwarded(|port| plane.forward_to_pods(port).expect("a real node forwards ports"))
            })
        })
        .as_ref()
}

#[test]
fn a_kafka_trigger_in_kelp_triggers_calls_its_function_with_each_message() {
    let plane = plane();
    let _controller = stand_in_controller(plane, "kafka");
    let namespace = tokio::runtime::Runtime::new().unwrap().block_on(plane.namespace("kafka"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("consume.py");
    // A message that is not JSON is bytes in Kubeless's Python runtime.
    let code =
        "def consume(event, context):\n    print('consumed', event['data'].decode(), flush=True)\n    return 'ok'\n";
    std::fs::write(&file, code).unwrap();
    deploy(plane, &namespace, "consumer", &file, "consume.consume", "python3.11", &[]);
    let topic = format!("{namespace}-orders");
    let selector = "function=consumer";
    let brokers = kafka(plane).map(Kafka::bootstrap);
    if let Some(brokers) = &brokers {
        ok(plane, &["topic", "create", &topic, "--kafka-brokers", brokers]);
    }
    ok(
        plane,
        &[
            "trigger",
            "kafka",
            "create",
            "orders",
            "-n",
            &namespace,
            "--trigger-topic",
            &topic,
            "--function-selector",
            selector,
        ],
    );
    let trigger = json(plane, &["-n", &namespace, "get", "kafkatriggers.kubeless.io", "orders"]);
    assert_eq!(trigger["spec"]["topic"], topic.as_str(), "{trigger}");
    assert_eq!(trigger["spec"]["functionSelector"]["matchLabels"]["function"], "consumer", "{trigger}");
    let Some(brokers) = brokers else {
        return;
    };
    // kelp-triggers subscribes a moment after the trigger exists, from the newest offset:
    // messages are published until one reaches the function.
    let logs = |plane: &ControlPlane| {
        let out = kelp(plane, &["function", "logs", "consumer", "-n", &namespace]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let publish = |n: u32| {
        let message = format!("order-{n}");
        ok(plane, &["topic", "publish", "--topic", &topic, "--data", &message, "--kafka-brokers", &brokers]);
    };
    let mut sent = 0;
    eventually(plane, "a message in the function's log", POD_TIMEOUT, || {
        sent += 1;
        publish(sent);
        std::thread::sleep(Duration::from_secs(2));
        logs(plane).contains("consumed order-").then_some(())
    });
    // Once subscribed, each message reaches the function once.
    let next = [sent + 1, sent + 2];
    next.into_iter().for_each(publish);
    let last = format!("consumed order-{}\n", next[1]);
    let text = eventually(plane, "the last message in the function's log", Duration::from_secs(60), || {
        let text = logs(plane);
        text.contains(&last).then_some(text)
    });
    for n in next {
        assert_eq!(text.matches(&format!("consumed order-{n}\n")).count(), 1, "order-{n}:\n{text}");
    }
}
