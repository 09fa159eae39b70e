//! Three instance managers on Debian's PostgreSQL 15, each on its own loopback address, driven
//! through the API stand-in the way the operator drives them: it writes the Cluster and its
//! Secrets, points `targetPrimary`, and moves the `-rw` Service (here a TCP forwarder) to the
//! instance that reports itself as `currentPrimary`. Everything is observed as a user would:
//! `/pg/status` over TLS, SQL over TLS with the application's password, the files on disk and
//! the logs.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::unwrap_in_result,
    reason = "integration test: a failed unwrap is a failed assertion"
)]

use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::OpenOptionsExt as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cnpg_imaging::layout::Target;
use cnpg_imaging::pipeline::{Options, build};
use cnpg_imaging::site::Site;
use cnpg_instance_api::{BackupPhase, BaseBackupPhase, BaseBackupStatus, StartBackup, StopBackup, TakeBackup};
use cnpg_pki::{Authority, Usage};
use cnpg_testkit::instances::{
    CLUSTER, DEADLINE, Harness, MAJOR, NAMESPACE, Node, Runner, now, object_store, peer_sql, streaming,
};
use cnpg_testkit::postgres::{as_user, bin_dir};
use cnpg_testkit::proxy::Proxy;
use cnpg_testkit::s3::S3Server;
use cnpg_testkit::wait_until;
use hyper::Method;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

fn manager() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_BIN_EXE_instance-manager"))
}

fn cluster_spec() -> Value {
    json!({
        "instances": 3,
        "smartShutdownTimeout": 5,
        "stopDelay": 30,
        "switchoverDelay": 30,
        "postgresql": {
            "parameters": {"log_statement": "all", "work_mem": "8MB"},
            "pg_hba": ["hostssl app app 127.0.0.0/8 scram-sha-256"],
        },
        "storage": {"size": "1Gi"},
    })
}

#[test]
fn three_instances_replicate_by_certificate_fail_over_and_rewind() {
    let h = Harness::new(cluster_spec(), manager());
    let nodes = [
        h.node("pg-1", Ipv4Addr::new(127, 0, 0, 2)),
        h.node("pg-2", Ipv4Addr::new(127, 0, 0, 3)),
        h.node("pg-3", Ipv4Addr::new(127, 0, 0, 4)),
    ];
    replicate_fail_over_and_rewind(&h, nodes, Ipv4Addr::new(127, 0, 0, 10), &|_| {});
}

/// The same flow inside our images: PostgreSQL 17 from the image pipeline, the instance manager
/// copied in by its own image (the bootstrap-controller init container), each container
/// read-only as uid 26 with every capability dropped.
#[test]
fn the_same_flow_runs_in_our_postgresql_17_image_read_only_as_uid_26_without_capabilities() {
    let images = load_images();
    let (postgres_image, manager_image) = (&images.0[0], &images.0[1]);
    let h = Harness::new(cluster_spec(), manager());
    let nodes = [
        h.docker_node("pg-1", Ipv4Addr::new(127, 0, 0, 6), postgres_image, manager_image),
        h.docker_node("pg-2", Ipv4Addr::new(127, 0, 0, 7), postgres_image, manager_image),
        h.docker_node("pg-3", Ipv4Addr::new(127, 0, 0, 8), postgres_image, manager_image),
    ];
    replicate_fail_over_and_rewind(&h, nodes, Ipv4Addr::new(127, 0, 0, 12), &|node| {
        let Runner::Docker { container, .. } = &node.runner else {
            panic!("{} runs in Docker", node.name)
        };
        let out = Command::new("docker")
            .args(["inspect", "--format", "{{json .}}", container])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let inspect: Value = serde_json::from_slice(&out.stdout).unwrap();
        let host = &inspect["HostConfig"];
        assert_eq!(inspect["Config"]["User"], "26:26");
        assert_eq!(host["ReadonlyRootfs"], true);
        assert_eq!(host["CapDrop"], json!(["ALL"]));
        assert_eq!(host["SecurityOpt"], json!(["no-new-privileges"]));
        // What the kernel says of the container's PID 1: our manager, as 26, with no capability.
        let pid = inspect["State"]["Pid"].as_u64().unwrap();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        assert!(cmdline.starts_with(b"/controller/manager\0"), "{cmdline:?}");
        let proc_status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let field = |name: &str| {
            proc_status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .unwrap_or_else(|| panic!("{name} missing from\n{proc_status}"))
                .split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(field("Uid:"), ["26"; 4]);
        assert_eq!(field("Gid:"), ["26"; 4]);
        assert_eq!(field("CapEff:"), ["0000000000000000"]);
        assert_eq!(field("NoNewPrivs:"), ["1"]);

        // PID 1 reaps what it did not start: a process orphaned inside the container (its
        // parent, a `docker exec` shell, exits at once) is collected when it ends, so no
        // zombie is left behind.
        let out = Command::new("docker")
            .args(["exec", container, "sh", "-c"])
            .arg("sh -c 'i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done' >/dev/null 2>&1 & echo $!")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let orphan = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let reaped = format!("reaped an orphan pid={orphan} exit=exit code 0");
        assert!(
            wait_until(DEADLINE, || node.log().contains(&reaped)
                && zombie_children(pid).is_empty()),
            "orphan {orphan} not reaped; zombies {:?}\n{}",
            zombie_children(pid),
            node.log()
        );
    });
}

/// The host pids of the zombie children of host pid `parent`.
fn zombie_children(parent: u64) -> Vec<u64> {
    let mut zombies = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u64>().ok()) else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        let value = |name: &str| status.lines().find_map(|l| l.strip_prefix(name)).map(str::trim);
        if value("PPid:") == Some(&parent.to_string()) && value("State:").is_some_and(|s| s.starts_with('Z')) {
            zombies.push(pid);
        }
    }
    zombies
}

/// Image names private to one test run: other tests load and remove the same images, so this
/// one holds its own tags, removed when it ends.
struct Tags(Vec<String>);

impl Drop for Tags {
    fn drop(&mut self) {
        let _ = Command::new("docker").arg("rmi").args(&self.0).output();
    }
}

/// Builds `postgresql-17-minimal` and `instance-manager` with the image pipeline from this
/// machine's Debian mirror and the release binaries, and loads them into Docker under tags of
/// this run: PostgreSQL first, then the instance manager.
fn load_images() -> Tags {
    let info = Command::new("docker")
        .arg("info")
        .output()
        .expect("docker CLI missing: scripts/setup.sh installs it");
    assert!(
        info.status.success(),
        "the Docker engine is not running: {}",
        String::from_utf8_lossy(&info.stderr)
    );
    let root = cnpg_testkit::repository_root();
    let binaries = root.join("out/bin");
    assert!(
        binaries.join("instance-manager").is_file(),
        "{} has no release instance-manager: scripts/build-release.sh builds it",
        binaries.display()
    );
    let mut site = Site::from_host_apt().expect("this machine's apt sources name a Debian mirror");
    site.allow_expired("debian", "sid");
    let mut options = Options::new(root.join("images"), site, cnpg_testkit::cache_dir().join("image-cache"));
    options.only = vec!["postgresql-17-minimal".to_owned(), "instance-manager".to_owned()];
    options.binaries = Some(binaries);
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("images.tar");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let report = runtime
        .block_on(build(&options, &Target::DockerArchive(archive.clone())))
        .unwrap();
    assert!(report.images.iter().all(|i| i.scan == "pass"), "{report:#?}");
    let out = Command::new("docker")
        .args(["load", "-i"])
        .arg(&archive)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let loaded: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("Loaded image: ").map(str::to_owned))
        .collect();
    let named = |prefix: &str| {
        loaded
            .iter()
            .find(|i| i.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} image among {loaded:?}"))
            .clone()
    };
    let mut tags = Tags(Vec::new());
    for (source, name) in [
        (named("cnpg-rs/postgresql-17-minimal:17."), "postgresql-17-minimal"),
        (named("cnpg-rs/instance-manager:"), "instance-manager"),
    ] {
        let tag = format!("cnpg-rs-test-{}/{name}:test", std::process::id());
        let out = Command::new("docker").args(["tag", &source, &tag]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        tags.0.push(tag);
    }
    tags
}

