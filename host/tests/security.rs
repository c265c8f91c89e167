//! HTTPS, certificate reload, client certificates and OPA's `--authentication` /
//! `--authorization=basic` against a real `sark serve`, with certificates made by the
//! `openssl` command and a real TLS client (reqwest on rustls).

mod common;

use common::server::{Server, write_config};
use common::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A test PKI: a CA, and certificates it signed.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let dir = scratch(name);
        let pki = Pki { dir };
        pki.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "30",
            "-subj",
            "/CN=sark test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        pki
    }

    fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(&self.dir)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `<name>.pem` and `<name>.key`, signed by the CA: a server certificate for
    /// 127.0.0.1, or a client certificate.
    fn issue(&self, name: &str, subject: &str, server: bool) -> (PathBuf, PathBuf) {
        let ext = if server {
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
        } else {
            "extendedKeyUsage=clientAuth\n"
        };
        std::fs::write(self.dir.join(format!("{name}.ext")), ext).unwrap();
        let (key, csr, pem, extfile) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
            format!("{name}.ext"),
        );
        self.openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            subject,
        ]);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "30",
            "-extfile",
            &extfile,
        ]);
        (self.dir.join(pem), self.dir.join(key))
    }

    fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A client that trusts this CA, optionally presenting `identity` (cert, key).
    fn client(&self, identity: Option<(&Path, &Path)>) -> reqwest::blocking::Client {
        let ca = reqwest::Certificate::from_pem(&std::fs::read(self.ca()).unwrap()).unwrap();
        let mut builder = reqwest::blocking::Client::builder()
            .add_root_certificate(ca)
            .tls_built_in_root_certs(false)
            .tls_info(true)
            .use_rustls_tls()
            .timeout(Duration::from_secs(10));
        if let Some((cert, key)) = identity {
            let mut pem = std::fs::read(cert).unwrap();
            pem.extend(std::fs::read(key).unwrap());
            builder = builder.identity(reqwest::Identity::from_pem(&pem).unwrap());
        }
        builder.build().unwrap()
    }
}

/// `sark serve <args>` in `dir` (the shared test server; its own client is plain HTTP, so the
/// TLS tests make theirs with [`Pki::client`]).
fn serve(dir: &Path, args: &[&str]) -> Server {
    Server::spawn_in(dir, args, None)
}

fn authz_bundle(dir: &Path) -> PathBuf {
    let bundle = dir.join("authz.wasm");
    build(&fixture("authz"), &bundle, &["-e", "app/allow"]);
    bundle
}

