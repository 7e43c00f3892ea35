//! Server lookups of one OpenStack provider, answered together.
//!
//! Every saga that waits on Nova (a server building, stopping, resizing) asks "where is my
//! server now?" on each of its retries. Asked one by one, a batch of 100 creates sent
//! hundreds of `GET /servers/detail?name=…` a second to nova-api, which then spent the CPU
//! the builds needed answering them (issue 17 measured zhengyun 131 % slower than the
//! `openstack` client). Lookups now join a *round*: the round's request is sent only after
//! every member joined (so its answer is as fresh as a call of each member's own), one
//! round at a time per provider, and it answers every member. A round of one asks for that
//! one server by name, as before; a round of several lists the project's servers once.
//!
//! Rounds are also paced: the next one is sent no sooner than the last one took (at
//! least [`MIN_GAP`]) after it ended, so answering zhengyun's lookups never takes more than
//! about half of nova-api's time, however many sagas wait — the rest is for the builds
//! they wait for. Lookups that arrive during the pause join the next round.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
// Tokio's clock, so tests can pause time.
use tokio::time::Instant;

use uuid::Uuid;
use zy_compute::DriverError;

use super::openstack::Server;

/// What one round of lookups learnt: the servers found, by their zhengyun marker and by
/// their Nova id.
#[derive(Debug, Default)]
pub struct Seen {
    by_marker: HashMap<Uuid, Server>,
    by_id: HashMap<String, Server>,
}

impl Seen {
    pub fn new(servers: Vec<Server>) -> Seen {
        let mut seen = Seen::default();
        for s in servers.into_iter().filter(|s| s.status != "DELETED") {
            if let Some(m) = s.marker {
                seen.by_marker.insert(m, s.clone());
            }
            seen.by_id.insert(s.id.clone(), s);
        }
        seen
    }

    /// The server of `instance`: the one carrying its marker, else (an adopted server,
    /// whose instance id is its Nova id) the one with that id. `None` says only that this
    /// round did not see it: an adopted server may live in another mapped project.
    pub fn server_of(&self, instance: Uuid) -> Option<Server> {
        self.by_marker
            .get(&instance)
            .or_else(|| self.by_id.get(&instance.to_string()))
            .cloned()
    }
}

#[derive(Default)]
struct Round {
    wanted: Mutex<Vec<Uuid>>,
    answer: tokio::sync::OnceCell<Result<Arc<Seen>, DriverError>>,
}

/// The rounds of one provider.
#[derive(Default)]
pub struct Lookups {
    /// The round that newcomers join; taken out when it is sent.
    open: Mutex<Option<Arc<Round>>>,
    /// Held while a round waits for its turn and while its request is out, so rounds go
    /// one after another; holds when the next round may be sent.
    sending: tokio::sync::Mutex<Option<Instant>>,
}

/// The shortest pause between two rounds of one provider.
pub const MIN_GAP: Duration = Duration::from_millis(250);

/// When the round after one that ran from `start` to `end` may be sent.
fn next_round_at(start: Instant, end: Instant) -> Instant {
    end + (end - start).max(MIN_GAP)
}

impl Lookups {
    /// What the next round learns about `instance`. `ask` sends a round's request for the
    /// instances wanted in it.
    pub async fn seen<F, Fut>(&self, instance: Uuid, ask: F) -> Result<Arc<Seen>, DriverError>
    where
        F: FnOnce(Vec<Uuid>) -> Fut,
        Fut: Future<Output = Result<Seen, DriverError>>,
    {
        let round = {
            let mut open = self.open.lock().expect("lookups lock");
            let r = open.get_or_insert_with(Default::default).clone();
            r.wanted.lock().expect("round lock").push(instance);
            r
        };
        round
            .answer
            .get_or_init(|| async {
                let mut next = self.sending.lock().await;
                if let Some(at) = *next {
                    tokio::time::sleep_until(at).await;
                }
                // Closed to newcomers from here on: everyone in it asked before it is sent.
                {
                    let mut open = self.open.lock().expect("lookups lock");
                    if open.as_ref().is_some_and(|r| Arc::ptr_eq(r, &round)) {
                        *open = None;
                    }
                }
                let wanted = std::mem::take(&mut *round.wanted.lock().expect("round lock"));
                let start = Instant::now();
                let answer = ask(wanted).await.map(Arc::new);
                *next = Some(next_round_at(start, Instant::now()));
                answer
            })
            .await
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    fn server(id: &str, marker: Option<Uuid>, status: &str) -> Server {
        Server {
            id: id.into(),
            name: id.into(),
            status: status.into(),
            task_state: None,
            project_id: "p".into(),
            vcpus: 1,
            memory_mib: 512,
            disk_gib: 1,
            flavor_name: "m1.tiny".into(),
            marker,
            fault: None,
            availability_zone: None,
            hypervisor: None,
            image_id: None,
        }
    }

    #[test]
    fn a_server_is_found_by_marker_then_by_id_and_never_when_deleted() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let adopted = Uuid::now_v7();
        let seen = Seen::new(vec![
            server("n1", Some(a), "ACTIVE"),
            server(&adopted.to_string(), None, "SHUTOFF"),
            server("n3", Some(b), "DELETED"),
        ]);
        assert_eq!(seen.server_of(a).expect("in test").id, "n1");
        assert_eq!(seen.server_of(adopted).expect("in test").status, "SHUTOFF");
        assert_eq!(seen.server_of(b), None, "a deleted server is gone");
    }