/// Init, join two replicas, replicate, partition, fail over, rewind and rejoin, stop: every
/// step asserted through /pg/status, SQL and the logs. `check` runs on each node once all
/// three stream.
fn replicate_fail_over_and_rewind(h: &Harness, mut nodes: [Node; 3], rw_address: Ipv4Addr, check: &dyn Fn(&Node)) {
    h.patch_status(json!({"targetPrimary": "pg-1", "instanceNames": ["pg-1", "pg-2", "pg-3"]}));
    let rw = Proxy::start(SocketAddr::from((rw_address, 5432))).unwrap();

    // The primary: init, run, and the operator's side of things (the -rw Service).
    nodes[0].init();
    nodes[0].start(&rw);
    let primary = h.wait_status(&nodes[0], "primary up", |s| s.is_primary && s.is_pod_ready);
    assert_eq!(primary.timeline_id, Some(1));
    assert!(wait_until(DEADLINE, || h.current_primary().as_deref() == Some("pg-1")));
    rw.point_to(Some(nodes[0].postgres_address()));

    // Replicas clone by certificate through -rw and stream into their HA slots.
    for i in [1, 2] {
        nodes[i].join(&rw).unwrap();
        nodes[i].start(&rw);
    }
    let primary = h.wait_status(&nodes[0], "both replicas streaming", |s| {
        streaming(s, &["pg-2", "pg-3"])
    });
    let slots: Vec<(&str, bool)> = primary
        .replication_slots_info
        .iter()
        .map(|s| (s.slot_name.as_str(), s.active))
        .collect();
    assert_eq!(slots, [("_cnpg_pg_2", true), ("_cnpg_pg_3", true)]);
    for i in [1, 2] {
        let replica = h.wait_status(&nodes[i], "replica streaming", |s| {
            !s.is_primary && s.is_wal_receiver_active
        });
        assert_eq!(
            replica.system_id, primary.system_id,
            "one cluster, one system identifier"
        );
    }

    // Replication takes the cluster's certificate and nothing else: not a password, not a
    // certificate from another CA, not a certificate for another user.
    let replication = |cert: Option<&cnpg_pki::Pair>| {
        let dir = tempfile::tempdir().unwrap();
        let mut conninfo = format!(
            "host={} port=5432 user=streaming_replica dbname=postgres replication=true sslmode=verify-ca sslrootcert={}",
            nodes[0].address,
            h.ca_file.display()
        );
        if let Some(pair) = cert {
            let (crt, key) = (dir.path().join("c.crt"), dir.path().join("c.key"));
            std::fs::write(&crt, &pair.certificate).unwrap();
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&key)
                .and_then(|mut f| std::io::Write::write_all(&mut f, pair.key.expose().as_bytes()))
                .unwrap();
            conninfo.push_str(&format!(" sslcert={} sslkey={}", crt.display(), key.display()));
        }
        let out = Command::new(bin_dir(MAJOR).unwrap().join("psql"))
            .args(["-X", "-A", "-t", "-c", "IDENTIFY_SYSTEM", &conninfo])
            .env("PGPASSWORD", &h.superuser_password)
            .output()
            .unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let now = now();
    let good = h.ca.issue("streaming_replica", Usage::Client, &[], now, 1).unwrap();
    let (ok, err) = replication(Some(&good));
    assert!(ok, "the cluster's certificate is accepted: {err}");
    let foreign = Authority::generate(CLUSTER, NAMESPACE, now, 1)
        .unwrap()
        .issue("streaming_replica", Usage::Client, &[], now, 1)
        .unwrap();
    let other_user = h.ca.issue("app", Usage::Client, &[], now, 1).unwrap();
    for (cert, what) in [
        (None, "no certificate"),
        (Some(&foreign), "another CA"),
        (Some(&other_user), "another user"),
    ] {
        let (ok, err) = replication(cert);
        assert!(!ok, "{what}: replication was allowed");
        assert!(
            ["certificate", "SSL error", "no pg_hba.conf entry"]
                .iter()
                .any(|reason| err.contains(reason)),
            "{what}: {err}"
        );
    }

    for node in &nodes {
        check(node);
    }

    // The exporter tells primary from standby with the default queries.
    let metrics = nodes[0].metrics();
    assert!(metrics.contains("cnpg_collector_up 1\n"), "{metrics}");
    assert!(metrics.contains("cnpg_pg_replication_in_recovery 0\n"), "{metrics}");
    assert!(
        metrics.contains("cnpg_pg_replication_streaming_replicas 2\n"),
        "{metrics}"
    );
    assert!(
        wait_until(DEADLINE, || nodes[2]
            .metrics()
            .contains("cnpg_pg_replication_is_wal_receiver_up 1\n")),
        "{}",
        nodes[2].metrics()
    );
    assert!(
        !nodes[2].metrics().contains("cnpg_pg_stat_replication_"),
        "primary-only queries skip standbys"
    );

    // Writes on the primary reach both replicas.
    h.app_sql(&nodes[0], "CREATE TABLE t (id int PRIMARY KEY, during text)")
        .unwrap();
    h.app_sql(
        &nodes[0],
        "INSERT INTO t SELECT g, 'before' FROM generate_series(1, 100) g",
    )
    .unwrap();
    for i in [1, 2] {
        assert!(
            wait_until(DEADLINE, || h.app_sql(&nodes[i], "SELECT count(*) FROM t").as_deref()
                == Ok("100")),
            "{} did not receive the rows",
            nodes[i].name
        );
        let refused = h.app_sql(&nodes[i], "INSERT INTO t VALUES (0, 'replica')").unwrap_err();
        assert!(refused.contains("read-only transaction"), "{refused}");
    }

    // A partition: the old primary goes on taking writes no replica receives.
    rw.point_to(None);
    h.wait_status(&nodes[1], "replica cut off", |s| !s.is_wal_receiver_active);
    h.app_sql(&nodes[0], "INSERT INTO t VALUES (1000, 'lost in the partition')")
        .unwrap();

    // Failover to pg-2: it promotes onto a new timeline and records itself as primary.
    h.patch_status(json!({"targetPrimary": "pg-2"}));
    let promoted = h.wait_status(&nodes[1], "promotion", |s| s.is_primary);
    assert_eq!(promoted.timeline_id, Some(2));
    assert!(wait_until(DEADLINE, || h.current_primary().as_deref() == Some("pg-2")));
    rw.point_to(Some(nodes[1].postgres_address()));
    h.app_sql(&nodes[1], "INSERT INTO t VALUES (2000, 'after failover')")
        .unwrap();

    // The old primary stopped, was rewound onto timeline 2 and follows pg-2 like pg-3 does.
    let rejoined = h.wait_status(&nodes[0], "the old primary rejoins", |s| {
        !s.is_primary && s.is_wal_receiver_active && s.timeline_id == Some(2)
    });
    assert_eq!(rejoined.system_id, primary.system_id);
    assert!(nodes[0].log().contains("pg_rewind done"), "{}", nodes[0].log());
    h.wait_status(&nodes[1], "both follow the new primary", |s| {
        streaming(s, &["pg-1", "pg-3"])
    });
    for i in [0, 2] {
        assert!(
            wait_until(DEADLINE, || h
                .app_sql(
                    &nodes[i],
                    "SELECT string_agg(during, ',' ORDER BY id) FROM t WHERE id >= 1000"
                )
                .as_deref()
                == Ok("after failover")),
            "{}: {:?}",
            nodes[i].name,
            h.app_sql(&nodes[i], "SELECT id, during FROM t WHERE id >= 1000")
        );
    }

    // Shutdown on SIGTERM is clean, and no password reached any log.
    for node in &mut nodes {
        let exit = node.stop().unwrap();
        assert!(exit.success(), "{}: {exit:?}\n{}", node.name, node.log());
    }
    for node in &nodes {
        let logs = format!("{}{}", node.log(), node.postgres_log());
        assert!(
            logs.contains("checkpoint") || logs.contains("database system"),
            "logs were captured"
        );
        for secret in [&h.app_password, &h.superuser_password] {
            assert!(
                !logs.contains(secret.as_str()),
                "{}: a password is in the logs",
                node.name
            );
        }
    }
}

/// A one-instance cluster's primary `pg-1` on `address`, its `-rw` Service (a forwarder) on
/// `rw`; `prepare` sets the node up before it is initialised.
fn one_primary(h: &Harness, address: [u8; 4], rw: [u8; 4], prepare: impl FnOnce(&mut Node)) -> (Proxy, Node) {
    start_primary(h, address, rw, prepare, |node| {
        node.init();
        Ok(())
    })
    .unwrap()
}

/// [`one_primary`] whose data directory `create` makes (init, restore): its error if it fails.
fn start_primary(
    h: &Harness,
    address: [u8; 4],
    rw: [u8; 4],
    prepare: impl FnOnce(&mut Node),
    create: impl FnOnce(&Node) -> Result<(), String>,
) -> Result<(Proxy, Node), String> {
    h.patch_status(json!({"targetPrimary": "pg-1", "instanceNames": ["pg-1"]}));
    let rw = Proxy::start(SocketAddr::from((rw, 5432))).unwrap();
    let mut node = h.node("pg-1", Ipv4Addr::from(address));
    prepare(&mut node);
    create(&node)?;
    node.start(&rw);
    h.wait_status(&node, "primary up", |s| s.is_primary && s.is_pod_ready);
    // The application's password is set from its Secret by the first passes after start.
    if !wait_until(DEADLINE, || h.app_sql(&node, "SELECT 1").is_ok()) {
        return Err(format!("the application cannot log in:\n{}", node.log()));
    }
    Ok((rw, node))
}

