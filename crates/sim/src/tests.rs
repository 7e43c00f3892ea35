//! Behaviour of the simulated provider as the server sees it, through the
//! [`ComputeDriver`] trait only, plus the inspection helpers tests and `admin check` use.

use crate::{SimConfig, SimCounts, SimProvider};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;
use zy_compute::{ComputeDriver, DriverError, InstanceSpec, PowerState};

fn spec_on(host_id: Uuid) -> InstanceSpec {
    InstanceSpec {
        shared_dir: None,
        instance_id: Uuid::new_v4(),
        name: "web-1".to_owned(),
        host_id,
        vcpus: 2,
        memory_mib: 4096,
        disk_gib: 40,
        gpus: 0,
        image: "kylin-v10".to_owned(),
        user_data: String::new(),
    }
}

fn fresh_spec() -> InstanceSpec {
    spec_on(Uuid::new_v4())
}

async fn running(sim: &SimProvider, spec: &InstanceSpec) {
    sim.create_disk(spec).await.expect("disk");
    sim.ensure_instance(spec, PowerState::Running)
        .await
        .expect("running");
}

#[tokio::test]
async fn creating_twice_is_harmless() {
    let sim = SimProvider::default();
    let spec = fresh_spec();
    for _ in 0..2 {
        sim.create_disk(&spec).await.expect("disk");
        sim.ensure_instance(&spec, PowerState::Running)
            .await
            .expect("instance");
    }
    assert_eq!(sim.disks_on(spec.host_id), vec![spec.instance_id]);
    assert_eq!(
        sim.instances_on(spec.host_id),
        vec![(spec.instance_id, PowerState::Running)]
    );
    assert_eq!(
        sim.counts(),
        SimCounts {
            hosts_alive: 1,
            instances: 1,
            running: 1,
            disks: 1
        }
    );
}

#[tokio::test]
async fn ensure_running_then_stopped_reaches_each_state() {
    let sim = SimProvider::default();
    let spec = fresh_spec();
    sim.create_disk(&spec).await.expect("disk");
    // Defining straight into Stopped is allowed, so a reconciler can prepare ahead.
    for state in [
        PowerState::Stopped,
        PowerState::Running,
        PowerState::Running,
        PowerState::Stopped,
        PowerState::Stopped,
        PowerState::Running,
    ] {
        sim.ensure_instance(&spec, state)
            .await
            .expect("reach state");
        assert_eq!(
            sim.status(spec.instance_id, spec.host_id)
                .await
                .expect("status"),
            state
        );
    }
    assert!(matches!(
        sim.ensure_instance(&spec, PowerState::Missing).await,
        Err(DriverError::Permanent(_))
    ));
    assert_eq!(
        sim.status(Uuid::new_v4(), spec.host_id)
            .await
            .expect("status"),
        PowerState::Missing
    );
}

#[tokio::test]
async fn instances_need_their_disk() {
    let sim = SimProvider::default();
    let spec = fresh_spec();
    assert_eq!(
        sim.ensure_instance(&spec, PowerState::Running).await,
        Err(DriverError::Permanent("no root disk".to_owned()))
    );
    assert!(sim.instances_on(spec.host_id).is_empty());

    // A stopped instance whose disk was removed cannot be started again.
    sim.create_disk(&spec).await.expect("disk");
    sim.ensure_instance(&spec, PowerState::Stopped)
        .await
        .expect("defined");
    sim.delete_disk(spec.instance_id, spec.host_id)
        .await
        .expect("stopped instance's disk can go");
    assert_eq!(
        sim.ensure_instance(&spec, PowerState::Running).await,
        Err(DriverError::Permanent("no root disk".to_owned()))
    );

    // And a running instance's disk cannot be pulled from under it.
    let other = spec_on(spec.host_id);
    running(&sim, &other).await;
    assert!(matches!(
        sim.delete_disk(other.instance_id, other.host_id).await,
        Err(DriverError::Permanent(_))
    ));
}

