//! Standard Webhooks signatures (<https://www.standardwebhooks.com>): `webhook-id`,
//! `webhook-timestamp` and `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::{Engine as _, engine::general_purpose::STANDARD};
use hmac::{Hmac, KeyInit, Mac};
use hookmq_broker::message::MessageId;
use http::{HeaderMap, HeaderValue};
use sha2::Sha256;

use crate::spec::SpecError;

/// Header names.
pub const ID_HEADER: &str = "webhook-id";
/// Unix seconds of the attempt.
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
/// `v1,<signature>`.
pub const SIGNATURE_HEADER: &str = "webhook-signature";

/// Signs request bodies with one secret.
#[derive(Clone)]
pub struct Signer {
    key: Vec<u8>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(..)")
    }
}

impl Signer {
    /// A signer for a `whsec_<base64>` secret (the prefix is optional).
    ///
    /// # Errors
    /// [`SpecError`] on `signing_secret` if it is not base64 of at least 16 bytes.
    pub fn new(secret: &str) -> Result<Self, SpecError> {
        let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
        let key = STANDARD.decode(encoded).map_err(|_| {
            SpecError::new(
                "signing_secret",
                "expected whsec_ followed by base64 (e.g. 24 random bytes)",
            )
        })?;
        if key.len() < 16 {
            return Err(SpecError::new(
                "signing_secret",
                "the key must be at least 16 bytes",
            ));
        }
        Ok(Self { key })
    }

    /// The three Standard Webhooks headers for one attempt of event `id`, timestamped now.
    #[must_use]
    pub fn headers(&self, id: MessageId, body: &[u8]) -> HeaderMap {
        delivery_headers(Some(self), id, body)
    }

    /// The `webhook-signature` value for one attempt.
    #[must_use]
    pub fn sign(&self, id: &str, timestamp: u64, body: &[u8]) -> String {
        // The key was checked in `new`; HMAC accepts keys of any length.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            return String::new();
        };
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

/// The headers every attempt of event `id` carries: `webhook-id` (the same on every attempt
/// and after a restart, so a receiver can spot a duplicate), and with a `signer` the
/// attempt's `webhook-timestamp` and `webhook-signature`.
#[must_use]
pub fn delivery_headers(signer: Option<&Signer>, id: MessageId, body: &[u8]) -> HeaderMap {
    let id = format!("evt_{id}");
    let mut headers = HeaderMap::with_capacity(3);
    if let Some(signer) = signer {
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let signature = signer.sign(&id, timestamp, body);
        for (name, value) in [
            (TIMESTAMP_HEADER, timestamp.to_string()),
            (SIGNATURE_HEADER, signature),
        ] {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        headers.insert(ID_HEADER, value);
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_webhooks_test_vector() {
        // From the standard-webhooks reference libraries' tests.
        let signer = Signer::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("secret");
        let signature = signer.sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn bad_secrets_are_refused() {
        assert!(Signer::new("whsec_!!!").is_err());
        assert!(Signer::new("whsec_c2hvcnQ=").is_err());
    }
}
