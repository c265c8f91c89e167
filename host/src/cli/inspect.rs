//! `sark inspect`: a bundle's manifest, sizes, signature and imports, without running it.

use super::{Format, wasm_runtime};
use crate::bundle::Bundle;
use crate::runtime::CompiledCode;
use anyhow::Result;
use std::path::PathBuf;
use std::process::ExitCode;

/// Show a bundle's manifest without running it.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Bundle file.
    bundle: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

impl Args {
    /// Prints the manifest as text or JSON.
    pub fn run(self) -> Result<ExitCode> {
        let bundle = Bundle::read(&self.bundle)?;
        let m = bundle.manifest();
        let imports = bundle.imports()?;
        let compiled = wasm_runtime()?.compiled_code(&bundle);
        if self.format == Format::Json {
            let mut v = serde_json::to_value(m)?;
            v["file_bytes"] = bundle.bytes().len().into();
            v["component_bytes"] = bundle.component_bytes().len().into();
            v["payload_bytes"] = bundle.payload_len().into();
            v["imports"] = imports.into();
            v["signature"] = serde_json::to_value(bundle.signature())?;
            v["compiled_code"] = serde_json::to_value(compiled)?;
            println!("{}", serde_json::to_string_pretty(&v)?);
            return Ok(ExitCode::SUCCESS);
        }
        println!("bundle:          {}", self.bundle.display());
        println!("revision:        {}", m.revision);
        println!("content hash:    sha256:{}", m.content_hash);
        println!("entrypoints:     {}", m.entrypoints.join(", "));
        println!(
            "roots:           {}",
            if m.roots.is_empty() {
                "(all)".to_string()
            } else {
                m.roots.join(", ")
            }
        );
        println!("regorus:         {}", m.regorus_version);
        println!("built by:        sark {}", m.sark_version);
        println!(
            "signature:       {}",
            bundle.signature().map_or("none".to_string(), |s| format!(
                "{} key {} (not verified: give --verification-key to eval/serve)",
                s.alg, s.key_id
            ))
        );
        println!(
            "sizes:           file {} B, component {} B, payload {} B, data {} B",
            bundle.bytes().len(),
            bundle.component_bytes().len(),
            bundle.payload_len(),
            m.data_bytes
        );
        println!("compiled code:   {}", describe(compiled));
        println!("modules:");
        for module in &m.modules {
            println!(
                "  {} ({} B, Rego {})",
                module.path, module.bytes, module.rego_version
            );
        }
        println!("imports:");
        for i in imports {
            println!("  {i}");
        }
        if !m.metadata.is_null() {
            println!("metadata:        {}", m.metadata);
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// One line on the bundle's compiled code.
fn describe(c: CompiledCode) -> String {
    let size = match c.cached_bytes {
        Some(b) => format!("{:.1} MB in the code cache", b as f64 / 1e6),
        None => "not in the code cache yet".to_string(),
    };
    if c.shared {
        let snapshot = match c.snapshot_cached_bytes {
            Some(b) => format!(
                "its snapshot {:.1} MB in the code cache (new instances start from it)",
                b as f64 / 1e6
            ),
            None => "its snapshot not compiled yet (`sark serve` compiles it in the background)"
                .to_string(),
        };
        format!(
            "{size}, shared by every bundle built by this sark (the evaluator it carries); {snapshot}"
        )
    } else {
        format!("{size}, for this bundle alone (built with another evaluator)")
    }
}
