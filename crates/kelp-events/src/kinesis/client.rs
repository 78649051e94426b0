//! A small Kinesis client: the JSON 1.1 API (`X-Amz-Target: Kinesis_20131202.<Action>`) signed
//! with Signature Version 4, over hyper (TLS through rustls with the system's roots for `https`
//! endpoints). Only what the triggers and `kelp trigger kinesis` need: `CreateStream`,
//! `ListShards`, `PutRecord`, `GetShardIterator` and `GetRecords`. Every answer is read within
//! [`MAX_ANSWER`] and checked before use: a bad answer is an error, never a panic.

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kelp_api::error_chain;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::sigv4::{Scope, amz_date, authorization};
use super::{Credentials, KinesisError};

/// The largest answer read: `GetRecords` returns at most 10 MiB of data, base64-encoded in JSON.
pub const MAX_ANSWER: usize = 16 << 20;
/// The most records one `GetRecords` asks for (Kinesis allows 10,000).
pub const MAX_RECORDS: u32 = 1000;
/// The largest record Kinesis stores (1 MiB of data).
pub const MAX_RECORD: usize = 1 << 20;
/// The most shards listed, and pages of `ListShards` followed.
const MAX_SHARDS: usize = 10_000;
/// The longest sequence number accepted (Kinesis's are decimal numbers of up to 128 digits).
const MAX_SEQUENCE: usize = 128;
/// How long one call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// The API version of every action.
const TARGET_PREFIX: &str = "Kinesis_20131202.";

/// Where a shard iterator starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Start {
    /// Just after this sequence number (a checkpoint).
    After(String),
    /// At the first record written at or after this time.
    At(SystemTime),
    /// At the oldest record the shard keeps.
    Oldest,
}

/// One record of a shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Its sequence number.
    pub sequence_number: String,
    /// Its partition key.
    pub partition_key: String,
    /// Its data, decoded.
    pub data: Bytes,
}

/// What one `GetRecords` returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Records {
    /// The records, in order.
    pub records: Vec<Record>,
    /// Where to read next; `None` once a closed shard is read to its end.
    pub next: Option<String>,
    /// How far behind the shard's latest record the last one returned is, in milliseconds.
    pub millis_behind_latest: Option<i64>,
}

/// A Kinesis endpoint, region and credentials.
#[derive(Clone, Debug)]
pub struct Client {
    http: HttpClient<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    endpoint: http::Uri,
    region: String,
    credentials: Credentials,
}