fn post(client: &reqwest::blocking::Client, url: &str, body: &Value) -> (u16, Value) {
    let resp = client.post(url).body(body.to_string()).send().unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

/// The DER of the certificate the server presented on a new connection.
fn served_certificate(client: &reqwest::blocking::Client, url: &str) -> Vec<u8> {
    let resp = client.get(url).send().unwrap();
    resp.extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .expect("a TLS peer certificate")
        .to_vec()
}

fn der_of(pem: &Path) -> Vec<u8> {
    let text = std::fs::read_to_string(pem).unwrap();
    let b64: String = text
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    data_encoding::BASE64.decode(b64.as_bytes()).unwrap()
}

#[test]
fn https_with_certificates_reloaded_when_their_files_change() {
    let pki = Pki::new("security-https");
    let (cert, key) = pki.issue("server", "/CN=localhost", true);
    // The files the server reads; replaced below.
    let (live_cert, live_key) = (pki.dir.join("live.pem"), pki.dir.join("live.key"));
    std::fs::copy(&cert, &live_cert).unwrap();
    std::fs::copy(&key, &live_key).unwrap();
    let config = write_config(&pki.dir, "server: { tls_refresh_ms: 100 }\n");
    let s = serve(
        &pki.dir,
        &[
            "--bundle",
            authz_bundle(&pki.dir).to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
            "--tls-cert-file",
            live_cert.to_str().unwrap(),
            "--tls-private-key-file",
            live_key.to_str().unwrap(),
        ],
    );
    assert!(s.base.starts_with("https://127.0.0.1:"), "{}", s.base);
    let client = pki.client(None);
    let (code, body) = post(
        &client,
        &format!("{}/v1/data/app/allow", s.base),
        &json!({"input": {"user": "alice"}}),
    );
    assert_eq!((code, &body["result"]), (200, &json!(true)), "{body}");
    assert_eq!(
        served_certificate(&client, &format!("{}/health", s.base)),
        der_of(&cert)
    );
    // Plain HTTP on the HTTPS port gets no answer.
    let plain = s.base.replacen("https://", "http://", 1);
    let answered = reqwest::blocking::Client::new()
        .get(format!("{plain}/health"))
        .timeout(Duration::from_secs(5))
        .send()
        .map(|r| r.status().as_u16());
    assert!(!matches!(answered, Ok(200)), "{answered:?}");

    // A new certificate in place: new connections get it.
    let (renewed, renewed_key) = pki.issue("renewed", "/CN=localhost renewed", true);
    let tmp = pki.dir.join("swap.tmp");
    std::fs::copy(&renewed_key, &tmp).unwrap();
    std::fs::rename(&tmp, &live_key).unwrap();
    std::fs::copy(&renewed, &tmp).unwrap();
    std::fs::rename(&tmp, &live_cert).unwrap();
    eventually(
        Duration::from_secs(10),
        "the renewed certificate in service",
        || {
            // A fresh client: a new connection, a new handshake.
            served_certificate(&pki.client(None), &format!("{}/health", s.base)) == der_of(&renewed)
        },
    );

    // A broken file: the last good certificate stays in service.
    std::fs::write(&live_cert, "not a certificate").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        served_certificate(&pki.client(None), &format!("{}/health", s.base)),
        der_of(&renewed)
    );
}

#[test]
fn client_certificates_identify_the_caller_to_the_authorization_policy() {
    let pki = Pki::new("security-mtls");
    let (cert, key) = pki.issue("server", "/CN=localhost", true);
    let alice = pki.issue("alice", "/O=Torchwood/OU=opa-client-01/CN=alice", false);
    let bob = pki.issue("bob", "/O=Torchwood/CN=bob", false);
    let carol = pki.issue("carol", "/O=Elsewhere/CN=carol", false);
    let other = Pki::new("security-mtls-other");
    let stranger = other.issue("alice", "/O=Torchwood/OU=opa-client-01/CN=alice", false);
    let s = serve(
        &pki.dir,
        &[
            "--bundle",
            authz_bundle(&pki.dir).to_str().unwrap(),
            "--tls-cert-file",
            cert.to_str().unwrap(),
            "--tls-private-key-file",
            key.to_str().unwrap(),
            "--tls-ca-cert-file",
            pki.ca().to_str().unwrap(),
            "--authentication=tls",
            "--authorization=basic",
        ],
    );
    let url = format!("{}/v1/data/app/allow", s.base);
    let input = json!({"input": {"user": "alice"}});
    let with = |id: &(PathBuf, PathBuf)| pki.client(Some((&id.0, &id.1)));
    // Alice by her subject (RFC 4514, as OPA's identity), carol by the parsed certificate.
    assert_eq!(post(&with(&alice), &url, &input).1["result"], true);
    assert_eq!(post(&with(&carol), &url, &input).1["result"], true);
    // Bob is verified but not allowed: OPA's 401.
    let (code, body) = post(&with(&bob), &url, &input);
    assert_eq!(code, 401, "{body}");
    assert_eq!(
        body,
        json!({"code": "unauthorized", "message": "request rejected by administrative policy"})
    );
    // No certificate, or one from another CA: the handshake fails, no HTTP answer.
    assert!(
        pki.client(None)
            .post(&url)
            .body(input.to_string())
            .send()
            .is_err()
    );
    assert!(
        pki.client(Some((&stranger.0, &stranger.1)))
            .post(&url)
            .body(input.to_string())
            .send()
            .is_err()
    );
}

