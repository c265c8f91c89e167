//! HTTP request bodies → every decision handler: an answer with a status, never a panic
//! or a hang (the deadline bounds hostile inputs).
#![no_main]

use axum::body::Body;
use axum::http::Request;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use tower::ServiceExt;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime")
    })
}

const ROUTES: &[&str] = &[
    "/v1/data/mcp/gateway/decision",
    "/v1/data",
    "/v0/data/mcp/gateway/allow",
    "/v1/query",
    "/v1/batch/data/mcp/gateway/decision",
    "/api/v1/gateway/authorize",
    "/api/v1/gateway/authorize-a2a",
    "/admin/rollout/update",
];

fuzz_target!(
    init: {
        sark_fuzz::app_state();
        runtime();
    },
    |data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let route = ROUTES[usize::from(selector) % ROUTES.len()];
    let router = sark::server::router(sark_fuzz::app_state().clone());
    let req = Request::post(route)
        .header("content-type", "application/json")
        .body(Body::from(body.to_vec()))
        .expect("request");
    let resp = runtime().block_on(router.oneshot(req)).expect("infallible");
    let status = resp.status().as_u16();
    // Designed answers only: success, client errors, or an evaluation error (500 with
    // OPA's error body); the gateway fails closed with 200.
    assert!(matches!(status, 200 | 207 | 400 | 401 | 404 | 413 | 415 | 422 | 500), "status {status} on {route}");
    }
);
