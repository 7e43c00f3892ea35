//! The agent's identity: joined once with a one-time token, then kept in the data
//! directory (`agent/identity.json`, and the private key in `agent/agent.key`, mode 0600).

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use uuid::Uuid;
use zy_compute::agent::{HostCapacity, JoinRequest, JoinResponse};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Identity {
    pub host_id: Uuid,
    pub server: String,
    /// The address the control plane dials (kept so a restart serves where it joined).
    pub address: String,
    pub cert_pem: String,
    pub client_ca_pem: String,
}

fn dir(data: &Path) -> PathBuf {
    data.join("agent")
}

pub fn load(data: &Path) -> Result<Option<(Identity, String)>, String> {
    let d = dir(data);
    let idp = d.join("identity.json");
    if !idp.exists() {
        return Ok(None);
    }
    let id: Identity = serde_json::from_str(
        &std::fs::read_to_string(&idp).map_err(|e| format!("{}: {e}", idp.display()))?,
    )
    .map_err(|e| format!("{}: {e}", idp.display()))?;
    let key = std::fs::read_to_string(d.join("agent.key"))
        .map_err(|e| format!("{}: {e}", d.join("agent.key").display()))?;
    Ok(Some((id, key)))
}

fn write_private(path: &Path, content: &str) -> Result<(), String> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    o.mode(0o600);
    let mut f = o
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(content.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Joins the control plane at `server` with a one-time `token`; keeps the result.
pub async fn join(
    data: &Path,
    server: &str,
    token: &str,
    name: &str,
    address: &str,
    capacity: HostCapacity,
) -> Result<(Identity, String), String> {
    let (csr_pem, key_pem) = zy_pki::new_csr(name).map_err(|e| e.to_string())?;
    let body = JoinRequest {
        token: token.to_string(),
        csr_pem,
        name: name.to_string(),
        address: address.to_string(),
        capacity,
    };
    let url = format!("{}/v1/agents/join", server.trim_end_matches('/'));
    let resp = reqwest::Client::new()
        .post(&url)
        .header("accept-language", "en")
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("cannot reach the control plane at {server}: {e}"))?;
    if !resp.status().is_success() {
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let msg = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
            .unwrap_or(text);
        return Err(format!(
            "the control plane refused to let this host join ({status}): {msg}"
        ));
    }
    let r: JoinResponse = resp
        .json()
        .await
        .map_err(|e| format!("unexpected join answer: {e}"))?;
    let id = Identity {
        host_id: r.host_id,
        server: server.to_string(),
        address: address.to_string(),
        cert_pem: r.cert_pem,
        client_ca_pem: r.client_ca_pem,
    };
    let d = dir(data);
    std::fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
    write_private(&d.join("agent.key"), &key_pem)?;
    let json = serde_json::to_string_pretty(&id).map_err(|e| e.to_string())?;
    write_private(&d.join("identity.json"), &json)?;
    Ok((id, key_pem))
}
