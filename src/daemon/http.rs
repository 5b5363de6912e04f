//! The service's one HTTP listener: `/healthz`, `/readyz`, `/metrics`, `/api/v1/status`, and
//! the Receivers' webhooks under `/hook/`.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Extension, Json, Router};

use super::hook::{self, Webhooks};
use super::Board;

type Shared = Arc<Mutex<Board>>;

/// The routes, reading `board`.
pub fn router(board: Shared) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/status", get(status))
        .with_state(board)
}

async fn readyz(State(board): State<Shared>) -> impl IntoResponse {
    let ready = board.lock().map(|b| b.ready()).unwrap_or(false);
    if ready {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no pass completed yet\n",
        )
    }
}

async fn metrics(State(board): State<Shared>) -> impl IntoResponse {
    let text = board.lock().map(|b| b.metrics()).unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}

async fn status(
    State(board): State<Shared>,
    receivers: Option<Extension<Webhooks>>,
) -> impl IntoResponse {
    let mut json = board
        .lock()
        .map(|b| b.status_json())
        .unwrap_or(serde_json::Value::Null);
    if let (Some(Extension(w)), Some(objects)) = (
        receivers,
        json.get_mut("objects").and_then(|o| o.as_array_mut()),
    ) {
        objects.extend(w.status_objects());
    }
    Json(json)
}

/// Serves `router(board)` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    board: Shared,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(board))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Serves `router(board)` and the webhooks on `listener` until `shutdown` resolves.
pub async fn serve_with_hooks(
    listener: tokio::net::TcpListener,
    board: Shared,
    webhooks: Webhooks,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let routes = router(board)
        .merge(hook::router(webhooks.clone()))
        .layer(Extension(webhooks));
    axum::serve(listener, routes)
        .with_graceful_shutdown(shutdown)
        .await
}
