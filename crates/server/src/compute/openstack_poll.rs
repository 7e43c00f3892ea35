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

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

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
    /// Held while a round's request is out, so rounds go one after another.
    sending: tokio::sync::Mutex<()>,
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
                let _one = self.sending.lock().await;
                // Closed to newcomers from here on: everyone in it asked before it is sent.
                {
                    let mut open = self.open.lock().expect("lookups lock");
                    if open.as_ref().is_some_and(|r| Arc::ptr_eq(r, &round)) {
                        *open = None;
                    }
                }
                let wanted = std::mem::take(&mut *round.wanted.lock().expect("round lock"));
                ask(wanted).await.map(Arc::new)
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
}
