//! A load generator for `sark serve`'s ext_authz port (`make bench`, `bench/ext_authz.sh`):
//! the same Envoy `CheckRequest` over and over (decision cache hits after the first) from
//! `--concurrency` callers over `--connections` HTTP/2 connections, either as fast as they
//! are answered or paced at `--rate` calls a second in total. A paced call that could not
//! be sent when due because the previous answer was late is timed from when it was due, so
//! a stalled server is not hidden.
//!
//! `cargo run --release --example ext_authz_load -- 127.0.0.1:9191 --rate 10000`

use clap::Parser;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    /// The ext_authz address (`host:port`).
    addr: String,
    /// HTTP/2 connections, shared round-robin by the callers.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Callers, each with one call in flight.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Seconds of load (after one second of warm-up).
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Calls a second in total; 0 = as fast as they are answered.
    #[arg(long, default_value_t = 0)]
    rate: u64,
}

fn request() -> CheckRequest {
    let headers = [
        (":method", "GET"),
        (":path", "/public/status?verbose=1"),
        (":authority", "api.example.com"),
        ("x-user-id", "alice"),
        ("user-agent", "ext-authz-load"),
    ];
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(HttpRequest {
                    method: "GET".into(),
                    path: "/public/status?verbose=1".into(),
                    host: "api.example.com".into(),
                    protocol: "HTTP/1.1".into(),
                    headers: headers
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

/// One caller: calls until `end`, returning its latencies (µs) of calls started after
/// `measure_from`, and its error count.
async fn caller(
    mut client: AuthorizationClient<tonic::transport::Channel>,
    interval: Option<Duration>,
    start: Instant,
    measure_from: Instant,
    end: Instant,
) -> (Vec<u32>, u64) {
    let req = request();
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut due = start;
    loop {
        // A paced call is timed from when it was due if the previous answer came after
        // that (the server held it up), else from when it was sent: the timer's own
        // lateness (tokio's 1 ms wheel) is the generator's, not the server's.
        let sent = if let Some(every) = interval {
            due += every;
            if due > end {
                break;
            }
            if Instant::now() >= due {
                due
            } else {
                tokio::time::sleep_until(due.into()).await;
                Instant::now()
            }
        } else {
            due = Instant::now();
            if due > end {
                break;
            }
            due
        };
        match client.check(req.clone()).await {
            Ok(r) if r.get_ref().status.as_ref().map_or(0, |s| s.code) == 0 => {}
            _ => errors += 1,
        }
        if due >= measure_from {
            let us = sent.elapsed().as_micros();
            latencies.push(u32::try_from(us).unwrap_or(u32::MAX));
        }
    }
    (latencies, errors)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut channels = Vec::new();
    for _ in 0..args.connections.max(1) {
        let channel = tonic::transport::Channel::from_shared(format!("http://{}", args.addr))?
            .tcp_nodelay(true)
            .connect()
            .await?;
        channels.push(channel);
    }
    let callers = args.concurrency.max(1);
    let interval =
        (args.rate > 0).then(|| Duration::from_secs_f64(callers as f64 / args.rate as f64));
    let start = Instant::now();
    let measure_from = start + Duration::from_secs(1);
    let end = measure_from + Duration::from_secs(args.duration);
    let tasks: Vec<_> = (0..callers)
        .map(|i| {
            let client = AuthorizationClient::new(channels[i % channels.len()].clone());
            // Callers start spread over one interval, so a paced load is smooth.
            let offset = interval.map_or(Duration::ZERO, |every| every * i as u32 / callers as u32);
            tokio::spawn(caller(client, interval, start + offset, measure_from, end))
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (lat, err) = t.await?;
        all.extend(lat);
        errors += err;
    }
    all.sort_unstable();
    let pct = |p: f64| -> f64 {
        if all.is_empty() {
            return 0.0;
        }
        let i = ((all.len() as f64 * p).ceil() as usize).clamp(1, all.len()) - 1;
        f64::from(all[i]) / 1000.0
    };
    let mode = match args.rate {
        0 => "as fast as answered".to_string(),
        r => format!("paced at {r}/s"),
    };
    println!(
        "ext_authz Check ({mode}, {callers} callers, {} connections): {:.0} req/s; p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {errors} errors",
        channels.len(),
        all.len() as f64 / args.duration as f64,
        pct(0.50),
        pct(0.99),
        pct(1.0),
    );
    Ok(())
}
