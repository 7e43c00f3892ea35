//! The demo's billing data: a price list for every demo provider (in force since the
//! start of the year) and three months of back-dated usage of a few instances and volumes
//! that have since been deleted, so the console shows bills, a trend and months to close.

use super::*;
use zy_model::billing::{FlavorRate, Rate};
use zy_store::Tx;

fn rate(s: &str) -> Rate {
    Rate::parse(s).unwrap_or_default()
}

/// The demo's prices: a typical e-government cloud's list prices (yuan).
pub fn demo_rates(discount_permille: u32) -> Rates {
    Rates {
        vcpu_hour: rate("0.0600"),
        memory_gib_hour: rate("0.0250"),
        gpu_hour: rate("4.5000"),
        disk_gib_month: rate("0.3500"),
        volume_gib_month: rate("0.5000"),
        flavors: vec![FlavorRate {
            flavor: "8C32G".into(),
            per_hour: rate("1.2000"),
        }],
        stopped_compute_permille: 0,
        discount_permille,
        department_discounts: vec![],
    }
}

/// One demo resource: what it is and when (hours from the start) it ran, stopped, ended.
struct Planned {
    name: &'static str,
    /// Empty for a volume.
    flavor: &'static str,
    vcpus: u32,
    memory_mib: u64,
    disk_gib: u64,
    from_h: i64,
    to_h: i64,
    stop_h: Option<i64>,
}

pub async fn load(
    tx: &mut Tx,
    departments: &[(DepartmentId, ProjectId)],
    providers: &[ProviderId],
) -> Result<(), Error> {
    let now = Timestamp::now();
    let this_month = month_of(now);
    let (month_start, _) = month_bounds(&this_month)?;
    let year_start = month_bounds(&format!("{}-01", &this_month[..4]))?.0;
    let system = UserId::new();
    for (i, p) in providers.iter().enumerate() {
        let v = PriceVersion {
            id: PriceVersionId::new(),
            provider_id: *p,
            effective_from: year_start,
            rates: demo_rates(if i == 0 { 50 } else { 0 }),
            note: "演示价格目录 / demo price list".into(),
            created_at: now,
            in_effect: true,
        };
        zy_store::billing::insert_version(tx, &v, system).await?;
    }
    let Some(&provider) = providers.first() else {
        return Ok(());
    };
    // Three months back: each department's first project ran two instances and a volume.
    let start = Timestamp(month_start.0 - 3 * 30 * 86_400 * 1_000_000);
    let hour = 3_600_000_000i64;
    for (k, (d, p)) in departments.iter().take(6).enumerate() {
        let k = k as i64;
        let plan = [
            Planned {
                name: "web-01",
                flavor: "4C8G",
                vcpus: 4,
                memory_mib: 8192,
                disk_gib: 50,
                from_h: 0,
                to_h: 24 * 80 + k * 10,
                stop_h: Some(24 * 60),
            },
            Planned {
                name: "db-01",
                flavor: "8C32G",
                vcpus: 8,
                memory_mib: 32768,
                disk_gib: 200,
                from_h: 24 * 5,
                to_h: 24 * 85,
                stop_h: None,
            },
            Planned {
                name: "data-vol",
                flavor: "",
                vcpus: 0,
                memory_mib: 0,
                disk_gib: 500,
                from_h: 24 * 2,
                to_h: 24 * 88,
                stop_h: None,
            },
        ];
        for Planned {
            name,
            flavor,
            vcpus,
            memory_mib,
            disk_gib,
            from_h,
            to_h,
            stop_h,
        } in plan
        {
            let volume = flavor.is_empty();
            let rid = if volume {
                VolumeId::new().to_string()
            } else {
                InstanceId::new().to_string()
            };
            let ev = |at_h: i64, status: UsageStatus| UsageEvent {
                seq: 0,
                at: Timestamp(start.0 + at_h * hour + k * 7 * 60 * 1_000_000),
                resource_id: rid.clone(),
                kind: if volume {
                    ResourceKind::Volume
                } else {
                    ResourceKind::Instance
                },
                name: name.into(),
                status,
                department_id: *d,
                project_id: *p,
                provider_id: Some(provider),
                flavor: flavor.into(),
                vcpus,
                memory_mib,
                disk_gib,
                gpus: 0,
            };
            let on = if volume {
                UsageStatus::Allocated
            } else {
                UsageStatus::Running
            };
            zy_store::billing::insert_event(tx, &ev(from_h, on)).await?;
            if let Some(h) = stop_h {
                zy_store::billing::insert_event(tx, &ev(h, UsageStatus::Stopped)).await?;
            }
            zy_store::billing::insert_event(tx, &ev(to_h, UsageStatus::None)).await?;
        }
    }
    Ok(())
}
