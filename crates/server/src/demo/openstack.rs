//! The demo's real OpenStack provider: the test bed of `cargo xtask openstack up`, when it
//! runs on this machine (`zhengyun server --demo --demo-openstack target/openstack-bed/env`,
//! which `cargo xtask run` passes when the bed answers). Registered once, like any
//! provider a platform admin connects: its test project mapped to 卫计委's
//! 全民健康信息平台, drift flagged (not adopted) so a server made with the `openstack`
//! client shows up on the 资源差异/纳管 page, a zone standing for Nova's `nova`
//! availability zone, and the bed's CirrOS image and a flavor of m1.tiny's size in the
//! catalogue, so members can create instances there through zhengyun.

use crate::app::commit_system;
use crate::compute::openstack::{
    AdoptionMode, OpenStackCredential, OpenStackSettings, ProjectMapping, ZoneMapping,
};
use crate::state::AppState;
use std::collections::HashMap;
use zy_model::compute::{Flavor, Image, Provider, Strategy, Zone};
use zy_model::id::{FlavorId, ImageId, ProviderId, ZoneId};
use zy_model::time::Timestamp;
use zy_model::Error;

pub const PROVIDER: &str = "OpenStack 测试床";
pub const ZONE: &str = "测试床 nova 可用区";
/// Glance's name of the bed's image: the driver finds it by name, so no mapping is needed.
pub const IMAGE: &str = "cirros";
/// m1.tiny's size: the driver picks the Nova flavor of exactly this size.
pub const FLAVOR: &str = "1C512M";

/// Reads the bed's `env` file (`KEY=value` lines).
pub fn read_env(path: &std::path::Path) -> Result<HashMap<String, String>, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::validation(
            "demo_openstack",
            zy_model::t!(
                "无法读取 OpenStack 测试床的环境文件 {}：{}" ;
                "cannot read the OpenStack bed's env file {}: {}",
                path.display(), e
            ),
        )
    })?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect())
}

/// Registers the bed as a provider unless one of that name exists; returns its id when
/// it registered it now.
pub async fn register(
    s: &AppState,
    env: &HashMap<String, String>,
) -> Result<Option<ProviderId>, Error> {
    let known = zy_store::inventory::providers(&s.store).await?;
    if known.iter().any(|(p, _)| p.name == PROVIDER) {
        return Ok(None);
    }
    let var = |k: &str| {
        env.get(k).cloned().ok_or_else(|| {
            Error::validation(
                "demo_openstack",
                zy_model::t!("测试床环境文件缺少 {}" ; "the bed's env file has no {}", k),
            )
        })
    };
    let page = zy_model::page::PageRequest::parse(Some(10), None, None)?;
    let filter = zy_store::Filter {
        q: Some("全民健康信息平台".into()),
    };
    let found = zy_store::projects::list(
        &s.store,
        &page,
        zy_store::projects::ProjectScope::All,
        None,
        &filter,
    )
    .await?;
    let Some(project) = found.items.first() else {
        return Ok(None);
    };
    let now = Timestamp::now();
    let provider = Provider {
        id: ProviderId::new(),
        name: PROVIDER.into(),
        kind: "openstack".into(),
        simulated: false,
        description: "本机 OpenStack 测试床（cargo xtask openstack up，Nova 使用 fake 驱动）/ this machine's OpenStack test bed (Nova's fake virt driver)".into(),
        created_at: now,
        generation: 1,
    };
    let zone = Zone {
        id: ZoneId::new(),
        provider_id: provider.id,
        region: "本机".into(),
        name: ZONE.into(),
        strategy: Strategy::Spread,
        created_at: now,
    };
    let settings = OpenStackSettings {
        auth_url: var("ZY_OPENSTACK_AUTH_URL")?,
        region: env
            .get("ZY_OPENSTACK_REGION")
            .cloned()
            .unwrap_or_else(|| "RegionOne".into()),
        credential: OpenStackCredential::Password {
            username: var("ZY_OPENSTACK_USERNAME")?,
            password: var("ZY_OPENSTACK_PASSWORD")?,
            user_domain: "Default".into(),
            project: var("ZY_OPENSTACK_TEST_PROJECT")?,
            project_domain: "Default".into(),
        },
        verify_tls: true,
        ca_pem: None,
        network: env.get("ZY_OPENSTACK_NETWORK_ID").cloned(),
        images: Vec::new(),
        flavors: Vec::new(),
        projects: vec![ProjectMapping {
            openstack_project: var("ZY_OPENSTACK_TEST_PROJECT_ID")?,
            department_id: project.department_id.0,
            project_id: project.id.0,
        }],
        zones: vec![ZoneMapping {
            zone_id: zone.id.0,
            availability_zone: "nova".into(),
        }],
        adoption: AdoptionMode::Flag,
    };
    settings.validate()?;
    // As for any provider: checked against the cloud before anything is stored, outside
    // any transaction, and the secret sealed.
    crate::app::openstack::check_reachable(&settings).await?;
    let config = serde_json::to_string(&settings.sealed(&s.sealer)?)
        .map_err(|e| Error::internal(e.to_string()))?;
    let flavors = zy_store::inventory::flavors(&s.store).await?;
    let images = zy_store::inventory::images(&s.store).await?;
    let mut tx = s.store.begin_write().await?;
    zy_store::inventory::insert_provider(&mut tx, &provider, &config).await?;
    zy_store::inventory::insert_zone(&mut tx, &zone).await?;
    if !flavors.iter().any(|f| f.name == FLAVOR) {
        zy_store::inventory::insert_flavor(
            &mut tx,
            &Flavor {
                id: FlavorId::new(),
                name: FLAVOR.into(),
                vcpus: 1,
                memory_mib: 512,
                gpus: 0,
                created_at: now,
            },
        )
        .await?;
    }
    if !images.iter().any(|i| i.name == IMAGE) {
        zy_store::inventory::insert_image(
            &mut tx,
            &Image {
                id: ImageId::new(),
                name: IMAGE.into(),
                os: "Linux (CirrOS)".into(),
                min_disk_gib: 1,
                providers: vec![provider.id],
                created_at: now,
            },
        )
        .await?;
    }
    commit_system(
        tx,
        "create_provider",
        "provider",
        &provider.id.to_string(),
        serde_json::json!({ "name": provider.name, "kind": provider.kind, "demo": true }),
    )
    .await?;
    s.compute.drivers.install(
        provider.id,
        &provider.kind,
        &config,
        &s.compute.kvm,
        &s.sealer,
    );
    Ok(Some(provider.id))
}
