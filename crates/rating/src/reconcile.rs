//! Reconciliation (对账): a provider's claimed lines matched against ours, resource by
//! resource. Reports what is missing on either side, quantity differences and price
//! differences (same quantity, different amount), with totals.

use std::collections::BTreeMap;
use zy_model::Money;

/// One resource's line, ours or the provider's: a quantity (for instances, running hours
/// in whole seconds; for volumes, GiB-seconds — whatever both sides count alike) and an
/// amount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimLine {
    pub resource_id: String,
    pub quantity: i64,
    pub amount: Money,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DifferenceKind {
    /// The provider bills a resource our meter does not know.
    MissingOnOurSide,
    /// Our meter has a resource the provider does not bill.
    MissingOnTheirSide,
    /// Both have it, the quantities differ.
    Quantity,
    /// Same quantity, different amount.
    Price,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub resource_id: String,
    pub kind: DifferenceKind,
    pub our_quantity: Option<i64>,
    pub their_quantity: Option<i64>,
    pub our_amount: Money,
    pub their_amount: Money,
    /// `their_amount − our_amount`: what the provider claims beyond our meter.
    pub delta: Money,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReconcileReport {
    pub matched: usize,
    pub differences: Vec<Difference>,
    pub our_total: Money,
    pub their_total: Money,
    /// `their_total − our_total`.
    pub delta: Money,
}

/// Matches by resource id. Several lines for one resource on one side are summed first.
/// Differences come sorted by resource id.
pub fn reconcile(ours: &[ClaimLine], theirs: &[ClaimLine]) -> ReconcileReport {
    fn fold(lines: &[ClaimLine]) -> BTreeMap<&str, (i64, Money)> {
        let mut m: BTreeMap<&str, (i64, Money)> = BTreeMap::new();
        for l in lines {
            let e = m.entry(l.resource_id.as_str()).or_default();
            e.0 = e.0.saturating_add(l.quantity);
            e.1 = e.1 + l.amount;
        }
        m
    }
    let (a, b) = (fold(ours), fold(theirs));
    let mut report = ReconcileReport {
        our_total: Money::sum(a.values().map(|v| v.1)),
        their_total: Money::sum(b.values().map(|v| v.1)),
        ..Default::default()
    };
    report.delta = report.their_total - report.our_total;
    let mut keys: Vec<&str> = a.keys().chain(b.keys()).copied().collect();
    keys.sort_unstable();
    keys.dedup();
    for k in keys {
        let d = match (a.get(k), b.get(k)) {
            (Some(o), None) => Some((
                DifferenceKind::MissingOnTheirSide,
                Some(o.0),
                None,
                o.1,
                Money::ZERO,
            )),
            (None, Some(t)) => Some((
                DifferenceKind::MissingOnOurSide,
                None,
                Some(t.0),
                Money::ZERO,
                t.1,
            )),
            (Some(o), Some(t)) if o.0 != t.0 => {
                Some((DifferenceKind::Quantity, Some(o.0), Some(t.0), o.1, t.1))
            }
            (Some(o), Some(t)) if o.1 != t.1 => {
                Some((DifferenceKind::Price, Some(o.0), Some(t.0), o.1, t.1))
            }
            _ => None,
        };
        match d {
            Some((kind, oq, tq, oa, ta)) => report.differences.push(Difference {
                resource_id: k.to_string(),
                kind,
                our_quantity: oq,
                their_quantity: tq,
                our_amount: oa,
                their_amount: ta,
                delta: ta - oa,
            }),
            None => report.matched += 1,
        }
    }
    report
}
