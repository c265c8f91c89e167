//! Several real `sark serve` processes sharing a real `redis-server` (started here on an
//! ephemeral port, so a test can kill and restart it): rollout propagation, consistent
//! bucketing, the shared decision cache, and Redis outages.

mod common;

use common::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "cluster-token";

/// A `redis-server` child process without persistence; killed on drop.
struct Redis {
    child: Option<Child>,
    port: u16,
}

impl Redis {
    fn start() -> Redis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut r = Redis { child: None, port };
        r.restart();
        r
    }

    /// Starts (again) on the same port, empty.
    fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "redis-server is installed (Debian package redis-server; `.ci/run` installs it)",
            );
        self.child = Some(child);
        eventually(
            Duration::from_secs(10),
            "redis-server to accept connections",
            || std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok(),
        );
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Freezes (SIGSTOP) or thaws (SIGCONT) the server: connections stay open, nothing answers.
    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().unwrap().id().to_string();
        assert!(
            Command::new("kill")
                .args([sig, &pid])
                .status()
                .unwrap()
                .success()
        );
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `redis-cli` against this server.
    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

fn cluster_config(dir: &Path, redis: &Redis, prefix: &str, shared: bool) -> PathBuf {
    write_config(
        dir,
        &format!(
            "cluster: {{ redis_url: '{}', key_prefix: {prefix}, resync_ms: 500 }}\n\
             features: {{ decision_cache: {{ shared: {shared} }} }}\n",
            redis.url()
        ),
    )
}

fn start(bundle: &Path, config: &Path) -> Server {
    Server::start(bundle, Some(config), &[], Some(TOKEN))
}

fn percentage(s: &Server, feature: &str) -> u64 {
    let (code, body) = s.admin("/admin/features", Some(TOKEN), None);
    assert_eq!(code, 200, "{body}");
    body["features"][feature]["rollout_percentage"]
        .as_u64()
        .unwrap()
}

fn set_percentage(s: &Server, feature: &str, pct: u32) -> (u16, Value) {
    s.admin(
        "/admin/rollout/update",
        Some(TOKEN),
        Some(json!({"feature": feature, "percentage": pct})),
    )
}

fn health(s: &Server) -> Value {
    s.get("/health").1
}

/// Waits until every server reports `ok`: connected to Redis and subscribed.
fn wait_connected<'a>(servers: impl IntoIterator<Item = &'a Server>) {
    for s in servers {
        eventually(Duration::from_secs(10), "a connected instance", || {
            health(s)["status"] == "ok"
        });
    }
}

/// Decides `input` and returns the `metrics` object of the answer (implementation, cache).
fn decide(s: &Server, input: &Value) -> Value {
    let (code, body) = s.post(
        "/v1/data/mcp/gateway/decision?metrics=true",
        &json!({ "input": input }).to_string(),
    );
    assert_eq!(code, 200, "{body}");
    body["metrics"].clone()
}

fn input_for(user: &str) -> Value {
    let mut input = sample("developer-create-issue.json");
    input["user"]["id"] = json!(user);
    input
}

#[test]
fn rollout_changes_reach_every_instance_within_a_second_and_users_agree() {
    let redis = Redis::start();
    let dir = scratch("cluster-rollout");
    let config = cluster_config(&dir, &redis, "rollout", false);
    let servers: Vec<Server> = (0..3).map(|_| start(example_bundle(), &config)).collect();
    wait_connected(&servers);

    // A change on one instance reaches the others within 1 s.
    let mut propagation = vec![];
    for (origin, pct) in [(0, 37u64), (1, 64), (2, 5), (0, 37)] {
        let (code, body) = set_percentage(&servers[origin], "wasm_engine", pct as u32);
        assert_eq!(code, 200, "{body}");
        for s in &servers {
            propagation.push(eventually(
                Duration::from_secs(1),
                "the change on every instance",
                || percentage(s, "wasm_engine") == pct,
            ));
        }
    }
    eprintln!(
        "rollout propagation (incl. one admin read each): max {:?}",
        propagation.iter().max()
    );
    assert_eq!(
        redis
            .cli(&["hget", "rollout:rollout:wasm_engine", "rollout_percentage"])
            .trim(),
        "37"
    );

    // The same users on the same path on every instance, and the path the bucket gives.
    let (mut wasm, mut native) = (0, 0);
    for i in 0..150 {
        let user = format!("user-{i}");
        let expected = if sark::flags::bucket("wasm_engine", &user) < 37 {
            "wasm"
        } else {
            "native"
        };
        for s in &servers {
            assert_eq!(
                decide(s, &input_for(&user))["implementation"],
                expected,
                "{user}"
            );
        }
        if expected == "wasm" {
            wasm += 1
        } else {
            native += 1
        }
    }
    assert!(wasm > 20 && native > 60, "{wasm} wasm, {native} native");

    // A rollback on any instance sends everyone to the native path everywhere.
    let (code, _) = servers[2].admin(
        "/admin/rollout/rollback",
        Some(TOKEN),
        Some(json!({"feature": "wasm_engine"})),
    );
    assert_eq!(code, 200);
    for s in &servers {
        eventually(
            Duration::from_secs(1),
            "the rollback on every instance",
            || percentage(s, "wasm_engine") == 0,
        );
        assert_eq!(decide(s, &input_for("user-1"))["implementation"], "native");
    }
    let metrics = servers[0].metrics();
    assert!(metrics.contains("cluster_redis_connected 1"), "{metrics}");
    assert!(
        metrics.contains("cluster_rollout_updates_total{source=\"pubsub\"}"),
        "{metrics}"
    );
}

