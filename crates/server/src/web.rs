//! The web console's files: the single-page application built from `web/` by Vite.
//!
//! Release builds serve the files embedded by `build.rs`; debug builds read `web/dist` from
//! disk at run time, so the console can be rebuilt without recompiling the server; either
//! reads `$ZHENGYUN_WEB_DIR` instead when it is set. Not API operations, so not in OpenAPI: the router's fallback
//! calls [`serve`] for every path no API route matched. Paths under `/v1` and the probes
//! keep the API's JSON 404; `/assets/…` must exist (hashed names, cached for a year); any
//! other GET from a browser (asking for `text/html`) answers `index.html`, so the console's
//! own routes survive a reload, while API clients keep the JSON 404. Without a
//! built console `/` explains, in both languages, how to build it.

use crate::error::{error_for_status, ApiError};
use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use std::borrow::Cow;
use std::path::{Path, PathBuf};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));
}

/// Content type by file extension.
fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, e)| e) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json" | "map") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        Some("woff") => "font/woff",
        Some("ttf") => "font/ttf",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Paths that belong to the API and the probes: never answered with the console.
fn is_api_path(path: &str) -> bool {
    path == "/v1" || path.starts_with("/v1/") || matches!(path, "/healthz" | "/readyz" | "/metrics")
}

/// Where the console's files come from: `$ZHENGYUN_WEB_DIR` when set, else the files
/// embedded at build time (release) or `web/dist` on disk (debug).
enum Source {
    Embedded(&'static [(&'static str, &'static [u8])]),
    Dir(PathBuf),
}

impl Source {
    fn current() -> Source {
        if let Some(dir) = std::env::var_os("ZHENGYUN_WEB_DIR") {
            Source::Dir(PathBuf::from(dir))
        } else if cfg!(debug_assertions) {
            Source::Dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web/dist"))
        } else {
            Source::Embedded(embedded::ASSETS)
        }
    }

    /// One file by its path under `web/dist` (no leading `/`).
    fn get(&self, rel: &str) -> Option<Cow<'static, [u8]>> {
        match self {
            Source::Embedded(files) => files
                .iter()
                .find(|(p, _)| *p == rel)
                .map(|(_, b)| Cow::Borrowed(*b)),
            Source::Dir(dir) => {
                if rel
                    .split('/')
                    .any(|c| c == ".." || c.is_empty() || c.contains('\\'))
                {
                    return None;
                }
                std::fs::read(dir.join(rel)).ok().map(Cow::Owned)
            }
        }
    }
}

const NOT_BUILT: &str = r#"<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>政云 zhengyun</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 4em auto; line-height: 1.6">
<h1>政云控制台尚未构建</h1>
<p>API 正常运行于 <code>/v1</code>。构建控制台：<code>cd web &amp;&amp; npm ci &amp;&amp; npm run build</code>，然后重新编译服务器（或直接运行 <code>cargo xtask run</code>）。</p>
<h1 lang="en">The zhengyun console is not built</h1>
<p lang="en">The API is running under <code>/v1</code>. Build the console with <code>cd web &amp;&amp; npm ci &amp;&amp; npm run build</code> and rebuild the server (or just run <code>cargo xtask run</code>).</p>
</body></html>
"#;

fn respond(body: Cow<'static, [u8]>, ctype: &'static str, cache: &'static str) -> Response {
    let mut resp = (StatusCode::OK, body.into_owned()).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if ctype.starts_with("text/html") {
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
                 connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'",
            ),
        );
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        );
    }
    resp
}

/// The router's fallback: the console for browser paths, the API's 404/405 otherwise.
pub async fn serve(req: Request) -> Response {
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    serve_from(&Source::current(), req.method(), req.uri().path(), accept)
}

fn not_found() -> Response {
    ApiError(error_for_status(StatusCode::NOT_FOUND)).into_response()
}