#[test]
fn superuser_access_follows_the_cluster_and_bad_configuration_is_refused_before_writing() {
    let mut spec = cluster_spec();
    spec["instances"] = json!(1);
    let h = Harness::new(spec, manager());
    // monitoring.tls: the exporter speaks TLS with the server certificate; every scrape below
    // verifies it as `<cluster>-rw` against the cluster CA.
    let (_rw, mut node) = one_primary(&h, [127, 0, 0, 5], [127, 0, 0, 11], |node| {
        node.metrics_ca = Some(h.ca_file.clone());
    });
    assert!(wait_until(DEADLINE, || h
        .app_sql(&node, "SELECT current_user")
        .as_deref()
        == Ok("app")));

    // `instance status` (what `kubectl exec … instance status` prints) reads the same API.
    let out = Command::new(manager())
        .args(["instance", "status", "--cluster-name", CLUSTER, "--address"])
        .arg(node.status_address().to_string())
        .arg("--ca-file")
        .arg(&h.ca_file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (printed["podName"].as_str(), printed["isPrimary"].as_bool()),
        (Some("pg-1"), Some(true))
    );

    // pg_hba.conf: the fixed rules, then the user's line, then the catch-all, over TLS only.
    let hba = std::fs::read_to_string(node.pgdata().join("pg_hba.conf")).unwrap();
    let line = |needle: &str| {
        hba.lines()
            .position(|l| l == needle)
            .unwrap_or_else(|| panic!("{needle:?} missing from\n{hba}"))
    };
    let fixed = line("hostssl all cnpg_pooler_pgbouncer all cert map=cnpg_pooler_pgbouncer");
    let user = line("hostssl app app 127.0.0.0/8 scram-sha-256");
    let catch_all = line("hostssl all all all scram-sha-256");
    assert!(fixed < user && user < catch_all, "{hba}");
    assert!(
        !hba.lines().any(|l| l.starts_with("host ")),
        "no rule accepts a password without TLS:\n{hba}"
    );

    // Superuser access is off by default: no password, so only peer access works.
    let superuser = |h: &Harness| h.psql(&node, "postgres", &h.superuser_password, "postgres", "SELECT 1");
    let refused = superuser(&h).unwrap_err();
    assert!(refused.contains("password authentication failed"), "{refused}");
    assert_eq!(
        peer_sql(
            &node,
            "SELECT rolpassword IS NULL FROM pg_authid WHERE rolname = 'postgres'"
        )
        .as_deref(),
        Ok("t")
    );
    h.patch_spec(json!({"enableSuperuserAccess": true}));
    assert!(wait_until(DEADLINE, || superuser(&h).is_ok()), "{:?}", superuser(&h));
    let stored = peer_sql(&node, "SELECT rolpassword FROM pg_authid WHERE rolname = 'postgres'").unwrap();
    assert!(
        stored.starts_with("SCRAM-SHA-256$4096:"),
        "stored as a verifier: {stored}"
    );
    h.patch_spec(json!({"enableSuperuserAccess": false}));
    assert!(wait_until(DEADLINE, || superuser(&h).is_err()));
    assert_eq!(
        peer_sql(
            &node,
            "SELECT rolpassword IS NULL FROM pg_authid WHERE rolname = 'postgres'"
        )
        .as_deref(),
        Ok("t"),
        "peer access still works and the password is gone"
    );

    // Refused lines change nothing on disk: not the hba file, not the parameters.
    let before: Vec<Vec<u8>> = ["pg_hba.conf", "custom.conf"]
        .iter()
        .map(|f| std::fs::read(node.pgdata().join(f)).unwrap())
        .collect();
    for (bad, why) in [
        ("host all all 0.0.0.0/0 trust\nhost all all all trust", "line break"),
        ("hostssl all all all magic", "magic"),
    ] {
        h.patch_spec(json!({"postgresql": {
            "parameters": {"work_mem": "16MB"},
            "pg_hba": ["hostssl app app 127.0.0.0/8 scram-sha-256", bad],
        }}));
        assert!(
            wait_until(DEADLINE, || node.log().contains("spec.postgresql.pg_hba[1]")
                && node.log().contains(why)),
            "the refusal names the line and the reason:\n{}",
            node.log()
        );
        let after: Vec<Vec<u8>> = ["pg_hba.conf", "custom.conf"]
            .iter()
            .map(|f| std::fs::read(node.pgdata().join(f)).unwrap())
            .collect();
        assert_eq!(after, before, "nothing was written for {bad:?}");
    }
    assert_eq!(h.app_sql(&node, "SHOW work_mem").as_deref(), Ok("8MB"));

    // A valid change is written and reloaded without a restart; /pg/status reports the hash
    // of what the server loaded.
    let loaded = h.status(&node).unwrap().loaded_configuration_hash;
    h.patch_spec(json!({"postgresql": {
        "parameters": {"work_mem": "16MB"},
        "pg_hba": ["hostssl app app 127.0.0.0/8 scram-sha-256"],
    }}));
    assert!(wait_until(DEADLINE, || h.app_sql(&node, "SHOW work_mem").as_deref() == Ok("16MB")));
    let reloaded = h.wait_status(&node, "the new hash is loaded", |s| {
        s.loaded_configuration_hash != loaded
    });
    assert!(
        !reloaded.pending_restart,
        "{:?}",
        peer_sql(
            &node,
            "SELECT string_agg(name || '=' || setting, ',') FROM pg_settings WHERE pending_restart"
        )
    );
    assert_eq!(
        peer_sql(&node, "SELECT pg_postmaster_start_time() < pg_conf_load_time()").as_deref(),
        Ok("t"),
        "reloaded, not restarted"
    );

    // Metrics: the defaults, plus custom queries (one in the app database, which the
    // postgres database does not have a table `t` in); a broken query and one the exporter's
    // role may not run (it reads statistics, not pg_authid) are counted, and the rest of the
    // scrape is served.
    let custom: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "custom-queries"},
        "data": {"queries": "app_tables:\n  query: SELECT count(*) AS n FROM pg_catalog.pg_class WHERE relname = 't'\n  target_databases: [app]\n  metrics:\n    - n: {usage: GAUGE, description: Tables named t}\nbroken:\n  query: SELECT * FROM no_such_table\n  metrics:\n    - x: {usage: GAUGE}\nforbidden:\n  query: SELECT count(*) AS n FROM pg_catalog.pg_authid\n  metrics:\n    - n: {usage: GAUGE}\n"},
    }))
    .unwrap();
    h.app_sql(&node, "CREATE TABLE t AS SELECT generate_series(1, 42) AS id")
        .unwrap();
    {
        let _runtime = h.rt.enter();
        let config_maps: Api<ConfigMap> = Api::namespaced(h.api.client().unwrap(), NAMESPACE);
        h.rt.block_on(config_maps.create(&PostParams::default(), &custom))
            .unwrap();
    }
    h.patch_spec(json!({"monitoring": {"customQueriesConfigMap": [{"name": "custom-queries", "key": "queries"}]}}));
    assert!(
        wait_until(DEADLINE, || node.metrics().contains("cnpg_app_tables_n 1\n")),
        "{}",
        node.metrics()
    );
    let metrics = node.metrics();
    let plain = Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .arg(format!("http://{}:9187/metrics", node.address))
        .output()
        .unwrap();
    assert!(
        !plain.status.success() && plain.stdout.is_empty(),
        "the TLS exporter answered plain HTTP"
    );
    for expected in [
        "cnpg_collector_up 1\n",
        "cnpg_errors_total{query=\"broken\"} ",
        "cnpg_last_error{query=\"forbidden\"} 1\n",
        "cnpg_last_error{query=\"backends\"} 0\n",
        "cnpg_pg_database_size_bytes{datname=\"app\"} ",
        "# TYPE cnpg_pg_stat_database_xact_commit counter\n",
    ] {
        assert!(metrics.contains(expected), "{expected:?} missing from\n{metrics}");
    }

    // Fencing: the annotation stops PostgreSQL and keeps the instance manager (alive, not
    // ready, exporting only fencing_on); a malformed one changes nothing; lifting the fence
    // starts PostgreSQL again on the same data.
    h.annotate(json!({"cnpg.io/fencedInstances": "[\"*\"]"}));
    assert!(
        wait_until(DEADLINE, || h.get(&node, "/readyz", None).0 == 503
            && h.app_sql(&node, "SELECT 1").is_err()),
        "{}",
        node.log()
    );
    assert_eq!(h.get(&node, "/healthz", None).0, 200);
    let fenced = node.metrics();
    assert!(fenced.contains("\ncnpg_collector_fencing_on 1\n"), "{fenced}");
    assert!(!fenced.contains("cnpg_collector_up"), "{fenced}");
    assert_eq!(
        h.status(&node).unwrap().error.as_deref(),
        Some("the instance is fenced")
    );
    h.annotate(json!({"cnpg.io/fencedInstances": "pg-1"}));
    assert!(wait_until(DEADLINE, || node
        .log()
        .contains("annotation cnpg.io/fencedInstances is not a JSON array")));
    assert!(
        h.app_sql(&node, "SELECT 1").is_err(),
        "a malformed annotation lifted the fence"
    );
    h.annotate(json!({"cnpg.io/fencedInstances": null}));
    assert!(
        wait_until(DEADLINE, || h.app_sql(&node, "SELECT count(*) FROM t").as_deref()
            == Ok("42")),
        "{}",
        node.log()
    );
    assert!(wait_until(DEADLINE, || h.get(&node, "/readyz", None).0 == 200));
    assert!(node.metrics().contains("\ncnpg_collector_fencing_on 0\n"));
    // Fencing another instance leaves this one running: a pass that read the annotation (the
    // one that applies the parameter patched after it) kept PostgreSQL up.
    h.annotate(json!({"cnpg.io/fencedInstances": "[\"pg-2\"]"}));
    h.patch_spec(json!({"postgresql": {"parameters": {"work_mem": "32MB"}}}));
    assert!(wait_until(DEADLINE, || h.app_sql(&node, "SHOW work_mem").as_deref() == Ok("32MB")));
    assert!(node.metrics().contains("\ncnpg_collector_fencing_on 0\n"));

    // The operator-only endpoint: no certificate 401, nothing pinned 503, the pinned one 200,
    // any other 403.
    let now = now();
    let operator_ca = Authority::generate("cnpg-operator", "cnpg-system", now, 1).unwrap();
    let operator = operator_ca.issue("cnpg-operator", Usage::Client, &[], now, 1).unwrap();
    let stranger = operator_ca.issue("stranger", Usage::Client, &[], now, 1).unwrap();
    assert_eq!(h.get(&node, "/pg/controldata", None).0, 401);
    assert_eq!(h.get(&node, "/pg/controldata", Some(&operator)).0, 503);
    let fingerprint = cnpg_pki::public_key_fingerprint(&operator.certificate).unwrap();
    h.patch_status(json!({"operatorCertificateFingerprint": fingerprint}));
    assert!(wait_until(DEADLINE, || h
        .get(&node, "/pg/controldata", Some(&operator))
        .0
        == 200));
    let (_, body) = h.get(&node, "/pg/controldata", Some(&operator));
    assert!(body.contains("Database cluster state"), "{body}");
    assert_eq!(h.get(&node, "/pg/controldata", Some(&stranger)).0, 403);

    // Online backup mode for volume snapshots, the operator's only: start holds backup mode
    // on a session of the instance manager, a second start is refused while it runs, stop
    // returns the backup_label to keep with the snapshot.
    let address = node.status_address();
    let operator_client = h.client(Some(&operator));
    for client in [h.client(None), h.client(Some(&stranger))] {
        let refused = h.rt.block_on(client.start_backup(address, &StartBackup::default()));
        assert!(
            matches!(
                refused,
                Err(cnpg_instance_api::client::Error::Status { status: 401 | 403, .. })
            ),
            "{refused:?}"
        );
    }
    let (status, body) =
        h.rt.block_on(operator_client.request(address, Method::POST, "/pg/mode/backup", "{".into()))
            .unwrap();
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    let start = StartBackup {
        backup_name: "snapshot-1".into(),
        immediate_checkpoint: true,
        wait_for_archive: false,
    };
    let started = h.rt.block_on(operator_client.start_backup(address, &start)).unwrap();
    assert_eq!(started.phase, BackupPhase::Started);
    let begin = started.begin_lsn.clone().unwrap();
    let again = h.rt.block_on(operator_client.start_backup(address, &start));
    assert!(
        matches!(&again, Err(cnpg_instance_api::client::Error::Status { status: 409, body, .. }) if body.contains("snapshot-1")),
        "{again:?}"
    );
    let wrong = StopBackup {
        backup_name: "snapshot-2".into(),
    };
    assert!(h.rt.block_on(operator_client.stop_backup(address, &wrong)).is_err());
    let stopped =
        h.rt.block_on(operator_client.stop_backup(
            address,
            &StopBackup {
                backup_name: "snapshot-1".into(),
            },
        ))
        .unwrap();
    assert_eq!(stopped.phase, BackupPhase::Completed);
    let label = stopped.label_file.clone().unwrap();
    assert!(label.contains(&format!("START WAL LOCATION: {begin}")), "{label}");
    assert!(label.contains("LABEL: snapshot-1"), "{label}");
    assert_eq!(stopped.spcmap_file.as_deref(), Some(""), "no tablespaces");
    assert!(stopped.end_lsn.is_some());
    assert_eq!(h.rt.block_on(operator_client.backup_status(address)).unwrap(), stopped);
    let restarted = h.rt.block_on(operator_client.start_backup(
        address,
        &StartBackup {
            backup_name: "snapshot-2".into(),
            ..start.clone()
        },
    ));
    assert_eq!(
        restarted.unwrap().phase,
        BackupPhase::Started,
        "a new backup after the last one ended"
    );
    h.rt.block_on(operator_client.stop_backup(address, &wrong)).unwrap();
    assert_eq!(h.get(&node, "/healthz", None), (200, "OK\n".to_owned()));
    assert_eq!(h.get(&node, "/readyz", None).0, 200);

    // A session that would hold a smart shutdown forever: SIGTERM waits smartShutdownTimeout
    // (5 s) for it, then shuts down fast, ending it, well within stopDelay (30 s).
    let session = as_user(&bin_dir(MAJOR).unwrap().join("psql"), node.ids)
        .args([
            "-X",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-c",
            "SELECT pg_sleep(600)",
            "-h",
        ])
        .arg(node.root.join("controller/run"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(wait_until(DEADLINE, || peer_sql(
        &node,
        "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(600)'"
    )
    .as_deref()
        == Ok("1")));
    let stopping = Instant::now();
    let exit = node.stop().unwrap();
    let took = stopping.elapsed();
    assert!(exit.success(), "{exit:?}\n{}", node.log());
    assert!(
        (Duration::from_secs(5)..Duration::from_secs(30)).contains(&took),
        "stopped after {took:?}"
    );
    let ended = session.wait_with_output().unwrap();
    assert!(!ended.status.success());
    let why = String::from_utf8_lossy(&ended.stderr);
    assert!(
        why.contains("terminating connection due to administrator command"),
        "{why}"
    );
    let log = node.log();
    let smart = log.find("signal=SIGTERM").expect("a smart shutdown first");
    let fast = log.find("signal=SIGINT").expect("then a fast one");
    assert!(smart < fast, "{log}");

    let logs = format!("{}{}", node.log(), node.postgres_log());
    for secret in [&h.app_password, &h.superuser_password] {
        assert!(!logs.contains(secret.as_str()), "a password is in the logs");
    }
}

/// Descriptors the process `pid` holds open.
fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count()
}