#[test]
fn shared_cache_serves_other_instances_and_never_another_revision() {
    let redis = Redis::start();
    let dir = scratch("cluster-shared-cache");
    let other = dir.join("other.wasm");
    build(&root().join("policies"), &other, &["--revision", "other"]);
    let config = cluster_config(&dir, &redis, "shared", true);
    let a = start(example_bundle(), &config);
    let b = start(example_bundle(), &config);
    let c = start(&other, &config);
    wait_connected([&a, &b, &c]);

    let input = input_for("shared-user");
    let first = decide(&a, &input);
    assert_eq!(first["cache_hit"], false);
    // The write to Redis is off the response path: wait until it landed.
    eventually(Duration::from_secs(2), "the decision in redis", || {
        !redis.cli(&["keys", "shared:decision:*"]).trim().is_empty()
    });
    let second = decide(&b, &input);
    assert_eq!(second["shared_cache_hit"], true, "{second}");
    let third = decide(&b, &input);
    assert_eq!(third["cache_hit"], true);
    assert_eq!(
        third["shared_cache_hit"], false,
        "now in b's local cache: {third}"
    );
    // Another revision has its own entries: c evaluates.
    let on_c = decide(&c, &input);
    assert_eq!(on_c["cache_hit"], false, "{on_c}");

    // Entries expire with the decision's own TTL (`cache_ttl` in the policy's answer).
    let (_, answer) = a.post(
        "/v1/data/mcp/gateway/decision",
        &json!({ "input": input }).to_string(),
    );
    let policy_ttl_ms = answer["result"]["cache_ttl"].as_f64().unwrap() * 1000.0;
    let keys = redis.cli(&["keys", "shared:decision:*"]);
    let key = keys.lines().next().unwrap().trim().to_string();
    let ttl: f64 = redis.cli(&["pttl", &key]).trim().parse().unwrap();
    assert!(
        ttl > policy_ttl_ms - 30_000.0 && ttl <= policy_ttl_ms,
        "{ttl} ms left of {policy_ttl_ms}"
    );
    assert!(b.metrics().contains(
        "cache_operations_total{implementation=\"redis\",operation=\"get\",result=\"hit\"} 1"
    ));
}

