//! `vigil serve`: the network server. One gRPC port (OTLP) and one HTTP port (OTLP/HTTP, the
//! audit webhook, health, metrics) in front of one embedded store.

pub mod config;
mod grpc;
mod http;
pub mod pipeline;
mod telemetry;

use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::net::TcpListener;
use vigil::{Db, DbOptions, Durability, StoreOptions};

use config::{Config, DurabilitySetting};
use pipeline::Pipeline;

/// Runs the server until SIGTERM or Ctrl-C; returns once every acknowledged write is durable
/// and the store is closed.
pub async fn serve(config: Config) -> Result<()> {
    let durability = match config.storage.durability {
        DurabilitySetting::Sync => Durability::Sync,
        DurabilitySetting::Buffered => Durability::Buffered,
    };
    let data_dir = config.data_dir.clone();
    let db = tokio::task::spawn_blocking(move || {
        Db::open_with(
            &data_dir,
            DbOptions {
                store: StoreOptions {
                    durability,
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
        "vigil serving"
    );

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    // Collectors send many concurrent exports over one connection: windows of HTTP/2's
    // 64 KiB default would serialise them; Nagle's algorithm would delay every answer.
    let grpc = tonic::transport::Server::builder()
        .initial_connection_window_size(16 << 20)
        .initial_stream_window_size(2 << 20)
        .max_concurrent_streams(128)
        .layer(tower::util::MapResponseLayer::new(
            grpc::invalid_protobuf_is_invalid_argument::<tonic::body::Body>,
        ))
        .add_routes(grpc::routes(Arc::clone(&pipeline)))
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(grpc_listener).with_nodelay(Some(true)),
            stopped(stop_rx.clone()),
        );
    let http = axum::serve(http_listener, http::router(Arc::clone(&pipeline)))
        .with_graceful_shutdown(stopped(stop_rx.clone()));

    let signal_pipeline = Arc::clone(&pipeline);
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: finishing requests in flight");
        signal_pipeline.stop_accepting();
        let _ = stop_tx.send(true);
    });

    let (grpc_result, http_result) = tokio::join!(grpc, http);
    grpc_result.context("gRPC server failed")?;
    http_result.context("HTTP server failed")?;
    drop(pipeline);
    // Every response sent was for durable rows; closing only stops background work.
    match Arc::try_unwrap(db) {
        Ok(db) => tokio::task::spawn_blocking(move || db.close()).await??,
        Err(_) => tracing::warn!("store still referenced at shutdown; it closes when dropped"),
    }
    tracing::info!("stopped");
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
