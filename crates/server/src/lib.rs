//! The zhengyun control plane: the HTTP API with authentication, authorisation and audit,
//! and the start-up work (migrations, first-start bootstrap, demo data).
//!
//! Request path: socket → axum → [`middleware::outer`] (request id, language, errors,
//! metrics) → router → [`middleware::audit_failures`] → handler in [`api`] (extractors
//! authenticate and parse) → use case in [`app`] (policy, validation, store, audit in one
//! transaction) → `zy_store` → database, and back.

pub mod api;
pub mod app;
pub mod auth;
pub mod bootstrap;
pub mod compute;
pub mod config;
pub mod context;
pub mod demo;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod middleware;
pub mod monitoring;
pub mod notify;
pub mod refusals;
pub mod requests;
pub mod saga;
pub mod state;
pub mod syslog;
pub mod tasks;
pub mod web;

pub use config::Config;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use std::collections::HashMap;
use std::net::SocketAddr;
use zy_model::{t, Error};

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// `(METHOD, path template)` → operation id, for naming audited operations.
fn operations(doc: &utoipa::openapi::OpenApi) -> HashMap<(String, String), String> {
    let mut map = HashMap::new();
    for (path, item) in &doc.paths.paths {
        let ops = [
            ("GET", &item.get),
            ("POST", &item.post),
            ("PUT", &item.put),
            ("PATCH", &item.patch),
            ("DELETE", &item.delete),
        ];
        for (method, op) in ops {
            if let Some(op) = op {
                map.insert(
                    (method.to_string(), path.clone()),
                    op.operation_id.clone().unwrap_or_default(),
                );
            }
        }
    }
    map
}

/// Builds the application: opens the database (migrating it), bootstraps the first admins
/// on first start, loads demo data when asked, and assembles the router.
pub async fn build(
    config: Config,
) -> Result<(Router, state::AppState, Option<bootstrap::Credentials>), Error> {
    if config.database_url.is_none() {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            Error::unavailable(t!("无法创建数据目录", "cannot create the data directory"))
                .with_internal(format!("{}: {e}", config.data_dir.display()))
        })?;
    }
    let store = zy_store::Store::open(
        &config.database_url(),
        config.pg_schema.as_deref(),
        config.max_connections,
    )
    .await?;
    let credentials = bootstrap::first_start(&store).await?;
    let fresh_demo = config.demo && demo::load(&store).await?;
    let (router, doc) = api::api_router().split_for_parts();
    let state = state::AppState::new(store, config, operations(&doc)).await?;
    let _ = state.metrics.started.set(std::time::Instant::now());
    for (p, config) in zy_store::inventory::providers(&state.store).await? {
        state
            .compute
            .drivers
            .install(p.id, &p.kind, &config, &state.compute.kvm, &state.sealer);
    }
    let pki = compute::pki::Pki::load_or_create(&state.store, &state.sealer).await?;
    let _ = state.compute.pki.set(pki);
    for a in zy_store::agents::agents(&state.store).await? {
        if let Err(e) = compute::monitor::register(&state.compute, &a).await {
            tracing::warn!(host = %a.host_id, error = %e, "cannot reach a host agent yet");
        }
    }
    if state.store.backend() == zy_store::Backend::Sqlite {
        // One database file has one server: leases left in it belong to a process that
        // is gone (a crash or kill -9), and waiting for them would only delay recovery.
        let freed = zy_store::sagas::release_all_leases(&state.store).await?;
        zy_store::tasks::release_all(&state.store).await?;
        zy_store::notifications::release_delivery_leases(&state.store).await?;
        if freed > 0 {
            tracing::info!(sagas = freed, "took over sagas left by a previous run");
        }
    }
    state.compute.placement.load(&state.store).await?;
    let adopted = compute::sagas::instance::resync(&state.compute, &state.store).await?;
    if adopted > 0 {
        tracing::info!(
            instances = adopted,
            "instances re-ensured on their providers after start"
        );
    }
    if fresh_demo {
        demo::lease_examples(&state).await?;
    }
    let router = router
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::audit_failures,
        ))
        // Paths no API route matched: the web console, or the API's 404.
        .fallback(web::serve)
        .method_not_allowed_fallback(|| async {
            error::ApiError(error::error_for_status(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
            ))
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::outer,
        ))
        .with_state(state.clone());
    Ok((router, state, credentials))
}

