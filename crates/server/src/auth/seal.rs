//! Sealing secrets the server must read back (TOTP seeds): ChaCha20-Poly1305 with a 256-bit
//! key kept outside the database — a file in the data dir created at first start (mode
//! 0600), or one given with `--secret-key-file` (every replica must share it). A copy of
//! the database alone does not reveal anyone's second factor.

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use std::path::Path;
use zy_model::{t, Error};

const PREFIX: &str = "v1:";

pub struct Sealer {
    cipher: ChaCha20Poly1305,
}

impl Sealer {
    /// Reads the key file, creating it with a fresh random key if it does not exist.
    pub fn from_file(path: &Path) -> Result<Sealer, Error> {
        let unavailable = |e: std::io::Error| {
            Error::unavailable(t!(
                "无法读取或创建密钥文件",
                "cannot read or create the secret key file"
            ))
            .with_internal(format!("{}: {e}", path.display()))
        };
        let key = match std::fs::read(path) {
            Ok(k) => k,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let k = crate::auth::secrets::random_bytes::<32>().to_vec();
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(unavailable)?;
                }
                write_private(path, &k).map_err(unavailable)?;
                k
            }
            Err(e) => return Err(unavailable(e)),
        };
        if key.len() != 32 {
            return Err(Error::unavailable(t!(
                "密钥文件须为 32 字节",
                "the secret key file must hold 32 bytes"
            ))
            .with_internal(path.display().to_string()));
        }
        Ok(Sealer {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&key)),
        })
    }

    pub fn seal(&self, plain: &str) -> Result<String, Error> {
        let nonce_bytes = crate::auth::secrets::random_bytes::<12>();
        let ct = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce_bytes), plain.as_bytes())
            .map_err(|_| Error::internal("seal failed"))?;
        let mut blob = nonce_bytes.to_vec();
        blob.extend(ct);
        Ok(format!(
            "{PREFIX}{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(blob)
        ))
    }

    /// Opens a sealed value. Values stored before sealing existed are returned as they are.
    pub fn open(&self, stored: &str) -> Result<String, Error> {
        let Some(b64) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_string());
        };
        let bad = || {
            Error::internal("a sealed secret cannot be opened with this server's key (is --secret-key-file the same on every replica?)")
        };
        let blob = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(b64)
            .map_err(|_| bad())?;
        if blob.len() < 12 {
            return Err(bad());
        }
        let (nonce, ct) = blob.split_at(12);
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), ct)
            .map_err(|_| bad())?;
        String::from_utf8(plain).map_err(|_| bad())
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)?.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_the_same_key() {
        let dir = std::env::temp_dir().join(format!("zy-seal-{}", uuid::Uuid::new_v4().simple()));
        let a = Sealer::from_file(&dir.join("a.key")).expect("key a");
        let b = Sealer::from_file(&dir.join("b.key")).expect("key b");
        let sealed = a.seal("JBSWY3DPEHPK3PXP").expect("seal");
        assert!(sealed.starts_with("v1:") && !sealed.contains("JBSWY3DPEHPK3PXP"));
        assert_eq!(a.open(&sealed).ok().as_deref(), Some("JBSWY3DPEHPK3PXP"));
        assert!(b.open(&sealed).is_err());
        // The same file gives the same key on the next start.
        let again = Sealer::from_file(&dir.join("a.key")).expect("key a again");
        assert_eq!(
            again.open(&sealed).ok().as_deref(),
            Some("JBSWY3DPEHPK3PXP")
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
