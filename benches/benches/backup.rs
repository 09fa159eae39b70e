//! `scripts/bench.sh backup`: backups of a database of at least 1 GB with the static release
//! instance manager, against the local S3-compatible server (moto, TLS), on Debian's
//! PostgreSQL 15, as in the tests.
//!
//! - backup: `/pg/backup` (uncompressed data, as the baseline), MB/s of the data directory;
//! - restore: `instance restore` of that backup into a new cluster, to the moment it is
//!   consistent, MB/s of the same bytes;
//! - the baseline: `pg_basebackup` of the same server to local disk (tar, no WAL), over TLS with
//!   the replication certificate, as replicas clone;
//! - archive lag: for every segment PostgreSQL finished under a pgbench write load, the time
//!   from its `.ready` file to its `.done` file (durable in the store), the 99th percentile.
//!
//! One measurement of each: a gigabyte per sample makes criterion's repetitions impractical,
//! so this target runs without its harness and prints the figures; its last line is
//! `backup=<MB/s> MB/s restore=<MB/s> MB/s; pg_basebackup to local disk=<MB/s> MB/s; archive lag p99=<s> s`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::cast_precision_loss,
    reason = "benchmark setup: a failure aborts the measurement; the figures go to stdout"
)]

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use cnpg_instance_api::{BaseBackupPhase, TakeBackup};
use cnpg_pki::{Authority, Usage};
use cnpg_testkit::instances::{CLUSTER, DEADLINE, Harness, MAJOR, Node, now, object_store, peer_sql};
use cnpg_testkit::postgres::{as_user, bin_dir, server_ids};
use cnpg_testkit::proxy::Proxy;
use cnpg_testkit::s3::S3Server;
use cnpg_testkit::{repository_root, wait_until};
use serde_json::json;

/// pgbench scale 70: about 1.05 GB of tables and indexes.
const SCALE: &str = "70";
const ORIGIN: &str = "s3://backups/origin";

fn cluster(manager: &Path, s3: &S3Server, destination: &str) -> Harness {
    let store = object_store(s3, destination, &json!({"wal": {"compression": "gzip"}}));
    let h = Harness::new(
        json!({
            "instances": 1,
            "storage": {"size": "5Gi"},
            "smartShutdownTimeout": 5,
            "postgresql": {"parameters": {"max_wal_size": "4GB", "checkpoint_timeout": "15min"}},
            "backup": {"barmanObjectStore": store},
        }),
        manager,
    );
    h.put_s3_secrets(s3, &s3.secret_access_key);
    h
}

fn primary(h: &Harness, address: [u8; 4], rw: [u8; 4], create: impl FnOnce(&Node)) -> (Proxy, Node) {
    h.patch_status(json!({"targetPrimary": "pg-1", "instanceNames": ["pg-1"]}));
    let rw = Proxy::start(SocketAddr::from((rw, 5432))).unwrap();
    let mut node = h.node("pg-1", Ipv4Addr::from(address));
    create(&node);
    node.start(&rw);
    h.wait_status(&node, "primary up", |s| s.is_primary && s.is_pod_ready);
    (rw, node)
}