fn serve_from(src: &Source, method: &Method, path: &str, accept: &str) -> Response {
    // Only reads are ever the console; anything else here is the API's 404, as before.
    if is_api_path(path) || (method != Method::GET && method != Method::HEAD) {
        return not_found();
    }
    let rel = path.trim_start_matches('/');
    if rel.starts_with("assets/") {
        // Hashed names: a missing one is an error, never the page.
        return match src.get(rel) {
            Some(b) => respond(b, content_type(rel), "public, max-age=31536000, immutable"),
            None => not_found(),
        };
    }
    if !rel.is_empty() && rel != "index.html" {
        if let Some(b) = src.get(rel) {
            return respond(b, content_type(rel), "public, max-age=3600");
        }
        // Other paths are the console's own routes when a browser navigates to them; API
        // clients (which do not ask for HTML) keep the JSON 404.
        if !accept.contains("text/html") {
            return not_found();
        }
    }
    match src.get("index.html") {
        Some(b) => respond(b, "text/html; charset=utf-8", "no-cache"),
        None => respond(
            Cow::Borrowed(NOT_BUILT.as_bytes()),
            "text/html; charset=utf-8",
            "no-cache",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_paths_are_never_the_console() {
        for p in [
            "/v1",
            "/v1/",
            "/v1/no-such-thing",
            "/healthz",
            "/readyz",
            "/metrics",
        ] {
            assert!(is_api_path(p), "{p}");
        }
        for p in [
            "/",
            "/login",
            "/dept/instances",
            "/v1x",
            "/assets/index-abc.js",
        ] {
            assert!(!is_api_path(p), "{p}");
        }
    }

    #[test]
    fn content_types_follow_extensions() {
        assert_eq!(
            content_type("assets/a-1.js"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type("assets/a-1.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("x"), "application/octet-stream");
    }

    fn header(r: &Response, name: header::HeaderName) -> &str {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    #[test]
    fn the_console_is_served_with_fallback_and_cache_headers() {
        let dir = std::env::temp_dir().join(format!("zy-web-test-{}", std::process::id()));
        let _ = std::fs::create_dir_all(dir.join("assets"));
        let _ = std::fs::write(dir.join("index.html"), "<!doctype html><title>t</title>");
        let _ = std::fs::write(dir.join("assets/app-1a2b3c4d.js"), "export {}");
        let _ = std::fs::write(dir.join("favicon.svg"), "<svg/>");
        let src = Source::Dir(dir.clone());
        let html = "text/html,application/xhtml+xml";

        let r = serve_from(&src, &Method::GET, "/assets/app-1a2b3c4d.js", "*/*");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            header(&r, header::CONTENT_TYPE),
            "text/javascript; charset=utf-8"
        );
        assert!(header(&r, header::CACHE_CONTROL).contains("immutable"));

        for path in [
            "/",
            "/portal/instances",
            "/portal/instances/0190a000-0000-7000-8000-000000000000",
        ] {
            let r = serve_from(&src, &Method::GET, path, html);
            assert_eq!(r.status(), StatusCode::OK, "{path}");
            assert_eq!(header(&r, header::CONTENT_TYPE), "text/html; charset=utf-8");
            assert_eq!(header(&r, header::CACHE_CONTROL), "no-cache");
            assert!(!header(&r, header::CONTENT_SECURITY_POLICY).is_empty());
        }
        assert_eq!(
            serve_from(&src, &Method::GET, "/favicon.svg", "*/*").status(),
            StatusCode::OK
        );

        // Never the page for the API, a missing hashed asset, a non-browser client or a change.
        for (method, path, accept) in [
            (Method::GET, "/v1/no-such-thing", html),
            (Method::GET, "/assets/gone-00000000.js", html),
            (Method::GET, "/etc/passwd", "*/*"),
            (Method::GET, "/assets/../index.html", html),
        ] {
            assert_eq!(
                serve_from(&src, &method, path, accept).status(),
                StatusCode::NOT_FOUND,
                "{path}"
            );
        }
        assert_eq!(
            serve_from(&src, &Method::POST, "/portal", html).status(),
            StatusCode::NOT_FOUND
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn without_a_built_console_the_root_explains_how_to_build_it() {
        let src = Source::Embedded(&[]);
        let r = serve_from(&src, &Method::GET, "/", "*/*");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header(&r, header::CONTENT_TYPE), "text/html; charset=utf-8");
    }
}
