//! Month-close benchmark (run outside CI): 100,000 resources (80,000 instances that run,
//! stop and start again, 20,000 volumes) of 100 departments on two providers with a price
//! change mid-month; then the close as the API does it — rate the month from the ledger,
//! write every department's bill and its lines in one transaction — and the CSV export of
//! every bill. Setup is not timed.
//!
//! Run: `cargo run --release -p zy-server --example close_month` (SQLite in a temporary
//! file) or with `DATABASE_URL=postgres://…` (a fresh schema is used and dropped).
//! `RESOURCES=…` changes the count; the target is ≤ 60 s for 100,000.

use std::time::Instant;
use zy_model::billing::*;
use zy_model::compute::Provider;
use zy_model::id::*;
use zy_model::tenancy::{Department, Project};
use zy_model::time::Timestamp;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let resources: usize = std::env::var("RESOURCES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let dir = std::env::temp_dir().join(format!("zy-close-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (url, schema) = match std::env::var("DATABASE_URL") {
        Ok(u) => (u, Some(format!("zy_close_{}", std::process::id()))),
        Err(_) => (format!("sqlite://{}", dir.join("bench.db").display()), None),
    };
    let store = zy_store::Store::open(&url, schema.as_deref(), 4).await?;
    let month = "2030-05";
    let (from, to) = zy_server::app::billing::month_bounds(month)?;
    let now = Timestamp::now();

    // Setup: departments, projects, providers with two price versions, and the ledger.
    let t = Instant::now();
    let mut tx = store.begin_write().await?;
    let mut depts = Vec::new();
    for d in 0..100 {
        let dep = Department {
            id: DepartmentId::new(),
            name: format!("部门{d:03}"),
            code: format!("D{d:03}"),
            description: String::new(),
            requests_only: false,
            created_at: now,
            updated_at: now,
            generation: 1,
        };
        zy_store::departments::insert(&mut tx, &dep).await?;
        let mut projects = Vec::new();
        for p in 0..10 {
            let pr = Project {
                id: ProjectId::new(),
                department_id: dep.id,
                name: format!("业务系统{p}"),
                description: String::new(),
                created_at: now,
                updated_at: now,
                generation: 1,
            };
            zy_store::projects::insert(&mut tx, &pr).await?;
            projects.push(pr.id);
        }
        depts.push((dep.id, projects));
    }
    let mut providers = Vec::new();
    for (i, name) in ["浪潮云", "天翼云"].iter().enumerate() {
        let p = Provider {
            id: ProviderId::new(),
            name: (*name).into(),
            kind: "sim".into(),
            simulated: true,
            description: String::new(),
            created_at: now,
            generation: 1,
        };
        zy_store::inventory::insert_provider(&mut tx, &p, "{}").await?;
        for (k, at) in [from, Timestamp(from.0 + 15 * 86_400_000_000)]
            .into_iter()
            .enumerate()
        {
            let mut rates = zy_server::app::billing::demo::demo_rates(50 * i as u32);
            if k == 1 {
                rates.vcpu_hour = Rate(rates.vcpu_hour.0 * 9 / 10);
            }
            let v = PriceVersion {
                id: PriceVersionId::new(),
                provider_id: p.id,
                effective_from: at,
                rates,
                note: String::new(),
                created_at: now,
                in_effect: true,
            };
            zy_store::billing::insert_version(&mut tx, &v, UserId::new()).await?;
        }
        providers.push(p.id);
    }
    let flavors = [
        ("2C4G", 2, 4096),
        ("4C8G", 4, 8192),
        ("8C32G", 8, 32768),
        ("16C64G", 16, 65536),
    ];
    let hour = 3_600_000_000i64;
    let mut events = 0usize;
    for n in 0..resources {
        let (d, projects) = &depts[n % depts.len()];
        let project = projects[(n / depts.len()) % projects.len()];
        let volume = n % 5 == 4;
        let (flavor, vcpus, memory_mib) = flavors[n % flavors.len()];
        let rid = if volume {
            VolumeId::new().to_string()
        } else {
            InstanceId::new().to_string()
        };
        let ev = |at: i64, status: UsageStatus| UsageEvent {
            seq: 0,
            at: Timestamp(at),
            resource_id: rid.clone(),
            kind: if volume {
                ResourceKind::Volume
            } else {
                ResourceKind::Instance
            },
            name: format!("res-{n:06}"),
            status,
            department_id: *d,
            project_id: project,
            provider_id: Some(providers[n % 2]),
            flavor: if volume { String::new() } else { flavor.into() },
            vcpus: if volume { 0 } else { vcpus },
            memory_mib: if volume { 0 } else { memory_mib },
            disk_gib: if volume { 200 } else { 40 },
            gpus: 0,
        };
        let start = from.0 - 86_400_000_000 + (n as i64 % 97) * 1_000_000;
        if volume {
            zy_store::billing::insert_event(&mut tx, &ev(start, UsageStatus::Allocated)).await?;
            events += 1;
        } else {
            let stop = from.0 + (100 + (n as i64 % 300)) * hour + (n as i64 % 3600) * 1_000_000;
            zy_store::billing::insert_event(&mut tx, &ev(start, UsageStatus::Running)).await?;
            zy_store::billing::insert_event(&mut tx, &ev(stop, UsageStatus::Stopped)).await?;
            zy_store::billing::insert_event(&mut tx, &ev(stop + 30 * hour, UsageStatus::Running))
                .await?;
            events += 3;
        }
        if n % 20_000 == 19_999 {
            tx.commit().await?;
            tx = store.begin_write().await?;
        }
    }
    tx.commit().await?;
    println!(
        "setup            {:.1} s ({resources} resources, {events} ledger events)",
        t.elapsed().as_secs_f64()
    );

    // The close: rate, write all bills and lines in one transaction, export every bill.
    let t = Instant::now();
    let bills = zy_server::app::billing::month_bills(&store, from, to, month).await?;
    let rated = t.elapsed().as_secs_f64();
    let mut tx = store.begin_write().await?;
    zy_store::billing::write_closed_month(&mut tx, month, UserId::new(), &bills).await?;
    tx.commit().await?;
    let written = t.elapsed().as_secs_f64();
    let mut bytes = 0usize;
    for b in &bills {
        let stored = zy_store::billing::lines(&store, month, Some(b.department_id), None).await?;
        let mut bill = b.clone();
        bill.lines = stored;
        let csv = zy_server::app::billing::bill_csv(&bill);
        bytes += csv.len();
        std::fs::write(dir.join(format!("{}.csv", b.department_id)), csv)?;
    }
    let total = t.elapsed().as_secs_f64();
    let lines: usize = bills.iter().map(|b| b.lines.len()).sum();
    let amount = zy_model::Money::sum(bills.iter().map(|b| b.usage_total));
    println!(
        "database         {}",
        if schema.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    );
    println!("rated            {rated:.2} s ({lines} lines)");
    println!(
        "bills written    {:.2} s ({} bills, one transaction)",
        written - rated,
        bills.len()
    );
    println!(
        "exports          {:.2} s ({} CSV files, {:.1} MB)",
        total - written,
        bills.len(),
        bytes as f64 / 1e6
    );
    println!("close total      {total:.2} s");
    println!("month total      {amount}");
    if let Some(s) = &schema {
        sqlx::raw_sql(&format!("DROP SCHEMA {s} CASCADE"))
            .execute(store.pool())
            .await?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    if resources >= 100_000 && total > 60.0 {
        eprintln!("target missed: closing took {total:.2} s > 60 s");
        std::process::exit(1);
    }
    Ok(())
}
