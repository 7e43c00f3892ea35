//! Remote write of the collected figures to an existing Prometheus-compatible store
//! (Prometheus with `--web.enable-remote-write-receiver`, VictoriaMetrics, …) for a province
//! that outgrows the embedded store, which stays the default. The platform admin sets the
//! URL (and an optional bearer token, sealed at rest and never returned); the collector
//! sends each reading right after taking it, as one remote-write 1.0 request: a protobuf
//! `WriteRequest` compressed in snappy's block format. Both encodings are written here (the
//! few messages and the literal-only snappy form are small), so nothing new is compiled.
//! A failed send is counted in the collector's status and not retried: the next reading
//! follows in 10 s, and the embedded store keeps every point anyway.

use super::Latest;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::Duration;
use zy_model::metrics::Series;
use zy_model::{t, Error};

/// Where the settings are kept in `settings`.
pub const SETTINGS_KEY: &str = "metrics_remote_write";
/// One send may take this long.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// The stored settings (the token sealed).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Stored {
    pub enabled: bool,
    pub url: String,
    #[serde(default)]
    pub bearer_sealed: Option<String>,
}

/// A URL the control plane may send to: http or https, with a host, at most 500 bytes.
pub fn check_url(url: &str) -> Result<(), Error> {
    let ok = url.len() <= 500
        && reqwest::Url::parse(url)
            .ok()
            .is_some_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
    if ok {
        Ok(())
    } else {
        Err(Error::validation(
            "url",
            t!(
                "地址须为 http 或 https 开头的完整 URL（不超过 500 个字符）",
                "the URL must be a full http or https URL of at most 500 characters"
            ),
        ))
    }
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn field_bytes(field: u32, bytes: &[u8], out: &mut Vec<u8>) {
    varint(u64::from(field << 3 | 2), out);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// One `TimeSeries`: labels (sorted by name, as the protocol asks) and one sample.
fn time_series(labels: &[(&str, &str)], value: f64, ts_ms: i64) -> Vec<u8> {
    let mut ts = Vec::new();
    let mut sorted: Vec<&(&str, &str)> = labels.iter().collect();
    sorted.sort();
    for (name, v) in sorted {
        let mut label = Vec::new();
        field_bytes(1, name.as_bytes(), &mut label);
        field_bytes(2, v.as_bytes(), &mut label);
        field_bytes(1, &label, &mut ts);
    }
    let mut sample = Vec::new();
    varint(1 << 3 | 1, &mut sample);
    sample.extend_from_slice(&value.to_le_bytes());
    varint(2 << 3, &mut sample);
    varint(ts_ms as u64, &mut sample);
    field_bytes(2, &sample, &mut ts);
    ts
}

/// The `WriteRequest` of one reading: every figure of every host and instance, instances
/// labelled with their department, project, zone and provider ids.
pub fn write_request(at: i64, latest: &Latest, labels: &HashMap<String, [String; 4]>) -> Vec<u8> {
    let mut out = Vec::new();
    let ts_ms = at * 1000;
    let mut keys: Vec<&(&'static str, String)> = latest
        .keys()
        .filter(|(s, _)| matches!(*s, "host" | "instance"))
        .collect();
    keys.sort();
    for key in keys {
        let (scope, id) = key;
        let Some(values) = latest.get(key) else {
            continue;
        };
        for series in Series::ALL {
            let Some(v) = values[series as usize] else {
                continue;
            };
            let name = format!("zhengyun_{scope}_{}", series.as_str());
            let id_label = format!("{scope}_id");
            let mut l: Vec<(&str, &str)> = vec![("__name__", &name), (&id_label, id)];
            if let Some([d, p, z, pv]) = labels.get(id) {
                l.extend([
                    ("department_id", d.as_str()),
                    ("project_id", p.as_str()),
                    ("zone_id", z.as_str()),
                    ("provider_id", pv.as_str()),
                ]);
            }
            field_bytes(1, &time_series(&l, v, ts_ms), &mut out);
        }
    }
    out
}

/// Snappy's block format with literals only: the uncompressed length, then the bytes in
/// literal elements of at most 64 KiB. Valid for every snappy decoder; remote-write bodies
/// are small, so the missed compression does not matter.
pub fn snappy_literal(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 65_536 * 3 + 8);
    varint(data.len() as u64, &mut out);
    for chunk in data.chunks(65_536) {
        let n = chunk.len() - 1;
        if n < 60 {
            out.push((n as u8) << 2);
        } else if n < 256 {
            out.push(60 << 2);
            out.push(n as u8);
        } else {
            out.push(61 << 2);
            out.extend_from_slice(&(n as u16).to_le_bytes());
        }
        out.extend_from_slice(chunk);
    }
    out
}

/// Why a reading did not reach the receiver.
#[derive(Debug)]
pub enum SendError {
    /// The receiver is unreachable, timed out, or answered 5xx/429: worth sending again.
    Unavailable(String),
    /// The receiver answered another 4xx about this reading: sending it again would not
    /// help.
    Refused(String),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Unavailable(e) | SendError::Refused(e) => f.write_str(e),
        }
    }
}

/// Sends one reading (an encoded `WriteRequest`).
pub async fn send(
    http: &reqwest::Client,
    url: &str,
    bearer: Option<&str>,
    body: Vec<u8>,
) -> Result<(), SendError> {
    let mut req = http
        .post(url)
        .header("Content-Encoding", "snappy")
        .header("Content-Type", "application/x-protobuf")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .timeout(TIMEOUT)
        .body(snappy_literal(&body));
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| SendError::Unavailable(e.to_string()))?;
    let st = resp.status();
    if st.is_success() {
        return Ok(());
    }
    let text = resp.text().await.unwrap_or_default();
    let msg = format!(
        "the receiver answered {st}: {}",
        text.trim().chars().take(200).collect::<String>()
    );
    if st.is_client_error() && st != reqwest::StatusCode::TOO_MANY_REQUESTS {
        Err(SendError::Refused(msg))
    } else {
        Err(SendError::Unavailable(msg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snappy_literals_carry_the_length_and_every_byte() {
        for n in [1usize, 59, 60, 61, 255, 256, 300, 65_536, 65_537, 200_000] {
            let data: Vec<u8> = (0..n).map(|i| (i * 7 % 251) as u8).collect();
            let enc = snappy_literal(&data);
            // Decode by the format's rules: varint length, then literal elements.
            let (mut len, mut shift, mut i) = (0usize, 0, 0);
            loop {
                let b = enc[i];
                i += 1;
                len |= usize::from(b & 0x7f) << shift;
                shift += 7;
                if b < 0x80 {
                    break;
                }
            }
            assert_eq!(len, n);
            let mut out = Vec::new();
            while i < enc.len() {
                let tag = enc[i];
                i += 1;
                assert_eq!(tag & 3, 0, "literal");
                let m = match tag >> 2 {
                    60 => {
                        i += 1;
                        usize::from(enc[i - 1])
                    }
                    61 => {
                        i += 2;
                        usize::from(u16::from_le_bytes([enc[i - 2], enc[i - 1]]))
                    }
                    small => usize::from(small),
                } + 1;
                out.extend_from_slice(&enc[i..i + m]);
                i += m;
            }
            assert_eq!(out, data, "n = {n}");
        }
    }

    #[test]
    fn urls_are_checked() {
        assert!(check_url("http://127.0.0.1:8428/api/v1/write").is_ok());
        assert!(check_url("https://vm.example.gov.cn/api/v1/write").is_ok());
        for bad in ["", "ftp://x/y", "not a url", "http://"] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }
}
