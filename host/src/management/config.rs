//! OPA's management sections of the configuration, with OPA's key names and meanings:
//! `services`, `bundles`, `keys`, `decision_logs`, `status` and `labels`. An OPA
//! configuration's sections pasted into `sark.yaml` work; keys OPA has and sark does not
//! support are refused with a message that names them (see `docs/configuration.md`).

use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;

/// OPA's `services`: a map by name, or OPA's list form (`- name: x`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Services(pub BTreeMap<String, ServiceConfig>);

impl<'de> Deserialize<'de> for Services {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let value = serde_json::Value::deserialize(d)?;
        let entries: Vec<(String, serde_json::Value)> = match value {
            serde_json::Value::Null => Vec::new(),
            serde_json::Value::Object(map) => map.into_iter().collect(),
            serde_json::Value::Array(list) => list
                .into_iter()
                .map(|mut entry| {
                    let name = entry
                        .as_object_mut()
                        .and_then(|o| o.remove("name"))
                        .and_then(|n| n.as_str().map(str::to_string))
                        .ok_or_else(|| {
                            D::Error::custom("services: every entry of the list needs a `name`")
                        })?;
                    Ok((name, entry))
                })
                .collect::<Result<_, D::Error>>()?,
            _ => return Err(D::Error::custom("services must be a map or a list")),
        };
        let mut services = BTreeMap::new();
        for (name, v) in entries {
            let service: ServiceConfig = serde_json::from_value(v)
                .map_err(|e| D::Error::custom(format!("services.{name}: {e}")))?;
            services.insert(name, service);
        }
        Ok(Services(services))
    }
}

/// One service (OPA's `services.<name>`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceConfig {
    /// Base URL (`http://` or `https://`). Required.
    pub url: String,
    /// Headers sent with every request.
    pub headers: BTreeMap<String, String>,
    /// How requests authenticate. sark supports `bearer`.
    pub credentials: Credentials,
    /// TLS settings of `https` URLs.
    pub tls: Option<ServiceTls>,
    /// `oci` for an OCI registry: bundles' `resource` is then a reference
    /// (`registry/repository:tag` or `…@sha256:…`).
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Longest wait for a response's headers, in seconds. Default 10 (OPA's).
    pub response_header_timeout_seconds: Option<u64>,
    /// Accept any server certificate (OPA's key). Default false.
    pub allow_insecure_tls: bool,
}

/// OPA's `services.<name>.credentials`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Credentials {
    /// A bearer token, inline or read from a file at each request.
    pub bearer: Option<Bearer>,
    /// OPA's other methods, refused by sark with a message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oauth2: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub client_tls: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub s3_signing: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub gcp_metadata: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub azure_managed_identity: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub plugin: Option<serde_json::Value>,
}

/// OPA's `credentials.bearer`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Bearer {
    /// The token itself.
    pub token: Option<String>,
    /// A file holding the token, read at every request (so a rotated token is picked up).
    pub token_path: Option<std::path::PathBuf>,
    /// The authorization scheme. Default `Bearer`.
    pub scheme: Option<String>,
}

impl Bearer {
    /// The token: inline, or read from `token_path` now (whitespace trimmed, as OPA).
    pub fn token(&self) -> Result<String, String> {
        match (&self.token, &self.token_path) {
            (Some(t), _) => Ok(t.clone()),
            (None, Some(p)) => std::fs::read_to_string(p)
                .map(|t| t.trim().to_string())
                .map_err(|e| format!("bearer token_path {}: {e}", p.display())),
            (None, None) => Ok(String::new()),
        }
    }
}

/// OPA's `services.<name>.tls`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceTls {
    /// PEM file of the CA certificates the server's certificate is checked against
    /// (instead of the system's, unless `system_ca_required`).
    pub ca_cert: Option<std::path::PathBuf>,
    /// Trust the system's CAs as well as `ca_cert`. Default false (OPA's).
    pub system_ca_required: bool,
}

/// One bundle (OPA's `bundles.<name>`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BundleSource {
    /// The service it is downloaded from. Required.
    pub service: String,
    /// Path under the service's URL. Default `bundles/<name>` (OPA's).
    pub resource: Option<String>,
    /// Keep the last verified bundle in the persistence directory and start from it while
    /// the service is unreachable. Default false.
    pub persist: bool,
    /// When the service is asked for a new revision.
    pub polling: Polling,
    /// Verification of OPA's `.signatures.json` (tarballs) or sark's signature (`.wasm`).
    /// Present (even empty): every downloaded bundle must be signed.
    pub signing: Option<Signing>,
    /// Largest accepted download, in bytes. Default 1 GiB (OPA's).
    pub size_limit_bytes: Option<u64>,
    /// `periodic` (the default); `manual` is refused.
    pub trigger: Option<String>,
}

