//! The audit log's record and its hash chain. Each record carries SHA-256 over its own
//! content and the previous record's hash, so altering, inserting or deleting a record
//! breaks the chain at that record; [`verify`] finds the first such break.

use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The hash before the first record.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// How a recorded call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    /// Refused by authorisation.
    Denied,
    /// Refused for any other reason (validation, conflict, wrong password…).
    Failure,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Denied => "denied",
            Outcome::Failure => "failure",
        }
    }
    pub fn parse(s: &str) -> Option<Outcome> {
        match s {
            "success" => Some(Outcome::Success),
            "denied" => Some(Outcome::Denied),
            "failure" => Some(Outcome::Failure),
            _ => None,
        }
    }
}

/// What is recorded about one call, before it gets its place in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub at: Timestamp,
    pub actor_id: Option<String>,
    pub actor_name: String,
    /// The actor's roles, comma-separated (e.g. `dept_admin@<department>`).
    pub actor_roles: String,
    pub source_ip: String,
    /// The operation, e.g. `create_department`, `login`.
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    pub outcome: Outcome,
    pub request_id: String,
    /// A short JSON object: the error code on failure, changed fields on success.
    pub detail: String,
}

/// A record as stored: the entry, its sequence number and its place in the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AuditRecord {
    pub seq: i64,
    pub at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor_id: Option<String>,
    pub actor_name: String,
    pub actor_roles: String,
    pub source_ip: String,
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    pub outcome: Outcome,
    pub request_id: String,
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditRecord {
    pub fn chain(seq: i64, prev_hash: String, e: AuditEntry) -> AuditRecord {
        let mut r = AuditRecord {
            seq,
            at: e.at,
            actor_id: e.actor_id,
            actor_name: e.actor_name,
            actor_roles: e.actor_roles,
            source_ip: e.source_ip,
            action: e.action,
            target_type: e.target_type,
            target_id: e.target_id,
            outcome: e.outcome,
            request_id: e.request_id,
            detail: e.detail,
            prev_hash,
            hash: String::new(),
        };
        r.hash = r.compute_hash();
        r
    }

    /// SHA-256 over the previous hash and a canonical JSON array of every field, so no
    /// two different records share an encoding.
    pub fn compute_hash(&self) -> String {
        let canonical = serde_json::json!([
            self.seq,
            self.at.0,
            self.actor_id,
            self.actor_name,
            self.actor_roles,
            self.source_ip,
            self.action,
            self.target_type,
            self.target_id,
            self.outcome.as_str(),
            self.request_id,
            self.detail,
        ]);
        let mut h = Sha256::new();
        h.update(self.prev_hash.as_bytes());
        h.update(b"\n");
        h.update(canonical.to_string().as_bytes());
        hex(&h.finalize())
    }
}

pub fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

/// What is wrong at a point of the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Tamper {
    /// The record's content no longer matches its hash.
    Altered,
    /// The record does not belong where it stands (duplicate or out-of-order sequence).
    Inserted,
    /// Records before this one are missing.
    Deleted,
    /// The chain's recorded head does not match its last record (records cut off the end).
    Truncated,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TamperFinding {
    /// Sequence number of the first record found wrong.
    pub seq: i64,
    pub kind: Tamper,
    pub message: String,
}

/// Walks the records (in stored order by sequence) and reports the first break, if any.
/// `head` is the chain head the database keeps beside the log: `(last seq, last hash)`.
pub struct Verifier {
    expected_seq: i64,
    prev_hash: String,
    /// A `(seq, hash)` recorded earlier outside the database (an anchor): the chain must
    /// still pass through it, which catches a log rewritten and rehashed as a whole.
    anchor: Option<(i64, String)>,
    pub checked: u64,
    pub finding: Option<TamperFinding>,
}

impl Default for Verifier {
    fn default() -> Self {
        Self::new()
    }
}

impl Verifier {
    pub fn new() -> Self {
        Self::starting_at(1, GENESIS_HASH.to_string())
    }

