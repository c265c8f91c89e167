//! One HTTP client per configured service (OPA's `services.<name>`): its base URL, headers,
//! bearer credentials (a `token_path` is read at every request, so a rotated token is
//! picked up) and TLS roots.

use super::config::ServiceConfig;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use std::time::Duration;

/// A service that could not be set up from its configuration.
#[derive(Debug, thiserror::Error)]
#[error("services.{service}: {message}")]
pub struct ServiceError {
    /// The service's name.
    pub service: String,
    /// What is wrong.
    pub message: String,
}

/// A configured service, ready to send requests.
#[derive(Clone)]
pub struct ServiceClient {
    name: String,
    base: reqwest::Url,
    http: reqwest::Client,
    bearer: Option<super::config::Bearer>,
    header_timeout: Duration,
}

impl ServiceClient {
    /// Builds the client of service `name`.
    pub fn new(name: &str, config: &ServiceConfig) -> Result<Self, ServiceError> {
        let err = |message: String| ServiceError {
            service: name.to_string(),
            message,
        };
        let mut base = reqwest::Url::parse(&config.url)
            .map_err(|e| err(format!("url `{}`: {e}", config.url)))?;
        // Resources are joined below the URL's path, as OPA does.
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let mut headers = HeaderMap::new();
        for (k, v) in &config.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|e| err(format!("header `{k}`: {e}")))?;
            let value = HeaderValue::from_str(v).map_err(|e| err(format!("header `{k}`: {e}")))?;
            headers.insert(name, value);
        }
        let header_timeout =
            Duration::from_secs(config.response_header_timeout_seconds.unwrap_or(10));
        let mut builder = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(concat!("sark/", env!("CARGO_PKG_VERSION")))
            // Each request has a total deadline of its own (a long poll's is its wait plus a
            // minute): no per-read timeout that would cut a held long poll.
            .connect_timeout(header_timeout)
            .danger_accept_invalid_certs(config.allow_insecure_tls);
        if let Some(tls) = &config.tls
            && let Some(path) = &tls.ca_cert
        {
            let pem = std::fs::read(path)
                .map_err(|e| err(format!("tls.ca_cert {}: {e}", path.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| err(format!("tls.ca_cert {}: {e}", path.display())))?;
            // OPA: the CA file replaces the system's roots unless `system_ca_required`.
            if !tls.system_ca_required {
                builder = builder.tls_built_in_root_certs(false);
            }
            if certs.is_empty() {
                return Err(err(format!(
                    "tls.ca_cert {}: no PEM certificate in the file",
                    path.display()
                )));
            }
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        let http = builder
            .build()
            .map_err(|e| err(format!("cannot build the HTTP client: {e}")))?;
        Ok(ServiceClient {
            name: name.to_string(),
            base,
            http,
            bearer: config.credentials.bearer.clone(),
            header_timeout,
        })
    }

    /// The service's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How long a response's headers may take (`response_header_timeout_seconds`).
    pub fn header_timeout(&self) -> Duration {
        self.header_timeout
    }

    /// The URL of `resource` (relative to the service's URL).
    pub fn url(&self, resource: &str) -> Result<reqwest::Url, String> {
        self.base
            .join(resource.trim_start_matches('/'))
            .map_err(|e| format!("resource `{resource}` under {}: {e}", self.base))
    }

    /// A request to `resource` with the service's headers and credentials.
    pub fn request(
        &self,
        method: reqwest::Method,
        resource: &str,
    ) -> Result<reqwest::RequestBuilder, String> {
        let mut req = self.http.request(method, self.url(resource)?);
        if let Some(bearer) = &self.bearer {
            // Read at every request: a rotated `token_path` is picked up.
            let scheme = bearer.scheme.as_deref().unwrap_or("Bearer");
            let token = bearer.token()?;
            req = req.header(reqwest::header::AUTHORIZATION, format!("{scheme} {token}"));
        }
        Ok(req)
    }
}
