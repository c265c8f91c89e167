//! HTTP request bodies → every decision handler, the AuthZEN API and the data API writes:
//! an answer with a status its handler designed (each route has its own allow-list; 503 is
//! shed load), never a panic or a hang (the deadline bounds hostile inputs). AuthZEN errors
//! are text/plain and echo `X-Request-ID`. The first byte picks the route and method
//! (`selector % ROUTES.len()`); on the `PUT`, a selector of 128 or more also sends
//! `If-None-Match: *`.
#![no_main]

use axum::body::Body;
use axum::http::{Request, header};
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

/// What a route answers, for the statuses it may give.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// `POST /v1/data[/...]`: OPA's data API read.
    Data,
    /// `POST /v0/data/...`: the raw value, 404 when undefined.
    V0,
    /// `POST /v1/query`.
    Query,
    /// `POST /v1/batch/data/...`: 207 when an item failed.
    Batch,
    /// The gateway API: fails closed with 200, 503 when shed.
    Gateway,
    /// The admin API, without its bearer token.
    Admin,
    /// The AuthZEN API: text/plain errors.
    Authzen,
    /// `PUT` and `PATCH /v1/data/...`.
    Write,
}

impl Kind {
    /// The statuses the handler (and the body limit ahead of it: 413) designed.
    fn designed(self, status: u16) -> bool {
        match self {
            // Undefined is 200; a bad envelope or invalid input 400; a refused input 413;
            // a failed evaluation 500; shed load 503.
            Kind::Data | Kind::Query => matches!(status, 200 | 400 | 413 | 500 | 503),
            // As /v1/data, and 404 `undefined_document`.
            Kind::V0 => matches!(status, 200 | 400 | 404 | 413 | 500 | 503),
            // A failed item (even shed) is reported inside a 207.
            Kind::Batch => matches!(status, 200 | 207 | 400 | 413),
            Kind::Gateway => matches!(status, 200 | 400 | 413 | 503),
            // The body is read (400/413) before the token is checked (401).
            Kind::Admin => matches!(status, 400 | 401 | 413),
            // The specification's 400/500 (404 only for an unknown search kind, which no
            // route here names), 413 for a body over the limit, 503 for shed load.
            Kind::Authzen => matches!(status, 200 | 400 | 413 | 500 | 503),
            // 204 written; 304 `If-None-Match: *` on an existing document; 400 bad body,
            // patch or scope; 404 missing document or conflict; 413 body over the limit;
            // 500 not persisted; 503 the cluster did not take it.
            Kind::Write => matches!(status, 204 | 304 | 400 | 404 | 413 | 500 | 503),
        }
    }
}

struct Route {
    method: &'static str,
    path: &'static str,
    content_type: &'static str,
    kind: Kind,
}

const JSON: &str = "application/json";

const fn route(
    method: &'static str,
    path: &'static str,
    content_type: &'static str,
    kind: Kind,
) -> Route {
    Route {
        method,
        path,
        content_type,
        kind,
    }
}

/// New routes go at the end: a seed's first byte keeps naming the same route.
const ROUTES: &[Route] = &[
    route("POST", "/v1/data/mcp/gateway/decision", JSON, Kind::Data),
    route("POST", "/v1/data", JSON, Kind::Data),
    route("POST", "/v0/data/mcp/gateway/allow", JSON, Kind::V0),
    route("POST", "/v1/query", JSON, Kind::Query),
    route("POST", "/v1/batch/data/mcp/gateway/decision", JSON, Kind::Batch),
    route("POST", "/api/v1/gateway/authorize", JSON, Kind::Gateway),
    route("POST", "/api/v1/gateway/authorize-a2a", JSON, Kind::Gateway),
    route("POST", "/admin/rollout/update", JSON, Kind::Admin),
    route("POST", "/access/v1/evaluation", JSON, Kind::Authzen),
    route("POST", "/access/v1/evaluations", JSON, Kind::Authzen),
    route("POST", "/access/v1/search/subject", JSON, Kind::Authzen),
    route("POST", "/access/v1/search/resource", JSON, Kind::Authzen),
    route("POST", "/access/v1/search/action", JSON, Kind::Authzen),
    // Outside the example bundle's roots (`mcp`, `authzen`), so writes are in scope.
    route("PUT", "/v1/data/fuzz/doc", JSON, Kind::Write),
    route(
        "PATCH",
        "/v1/data/fuzz/doc",
        "application/json-patch+json",
        Kind::Write,
    ),
    // Reads back what the writes left.
    route("POST", "/v1/data/fuzz/doc", JSON, Kind::Data),
];

const REQUEST_ID: &str = "x-request-id";

fuzz_target!(
    init: {
        sark_fuzz::app_state();
        runtime();
    },
    |data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let route = &ROUTES[usize::from(selector) % ROUTES.len()];
    let router = sark::server::router(sark_fuzz::app_state().clone());
    let mut req = Request::builder()
        .method(route.method)
        .uri(route.path)
        .header(header::CONTENT_TYPE, route.content_type)
        .header(REQUEST_ID, "fuzz");
    if route.method == "PUT" && selector >= 128 {
        req = req.header(header::IF_NONE_MATCH, "*");
    }
    let req = req.body(Body::from(body.to_vec())).expect("request");
    let resp = runtime().block_on(router.oneshot(req)).expect("infallible");
    let status = resp.status().as_u16();
    assert!(
        route.kind.designed(status),
        "status {status} on {} {}",
        route.method,
        route.path
    );
    if route.kind == Kind::Authzen {
        let content_type = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        match status {
            200 => assert_eq!(
                content_type,
                "application/json",
                "AuthZEN 200 on {}",
                route.path
            ),
            // A body over the limit may be refused ahead of the handler, in OPA's shape.
            413 => {}
            _ => assert!(
                content_type.starts_with("text/plain"),
                "AuthZEN {status} on {} is `{content_type}`",
                route.path
            ),
        }
        if status != 413 {
            assert_eq!(
                resp.headers().get(REQUEST_ID).map(|v| v.as_bytes()),
                Some(&b"fuzz"[..]),
                "AuthZEN {status} on {} without X-Request-ID",
                route.path
            );
        }
    }
    }
);