    #[tokio::test]
    async fn lookups_waiting_together_share_one_request_sent_after_they_all_asked() {
        let lookups = Arc::new(Lookups::default());
        let sent = Arc::new(AtomicUsize::new(0));
        let ids: Vec<Uuid> = (0..20).map(|_| Uuid::now_v7()).collect();
        // A slow first round holds the line; everyone arriving meanwhile joins the second.
        let first = {
            let (l, sent) = (lookups.clone(), sent.clone());
            let id = ids[0];
            tokio::spawn(async move {
                l.seen(id, |w| async move {
                    sent.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    Ok(Seen::new(
                        w.iter().map(|m| server("x", Some(*m), "BUILD")).collect(),
                    ))
                })
                .await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut rest = Vec::new();
        for id in ids[1..].iter().copied() {
            let (l, sent) = (lookups.clone(), sent.clone());
            rest.push(tokio::spawn(async move {
                l.seen(id, |w| async move {
                    sent.fetch_add(1, Ordering::SeqCst);
                    Ok(Seen::new(
                        w.iter().map(|m| server("x", Some(*m), "ACTIVE")).collect(),
                    ))
                })
                .await
                .expect("in test")
                .server_of(id)
            }));
        }
        assert!(first
            .await
            .expect("in test")
            .expect("in test")
            .server_of(ids[0])
            .is_some());
        for r in rest {
            let s = r.await.expect("in test").expect("in test");
            assert_eq!(s.status, "ACTIVE", "each member saw the round it joined");
        }
        assert_eq!(
            sent.load(Ordering::SeqCst),
            2,
            "19 lookups shared one request"
        );
        // A lookup after a round was sent never gets that round's (older) answer.
        let late = Uuid::now_v7();
        let s = lookups
            .seen(late, |w| async move {
                assert_eq!(w, vec![late]);
                Ok(Seen::new(vec![server("y", Some(late), "SHUTOFF")]))
            })
            .await
            .expect("in test");
        assert_eq!(s.server_of(late).expect("in test").status, "SHUTOFF");
    }

    #[test]
    fn the_next_round_waits_as_long_as_the_last_one_took_and_at_least_the_minimum() {
        let t0 = Instant::now();
        assert_eq!(
            next_round_at(t0, t0 + Duration::from_secs(2)),
            t0 + Duration::from_secs(4),
            "a slow listing keeps nova-api at most half busy with lookups"
        );
        assert_eq!(
            next_round_at(t0, t0 + Duration::from_millis(10)),
            t0 + Duration::from_millis(10) + MIN_GAP
        );
    }

    #[tokio::test(start_paused = true)]
    async fn lookups_one_after_another_are_paced_and_late_ones_share_the_paced_round() {
        let lookups = Arc::new(Lookups::default());
        let sent_at = Arc::new(Mutex::new(Vec::new()));
        let ask = |sent_at: Arc<Mutex<Vec<(Instant, usize)>>>| {
            move |w: Vec<Uuid>| async move {
                sent_at
                    .lock()
                    .expect("in test")
                    .push((Instant::now(), w.len()));
                tokio::time::sleep(Duration::from_secs(1)).await;
                Ok(Seen::new(
                    w.iter().map(|m| server("x", Some(*m), "ACTIVE")).collect(),
                ))
            }
        };
        lookups
            .seen(Uuid::now_v7(), ask(sent_at.clone()))
            .await
            .expect("in test");
        // Three lookups right after the first round: they wait its duration, then go as one.
        let mut waiting = Vec::new();
        for _ in 0..3 {
            let (l, a) = (lookups.clone(), ask(sent_at.clone()));
            waiting.push(tokio::spawn(async move {
                l.seen(Uuid::now_v7(), a).await.map(|_| ())
            }));
        }
        for w in waiting {
            w.await.expect("in test").expect("in test");
        }
        let sent = sent_at.lock().expect("in test").clone();
        assert_eq!(sent.len(), 2, "{sent:?}");
        assert_eq!(sent[1].1, 3, "the three shared one round");
        assert!(
            sent[1].0 - sent[0].0 >= Duration::from_secs(2),
            "sent a round's duration after the first ended: {sent:?}"
        );
    }
}
