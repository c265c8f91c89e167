//! `sark push`: a bundle to an OCI registry.

use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::ExitCode;

/// Push a bundle (.wasm, or an OPA .tar.gz) to an OCI registry as a one-layer artifact.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The bundle file.
    bundle: PathBuf,
    /// Where to: `registry/repository:tag` (an `oci://` prefix is accepted).
    reference: String,
    /// Talk plain HTTP to the registry (a registry on loopback or in a test).
    #[arg(long)]
    plain_http: bool,
    /// Bearer token for the registry (default: the Docker `config.json` entry, else none).
    #[arg(long, env = "SARK_REGISTRY_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

impl Args {
    /// Checks the bundle, pushes it, prints the manifest's URL.
    pub fn run(self) -> Result<ExitCode> {
        let bytes = std::fs::read(&self.bundle)
            .with_context(|| format!("reading {}", self.bundle.display()))?;
        // A `.wasm` must be a whole, untampered sark bundle before it is published.
        if crate::management::ArtifactKind::sniff(&bytes).map_err(anyhow::Error::msg)?
            == crate::management::ArtifactKind::Wasm
        {
            crate::Bundle::from_bytes(bytes.clone())?;
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the tokio runtime")?;
        let size = bytes.len();
        let url = runtime
            .block_on(crate::management::oci::push(
                bytes,
                &self.reference,
                self.plain_http,
                self.token,
            ))
            .map_err(anyhow::Error::msg)?;
        eprintln!("pushed {} ({size} bytes) to {url}", self.bundle.display());
        Ok(ExitCode::SUCCESS)
    }
}