impl BundleSource {
    /// The resource path for bundle `name`, without a leading `/`.
    pub fn resource_for(&self, name: &str) -> String {
        self.resource
            .clone()
            .unwrap_or_else(|| format!("bundles/{name}"))
            .trim_start_matches('/')
            .to_string()
    }

    /// The download size limit.
    pub fn size_limit(&self) -> u64 {
        self.size_limit_bytes.unwrap_or(DEFAULT_BUNDLE_SIZE_LIMIT)
    }
}

/// OPA's default `size_limit_bytes` of a bundle: 1 GiB.
pub const DEFAULT_BUNDLE_SIZE_LIMIT: u64 = 1 << 30;

/// OPA's `polling` block.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Polling {
    /// Shortest wait between two polls, in seconds. Default 60 (OPA's).
    pub min_delay_seconds: Option<u64>,
    /// Longest wait between two polls, in seconds. Default 120 (OPA's).
    pub max_delay_seconds: Option<u64>,
    /// Ask the service to hold the request open up to this long until a new revision
    /// (`Prefer: wait=N`). Default none (periodic polling).
    pub long_polling_timeout_seconds: Option<u64>,
}

impl Polling {
    /// The (min, max) delay in seconds, with OPA's defaults.
    pub fn delays(&self) -> (u64, u64) {
        (
            self.min_delay_seconds.unwrap_or(60),
            self.max_delay_seconds.unwrap_or(120),
        )
    }
}

/// OPA's `signing` block of a bundle.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Signing {
    /// The key (`keys.<id>`) signatures are verified with; default the token's `kid`.
    pub keyid: Option<String>,
    /// The scope the signature must carry, when set.
    pub scope: Option<String>,
    /// Files not covered by the signature (globs over bundle paths).
    pub exclude_files: Vec<String>,
}

/// One verification key (OPA's `keys.<id>`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeyConfig {
    /// The JWS algorithm. Default `RS256` (OPA's).
    pub algorithm: Option<String>,
    /// The PEM public key, or the secret for `HS*`.
    pub key: Option<String>,
    /// OPA's signing key of `opa build`; not used by a server (refused).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
    /// The scope signatures made with this key carry.
    pub scope: Option<String>,
}

impl KeyConfig {
    /// The algorithm with OPA's default.
    pub fn algorithm(&self) -> &str {
        self.algorithm.as_deref().unwrap_or("RS256")
    }
}

/// OPA's `decision_logs`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecisionLogsConfig {
    /// The service events are uploaded to.
    pub service: Option<String>,
    /// Path under the service's URL. Default `/logs` (OPA's).
    pub resource: Option<String>,
    /// Also print every event on the console (stdout, one JSON line each).
    pub console: bool,
    /// Batching, buffering and upload limits.
    pub reporting: Reporting,
    /// OPA's deprecated partition (`/logs/<partition_name>`).
    pub partition_name: Option<String>,
    /// OPA's masking and dropping policies, refused: sark masks with `decision_log.mask`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mask_decision: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub drop_decision: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub plugin: Option<String>,
}

impl DecisionLogsConfig {
    /// The upload path, without a leading `/`.
    pub fn resource(&self) -> String {
        let base = self
            .resource
            .clone()
            .unwrap_or_else(|| "/logs".into())
            .trim_start_matches('/')
            .to_string();
        match &self.partition_name {
            Some(p) => format!("{base}/{p}"),
            None => base,
        }
    }
}

/// OPA's `decision_logs.reporting`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Reporting {
    /// Shortest wait between two uploads, in seconds. Default 300 (OPA's).
    pub min_delay_seconds: Option<u64>,
    /// Longest wait between two uploads, in seconds. Default 600 (OPA's).
    pub max_delay_seconds: Option<u64>,
    /// Bound on the events held for upload, in bytes of their JSON. OPA's default is
    /// unbounded; sark's is 64 MiB, so an outage cannot exhaust memory.
    pub buffer_size_limit_bytes: Option<u64>,
    /// Bound on the events held for upload, in events (OPA's event buffer). Default none.
    pub buffer_size_limit_events: Option<u64>,
    /// Largest upload, in bytes of gzip. Default 32,768 (OPA's).
    pub upload_size_limit_bytes: Option<u64>,
    /// OPA's `size` or `event`; both mean a bounded buffer in sark.
    pub buffer_type: Option<String>,
    /// OPA's rate limit on events; refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_decisions_per_second: Option<f64>,
    /// Upload as soon as a batch is full rather than waiting for the delay (OPA's). Default
    /// false.
    pub trigger: Option<String>,
}

