//! The delivery loop both brokers share: call the function until it answers 2xx, retrying with
//! the policy's backoff, and hand a message every retry failed to the dead-letter step, which is
//! itself retried until it succeeds. Everything stops promptly when the consumer stops (the
//! message is then neither committed nor acknowledged, so the broker delivers it again).

use std::future::Future;

use crate::consumer::{Shared, Stop};
use crate::event::Event;
use crate::invoke::Invoke;

/// What became of a message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A call answered 2xx.
    Delivered,
    /// Every call failed; the reason of the last one (with the number of attempts).
    Failed(String),
    /// The consumer is stopping.
    Stopped,
}

/// Calls the consumer's function with `event` until it answers 2xx or the retries are spent.
pub(crate) async fn deliver<I: Invoke>(invoker: &I, shared: &Shared, event: &Event, stop: &mut Stop) -> Outcome {
    let subscription = &shared.subscription;
    let mut retry = 0;
    loop {
        let call = invoker.invoke(&subscription.namespace, &subscription.function, event.request());
        let Some(answer) = stop.unless_stopped(call).await else { return Outcome::Stopped };
        let reason = match answer {
            Ok(answer) if answer.status.is_success() => {
                shared.counters.delivered.inc();
                return Outcome::Delivered;
            }
            Ok(answer) => {
                format!("function {} answered {}{}", subscription.function, answer.status, quote(&answer.body))
            }
            Err(e) => format!("calling function {} failed: {e}", subscription.function),
        };
        shared.state.failed(&reason);
        if retry >= subscription.policy.retries {
            return Outcome::Failed(format!("{reason} (after {} attempts)", retry + 1));
        }
        shared.counters.retried.inc();
        if stop.unless_stopped(tokio::time::sleep(subscription.policy.backoff(retry))).await.is_none() {
            return Outcome::Stopped;
        }
        retry += 1;
    }
}

/// Runs `attempt` until it succeeds, waiting the policy's backoff between tries and recording
/// each failure as the consumer's last error. `false`: the consumer stopped first.
pub(crate) async fn until_done<F, Fut>(shared: &Shared, what: &str, stop: &mut Stop, mut attempt: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let mut retry = 0;
    loop {
        match stop.unless_stopped(attempt()).await {
            None => return false,
            Some(Ok(())) => return true,
            Some(Err(e)) => shared.state.failed(&format!("{what}: {e}")),
        }
        if stop.unless_stopped(tokio::time::sleep(shared.subscription.policy.backoff(retry))).await.is_none() {
            return false;
        }
        retry = retry.saturating_add(1);
    }
}

/// `: <the start of the body>` when there is one.
fn quote(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return String::new();
    }
    let cut: String = text.chars().take(200).collect();
    format!(": {cut}{}", if cut.len() < text.len() { "..." } else { "" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_quoted_briefly() {
        assert_eq!(quote(b""), "");
        assert_eq!(quote(b" boom\n"), ": boom");
        assert_eq!(quote("x".repeat(300).as_bytes()), format!(": {}...", "x".repeat(200)));
    }
}