/// pgbench as the server's OS user over the node's socket, into the `postgres` database.
fn pgbench(node: &Node, args: &[&str]) {
    let out = as_user(&bin_dir(MAJOR).unwrap().join("pgbench"), server_ids().unwrap())
        .arg("-h")
        .arg(node.root.join("controller/run"))
        .args(["-p", "5432", "-U", "postgres"])
        .args(args)
        .arg("postgres")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pgbench {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn archived_everything(node: &Node) {
    let segment = peer_sql(node, "SELECT pg_walfile_name(pg_current_wal_lsn())").unwrap();
    peer_sql(node, "SELECT pg_switch_wal()").unwrap();
    assert!(
        wait_until(Duration::from_secs(900), || peer_sql(
            node,
            "SELECT last_archived_wal FROM pg_stat_archiver"
        )
        .as_deref()
            == Ok(segment.as_str())),
        "{segment} not archived"
    );
}

/// `.ready` → `.done` for each segment while `pgbench` writes: the lags, in seconds.
fn archive_lags(node: &Node) -> Vec<f64> {
    let status = node.pgdata().join("pg_wal/archive_status");
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let watcher = std::thread::spawn(move || {
        let mut ready: BTreeMap<String, Instant> = BTreeMap::new();
        let mut lags = Vec::new();
        let mut stopping = false;
        loop {
            let now = Instant::now();
            for entry in std::fs::read_dir(&status).unwrap().flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if let Some(segment) = name.strip_suffix(".ready") {
                    ready.entry(segment.to_owned()).or_insert(now);
                } else if let Some(segment) = name.strip_suffix(".done")
                    && let Some(since) = ready.remove(segment)
                {
                    lags.push(now.duration_since(since).as_secs_f64());
                }
            }
            if stopping && ready.is_empty() {
                return lags;
            }
            // Sampled every 20 ms until told to stop (then until nothing is pending).
            stopping |= !matches!(
                stop_rx.recv_timeout(Duration::from_millis(20)),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout)
            );
        }
    });
    pgbench(node, &["-c", "4", "-j", "2", "-T", "60", "-n"]);
    archived_everything(node);
    stop_tx.send(()).unwrap();
    watcher.join().unwrap()
}