#[test]
fn neither_a_database_role_nor_anyone_on_the_network_can_stop_or_exhaust_the_manager() {
    let mut spec = cluster_spec();
    spec["instances"] = json!(1);
    let h = Harness::new(spec, manager());
    let (_rw, mut node) = one_primary(&h, [127, 0, 0, 21], [127, 0, 0, 22], |_| {});
    assert!(wait_until(DEADLINE, || h.app_sql(&node, "SELECT 1").is_ok()));
    let manager_pid = node.run.as_ref().unwrap().id();
    let started = peer_sql(&node, "SELECT pg_postmaster_start_time()").unwrap();

    // 1. The application role stores a pre-hashed SCRAM verifier of its choosing, as any role
    //    may for itself. Counts beyond i32 aborted the manager (and PostgreSQL with it) on
    //    every pass; 0 failed every pass; i32::MAX stalled it for minutes. Each is now a
    //    verifier that does not match the Secret: replaced, and the app logs in again.
    let key = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let resets = |node: &Node| node.log().matches("password set from the application Secret").count();
    for iterations in ["4294967297", "0", "2147483647"] {
        let before = resets(&node);
        let planted = format!("SCRAM-SHA-256${iterations}:c2FsdHNhbHRzYWx0c2FsdA==${key}:{key}");
        if iterations == "2147483647" {
            // PostgreSQL itself runs the count once on ALTER ROLE (checking the verifier is
            // not of an empty password), which takes the role's own session minutes at this
            // count; the result is the same stored verifier, planted here directly.
            peer_sql(
                &node,
                &format!("UPDATE pg_authid SET rolpassword = '{planted}' WHERE rolname = 'app'"),
            )
            .unwrap();
        } else {
            // PostgreSQL reads the count into an int: 2^32 + 1 costs it one iteration.
            h.app_sql(&node, &format!("ALTER ROLE app PASSWORD '{planted}'"))
                .unwrap();
        }
        assert!(
            wait_until(DEADLINE, || resets(&node) > before
                && h.app_sql(&node, "SELECT current_user").as_deref() == Ok("app")),
            "{iterations}: the app's password was not reset:\n{}",
            node.log()
        );
        let stored = peer_sql(&node, "SELECT rolpassword FROM pg_authid WHERE rolname = 'app'").unwrap();
        assert!(stored.starts_with("SCRAM-SHA-256$4096:"), "{stored}");
        assert!(
            node.run.as_mut().unwrap().try_wait().unwrap().is_none(),
            "{iterations}: the instance manager exited:\n{}",
            node.log()
        );
    }
    assert_eq!(
        peer_sql(&node, "SELECT pg_postmaster_start_time()").unwrap(),
        started,
        "PostgreSQL never restarted"
    );

    // 2. 200 concurrent scrapes share collections: the exporter's role never holds more
    //    than its connection limit, and every scrape is answered.
    assert_eq!(
        peer_sql(
            &node,
            "SELECT rolconnlimit FROM pg_roles WHERE rolname = 'cnpg_metrics_exporter'"
        )
        .as_deref(),
        Ok("4")
    );
    let collections = |text: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix("cnpg_collector_collections_total "))
            .unwrap()
            .parse()
            .unwrap()
    };
    let before = collections(&node.metrics());
    let storm = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let storm = std::sync::Arc::clone(&storm);
        let socket = node.root.join("controller/run");
        let ids = node.ids;
        std::thread::spawn(move || {
            let mut most = 0u32;
            while storm.load(std::sync::atomic::Ordering::Relaxed) {
                let out = as_user(&bin_dir(MAJOR).unwrap().join("psql"), ids)
                    .args(["-X", "-A", "-t", "-U", "postgres", "-d", "postgres", "-h"])
                    .arg(&socket)
                    .args([
                        "-c",
                        "SELECT count(*) FROM pg_stat_activity WHERE usename = 'cnpg_metrics_exporter'",
                    ])
                    .output()
                    .unwrap();
                if let Ok(n) = String::from_utf8_lossy(&out.stdout).trim().parse::<u32>() {
                    most = most.max(n);
                }
            }
            most
        })
    };
    let gate = std::sync::Arc::new(std::sync::Barrier::new(200));
    let scrapes: Vec<_> = (0..200)
        .map(|_| {
            let gate = std::sync::Arc::clone(&gate);
            let address = SocketAddr::from((node.address, 9187));
            std::thread::spawn(move || {
                use std::io::{Read as _, Write as _};
                gate.wait();
                let mut tcp = std::net::TcpStream::connect(address).unwrap();
                tcp.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
                tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: pg-1\r\nConnection: close\r\n\r\n")
                    .unwrap();
                let mut answer = String::new();
                tcp.read_to_string(&mut answer).unwrap();
                answer
            })
        })
        .collect();
    for scrape in scrapes {
        let answer = scrape.join().unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 200") && answer.contains("\ncnpg_collector_up 1\n"),
            "{answer:.300}"
        );
    }
    storm.store(false, std::sync::atomic::Ordering::Relaxed);
    let most = sampler.join().unwrap();
    assert!(most <= 4, "the exporter held {most} connections at once");
    let ran = collections(&node.metrics()) - before;
    assert!(ran < 100.0, "200 concurrent scrapes ran {ran} collections");

    // 3. A thousand idle TCP connections to 8000 (no TLS handshake, nothing sent): the
    //    operator's request is still served meanwhile, the manager holds a bounded number of
    //    descriptors, and every idle connection is dropped by the handshake deadline.
    let baseline = open_descriptors(manager_pid);
    let idle: Vec<std::net::TcpStream> = (0..1000)
        .map(|_| std::net::TcpStream::connect(node.status_address()).unwrap())
        .collect();
    let status = h.status(&node).expect("the operator's request is served");
    assert!(status.is_primary);
    let bound = baseline + 256 + 32 + 16;
    assert!(
        wait_until(Duration::from_secs(5), || open_descriptors(manager_pid) <= bound),
        "the manager holds {} descriptors (was {baseline})",
        open_descriptors(manager_pid)
    );
    for tcp in &idle {
        tcp.set_nonblocking(true).unwrap();
    }
    let closed = |tcp: &std::net::TcpStream| {
        let mut byte = [0u8; 1];
        match std::io::Read::read(&mut &*tcp, &mut byte) {
            Ok(0) => true,
            Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
            Ok(_) => false,
        }
    };
    assert!(
        wait_until(Duration::from_secs(40), || idle.iter().all(closed)),
        "{} idle connections still open",
        idle.iter().filter(|t| !closed(t)).count()
    );
    assert!(h.status(&node).unwrap().is_primary);
    assert!(node.run.as_mut().unwrap().try_wait().unwrap().is_none());
}

