//! Cinder volumes of an `openstack` provider against the real test bed (see `openstack`):
//! volumes made directly in Cinder are flagged as drift, adopted (纳管) into the mapped
//! project with quota and metering, changed and deleted outside (flagged), and deleted
//! through zhengyun (gone from Cinder too). The bed's project is shared with other tests,
//! so only this test's own volumes (by name and id) are looked at.

use crate::common::*;
use crate::openstack::{bed, cloud, Nova};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

impl Nova {
    async fn cinder(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.volume))
            .header("X-Auth-Token", &self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("cinder");
        let st = r.status();
        let text = r.text().await.unwrap_or_default();
        (st, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Waits until Cinder shows the volume with `pred` (or, with `None`, no longer has it).
    async fn wait_volume(&self, id: &str, pred: Option<&dyn Fn(&Value) -> bool>) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (st, v) = self
                .cinder(reqwest::Method::GET, &format!("/volumes/{id}"), None)
                .await;
            match pred {
                None if st == StatusCode::NOT_FOUND => return Value::Null,
                Some(p) if st.is_success() && p(&v["volume"]) => return v["volume"].clone(),
                _ => {}
            }
            assert!(
                Instant::now() < deadline,
                "volume {id} never as wanted: {st} {v}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Makes a volume directly in Cinder (not through zhengyun) and waits for it.
    async fn create_volume(&self, name: &str, size: u64) -> String {
        let (st, v) = self
            .cinder(
                reqwest::Method::POST,
                "/volumes",
                Some(json!({ "volume": { "name": name, "size": size } })),
            )
            .await;
        assert!(st.is_success(), "{st} {v}");
        let id = v["volume"]["id"].as_str().expect("volume id").to_string();
        self.wait_volume(&id, Some(&|v| v["status"] == "available"))
            .await;
        id
    }
}

/// A volume made in Cinder is flagged, adopted by hand (counted in quota, metered),
/// deleted through zhengyun and gone from Cinder; another, adopted, extended outside
/// (flagged as changed) and deleted outside (flagged as disappeared) is deleted in
/// zhengyun without a Cinder volume to delete.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cinder_volumes_made_outside_are_flagged_adopted_and_deleted_through_zhengyun() {
    let Some(b) = bed() else {
        return;
    };
    let ts = TestServer::start(Db::Sqlite).await;
    let c = cloud(&ts, &b).await;
    let nova = Nova::login(&b).await;
    assert!(!nova.volume.is_empty(), "the bed's catalogue has Cinder");
    let mut settings = b.settings();
    settings["projects"] = json!([{ "openstack_project": nova.project_id,
        "department_id": c.department, "project_id": c.project }]);
    settings["adoption"] = json!("flag");
    let (st, v) = c
        .admin
        .put(&format!("/v1/providers/{}/openstack", c.provider), settings)
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    // The synchronisation gave the provider's zone a Cinder pool.
    let (_, pools) = c.admin.get("/v1/storage-pools").await;
    assert!(
        pools["items"]
            .as_array()
            .expect("pools")
            .iter()
            .any(|p| p["kind"] == "cinder"),
        "{pools}"
    );

    let tag = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let kept = nova.create_volume(&format!("zy-test-kept-{tag}"), 1).await;
    let lost = nova.create_volume(&format!("zy-test-lost-{tag}"), 1).await;

    let drift_url = format!("/v1/providers/{}/openstack/drift", c.provider);
    let sync_url = format!("/v1/providers/{}/openstack/sync", c.provider);
    let (st, sync) = c.admin.post(&sync_url, json!({})).await;
    assert_eq!(st, StatusCode::OK, "{sync}");
    let (_, drift) = c.admin.get(&format!("{drift_url}?state=all")).await;
    let find = |drift: &Value, change: &str, external: &str| -> Value {
        drift["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|d| {
                d["kind"] == "volume"
                    && d["change"] == change
                    && d["external_id"] == external
                    && d["state"] == "open"
            })
            .cloned()
            .unwrap_or_else(|| panic!("no open {change} volume item {external}: {drift}"))
    };
    let appeared = find(&drift, "appeared", &kept);
    assert_eq!(
        appeared["name"],
        format!("zy-test-kept-{tag}"),
        "{appeared}"
    );
    assert_eq!(appeared["project_id"], c.project.as_str(), "{appeared}");
    assert!(
        appeared["detail"]
            .as_str()
            .unwrap_or("")
            .starts_with("1 GiB, available"),
        "{appeared}"
    );
    let appeared_lost = find(&drift, "appeared", &lost);
    // Announced once with the synchronisation's notice.
    let (_, inbox) = c.supervisor.get("/v1/me/notifications").await;
    assert!(
        inbox
            .to_string()
            .contains(&format!("zy-test-kept-{tag} (appeared)")),
        "{inbox}"
    );

    // Adopted by hand: the department's volume, counted in quota, metered.
    let quota_url = format!("/v1/quotas?project_id={}", c.project);
    let (_, before) = c.admin.get(&quota_url).await;
    let used = |q: &Value, k: &str| q["used"][k].as_i64().unwrap_or(0);
    let (st, adopted) = c
        .admin
        .post(
            &format!("{drift_url}/{}/adopt", appeared["id"].as_str().expect("id")),
            json!({}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{adopted}");
    assert_eq!(adopted["id"], kept.as_str(), "{adopted}");
    assert_eq!(adopted["origin"], "adopted", "{adopted}");
    assert_eq!(adopted["state"], "available", "{adopted}");
    assert_eq!(adopted["size_gib"], 1, "{adopted}");
    assert_eq!(adopted["project_id"], c.project.as_str(), "{adopted}");
    let (_, after) = c.admin.get(&quota_url).await;
    assert_eq!(
        used(&after, "volumes"),
        used(&before, "volumes") + 1,
        "{after}"
    );
    assert_eq!(
        used(&after, "disk_gib"),
        used(&before, "disk_gib") + 1,
        "{after}"
    );
    let (st, mine) = c.member.get(&format!("/v1/volumes/{kept}")).await;
    assert_eq!(st, StatusCode::OK, "the department sees it: {mine}");
    let (st, usage) = c
        .supervisor
        .get(&format!("/v1/usage?resource_id={kept}"))
        .await;
    assert_eq!(st, StatusCode::OK, "{usage}");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, usage) = c
            .supervisor
            .get(&format!("/v1/usage?resource_id={kept}"))
            .await;
        if usage["items"]
            .as_array()
            .is_some_and(|a| a.iter().any(|l| l["project_id"] == c.project.as_str()))
        {
            break;
        }
        assert!(Instant::now() < deadline, "never metered: {usage}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (st, twice) = c
        .admin
        .post(
            &format!("{drift_url}/{}/adopt", appeared["id"].as_str().expect("id")),
            json!({}),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "adopted once only: {twice}");

    // The other: adopted, then extended and finally deleted outside zhengyun.
    let (st, v) = c
        .admin
        .post(
            &format!(
                "{drift_url}/{}/adopt",
                appeared_lost["id"].as_str().expect("id")
            ),
            json!({}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = nova
        .cinder(
            reqwest::Method::POST,
            &format!("/volumes/{lost}/action"),
            Some(json!({ "os-extend": { "new_size": 2 } })),
        )
        .await;
    assert!(st.is_success(), "{st} {v}");
    nova.wait_volume(
        &lost,
        Some(&|v| v["size"] == 2 && v["status"] == "available"),
    )
    .await;
    let (st, sync) = c.admin.post(&sync_url, json!({})).await;
    assert_eq!(st, StatusCode::OK, "{sync}");
    let (_, drift) = c.admin.get(&drift_url).await;
    let changed = find(&drift, "changed", &lost);
    assert!(
        changed["detail"]
            .as_str()
            .unwrap_or("")
            .contains("size 1 GiB in zhengyun, 2 GiB in the provider"),
        "{changed}"
    );
    // The volume zhengyun adopted and Cinder agrees on is not drift.
    assert!(
        !drift["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|d| d["external_id"] == kept.as_str() && d["state"] == "open"),
        "{drift}"
    );
    let (st, v) = nova
        .cinder(reqwest::Method::DELETE, &format!("/volumes/{lost}"), None)
        .await;
    assert!(st.is_success(), "{st} {v}");
    nova.wait_volume(&lost, None).await;
    let (st, sync) = c.admin.post(&sync_url, json!({})).await;
    assert_eq!(st, StatusCode::OK, "{sync}");
    let (_, drift) = c.admin.get(&drift_url).await;
    let gone = find(&drift, "disappeared", &lost);
    assert_eq!(gone["project_id"], c.project.as_str(), "{gone}");

    // Deleted through zhengyun: the Cinder volume goes too, quota is given back.
    let (st, v) = c.member.delete(&format!("/v1/volumes/{kept}")).await;
    assert!(st.is_success(), "{st} {v}");
    nova.wait_volume(&kept, None).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (st, _) = c.member.get(&format!("/v1/volumes/{kept}")).await;
        if st == StatusCode::NOT_FOUND {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the volume outlived its Cinder volume"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // The one Cinder lost: nothing to delete there, done at once.
    let (st, v) = c.member.delete(&format!("/v1/volumes/{lost}")).await;
    assert_eq!(st, StatusCode::NO_CONTENT, "{v}");
    let (_, end) = c.admin.get(&quota_url).await;
    assert_eq!(used(&end, "volumes"), used(&before, "volumes"), "{end}");
    assert_eq!(used(&end, "disk_gib"), used(&before, "disk_gib"), "{end}");
    // The disappeared item went away with the volume.
    let (st, sync) = c.admin.post(&sync_url, json!({})).await;
    assert_eq!(st, StatusCode::OK, "{sync}");
    let (_, all) = c.admin.get(&format!("{drift_url}?state=all")).await;
    let state_of = |id: &Value| {
        all["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|d| d["id"] == *id)
            .map(|d| d["state"].clone())
    };
    assert_eq!(state_of(&gone["id"]), Some(json!("resolved")), "{all}");
    assert_eq!(state_of(&appeared["id"]), Some(json!("adopted")), "{all}");
}

/// A volume made in zhengyun on the provider's Cinder pool lives in Cinder: attached to an
/// instance on the provider it is created there and attached to its server, extended while
/// attached it grows in Cinder too, detached it is available again, and deleted it is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_zhengyun_volume_is_attached_extended_detached_and_deleted_in_cinder() {
    let Some(b) = bed() else {
        return;
    };
    let ts = TestServer::start(Db::Sqlite).await;
    let c = cloud(&ts, &b).await;
    let nova = Nova::login(&b).await;
    let long = Duration::from_secs(120);
    let instance = c.create("vol-host", 1).await.remove(0);
    c.wait_for(&instance, &["running"], long).await;
    let (_, pools) = c.admin.get("/v1/storage-pools").await;
    let pool = pools["items"]
        .as_array()
        .expect("pools")
        .iter()
        .find(|p| p["kind"] == "cinder")
        .and_then(|p| p["id"].as_str())
        .expect("the synchronisation made a Cinder pool")
        .to_string();
    let (st, v) = c
        .member
        .post(
            "/v1/volumes",
            json!({ "project_id": c.project, "name": "数据盘", "size_gib": 1, "pool_id": pool }),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let volume = v["id"].as_str().expect("id").to_string();
    let cinder_name = format!("zy-{}", volume.replace('-', ""));
    // Cinder's volume of this zhengyun volume, by the name the driver gives it.
    let in_cinder = || async {
        let (st, v) = nova
            .cinder(
                reqwest::Method::GET,
                &format!("/volumes/detail?name={cinder_name}"),
                None,
            )
            .await;
        assert!(st.is_success(), "{st} {v}");
        v["volumes"].as_array().and_then(|a| a.first()).cloned()
    };
    let wait_zy = |state: &'static str, size: u64| {
        let (c, volume) = (&c, volume.clone());
        async move {
            let deadline = Instant::now() + long;
            loop {
                let (_, v) = c.member.get(&format!("/v1/volumes/{volume}")).await;
                if v["state"] == state && v["size_gib"] == size {
                    return v;
                }
                assert!(
                    Instant::now() < deadline,
                    "never {state} at {size} GiB: {v}"
                );
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    };

    let (st, v) = c
        .member
        .post(
            &format!("/v1/volumes/{volume}/attach"),
            json!({ "instance_id": instance }),
        )
        .await;
    assert!(st.is_success(), "{st} {v}");
    let v = wait_zy("in_use", 1).await;
    assert_eq!(v["instance_id"], instance.as_str(), "{v}");
    let cv = in_cinder().await.expect("created in Cinder at the attach");
    let cinder_id = cv["id"].as_str().expect("id").to_string();
    assert_eq!(
        cv["metadata"]["zhengyun_volume_id"],
        volume.as_str(),
        "{cv}"
    );
    let attached = nova
        .wait_volume(&cinder_id, Some(&|v| v["status"] == "in-use"))
        .await;
    let server = nova.servers_of(&instance).await;
    assert_eq!(server.len(), 1, "{server:?}");
    assert_eq!(
        attached["attachments"][0]["server_id"], server[0]["id"],
        "attached to the instance's server: {attached}"
    );

    let (st, v) = c
        .member
        .post(
            &format!("/v1/volumes/{volume}/extend"),
            json!({ "size_gib": 2 }),
        )
        .await;
    assert!(st.is_success(), "{st} {v}");
    wait_zy("in_use", 2).await;
    nova.wait_volume(
        &cinder_id,
        Some(&|v| v["size"] == 2 && v["status"] == "in-use"),
    )
    .await;
    // Nothing differs, so nothing is drift.
    let (st, sync) = c
        .admin
        .post(
            &format!("/v1/providers/{}/openstack/sync", c.provider),
            json!({}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{sync}");
    let (_, drift) = c
        .admin
        .get(&format!("/v1/providers/{}/openstack/drift", c.provider))
        .await;
    assert!(
        !drift.to_string().contains(&cinder_id),
        "a volume zhengyun made and extended is not drift: {drift}"
    );

    let (st, v) = c
        .member
        .post(&format!("/v1/volumes/{volume}/detach"), json!({}))
        .await;
    assert!(st.is_success(), "{st} {v}");
    wait_zy("available", 2).await;
    nova.wait_volume(&cinder_id, Some(&|v| v["status"] == "available"))
        .await;

    let (st, v) = c.member.delete(&format!("/v1/volumes/{volume}")).await;
    assert!(st.is_success(), "{st} {v}");
    nova.wait_volume(&cinder_id, None).await;
}
