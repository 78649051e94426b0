//! A recording function and helpers shared by the Kafka and NATS tests.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use kelp_events::{Answer, Invoke, Policy, Source, Subscription};

/// How long a test waits for something that should happen.
pub(crate) const PATIENCE: Duration = Duration::from_secs(90);

/// One call a function received.
#[derive(Clone, Debug)]
pub(crate) struct Call {
    pub(crate) function: String,
    pub(crate) headers: http::HeaderMap,
    pub(crate) body: Bytes,
}

impl Call {
    pub(crate) fn header(&self, name: &str) -> String {
        self.headers.get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

type Answerer = dyn Fn(&Call, &[Call]) -> u16 + Send + Sync;

/// Functions that record every call and answer as `answer` says (given the call and the calls
/// before it).
pub(crate) struct Functions {
    calls: Mutex<Vec<Call>>,
    answer: Box<Answerer>,
}

impl Functions {
    pub(crate) fn answering(answer: impl Fn(&Call, &[Call]) -> u16 + Send + Sync + 'static) -> Arc<Functions> {
        Arc::new(Functions { calls: Mutex::default(), answer: Box::new(answer) })
    }

    /// Functions that always answer 200.
    pub(crate) fn ok() -> Arc<Functions> {
        Functions::answering(|_, _| 200)
    }

    pub(crate) fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// Waits until `done(calls)`; panics with the calls after [`PATIENCE`].
    pub(crate) async fn wait_for(&self, what: &str, done: impl Fn(&[Call]) -> bool) -> Vec<Call> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let calls = self.calls();
            if done(&calls) {
                return calls;
            }
            assert!(Instant::now() < deadline, "{what}: not within {PATIENCE:?}; calls: {calls:#?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Invoke for Functions {
    fn invoke(
        &self,
        _namespace: &str,
        function: &str,
        request: http::Request<Bytes>,
    ) -> impl Future<Output = Result<Answer, String>> + Send {
        let (parts, body) = request.into_parts();
        assert_eq!((parts.method, parts.uri.path()), (http::Method::POST, "/"));
        let call = Call { function: function.to_owned(), headers: parts.headers, body };
        let mut calls = self.calls.lock().unwrap();
        let status = (self.answer)(&call, &calls);
        calls.push(call);
        let status = http::StatusCode::from_u16(status).unwrap();
        std::future::ready(Ok(Answer { status, body: Bytes::from_static(b"boom") }))
    }
}

/// A name no other test uses: `<prefix>-<pid>-<n>`.
pub(crate) fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    format!("{prefix}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A random text, for payloads no other message carries.
pub(crate) fn random_text() -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).unwrap();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A subscription of function `function` to `topic` for a new trigger, with `annotations` and
/// retries that wait at most 50 ms.
pub(crate) fn subscription(source: Source, topic: &str, function: &str, annotations: &[(&str, &str)]) -> Subscription {
    let trigger = unique("trigger");
    let annotations: BTreeMap<String, String> =
        annotations.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let policy =
        Policy::from_annotations(source, "default", &trigger, &annotations, Duration::from_millis(50)).unwrap();
    Subscription {
        source,
        namespace: "default".into(),
        trigger,
        function: function.into(),
        topic: topic.into(),
        kinesis: None,
        policy,
        since: Some(SystemTime::now()),
    }
}

/// Waits until `consumer` says it is subscribed.
pub(crate) async fn subscribed(consumer: &kelp_events::Consumer) {
    let deadline = Instant::now() + PATIENCE;
    while !consumer.status().subscribed {
        assert!(Instant::now() < deadline, "not subscribed: {:?}", consumer.status());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The value of `series` (with its labels, e.g. `kelp_trigger_message_retries_total{...}`)
/// for `subscription` in `metrics`.
pub(crate) fn metric(metrics: &kelp_events::Metrics, name: &str, subscription: &Subscription) -> f64 {
    let text = metrics.render();
    let trigger = format!("trigger=\"{}\"", subscription.trigger);
    text.lines()
        .find(|l| l.starts_with(&format!("{name}{{")) && l.contains(&trigger))
        .and_then(|l| l.rsplit(' ').next())
        .map(|v| v.parse().unwrap())
        .unwrap_or_else(|| panic!("no {name} for {trigger} in\n{text}"))
}