/// One of barman's cloud tools (Debian's barman-cli-cloud, boto3 underneath) against `s3`, with
/// the store's credentials in its environment: what it printed, or why it failed.
fn barman(s3: &S3Server, tool: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(tool)
        .args(["--cloud-provider", "aws-s3", "--endpoint-url", &s3.endpoint])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", &s3.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &s3.secret_access_key)
        .env("AWS_DEFAULT_REGION", &s3.region)
        .env("AWS_CA_BUNDLE", s3.ca_file())
        .output()
        .map_err(|e| format!("{tool} (Debian's barman-cli-cloud, installed by scripts/setup.sh): {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// `barman-cloud-wal-restore` fetching `wal` into `dest`: barman's own reading of what we
/// archived.
fn barman_wal_restore(
    s3: &S3Server,
    destination: &str,
    server: &str,
    wal: &str,
    dest: &std::path::Path,
) -> Result<(), String> {
    let dest = dest.to_str().unwrap();
    barman(s3, "barman-cloud-wal-restore", &[destination, server, wal, dest]).map(drop)
}

/// A one-instance Cluster whose `barmanObjectStore` is `destination` on `s3` plus `options`,
/// with the credential and CA Secrets it names.
fn archiving_cluster(s3: &S3Server, destination: &str, options: Value) -> Harness {
    let mut spec = cluster_spec();
    spec["instances"] = json!(1);
    spec["backup"] = json!({ "barmanObjectStore": object_store(s3, destination, &options) });
    let h = Harness::new(spec, manager());
    h.put_s3_secrets(s3, &s3.secret_access_key);
    h
}

#[test]
fn wal_is_archived_where_barman_reads_it_and_kept_until_the_store_takes_it() {
    let s3 = S3Server::start().unwrap();
    let h = archiving_cluster(
        &s3,
        "s3://backups/archive",
        json!({"wal": {"compression": "gzip", "maxParallel": 3}}),
    );
    let (_rw, node) = one_primary(&h, [127, 0, 0, 23], [127, 0, 0, 24], |_| {});
    let settings = node.root.join("controller").join(cnpg_backup::archive::FILE_NAME);
    assert!(wait_until(DEADLINE, || settings.is_file()), "{}", node.log());
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&settings).unwrap().permissions()) & 0o777,
        0o600
    );

    // A segment ends: archived, compressed, at barman's key, and barman's tool restores the
    // exact bytes PostgreSQL wrote.
    let switch = |node: &Node| -> (String, Vec<u8>) {
        h.app_sql(
            node,
            "CREATE TABLE IF NOT EXISTS t (n int); INSERT INTO t SELECT generate_series(1, 1000)",
        )
        .unwrap();
        let segment = peer_sql(node, "SELECT pg_walfile_name(pg_current_wal_lsn())").unwrap();
        peer_sql(node, "SELECT pg_switch_wal()").unwrap();
        let bytes = std::fs::read(node.pgdata().join("pg_wal").join(&segment)).unwrap();
        (segment, bytes)
    };
    let archived = |node: &Node, segment: &str| {
        peer_sql(node, "SELECT last_archived_wal FROM pg_stat_archiver").as_deref() == Ok(segment)
    };
    let (first, first_bytes) = switch(&node);
    assert!(
        wait_until(DEADLINE, || archived(&node, &first)),
        "{first} not archived:\n{}\n{}",
        node.postgres_log(),
        s3.log()
    );
    let listed = s3
        .python(
            "import boto3, os\ns3 = boto3.client('s3', endpoint_url=os.environ['S3_ENDPOINT'], verify=os.environ['S3_CA'])\nfor o in s3.list_objects_v2(Bucket=os.environ['S3_BUCKET'], Prefix='archive/')['Contents']: print(o['Key'])",
            &[],
        )
        .unwrap();
    let key = format!(
        "archive/{CLUSTER}/wals/{}/{first}.gz",
        first.chars().take(16).collect::<String>()
    );
    assert!(listed.lines().any(|l| l == key), "{key} not in\n{listed}");
    let restored = h.work.path().join("restored");
    barman_wal_restore(&s3, "s3://backups/archive", CLUSTER, &first, &restored).unwrap();
    assert!(
        std::fs::read(&restored).unwrap() == first_bytes,
        "barman restored other bytes"
    );

    // Our restore_command reads back what we archived, and what barman-cloud-wal-archive
    // archived (gzip); a file the store lacks is "not found" (exit 1), without an error line.
    let wal_restore = |name: &str, dest: &std::path::Path| {
        Command::new(node.root.join("controller/manager"))
            .args(["--log-format", "json", "wal-restore", name])
            .arg(dest)
            .output()
            .unwrap()
    };
    let ours = h.work.path().join("ours");
    let out = wal_restore(&first, &ours);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        std::fs::read(&ours).unwrap() == first_bytes,
        "wal-restore restored other bytes"
    );
    let foreign = h.work.path().join("0000000500000000000000AA");
    std::fs::write(&foreign, &first_bytes).unwrap();
    barman(
        &s3,
        "barman-cloud-wal-archive",
        &["--gzip", "s3://backups/archive", CLUSTER, foreign.to_str().unwrap()],
    )
    .unwrap();
    let theirs = h.work.path().join("theirs");
    let out = wal_restore("0000000500000000000000AA", &theirs);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        std::fs::read(&theirs).unwrap() == first_bytes,
        "barman's segment restored other bytes"
    );
    let out = wal_restore("0000000500000000000000AB", &h.work.path().join("missing"));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("ERROR"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!h.work.path().join("missing").exists());

    // Archiving works: the Cluster says so.
    let condition = || {
        let _runtime = h.rt.enter();
        let cluster = h.rt.block_on(h.clusters().get(CLUSTER)).unwrap();
        cluster
            .status
            .and_then(|s| s.conditions)
            .and_then(|c| c.into_iter().find(|c| c.type_ == "ContinuousArchiving"))
    };
    assert!(
        wait_until(DEADLINE, || condition().is_some_and(|c| c.status == "True")),
        "{:?}\n{}",
        condition(),
        node.log()
    );

    // The store refuses the credentials: PostgreSQL keeps the segment and retries, the Cluster
    // says why and the exporter counts what waits; once they are right again, it is archived,
    // and none is missing.
    h.put_s3_secrets(&s3, "not-the-secret");
    assert!(wait_until(DEADLINE, || std::fs::read_to_string(&settings)
        .unwrap_or_default()
        .contains("not-the-secret")));
    let failed_before: u64 = peer_sql(&node, "SELECT failed_count FROM pg_stat_archiver")
        .unwrap()
        .parse()
        .unwrap();
    let (second, second_bytes) = switch(&node);
    let ready = node
        .pgdata()
        .join("pg_wal/archive_status")
        .join(format!("{second}.ready"));
    assert!(
        wait_until(DEADLINE, || peer_sql(
            &node,
            "SELECT failed_count FROM pg_stat_archiver"
        )
        .unwrap()
        .parse::<u64>()
        .unwrap()
            > failed_before),
        "{}",
        node.postgres_log()
    );
    assert!(ready.exists(), "the segment waits in pg_wal");
    assert!(!archived(&node, &second));
    assert!(
        wait_until(DEADLINE, || condition().is_some_and(|c| c.status == "False")),
        "{:?}",
        condition()
    );
    let failing = condition().unwrap();
    assert_eq!(failing.reason, "ContinuousArchivingFailing");
    assert!(failing.message.contains("403"), "{}", failing.message);
    assert!(!failing.message.contains("not-the-secret"), "{}", failing.message);
    let waiting = node
        .metrics()
        .lines()
        .find_map(|l| l.strip_prefix("cnpg_collector_pg_wal_archive_status{value=\"ready\"} "))
        .and_then(|v| v.parse::<f64>().ok());
    assert!(waiting.is_some_and(|n| n >= 1.0), "{waiting:?}");
    // /pg/status says the same, in CloudNativePG's fields.
    let status = h.status(&node).unwrap();
    assert!(status.is_archiving_wal);
    assert_eq!(status.last_failed_wal.as_deref(), Some(second.as_str()));
    assert!(status.last_failed_wal_time.is_some());
    assert!(status.ready_wal_files >= 1, "{status:?}");
    // More segments pile up meanwhile; once the store takes the credentials again they go up
    // three at a time (wal.maxParallel), none missing, none noted as stored but not.
    let (third, _) = switch(&node);
    let (fourth, _) = switch(&node);
    h.put_s3_secrets(&s3, &s3.secret_access_key);
    assert!(
        wait_until(Duration::from_secs(120), || archived(&node, &fourth)),
        "{fourth} not archived after the credentials were fixed:\n{}",
        node.postgres_log()
    );
    let listed = s3
        .python(
            "import boto3, os\ns3 = boto3.client('s3', endpoint_url=os.environ['S3_ENDPOINT'], verify=os.environ['S3_CA'])\nfor o in s3.list_objects_v2(Bucket=os.environ['S3_BUCKET'], Prefix='archive/')['Contents']: print(o['Key'])",
            &[],
        )
        .unwrap();
    for segment in [&second, &third, &fourth] {
        assert!(listed.contains(&format!("{segment}.gz")), "{segment} not in\n{listed}");
    }
    let spool = node.root.join("controller/wal-archive-spool");
    let noted: Vec<_> = std::fs::read_dir(&spool)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(noted.is_empty(), "noted but never asked for: {noted:?}");
    let status = h.status(&node).unwrap();
    assert_eq!(status.last_archived_wal.as_deref(), Some(fourth.as_str()));
    assert!(
        node.postgres_log().contains("archived ahead of PostgreSQL"),
        "nothing was archived in parallel"
    );
    let restored = h.work.path().join("restored-2");
    barman_wal_restore(&s3, "s3://backups/archive", CLUSTER, &second, &restored).unwrap();
    assert!(std::fs::read(&restored).unwrap() == second_bytes);
    assert!(
        wait_until(DEADLINE, || condition().is_some_and(|c| c.status == "True")),
        "{:?}",
        condition()
    );

    // No credential in any log.
    let logs = format!("{}{}", node.log(), node.postgres_log());
    assert!(!logs.contains(&s3.secret_access_key), "the secret key is in the logs");
}

