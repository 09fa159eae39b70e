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

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cnpg_api::Cluster;
use cnpg_instance_api::InstanceStatus;
use cnpg_instance_api::client::Client;
use cnpg_pki::{Authority, Usage};
use cnpg_testkit::apiserver::{ApiServer, Options};
use cnpg_testkit::postgres::{as_user, bin_dir, give, server_ids};
use cnpg_testkit::proxy::Proxy;
use cnpg_testkit::wait_until;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const MAJOR: u32 = 15;
const NAMESPACE: &str = "db";
const CLUSTER: &str = "pg";
const DEADLINE: Duration = Duration::from_secs(60);

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .try_into()
        .unwrap()
}

/// 64 letters and digits from the OS CSPRNG, like the operator's passwords.
fn password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut bytes = [0u8; 64];
    openssl::rand::rand_bytes(&mut bytes).unwrap();
    bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect()
}

fn secret(name: &str, kind: &str, data: &[(&str, &str)]) -> Secret {
    let data: BTreeMap<String, ByteString> = data
        .iter()
        .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
        .collect();
    serde_json::from_value(json!({"metadata": {"name": name}, "type": kind, "data": data})).unwrap()
}

/// Everything the test shares: the stand-in, the cluster's CA and passwords, the `-rw` proxy.
struct Harness {
    rt: tokio::runtime::Runtime,
    api: ApiServer,
    ca: Authority,
    ca_file: PathBuf,
    app_password: String,
    superuser_password: String,
    work: tempfile::TempDir,
    binary: PathBuf,
    ids: Option<(u32, u32)>,
    /// Every node's root, for the failure report.
    roots: std::cell::RefCell<Vec<PathBuf>>,
}

