//! The platform's certificate authorities, kept in the database (so every replica signs
//! and dials with the same ones) with their private keys sealed under the key file.
//! Created on first start.

use crate::auth::seal::Sealer;
use serde::{Deserialize, Serialize};
use zy_model::{t, Error};
use zy_pki::Identity;
use zy_store::Store;

const KEY: &str = "agent_pki";

#[derive(Serialize, Deserialize)]
struct Stored {
    agent_ca_cert: String,
    agent_ca_key_sealed: String,
    client_ca_cert: String,
    client_ca_key_sealed: String,
    control_cert: String,
    control_key_sealed: String,
}

/// What the control plane needs to admit and call agents.
pub struct Pki {
    pub agent_ca: Identity,
    pub client_ca_pem: String,
    pub tls: rustls::ClientConfig,
}

fn pki_err(e: zy_pki::PkiError) -> Error {
    Error::internal(format!("pki: {e}"))
}

impl Pki {
    pub async fn load_or_create(store: &Store, sealer: &Sealer) -> Result<Pki, Error> {
        if zy_store::settings::get::<Stored>(store.pool(), KEY)
            .await?
            .is_none()
        {
            let agent_ca = zy_pki::new_ca("zhengyun agent CA").map_err(pki_err)?;
            let client_ca = zy_pki::new_ca("zhengyun client CA").map_err(pki_err)?;
            let control = zy_pki::new_client_identity(&client_ca, "zhengyun control plane")
                .map_err(pki_err)?;
            let stored = Stored {
                agent_ca_cert: agent_ca.cert_pem,
                agent_ca_key_sealed: sealer.seal(&agent_ca.key_pem)?,
                client_ca_cert: client_ca.cert_pem,
                client_ca_key_sealed: sealer.seal(&client_ca.key_pem)?,
                control_cert: control.cert_pem,
                control_key_sealed: sealer.seal(&control.key_pem)?,
            };
            zy_store::settings::put_if_absent(store, KEY, &stored).await?;
        }
        let s: Stored = zy_store::settings::get(store.pool(), KEY)
            .await?
            .ok_or_else(|| Error::internal("pki settings vanished"))?;
        let open = |sealed: &str| {
            sealer.open(sealed).map_err(|e| {
                Error::unavailable(t!(
                    "无法解开平台证书私钥：密钥文件与数据库不匹配",
                    "cannot open the platform CA keys: the key file does not match the database"
                ))
                .with_internal(e.to_string())
            })
        };
        let agent_ca = Identity {
            cert_pem: s.agent_ca_cert,
            key_pem: open(&s.agent_ca_key_sealed)?,
        };
        let control = Identity {
            cert_pem: s.control_cert,
            key_pem: open(&s.control_key_sealed)?,
        };
        let tls =
            zy_pki::control_plane_client_config(&control, &agent_ca.cert_pem).map_err(pki_err)?;
        Ok(Pki {
            agent_ca,
            client_ca_pem: s.client_ca_cert,
            tls,
        })
    }
}