/// Asks `node` for a base backup with the operator's certificate, as the operator does, and
/// waits until it is stored: its final status.
fn take_base_backup(h: &Harness, node: &Node, request: &TakeBackup, destination: &str) -> BaseBackupStatus {
    let address = node.status_address();
    let operator = pin_operator(h);
    let client = h.client(Some(&operator));
    // The backup runs in the background; its status says where it is.
    let mut started = None;
    assert!(
        wait_until(DEADLINE, || {
            started = h.rt.block_on(client.take_backup(address, request)).ok();
            started.is_some()
        }),
        "the backup never started:\n{}",
        node.log()
    );
    let started = started.unwrap();
    assert_eq!(started.phase, BaseBackupPhase::Running);
    assert_eq!(started.destination_path.as_deref(), Some(destination));
    assert_eq!(started.server_name.as_deref(), Some(CLUSTER));
    let id = started.backup_id.clone().unwrap();
    let mut done = started;
    assert!(
        wait_until(Duration::from_secs(120), || {
            done = h.rt.block_on(client.base_backup_status(address)).unwrap();
            done.phase != BaseBackupPhase::Running
        }),
        "the backup did not end:\n{}",
        node.log()
    );
    assert_eq!(done.phase, BaseBackupPhase::Completed, "{done:?}\n{}", node.log());
    assert_eq!(done.backup_id.as_deref(), Some(id.as_str()));
    done
}

/// Ends the current WAL segment and waits until the archiver reports it archived.
fn archive_current_segment(node: &Node) {
    let segment = peer_sql(node, "SELECT pg_walfile_name(pg_current_wal_lsn())").unwrap();
    peer_sql(node, "SELECT pg_switch_wal()").unwrap();
    assert!(
        wait_until(DEADLINE, || peer_sql(
            node,
            "SELECT last_archived_wal FROM pg_stat_archiver"
        )
        .as_deref()
            == Ok(segment.as_str())),
        "{segment} not archived:\n{}",
        node.postgres_log()
    );
}

/// barman's folder for a segment: its timeline and log.
fn segment_folder(segment: &str) -> String {
    segment.chars().take(16).collect()
}

/// The operator's client certificate, pinned in the Cluster's status, as the operator does.
fn pin_operator(h: &Harness) -> cnpg_pki::Pair {
    let now = now();
    let operator_ca = Authority::generate("cnpg-operator", "cnpg-system", now, 1).unwrap();
    let operator = operator_ca.issue("cnpg-operator", Usage::Client, &[], now, 1).unwrap();
    let fingerprint = cnpg_pki::public_key_fingerprint(&operator.certificate).unwrap();
    h.patch_status(json!({"operatorCertificateFingerprint": fingerprint}));
    operator
}