impl Harness {
    fn new(spec: Value) -> Self {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let api = ApiServer::start_with(Options {
            crds: cnpg_api::crds::all(),
            ..Options::default()
        })
        .unwrap();
        let ids = server_ids().unwrap();
        // Traversable by the managers, which run as `postgres`.
        let work = tempfile::Builder::new()
            .permissions(std::fs::Permissions::from_mode(0o755))
            .tempdir()
            .unwrap();
        // The managers run as `postgres`: they get their own copy of the binary.
        let binary = work.path().join("manager");
        std::fs::copy(env!("CARGO_BIN_EXE_instance-manager"), &binary).unwrap();
        let ca = Authority::generate(CLUSTER, NAMESPACE, now(), 1).unwrap();
        let ca_file = work.path().join("ca.crt");
        std::fs::write(&ca_file, ca.certificate_pem().unwrap()).unwrap();
        let names = cnpg_pki::server_names(CLUSTER, NAMESPACE, "cluster.local", &["rw", "r", "ro"], &[]);
        let server = ca
            .issue(&format!("{CLUSTER}-rw"), Usage::Server, &names, now(), 1)
            .unwrap();
        let replication = ca.issue("streaming_replica", Usage::Client, &[], now(), 1).unwrap();
        let (app_password, superuser_password) = (password(), password());
        let ca_pem = ca.certificate_pem().unwrap();
        let ca_key = ca.pair().unwrap().key;
        let client = {
            let _runtime = rt.enter();
            api.client().unwrap()
        };
        rt.block_on(async {
            let namespaces: Api<Namespace> = Api::all(client.clone());
            let namespace = serde_json::from_value(json!({"metadata": {"name": NAMESPACE}})).unwrap();
            namespaces.create(&PostParams::default(), &namespace).await.unwrap();
            let secrets: Api<Secret> = Api::namespaced(client.clone(), NAMESPACE);
            for s in [
                secret(
                    &format!("{CLUSTER}-ca"),
                    "Opaque",
                    &[("ca.crt", &ca_pem), ("ca.key", ca_key.expose())],
                ),
                secret(
                    &format!("{CLUSTER}-server"),
                    "kubernetes.io/tls",
                    &[("tls.crt", &server.certificate), ("tls.key", server.key.expose())],
                ),
                secret(
                    &format!("{CLUSTER}-replication"),
                    "kubernetes.io/tls",
                    &[
                        ("tls.crt", &replication.certificate),
                        ("tls.key", replication.key.expose()),
                    ],
                ),
                secret(
                    &format!("{CLUSTER}-app"),
                    "kubernetes.io/basic-auth",
                    &[("username", "app"), ("password", &app_password)],
                ),
                secret(
                    &format!("{CLUSTER}-superuser"),
                    "kubernetes.io/basic-auth",
                    &[("username", "postgres"), ("password", &superuser_password)],
                ),
            ] {
                secrets.create(&PostParams::default(), &s).await.unwrap();
            }
            let clusters: Api<Cluster> = Api::namespaced(client, NAMESPACE);
            let cluster: Cluster = serde_json::from_value(json!({
                "apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster",
                "metadata": {"name": CLUSTER}, "spec": spec,
            }))
            .unwrap();
            clusters.create(&PostParams::default(), &cluster).await.unwrap();
            // The operator copies the default queries into the cluster's namespace.
            let path = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap())
                .join("../../deploy/monitoring/default-monitoring.yaml");
            let mut defaults: ConfigMap = serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
            defaults.metadata.namespace = Some(NAMESPACE.into());
            let config_maps: Api<ConfigMap> = Api::namespaced(clusters.into_client(), NAMESPACE);
            config_maps.create(&PostParams::default(), &defaults).await.unwrap();
        });
        Self {
            rt,
            api,
            ca,
            ca_file,
            app_password,
            superuser_password,
            work,
            binary,
            ids,
            roots: std::cell::RefCell::default(),
        }
    }

    /// Every log so far (the manager's and the tail of PostgreSQL's), for failure messages.
    fn report(&self) -> String {
        let mut out = String::new();
        for root in self.roots.borrow().iter() {
            out.push_str(&format!("===== {}\n", root.display()));
            out.push_str(&std::fs::read_to_string(root.join("manager.log")).unwrap_or_default());
            for entry in std::fs::read_dir(root.join("controller/log"))
                .into_iter()
                .flatten()
                .flatten()
            {
                let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(30).collect();
                out.push_str(&format!("----- {}\n", entry.path().display()));
                for line in tail.iter().rev() {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        out
    }

    fn clusters(&self) -> Api<Cluster> {
        let _runtime = self.rt.enter();
        Api::namespaced(self.api.client().unwrap(), NAMESPACE)
    }

    fn patch_status(&self, status: Value) {
        let clusters = self.clusters();
        self.rt
            .block_on(clusters.patch_status(
                CLUSTER,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": status})),
            ))
            .unwrap();
    }

    fn patch_spec(&self, spec: Value) {
        let clusters = self.clusters();
        self.rt
            .block_on(clusters.patch(CLUSTER, &PatchParams::default(), &Patch::Merge(json!({"spec": spec}))))
            .unwrap();
    }

    fn current_primary(&self) -> Option<String> {
        self.api
            .object("postgresql.cnpg.io", "v1", "clusters", NAMESPACE, CLUSTER)
            .and_then(|c| c["status"]["currentPrimary"].as_str().map(str::to_owned))
    }

    /// A directory the managers (running as `postgres`) own.
    fn owned_dir(&self, name: &str) -> PathBuf {
        let dir = self.work.path().join(name);
        std::fs::DirBuilder::new().mode(0o700).create(&dir).unwrap();
        give(&dir, self.ids).unwrap();
        dir
    }

    fn node(&self, name: &str, address: Ipv4Addr) -> Node {
        let root = self.owned_dir(name);
        self.roots.borrow_mut().push(root.clone());
        let sa = root.join("serviceaccount");
        std::fs::create_dir(&sa).unwrap();
        std::fs::write(sa.join("token"), self.api.token()).unwrap();
        std::fs::write(sa.join("ca.crt"), self.api.ca_pem()).unwrap();
        for path in [sa.clone(), sa.join("token"), sa.join("ca.crt"), {
            let data = root.join("data");
            std::fs::create_dir(&data).unwrap();
            data
        }] {
            give(&path, self.ids).unwrap();
        }
        // The bootstrap-controller init container's job: PostgreSQL calls the installed copy
        // (archive_command, restore_command).
        let controller = root.join("controller");
        std::fs::create_dir(&controller).unwrap();
        give(&controller, self.ids).unwrap();
        let status = as_user(&self.binary, self.ids)
            .arg("bootstrap")
            .arg(controller.join("manager"))
            .status()
            .unwrap();
        assert!(status.success());
        Node {
            name: name.to_owned(),
            address,
            root,
            binary: controller.join("manager"),
            api_url: self.api.url(),
            ids: self.ids,
            run: None,
        }
    }

    /// `/pg/status` of `node`, verified as `<cluster>-rw` against the cluster CA.
    fn status(&self, node: &Node) -> Result<InstanceStatus, String> {
        let client = Client::new(&self.ca.certificate_pem().unwrap(), &format!("{CLUSTER}-rw"), None).unwrap();
        self.rt
            .block_on(client.status(node.status_address()))
            .map_err(|e| e.to_string())
    }

    /// GET `path` on `node`'s status server, presenting `identity` if given: (status, body).
    fn get(&self, node: &Node, path: &str, identity: Option<&cnpg_pki::Pair>) -> (u16, String) {
        let identity = identity.map(|pair| cnpg_instance_api::client::Identity {
            certificate: &pair.certificate,
            key: pair.key.expose(),
        });
        let client = Client::new(&self.ca.certificate_pem().unwrap(), &format!("{CLUSTER}-rw"), identity).unwrap();
        let (status, body) = self.rt.block_on(client.get(node.status_address(), path)).unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    fn wait_status(&self, node: &Node, what: &str, check: impl Fn(&InstanceStatus) -> bool) -> InstanceStatus {
        let mut last = Err(String::from("no answer yet"));
        let held = wait_until(DEADLINE, || {
            last = self.status(node);
            last.as_ref().is_ok_and(&check)
        });
        assert!(
            held,
            "{}: {what} did not happen; last status: {last:?}\n{}",
            node.name,
            self.report()
        );
        last.unwrap()
    }

    /// psql over TLS to `node` as `user` with `password`: Ok(rows) or Err(message).
    fn psql(&self, node: &Node, user: &str, password: &str, dbname: &str, sql: &str) -> Result<String, String> {
        let out = Command::new(bin_dir(MAJOR).unwrap().join("psql"))
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .arg(format!(
                "host={} port=5432 user={user} dbname={dbname} sslmode=verify-ca sslrootcert={}",
                node.address,
                self.ca_file.display()
            ))
            .env("PGPASSWORD", password)
            .env("PGCONNECT_TIMEOUT", "5")
            .output()
            .unwrap();
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    fn app_sql(&self, node: &Node, sql: &str) -> Result<String, String> {
        self.psql(node, "app", &self.app_password, "app", sql)
    }
}

/// One instance: its directories and, while running, its `instance run` process.
struct Node {
    name: String,
    address: Ipv4Addr,
    root: PathBuf,
    binary: PathBuf,
    api_url: String,
    ids: Option<(u32, u32)>,
    run: Option<Child>,
}

impl Node {
    /// GET /metrics on the exporter: the exposition text.
    fn metrics(&self) -> String {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "10"])
            .arg(format!("http://{}:9187/metrics", self.address))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn status_address(&self) -> SocketAddr {
        SocketAddr::from((self.address, 8000))
    }

    fn postgres_address(&self) -> SocketAddr {
        SocketAddr::from((self.address, 5432))
    }

    fn pgdata(&self) -> PathBuf {
        self.root.join("data/pgdata")
    }

    fn log_path(&self) -> PathBuf {
        self.root.join("manager.log")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = as_user(&self.binary, self.ids);
        cmd.args(["--log-format", "text", "--log-level", "debug"]).args(args);
        cmd.arg("--pg-data")
            .arg(self.pgdata())
            .arg("--controller-dir")
            .arg(self.root.join("controller"))
            .arg("--pg-bin-dir")
            .arg(bin_dir(MAJOR).unwrap());
        cmd.env_remove("KUBERNETES_SERVICE_HOST").env_remove("PGDATA");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        cmd.stdin(Stdio::null()).stdout(log.try_clone().unwrap()).stderr(log);
        cmd
    }

    fn kube_args(&self) -> Vec<String> {
        [
            "--cluster-name",
            CLUSTER,
            "--namespace",
            NAMESPACE,
            "--pod-name",
            &self.name,
            "--api-url",
            &self.api_url,
            "--service-account-dir",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .chain([self.root.join("serviceaccount").display().to_string()])
        .collect()
    }

    fn init(&self) {
        let status = self.command(&["instance", "init"]).status().unwrap();
        assert!(status.success(), "instance init failed:\n{}", self.log());
    }

    fn join(&self, primary: &Proxy) -> Result<(), String> {
        let mut args = vec!["instance".to_owned(), "join".to_owned()];
        args.extend(self.kube_args());
        args.extend(["--parent-node".to_owned(), primary.address().ip().to_string()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let status = self.command(&args).status().unwrap();
        if status.success() { Ok(()) } else { Err(self.log()) }
    }

    fn start(&mut self, primary: &Proxy) {
        let mut args = vec!["instance".to_owned(), "run".to_owned()];
        args.extend(self.kube_args());
        args.extend([
            "--listen-addresses".to_owned(),
            self.address.to_string(),
            "--status-address".to_owned(),
            self.status_address().to_string(),
            "--metrics-address".to_owned(),
            SocketAddr::from((self.address, 9187)).to_string(),
            "--primary-host".to_owned(),
            primary.address().ip().to_string(),
            "--resync-seconds".to_owned(),
            "1".to_owned(),
        ]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.run = Some(self.command(&args).spawn().unwrap());
    }

    /// SIGTERM, as the kubelet sends it; the exit status.
    fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.run.take()?;
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        let mut exit = None;
        wait_until(DEADLINE, || {
            exit = child.try_wait().unwrap();
            exit.is_some()
        });
        if exit.is_none() {
            let _ = child.kill();
            exit = child.wait().ok();
        }
        exit
    }

    /// Everything PostgreSQL logged.
    fn postgres_log(&self) -> String {
        let mut text = String::new();
        for entry in std::fs::read_dir(self.root.join("controller/log"))
            .into_iter()
            .flatten()
            .flatten()
        {
            text.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
        }
        text
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.stop();
        // A postmaster left behind by a failed test must not hold the address for the next.
        if let Ok(pid) = std::fs::read_to_string(self.pgdata().join("postmaster.pid"))
            && let Some(pid) = pid.lines().next()
        {
            let _ = Command::new("kill").args(["-QUIT", pid]).status();
        }
    }
}

fn streaming(status: &InstanceStatus, names: &[&str]) -> bool {
    names.iter().all(|name| {
        status
            .replication_info
            .iter()
            .any(|r| r.application_name == *name && r.state == "streaming")
    })
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
    let h = Harness::new(cluster_spec());
    h.patch_status(json!({"targetPrimary": "pg-1", "instanceNames": ["pg-1", "pg-2", "pg-3"]}));
    let rw = Proxy::start(SocketAddr::from(([127, 0, 0, 10], 5432))).unwrap();
    let mut nodes = [
        h.node("pg-1", Ipv4Addr::new(127, 0, 0, 2)),
        h.node("pg-2", Ipv4Addr::new(127, 0, 0, 3)),
        h.node("pg-3", Ipv4Addr::new(127, 0, 0, 4)),
    ];

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

/// psql over `node`'s Unix socket as the `postgres` OS user: peer authentication.
fn peer_sql(node: &Node, sql: &str) -> Result<String, String> {
    let out = as_user(&bin_dir(MAJOR).unwrap().join("psql"), node.ids)
        .args(["-X", "-A", "-t", "-U", "postgres", "-d", "postgres", "-c", sql, "-h"])
        .arg(node.root.join("controller/run"))
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn superuser_access_follows_the_cluster_and_bad_configuration_is_refused_before_writing() {
    let mut spec = cluster_spec();
    spec["instances"] = json!(1);
    let h = Harness::new(spec);
    h.patch_status(json!({"targetPrimary": "pg-1", "instanceNames": ["pg-1"]}));
    let rw = Proxy::start(SocketAddr::from(([127, 0, 0, 11], 5432))).unwrap();
    let mut node = h.node("pg-1", Ipv4Addr::new(127, 0, 0, 5));
    node.init();
    node.start(&rw);
    h.wait_status(&node, "primary up", |s| s.is_primary && s.is_pod_ready);
    assert!(wait_until(DEADLINE, || h
        .app_sql(&node, "SELECT current_user")
        .as_deref()
        == Ok("app")));

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
    assert_eq!(h.get(&node, "/healthz", None), (200, "OK\n".to_owned()));
    assert_eq!(h.get(&node, "/readyz", None).0, 200);

    let exit = node.stop().unwrap();
    assert!(exit.success(), "{exit:?}\n{}", node.log());
    let logs = format!("{}{}", node.log(), node.postgres_log());
    for secret in [&h.app_password, &h.superuser_password] {
        assert!(!logs.contains(secret.as_str()), "a password is in the logs");
    }
}