/// A running server (used by `zhengyun server` and by the integration tests).
pub struct Server {
    pub addr: SocketAddr,
    /// The first admins' one-time passwords, when this start created them.
    pub credentials: Option<bootstrap::Credentials>,
    pub state: state::AppState,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    /// The background tasks; dropping it stops them.
    tasks: Option<tasks::Runner>,
    /// The syslog receiver of security events, when configured.
    syslog: Option<syslog::Intake>,
}

impl Server {
    /// Stops accepting, finishes requests in flight, closes the database.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
        if let Some(i) = self.syslog.take() {
            i.stop().await;
        }
        if let Some(r) = self.tasks.take() {
            r.stop().await;
        }
        self.flush_refusals().await;
        self.state.store.close().await;
    }

    /// Writes the summary of refused attempts still in memory (see [`refusals`]).
    async fn flush_refusals(&mut self) {
        if let Err(e) = self.state.refusals.flush(&self.state).await {
            tracing::error!(error = %e, pending = self.state.refusals.pending(), "cannot write the summary of refused attempts");
        }
    }

    /// Waits until the server stops (on Ctrl-C or SIGTERM when started by [`run`]).
    pub async fn wait(mut self) {
        let _ = (&mut self.task).await;
        if let Some(r) = self.tasks.take() {
            r.stop().await;
        }
        self.flush_refusals().await;
    }
}

/// Starts serving on `config.listen` (port 0 picks a free port).
pub async fn start(config: Config) -> Result<Server, Error> {
    let listen = config.listen;
    let (router, state, credentials) = build(config).await?;
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
        Error::unavailable(t!("无法监听地址 {}" ; "cannot listen on {}", listen))
            .with_internal(e.to_string())
    })?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::internal(e.to_string()))?;
    let intake = syslog::start(
        state.store.clone(),
        state.syslog.clone(),
        state.config.syslog_udp,
        state.config.syslog_tcp,
        state.config.syslog_queue,
    )
    .await?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let shutdown = async move {
            tokio::select! {
                _ = rx => {}
                _ = shutdown_signal() => {}
            }
        };
        let svc = router.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(e) = axum::serve(listener, svc)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "server stopped with an error");
        }
    });
    let runner = tasks::Runner::start(
        state.store.clone(),
        state.compute.owner.clone(),
        tasks::builtin::all(&state.compute, &state.store, state.config.lease_secs)
            .into_iter()
            .chain([
                refusals::task(state.clone()),
                requests::timers::task(state.clone()),
                notify::delivery::task(state.clone()),
                app::leases::task(state.clone()),
                compute::ha::task(state.compute.clone(), state.store.clone()),
                app::ha::evacuator(state.clone()),
                app::consolidation::executor(state.clone()),
                app::openstack::task(state.clone()),
                app::dataplane::task(state.compute.clone(), state.store.clone()),
                monitoring::collector::task(state.clone()),
                monitoring::openstack::task(state.clone()),
                monitoring::alerts::task(state.clone()),
                app::secev::task(state.clone()),
                std::sync::Arc::new(compute::sagas::lb::HealthPoll {
                    c: state.compute.clone(),
                    store: state.store.clone(),
                }),
                app::tickets::timers(state.clone()),
                app::inspections::runner(state.clone()),
                app::sla::scorer(state.clone()),
                app::supervision::task(state.clone()),
            ])
            .collect(),
    );
    Ok(Server {
        addr,
        credentials,
        state,
        shutdown: Some(tx),
        task,
        tasks: Some(runner),
        syslog: intake,
    })
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