#[tokio::test]
async fn a_dead_host_refuses_everything_and_comes_back_empty() {
    let sim = SimProvider::default();
    let spec = fresh_spec();
    let (host, id, vol) = (spec.host_id, spec.instance_id, Uuid::new_v4());
    running(&sim, &spec).await;
    sim.attach_volume(vol, 10, id, host).await.expect("attach");
    let bystander = fresh_spec();
    running(&sim, &bystander).await;

    sim.kill_host(host);
    assert!(!sim.host_alive(host).await.expect("answers about hosts"));
    let down = Err(DriverError::HostDown(host));
    assert_eq!(sim.create_disk(&spec).await, down);
    assert_eq!(sim.delete_disk(id, host).await, down);
    assert_eq!(sim.ensure_instance(&spec, PowerState::Running).await, down);
    assert_eq!(sim.reboot(id, host).await, down);
    assert_eq!(sim.resize(&spec).await, down);
    assert_eq!(sim.delete_instance(id, host).await, down);
    assert_eq!(sim.status(id, host).await, Err(DriverError::HostDown(host)));
    assert_eq!(
        sim.console_log(id, host, 10).await,
        Err(DriverError::HostDown(host))
    );
    assert_eq!(sim.attach_volume(vol, 10, id, host).await, down);
    assert_eq!(sim.detach_volume(vol, id, host).await, down);
    assert!(sim.instances_on(host).is_empty());
    assert!(sim.disks_on(host).is_empty());
    assert_eq!(
        sim.counts(),
        SimCounts {
            hosts_alive: 1,
            instances: 1,
            running: 1,
            disks: 1
        }
    );

    sim.revive_host(host);
    assert!(sim.host_alive(host).await.expect("alive"));
    assert_eq!(
        sim.status(id, host).await.expect("status"),
        PowerState::Missing
    );
    assert!(sim.all_disks().iter().all(|(h, _)| *h != host));
    // The lost instance's volume is free for its replacement elsewhere (HA restart).
    let replacement = InstanceSpec {
        host_id: bystander.host_id,
        ..spec.clone()
    };
    running(&sim, &replacement).await;
    sim.attach_volume(vol, 10, id, bystander.host_id)
        .await
        .expect("volume follows the instance");
}

#[tokio::test]
async fn injected_failures_happen_at_about_the_configured_rate() {
    async fn outcomes(seed: u64) -> Vec<bool> {
        let sim = SimProvider::new(SimConfig {
            seed,
            create_failure_p: 0.2,
            ..SimConfig::default()
        });
        let host = Uuid::new_v4();
        let mut failed = Vec::with_capacity(5000);
        for _ in 0..5000 {
            match sim.create_disk(&spec_on(host)).await {
                Ok(()) => failed.push(false),
                Err(DriverError::Transient(_)) => failed.push(true),
                Err(other) => panic!("only transient failures are injected, got {other}"),
            }
        }
        let created = failed.iter().filter(|f| !**f).count();
        assert_eq!(
            sim.counts().disks,
            created,
            "a failed create leaves nothing"
        );
        failed
    }

    let first = outcomes(42).await;
    let rate = first.iter().filter(|f| **f).count() as f64 / first.len() as f64;
    assert!((rate - 0.2).abs() <= 0.03, "failure rate {rate}");
    assert_eq!(first, outcomes(42).await, "same seed, same failures");
    assert_ne!(first, outcomes(43).await);
}

#[tokio::test]
async fn failures_are_injected_only_when_creating_or_starting_and_can_be_changed() {
    let sim = SimProvider::default();
    let spec = fresh_spec();
    running(&sim, &spec).await;

    sim.set_create_failure_p(1.0);
    assert_eq!(sim.create_failure_p(), 1.0);
    // Repeats that change nothing, and stops, never fail.
    sim.create_disk(&spec).await.expect("existing disk");
    sim.ensure_instance(&spec, PowerState::Running)
        .await
        .expect("already running");
    sim.ensure_instance(&spec, PowerState::Stopped)
        .await
        .expect("stopping");
    assert!(matches!(
        sim.ensure_instance(&spec, PowerState::Running).await,
        Err(DriverError::Transient(_))
    ));
    assert!(matches!(
        sim.create_disk(&spec_on(spec.host_id)).await,
        Err(DriverError::Transient(_))
    ));

    sim.set_create_failure_p(f64::NAN);
    assert_eq!(sim.create_failure_p(), 0.0);
    sim.set_create_failure_p(7.0);
    assert_eq!(sim.create_failure_p(), 1.0);
    sim.set_create_failure_p(0.0);
    sim.ensure_instance(&spec, PowerState::Running)
        .await
        .expect("starts again");
}