fn main() {
    // `cargo bench` passes harness flags; only `--bench` runs it.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let manager = repository_root().join("out/bin/instance-manager");
    assert!(
        manager.is_file(),
        "{} is missing: scripts/build-release.sh builds it (scripts/bench.sh does)",
        manager.display()
    );
    let s3 = S3Server::start().unwrap();
    let h = cluster(&manager, &s3, ORIGIN);
    let (_rw, mut node) = primary(&h, [127, 0, 0, 40], [127, 0, 0, 41], Node::init);
    pgbench(&node, &["-i", "-s", SCALE, "-q"]);
    peer_sql(&node, "CHECKPOINT").unwrap();
    archived_everything(&node);
    let database: f64 = peer_sql(&node, "SELECT sum(pg_database_size(oid)) FROM pg_database")
        .unwrap()
        .parse()
        .unwrap();
    println!("database: {:.0} MB", database / 1e6);

    // Our backup.
    let operator_ca = Authority::generate("cnpg-operator", "cnpg-system", now(), 1).unwrap();
    let operator = operator_ca
        .issue("cnpg-operator", Usage::Client, &[], now(), 1)
        .unwrap();
    h.patch_status(
        json!({"operatorCertificateFingerprint": cnpg_pki::public_key_fingerprint(&operator.certificate).unwrap()}),
    );
    let client = h.client(Some(&operator));
    let address = node.status_address();
    let request = TakeBackup {
        backup_name: "bench".into(),
        immediate_checkpoint: true,
        wait_for_archive: true,
    };
    let mut started = None;
    assert!(wait_until(DEADLINE, || {
        started = h.rt.block_on(client.take_backup(address, &request)).ok();
        started.is_some()
    }));
    let start = Instant::now();
    let mut status = started.unwrap();
    assert!(wait_until(Duration::from_secs(3600), || {
        status = h.rt.block_on(client.base_backup_status(address)).unwrap();
        status.phase != BaseBackupPhase::Running
    }));
    let backup_seconds = start.elapsed().as_secs_f64();
    assert_eq!(status.phase, BaseBackupPhase::Completed, "{status:?}");
    let id = status.backup_id.clone().unwrap();
    let info =
        h.rt.block_on(async {
            let store = cnpg_objectstore::Store::new(cnpg_objectstore::Config {
                endpoint: s3.endpoint.clone(),
                bucket: s3.bucket.clone(),
                region: s3.region.clone(),
                credentials: cnpg_objectstore::Credentials {
                    access_key_id: s3.access_key_id.clone(),
                    secret_access_key: cnpg_objectstore::Secret::new(s3.secret_access_key.clone()),
                    session_token: None,
                },
                ca_pem: Some(std::fs::read(s3.ca_file()).unwrap()),
            })
            .unwrap();
            store.get(&format!("origin/{CLUSTER}/base/{id}/backup.info")).await
        })
        .unwrap()
        .unwrap();
    let size: f64 = cnpg_backup::info::BackupInfo::parse(&String::from_utf8_lossy(&info))
        .unwrap()
        .get("size")
        .unwrap()
        .parse()
        .unwrap();
    let backup = size / 1e6 / backup_seconds;
    println!("backup {id}: {:.0} MB in {backup_seconds:.1} s", size / 1e6);

    // pg_basebackup of the same server to local disk, as a replica clones.
    let certificates = node.root.join("controller/certificates");
    let target = node.root.join("basebackup");
    let conninfo = format!(
        "host={} port=5432 user=streaming_replica dbname=postgres sslmode=verify-ca sslcert={} sslkey={} sslrootcert={}",
        node.address,
        certificates.join("streaming_replica.crt").display(),
        certificates.join("streaming_replica.key").display(),
        certificates.join("server-ca.crt").display()
    );
    let start = Instant::now();
    let out = as_user(&bin_dir(MAJOR).unwrap().join("pg_basebackup"), server_ids().unwrap())
        .arg("-D")
        .arg(&target)
        .args(["-F", "t", "-X", "none", "-c", "fast", "--no-manifest", "-d", &conninfo])
        .output()
        .unwrap();
    let basebackup_seconds = start.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "pg_basebackup: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let local: u64 = std::fs::read_dir(&target)
        .unwrap()
        .flatten()
        .map(|e| e.metadata().unwrap().len())
        .sum();
    let basebackup = local as f64 / 1e6 / basebackup_seconds;
    println!(
        "pg_basebackup: {:.0} MB in {basebackup_seconds:.1} s",
        local as f64 / 1e6
    );
    std::fs::remove_dir_all(&target).unwrap();

    // Archive lag under a write load.
    let mut lags = archive_lags(&node);
    lags.sort_by(f64::total_cmp);
    let p99 = lags
        .get((lags.len() * 99).div_ceil(100).saturating_sub(1))
        .copied()
        .unwrap_or(f64::NAN);
    println!(
        "archive lag over {} segments: median {:.2} s, max {:.2} s",
        lags.len(),
        lags.get(lags.len() / 2).copied().unwrap_or(f64::NAN),
        lags.last().copied().unwrap_or(f64::NAN)
    );
    node.stop();

    // Restore our backup into a new cluster, to the moment it is consistent.
    let restored = cluster(&manager, &s3, "s3://backups/restored");
    restored.patch_spec(json!({
        "bootstrap": {"recovery": {"source": "origin", "recoveryTarget": {"backupID": id, "targetImmediate": true}}},
        "externalClusters": [{"name": "origin", "barmanObjectStore": object_store(&s3, ORIGIN, &json!({"serverName": CLUSTER}))}],
    }));
    restored.patch_status(json!({"targetPrimary": "pg-1", "instanceNames": ["pg-1"]}));
    let new = restored.node("pg-1", Ipv4Addr::new(127, 0, 0, 42));
    let start = Instant::now();
    new.restore().unwrap();
    let restore_seconds = start.elapsed().as_secs_f64();
    let restore = size / 1e6 / restore_seconds;
    println!("restore: {:.0} MB in {restore_seconds:.1} s", size / 1e6);

    println!(
        "\nbackup={backup:.1} MB/s restore={restore:.1} MB/s; pg_basebackup to local disk={basebackup:.1} MB/s; archive lag p99={p99:.2} s"
    );
}