    /// A verifier for a log whose older records were purged: it starts at `first_seq`,
    /// whose record must link to `prev_hash`.
    pub fn starting_at(first_seq: i64, prev_hash: String) -> Self {
        Verifier {
            expected_seq: first_seq,
            prev_hash,
            anchor: None,
            checked: 0,
            finding: None,
        }
    }

    /// Also checks that record `seq` still has `hash`.
    pub fn with_anchor(mut self, seq: i64, hash: String) -> Self {
        self.anchor = Some((seq, hash));
        self
    }

    /// Feeds the next record; returns false once a break is found (stop feeding).
    pub fn feed(&mut self, r: &AuditRecord) -> bool {
        if self.finding.is_some() {
            return false;
        }
        self.checked += 1;
        let finding = if r.seq < self.expected_seq {
            Some((
                Tamper::Inserted,
                format!(
                    "record {} repeats or precedes an earlier sequence number",
                    r.seq
                ),
            ))
        } else if r.seq > self.expected_seq {
            Some((
                Tamper::Deleted,
                format!(
                    "records {}..{} are missing before record {}",
                    self.expected_seq,
                    r.seq - 1,
                    r.seq
                ),
            ))
        } else if r.compute_hash() != r.hash {
            Some((
                Tamper::Altered,
                format!("record {}'s content does not match its hash", r.seq),
            ))
        } else if r.prev_hash != self.prev_hash {
            // The record itself is intact, so the break is before it: either it was
            // inserted with a made-up link, or its predecessor was rewritten and rehashed.
            if r.seq > 1 {
                let seq = r.seq - 1;
                self.finding = Some(TamperFinding {
                    seq,
                    kind: Tamper::Altered,
                    message: format!(
                        "record {seq} was rewritten: record {} no longer links to it",
                        r.seq
                    ),
                });
                return false;
            }
            Some((
                Tamper::Inserted,
                format!("record {} does not link to the start of the log", r.seq),
            ))
        } else {
            None
        };
        if let Some((kind, message)) = finding {
            self.finding = Some(TamperFinding {
                seq: r.seq,
                kind,
                message,
            });
            return false;
        }
        if let Some((seq, hash)) = &self.anchor {
            if *seq == r.seq && *hash != r.hash {
                self.finding = Some(TamperFinding {
                    seq: r.seq,
                    kind: Tamper::Altered,
                    message: format!("record {} no longer matches the anchor recorded earlier: the log was rewritten up to here", r.seq),
                });
                return false;
            }
        }
        self.expected_seq = r.seq + 1;
        self.prev_hash = r.hash.clone();
        true
    }

