//! `scripts/bench.sh instance`: the instance manager (the static release binary) running a
//! PostgreSQL 15 primary on this machine, as in the tests.
//!
//! - `scrape/default_queries`: one GET /metrics on :9187 running every default monitoring
//!   query (target: 50 ms or less).
//! - Resident memory of the instance manager, printed beside criterion's figures: idle (after
//!   start, before any scrape), after the measured scrapes, and its peak (VmHWM).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "benchmark setup: a failure aborts the measurement"
)]

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use cnpg_testkit::instances::{DEADLINE, Harness};
use cnpg_testkit::proxy::Proxy;
use cnpg_testkit::{repository_root, wait_until};
use criterion::{Criterion, criterion_group, criterion_main};

/// GET `path` over plain HTTP/1.1: the body.
fn get(address: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
}

/// `VmRSS` and `VmHWM` of `pid`, in KiB.
fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn scrape(c: &mut Criterion) {
    let manager = repository_root().join("out/bin/instance-manager");
    assert!(
        manager.is_file(),
        "{} is missing: scripts/build-release.sh builds it (scripts/bench.sh does)",
        manager.display()
    );
    let h = Harness::new(
        serde_json::json!({"instances": 1, "storage": {"size": "1Gi"}, "smartShutdownTimeout": 5}),
        &manager,
    );
    h.patch_status(serde_json::json!({"targetPrimary": "pg-1", "instanceNames": ["pg-1"]}));
    let rw = Proxy::start(SocketAddr::from(([127, 0, 0, 20], 5432))).unwrap();
    let mut node = h.node("pg-1", Ipv4Addr::new(127, 0, 0, 21));
    node.init();
    node.start(&rw);
    h.wait_status(&node, "primary up", |s| s.is_primary && s.is_pod_ready);
    let pid = node.run.as_ref().unwrap().id();
    // Idle: started, configured, a few passes of the loop done, nothing scraped yet.
    assert!(wait_until(DEADLINE, || node
        .log()
        .contains("password set from the application Secret")));
    let (idle, _) = memory(pid);
    let metrics = SocketAddr::from((node.address, 9187));
    assert!(wait_until(DEADLINE, || get(metrics, "/metrics")
        .contains("cnpg_pg_database_size_bytes")));

    let mut group = c.benchmark_group("scrape");
    group.sample_size(50).measurement_time(Duration::from_secs(10));
    group.bench_function("default_queries", |b| b.iter(|| get(metrics, "/metrics")));
    group.finish();

    let (after, peak) = memory(pid);
    let body = get(metrics, "/metrics");
    let families = body.lines().filter(|l| l.starts_with("# TYPE")).count();
    #[expect(clippy::print_stdout, reason = "the benchmark's extra figures go beside criterion's")]
    {
        println!(
            "instance-manager memory: idle RSS {idle} KiB, after scrapes RSS {after} KiB, peak (VmHWM) {peak} KiB; one scrape = {families} metric families, {} bytes",
            body.len()
        );
    }
    node.stop();
}

criterion_group!(benches, scrape);
criterion_main!(benches);
