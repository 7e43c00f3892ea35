//! Time-based one-time passwords (RFC 6238 over RFC 4226 HOTP, HMAC-SHA1, 6 digits,
//! 30-second steps), the second factor the three admin roles must use by default.

use hmac::{Hmac, Mac};
use sha1::Sha1;

pub const STEP_SECS: i64 = 30;
pub const DIGITS: u32 = 6;

/// HOTP value for a counter (RFC 4226 §5.3).
pub fn hotp(secret: &[u8], counter: u64) -> u32 {
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(secret) else {
        return 0;
    };
    mac.update(&counter.to_be_bytes());
    let d = mac.finalize().into_bytes();
    let off = (d[19] & 0x0f) as usize;
    let bin = ((d[off] as u32 & 0x7f) << 24)
        | ((d[off + 1] as u32) << 16)
        | ((d[off + 2] as u32) << 8)
        | d[off + 3] as u32;
    bin % 10u32.pow(DIGITS)
}

/// The code for a Unix time.
pub fn code_at(secret: &[u8], unix_secs: i64) -> String {
    format!("{:06}", hotp(secret, (unix_secs.max(0) / STEP_SECS) as u64))
}

/// Checks a code, allowing one step of clock drift either way. Returns the matching time
/// step, so the caller can refuse a step that was already used (no replay).
pub fn verify(secret: &[u8], code: &str, unix_secs: i64) -> Option<i64> {
    let code = code.trim();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let step = unix_secs.max(0) / STEP_SECS;
    (step - 1..=step + 1).find(|s| *s >= 0 && format!("{:06}", hotp(secret, *s as u64)) == code)
}

/// RFC 4648 base32 without padding, as authenticator apps expect.
pub fn base32(bytes: &[u8]) -> String {
    const A: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut buf, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buf = (buf << 8) | b as u32;
        bits += 8;
        while bits >= 5 {
            out.push(A[((buf >> (bits - 5)) & 31) as usize] as char);
            bits -= 5;
        }
    }
    if bits > 0 {
        out.push(A[((buf << (5 - bits)) & 31) as usize] as char);
    }
    out
}

pub fn base32_decode(s: &str) -> Option<Vec<u8>> {
    let (mut buf, mut bits, mut out) = (0u32, 0u32, Vec::new());
    for c in s.chars().filter(|c| *c != '=' && !c.is_whitespace()) {
        let v = match c.to_ascii_uppercase() {
            c @ 'A'..='Z' => c as u32 - 'A' as u32,
            c @ '2'..='7' => c as u32 - '2' as u32 + 26,
            _ => return None,
        };
        buf = (buf << 5) | v;
        bits += 5;
        if bits >= 8 {
            out.push((buf >> (bits - 8)) as u8);
            bits -= 8;
        }
    }
    Some(out)
}

/// The `otpauth://` URI an authenticator app reads from the enrolment QR code.
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    fn enc(s: &str) -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    }
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits=6&period=30",
        enc(issuer),
        enc(account),
        base32(secret),
        enc(issuer)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 6238 appendix B, SHA-1 rows (8 digits there; we compare the low 6).
    #[test]
    fn matches_rfc6238_test_vectors() {
        let secret = b"12345678901234567890";
        for (t, eight) in [
            (59, "94287082"),
            (1111111109, "07081804"),
            (1234567890, "89005924"),
            (2000000000, "69279037"),
        ] {
            assert_eq!(code_at(secret, t), eight[2..], "t={t}");
        }
    }

    #[test]
    fn allows_one_step_of_drift_only() {
        let secret = b"12345678901234567890";
        let code = code_at(secret, 1_000_000);
        assert!(verify(secret, &code, 1_000_000 + 30).is_some());
        assert!(verify(secret, &code, 1_000_000 + 95).is_none());
        assert!(verify(secret, "12a456", 1_000_000).is_none());
    }

    #[test]
    fn base32_round_trips() {
        let data = b"\x00\xffzhengyun secret";
        assert_eq!(base32_decode(&base32(data)).as_deref(), Some(&data[..]));
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
    }
}
