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
        let plan: [(&str, &str, u32, u64, u64, i64, i64, Option<i64>); 3] = [
            // (name, flavor, vcpus, memory MiB, disk GiB, start h, end h, stopped from h)
            (
                "web-01",
                "4C8G",
                4,
                8192,
                50,
                0,
                24 * 80 + k * 10,
                Some(24 * 60),
            ),
            ("db-01", "8C32G", 8, 32768, 200, 24 * 5, 24 * 85, None),
            ("data-vol", "", 0, 0, 500, 24 * 2, 24 * 88, None),
        ];
        for (name, flavor, vcpus, memory_mib, disk_gib, from_h, to_h, stop_h) in plan {
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
