//! The NATS consumer of one [`Subscription`]: its own connection (reconnecting by itself),
//! a queue subscription named after Kubeless's group, so replicas share the messages, and the
//! messages delivered one after the other (or up to the policy's `concurrency` at once, then in
//! no particular order). Core NATS has no acknowledgements: a message is
//! retried while this process runs and dead-lettered after the retries, but one in flight when
//! the process dies is lost, as NATS core promises no more.
//!
//! With the policy's `durable` (annotation `kelp.dev/durable: "true"`) it consumes through
//! JetStream instead: a durable pull consumer (the group's name, sanitised) on the stream that
//! captures the subject (the stream is the user's, as the broker is), each message acknowledged
//! explicitly once delivered or dead-lettered, and kept in progress while it is retried; an
//! unacknowledged message is delivered again, also after a crash. Its dead letter is published
//! through JetStream and must be captured by a stream too.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::pull};
use futures_util::StreamExt as _;

use crate::consumer::{Consumer, Shared, Stop};
use crate::deliver::{Outcome, deliver, until_done};
use crate::event::{Event, Source};
use crate::invoke::Invoke;
use crate::{Metrics, Subscription};

/// How long JetStream waits for an acknowledgement before delivering a message again.
const ACK_WAIT: Duration = Duration::from_secs(30);
/// The header of a dead letter that says why.
pub const DEAD_LETTER_REASON: &str = "Kelp-Dead-Letter-Reason";

/// Starts consuming `subscription` from the NATS server at `url`, calling `invoker`.
pub fn start<I: Invoke>(url: &str, subscription: Subscription, invoker: Arc<I>, metrics: Arc<Metrics>) -> Consumer {
    let shared = Shared::new(subscription, &metrics);
    let url = url.to_owned();
    Consumer::spawn(shared, metrics, move |shared, stop| run(url, shared, invoker, stop))
}

async fn run<I: Invoke>(url: String, shared: Arc<Shared>, invoker: Arc<I>, mut stop: Stop) {
    let events = shared.clone();
    let options = async_nats::ConnectOptions::new()
        .name(Source::Nats.user_agent())
        .retry_on_initial_connect()
        .event_callback(move |event| {
            let shared = events.clone();
            async move {
                match event {
                    async_nats::Event::Connected => shared.state.set_subscribed(true),
                    async_nats::Event::Disconnected => {
                        shared.state.set_subscribed(false);
                        shared.state.failed("nats: disconnected");
                    }
                    other => shared.state.failed(&format!("nats: {other}")),
                }
            }
        });
    let client = match stop.unless_stopped(options.connect(&url)).await {
        None => return,
        Some(Ok(client)) => client,
        Some(Err(e)) => return shared.state.failed(&format!("connecting to {url}: {e}")),
    };
    if shared.subscription.policy.durable {
        durable(client, &shared, invoker.as_ref(), stop).await;
    } else {
        core(client, shared, invoker, stop).await;
    }
}

/// Core NATS: a queue subscription, up to the policy's `concurrency` messages delivered at once
/// (one by one, in order, by default).
async fn core<I: Invoke>(client: async_nats::Client, shared: Arc<Shared>, invoker: Arc<I>, mut stop: Stop) {
    let subscription = &shared.subscription;
    let subscribe = || async {
        client.queue_subscribe(subscription.topic.clone(), subscription.group()).await.map_err(|e| e.to_string())
    };
    let mut subscriber = loop {
        match stop.unless_stopped(subscribe()).await {
            None => return,
            Some(Ok(subscriber)) => break subscriber,
            Some(Err(e)) => shared.state.failed(&format!("subscribing to {}: {e}", subscription.topic)),
        }
        if stop.unless_stopped(tokio::time::sleep(Duration::from_secs(1))).await.is_none() {
            return;
        }
    };
    // The connection may still be on its way (a server that is down): the event callback
    // says when it is up.
    shared.state.set_subscribed(client.connection_state() == async_nats::connection::State::Connected);
    let permits = Arc::new(tokio::sync::Semaphore::new(subscription.policy.concurrency));
    let mut deliveries = tokio::task::JoinSet::new();
    while let Some(Some(message)) = stop.unless_stopped(subscriber.next()).await {
        shared.counters.consumed.inc();
        let Some(Ok(permit)) = stop.unless_stopped(permits.clone().acquire_owned()).await else { break };
        let (client, shared, invoker, stop) = (client.clone(), shared.clone(), invoker.clone(), stop.clone());
        deliveries.spawn(async move {
            deliver_core(&client, &shared, invoker.as_ref(), message, stop).await;
            drop(permit);
        });
        while deliveries.try_join_next().is_some() {}
    }
    while deliveries.join_next().await.is_some() {}
    let _ = subscriber.unsubscribe().await;
}

