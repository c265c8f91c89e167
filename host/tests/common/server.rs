//! A real `sark serve` process on an ephemeral port, driven by a real HTTP client.

use super::*;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

/// A running server; killed on drop.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub http: reqwest::blocking::Client,
    /// The ext_authz gRPC address (`host:port`), when the configuration turns it on.
    pub ext_authz: Option<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `sark serve` in a fresh working directory of its own (so its default
    /// persistence directory, `.sark`, is never shared between tests).
    pub fn start(
        bundle: &Path,
        config: Option<&Path>,
        extra: &[&str],
        token: Option<&str>,
    ) -> Server {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "sark-it/servers/{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self::start_in(&dir, bundle, config, extra, token)
    }

    /// Starts `sark serve` with `dir` as its working directory (a restart in the same
    /// directory finds the persisted data).
    pub fn start_in(
        dir: &Path,
        bundle: &Path,
        config: Option<&Path>,
        extra: &[&str],
        token: Option<&str>,
    ) -> Server {
        let mut args = vec!["--bundle", bundle.to_str().unwrap()];
        if let Some(c) = config {
            args.extend(["--config", c.to_str().unwrap()]);
        }
        args.extend_from_slice(extra);
        Self::spawn_in(dir, &args, token)
    }

    /// Starts `sark serve <args> --addr 127.0.0.1:0` in `dir` (no `--bundle` is added: a
    /// configuration with a `bundles` section names the bundle service).
    pub fn spawn_in(dir: &Path, args: &[&str], token: Option<&str>) -> Server {
        let mut cmd = sark();
        cmd.current_dir(dir);
        cmd.args(["serve", "--addr", "127.0.0.1:0"]);
        cmd.args(args);
        cmd.env_remove("SARK_ADMIN_TOKEN");
        if let Some(t) = token {
            cmd.env("SARK_ADMIN_TOKEN", t);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let mut ext_authz = None;
        let base = loop {
            let line = lines.next().expect("server printed its address").unwrap();
            if let Some(addr) = line.strip_prefix("listening on ") {
                break addr.to_string();
            }
            if let Some(addr) = line.strip_prefix("ext_authz listening on ") {
                ext_authz = Some(addr.to_string());
            }
        };
        // Keep draining stdout (the decision log may write there).
        std::thread::spawn(move || for _ in lines {});
        Server {
            child,
            base,
            http: reqwest::blocking::Client::new(),
            ext_authz,
        }
    }

    pub fn post(&self, path: &str, body: &str) -> (u16, Value) {
        self.send(
            self.http
                .post(format!("{}{path}", self.base))
                .body(body.to_string()),
        )
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.http.get(format!("{}{path}", self.base)))
    }

    pub fn admin(&self, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
        let mut req = match &body {
            Some(b) => self
                .http
                .post(format!("{}{path}", self.base))
                .body(b.to_string()),
            None if path.contains("rollback-all") || path.contains("reload") => {
                self.http.post(format!("{}{path}", self.base))
            }
            None => self.http.get(format!("{}{path}", self.base)),
        };
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        self.send(req)
    }

    /// A request with `method` and a raw body.
    pub fn request(&self, method: &str, path: &str, body: &str) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        self.send(
            self.http
                .request(method, format!("{}{path}", self.base))
                .body(body.to_string()),
        )
    }

    pub fn send(&self, req: reqwest::blocking::RequestBuilder) -> (u16, Value) {
        let resp = req.send().unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.base))
            .send()
            .unwrap()
            .text()
            .unwrap()
    }
}

pub fn sample(name: &str) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(root().join("policies/samples").join(name)).unwrap(),
    )
    .unwrap()
}

pub fn write_config(dir: &Path, yaml: &str) -> PathBuf {
    let p = dir.join("sark.yaml");
    std::fs::write(&p, yaml).unwrap();
    p
}
