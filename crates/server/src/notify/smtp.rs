//! A small SMTP client over tokio (RFC 5321), enough to hand a notice to the platform's
//! relay: EHLO, optional STARTTLS (rustls, the system's roots), optional AUTH PLAIN, one
//! recipient, a MIME text/plain UTF-8 message (RFC 2047 encoded subject, base64 body).
//! Our own rather than a mail crate: this is all we send, and it adds no dependency the
//! tree does not already have. Every read and write has a deadline.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Longest wait for one step of the dialogue.
const STEP_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest reply line and reply (lines) we accept from a relay.
const MAX_LINE: usize = 4096;
const MAX_LINES: usize = 64;

/// Where and how to send.
#[derive(Clone)]
pub struct Relay {
    pub host: String,
    pub port: u16,
    pub starttls: bool,
    /// User name and password for AUTH PLAIN.
    pub credentials: Option<(String, String)>,
    /// CA certificates trusted for STARTTLS besides the system's roots (an internal CA).
    pub extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        f.debug_struct("Relay")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("starttls", &self.starttls)
            .field("user", &self.credentials.as_ref().map(|c| &c.0))
            .finish()
    }
}

/// One message to one recipient.
#[derive(Debug, Clone)]
pub struct Mail {
    pub from: String,
    pub to: String,
    pub subject: String,
    pub body: String,
}

/// Why a send failed, and whether trying again later may help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpError {
    /// Network trouble or a 4xx reply: try again later. A 5xx reply is permanent.
    pub transient: bool,
    /// The reply code, when the relay answered.
    pub code: Option<u16>,
    pub message: String,
}

impl SmtpError {
    fn io(what: &str, e: impl std::fmt::Display) -> SmtpError {
        SmtpError {
            transient: true,
            code: None,
            message: format!("{what}: {e}"),
        }
    }
    fn permanent(message: String) -> SmtpError {
        SmtpError {
            transient: false,
            code: None,
            message,
        }
    }
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

struct Conn {
    io: BufReader<Box<dyn Stream>>,
}

impl Conn {
    async fn reply(&mut self) -> Result<(u16, String), SmtpError> {
        let mut text = String::new();
        for _ in 0..MAX_LINES {
            let mut line = Vec::new();
            let n = tokio::time::timeout(STEP_TIMEOUT, async {
                let mut limited = (&mut self.io).take(MAX_LINE as u64);
                limited.read_until(b'\n', &mut line).await
            })
            .await
            .map_err(|_| SmtpError::io("reading the reply", "timed out"))?
            .map_err(|e| SmtpError::io("reading the reply", e))?;
            if n == 0 {
                return Err(SmtpError::io("reading the reply", "connection closed"));
            }
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end();
            let code = line
                .get(..3)
                .and_then(|c| c.parse::<u16>().ok())
                .filter(|c| (200..600).contains(c))
                .ok_or_else(|| {
                    SmtpError::io("reading the reply", format!("not SMTP: {:.80}", line))
                })?;
            text.push_str(line.get(4..).unwrap_or(""));
            text.push('\n');
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok((code, text));
            }
        }
        Err(SmtpError::io("reading the reply", "too many lines"))
    }

    async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), SmtpError> {
        tokio::time::timeout(STEP_TIMEOUT, async {
            self.io.get_mut().write_all(bytes).await?;
            self.io.get_mut().flush().await
        })
        .await
        .map_err(|_| SmtpError::io("writing", "timed out"))?
        .map_err(|e| SmtpError::io("writing", e))
    }

    /// Sends a command and expects one of `ok` codes.
    async fn command(&mut self, line: &str, ok: &[u16]) -> Result<String, SmtpError> {
        self.send_raw(format!("{line}\r\n").as_bytes()).await?;
        self.expect(ok, line.split(' ').next().unwrap_or("")).await
    }

    async fn expect(&mut self, ok: &[u16], what: &str) -> Result<String, SmtpError> {
        let (code, text) = self.reply().await?;
        if ok.contains(&code) {
            return Ok(text);
        }
        Err(SmtpError {
            transient: (400..500).contains(&code),
            code: Some(code),
            message: format!("{what}: {code} {}", text.trim()),
        })
    }
}