#[test]
fn a_base_backup_is_listed_and_restored_by_barman_and_recovers_every_archived_row() {
    let s3 = S3Server::start().unwrap();
    let destination = "s3://backups/base";
    let h = archiving_cluster(
        &s3,
        destination,
        json!({
            "wal": {"compression": "gzip", "encryption": "AES256"},
            "data": {"compression": "gzip", "encryption": "AES256"},
        }),
    );
    let (_rw, node) = one_primary(&h, [127, 0, 0, 25], [127, 0, 0, 26], |_| {});
    let address = node.status_address();
    let request = TakeBackup {
        backup_name: "nightly".into(),
        immediate_checkpoint: true,
        wait_for_archive: true,
    };
    let refused = h.rt.block_on(h.client(None).take_backup(address, &request));
    assert!(
        matches!(
            refused,
            Err(cnpg_instance_api::client::Error::Status { status: 401, .. })
        ),
        "{refused:?}"
    );
    h.app_sql(
        &node,
        "CREATE TABLE t (n int); INSERT INTO t SELECT generate_series(1, 1000)",
    )
    .unwrap();
    let done = take_base_backup(&h, &node, &request, destination);
    let id = done.backup_id.clone().unwrap();

    // Rows written after the backup reach the store as WAL.
    h.app_sql(&node, "INSERT INTO t SELECT generate_series(1001, 1500)")
        .unwrap();
    archive_current_segment(&node);

    // barman lists the backup as a whole one, with the WAL range the instance reported.
    let listed = barman(
        &s3,
        "barman-cloud-backup-list",
        &["--format", "json", destination, CLUSTER],
    )
    .unwrap();
    let listed: Value = serde_json::from_str(&listed).unwrap();
    let backups = listed["backups_list"].as_array().unwrap();
    assert_eq!(backups.len(), 1, "{listed}");
    let backup = &backups[0];
    assert_eq!(backup["backup_id"], json!(id));
    assert_eq!(backup["status"], json!("DONE"));
    assert_eq!(backup["compression"], json!("gzip"));
    assert_eq!(backup["begin_wal"].as_str(), done.begin_wal.as_deref());
    assert_eq!(backup["end_wal"].as_str(), done.end_wal.as_deref());
    assert_eq!(backup["begin_xlog"].as_str(), done.begin_lsn.as_deref());
    // The store encrypted what we wrote, as data.encryption and wal.encryption asked.
    let encryption = s3
        .python(
            "import boto3,os\ns3=boto3.client('s3',endpoint_url=os.environ['S3_ENDPOINT'],verify=os.environ['S3_CA'])\n\
             for k in [os.environ['DATA'], os.environ['WAL']]:\n\
             \x20   print(s3.head_object(Bucket=os.environ['S3_BUCKET'], Key=k).get('ServerSideEncryption'))",
            &[
                ("DATA", &format!("base/{CLUSTER}/base/{id}/data.tar.gz")),
                (
                    "WAL",
                    &format!(
                        "base/{CLUSTER}/wals/{}/{}.gz",
                        &segment_folder(done.begin_wal.as_deref().unwrap()),
                        done.begin_wal.as_deref().unwrap()
                    ),
                ),
            ],
        )
        .unwrap();
    assert_eq!(encryption.lines().collect::<Vec<_>>(), ["AES256", "AES256"]);

    // barman restores it; PostgreSQL replays barman's WAL restores to the end and has every row.
    let mut restored = cnpg_testkit::postgres::Postgres::init(MAJOR, &[]).unwrap();
    let data = restored.data();
    std::fs::remove_dir_all(&data).unwrap();
    barman(
        &s3,
        "barman-cloud-restore",
        &[destination, CLUSTER, &id, data.to_str().unwrap()],
    )
    .unwrap();
    assert!(data.join("backup_label").is_file(), "the label is in the tarball");
    assert!(!data.join("postmaster.pid").exists());
    let restore_command = format!(
        "env AWS_ACCESS_KEY_ID={} AWS_SECRET_ACCESS_KEY={} AWS_DEFAULT_REGION={} AWS_CA_BUNDLE={} \
         barman-cloud-wal-restore --cloud-provider aws-s3 --endpoint-url {} {destination} {CLUSTER} %f %p",
        s3.access_key_id,
        s3.secret_access_key,
        s3.region,
        s3.ca_file().display(),
        s3.endpoint
    );
    let mut auto = std::fs::read_to_string(data.join("postgresql.auto.conf")).unwrap_or_default();
    auto.push_str(&format!(
        "restore_command = '{restore_command}'\narchive_mode = off\nlog_directory = '{}'\n",
        restored.logs().display()
    ));
    std::fs::write(data.join("postgresql.auto.conf"), auto).unwrap();
    std::fs::write(data.join("recovery.signal"), "").unwrap();
    let owner = Command::new("chown")
        .args(["-R", "--reference"])
        .arg(restored.root())
        .arg(&data)
        .status()
        .unwrap();
    assert!(owner.success());
    restored.start().unwrap();
    assert!(
        wait_until(DEADLINE, || restored.sql("SELECT pg_is_in_recovery()").ok().as_deref()
            == Some("f")),
        "recovery did not end:\n{}",
        restored.log_text()
    );
    assert_eq!(
        restored.sql_each(&["\\c app", "SELECT count(*) FROM t"]).unwrap(),
        "1500"
    );
    assert_eq!(
        restored.sql("SELECT timeline_id FROM pg_control_checkpoint()").unwrap(),
        "2",
        "promoted onto a new timeline"
    );

    // retentionPolicy 30d: the backup above, redated to 40 days ago, is the one that recovers
    // the window's first moment and stays; an older one planted beside it goes, with the WAL
    // before the kept backup's first segment; history files stay.
    h.patch_spec(json!({"backup": {"retentionPolicy": "30d"}}));
    let settings = node.root.join("controller").join(cnpg_backup::archive::FILE_NAME);
    assert!(wait_until(DEADLINE, || std::fs::read_to_string(&settings)
        .unwrap_or_default()
        .contains("\"retention_policy\":\"30d\"")));
    let forty_days_ago = jiff::Timestamp::now()
        .checked_sub(jiff::SignedDuration::from_hours(40 * 24))
        .unwrap()
        .strftime("%Y-%m-%d %H:%M:%S.000000+00:00")
        .to_string();
    let old = "20200101T000000";
    let prefix = format!("base/{CLUSTER}/");
    s3.python(
        "import boto3, os, re\n\
         s3 = boto3.client('s3', endpoint_url=os.environ['S3_ENDPOINT'], verify=os.environ['S3_CA'])\n\
         b, p = os.environ['S3_BUCKET'], os.environ['PREFIX']\n\
         info = s3.get_object(Bucket=b, Key=p + 'base/' + os.environ['ID'] + '/backup.info')['Body'].read().decode()\n\
         redated = re.sub(r'(?m)^(begin_time|end_time)=.*$', lambda m: m.group(1) + '=' + os.environ['WHEN'], info)\n\
         s3.put_object(Bucket=b, Key=p + 'base/' + os.environ['ID'] + '/backup.info', Body=redated.encode())\n\
         older = re.sub(r'(?m)^(begin_time|end_time)=.*$', lambda m: m.group(1) + '=2020-01-01 00:10:00.000000+00:00', info)\n\
         s3.put_object(Bucket=b, Key=p + 'base/' + os.environ['OLD'] + '/backup.info', Body=older.encode())\n\
         s3.put_object(Bucket=b, Key=p + 'base/' + os.environ['OLD'] + '/data.tar.gz', Body=b'old')\n\
         s3.put_object(Bucket=b, Key=p + 'wals/0000000100000000/000000010000000000000000.gz', Body=b'old')\n\
         s3.put_object(Bucket=b, Key=p + 'wals/00000005.history', Body=b'kept')",
        &[("PREFIX", &prefix), ("ID", &id), ("OLD", old), ("WHEN", &forty_days_ago)],
    )
    .unwrap();
    let second = take_base_backup(
        &h,
        &node,
        &TakeBackup {
            backup_name: "second".into(),
            ..request
        },
        destination,
    );
    let keys = s3
        .python(
            "import boto3, os\ns3 = boto3.client('s3', endpoint_url=os.environ['S3_ENDPOINT'], verify=os.environ['S3_CA'])\n\
             for page in s3.get_paginator('list_objects_v2').paginate(Bucket=os.environ['S3_BUCKET'], Prefix='base/'):\n\
             \x20   for o in page.get('Contents', []): print(o['Key'])",
            &[],
        )
        .unwrap();
    assert!(!keys.contains(old), "the obsolete backup is still there:\n{keys}");
    for kept in [&id, second.backup_id.as_ref().unwrap()] {
        assert!(
            keys.contains(&format!("{prefix}base/{kept}/backup.info")),
            "{kept} was deleted:\n{keys}"
        );
    }
    assert!(!keys.contains("000000010000000000000000.gz"), "{keys}");
    assert!(keys.contains("wals/00000005.history"), "{keys}");
    let begin = done.begin_wal.clone().unwrap();
    assert!(
        keys.contains(&format!("{begin}.gz")),
        "the kept backup's first segment {begin} was deleted:\n{keys}"
    );
    assert!(node.log().contains("obsolete backup deleted"), "{}", node.log());

    // No credential in any log.
    let logs = format!("{}{}", node.log(), node.postgres_log());
    assert!(!logs.contains(&s3.secret_access_key), "the secret key is in the logs");
}

