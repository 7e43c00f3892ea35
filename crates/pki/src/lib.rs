//! The platform's own certificate authorities for mutual TLS between the control plane
//! and host agents (MLPS level 3 asks for mutual authentication on management channels).
//!
//! Two roots, so that one kind of certificate can never stand in for the other:
//! - the **agent CA** signs each agent's serving certificate at join, with the single name
//!   [`agent_dns_name`] of its host id; the control plane trusts only this root when it
//!   calls an agent and checks that name, so agent A cannot answer for host B;
//! - the **client CA** signs the control plane's client certificate; agents accept only
//!   clients under this root, so an agent's certificate cannot drive another agent.
//!
//! Private keys are ECDSA P-256, generated where they are used: an agent sends a CSR and
//! its key never leaves the host.

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("certificate error: {0}")]
    Cert(#[from] rcgen::Error),
    #[error("TLS configuration error: {0}")]
    Tls(#[from] rustls::Error),
    #[error("client verifier error: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("bad PEM: {0}")]
    Pem(String),
}

/// A certificate with its private key, both PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct Identity {
    pub cert_pem: String,
    pub key_pem: String,
}

/// Never prints the key.
impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// The one DNS name in an agent's certificate, and the name the control plane dials.
pub fn agent_dns_name(host_id: &str) -> String {
    format!("{host_id}.agents.zhengyun.internal")
}

fn validity(params: &mut CertificateParams, days: i64) {
    let now = OffsetDateTime::now_utc();
    // An hour of slack for hosts whose clocks run a little behind.
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(days);
}

/// Creates a self-signed root for `purpose` (`agents` or `clients`), valid 20 years.
pub fn new_ca(common_name: &str) -> Result<Identity, PkiError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "zhengyun");
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    validity(&mut params, 365 * 20);
    let cert = params.self_signed(&key)?;
    Ok(Identity {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Rebuilds the issuer from a stored root (the signature of the rebuilt root differs, but
/// its name and key — all that signing needs — are the same).
fn issuer(ca: &Identity) -> Result<(rcgen::Certificate, KeyPair), PkiError> {
    let key = KeyPair::from_pem(&ca.key_pem)?;
    let params = CertificateParams::from_ca_cert_pem(&ca.cert_pem)?;
    let cert = params.self_signed(&key)?;
    Ok((cert, key))
}

/// A new key and a CSR for it (made by the agent; the key stays on the host).
pub fn new_csr(common_name: &str) -> Result<(String, String), PkiError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    let csr = params.serialize_request(&key)?;
    Ok((csr.pem()?, key.serialize_pem()))
}

/// Signs an agent's CSR as a serving certificate for `host_id`, valid `days`. Whatever
/// names the CSR asks for are replaced: the agent gets exactly its host's name.
pub fn sign_agent_csr(
    ca: &Identity,
    csr_pem: &str,
    host_id: &str,
    days: i64,
) -> Result<String, PkiError> {
    let (ca_cert, ca_key) = issuer(ca)?;
    let mut csr = CertificateSigningRequestParams::from_pem(csr_pem)?;
    let name = agent_dns_name(host_id);
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "zhengyun");
    dn.push(DnType::CommonName, name.clone());
    csr.params.distinguished_name = dn;
    csr.params.subject_alt_names = vec![SanType::DnsName(name.try_into()?)];
    csr.params.is_ca = IsCa::ExplicitNoCa;
    csr.params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    csr.params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    validity(&mut csr.params, days);
    Ok(csr.signed_by(&ca_cert, &ca_key)?.pem())
}

/// Issues the control plane's client certificate under the client CA.
pub fn new_client_identity(ca: &Identity, common_name: &str) -> Result<Identity, PkiError> {
    let (ca_cert, ca_key) = issuer(ca)?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "zhengyun");
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    validity(&mut params, 365 * 5);
    let cert = params.signed_by(&key, &ca_cert, &ca_key)?;
    Ok(Identity {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

fn certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PkiError::Pem(e.to_string()))?;
    if certs.is_empty() {
        return Err(PkiError::Pem("no certificate found".into()));
    }
    Ok(certs)
}

fn key(pem: &str) -> Result<PrivateKeyDer<'static>, PkiError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| PkiError::Pem(e.to_string()))
}

fn roots(ca_pem: &str) -> Result<rustls::RootCertStore, PkiError> {
    let mut roots = rustls::RootCertStore::empty();
    for c in certs(ca_pem)? {
        roots.add(c)?;
    }
    Ok(roots)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The agent's TLS server: its own certificate, and only clients under the client CA.
pub fn agent_server_config(
    me: &Identity,
    client_ca_pem: &str,
) -> Result<rustls::ServerConfig, PkiError> {
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots(client_ca_pem)?),
        provider(),
    )
    .build()?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs(&me.cert_pem)?, key(&me.key_pem)?)?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// The control plane's TLS client: presents its client certificate and trusts only agents
/// under the agent CA (the caller dials [`agent_dns_name`], so the name is checked too).
pub fn control_plane_client_config(
    me: &Identity,
    agent_ca_pem: &str,
) -> Result<rustls::ClientConfig, PkiError> {
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots(agent_ca_pem)?)
        .with_client_auth_cert(certs(&me.cert_pem)?, key(&me.key_pem)?)?)
}

/// When a PEM certificate stops being valid (Unix seconds), if it parses.
pub fn not_after(cert_pem: &str) -> Option<i64> {
    let params = CertificateParams::from_ca_cert_pem(cert_pem).ok()?;
    Some(params.not_after.unix_timestamp())
}

#[cfg(test)]
mod tests;
