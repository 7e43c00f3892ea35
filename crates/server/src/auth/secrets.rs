//! Random secrets and their stored form. Session and token secrets are 256-bit random
//! strings with a recognisable prefix; only their SHA-256 is stored, so a database leak
//! does not leak credentials, and checking one costs a hash, not a password hash.

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

pub const SESSION_PREFIX: &str = "zys_";
pub const TOKEN_PREFIX: &str = "zyt_";

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b
}

pub fn random_string(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>())
    )
}

pub fn sha256_hex(s: &str) -> String {
    zy_model::audit::hex(&Sha256::digest(s.as_bytes()))
}

/// A one-time password that meets any sensible policy: 16 characters from four classes.
pub fn one_time_password() -> String {
    const LOWER: &[u8] = b"abcdefghijkmnpqrstuvwxyz";
    const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
    const DIGIT: &[u8] = b"23456789";
    const SYMBOL: &[u8] = b"-_.+!@#%";
    let bytes = random_bytes::<16>();
    let sets = [LOWER, UPPER, DIGIT, SYMBOL];
    bytes
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let set = sets[if i < 4 { i } else { (*b as usize / 7) % 3 }];
            set[*b as usize % set.len()] as char
        })
        .collect()
}

/// Recovery codes for the second factor: ten of `xxxx-xxxx`.
pub fn recovery_codes() -> Vec<String> {
    const A: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    (0..10)
        .map(|_| {
            let b = random_bytes::<8>();
            let s: String = b.iter().map(|x| A[*x as usize % A.len()] as char).collect();
            format!("{}-{}", &s[..4], &s[4..])
        })
        .collect()
}

/// Compares two secrets in time independent of where they differ.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_time_passwords_pass_the_default_policy() {
        let policy = zy_model::security::SecuritySettings::default();
        for _ in 0..200 {
            let p = one_time_password();
            assert!(policy.check_password(&p, "admin").is_ok(), "{p}");
        }
    }

    #[test]
    fn secrets_are_unique_and_prefixed() {
        let a = random_string(TOKEN_PREFIX);
        let b = random_string(TOKEN_PREFIX);
        assert_ne!(a, b);
        assert!(a.starts_with("zyt_") && a.len() > 40);
        assert!(constant_time_eq(&a, &a.clone()));
        assert!(!constant_time_eq(&a, &b));
    }
}