/// A Cluster recovering from the `origin` external cluster's store (`s3://backups/origin`,
/// server `pg`) up to `target`, archiving to `own` when given.
fn recovering_cluster(s3: &S3Server, target: Value, own: Option<&str>) -> Harness {
    let h = match own {
        Some(own) => archiving_cluster(s3, own, json!({"wal": {"compression": "gzip"}})),
        None => {
            let mut spec = cluster_spec();
            spec["instances"] = json!(1);
            let h = Harness::new(spec, manager());
            h.put_s3_secrets(s3, &s3.secret_access_key);
            h
        }
    };
    let origin = object_store(
        s3,
        "s3://backups/origin",
        &json!({"serverName": CLUSTER, "wal": {"compression": "gzip", "maxParallel": 4}}),
    );
    h.patch_spec(json!({
        "bootstrap": {"recovery": {"source": "origin", "recoveryTarget": target}},
        "externalClusters": [{"name": "origin", "barmanObjectStore": origin}],
    }));
    h
}

#[test]
fn point_in_time_recovery_has_exactly_the_rows_before_the_target_from_our_backups_and_barmans() {
    let s3 = S3Server::start().unwrap();
    let origin = "s3://backups/origin";
    let h = archiving_cluster(
        &s3,
        origin,
        json!({"wal": {"compression": "gzip"}, "data": {"compression": "gzip"}}),
    );
    let (_rw, mut node) = one_primary(&h, [127, 0, 0, 27], [127, 0, 0, 28], |_| {});
    h.app_sql(&node, "CREATE TABLE t (n int)").unwrap();
    let request = TakeBackup {
        backup_name: "before".into(),
        immediate_checkpoint: true,
        wait_for_archive: true,
    };
    let ours = take_base_backup(&h, &node, &request, origin);
    // Two writes, and a time between them.
    h.app_sql(&node, "INSERT INTO t SELECT generate_series(1, 100)")
        .unwrap();
    let between = h.app_sql(&node, "SELECT now()::text").unwrap();
    h.app_sql(&node, "INSERT INTO t SELECT generate_series(101, 200)")
        .unwrap();
    archive_current_segment(&node);

    // barman-cloud-backup takes a backup of the same server (as its OS user, over the socket).
    let ca = h.work.path().join("s3-ca.crt");
    std::fs::copy(s3.ca_file(), &ca).unwrap();
    let ids = cnpg_testkit::postgres::server_ids().unwrap();
    let barman_backup = as_user(std::path::Path::new("barman-cloud-backup"), ids)
        .args([
            "--cloud-provider",
            "aws-s3",
            "--endpoint-url",
            &s3.endpoint,
            "--immediate-checkpoint",
        ])
        .arg("--host")
        .arg(node.root.join("controller/run"))
        .args(["--port", "5432", "--user", "postgres", origin, CLUSTER])
        .env("AWS_ACCESS_KEY_ID", &s3.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &s3.secret_access_key)
        .env("AWS_DEFAULT_REGION", &s3.region)
        .env("AWS_CA_BUNDLE", &ca)
        .output()
        .unwrap();
    assert!(
        barman_backup.status.success(),
        "barman-cloud-backup: {}",
        String::from_utf8_lossy(&barman_backup.stderr)
    );
    archive_current_segment(&node);
    let listed: Value =
        serde_json::from_str(&barman(&s3, "barman-cloud-backup-list", &["--format", "json", origin, CLUSTER]).unwrap())
            .unwrap();
    let ids_listed: Vec<&str> = listed["backups_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["backup_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids_listed.len(), 2, "{listed}");
    let barmans = ids_listed[1].to_owned();
    // The origin is gone.
    node.stop();

    // Recovering into a path that holds WAL (here the origin's own) is refused before anything
    // is written.
    let h_refused = recovering_cluster(&s3, json!({"targetTime": between}), Some(origin));
    let refused = h_refused.node("pg-1", Ipv4Addr::new(127, 0, 0, 31));
    let log = refused.restore().unwrap_err();
    assert!(log.contains("already holds WAL"), "{log}");
    assert!(!refused.pgdata().join("PG_VERSION").exists());

    // Our backup, then WAL up to the time between the writes: the first hundred rows, on a
    // new timeline, archiving to the recovered cluster's own path.
    let own = "s3://backups/recovered";
    let h_pitr = recovering_cluster(&s3, json!({"targetTime": between}), Some(own));
    let (_rw_pitr, pitr) = start_primary(&h_pitr, [127, 0, 0, 29], [127, 0, 0, 30], |_| {}, Node::restore).unwrap();
    assert_eq!(
        h_pitr.app_sql(&pitr, "SELECT count(*), max(n) FROM t").unwrap(),
        "100|100"
    );
    assert_eq!(h_pitr.status(&pitr).unwrap().timeline_id, Some(2));
    assert!(
        pitr.postgres_log().contains("restored ahead of PostgreSQL"),
        "recovery fetched no segment ahead (wal.maxParallel 4)"
    );
    assert!(!pitr.root.join("controller/wal-restore-spool").exists());
    assert!(
        !pitr
            .root
            .join("controller")
            .join(cnpg_backup::archive::RECOVERY_FILE_NAME)
            .exists(),
        "the source's settings are gone once recovered"
    );
    archive_current_segment(&pitr);
    let history = format!("recovered/{CLUSTER}/wals/00000002.history.gz");
    let keys = s3
        .python(
            "import boto3, os\ns3 = boto3.client('s3', endpoint_url=os.environ['S3_ENDPOINT'], verify=os.environ['S3_CA'])\nfor o in s3.list_objects_v2(Bucket=os.environ['S3_BUCKET'], Prefix='recovered/')['Contents']: print(o['Key'])",
            &[],
        )
        .unwrap();
    assert!(keys.lines().any(|k| k == history), "{history} not in\n{keys}");

    // barman-cloud-backup's backup, recovered to the moment it is consistent: every row.
    let h_barman = recovering_cluster(&s3, json!({"backupID": barmans, "targetImmediate": true}), None);
    let (_rw_barman, restored) =
        start_primary(&h_barman, [127, 0, 0, 32], [127, 0, 0, 33], |_| {}, Node::restore).unwrap();
    assert_eq!(h_barman.app_sql(&restored, "SELECT count(*) FROM t").unwrap(), "200");

    // A Backup object, as the operator records one: recovered from, to the end of the WAL.
    let h_object = recovering_cluster(&s3, json!({}), None);
    h_object.patch_spec(json!({
        "bootstrap": {"recovery": {"source": null, "backup": {"name": "before"}}},
        "externalClusters": null,
    }));
    let store = object_store(&s3, origin, &json!({}));
    let recorded = json!({
        "phase": "completed",
        "backupId": ours.backup_id,
        "destinationPath": origin,
        "serverName": CLUSTER,
        "endpointURL": store["endpointURL"],
        "endpointCA": store["endpointCA"],
        "s3Credentials": store["s3Credentials"],
        "beginWal": ours.begin_wal,
        "endWal": ours.end_wal,
    });
    {
        let _runtime = h_object.rt.enter();
        let backups: Api<cnpg_api::backup::Backup> = Api::namespaced(h_object.api.client().unwrap(), NAMESPACE);
        let backup = cnpg_api::backup::Backup::new(
            "before",
            cnpg_api::backup::BackupSpec {
                cluster: k8s_openapi::api::core::v1::LocalObjectReference { name: CLUSTER.into() },
                ..Default::default()
            },
        );
        h_object.rt.block_on(async {
            backups.create(&PostParams::default(), &backup).await.unwrap();
            backups
                .patch_status(
                    "before",
                    &kube::api::PatchParams::default(),
                    &kube::api::Patch::Merge(json!({ "status": recorded })),
                )
                .await
                .unwrap();
        });
    }
    let (_rw_object, from_object) =
        start_primary(&h_object, [127, 0, 0, 34], [127, 0, 0, 35], |_| {}, Node::restore).unwrap();
    assert_eq!(h_object.app_sql(&from_object, "SELECT count(*) FROM t").unwrap(), "200");

    let logs = format!("{}{}{}{}", pitr.log(), restored.log(), refused.log(), from_object.log());
    assert!(!logs.contains(&s3.secret_access_key), "the secret key is in the logs");
}