    /// Compares the end of the walk with the database's chain head.
    pub fn finish(&mut self, head: Option<(i64, String)>) {
        if self.finding.is_some() {
            return;
        }
        let last_seq = self.expected_seq - 1;
        if let Some((seq, _)) = &self.anchor {
            if *seq > last_seq {
                self.finding = Some(TamperFinding {
                    seq: last_seq + 1,
                    kind: Tamper::Truncated,
                    message: format!(
                        "the anchor names record {seq} but the log ends at {last_seq}"
                    ),
                });
                return;
            }
        }
        let (head_seq, head_hash) = head.unwrap_or((0, GENESIS_HASH.to_string()));
        if head_seq != last_seq || head_hash != self.prev_hash {
            self.finding = Some(TamperFinding {
                seq: last_seq + 1,
                kind: Tamper::Truncated,
                message: format!("the log ends at record {last_seq} but its head says {head_seq}: records were removed from the end"),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: i64) -> AuditEntry {
        AuditEntry {
            at: Timestamp(1_700_000_000_000_000 + i),
            actor_id: None,
            actor_name: "admin".into(),
            actor_roles: "platform_admin".into(),
            source_ip: "127.0.0.1".into(),
            action: "create_department".into(),
            target_type: "department".into(),
            target_id: format!("d{i}"),
            outcome: Outcome::Success,
            request_id: format!("r{i}"),
            detail: "{}".into(),
        }
    }

    fn chain(n: i64) -> Vec<AuditRecord> {
        let mut prev = GENESIS_HASH.to_string();
        (1..=n)
            .map(|i| {
                let r = AuditRecord::chain(i, prev.clone(), entry(i));
                prev = r.hash.clone();
                r
            })
            .collect()
    }

    fn verify(rs: &[AuditRecord], head: Option<(i64, String)>) -> Option<TamperFinding> {
        let mut v = Verifier::new();
        for r in rs {
            if !v.feed(r) {
                break;
            }
        }
        v.finish(head);
        v.finding
    }

    fn head(rs: &[AuditRecord]) -> Option<(i64, String)> {
        rs.last().map(|r| (r.seq, r.hash.clone()))
    }

    #[test]
    fn an_intact_chain_verifies() {
        let rs = chain(10);
        assert_eq!(verify(&rs, head(&rs)), None);
        assert_eq!(verify(&[], None), None);
    }

    #[test]
    fn an_altered_record_is_named() {
        let mut rs = chain(10);
        let h = head(&rs);
        rs[4].actor_name = "someone else".into();
        let f = verify(&rs, h).map(|f| (f.seq, f.kind));
        assert_eq!(f, Some((5, Tamper::Altered)));
    }

    #[test]
    fn an_altered_and_rehashed_record_is_named() {
        let mut rs = chain(10);
        let h = head(&rs);
        rs[4].outcome = Outcome::Failure;
        rs[4].hash = rs[4].compute_hash();
        assert_eq!(
            verify(&rs, h).map(|f| (f.seq, f.kind)),
            Some((5, Tamper::Altered))
        );
    }

    #[test]
    fn a_deleted_record_is_named() {
        let mut rs = chain(10);
        let h = head(&rs);
        rs.remove(6);
        assert_eq!(
            verify(&rs, h).map(|f| (f.seq, f.kind)),
            Some((8, Tamper::Deleted))
        );
    }

    #[test]
    fn an_inserted_record_is_named() {
        let mut rs = chain(10);
        let h = head(&rs);
        let fake = AuditRecord::chain(3, rs[1].hash.clone(), entry(99));
        rs.insert(3, fake);
        assert_eq!(
            verify(&rs, h).map(|f| (f.seq, f.kind)),
            Some((3, Tamper::Inserted))
        );
    }

    #[test]
    fn a_log_rewritten_as_a_whole_fails_against_an_earlier_anchor() {
        let rs = chain(10);
        let anchor = (6, rs[5].hash.clone());
        // Rewrite record 3 and rehash everything after it: the chain alone is consistent…
        let mut forged = rs.clone();
        forged[2].actor_name = "someone else".into();
        let mut prev = forged[1].hash.clone();
        for r in forged.iter_mut().skip(2) {
            r.prev_hash = prev.clone();
            r.hash = r.compute_hash();
            prev = r.hash.clone();
        }
        assert_eq!(verify(&forged, head(&forged)), None);
        // …but not with the anchor the auditor wrote down before.
        let mut v = Verifier::new().with_anchor(anchor.0, anchor.1.clone());
        for r in &forged {
            if !v.feed(r) {
                break;
            }
        }
        v.finish(head(&forged));
        assert_eq!(
            v.finding.map(|f| (f.seq, f.kind)),
            Some((6, Tamper::Altered))
        );
        let mut ok = Verifier::new().with_anchor(anchor.0, anchor.1);
        rs.iter().for_each(|r| {
            ok.feed(r);
        });
        ok.finish(head(&rs));
        assert_eq!(ok.finding, None);
    }

    #[test]
    fn records_cut_off_the_end_are_noticed() {
        let mut rs = chain(10);
        let h = head(&rs);
        rs.truncate(8);
        assert_eq!(
            verify(&rs, h).map(|f| (f.seq, f.kind)),
            Some((9, Tamper::Truncated))
        );
    }
}
