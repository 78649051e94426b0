//! The HTTP request a message becomes, with Kubeless's event headers: `event-id` (11 random
//! bytes, base64url), `event-time` (Go's `time.Time.String()` of the UTC time, e.g.
//! `2009-11-10 23:00:00.123 +0000 UTC`), `event-type` and `Content-Type` (`application/json`
//! when the message is a JSON object, `application/x-www-form-urlencoded` otherwise),
//! `event-namespace` (`kafkatriggers.kubeless.io`, `natstriggers.kubeless.io` or
//! `kinesistriggers.kubeless.io`), `event-topic` (the topic, subject or stream)
//! and the trigger controller's `User-Agent`. The message is the body of a `POST /`.

use base64::Engine as _;
use bytes::Bytes;
use time::OffsetDateTime;

/// `client.id` of Kafka clients and the prefix of the Kafka `User-Agent`, as Kubeless's.
pub(crate) const KAFKA_CLIENT_ID: &str = "kubeless-kafka-trigger-controller";

/// The broker a message came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// A Kafka topic (KafkaTrigger).
    Kafka,
    /// A NATS subject (NATSTrigger).
    Nats,
    /// A Kinesis stream's shard (KinesisTrigger).
    Kinesis,
}

impl Source {
    /// The `event-namespace` header.
    pub fn event_namespace(self) -> &'static str {
        match self {
            Source::Kafka => "kafkatriggers.kubeless.io",
            Source::Nats => "natstriggers.kubeless.io",
            Source::Kinesis => "kinesistriggers.kubeless.io",
        }
    }

    /// The `User-Agent` header: the trigger controller's name and Kelp's version.
    pub fn user_agent(self) -> String {
        let name = match self {
            Source::Kafka => KAFKA_CLIENT_ID,
            Source::Nats => "kubeless-nats-trigger-controller",
            Source::Kinesis => "kubeless-kinesis-trigger-controller",
        };
        format!("{name}/{}", env!("CARGO_PKG_VERSION"))
    }

    /// `kafka`, `nats` or `kinesis`, the `kind` label of the metrics.
    pub fn label(self) -> &'static str {
        match self {
            Source::Kafka => "kafka",
            Source::Nats => "nats",
            Source::Kinesis => "kinesis",
        }
    }
}

/// One message as the functions receive it; every attempt to deliver it sends the same id and
/// time, so a function can recognise a retry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// `event-id`.
    pub id: String,
    /// `event-time`.
    pub time: String,
    /// `event-type` and `Content-Type`.
    pub content_type: &'static str,
    /// Where it came from.
    pub source: Source,
    /// `event-topic`: the topic or subject the message was published to.
    pub topic: String,
    /// The message.
    pub body: Bytes,
}

impl Event {
    /// The event of a message received now on `topic`.
    pub fn new(source: Source, topic: &str, body: Bytes) -> Event {
        Event::at(source, topic, body, OffsetDateTime::now_utc(), random_id())
    }

    fn at(source: Source, topic: &str, body: Bytes, time: OffsetDateTime, id: [u8; 11]) -> Event {
        Event {
            id: base64::engine::general_purpose::URL_SAFE.encode(id),
            time: go_time_string(time),
            content_type: content_type(&body),
            source,
            topic: topic.to_owned(),
            body,
        }
    }

    /// The request that delivers it: `POST /` with the event headers.
    pub fn request(&self) -> http::Request<Bytes> {
        http::Request::post("/")
            .header("event-id", &self.id)
            .header("event-time", &self.time)
            .header("event-type", self.content_type)
            .header("event-namespace", self.source.event_namespace())
            .header("event-topic", &self.topic)
            .header(http::header::CONTENT_TYPE, self.content_type)
            .header(http::header::USER_AGENT, self.source.user_agent())
            .body(self.body.clone())
            .unwrap_or_else(|_| {
                // Only a topic with characters no header may hold gets here; send it without.
                let mut request = http::Request::new(self.body.clone());
                *request.method_mut() = http::Method::POST;
                request
            })
    }
}

/// Kubeless's rule: JSON only when the message is a JSON object.
fn content_type(body: &[u8]) -> &'static str {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(_)) => "application/json",
        _ => "application/x-www-form-urlencoded",
    }
}

/// 11 random bytes.
fn random_id() -> [u8; 11] {
    let mut id = [0u8; 11];
    // The kernel's random source does not fail on Linux once booted.
    let _ = getrandom::fill(&mut id);
    id
}

/// Go's `Time.String()` of a UTC time: `2006-01-02 15:04:05.999999999 +0000 UTC`, the fraction
/// without trailing zeros and left out when zero.
fn go_time_string(time: OffsetDateTime) -> String {
    let time = time.to_offset(time::UtcOffset::UTC);
    let mut fraction = format!(".{:09}", time.nanosecond());
    while fraction.ends_with('0') {
        fraction.pop();
    }
    if fraction == "." {
        fraction.clear();
    }
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}{fraction} +0000 UTC",
        time.year(),
        u8::from(time.month()),
        time.day(),
        time.hour(),
        time.minute(),
        time.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn headers_are_kubeless_s() {
        let event = Event::at(
            Source::Kafka,
            "orders",
            Bytes::from_static(br#"{"payload":"x"}"#),
            datetime!(2009-11-10 23:00:00.1234 UTC),
            [0xff; 11],
        );
        let request = event.request();
        let header = |name: &str| request.headers()[name].to_str().unwrap().to_owned();
        assert_eq!(request.method(), http::Method::POST);
        assert_eq!(header("event-id"), "______________8=");
        assert_eq!(header("event-time"), "2009-11-10 23:00:00.1234 +0000 UTC");
        assert_eq!(header("event-type"), "application/json");
        assert_eq!(header("content-type"), "application/json");
        assert_eq!(header("event-namespace"), "kafkatriggers.kubeless.io");
        assert_eq!(header("event-topic"), "orders");
        assert!(header("user-agent").starts_with("kubeless-kafka-trigger-controller/"));
        assert_eq!(request.body(), &Bytes::from_static(br#"{"payload":"x"}"#));
    }

    #[test]
    fn only_json_objects_are_json_and_whole_seconds_have_no_fraction() {
        for (body, expected) in [
            (&b"{}"[..], "application/json"),
            (b"[1]", "application/x-www-form-urlencoded"),
            (b"\"s\"", "application/x-www-form-urlencoded"),
            (b"hello", "application/x-www-form-urlencoded"),
        ] {
            assert_eq!(content_type(body), expected, "{body:?}");
        }
        let event = Event::at(Source::Nats, "a.b", Bytes::new(), datetime!(2021-01-18 07:05:09 UTC), [0; 11]);
        assert_eq!(event.time, "2021-01-18 07:05:09 +0000 UTC");
        assert_eq!(event.request().headers()["event-namespace"], "natstriggers.kubeless.io");
        assert_eq!(Event::new(Source::Nats, "t", Bytes::new()).id.len(), 16);
    }
}