#[tokio::test]
async fn resize_only_when_stopped_and_never_shrinks() {
    let sim = SimProvider::default();
    let spec = fresh_spec();
    running(&sim, &spec).await;
    let bigger = InstanceSpec {
        vcpus: 4,
        memory_mib: 8192,
        disk_gib: 80,
        ..spec.clone()
    };
    assert!(matches!(
        sim.resize(&bigger).await,
        Err(DriverError::Permanent(_))
    ));

    sim.ensure_instance(&spec, PowerState::Stopped)
        .await
        .expect("stop");
    sim.resize(&bigger)
        .await
        .expect("resize a stopped instance");
    sim.ensure_instance(&bigger, PowerState::Running)
        .await
        .expect("start");
    // Retried after it took effect: nothing to do, so the running state does not matter.
    sim.resize(&bigger).await.expect("repeat is a no-op");
    let log = sim
        .console_log(spec.instance_id, spec.host_id, 100)
        .await
        .expect("console");
    assert!(log.contains("(4 vCPU, 8192 MiB)"), "{log}");
    assert!(log.contains("[vda] 80 GiB"), "{log}");

    sim.ensure_instance(&spec, PowerState::Stopped)
        .await
        .expect("stop");
    let smaller_disk = InstanceSpec {
        disk_gib: 20,
        ..bigger.clone()
    };
    assert!(matches!(
        sim.resize(&smaller_disk).await,
        Err(DriverError::Permanent(m)) if m.contains("never shrink")
    ));
    assert_eq!(
        sim.resize(&spec_on(spec.host_id)).await,
        Err(DriverError::Permanent("no such instance".to_owned()))
    );
    // Fewer vCPUs is a legitimate resize; only the disk is grow-only.
    sim.resize(&InstanceSpec { vcpus: 1, ..bigger })
        .await
        .expect("scale down cpu");
}

#[tokio::test]
async fn console_log_shows_the_boot_and_says_simulated() {
    let sim = SimProvider::default();
    let spec = fresh_spec();
    running(&sim, &spec).await;
    sim.reboot(spec.instance_id, spec.host_id)
        .await
        .expect("reboot");
    sim.ensure_instance(&spec, PowerState::Stopped)
        .await
        .expect("stop");

    let log = sim
        .console_log(spec.instance_id, spec.host_id, 1000)
        .await
        .expect("console");
    assert!(
        log.contains("zhengyun simulated provider: instance web-1 booting (2 vCPU, 4096 MiB)"),
        "{log}"
    );
    assert!(log.contains("(simulated)"), "{log}");
    assert!(log.contains("web-1 login:"), "{log}");
    assert!(log.contains("Restarting system"), "{log}");
    assert!(log.contains("from image kylin-v10"), "{log}");
    assert!(log.lines().all(|l| l.starts_with("[sim] ")), "{log}");
    // `[sim] 2024-05-01T08:00:00Z …`: a UTC timestamp right after the marker.
    assert!(
        log.lines().all(|l| l
            .get(6..27)
            .is_some_and(|t| t.as_bytes()[4] == b'-' && t.ends_with("Z "))),
        "{log}"
    );
    assert_eq!(log.matches(" booting (").count(), 2, "boot and reboot");
    assert!(log.ends_with("reboot: Power down\n"), "{log}");

    let tail = sim
        .console_log(spec.instance_id, spec.host_id, 3)
        .await
        .expect("console");
    assert_eq!(tail.lines().count(), 3);
    assert!(log.ends_with(&tail));
    assert_eq!(
        sim.console_log(spec.instance_id, spec.host_id, 0)
            .await
            .expect("console"),
        ""
    );
    assert!(matches!(
        sim.console_log(Uuid::new_v4(), spec.host_id, 10).await,
        Err(DriverError::Permanent(_))
    ));
    assert!(matches!(
        sim.reboot(spec.instance_id, spec.host_id).await,
        Err(DriverError::Permanent(_))
    ));
}

