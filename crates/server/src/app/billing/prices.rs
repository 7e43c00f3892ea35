//! Price lists (价格目录): effective-dated versions per provider. A version is never
//! edited; one not yet in force may be withdrawn; a later one supersedes it.

use super::*;

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPriceVersion {
    pub provider_id: ProviderId,
    /// When the version takes effect; must be later than now (a version in force is never
    /// changed, only superseded by a later one).
    pub effective_from: Timestamp,
    pub rates: Rates,
    #[serde(default)]
    pub note: String,
}

pub async fn list_versions(
    s: &AppState,
    actor: &Actor,
    provider: Option<ProviderId>,
) -> Result<Vec<PriceVersion>, Error> {
    authorize(&actor.principal, Action::CatalogueRead)?;
    let now = clock(&s.store).await?;
    zy_store::billing::versions(&s.store, provider, now).await
}

fn validate_rates(r: &Rates) -> Result<(), Error> {
    for (f, v) in [
        ("rates.stopped_compute_permille", r.stopped_compute_permille),
        ("rates.discount_permille", r.discount_permille),
    ] {
        if v > 1000 {
            return Err(Error::validation(
                f,
                t!(
                    "千分比须在 0 到 1000 之间",
                    "a per-mille value is between 0 and 1000"
                ),
            ));
        }
    }
    if r.flavors.len() > 200 || r.department_discounts.len() > 1000 {
        return Err(Error::validation(
            "rates",
            t!("价格条目太多", "too many price entries"),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for fl in &r.flavors {
        zy_model::validate::name("rates.flavors.flavor", &fl.flavor)?;
        if !seen.insert(fl.flavor.as_str()) {
            return Err(Error::validation(
                "rates.flavors",
                t!("规格 {} 重复定价" ; "flavor {} is priced twice", fl.flavor),
            ));
        }
    }
    let mut seen = std::collections::HashSet::new();
    for d in &r.department_discounts {
        if d.permille > 1000 {
            return Err(Error::validation(
                "rates.department_discounts.permille",
                t!(
                    "千分比须在 0 到 1000 之间",
                    "a per-mille value is between 0 and 1000"
                ),
            ));
        }
        if !seen.insert(d.department_id) {
            return Err(Error::validation(
                "rates.department_discounts",
                t!(
                    "同一部门的折扣重复",
                    "a department's discount is given twice"
                ),
            ));
        }
    }
    Ok(())
}

pub async fn create_version(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    b: NewPriceVersion,
) -> Result<PriceVersion, Error> {
    authorize(&actor.principal, Action::PriceListManage)?;
    validate_rates(&b.rates)?;
    let note = zy_model::validate::description("note", &b.note)?;
    let providers = zy_store::inventory::providers(&s.store).await?;
    if !providers.iter().any(|(p, _)| p.id == b.provider_id) {
        return Err(Error::not_found("provider", b.provider_id));
    }
    let mut tx = s.store.begin_write().await?;
    let now = zy_store::billing::now(&mut *tx).await?;
    if b.effective_from <= now {
        return Err(Error::validation(
            "effective_from",
            t!(
                "新价格版本只能从将来某一时刻生效：已生效的价格不可更改，只能被新版本取代",
                "a new price version takes effect in the future: prices in force are never changed, only superseded"
            ),
        ));
    }
    if month_bounds(&month_of(b.effective_from)).is_err() {
        return Err(Error::validation(
            "effective_from",
            t!("生效时间超出范围", "effective_from is out of range"),
        ));
    }
    let v = PriceVersion {
        id: PriceVersionId::new(),
        provider_id: b.provider_id,
        effective_from: b.effective_from,
        rates: b.rates,
        note,
        created_at: Timestamp::now(),
        in_effect: false,
    };
    zy_store::billing::insert_version(&mut tx, &v, actor.user.id).await?;
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "create_price_version",
        "price_version",
        &v.id.to_string(),
        serde_json::json!({ "provider_id": v.provider_id, "effective_from": v.effective_from, "rates": v.rates }),
    )
    .await?;
    Ok(v)
}

pub async fn withdraw_version(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    id: PriceVersionId,
) -> Result<(), Error> {
    authorize(&actor.principal, Action::PriceListManage)?;
    let mut tx = s.store.begin_write().await?;
    let now = zy_store::billing::now(&mut *tx).await?;
    if zy_store::billing::get_version(&mut *tx, id)
        .await?
        .is_none()
    {
        return Err(Error::not_found("price_version", id));
    }
    if !zy_store::billing::withdraw_version(&mut tx, id, now).await? {
        return Err(Error::conflict(t!(
            "该价格版本已经生效，不能撤回；请发布新版本取代它",
            "this price version has taken effect and cannot be withdrawn; publish a new version to supersede it"
        )));
    }
    commit_audited(
        tx,
        ctx,
        Some(actor),
        "withdraw_price_version",
        "price_version",
        &id.to_string(),
        serde_json::json!({}),
    )
    .await
}

/// The version in force now for a provider, for estimates.
pub async fn rates_in_force(store: &Store, provider: ProviderId) -> Result<Option<Rates>, Error> {
    let now = clock(store).await?;
    Ok(zy_store::billing::versions(store, Some(provider), now)
        .await?
        .into_iter()
        .rev()
        .find(|v| v.in_effect)
        .map(|v| v.rates))
}

/// What a request would cost per month on `provider` under the prices in force now
/// (`zy_rating::estimate_monthly`): for the requests feature to show beside a request.
/// `None` when the provider has no price list yet.
pub async fn estimate_monthly(
    store: &Store,
    provider: ProviderId,
    items: &[zy_rating::EstimateItem],
) -> Result<Option<Money>, Error> {
    Ok(rates_in_force(store, provider)
        .await?
        .map(|r| zy_rating::estimate_monthly(&r, items)))
}
