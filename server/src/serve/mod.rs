//! `vigil serve`: the network server. One gRPC port (OTLP, Arrow Flight SQL) and one HTTP
//! port (OTLP/HTTP, the audit webhook, the SQL API, health, metrics) in front of one embedded
//! store, with bearer tokens on every endpoint but `/healthz` and optional TLS on both.

pub mod auth;
pub mod config;
mod flight;
mod grpc;
mod holds_api;
mod http;
mod memory_ceiling;
pub mod pipeline;
pub(crate) mod queries;
mod sql_api;
mod telemetry;
mod tls;

use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::net::TcpListener;
use vigil::{Db, DbOptions, Durability, StoreOptions};

use auth::Authenticator;
use config::{Config, DurabilitySetting};
use flight::FlightSql;
use pipeline::Pipeline;
use queries::Queries;

/// Logs the retention rules in effect, one line each (what `SHOW RETENTION` shows).
pub fn print_retention(options: &vigil::RetentionOptions) {
    let rules = options.policy.rules();
    if rules.is_empty() {
        tracing::info!("retention: no rules, every row is kept");
        return;
    }
    for (i, rule) in rules.iter().enumerate() {
        tracing::info!(
            rule = i + 1,
            "retention: {}: {}",
            rule.selector(),
            rule.describe_keep()
        );
    }
    tracing::info!(
        check_every = %vigil::retention::format_duration(options.check_every),
        change_grace = %vigil::retention::format_duration(options.change_grace),
        "retention: kinds no rule names are kept forever"
    );
}

/// Runs the server until SIGTERM or Ctrl-C; returns once every acknowledged write is durable
/// and the store is closed.
pub async fn serve(config: Config) -> Result<()> {
    let durability = match config.storage.durability {
        DurabilitySetting::Sync => Durability::Sync,
        DurabilitySetting::Buffered => Durability::Buffered,
    };
    let data_dir = config.data_dir.clone();
    let retention = config.retention.options()?;
    print_retention(&retention);
    let db = tokio::task::spawn_blocking(move || {
        Db::open_with(
            &data_dir,
            DbOptions {
                store: StoreOptions {
                    durability,
                    retention,
                    ..StoreOptions::default()
                },
                ..DbOptions::default()
            },
        )
    })
    .await?
    .with_context(|| format!("cannot open the store in {}", config.data_dir.display()))?;
    let db = Arc::new(db);
    let pipeline = Arc::new(Pipeline::new(Arc::clone(&db), config.ingest.clone()));
    let auth = Arc::new(Authenticator::new(&db, &config.auth)?);
    let queries = Arc::new(
        Queries::new(config.query.clone(), pipeline.telemetry.query.clone())
            .context("cannot start the threads queries run on")?,
    );
    if auth.is_open() {
        tracing::warn!(
            "no [[auth.tokens]] configured: any local client may ingest and run read-only SQL \
             over every namespace (SQL that writes or touches files needs an admin token); \
             add tokens before listening beyond loopback (docs/configuration.md)"
        );
    } else {
        tracing::info!(
            tokens = config.auth.tokens.len(),
            "bearer tokens required on every endpoint but /healthz"
        );
    }

    let grpc_listener = TcpListener::bind(config.listen.grpc)
        .await
        .with_context(|| format!("cannot listen on {} (listen.grpc)", config.listen.grpc))?;
    let http_listener = TcpListener::bind(config.listen.http)
        .await
        .with_context(|| format!("cannot listen on {} (listen.http)", config.listen.http))?;
    tracing::info!(
        data_dir = %config.data_dir.display(),
        grpc = %grpc_listener.local_addr()?,
        http = %http_listener.local_addr()?,
        durability = ?config.storage.durability,
        tls = config.tls.is_some(),
        "vigil serving"
    );

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    // Collectors send many concurrent exports over one connection: windows of HTTP/2's
    // 64 KiB default would serialise them; Nagle's algorithm would delay every answer.
    // TLS files are read and checked before anything is served.
    let https = config.tls.as_ref().map(tls::http_config).transpose()?;
    let mut grpc = tonic::transport::Server::builder();
    if let Some(tls) = &config.tls {
        grpc = grpc
            .tls_config(tls::grpc_config(tls)?)
            .context("TLS on the gRPC port")?;
    }
    let grpc = grpc
        .initial_connection_window_size(16 << 20)
        .initial_stream_window_size(2 << 20)
        .max_concurrent_streams(128)
        .layer(tower::util::MapResponseLayer::new(
            grpc::invalid_protobuf_is_invalid_argument::<tonic::body::Body>,
        ))
        .add_routes(
            grpc::routes(Arc::clone(&pipeline), Arc::clone(&auth))
                .add_service(FlightSql::new(Arc::clone(&auth), Arc::clone(&queries)).server()),
        )
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(grpc_listener).with_nodelay(Some(true)),
            stopped(stop_rx.clone()),
        );
    let router = http::router(
        Arc::clone(&pipeline),
        Arc::clone(&auth),
        Arc::clone(&queries),
        Arc::clone(&db),
    );
    let http = async {
        match https {
            Some(tls) => serve_https(http_listener, router, tls, stopped(stop_rx.clone())).await,
            None => axum::serve(http_listener, router)
                .with_graceful_shutdown(stopped(stop_rx.clone()))
                .await
                .map_err(anyhow::Error::from),
        }
    };

    let signal_pipeline = Arc::clone(&pipeline);
    let signal_queries = Arc::clone(&queries);
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: finishing writes in flight, ending queries");
        signal_pipeline.stop_accepting();
        signal_queries.stop();
        let _ = stop_tx.send(true);
    });

    let (grpc_result, http_result) = tokio::join!(grpc, http);
    grpc_result.context("gRPC server failed")?;
    http_result.context("HTTP server failed")?;
    drop(pipeline);
    drop(auth);
    // Every response sent was for durable rows; closing only stops background work.
    match Arc::try_unwrap(db) {
        Ok(db) => tokio::task::spawn_blocking(move || db.close()).await??,
        Err(_) => tracing::warn!("store still referenced at shutdown; it closes when dropped"),
    }
    tracing::info!("stopped");
    Ok(())
}

/// A client that opens a connection and never completes the handshake is dropped after this.
const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves `router` over TLS until `stop`, then lets open connections finish.
async fn serve_https(
    listener: TcpListener,
    router: axum::Router,
    tls: Arc<tokio_rustls::rustls::ServerConfig>,
    stop: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let builder =
        hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    tokio::pin!(stop);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, most likely: wait instead of spinning.
                    tracing::warn!("accepting a connection failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let handshake = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp));
            let stream = match handshake.await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, "TLS handshake failed: {e}");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let io = hyper_util::rt::TokioIo::new(stream);
            let connection = builder
                .serve_connection_with_upgrades(io, service)
                .into_owned();
            if let Err(e) = watcher.watch(connection).await {
                tracing::debug!(%peer, "connection ended: {e}");
            }
        });
    }
    graceful.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("cannot listen for SIGTERM: {e}");
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