/// Delivers one core NATS message, or publishes it to the dead-letter subject.
async fn deliver_core<I: Invoke>(
    client: &async_nats::Client,
    shared: &Shared,
    invoker: &I,
    message: async_nats::Message,
    mut stop: Stop,
) {
    let event = Event::new(Source::Nats, message.subject.as_str(), message.payload.clone());
    let Outcome::Failed(reason) = deliver(invoker, shared, &event, &mut stop).await else { return };
    let headers = dead_letter_headers(shared, message.headers.as_ref(), &event, &reason);
    let publish = || async {
        let dead_letter = shared.subscription.policy.dead_letter.clone();
        client
            .publish_with_headers(dead_letter, headers.clone(), message.payload.clone())
            .await
            .map_err(|e| e.to_string())?;
        client.flush().await.map_err(|e| e.to_string())
    };
    if until_done(shared, &dead_letter_what(shared), &mut stop, publish).await {
        shared.counters.dead_lettered.inc();
    }
}

/// JetStream: a durable pull consumer with explicit acknowledgements.
async fn durable<I: Invoke>(client: async_nats::Client, shared: &Shared, invoker: &I, mut stop: Stop) {
    let subscription = &shared.subscription;
    let context = jetstream::new(client);
    let bind = || async {
        let stream = context.stream_by_subject(subscription.topic.clone()).await.map_err(|e| {
            format!(
                "no JetStream stream captures subject {} ({e}); create one for a durable trigger",
                subscription.topic
            )
        })?;
        let stream = context.get_stream(&stream).await.map_err(|e| e.to_string())?;
        let name = durable_name(&subscription.group());
        let deliver_policy = match subscription.since {
            Some(since) => jetstream::consumer::DeliverPolicy::ByStartTime { start_time: since.into() },
            None => jetstream::consumer::DeliverPolicy::All,
        };
        let config = pull::Config {
            durable_name: Some(name.clone()),
            filter_subject: subscription.topic.clone(),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ack_wait: ACK_WAIT,
            deliver_policy,
            ..Default::default()
        };
        let consumer = stream.get_or_create_consumer(&name, config).await.map_err(|e| e.to_string())?;
        consumer.messages().await.map_err(|e| e.to_string())
    };
    let mut messages = loop {
        match stop.unless_stopped(bind()).await {
            None => return,
            Some(Ok(messages)) => break messages,
            Some(Err(e)) => shared.state.failed(&e),
        }
        if stop.unless_stopped(tokio::time::sleep(Duration::from_secs(1))).await.is_none() {
            return;
        }
    };
    shared.state.set_subscribed(true);
    while let Some(Some(next)) = stop.unless_stopped(messages.next()).await {
        let message = match next {
            Ok(message) => message,
            Err(e) => {
                shared.state.failed(&format!("jetstream: {e}"));
                continue;
            }
        };
        shared.counters.consumed.inc();
        let event = Event::new(Source::Nats, message.subject.as_str(), message.payload.clone());
        let outcome = {
            // While it is being delivered (and retried) the message stays ours.
            let delivering = deliver(invoker, shared, &event, &mut stop);
            tokio::pin!(delivering);
            loop {
                tokio::select! {
                    outcome = &mut delivering => break outcome,
                    () = tokio::time::sleep(ACK_WAIT / 3) => {
                        let _ = message.ack_with(AckKind::Progress).await;
                    }
                }
            }
        };
        match outcome {
            Outcome::Delivered => {}
            Outcome::Stopped => break,
            Outcome::Failed(reason) => {
                let headers = dead_letter_headers(shared, message.headers.as_ref(), &event, &reason);
                let publish = || async {
                    let dead_letter = subscription.policy.dead_letter.clone();
                    let ack = context
                        .publish_with_headers(dead_letter, headers.clone(), message.payload.clone())
                        .await
                        .map_err(|e| e.to_string())?;
                    ack.await.map(drop).map_err(|e| e.to_string())
                };
                if !until_done(shared, &dead_letter_what(shared), &mut stop, publish).await {
                    break;
                }
                shared.counters.dead_lettered.inc();
            }
        }
        let acked = || async { message.double_ack().await.map_err(|e| e.to_string()) };
        if !until_done(shared, "acknowledging a message", &mut stop, acked).await {
            break;
        }
    }
}

/// The original headers, plus why and where from.
fn dead_letter_headers(
    shared: &Shared,
    original: Option<&async_nats::HeaderMap>,
    event: &Event,
    reason: &str,
) -> async_nats::HeaderMap {
    let mut headers = original.cloned().unwrap_or_default();
    let subscription = &shared.subscription;
    headers.insert(DEAD_LETTER_REASON, reason);
    headers.insert("Kelp-Source-Subject", event.topic.as_str());
    headers.insert("Kelp-Trigger", format!("{}/{}", subscription.namespace, subscription.trigger).as_str());
    headers.insert("Kelp-Function", subscription.function.as_str());
    headers.insert("Kelp-Event-Id", event.id.as_str());
    headers
}

fn dead_letter_what(shared: &Shared) -> String {
    format!("publishing a dead letter to {}", shared.subscription.policy.dead_letter)
}

/// A JetStream consumer name from a group name: no `.`, `*`, `>`, whitespace or path separators.
fn durable_name(group: &str) -> String {
    group.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durable_names_hold_no_subject_characters() {
        assert_eq!(durable_name("default_t_f_orders.*.eu"), "default_t_f_orders___eu");
        assert_eq!(durable_name("ns_t_f_a.>"), "ns_t_f_a__");
    }
}