#[test]
fn bearer_tokens_and_the_authorization_policy() {
    let dir = scratch("security-token");
    let bundle = authz_bundle(&dir);
    let s = serve(
        &dir,
        &[
            "--bundle",
            bundle.to_str().unwrap(),
            "--authentication=token",
            "--authorization=basic",
        ],
    );
    let http = reqwest::blocking::Client::new();
    let url = format!("{}/v1/data/app/allow", s.base);
    let send = |req: reqwest::blocking::RequestBuilder| {
        let resp = req.send().unwrap();
        (
            resp.status().as_u16(),
            resp.json::<Value>().unwrap_or(Value::Null),
        )
    };
    // No token: 401 in OPA's shape.
    let (code, body) = send(http.post(&url).body(r#"{"input": {"user": "alice"}}"#));
    assert_eq!(code, 401, "{body}");
    assert_eq!(body["code"], "unauthorized");
    // The health path is open to anyone.
    assert_eq!(send(http.get(format!("{}/health", s.base))).0, 200);
    // A reader may GET, not POST.
    let (code, body) = send(http.get(&url).bearer_auth("reader-token"));
    assert_eq!(code, 200, "{body}");
    // A decision (not an error), without `decision_id`: the decision log is off (as OPA).
    assert!(
        body.get("code").is_none() && body.get("decision_id").is_none(),
        "{body}"
    );
    assert_eq!(
        send(http.post(&url).bearer_auth("reader-token").body("{}")).0,
        401
    );
    // A writer may POST about alice only: the policy reads the body.
    let (code, body) = send(
        http.post(&url)
            .bearer_auth("writer-token")
            .body(r#"{"input": {"user": "alice"}}"#),
    );
    assert_eq!((code, &body["result"]), (200, &json!(true)), "{body}");
    let (code, _) = send(
        http.post(&url)
            .bearer_auth("writer-token")
            .body(r#"{"input": {"user": "bob"}}"#),
    );
    assert_eq!(code, 401);
    // `bearer` (lower case) is not OPA's scheme: no identity.
    let (code, _) = send(
        http.get(&url)
            .header("Authorization", "bearer reader-token"),
    );
    assert_eq!(code, 401);
    // A body the policy cannot read is OPA's 400.
    let (code, body) = send(
        http.post(&url)
            .bearer_auth("writer-token")
            .body("{not json"),
    );
    assert_eq!(
        (code, body["code"].as_str()),
        (400, Some("invalid_parameter"))
    );
}

#[test]
fn without_an_authorization_policy_every_request_is_refused() {
    let dir = scratch("security-no-policy");
    let bundle = dir.join("basic.wasm");
    build(&fixture("basic"), &bundle, &[]);
    let s = serve(
        &dir,
        &[
            "--bundle",
            bundle.to_str().unwrap(),
            "--authorization=basic",
        ],
    );
    let resp = reqwest::blocking::Client::new()
        .get(format!("{}/v1/data", s.base))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 500);
    let body: Value = resp.json().unwrap();
    assert_eq!(body["code"], "internal_error");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("authorization policy"),
        "{body}"
    );
}

#[test]
fn tls_settings_that_do_not_fit_fail_the_start() {
    let dir = scratch("security-bad-flags");
    let bundle = authz_bundle(&dir);
    let b = bundle.to_str().unwrap();
    let err = fails(&["serve", "--bundle", b, "--tls-cert-file", "x.pem"]);
    assert!(err.contains("tls_private_key_file"), "{err}");
    let err = fails(&["serve", "--bundle", b, "--authentication=tls"]);
    assert!(err.contains("--tls-ca-cert-file"), "{err}");
    let err = fails(&[
        "serve",
        "--bundle",
        b,
        "--tls-cert-file",
        "missing.pem",
        "--tls-private-key-file",
        "missing.key",
    ]);
    assert!(err.contains("missing.pem"), "{err}");
}