/// Defaults of `decision_logs.reporting` that are not OPA's own.
pub const DEFAULT_LOG_BUFFER_BYTES: u64 = 64 << 20;

impl Reporting {
    /// (min, max) delay between uploads in seconds.
    pub fn delays(&self) -> (u64, u64) {
        (
            self.min_delay_seconds.unwrap_or(300),
            self.max_delay_seconds.unwrap_or(600),
        )
    }

    /// Largest upload in bytes.
    pub fn upload_limit(&self) -> u64 {
        self.upload_size_limit_bytes.unwrap_or(32_768)
    }

    /// Bound of the buffer in bytes.
    pub fn buffer_limit(&self) -> u64 {
        self.buffer_size_limit_bytes
            .unwrap_or(DEFAULT_LOG_BUFFER_BYTES)
    }
}

/// OPA's `status`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatusConfig {
    /// The service status reports are sent to.
    pub service: Option<String>,
    /// `/status/<partition_name>` instead of `/status`.
    pub partition_name: Option<String>,
    /// Also print every report on the console.
    pub console: bool,
    /// OPA's status plugin and Prometheus toggles; refused or ignored as documented.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
    /// Accepted and ignored: sark always serves `/metrics`.
    pub prometheus: bool,
}

impl StatusConfig {
    /// The upload path, without a leading `/`.
    pub fn resource(&self) -> String {
        match &self.partition_name {
            Some(p) => format!("status/{p}"),
            None => "status".into(),
        }
    }
}

/// The management sections together, as they appear at the top level of the file.
#[derive(Debug, Clone, Copy)]
pub struct Management<'a> {
    /// `services`.
    pub services: &'a Services,
    /// `bundles`.
    pub bundles: &'a BTreeMap<String, BundleSource>,
    /// `keys`.
    pub keys: &'a BTreeMap<String, KeyConfig>,
    /// `decision_logs`.
    pub decision_logs: Option<&'a DecisionLogsConfig>,
    /// `status`.
    pub status: Option<&'a StatusConfig>,
}