#[tokio::test]
async fn deleting_missing_things_is_fine() {
    let sim = SimProvider::default();
    let (never_seen_host, spec) = (Uuid::new_v4(), fresh_spec());
    sim.delete_disk(Uuid::new_v4(), never_seen_host)
        .await
        .expect("unknown host");
    sim.delete_instance(Uuid::new_v4(), never_seen_host)
        .await
        .expect("unknown host");
    sim.detach_volume(Uuid::new_v4(), Uuid::new_v4(), never_seen_host)
        .await
        .expect("unknown host");

    running(&sim, &spec).await;
    for _ in 0..2 {
        sim.delete_instance(spec.instance_id, spec.host_id)
            .await
            .expect("delete instance");
        sim.delete_disk(spec.instance_id, spec.host_id)
            .await
            .expect("delete disk");
    }
    assert_eq!(
        sim.counts(),
        SimCounts {
            hosts_alive: 1,
            ..SimCounts::default()
        }
    );
    assert_eq!(
        sim.status(spec.instance_id, spec.host_id)
            .await
            .expect("status"),
        PowerState::Missing
    );
}

#[tokio::test]
async fn volumes_attach_and_detach_idempotently() {
    let sim = SimProvider::default();
    let (spec, vol) = (fresh_spec(), Uuid::new_v4());
    let (id, host) = (spec.instance_id, spec.host_id);
    assert_eq!(
        sim.attach_volume(vol, 10, id, host).await,
        Err(DriverError::Permanent("no such instance".to_owned()))
    );
    running(&sim, &spec).await;
    for _ in 0..2 {
        sim.attach_volume(vol, 10, id, host).await.expect("attach");
    }
    let other = spec_on(host);
    running(&sim, &other).await;
    assert!(matches!(
        sim.attach_volume(vol, 10, other.instance_id, host).await,
        Err(DriverError::Permanent(_))
    ));

    let log = sim.console_log(id, host, 5).await.expect("console");
    assert_eq!(
        log.matches(&format!("hot-plugged volume {vol} (10 GiB)"))
            .count(),
        1,
        "{log}"
    );

    for _ in 0..2 {
        sim.detach_volume(vol, id, host).await.expect("detach");
    }
    sim.attach_volume(vol, 10, other.instance_id, host)
        .await
        .expect("free again");
    // Deleting the instance frees its volumes too.
    sim.delete_instance(other.instance_id, host)
        .await
        .expect("delete");
    sim.attach_volume(vol, 10, id, host)
        .await
        .expect("free after delete");
}

#[tokio::test]
async fn latency_is_added_within_the_configured_range() {
    let sim = SimProvider::new(SimConfig {
        latency_min: Duration::from_millis(20),
        latency_max: Duration::from_millis(30),
        ..SimConfig::default()
    });
    let started = Instant::now();
    sim.host_alive(Uuid::new_v4()).await.expect("alive");
    assert!(started.elapsed() >= Duration::from_millis(20));
}

#[test]
fn zero_latency_never_touches_the_timer() {
    // A runtime without the time driver panics on the first sleep, so this proves the
    // default configuration costs no timer registration per call.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let sim = SimProvider::default();
        let spec = fresh_spec();
        running(&sim, &spec).await;
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_share_one_consistent_world() {
    let sim = Arc::new(SimProvider::default());
    let hosts: Vec<Uuid> = (0..8).map(|_| Uuid::new_v4()).collect();
    let tasks: Vec<_> = (0..2000)
        .map(|i| {
            let (sim, host) = (Arc::clone(&sim), hosts[i % hosts.len()]);
            tokio::spawn(async move {
                let spec = spec_on(host);
                sim.create_disk(&spec).await.expect("disk");
                sim.ensure_instance(&spec, PowerState::Running)
                    .await
                    .expect("running");
                if i % 2 == 0 {
                    sim.ensure_instance(&spec, PowerState::Stopped)
                        .await
                        .expect("stopped");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    assert_eq!(
        sim.counts(),
        SimCounts {
            hosts_alive: 8,
            instances: 2000,
            running: 1000,
            disks: 2000
        }
    );
    let driver: Arc<dyn ComputeDriver> = sim;
    assert!(driver.simulated());
    assert_eq!(driver.kind(), "sim");
}

#[tokio::test]
async fn counts_and_listings_cover_every_host() {
    let sim = SimProvider::default();
    let (a, b) = (fresh_spec(), fresh_spec());
    running(&sim, &a).await;
    sim.create_disk(&b).await.expect("disk only");
    let mut expected = vec![(a.host_id, a.instance_id), (b.host_id, b.instance_id)];
    expected.sort_unstable();
    assert_eq!(sim.all_disks(), expected);
    assert_eq!(
        sim.counts(),
        SimCounts {
            hosts_alive: 2,
            instances: 1,
            running: 1,
            disks: 2
        }
    );
}