impl Client {
    /// A client of `endpoint` (`http://` or `https://`; when `None`, AWS's endpoint of
    /// `region`).
    pub fn new(endpoint: Option<&str>, region: &str, credentials: Credentials) -> Result<Client, KinesisError> {
        let endpoint = match endpoint.map(str::trim).filter(|e| !e.is_empty()) {
            Some(endpoint) => endpoint.to_owned(),
            None => format!("https://kinesis.{region}.amazonaws.com"),
        };
        let bad = |reason: &str| KinesisError::Endpoint { endpoint: endpoint.clone(), reason: reason.to_owned() };
        let uri: http::Uri = endpoint.parse().map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.authority().is_none() {
            return Err(bad("must be an http:// or https:// URL with a host"));
        }
        if uri.path() != "/" && !uri.path().is_empty() {
            return Err(bad("must have no path"));
        }
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| bad(&format!("no TLS root certificates: {e}")))?
            .https_or_http()
            .enable_http1()
            .build();
        let http = HttpClient::builder(TokioExecutor::new()).build(connector);
        Ok(Client { http, endpoint: uri, region: region.to_owned(), credentials })
    }

    /// `CreateStream` with `shards` shards (the stream becomes active by itself).
    pub async fn create_stream(&self, stream: &str, shards: u32) -> Result<(), KinesisError> {
        self.call("CreateStream", json!({"StreamName": stream, "ShardCount": shards})).await.map(drop)
    }

    /// The ids of the stream's shards (`ListShards`, every page).
    pub async fn list_shards(&self, stream: &str) -> Result<Vec<String>, KinesisError> {
        let mut shards = Vec::new();
        let mut request = json!({"StreamName": stream});
        for _ in 0..MAX_SHARDS {
            let answer = self.call("ListShards", request).await?;
            for shard in answer.get("Shards").and_then(Value::as_array).into_iter().flatten() {
                shards.push(text(shard, "ShardId", "ListShards")?);
            }
            if shards.len() > MAX_SHARDS {
                return Err(bad_answer("ListShards", &format!("more than {MAX_SHARDS} shards")));
            }
            match answer.get("NextToken").and_then(Value::as_str) {
                Some(token) => request = json!({"NextToken": token}),
                None => return Ok(shards),
            }
        }
        Err(bad_answer("ListShards", &format!("more than {MAX_SHARDS} pages")))
    }

    /// `PutRecord`: the shard and sequence number the record got.
    pub async fn put_record(
        &self,
        stream: &str,
        partition_key: &str,
        data: &[u8],
    ) -> Result<(String, String), KinesisError> {
        let data = base64::engine::general_purpose::STANDARD.encode(data);
        let answer =
            self.call("PutRecord", json!({"StreamName": stream, "PartitionKey": partition_key, "Data": data})).await?;
        Ok((text(&answer, "ShardId", "PutRecord")?, sequence_number(&answer, "PutRecord")?))
    }

    /// `GetShardIterator` of `shard` from `start`.
    pub async fn shard_iterator(&self, stream: &str, shard: &str, start: &Start) -> Result<String, KinesisError> {
        let mut request = json!({"StreamName": stream, "ShardId": shard});
        match start {
            Start::After(sequence) => {
                request["ShardIteratorType"] = json!("AFTER_SEQUENCE_NUMBER");
                request["StartingSequenceNumber"] = json!(sequence);
            }
            Start::At(time) => {
                let seconds = time.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs_f64();
                request["ShardIteratorType"] = json!("AT_TIMESTAMP");
                request["Timestamp"] = json!(seconds);
            }
            Start::Oldest => request["ShardIteratorType"] = json!("TRIM_HORIZON"),
        }
        let answer = self.call("GetShardIterator", request).await?;
        text(&answer, "ShardIterator", "GetShardIterator")
    }

    /// `GetRecords`: at most `limit` (bounded by [`MAX_RECORDS`]) records from `iterator`.
    pub async fn get_records(&self, iterator: &str, limit: u32) -> Result<Records, KinesisError> {
        let limit = limit.clamp(1, MAX_RECORDS);
        let answer = self.call("GetRecords", json!({"ShardIterator": iterator, "Limit": limit})).await?;
        records(&answer, limit)
    }

    /// Calls `action` with `body`; its answer's JSON object (an empty answer is `{}`).
    async fn call(&self, action: &str, body: Value) -> Result<Value, KinesisError> {
        let payload = Bytes::from(body.to_string());
        let target = format!("{TARGET_PREFIX}{action}");
        let host = self.endpoint.authority().map(|a| a.as_str().to_owned()).unwrap_or_default();
        let now = OffsetDateTime::now_utc();
        let date = amz_date(now);
        let content_type = "application/x-amz-json-1.1";
        let headers =
            [("content-type", content_type), ("host", &host), ("x-amz-date", &date), ("x-amz-target", &target)];
        let scope = Scope { method: "POST", region: &self.region, service: "kinesis", time: now };
        let signature = authorization(&self.credentials, scope, &headers, &payload);
        let failed = |reason: String| KinesisError::Call { action: action.to_owned(), reason };
        let request = http::Request::post(self.endpoint.clone())
            .header(http::header::HOST, &host)
            .header(http::header::CONTENT_TYPE, content_type)
            .header("x-amz-date", &date)
            .header("x-amz-target", &target)
            .header(http::header::AUTHORIZATION, signature)
            .header(http::header::USER_AGENT, concat!("kelp/", env!("CARGO_PKG_VERSION")))
            .body(Full::new(payload))
            .map_err(|e| failed(e.to_string()))?;
        let exchange = async {
            let response = self.http.request(request).await.map_err(|e| failed(error_chain(&e)))?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| failed(format!("reading the answer: {e}")))?
                .to_bytes();
            Ok::<_, KinesisError>((status, body))
        };
        let (status, body) = tokio::time::timeout(CALL_TIMEOUT, exchange)
            .await
            .map_err(|_| failed(format!("no answer within {} s", CALL_TIMEOUT.as_secs())))??;
        let value: Value = if body.iter().all(u8::is_ascii_whitespace) {
            json!({})
        } else {
            serde_json::from_slice(&body).map_err(|_| {
                let start: String = String::from_utf8_lossy(&body).chars().take(200).collect();
                failed(format!("answered {status} with a body that is not JSON: {start}"))
            })?
        };
        if !status.is_success() {
            let kind = value.get("__type").and_then(Value::as_str).unwrap_or("Error");
            let kind = kind.rsplit('#').next().unwrap_or(kind).to_owned();
            let message = value.get("message").or_else(|| value.get("Message")).and_then(Value::as_str);
            let message: String = message.unwrap_or_default().chars().take(500).collect();
            return Err(KinesisError::Api { action: action.to_owned(), status: status.as_u16(), kind, message });
        }
        if !value.is_object() {
            return Err(bad_answer(action, "the answer is not a JSON object"));
        }
        Ok(value)
    }
}

/// The records of a `GetRecords` answer of at most `limit` records, checked: every record's data
/// base64 of at most [`MAX_RECORD`] bytes and a sequence number, no more records than asked.
fn records(answer: &Value, limit: u32) -> Result<Records, KinesisError> {
    let listed = answer.get("Records").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    if listed.len() > limit as usize {
        return Err(bad_answer("GetRecords", &format!("{} records where at most {limit} were asked", listed.len())));
    }
    let mut records = Vec::with_capacity(listed.len());
    for record in listed {
        let encoded = record.get("Data").and_then(Value::as_str).unwrap_or_default();
        let data = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|e| bad_answer("GetRecords", &format!("a record's Data is not base64: {e}")))?;
        if data.len() > MAX_RECORD {
            return Err(bad_answer("GetRecords", &format!("a record of {} bytes, above 1 MiB", data.len())));
        }
        records.push(Record {
            sequence_number: sequence_number(record, "GetRecords")?,
            partition_key: record.get("PartitionKey").and_then(Value::as_str).unwrap_or_default().to_owned(),
            data: Bytes::from(data),
        });
    }
    Ok(Records {
        records,
        next: answer.get("NextShardIterator").and_then(Value::as_str).map(str::to_owned),
        millis_behind_latest: answer.get("MillisBehindLatest").and_then(Value::as_i64).filter(|m| *m >= 0),
    })
}