impl Management<'_> {
    /// Checks the sections together: references between them, values, and what sark does
    /// not support.
    pub fn validate(&self) -> Result<(), String> {
        for (name, s) in &self.services.0 {
            validate_service(name, s)?;
        }
        let service = |owner: &str, name: &str| -> Result<(), String> {
            if self.services.0.contains_key(name) {
                Ok(())
            } else {
                Err(format!(
                    "{owner} names service `{name}`, which is not in `services`"
                ))
            }
        };
        if self.bundles.len() > 1 {
            return Err(format!(
                "bundles: sark serves one bundle; {} are configured ({})",
                self.bundles.len(),
                self.bundles.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        for (name, b) in self.bundles {
            let at = format!("bundles.{name}");
            if b.service.is_empty() {
                return Err(format!("{at}.service is required"));
            }
            service(&format!("{at}.service"), &b.service)?;
            let (min, max) = b.polling.delays();
            if min == 0 {
                return Err(format!("{at}.polling.min_delay_seconds must be at least 1"));
            }
            if max < min {
                return Err(format!(
                    "{at}.polling.max_delay_seconds ({max}) must not be less than min_delay_seconds ({min})"
                ));
            }
            if b.polling.long_polling_timeout_seconds == Some(0) {
                return Err(format!(
                    "{at}.polling.long_polling_timeout_seconds must be at least 1"
                ));
            }
            if let Some(t) = b.trigger.as_deref().filter(|t| *t != "periodic") {
                return Err(format!(
                    "{at}.trigger `{t}` is not supported by sark (only periodic)"
                ));
            }
            if b.size_limit_bytes == Some(0) {
                return Err(format!("{at}.size_limit_bytes must be at least 1"));
            }
            if let Some(signing) = &b.signing {
                if let Some(id) = &signing.keyid
                    && !self.keys.contains_key(id)
                {
                    return Err(format!("{at}.signing.keyid `{id}` is not in `keys`"));
                }
                for glob in &signing.exclude_files {
                    globset::Glob::new(glob).map_err(|e| {
                        format!("{at}.signing.exclude_files: `{glob}` is not a glob: {e}")
                    })?;
                }
            }
            if self
                .services
                .0
                .get(&b.service)
                .and_then(|s| s.kind.as_deref())
                == Some("oci")
            {
                let resource = b.resource.as_deref().unwrap_or_default();
                super::oci::reference(resource).map_err(|e| {
                    format!(
                        "{at}.resource: the service is an OCI registry, the resource must be a reference: {e}"
                    )
                })?;
            }
        }
        for (id, k) in self.keys {
            if k.private_key.is_some() {
                return Err(format!(
                    "keys.{id}.private_key: sark verifies bundles and never signs at run time; remove the private key"
                ));
            }
            if k.key.as_deref().is_none_or(str::is_empty) {
                return Err(format!("keys.{id}.key is required"));
            }
            const ALGS: &[&str] = &[
                "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512",
                "HS256", "HS384", "HS512", "EdDSA",
            ];
            if !ALGS.contains(&k.algorithm()) {
                return Err(format!(
                    "keys.{id}.algorithm `{}` is not supported (one of {})",
                    k.algorithm(),
                    ALGS.join(", ")
                ));
            }
        }
        if let Some(logs) = self.decision_logs {
            for (key, set) in [
                ("mask_decision", logs.mask_decision.is_some()),
                ("drop_decision", logs.drop_decision.is_some()),
                ("plugin", logs.plugin.is_some()),
                (
                    "reporting.max_decisions_per_second",
                    logs.reporting.max_decisions_per_second.is_some(),
                ),
            ] {
                if set {
                    return Err(format!(
                        "decision_logs.{key} is not supported by sark (mask fields with decision_log.mask)"
                    ));
                }
            }
            if let Some(s) = &logs.service {
                service("decision_logs.service", s)?;
            }
            let (min, max) = logs.reporting.delays();
            if min == 0 || max < min {
                return Err(format!(
                    "decision_logs.reporting: min_delay_seconds ({min}) must be at least 1 and at most max_delay_seconds ({max})"
                ));
            }
            if logs.reporting.upload_limit() < 1024 {
                return Err(
                    "decision_logs.reporting.upload_size_limit_bytes must be at least 1024".into(),
                );
            }
            if logs.reporting.buffer_limit() == 0
                || logs.reporting.buffer_size_limit_events == Some(0)
            {
                return Err("decision_logs.reporting buffer limits must be at least 1".into());
            }
            if let Some(t) = logs.reporting.buffer_type.as_deref()
                && !matches!(t, "size" | "event")
            {
                return Err(format!(
                    "decision_logs.reporting.buffer_type must be `size` or `event`, got `{t}`"
                ));
            }
            if let Some(t) = logs.reporting.trigger.as_deref()
                && t != "periodic"
            {
                return Err(format!(
                    "decision_logs.reporting.trigger `{t}` is not supported by sark (only periodic)"
                ));
            }
        }
        if let Some(status) = self.status {
            if status.plugin.is_some() {
                return Err("status.plugin is not supported by sark".into());
            }
            if let Some(s) = &status.service {
                service("status.service", s)?;
            }
        }
        Ok(())
    }
}

fn validate_service(name: &str, s: &ServiceConfig) -> Result<(), String> {
    let at = format!("services.{name}");
    if s.url.is_empty() {
        return Err(format!("{at}.url is required"));
    }
    let parsed = reqwest::Url::parse(&s.url)
        .map_err(|e| format!("{at}.url `{}` is not a URL: {e}", s.url))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "{at}.url must be http:// or https://, got `{}`",
            s.url
        ));
    }
    let c = &s.credentials;
    for (kind, set) in [
        ("oauth2", c.oauth2.is_some()),
        ("client_tls", c.client_tls.is_some()),
        ("s3_signing", c.s3_signing.is_some()),
        ("gcp_metadata", c.gcp_metadata.is_some()),
        ("azure_managed_identity", c.azure_managed_identity.is_some()),
        ("plugin", c.plugin.is_some()),
    ] {
        if set {
            return Err(format!(
                "{at}.credentials.{kind} is not supported by sark (supported: bearer)"
            ));
        }
    }
    if let Some(b) = &c.bearer
        && b.token.is_some() == b.token_path.is_some()
    {
        return Err(format!(
            "{at}.credentials.bearer needs exactly one of token and token_path"
        ));
    }
    if let Some(kind) = s.kind.as_deref()
        && kind != "oci"
    {
        return Err(format!("{at}.type `{kind}` is not known (OPA's is `oci`)"));
    }
    if s.response_header_timeout_seconds == Some(0) {
        return Err(format!(
            "{at}.response_header_timeout_seconds must be at least 1"
        ));
    }
    Ok(())
}
