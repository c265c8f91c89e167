//! The "bare axum ceiling" of `bench/load.sh`: a plain axum route that parses the JSON body
//! and answers from a `DashMap`, so the cache-hit throughput of `sark serve` can be compared
//! with the best a plain axum route does on the same machine in the same run. It does no
//! policy work: no bundle, no evaluation, no decision logs, no metrics, no admission.
//!
//! `POST /v1/data/{*path}` parses the body as JSON (400 if it is not), takes its `input`
//! member and answers from a map keyed by the raw body bytes: on a hit the cached answer, on
//! a miss `{"result":{"allow":true}}` (`{}`, OPA's undefined decision, without an `input`),
//! stored for the next request with the same body. Like `sark serve` it runs on a
//! multi-thread tokio runtime with the default worker count (one per core), sets
//! `TCP_NODELAY` on every connection, and announces its address with `listening on
//! http://<addr>` on stdout, the line `bench/load.sh` reads.
//!
//! `cargo run --release --example bare_axum -- --addr 127.0.0.1:8282`

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::serve::ListenerExt;
use clap::Parser;
use dashmap::DashMap;
use std::io::Write;
use std::sync::Arc;

#[derive(Parser)]
struct Args {
    /// The address to listen on (`host:port`; port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: String,
}

/// Answers by the raw request body.
type Cache = Arc<DashMap<Vec<u8>, Bytes>>;

fn json(status: StatusCode, body: Bytes) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn decide(State(cache): State<Cache>, body: Bytes) -> Response {
    let document: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(document) => document,
        Err(e) => {
            let error = serde_json::json!({
                "code": "invalid_parameter",
                "message": format!("the request body is not JSON: {e}"),
            });
            return json(StatusCode::BAD_REQUEST, Bytes::from(error.to_string()));
        }
    };
    let input = document.get("input");
    // The map's guard is dropped at the end of this statement, before any insert.
    let hit = cache.get(&body[..]).map(|answer| answer.value().clone());
    if let Some(answer) = hit {
        return json(StatusCode::OK, answer);
    }
    let answer: &'static [u8] = match input {
        Some(_) => br#"{"result":{"allow":true}}"#,
        None => b"{}",
    };
    let answer = Bytes::from_static(answer);
    cache.insert(body.to_vec(), answer.clone());
    json(StatusCode::OK, answer)
}

async fn serve(addr: &str) -> anyhow::Result<()> {
    let cache: Cache = Arc::new(DashMap::new());
    let app = Router::new()
        .route("/v1/data/{*path}", post(decide))
        .with_state(cache);
    let tcp = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    let local = tcp.local_addr()?;
    let listener = tcp.tap_io(|stream| {
        let _ = stream.set_nodelay(true);
    });
    // The same line as `sark serve`: scripts read it to learn the port.
    println!("listening on http://{local}");
    std::io::stdout().flush()?;
    axum::serve(listener, app).await?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // As `sark serve` builds its runtime: multi-thread, default worker count.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(&args.addr))
}
