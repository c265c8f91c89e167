//! Envoy's external authorization (gRPC) on a real `sark serve`, driven by a real gRPC client
//! generated from the Envoy API definitions (envoy-types' tonic client): allow, deny with a
//! status, body and headers, headers added and removed, a request that cannot be read, a
//! decision that is not one, dry-run, the gRPC health service, and the decisions going
//! through the one door (decision log with its id, metrics).

mod common;

use common::*;
use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress, address, socket_address};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Peer, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest, CheckResponse};
use envoy_types::pb::google::protobuf::value::Kind;
use serde_json::json;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The opa-envoy-plugin style fixture policy, built once per run.
fn bundle() -> &'static Path {
    static B: OnceLock<PathBuf> = OnceLock::new();
    B.get_or_init(|| {
        let out = scratch("ext-authz-bundle").join("envoy.wasm");
        build(&fixture("envoy"), &out, &[]);
        out
    })
}

/// A server with ext_authz on an ephemeral loopback port, asking `path`.
fn serve(path: &str, extra: &str) -> (Server, PathBuf) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = scratch(&format!(
        "ext-authz-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let config = write_config(
        &dir,
        &format!(
            "server: {{ reload_poll_ms: 0 }}\next_authz: {{ addr: '127.0.0.1:0', path: {path}{extra} }}\n"
        ),
    );
    let s = Server::start(bundle(), Some(&config), &[], None);
    assert!(
        s.ext_authz.is_some(),
        "the server announced its ext_authz port"
    );
    (s, dir)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn client(s: &Server) -> AuthorizationClient<tonic::transport::Channel> {
    let addr = s.ext_authz.clone().unwrap();
    AuthorizationClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
}

/// A CheckRequest as Envoy sends it for an HTTP request.
fn check(method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> CheckRequest {
    let mut all: HashMap<String, String> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    all.insert(":path".into(), path.into());
    all.insert(":method".into(), method.into());
    let socket = |ip: &str, port: u32| Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: ip.into(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(port)),
            ..Default::default()
        })),
    };
    CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(Peer {
                address: Some(socket("10.0.0.7", 51234)),
                ..Default::default()
            }),
            destination: Some(Peer {
                address: Some(socket("10.0.0.9", 8080)),
                ..Default::default()
            }),
            request: Some(Request {
                http: Some(HttpRequest {
                    id: "req-1".into(),
                    method: method.into(),
                    path: path.into(),
                    host: "api.example.com".into(),
                    scheme: "https".into(),
                    protocol: "HTTP/1.1".into(),
                    headers: all,
                    body: body.into(),
                    size: body.len() as i64,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

fn status_code(r: &CheckResponse) -> i32 {
    r.status.as_ref().map_or(0, |s| s.code)
}

#[test]
fn boolean_decisions_allow_and_deny() {
    let (s, _dir) = serve("envoy/authz/allow", "");
    runtime().block_on(async {
        let mut c = client(&s).await;
        let ok = c
            .check(check("GET", "/public/status?x=1", &[], ""))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(status_code(&ok), 0, "{ok:?}");
        let denied = c
            .check(check("DELETE", "/admin", &[("x-user-id", "mallory")], ""))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(status_code(&denied), 7, "PERMISSION_DENIED: {denied:?}");
        let alice = c
            .check(check("DELETE", "/admin", &[("x-user-id", "alice")], ""))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(status_code(&alice), 0);
        // Every evaluated answer carries its decision id, as opa-envoy-plugin's do.
        let id = alice
            .dynamic_metadata
            .as_ref()
            .and_then(|m| m.fields.get("decision_id"))
            .expect("decision_id in the dynamic metadata");
        let Some(Kind::StringValue(id)) = &id.kind else {
            panic!("decision_id is a string: {id:?}")
        };
        assert!(
            uuid::Uuid::parse_str(id).is_ok(),
            "decision_id {id} is a UUID"
        );
    });
    let metrics = s.metrics();
    assert!(
        metrics.contains("opa_evaluation_total{implementation=\"wasm\""),
        "{metrics}"
    );
}

#[test]
fn object_decisions_shape_the_http_answer() {
    let (s, _dir) = serve("envoy/authz/decision", "");
    runtime().block_on(async {
        let mut c = client(&s).await;
        // Allowed: headers to add upstream and downstream, a header removed, metadata.
        let ok = c
            .check(check(
                "POST",
                "/docs/1",
                &[
                    ("x-user-id", "alice"),
                    ("content-type", "application/json"),
                    ("x-api-key", "k"),
                ],
                r#"{"action": "read"}"#,
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(status_code(&ok), 0, "{ok:?}");
        let Some(HttpResponse::OkResponse(okr)) = &ok.http_response else {
            panic!("an OK response: {ok:?}")
        };
        let added: Vec<(String, String)> = okr
            .headers
            .iter()
            .filter_map(|h| h.header.as_ref())
            .map(|h| (h.key.clone(), h.value.clone()))
            .collect();
        assert_eq!(added, [("x-authz-user".to_string(), "alice".to_string())]);
        assert_eq!(okr.headers_to_remove, ["x-api-key"]);
        assert!(
            okr.response_headers_to_add
                .iter()
                .any(|h| h.header.as_ref().is_some_and(|h| h.key == "x-decided-by")),
            "{okr:?}"
        );
        let meta = format!("{:?}", ok.dynamic_metadata);
        assert!(
            meta.contains("\"user\"") && meta.contains("alice"),
            "{meta}"
        );

        // Denied: the policy's status, body and headers.
        let denied = c
            .check(check("GET", "/search?who=flood", &[], ""))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(status_code(&denied), 7);
        let Some(HttpResponse::DeniedResponse(d)) = &denied.http_response else {
            panic!("a denied response: {denied:?}")
        };
        assert_eq!(d.status.as_ref().map(|s| s.code), Some(429));
        assert_eq!(d.body, "slow down, flood");
        let denied = c
            .check(check("GET", "/other", &[], ""))
            .await
            .unwrap()
            .into_inner();
        let Some(HttpResponse::DeniedResponse(d)) = &denied.http_response else {
            panic!("a denied response: {denied:?}")
        };
        assert_eq!(d.status.as_ref().map(|s| s.code), Some(403));
        assert_eq!(d.body, "denied by sark");
        assert!(d.headers.iter().any(|h| {
            h.header
                .as_ref()
                .is_some_and(|h| h.key == "x-denied-by" && h.value == "sark")
        }));

        // A body that claims JSON and is not: the request cannot be read (400, as the
        // plugin answers), and no decision is made.
        let bad = c
            .check(check(
                "POST",
                "/docs/1",
                &[("content-type", "application/json")],
                "{not json",
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(status_code(&bad), 7, "{bad:?}");
        let Some(HttpResponse::DeniedResponse(d)) = &bad.http_response else {
            panic!("a denied response: {bad:?}")
        };
        assert_eq!(d.status.as_ref().map(|s| s.code), Some(400));
        assert!(d.body.contains("request_parse_error"), "{}", d.body);
    });
}

#[test]
fn broken_decisions_are_call_errors_and_dry_run_always_allows() {
    let (s, _dir) = serve("envoy/authz/broken", "");
    runtime().block_on(async {
        let mut c = client(&s).await;
        let err = c
            .check(check("GET", "/", &[], ""))
            .await
            .expect_err("a decision that is not one fails the call");
        assert_eq!(err.code(), tonic::Code::Unknown);
        assert!(err.message().contains("allowed"), "{}", err.message());
    });
    let (s, _dir) = serve("envoy/authz/decision", ", dry_run: true");
    runtime().block_on(async {
        let mut c = client(&s).await;
        let r = c
            .check(check("GET", "/other", &[], ""))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(status_code(&r), 0, "dry-run answers OK: {r:?}");
        assert!(
            !matches!(r.http_response, Some(HttpResponse::DeniedResponse(_))),
            "{r:?}"
        );
    });
}

#[test]
fn health_service_and_decision_log() {
    let dir = scratch(&format!("ext-authz-log-{}", std::process::id()));
    let log = dir.join("decisions.jsonl");
    let config = write_config(
        &dir,
        &format!(
            "server: {{ reload_poll_ms: 0 }}\next_authz: {{ addr: '127.0.0.1:0' }}\ndecision_log: {{ enabled: true, output: {} }}\n",
            log.display()
        ),
    );
    let s = Server::start(bundle(), Some(&config), &[], None);
    runtime().block_on(async {
        let addr = s.ext_authz.clone().unwrap();
        let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
        let serving = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            serving.status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32
        );
        let mut c = client(&s).await;
        let r = c
            .check(check(
                "GET",
                "/public/a%20b?q=1&q=2",
                &[("x-user-id", "bob")],
                "",
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(status_code(&r), 0);
    });
    let event = &logged_decisions(&log, 1)[0];
    assert_eq!(
        event["input"]["parsed_path"],
        json!(["public", "a b"]),
        "{event}"
    );
    assert_eq!(event["input"]["parsed_query"], json!({"q": ["1", "2"]}));
    assert_eq!(
        event["input"]["attributes"]["source"]["address"]["socketAddress"]["portValue"],
        51234
    );
    assert_eq!(
        event["input"]["version"],
        json!({"ext_authz": "v3", "encoding": "protojson"})
    );
}
