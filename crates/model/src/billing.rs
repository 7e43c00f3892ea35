//! Billing types as the API shows them: price rates (`Rate`, a decimal yuan string held as
//! an integer of 0.0001 yuan), price-list versions, usage, bills and their lines,
//! adjustments. The arithmetic lives in `zy-rating`; these are the shapes.

use crate::id::*;
use crate::money::Money;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A unit price in 0.0001 yuan (0.01 fen), written in the API as a decimal yuan string
/// with at most four decimals (`"0.0350"`), so hourly prices below one fen stay exact.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rate(pub i64);

impl Rate {
    pub const SCALE: i64 = 10_000;
    pub fn parse(s: &str) -> Option<Rate> {
        let s = s.trim();
        let (int, frac) = s.split_once('.').unwrap_or((s, ""));
        if int.is_empty()
            || int.len() > 9
            || frac.len() > 4
            || !int.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let whole: i64 = int.parse().ok()?;
        let mut f: i64 = if frac.is_empty() {
            0
        } else {
            frac.parse().ok()?
        };
        for _ in frac.len()..4 {
            f *= 10;
        }
        Some(Rate(whole * Self::SCALE + f))
    }
    pub fn render(self) -> String {
        format!("{}.{:04}", self.0 / Self::SCALE, self.0 % Self::SCALE)
    }
}

impl Serialize for Rate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.render())
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Rate::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(
                "a price is a decimal number of yuan with at most four decimals, e.g. \"0.0350\"",
            )
        })
    }
}

impl utoipa::PartialSchema for Rate {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some(r"^[0-9]{1,9}(\.[0-9]{1,4})?$"))
            .description(Some("yuan, at most four decimals"))
            .into()
    }
}
impl ToSchema for Rate {}

/// A flavor priced as a bundle (vCPU, memory and GPUs together), per hour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlavorRate {
    pub flavor: String,
    pub per_hour: Rate,
}

/// A department's discount under this version, in per mille (50 = 5 % off).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DepartmentDiscount {
    pub department_id: DepartmentId,
    pub permille: u32,
}

/// The prices of one price-list version. A GiB-month is 720 hours (30 days), so a GiB held
/// for any month of any length costs the same per hour.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rates {
    pub vcpu_hour: Rate,
    pub memory_gib_hour: Rate,
    pub gpu_hour: Rate,
    /// An instance's system disk, per GiB-month.
    pub disk_gib_month: Rate,
    /// A volume, per GiB-month.
    pub volume_gib_month: Rate,
    /// Flavors priced as a bundle per hour instead of vCPU + memory + GPU.
    #[serde(default)]
    pub flavors: Vec<FlavorRate>,
    /// Share of the compute price (vCPU, memory, GPU or bundle) charged while an instance is
    /// stopped, per mille (0: stopped instances pay only their disk).
    #[serde(default)]
    pub stopped_compute_permille: u32,
    /// The provider contract's discount on everything, per mille.
    #[serde(default)]
    pub discount_permille: u32,
    #[serde(default)]
    pub department_discounts: Vec<DepartmentDiscount>,
}

/// One version of a provider's price list (价格目录). Versions are never edited: a new one
/// supersedes the previous from its `effective_from`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PriceVersion {
    pub id: PriceVersionId,
    pub provider_id: ProviderId,
    pub effective_from: Timestamp,
    pub rates: Rates,
    pub note: String,
    pub created_at: Timestamp,
    /// Whether it has taken effect (then it can no longer be withdrawn).
    pub in_effect: bool,
}

/// What a metered resource was doing over a stretch of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UsageStatus {
    Running,
    Stopped,
    /// A volume that exists (volumes have no running/stopped).
    Allocated,
    /// Not billed from here on (deleted, failed before it ran, or not yet placed).
    None,
}

impl UsageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UsageStatus::Running => "running",
            UsageStatus::Stopped => "stopped",
            UsageStatus::Allocated => "allocated",
            UsageStatus::None => "none",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "running" => UsageStatus::Running,
            "stopped" => UsageStatus::Stopped,
            "allocated" => UsageStatus::Allocated,
            "none" => UsageStatus::None,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    Instance,
    Volume,
}

