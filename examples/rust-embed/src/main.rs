//! How another team embeds a SARK bundle: wasmtime, WASI 0.2 and one `bindgen!` over the WIT
//! contract — nothing from the `sark` crates.
//!
//! Run: cargo run -p sark-embed-example --release -- <bundle.wasm> <vectors.json>
//! Prints one JSON line per vector: {"result": v} | {} (undefined) | {"error": "<kind>"}.

use anyhow::{Context, Result};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

wasmtime::component::bindgen!({ world: "bundle", path: "../../wit" });

use sark::policy::types::Error as PolicyError;

/// Host state: WASI with nothing granted (no files, network, environment or stdio).
struct Host {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The WIT error variant's case name, as the other hosts print it.
fn tag(e: &PolicyError) -> &'static str {
    match e {
        PolicyError::Compile(_) => "compile",
        PolicyError::UnknownEntrypoint(_) => "unknown-entrypoint",
        PolicyError::InvalidInput(_) => "invalid-input",
        PolicyError::Evaluation(_) => "evaluation",
        PolicyError::LimitExceeded(_) => "limit-exceeded",
        PolicyError::Bundle(_) => "bundle",
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(
        args.len() == 3,
        "usage: sark-embed-example <bundle.wasm> <vectors.json>"
    );
    let engine = Engine::default();
    let component = Component::from_file(&engine, &args[1])
        .map_err(|e| anyhow::anyhow!("loading the bundle {}: {e:#}", args[1]))?;
    let mut linker = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    let host = Host {
        wasi: WasiCtxBuilder::new().build(),
        table: ResourceTable::new(),
    };
    let mut store = Store::new(&engine, host);
    let bundle = Bundle::instantiate(&mut store, &component, &linker)?;
    let evaluator = bundle.sark_policy_evaluator();

    let info = evaluator
        .call_info(&mut store)?
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    eprintln!(
        "bundle {} ({}), entrypoints: {}",
        info.revision,
        info.content_hash,
        info.entrypoints.join(", ")
    );

    let vectors: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&args[2])?)?;
    for v in &vectors {
        let entrypoint = v["entrypoint"]
            .as_str()
            .context("vector without entrypoint")?;
        let input = match v.get("raw_input") {
            Some(raw) => raw
                .as_str()
                .context("raw_input must be a string")?
                .to_string(),
            None => v["input"].to_string(),
        };
        let line = match evaluator.call_evaluate(&mut store, entrypoint, &input)? {
            Ok(Some(json)) => {
                serde_json::json!({ "result": serde_json::from_str::<serde_json::Value>(&json)? })
            }
            Ok(None) => serde_json::json!({}),
            Err(e) => serde_json::json!({ "error": tag(&e) }),
        };
        println!("{line}");
    }
    Ok(())
}
