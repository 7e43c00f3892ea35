//! Reconciliation (对账): a provider's claimed usage imported as CSV and matched line by
//! line against our meter (`zy_rating::reconcile`); the result is stored and audited.

use super::*;

/// A provider's claimed usage for one month, as CSV text or as an XLSX workbook (base64;
/// its first worksheet is read, by the same column mapping).
///
/// Column mapping (the header row names the columns, in any order; other columns are
/// ignored): `resource_id` (or `资源ID`) — our resource id as the provider knows it;
/// `hours` (or `用量小时`) — billed hours, up to four decimals; `amount` (or `金额`) —
/// yuan, up to two decimals.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewReconciliation {
    pub provider_id: ProviderId,
    pub month: String,
    /// A name for the imported file (shown with the result).
    pub source: String,
    /// The CSV text (UTF-8); or leave it empty and send `xlsx_base64`.
    #[serde(default)]
    pub csv: String,
    /// An `.xlsx` file, base64-encoded.
    #[serde(default)]
    pub xlsx_base64: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReconciliationDifference {
    pub resource_id: String,
    /// `missing_on_our_side`, `missing_on_their_side`, `quantity` or `price`.
    pub kind: String,
    /// Hours ×100 (0.01 h units), ours and theirs.
    pub our_centihours: Option<i64>,
    pub their_centihours: Option<i64>,
    pub our_amount: Money,
    pub their_amount: Money,
    pub delta: Money,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Reconciliation {
    pub id: String,
    pub provider_id: ProviderId,
    pub month: String,
    pub source: String,
    pub created_at: Timestamp,
    pub matched: usize,
    pub our_total: Money,
    pub their_total: Money,
    pub delta: Money,
    pub differences: Vec<ReconciliationDifference>,
}

/// Parses hours with up to four decimals into 0.01-hour units, rounded half up.
fn centihours(s: &str) -> Option<i64> {
    let r = Rate::parse(s)?; // same grammar: digits with at most four decimals
    Some((r.0 + 50) / 100)
}

fn parse_claims(csv: &str) -> Result<Vec<zy_rating::ClaimLine>, Error> {
    let mut lines = csv
        .trim_start_matches('\u{feff}')
        .lines()
        .filter(|l| !l.trim().is_empty());
    let header = lines
        .next()
        .ok_or_else(|| Error::validation("csv", t!("文件为空", "the file is empty")))?;
    let cols: Vec<String> = split_csv(header)
        .into_iter()
        .map(|c| c.trim().to_lowercase())
        .collect();
    let find = |names: &[&str]| cols.iter().position(|c| names.contains(&c.as_str()));
    let (Some(ri), Some(hi), Some(ai)) = (
        find(&["resource_id", "资源id"]),
        find(&["hours", "用量小时"]),
        find(&["amount", "金额"]),
    ) else {
        return Err(Error::validation(
            "csv",
            t!(
                "表头须包含 resource_id（资源ID）、hours（用量小时）和 amount（金额）三列",
                "the header must name the columns resource_id, hours and amount"
            ),
        ));
    };
    let mut out = Vec::new();
    for (n, line) in lines.enumerate() {
        if n >= 200_000 {
            return Err(Error::validation(
                "csv",
                t!("行数超过 200000", "more than 200,000 rows"),
            ));
        }
        let f = split_csv(line);
        let get = |i: usize| f.get(i).map(|s| s.trim()).unwrap_or("");
        let row = n + 2;
        let rid = get(ri);
        if rid.is_empty() || rid.len() > 64 {
            return Err(Error::validation(
                "csv",
                t!("第 {} 行：资源ID 缺失或过长" ; "row {}: resource_id is missing or too long", row),
            ));
        }
        let q = centihours(get(hi)).ok_or_else(|| Error::validation("csv", t!("第 {} 行：用量小时不是最多四位小数的非负数" ; "row {}: hours is not a non-negative number with at most four decimals", row)))?;
        let a = Money::parse_yuan(get(ai)).ok_or_else(|| Error::validation("csv", t!("第 {} 行：金额不是最多两位小数的元" ; "row {}: amount is not yuan with at most two decimals", row)))?;
        out.push(zy_rating::ClaimLine {
            resource_id: rid.to_string(),
            quantity: q,
            amount: a,
        });
    }
    Ok(out)
}

/// Splits one CSV record (RFC 4180 quoting, no embedded newlines).
fn split_csv(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    out.push(cur);
    out
}

pub async fn reconcile(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    b: NewReconciliation,
) -> Result<Reconciliation, Error> {
    authorize(&actor.principal, Action::BillingManage)?;
    let (from, to) = month_bounds(&b.month)?;
    let source = zy_model::validate::name("source", &b.source)?;
    if b.csv.len() > 32 * 1024 * 1024
        || b.xlsx_base64
            .as_ref()
            .is_some_and(|x| x.len() > 44 * 1024 * 1024)
    {
        return Err(Error::validation(
            "csv",
            t!("文件超过 32 MiB", "the file is larger than 32 MiB"),
        ));
    }
    let csv = match (&b.xlsx_base64, b.csv.is_empty()) {
        (Some(x), true) => {
            use base64::Engine;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(x.trim())
                .map_err(|_| {
                    Error::validation(
                        "xlsx_base64",
                        t!(
                            "XLSX 文件须以 base64 编码",
                            "the XLSX file must be base64-encoded"
                        ),
                    )
                })?;
            super::xlsx_read::first_sheet_as_csv(&bytes)?
        }
        (None, false) => b.csv.clone(),
        _ => {
            return Err(Error::validation(
                "csv",
                t!(
                    "请提供 CSV 文本或 XLSX 文件（二选一）",
                    "send either the CSV text or the XLSX file, not both and not neither"
                ),
            ))
        }
    };
    let theirs = parse_claims(&csv)?;
    let providers = zy_store::inventory::providers(&s.store).await?;
    if !providers.iter().any(|(p, _)| p.id == b.provider_id) {
        return Err(Error::not_found("provider", b.provider_id));
    }
    let now = clock(&s.store).await?;
    let ours_lines = if zy_store::billing::month_closed(s.store.pool(), &b.month).await? {
        zy_store::billing::lines(&s.store, &b.month, None, Some(b.provider_id)).await?
    } else {
        let f = UsageFilter {
            provider_id: Some(b.provider_id),
            ..Default::default()
        };
        rate_period(&s.store, &f, from, to.min(now)).await?
    };
    let ours: Vec<zy_rating::ClaimLine> = ours_lines
        .iter()
        .map(|l| zy_rating::ClaimLine {
            resource_id: l.resource_id.clone(),
            quantity: ((l.running_secs + l.stopped_secs) + 18) / 36,
            amount: l.amount,
        })
        .collect();
    let r = zy_rating::reconcile(&ours, &theirs);
    let rec = Reconciliation {
        id: uuid::Uuid::now_v7().to_string(),
        provider_id: b.provider_id,
        month: b.month.clone(),
        source,
        created_at: Timestamp::now(),
        matched: r.matched,
        our_total: r.our_total,
        their_total: r.their_total,
        delta: r.delta,
        differences: r
            .differences
            .iter()
            .map(|d| ReconciliationDifference {
                resource_id: d.resource_id.clone(),
                kind: match d.kind {
                    zy_rating::DifferenceKind::MissingOnOurSide => "missing_on_our_side",
                    zy_rating::DifferenceKind::MissingOnTheirSide => "missing_on_their_side",
                    zy_rating::DifferenceKind::Quantity => "quantity",
                    zy_rating::DifferenceKind::Price => "price",
                }
                .into(),
                our_centihours: d.our_quantity,
                their_centihours: d.their_quantity,
                our_amount: d.our_amount,
                their_amount: d.their_amount,
                delta: d.delta,
            })
            .collect(),
    };
    let report = serde_json::to_string(&rec).map_err(|e| Error::internal(e.to_string()))?;
    let mut tx = s.store.begin_write().await?;
    zy_store::billing::insert_reconciliation(
        &mut tx,
        &zy_store::billing::ReconciliationRow {
            id: rec.id.clone(),
            provider_id: rec.provider_id,
            month: rec.month.clone(),
            source: rec.source.clone(),
            report,
            created_at: rec.created_at,
        },
        actor.user.id,
    )
    .await?;
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "create_reconciliation",
        "reconciliation",
        &rec.id,
        serde_json::json!({ "provider_id": rec.provider_id, "month": rec.month, "differences": rec.differences.len(), "delta_fen": rec.delta }),
    )
    .await?;
    Ok(rec)
}

