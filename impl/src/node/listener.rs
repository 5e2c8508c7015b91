//! Accepting connections on a listener and serving each with a request handler.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::wire::{serve_connection_with, ConnectionConfig, RequestHandler};

/// Serves `handler` on `listener` until the task is aborted.
pub async fn serve<H: RequestHandler>(
    listener: TcpListener,
    handler: Arc<H>,
    max_request_bytes: usize,
) {
    let config = ConnectionConfig {
        max_request_bytes,
        ..ConnectionConfig::default()
    };
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                let handler = handler.clone();
                tokio::spawn(async move {
                    let _ = serve_connection_with(stream, handler, config).await;
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