/// Sends `mail` through `relay`.
pub async fn send(relay: &Relay, mail: &Mail) -> Result<(), SmtpError> {
    for addr in [&mail.from, &mail.to] {
        check_address(addr)?;
    }
    let tcp = tokio::time::timeout(
        STEP_TIMEOUT,
        TcpStream::connect((relay.host.as_str(), relay.port)),
    )
    .await
    .map_err(|_| SmtpError::io("connecting", "timed out"))?
    .map_err(|e| SmtpError::io("connecting", e))?;
    let mut c = Conn {
        io: BufReader::new(Box::new(tcp)),
    };
    c.expect(&[220], "greeting").await?;
    let mut caps = c.command("EHLO zhengyun", &[250]).await?;
    if relay.starttls {
        if !has_capability(&caps, "STARTTLS") {
            return Err(SmtpError::permanent(
                "the relay does not offer STARTTLS, which the mail settings require".into(),
            ));
        }
        c.command("STARTTLS", &[220]).await?;
        c = starttls(c, relay).await?;
        caps = c.command("EHLO zhengyun", &[250]).await?;
    }
    if let Some((user, pass)) = &relay.credentials {
        if !has_capability(&caps, "AUTH") {
            return Err(SmtpError::permanent(
                "the relay does not offer AUTH; remove the credentials or use STARTTLS".into(),
            ));
        }
        let token = STANDARD.encode(format!("\0{user}\0{pass}"));
        c.command(&format!("AUTH PLAIN {token}"), &[235])
            .await
            .map_err(|mut e| {
                // The command carried the credentials: never echo it.
                e.message = format!(
                    "AUTH: {}",
                    e.code.map(|c| c.to_string()).unwrap_or_default()
                );
                e
            })?;
    }
    c.command(&format!("MAIL FROM:<{}>", mail.from), &[250])
        .await?;
    c.command(&format!("RCPT TO:<{}>", mail.to), &[250, 251])
        .await?;
    c.command("DATA", &[354]).await?;
    c.send_raw(message(mail).as_bytes()).await?;
    c.expect(&[250], "DATA").await?;
    // The mail is accepted; a failed QUIT changes nothing.
    let _ = c.command("QUIT", &[221]).await;
    Ok(())
}

fn has_capability(ehlo: &str, cap: &str) -> bool {
    ehlo.lines().any(|l| {
        l.split_whitespace()
            .next()
            .is_some_and(|w| w.eq_ignore_ascii_case(cap))
    })
}