pub async fn reconciliations(
    s: &AppState,
    actor: &Actor,
    provider: Option<ProviderId>,
) -> Result<Vec<Reconciliation>, Error> {
    let visible = zy_policy::provider_visibility(&actor.principal, Action::ProviderBillRead);
    match provider {
        Some(p) => authorize(&actor.principal, Action::ProviderBillRead(Some(p)))?,
        None if !visible.is_any() => authorize(&actor.principal, Action::ProviderBillRead(None))?,
        None => {}
    }
    let all: Vec<Reconciliation> = zy_store::billing::reconciliations(&s.store, provider)
        .await?
        .into_iter()
        .map(|r| {
            serde_json::from_str(&r.report)
                .map_err(|e| Error::internal(format!("reconciliation report: {e}")))
        })
        .collect::<Result<_, Error>>()?;
    Ok(all
        .into_iter()
        .filter(|r| visible.includes(r.provider_id))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_are_read_by_header_name_in_either_language() {
        let c = parse_claims(
            "\u{feff}金额,资源ID,用量小时,备注\n12.50,abc,720,\"x, y\"\n0.01,def,1.005,\n",
        )
        .expect("csv");
        assert_eq!(c.len(), 2);
        assert_eq!(
            (c[0].resource_id.as_str(), c[0].quantity, c[0].amount),
            ("abc", 72_000, Money(1250))
        );
        assert_eq!(c[1].quantity, 101);
        assert!(parse_claims("a,b\n1,2").is_err());
        assert!(parse_claims("resource_id,hours,amount\nx,-1,2").is_err());
        assert!(parse_claims("resource_id,hours,amount\nx,1,2.345").is_err());
    }
}
