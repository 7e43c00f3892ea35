//! The HTTP client the CLI commands use: where the server is, how to authenticate (a saved
//! session, or an API token from `ZHENGYUN_TOKEN`), and turning the server's error body
//! into a readable message.

use anyhow::{anyhow, Context, Result};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::PathBuf;

pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

/// What `zhengyun login` saves (mode 0600) in the user's config dir.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct SavedConfig {
    pub server: Option<String>,
    pub session_token: Option<String>,
    pub username: Option<String>,
}

pub fn config_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("ZHENGYUN_CONFIG_DIR") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CONFIG_HOME") {
        return PathBuf::from(d).join("zhengyun");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".config").join("zhengyun")
}

fn config_path() -> PathBuf {
    config_dir().join("config.json")
}

pub fn load_config() -> SavedConfig {
    std::fs::read_to_string(config_path())
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default()
}

pub fn save_config(c: &SavedConfig) -> Result<()> {
    let dir = config_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = config_path();
    let text = serde_json::to_string_pretty(c)?;
    #[cfg(unix)]
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)?;
        f.write_all(text.as_bytes())?;
    }
    #[cfg(not(unix))]
    std::fs::write(&path, text)?;
    Ok(())
}

pub struct Client {
    http: reqwest::Client,
    pub server: String,
    bearer: Option<String>,
    lang: String,
}

/// An error the server answered with, kept whole for `--json`.
#[derive(Debug)]
pub struct ApiFailure {
    pub status: StatusCode,
    pub body: Value,
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let e = &self.body["error"];
        let code = e["code"].as_str().unwrap_or("error");
        let msg = e["message"].as_str().unwrap_or("");
        write!(f, "{msg} [{code}, HTTP {}]", self.status.as_u16())?;
        if let Some(d) = e.get("details").filter(|d| !d.is_null()) {
            write!(f, " {d}")?;
        }
        if let Some(r) = e["request_id"].as_str() {
            write!(f, " (request {r})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiFailure {}

impl Client {
    pub fn new(server: Option<String>, token: Option<String>) -> Result<Client> {
        let saved = load_config();
        let server = server
            .or(saved.server)
            .unwrap_or_else(|| DEFAULT_SERVER.to_string());
        let bearer = token.or(saved.session_token);
        let lang = std::env::var("ZHENGYUN_LANG")
            .ok()
            .or_else(|| {
                std::env::var("LANG")
                    .ok()
                    .filter(|l| l.starts_with("en"))
                    .map(|_| "en".into())
            })
            .unwrap_or_else(|| "zh-CN".into());
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(120))
            .build()?;
        Ok(Client {
            http,
            server: server.trim_end_matches('/').to_string(),
            bearer,
            lang,
        })
    }

    pub fn with_bearer(mut self, bearer: Option<String>) -> Self {
        self.bearer = bearer;
        self
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Value>,
    ) -> Result<reqwest::Response> {
        let mut req = self
            .http
            .request(method, format!("{}{}", self.server, path))
            .header("accept-language", &self.lang);
        if !query.is_empty() {
            req = req.query(query);
        }
        if let Some(b) = &self.bearer {
            req = req.bearer_auth(b);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.with_context(|| {
            format!(
                "cannot reach the zhengyun server at {} (is it running?)",
                self.server
            )
        })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or_else(
            |_| serde_json::json!({ "error": { "code": "http", "message": status.to_string() } }),
        );
        Err(anyhow!(ApiFailure { status, body }))
    }

    pub async fn json(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Value>,
    ) -> Result<Value> {
        let resp = self.send(method, path, query, body).await?;
        if resp.status() == StatusCode::NO_CONTENT {
            return Ok(Value::Null);
        }
        Ok(resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value> {
        self.json(Method::GET, path, query, None).await
    }
    pub async fn post(&self, path: &str, body: Value) -> Result<Value> {
        self.json(Method::POST, path, &[], Some(body)).await
    }
    pub async fn patch(&self, path: &str, body: Value) -> Result<Value> {
        self.json(Method::PATCH, path, &[], Some(body)).await
    }
    pub async fn put(&self, path: &str, body: Value) -> Result<Value> {
        self.json(Method::PUT, path, &[], Some(body)).await
    }
    pub async fn delete(&self, path: &str) -> Result<Value> {
        self.json(Method::DELETE, path, &[], None).await
    }
}