impl ResourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Instance => "instance",
            ResourceKind::Volume => "volume",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "instance" => ResourceKind::Instance,
            "volume" => ResourceKind::Volume,
            _ => return None,
        })
    }
}

/// One entry of the usage ledger (计量): what a resource became at an instant, written in
/// the same transaction as the change itself.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UsageEvent {
    pub seq: i64,
    pub at: Timestamp,
    pub resource_id: String,
    pub kind: ResourceKind,
    pub name: String,
    pub status: UsageStatus,
    pub department_id: DepartmentId,
    pub project_id: ProjectId,
    pub provider_id: Option<ProviderId>,
    pub flavor: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub disk_gib: u64,
    pub gpus: u32,
}

/// One resource's line on a bill: what it used in the month and what that costs.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BillLine {
    pub department_id: DepartmentId,
    pub project_id: ProjectId,
    pub project_name: String,
    pub provider_id: Option<ProviderId>,
    pub provider_name: String,
    pub resource_id: String,
    pub kind: ResourceKind,
    pub name: String,
    pub running_secs: i64,
    pub stopped_secs: i64,
    /// vCPU-seconds, MiB-seconds, GiB-seconds and GPU-seconds billed.
    pub vcpu_secs: i64,
    pub memory_mib_secs: i64,
    pub disk_gib_secs: i64,
    pub gpu_secs: i64,
    pub amount: Money,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BillState {
    /// The month is still open: computed from the ledger on each read.
    Draft,
    Closed,
    Confirmed,
    Paid,
}

impl BillState {
    pub fn as_str(self) -> &'static str {
        match self {
            BillState::Draft => "draft",
            BillState::Closed => "closed",
            BillState::Confirmed => "confirmed",
            BillState::Paid => "paid",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "draft" => BillState::Draft,
            "closed" => BillState::Closed,
            "confirmed" => BillState::Confirmed,
            "paid" => BillState::Paid,
            _ => return None,
        })
    }
}

/// A correction to a closed bill, made by finance with a reason.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Adjustment {
    pub id: AdjustmentId,
    pub amount: Money,
    pub reason: String,
    pub created_at: Timestamp,
    pub created_by: UserId,
}

/// A department's bill for one month.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Bill {
    pub month: String,
    pub department_id: DepartmentId,
    pub department_name: String,
    pub state: BillState,
    /// The sum of the lines.
    pub usage_total: Money,
    pub adjustments_total: Money,
    /// `usage_total + adjustments_total`.
    pub total: Money,
    pub generation: i64,
    pub lines: Vec<BillLine>,
    pub adjustments: Vec<Adjustment>,
}

/// One row of a month's summary (a department's bill without its lines).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BillSummary {
    pub month: String,
    pub department_id: DepartmentId,
    pub department_name: String,
    pub state: BillState,
    pub usage_total: Money,
    pub adjustments_total: Money,
    pub total: Money,
}

/// What the city owes one provider for one month, by department.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProviderBill {
    pub month: String,
    pub provider_id: ProviderId,
    pub provider_name: String,
    pub closed: bool,
    pub total: Money,
    pub departments: Vec<ProviderBillDepartment>,
    /// Adjustment lines (the SLA credit of 服务质量考核 is one, negative).
    pub adjustments: Vec<ProviderBillAdjustment>,
    /// `total` plus the adjustments: what the city pays.
    pub payable: Money,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProviderBillAdjustment {
    /// Where the line comes from: `sla`.
    pub source: String,
    /// Fen; negative takes money off.
    pub amount: Money,
    pub reason: String,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProviderBillDepartment {
    pub department_id: DepartmentId,
    pub department_name: String,
    pub amount: Money,
}

/// A month as the books see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BillingMonth {
    pub month: String,
    pub closed: bool,
    pub closed_at: Option<Timestamp>,
    pub total: Money,
}