#[test]
fn redis_outage_degrades_and_resyncs() {
    let mut redis = Redis::start();
    let dir = scratch("cluster-outage");
    let config = cluster_config(&dir, &redis, "outage", true);
    let a = start(example_bundle(), &config);
    let b = start(example_bundle(), &config);
    wait_connected([&a, &b]);
    assert_eq!(set_percentage(&a, "wasm_engine", 40).0, 200);
    eventually(Duration::from_secs(1), "the change on b", || {
        percentage(&b, "wasm_engine") == 40
    });

    // Redis frozen: decisions never wait on it longer than the timeout (20 ms by default).
    redis.signal("-STOP");
    let t = Instant::now();
    for i in 0..20 {
        decide(&b, &input_for(&format!("frozen-{i}")));
    }
    let per_decision = t.elapsed() / 20;
    redis.signal("-CONT");
    assert!(
        per_decision < Duration::from_millis(300),
        "{per_decision:?} per decision"
    );
    assert!(b.metrics().contains("operation=\"get\",result=\"timeout\""));

    // Redis gone: decisions keep flowing with the last known state; health says degraded;
    // changes are refused rather than applied on one instance only.
    redis.kill();
    for s in [&a, &b] {
        eventually(Duration::from_secs(5), "degraded health", || {
            health(s)["status"] == "degraded"
        });
        assert_eq!(percentage(s, "wasm_engine"), 40);
    }
    let h = health(&a);
    assert_eq!(h["cluster"]["connected"], false, "{h}");
    assert!(h["cluster"]["last_error"].is_string(), "{h}");
    for i in 0..50 {
        let user = format!("outage-{i}");
        let expected = if sark::flags::bucket("wasm_engine", &user) < 40 {
            "wasm"
        } else {
            "native"
        };
        assert_eq!(decide(&a, &input_for(&user))["implementation"], expected);
    }
    let (code, body) = set_percentage(&b, "wasm_engine", 90);
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["code"], "cluster_unavailable");
    assert!(b.metrics().contains("cluster_redis_connected 0"));

    // Redis back (empty): the instances reconnect, write back their state, and follow
    // changes again.
    redis.restart();
    wait_connected([&a, &b]);
    assert_eq!(
        redis
            .cli(&["hget", "outage:rollout:wasm_engine", "rollout_percentage"])
            .trim(),
        "40"
    );
    assert_eq!(set_percentage(&b, "wasm_engine", 90).0, 200);
    eventually(
        Duration::from_secs(1),
        "the change on a after the outage",
        || percentage(&a, "wasm_engine") == 90,
    );
}

/// A config joining the cluster, with its own persistence directory.
fn data_config(dir: &Path, redis: &Redis) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    write_config(
        dir,
        &format!(
            "cluster: {{ redis_url: '{}', key_prefix: data, resync_ms: 500 }}\n\
             persistence_directory: {}\nserver: {{ reload_poll_ms: 0 }}\n",
            redis.url(),
            dir.join("state").display()
        ),
    )
}

fn allows(s: &Server, user: &str) -> bool {
    let (code, body) = s.post(
        "/v1/data/example/authz/allow",
        &json!({"input": {"user": user, "action": "write"}}).to_string(),
    );
    assert_eq!(code, 200, "{body}");
    body["result"] == json!(true)
}

fn put_role(s: &Server, user: &str) {
    let (code, body) = s.request(
        "PUT",
        &format!("/v1/data/users/{user}"),
        r#"{"roles": ["admin"]}"#,
    );
    assert_eq!(code, 204, "{body}");
}

#[test]
fn data_writes_reach_every_instance_within_a_second_and_a_returning_instance_resyncs() {
    let redis = Redis::start();
    let dir = scratch("cluster-data");
    let bundle = dir.join("opa_api.wasm");
    build(&fixture("opa_api"), &bundle, &[]);
    let (cfg_a, cfg_b) = (
        data_config(&dir.join("a"), &redis),
        data_config(&dir.join("b"), &redis),
    );
    let a = start(&bundle, &cfg_a);
    let b = start(&bundle, &cfg_b);
    wait_connected([&a, &b]);
    let mut seen = Vec::new();
    for i in 0..10 {
        let user = format!("u{i}");
        assert!(!allows(&b, &user));
        // Writes alternate between the instances; each is seen by the other within 1 s.
        let (writer, reader) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        put_role(writer, &user);
        assert!(
            allows(writer, &user),
            "the writer sees its own write at once"
        );
        seen.push(eventually(
            Duration::from_secs(1),
            "the write on the other instance",
            || allows(reader, &user),
        ));
    }
    seen.sort();
    eprintln!(
        "write seen on the other instance: median {:?}, max {:?}",
        seen[seen.len() / 2],
        seen[seen.len() - 1]
    );

    // An instance that was down applies what it missed when it comes back.
    drop(b);
    put_role(&a, "late");
    let (code, _) = a.request("DELETE", "/v1/data/users/u0", "");
    assert_eq!(code, 204);
    let b = start(&bundle, &cfg_b);
    wait_connected([&b]);
    assert!(allows(&b, "late"));
    assert!(!allows(&b, "u0"));
    assert!(allows(&b, "u1"));
    // Both instances hold the same documents.
    assert_eq!(
        a.get("/v1/data/users").1["result"],
        b.get("/v1/data/users").1["result"]
    );
}
