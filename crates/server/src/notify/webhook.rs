//! Webhook calls: a JSON body POSTed to the subscriber's URL with an HMAC-SHA256 signature
//! the receiver checks with the secret it was shown once.
//!
//! Headers: `X-Zhengyun-Event` (the kind), `X-Zhengyun-Delivery` (the outbox row's id, the
//! same on every retry: receivers deduplicate by it), `X-Zhengyun-Timestamp` (Unix seconds
//! of this attempt) and `X-Zhengyun-Signature: sha256=<hex>` over `"<timestamp>.<body>"`,
//! so a captured call cannot be replayed later with a fresh timestamp.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::Duration;
use zy_model::{t, Error};

/// Longest wait for a receiver's answer.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// `sha256=<hex>` over `"<timestamp>.<body>"`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let out = mac.finalize().into_bytes();
    let mut hex = String::with_capacity(7 + out.len() * 2);
    hex.push_str("sha256=");
    for b in out {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

/// Checks a subscription URL: http or https, a host, at most 2,048 characters.
pub fn check_url(url: &str) -> Result<String, Error> {
    let bad = |why: zy_model::Text| Error::validation("url", why);
    if url.len() > 2048 {
        return Err(bad(t!(
            "URL 不能超过 2048 个字符",
            "the URL must be at most 2,048 characters"
        )));
    }
    let parsed = reqwest::Url::parse(url.trim()).map_err(|_| {
        bad(t!(
            "URL 格式不正确，例如 https://oa.example.gov.cn/hooks/zhengyun",
            "the URL is not valid, e.g. https://oa.example.gov.cn/hooks/zhengyun"
        ))
    })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(bad(t!(
            "URL 须以 http:// 或 https:// 开头并包含主机名",
            "the URL must start with http:// or https:// and name a host"
        )));
    }
    Ok(parsed.to_string())
}

/// The HTTP client webhook calls go through: the system's roots, no redirects.
pub fn client() -> Result<reqwest::Client, Error> {
    let mut b = reqwest::Client::builder()
        .timeout(CALL_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent("zhengyun-webhook/1");
    for cert in rustls_native_certs::load_native_certs().certs {
        if let Ok(c) = reqwest::Certificate::from_der(&cert) {
            b = b.add_root_certificate(c);
        }
    }
    b.build()
        .map_err(|e| Error::internal(format!("webhook client: {e}")))
}

/// The outcome of one call: the receiver's status, if it answered.
pub struct CallResult {
    pub status: Option<u16>,
    pub error: Option<String>,
}

impl CallResult {
    pub fn ok(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// POSTs `body` to `url`, signed with `secret`.
pub async fn call(
    http: &reqwest::Client,
    url: &str,
    secret: &str,
    kind: &str,
    delivery: &str,
    body: &str,
) -> CallResult {
    let ts = chrono::Utc::now().timestamp();
    let res = http
        .post(url)
        .header("content-type", "application/json")
        .header("x-zhengyun-event", kind)
        .header("x-zhengyun-delivery", delivery)
        .header("x-zhengyun-timestamp", ts.to_string())
        .header(
            "x-zhengyun-signature",
            signature(secret, ts, body.as_bytes()),
        )
        .body(body.to_string())
        .send()
        .await;
    match res {
        Ok(r) => {
            let status = r.status().as_u16();
            CallResult {
                status: Some(status),
                error: (!(200..300).contains(&status))
                    .then(|| format!("the receiver answered HTTP {status}")),
            }
        }
        Err(e) => CallResult {
            status: None,
            error: Some(if e.is_timeout() {
                "the receiver did not answer in time".to_string()
            } else if e.is_connect() {
                "cannot connect to the receiver".to_string()
            } else {
                "the call failed".to_string()
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_over_timestamp_and_body() {
        let body = b"what do ya want for nothing?";
        let sig = signature("Jefe", 0, body);
        assert!(sig.starts_with("sha256=") && sig.len() == 7 + 64);
        assert_ne!(sig, signature("Jefe", 1, body), "the timestamp is signed");
        assert_ne!(sig, signature("Jeff", 0, body), "the key matters");
        // Known answer for HMAC-SHA256("key", "1.{}"), computed with Python's hmac module.
        assert_eq!(
            signature("key", 1, b"{}"),
            format!("sha256={}", known_answer())
        );
    }

    fn known_answer() -> &'static str {
        "1ba6b8171186efc613e8bcc0cbdab2748f24984d7c5a84faa2637afa0e40d224"
    }

    #[test]
    fn only_http_urls_with_a_host_are_accepted() {
        assert!(check_url("https://oa.example.gov.cn/hooks").is_ok());
        assert!(check_url("http://127.0.0.1:8080/x").is_ok());
        for bad in [
            "ftp://x/y",
            "file:///etc/passwd",
            "javascript:alert(1)",
            "not a url",
            "",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
        assert!(check_url(&format!("https://a/{}", "x".repeat(3000))).is_err());
    }
}
