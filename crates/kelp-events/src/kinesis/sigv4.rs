//! AWS Signature Version 4 for the requests of the Kinesis client: a `POST /` with no query,
//! whose signed headers are given (lower-case names, already trimmed values) and whose payload is
//! hashed whole.

use hmac::{Hmac, Mac};
use kelp_plan::{hex, sha256_hex};
use sha2::Sha256;
use time::OffsetDateTime;

use super::Credentials;

/// The algorithm's name, first in the string to sign and the `Authorization` header.
const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// What one signature covers besides the headers and the payload.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Scope<'a> {
    /// The request's method.
    pub(crate) method: &'a str,
    /// The AWS region.
    pub(crate) region: &'a str,
    /// The AWS service (`kinesis`).
    pub(crate) service: &'a str,
    /// When the request is made (its `x-amz-date`).
    pub(crate) time: OffsetDateTime,
}

/// `x-amz-date`: `YYYYMMDDTHHMMSSZ` in UTC.
pub(crate) fn amz_date(time: OffsetDateTime) -> String {
    let time = time.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        time.year(),
        u8::from(time.month()),
        time.day(),
        time.hour(),
        time.minute(),
        time.second()
    )
}

/// The `Authorization` header of a request to `/` (no query) with these `headers` (lower-case
/// names, sorted or not; `host` and `x-amz-date` among them) and `payload`.
pub(crate) fn authorization(
    credentials: &Credentials,
    scope: Scope<'_>,
    headers: &[(&str, &str)],
    payload: &[u8],
) -> String {
    let mut headers = headers.to_vec();
    headers.sort_by(|a, b| a.0.cmp(b.0));
    let signed_headers = headers.iter().map(|(name, _)| *name).collect::<Vec<_>>().join(";");
    let canonical_headers: String = headers.iter().map(|(name, value)| format!("{name}:{}\n", value.trim())).collect();
    let canonical_request =
        format!("{}\n/\n\n{canonical_headers}\n{signed_headers}\n{}", scope.method, sha256_hex(payload));
    let amz_date = amz_date(scope.time);
    let date = &amz_date[..8];
    let credential_scope = format!("{date}/{}/{}/aws4_request", scope.region, scope.service);
    let string_to_sign =
        format!("{ALGORITHM}\n{amz_date}\n{credential_scope}\n{}", sha256_hex(canonical_request.as_bytes()));
    let key = [scope.region, scope.service, "aws4_request"]
        .iter()
        .fold(hmac(format!("AWS4{}", credentials.secret_access_key).as_bytes(), date.as_bytes()), |key, part| {
            hmac(&key, part.as_bytes())
        });
    let signature = hex(&hmac(&key, string_to_sign.as_bytes()));
    format!(
        "{ALGORITHM} Credential={}/{credential_scope}, SignedHeaders={signed_headers}, Signature={signature}",
        credentials.access_key_id
    )
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC accepts any key"));
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn example() -> Credentials {
        Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
        }
    }

    /// AWS's Signature Version 4 test suite, `post-vanilla`: `POST /` to
    /// `example.amazonaws.com`, service `service`, no body.
    #[test]
    fn aws_post_vanilla() {
        let scope =
            Scope { method: "POST", region: "us-east-1", service: "service", time: datetime!(2015-08-30 12:36:00 UTC) };
        let headers = [("host", "example.amazonaws.com"), ("x-amz-date", "20150830T123600Z")];
        assert_eq!(
            authorization(&example(), scope, &headers, b""),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
        );
    }

    /// A Kinesis `GetRecords` call as botocore (the AWS SDK for Python) signs it.
    #[test]
    fn a_kinesis_call_as_botocore_signs_it() {
        let scope =
            Scope { method: "POST", region: "eu-west-1", service: "kinesis", time: datetime!(2026-12-06 18:00:00 UTC) };
        let headers = [
            ("content-type", "application/x-amz-json-1.1"),
            ("host", "kinesis.eu-west-1.amazonaws.com"),
            ("x-amz-date", "20261206T180000Z"),
            ("x-amz-target", "Kinesis_20131202.GetRecords"),
        ];
        let payload = br#"{"ShardIterator":"AAAA","Limit":100}"#;
        assert_eq!(
            authorization(&example(), scope, &headers, payload),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261206/eu-west-1/kinesis/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date;x-amz-target, \
             Signature=f21020479afaba000a55c40f6697733c58619804dadcbe168a53e93b1972d41d"
        );
    }
}
