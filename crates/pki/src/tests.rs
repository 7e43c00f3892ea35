// Tests: a panic is the failure report.
#![allow(clippy::unwrap_used)]
use super::*;
use rustls::pki_types::ServerName;

/// Runs a TLS handshake in memory; Ok when both sides accept each other.
fn handshake(
    client: rustls::ClientConfig,
    server: rustls::ServerConfig,
    name: &str,
) -> Result<(), String> {
    let name = ServerName::try_from(name.to_string()).map_err(|e| e.to_string())?;
    let mut c = rustls::ClientConnection::new(Arc::new(client), name).map_err(|e| e.to_string())?;
    let mut s = rustls::ServerConnection::new(Arc::new(server)).map_err(|e| e.to_string())?;
    for _ in 0..20 {
        let mut buf = Vec::new();
        while c.wants_write() {
            c.write_tls(&mut buf).map_err(|e| e.to_string())?;
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            s.read_tls(&mut rd).map_err(|e| e.to_string())?;
        }
        s.process_new_packets()
            .map_err(|e| format!("server: {e}"))?;
        let mut buf = Vec::new();
        while s.wants_write() {
            s.write_tls(&mut buf).map_err(|e| e.to_string())?;
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            c.read_tls(&mut rd).map_err(|e| e.to_string())?;
        }
        c.process_new_packets()
            .map_err(|e| format!("client: {e}"))?;
        if !c.is_handshaking() && !s.is_handshaking() {
            return Ok(());
        }
    }
    Err("handshake did not finish".into())
}

struct World {
    agent_ca: Identity,
    client_ca: Identity,
    agent: Identity,
    control: Identity,
}

fn world(host: &str) -> World {
    let agent_ca = new_ca("zhengyun agent CA").unwrap();
    let client_ca = new_ca("zhengyun client CA").unwrap();
    let (csr, key_pem) = new_csr("agent").unwrap();
    let cert_pem = sign_agent_csr(&agent_ca, &csr, host, 365).unwrap();
    let control = new_client_identity(&client_ca, "zhengyun control plane").unwrap();
    World {
        agent_ca,
        client_ca,
        agent: Identity { cert_pem, key_pem },
        control,
    }
}

#[test]
fn control_plane_and_agent_accept_each_other() {
    let w = world("h1");
    let server = agent_server_config(&w.agent, &w.client_ca.cert_pem).unwrap();
    let client = control_plane_client_config(&w.control, &w.agent_ca.cert_pem).unwrap();
    handshake(client, server, &agent_dns_name("h1")).unwrap();
}

#[test]
fn an_agent_cannot_answer_for_another_host() {
    let w = world("h1");
    let server = agent_server_config(&w.agent, &w.client_ca.cert_pem).unwrap();
    let client = control_plane_client_config(&w.control, &w.agent_ca.cert_pem).unwrap();
    let err = handshake(client, server, &agent_dns_name("h2")).unwrap_err();
    assert!(err.contains("client"), "{err}");
}

#[test]
fn an_agent_certificate_cannot_drive_another_agent() {
    let w = world("h1");
    let server = agent_server_config(&w.agent, &w.client_ca.cert_pem).unwrap();
    // A client presenting an agent certificate (agent CA, not client CA) is refused.
    let client = control_plane_client_config(&w.agent, &w.agent_ca.cert_pem).unwrap();
    let err = handshake(client, server, &agent_dns_name("h1")).unwrap_err();
    assert!(err.contains("server"), "{err}");
}

#[test]
fn a_client_without_a_certificate_is_refused() {
    let w = world("h1");
    let server = agent_server_config(&w.agent, &w.client_ca.cert_pem).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots(&w.agent_ca.cert_pem).unwrap())
        .with_no_client_auth();
    assert!(handshake(client, server, &agent_dns_name("h1")).is_err());
}

#[test]
fn an_agent_signed_by_a_foreign_ca_is_refused() {
    let w = world("h1");
    let foreign = world("h1");
    let server = agent_server_config(&foreign.agent, &w.client_ca.cert_pem).unwrap();
    let client = control_plane_client_config(&w.control, &w.agent_ca.cert_pem).unwrap();
    assert!(handshake(client, server, &agent_dns_name("h1")).is_err());
}

#[test]
fn the_csr_cannot_choose_its_names() {
    let ca = new_ca("ca").unwrap();
    let (csr, _) = new_csr("evil").unwrap();
    let pem = sign_agent_csr(&ca, &csr, "h9", 30).unwrap();
    let params = CertificateParams::from_ca_cert_pem(&pem).unwrap();
    assert_eq!(
        params.subject_alt_names,
        vec![SanType::DnsName(agent_dns_name("h9").try_into().unwrap())]
    );
    assert!(sign_agent_csr(&ca, "not a csr", "h9", 30).is_err());
}

#[test]
fn identities_never_print_their_key() {
    let id = new_ca("ca").unwrap();
    assert!(!format!("{id:?}").contains("PRIVATE KEY"));
}