/// [`Client::get_records`]' reading of an answer's body (what the fuzz target `kinesis` feeds):
/// the records of at most `limit`, or why the answer is bad.
pub fn parse_records(body: &[u8], limit: u32) -> Result<Records, KinesisError> {
    let answer: Value =
        serde_json::from_slice(body).map_err(|e| bad_answer("GetRecords", &format!("not JSON: {e}")))?;
    records(&answer, limit.clamp(1, MAX_RECORDS))
}

/// The string `key` of `object`, required.
fn text(object: &Value, key: &str, action: &str) -> Result<String, KinesisError> {
    object
        .get(key)
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| bad_answer(action, &format!("no {key}")))
}

/// The `SequenceNumber` of `object`: decimal digits, at most [`MAX_SEQUENCE`] of them (it is
/// written to the checkpoint as it is).
fn sequence_number(object: &Value, action: &str) -> Result<String, KinesisError> {
    let sequence = text(object, "SequenceNumber", action)?;
    if sequence.len() > MAX_SEQUENCE || !sequence.bytes().all(|b| b.is_ascii_digit()) {
        let start: String = sequence.chars().take(40).collect();
        return Err(bad_answer(action, &format!("a SequenceNumber that is not a number of up to 128 digits: {start}")));
    }
    Ok(sequence)
}

fn bad_answer(action: &str, reason: &str) -> KinesisError {
    KinesisError::Call { action: action.to_owned(), reason: format!("bad answer: {reason}") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// A server answering one request with `status` and `body`; its endpoint.
    async fn answering(status: u16, body: Vec<u8>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = vec![0u8; 64 << 10];
            let _ = socket.read(&mut request).await;
            let head = format!("HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", body.len());
            let _ = socket.write_all(head.as_bytes()).await;
            let _ = socket.write_all(&body).await;
        });
        endpoint
    }

    async fn get_records(status: u16, body: &str) -> Result<Records, KinesisError> {
        let endpoint = answering(status, body.as_bytes().to_vec()).await;
        let credentials = Credentials { access_key_id: "a".into(), secret_access_key: "b".into() };
        Client::new(Some(&endpoint), "us-east-1", credentials).unwrap().get_records("it", 1).await
    }

    #[tokio::test]
    async fn bad_answers_are_errors_naming_what_is_wrong() {
        for (status, body, expected) in [
            (200, r#"{"Records":[{"Data":"!!","SequenceNumber":"1"}]}"#, "not base64"),
            (200, r#"{"Records":[{"Data":"","SequenceNumber":"1"},{"Data":"","SequenceNumber":"2"}]}"#, "at most 1"),
            (200, r#"{"Records":[{"Data":"","SequenceNumber":"1; rm"}]}"#, "SequenceNumber"),
            (200, r#"{"Records":[{"Data":""}]}"#, "no SequenceNumber"),
            (200, "<html>", "not JSON"),
            (200, "[1]", "not a JSON object"),
            (
                400,
                r#"{"__type":"com.amazonaws#ExpiredIteratorException","message":"too old"}"#,
                "ExpiredIteratorException (400): too old",
            ),
        ] {
            let error = get_records(status, body).await.unwrap_err().to_string();
            assert!(error.contains(expected), "{body}: {error}");
        }
        let fine = get_records(
            200,
            r#"{"Records":[{"Data":"aGk=","SequenceNumber":"49","PartitionKey":"k"}],"NextShardIterator":"n","MillisBehindLatest":-5}"#,
        );
        let records = fine.await.unwrap();
        assert_eq!((records.records[0].data.as_ref(), records.next.as_deref()), (&b"hi"[..], Some("n")));
        assert_eq!(records.millis_behind_latest, None, "a negative lag is not one");
        assert!(parse_records(b"{\"Records\":[", 1).unwrap_err().to_string().contains("not JSON"));
        assert_eq!(parse_records(b"{}", 0).unwrap().records, [], "no records, no iterator: a closed shard");
    }

    #[tokio::test]
    async fn an_answer_above_the_bound_is_not_read() {
        let endpoint = answering(200, vec![b' '; MAX_ANSWER + 1]).await;
        let credentials = Credentials { access_key_id: "a".into(), secret_access_key: "b".into() };
        let client = Client::new(Some(&endpoint), "us-east-1", credentials).unwrap();
        let error = client.get_records("it", 1).await.unwrap_err().to_string();
        assert!(error.contains("reading the answer"), "{error}");
    }
}