async fn starttls(c: Conn, relay: &Relay) -> Result<Conn, SmtpError> {
    let host = relay.host.as_str();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    for cert in &relay.extra_roots {
        roots
            .add(cert.clone())
            .map_err(|e| SmtpError::permanent(format!("the relay's CA certificate: {e}")))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| SmtpError::permanent(format!("TLS: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| SmtpError::permanent(format!("TLS server name {host}: {e}")))?;
    // Nothing may be buffered past the 220 (a relay that pipelines it is broken).
    if !c.io.buffer().is_empty() {
        return Err(SmtpError::permanent(
            "the relay sent data before the TLS handshake".into(),
        ));
    }
    let plain = c.io.into_inner();
    let tls = tokio::time::timeout(
        STEP_TIMEOUT,
        tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, plain),
    )
    .await
    .map_err(|_| SmtpError::io("TLS handshake", "timed out"))?
    .map_err(|e| SmtpError::io("TLS handshake", e))?;
    Ok(Conn {
        io: BufReader::new(Box::new(tls)),
    })
}

/// An address we put in an envelope or header: no spaces, brackets or control characters
/// (they would change the command), one `@`.
pub fn check_address(a: &str) -> Result<(), SmtpError> {
    let ok = a.len() <= 254
        && a.matches('@').count() == 1
        && !a.starts_with('@')
        && !a.ends_with('@')
        && a.chars()
            .all(|c| !c.is_control() && !c.is_whitespace() && !"<>()[],;:\\\"".contains(c));
    if ok {
        Ok(())
    } else {
        Err(SmtpError::permanent(format!(
            "not a usable e-mail address: {:?}",
            a.chars().take(80).collect::<String>()
        )))
    }
}

/// The message as sent after DATA, ending with the lone dot.
pub fn message(mail: &Mail) -> String {
    let mut m = String::new();
    m.push_str(&format!(
        "From: {} <{}>\r\n",
        encode_word("政云 zhengyun"),
        mail.from
    ));
    m.push_str(&format!("To: <{}>\r\n", mail.to));
    m.push_str(&format!("Subject: {}\r\n", encode_subject(&mail.subject)));
    m.push_str(&format!("Date: {}\r\n", chrono::Utc::now().to_rfc2822()));
    m.push_str(&format!(
        "Message-ID: <{}@zhengyun>\r\n",
        uuid::Uuid::now_v7().simple()
    ));
    m.push_str("MIME-Version: 1.0\r\n");
    m.push_str("Content-Type: text/plain; charset=UTF-8\r\n");
    m.push_str("Content-Transfer-Encoding: base64\r\n\r\n");
    let body = mail.body.replace("\r\n", "\n").replace('\n', "\r\n");
    let b64 = STANDARD.encode(body.as_bytes());
    // Base64 lines never start with '.', so no dot-stuffing is needed.
    for chunk in b64.as_bytes().chunks(76) {
        m.push_str(&String::from_utf8_lossy(chunk));
        m.push_str("\r\n");
    }
    m.push_str(".\r\n");
    m
}

fn encode_word(s: &str) -> String {
    format!("=?UTF-8?B?{}?=", STANDARD.encode(s.as_bytes()))
}

/// RFC 2047: the subject as UTF-8 base64 encoded words of at most 75 characters each
/// (whole characters per word), folded onto continuation lines.
pub fn encode_subject(subject: &str) -> String {
    let one_line: String = subject
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if one_line.is_empty() {
        return String::new();
    }
    // "=?UTF-8?B?" + "?=" is 12 characters; 75 - 12 = 63 → 45 bytes of input (60 base64).
    const MAX_BYTES: usize = 45;
    let mut words = Vec::new();
    let mut cur = String::new();
    for ch in one_line.chars() {
        if cur.len() + ch.len_utf8() > MAX_BYTES {
            words.push(encode_word(&cur));
            cur.clear();
        }
        cur.push(ch);
    }
    if !cur.is_empty() {
        words.push(encode_word(&cur));
    }
    words.join("\r\n ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_subject(s: &str) -> String {
        let mut out = Vec::new();
        for w in s.split("\r\n ") {
            let inner = w
                .strip_prefix("=?UTF-8?B?")
                .and_then(|w| w.strip_suffix("?="))
                .unwrap_or("");
            out.extend(STANDARD.decode(inner).unwrap_or_default());
        }
        String::from_utf8(out).unwrap_or_default()
    }

    #[test]
    fn addresses_that_would_change_the_command_are_refused() {
        assert!(check_address("zhang.san@wjw.gov.cn").is_ok());
        for bad in [
            "a@b>\r\nRCPT TO:<x@y",
            "a b@c",
            "no-at",
            "@x",
            "x@",
            "a@b@c",
            "<a@b>",
        ] {
            assert!(check_address(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_message_is_mime_with_an_encoded_subject_and_a_base64_body() {
        let m = message(&Mail {
            from: "noreply@zhengyun.local".into(),
            to: "li@wjw.gov.cn".into(),
            subject: "待审批：卫健委 申请 10 台云主机".into(),
            body: "第一行\n.\n第三行".into(),
        });
        assert!(m.contains("Content-Type: text/plain; charset=UTF-8\r\n"));
        assert!(m.ends_with("\r\n.\r\n"));
        let body_lines: Vec<&str> = m.split("\r\n\r\n").nth(1).unwrap_or("").lines().collect();
        assert!(body_lines.iter().all(|l| l.len() <= 76));
        assert_eq!(
            m.lines().filter(|l| *l == ".").count(),
            1,
            "only the terminating dot stands alone"
        );
    }

    proptest! {
        #[test]
        fn subjects_round_trip_in_short_words(s in "\\PC{0,120}") {
            let enc = encode_subject(&s);
            for w in enc.split("\r\n ") {
                prop_assert!(w.len() <= 75, "{w}");
                prop_assert!(w.is_ascii());
            }
            prop_assert_eq!(decode_subject(&enc), s);
        }
    }
}
