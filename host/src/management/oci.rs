//! Bundles in OCI registries, with `oci-client`: `sark push` uploads a bundle as a one-layer
//! artifact — a sark component as a layer of type `application/wasm` (config
//! `application/vnd.wasm.config.v0+json`, as the WebAssembly ecosystem's tools push
//! components), an OPA tarball with OPA's types (`application/vnd.oci.image.layer.v1.tar+gzip`,
//! config `application/vnd.oci.image.config.v1+json`) — and the downloader pulls one from a
//! service of `type: oci` (OPA's key). A poll reads the manifest only; its digest plays the
//! ETag's part, so an unchanged artifact transfers no layer. A reference may pin a digest
//! (`repo@sha256:…`). Credentials: the service's bearer token, else the Docker `config.json`
//! entry of the registry (`$DOCKER_CONFIG/config.json`, default `~/.docker/config.json`).

use super::artifact::ArtifactKind;
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::OciImageManifest;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use std::time::Duration;

/// The layer type of a sark component.
pub const WASM_LAYER: &str = "application/wasm";
/// The config type of a component artifact.
pub const WASM_CONFIG: &str = "application/vnd.wasm.config.v0+json";
/// OPA's bundle layer type.
pub const OPA_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OPA's bundle config type.
pub const OPA_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// A registry the downloader pulls one reference from.
pub struct OciRegistry {
    client: Client,
    auth: RegistryAuth,
    reference: Reference,
}

/// What a poll of the registry found.
pub enum Pulled {
    /// The manifest digest is the one already active.
    Unchanged,
    /// A new artifact: its bytes and the manifest's digest.
    New { bytes: Vec<u8>, digest: String },
}

/// A client for `registry` (plain HTTP when `plain_http`), with request timeouts.
fn client(plain_http: bool, timeout: Duration) -> Client {
    Client::new(ClientConfig {
        protocol: if plain_http {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        },
        read_timeout: Some(timeout),
        connect_timeout: Some(timeout),
        user_agent: concat!("sark/", env!("CARGO_PKG_VERSION")),
        ..Default::default()
    })
}

/// Parses `registry/repo[:tag][@sha256:…]`.
pub fn reference(text: &str) -> Result<Reference, String> {
    text.trim_start_matches("oci://")
        .parse::<Reference>()
        .map_err(|e| format!("`{text}` is not an OCI reference (registry/repository:tag): {e}"))
}

/// The credentials for `registry`: `bearer` when given, else the Docker `config.json`
/// entry, else anonymous.
pub fn auth_for(registry: &str, bearer: Option<String>) -> RegistryAuth {
    if let Some(token) = bearer {
        return RegistryAuth::Bearer(token);
    }
    docker_config_auth(registry).unwrap_or(RegistryAuth::Anonymous)
}

/// `auths.<registry>.auth` (base64 `user:password`) of the Docker `config.json`.
fn docker_config_auth(registry: &str) -> Option<RegistryAuth> {
    let dir = std::env::var_os("DOCKER_CONFIG")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".docker")))?;
    let text = std::fs::read_to_string(dir.join("config.json")).ok()?;
    let config: serde_json::Value = serde_json::from_str(&text).ok()?;
    let auths = config.get("auths")?.as_object()?;
    let entry = auths
        .get(registry)
        .or_else(|| auths.get(&format!("https://{registry}")))
        .or_else(|| auths.get(&format!("http://{registry}")))?;
    let encoded = entry.get("auth")?.as_str()?;
    let decoded = data_encoding::BASE64.decode(encoded.as_bytes()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some(RegistryAuth::Basic(user.to_string(), password.to_string()))
}

impl OciRegistry {
    /// The registry of `reference` (`resource` of the bundle), over plain HTTP when the
    /// service's URL is `http://`.
    pub fn new(
        resource: &str,
        plain_http: bool,
        bearer: Option<String>,
        timeout: Duration,
    ) -> Result<Self, String> {
        let reference = reference(resource)?;
        let auth = auth_for(reference.resolve_registry(), bearer);
        Ok(OciRegistry {
            client: client(plain_http, timeout),
            auth,
            reference,
        })
    }

    /// Reads the manifest; when its digest differs from `active`, pulls the bundle layer
    /// (at most `limit` bytes, its digest checked by the client).
    pub async fn pull(&self, active: Option<&str>, limit: u64) -> Result<Pulled, String> {
        let (manifest, digest) = self
            .client
            .pull_image_manifest(&self.reference, &self.auth)
            .await
            .map_err(|e| format!("request to the registry failed: {e}"))?;
        if active == Some(digest.as_str()) {
            return Ok(Pulled::Unchanged);
        }
        let layer = manifest
            .layers
            .iter()
            .find(|l| l.media_type == WASM_LAYER || l.media_type == OPA_LAYER)
            .ok_or_else(|| {
                format!(
                    "{} has no bundle layer ({WASM_LAYER} or {OPA_LAYER}); its layers: {}",
                    self.reference,
                    manifest
                        .layers
                        .iter()
                        .map(|l| l.media_type.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?;
        if u64::try_from(layer.size).unwrap_or(u64::MAX) > limit {
            return Err(format!(
                "bundle exceeds the size limit of {limit} bytes (size_limit_bytes)"
            ));
        }
        let mut bytes = Vec::with_capacity(usize::try_from(layer.size).unwrap_or(0));
        self.client
            .pull_blob(&self.reference, layer, &mut bytes)
            .await
            .map_err(|e| format!("pulling the bundle layer failed: {e}"))?;
        Ok(Pulled::New { bytes, digest })
    }
}

/// Pushes `bundle` (a sark `.wasm` or an OPA `.tar.gz`) to `reference`; returns the
/// manifest's URL.
pub async fn push(
    bundle: Vec<u8>,
    reference_text: &str,
    plain_http: bool,
    bearer: Option<String>,
) -> Result<String, String> {
    let reference = reference(reference_text)?;
    let auth = auth_for(reference.resolve_registry(), bearer);
    let kind = ArtifactKind::sniff(&bundle)?;
    let layer_digest = format!("sha256:{}", crate::bundle::sha256_hex(&bundle));
    let (layer_type, config) = match kind {
        ArtifactKind::Wasm => (
            WASM_LAYER,
            Config::new(
                serde_json::json!({"architecture": "wasm", "os": "wasip2", "layerDigests": [layer_digest]})
                    .to_string()
                    .into_bytes(),
                WASM_CONFIG.into(),
                None,
            ),
        ),
        ArtifactKind::Tarball => (OPA_LAYER, Config::new(b"{}".to_vec(), OPA_CONFIG.into(), None)),
    };
    let layers = vec![ImageLayer::new(bundle, layer_type.into(), None)];
    let manifest = OciImageManifest::build(&layers, &config, None);
    let client = client(plain_http, Duration::from_secs(60));
    client
        .push(&reference, &layers, config, &auth, Some(manifest))
        .await
        .map(|r| r.manifest_url)
        .map_err(|e| format!("push to {reference} failed: {e}"))
}
