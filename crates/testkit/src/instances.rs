//! A cluster of instance managers on this machine, driven the way the operator drives them:
//! the API stand-in holds the Namespace, the Cluster, its Secrets (certificates from our PKI,
//! random passwords) and the default monitoring ConfigMap; each instance runs the instance
//! manager as `postgres` on its own loopback address; a [`crate::proxy::Proxy`] stands in for
//! the `-rw` Service. Shared by the instance manager's tests and benchmarks.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::unwrap_in_result,
    reason = "test fixture: a failed setup step is a failed test, reported where it happened"
)]

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cnpg_api::Cluster;
use cnpg_instance_api::InstanceStatus;
use cnpg_instance_api::client::Client;
use cnpg_pki::{Authority, Usage};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::apiserver::{ApiServer, Options};
use crate::postgres::{as_user, bin_dir, give, server_ids};
use crate::proxy::Proxy;
use crate::s3::S3Server;
use crate::wait_until;

pub const MAJOR: u32 = 15;
pub const NAMESPACE: &str = "db";
pub const CLUSTER: &str = "pg";
pub const DEADLINE: Duration = Duration::from_secs(60);

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .try_into()
        .unwrap()
}

/// 64 letters and digits from the OS CSPRNG, like the operator's passwords.
pub fn password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut bytes = [0u8; 64];
    openssl::rand::rand_bytes(&mut bytes).unwrap();
    bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect()
}

pub fn secret(name: &str, kind: &str, data: &[(&str, &str)]) -> Secret {
    let data: BTreeMap<String, ByteString> = data
        .iter()
        .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
        .collect();
    serde_json::from_value(json!({"metadata": {"name": name}, "type": kind, "data": data})).unwrap()
}

/// Everything the test shares: the stand-in, the cluster's CA and passwords, the `-rw` proxy.
#[derive(Debug)]
pub struct Harness {
    pub rt: tokio::runtime::Runtime,
    pub api: ApiServer,
    pub ca: Authority,
    pub ca_file: PathBuf,
    pub app_password: String,
    pub superuser_password: String,
    pub work: tempfile::TempDir,
    pub binary: PathBuf,
    pub ids: Option<(u32, u32)>,
    /// Every node's root, for the failure report.
    pub roots: std::cell::RefCell<Vec<PathBuf>>,
}

/// A `barmanObjectStore` for `destination` on `s3`, with the Secrets
/// [`Harness::put_s3_secrets`] writes, and `options` merged in.
pub fn object_store(s3: &S3Server, destination: &str, options: &Value) -> Value {
    let mut store = json!({
        "destinationPath": destination,
        "endpointURL": s3.endpoint,
        "endpointCA": {"name": "s3-ca", "key": "ca.crt"},
        "s3Credentials": {
            "accessKeyId": {"name": "s3", "key": "ACCESS_KEY_ID"},
            "secretAccessKey": {"name": "s3", "key": "ACCESS_SECRET_KEY"},
        },
    });
    for (key, value) in options.as_object().into_iter().flatten() {
        store[key] = value.clone();
    }
    store
}

impl Harness {
    /// Creates or replaces a Secret in the cluster's namespace.
    pub fn put_secret(&self, secret: Secret) {
        let _runtime = self.rt.enter();
        let secrets: Api<Secret> = Api::namespaced(self.api.client().unwrap(), NAMESPACE);
        let name = secret.metadata.name.clone().unwrap();
        self.rt
            .block_on(async {
                match secrets.get_opt(&name).await.unwrap() {
                    None => secrets.create(&PostParams::default(), &secret).await.map(drop),
                    Some(old) => {
                        let mut new = secret;
                        new.metadata.resource_version = old.metadata.resource_version;
                        secrets.replace(&name, &PostParams::default(), &new).await.map(drop)
                    }
                }
            })
            .unwrap();
    }

    /// The Secrets [`object_store`] names: the access key of `s3` with `secret_key` (`s3`)
    /// and its CA (`s3-ca`).
    pub fn put_s3_secrets(&self, s3: &S3Server, secret_key: &str) {
        self.put_secret(secret(
            "s3",
            "Opaque",
            &[("ACCESS_KEY_ID", &s3.access_key_id), ("ACCESS_SECRET_KEY", secret_key)],
        ));
        let ca = std::fs::read_to_string(s3.ca_file()).unwrap();
        self.put_secret(secret("s3-ca", "Opaque", &[("ca.crt", &ca)]));
    }

    /// Starts the stand-in and writes the Cluster (`spec`) with everything it refers to;
    /// `manager` is the instance-manager binary to run.
    pub fn new(spec: Value, manager: &Path) -> Self {
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
        std::fs::copy(manager, &binary).unwrap();
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
            let path = crate::repository_root().join("deploy/monitoring/default-monitoring.yaml");
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
    pub fn report(&self) -> String {
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

    pub fn clusters(&self) -> Api<Cluster> {
        let _runtime = self.rt.enter();
        Api::namespaced(self.api.client().unwrap(), NAMESPACE)
    }

    pub fn patch_status(&self, status: Value) {
        let clusters = self.clusters();
        self.rt
            .block_on(clusters.patch_status(
                CLUSTER,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": status})),
            ))
            .unwrap();
    }

    pub fn patch_spec(&self, spec: Value) {
        let clusters = self.clusters();
        self.rt
            .block_on(clusters.patch(CLUSTER, &PatchParams::default(), &Patch::Merge(json!({"spec": spec}))))
            .unwrap();
    }

    /// Merges `annotations` into the Cluster's (a null value removes one).
    pub fn annotate(&self, annotations: Value) {
        let clusters = self.clusters();
        self.rt
            .block_on(clusters.patch(
                CLUSTER,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"annotations": annotations}})),
            ))
            .unwrap();
    }

    pub fn current_primary(&self) -> Option<String> {
        self.api
            .object("postgresql.cnpg.io", "v1", "clusters", NAMESPACE, CLUSTER)
            .and_then(|c| c["status"]["currentPrimary"].as_str().map(str::to_owned))
    }

    /// An instance run on this machine.
    pub fn node(&self, name: &str, address: Ipv4Addr) -> Node {
        self.node_with(name, address, Runner::Host, self.ids)
    }

    /// An instance run in Docker from `image` (PostgreSQL) after `bootstrap_image` (the
    /// instance manager's image, as the bootstrap-controller init container) copied the manager
    /// into its controller directory.
    pub fn docker_node(&self, name: &str, address: Ipv4Addr, image: &str, bootstrap_image: &str) -> Node {
        let container = format!("cnpg-rs-test-{}-{name}", std::process::id());
        let node = self.node_with(
            name,
            address,
            Runner::Docker {
                image: image.to_owned(),
                container,
            },
            Some(IMAGE_IDS),
        );
        let mut bootstrap = Command::new("docker");
        bootstrap.args(["run", "--rm"]).args(docker_security()).args([
            "-v",
            &format!("{}:/controller", node.root.join("controller").display()),
            bootstrap_image,
            "bootstrap",
            "/controller/manager",
        ]);
        let out = bootstrap.output().unwrap();
        assert!(
            out.status.success(),
            "bootstrap: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        node
    }

    fn node_with(&self, name: &str, address: Ipv4Addr, runner: Runner, ids: Option<(u32, u32)>) -> Node {
        let root = self.work.path().join(name);
        std::fs::DirBuilder::new().mode(0o700).create(&root).unwrap();
        give(&root, ids).unwrap();
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
            give(&path, ids).unwrap();
        }
        // The bootstrap-controller init container's job: PostgreSQL calls the installed copy
        // (archive_command, restore_command).
        let controller = root.join("controller");
        std::fs::create_dir(&controller).unwrap();
        give(&controller, ids).unwrap();
        if runner == Runner::Host {
            let status = as_user(&self.binary, ids)
                .arg("bootstrap")
                .arg(controller.join("manager"))
                .status()
                .unwrap();
            assert!(status.success());
        }
        Node {
            name: name.to_owned(),
            address,
            root,
            binary: controller.join("manager"),
            api_url: self.api.url(),
            ids,
            run: None,
            runner,
            metrics_ca: None,
        }
    }

    /// `/pg/status` of `node`, verified as `<cluster>-rw` against the cluster CA.
    pub fn status(&self, node: &Node) -> Result<InstanceStatus, String> {
        let client = Client::new(&self.ca.certificate_pem().unwrap(), &format!("{CLUSTER}-rw"), None).unwrap();
        self.rt
            .block_on(client.status(node.status_address()))
            .map_err(|e| e.to_string())
    }

    /// A status-API client verifying `<cluster>-rw` against the cluster CA, presenting
    /// `identity` if given.
    pub fn client(&self, identity: Option<&cnpg_pki::Pair>) -> Client {
        let identity = identity.map(|pair| cnpg_instance_api::client::Identity {
            certificate: &pair.certificate,
            key: pair.key.expose(),
        });
        Client::new(&self.ca.certificate_pem().unwrap(), &format!("{CLUSTER}-rw"), identity).unwrap()
    }

    /// GET `path` on `node`'s status server, presenting `identity` if given: (status, body).
    pub fn get(&self, node: &Node, path: &str, identity: Option<&cnpg_pki::Pair>) -> (u16, String) {
        let client = self.client(identity);
        let (status, body) = self.rt.block_on(client.get(node.status_address(), path)).unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    pub fn wait_status(&self, node: &Node, what: &str, check: impl Fn(&InstanceStatus) -> bool) -> InstanceStatus {
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
    pub fn psql(&self, node: &Node, user: &str, password: &str, dbname: &str, sql: &str) -> Result<String, String> {
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
        rows(&out)
    }

    pub fn app_sql(&self, node: &Node, sql: &str) -> Result<String, String> {
        self.psql(node, "app", &self.app_password, "app", sql)
    }
}

/// One instance: its directories and, while running, its `instance run` process.
#[derive(Debug)]
pub struct Node {
    pub name: String,
    pub address: Ipv4Addr,
    pub root: PathBuf,
    pub binary: PathBuf,
    pub api_url: String,
    pub ids: Option<(u32, u32)>,
    pub run: Option<Child>,
    pub runner: Runner,
    /// Set before `start`: the exporter serves TLS (`--metrics-port-tls`) and `metrics()`
    /// verifies it against this CA file.
    pub metrics_ca: Option<PathBuf>,
}

/// Where an instance's commands run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Runner {
    /// On this machine, as the `postgres` user (under root), with Debian's PostgreSQL.
    Host,
    /// In Docker from `image` (one of our PostgreSQL images): read-only root, uid/gid 26, all
    /// capabilities dropped, no privilege gain, the host's network (the stand-in and every
    /// server stay on loopback); the data, controller and ServiceAccount directories are bind
    /// mounts at the paths a pod has.
    Docker { image: String, container: String },
}

/// The uid and gid our PostgreSQL images run as.
pub const IMAGE_IDS: (u32, u32) = (26, 26);

impl Node {
    /// GET /metrics on the exporter: the exposition text.
    /// Over TLS, verified as `<cluster>-rw` against `metrics_ca`, when that is set.
    pub fn metrics(&self) -> String {
        let mut curl = Command::new("curl");
        curl.args(["-sS", "--max-time", "10"]);
        match &self.metrics_ca {
            None => curl.arg(format!("http://{}:9187/metrics", self.address)),
            Some(ca) => curl
                .arg("--cacert")
                .arg(ca)
                .args(["--resolve", &format!("{CLUSTER}-rw:9187:{}", self.address)])
                .arg(format!("https://{CLUSTER}-rw:9187/metrics")),
        };
        let out = curl.output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn status_address(&self) -> SocketAddr {
        SocketAddr::from((self.address, 8000))
    }

    pub fn postgres_address(&self) -> SocketAddr {
        SocketAddr::from((self.address, 5432))
    }

    pub fn pgdata(&self) -> PathBuf {
        self.root.join("data/pgdata")
    }

    pub fn log_path(&self) -> PathBuf {
        self.root.join("manager.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = match &self.runner {
            Runner::Host => {
                let mut cmd = as_user(&self.binary, self.ids);
                cmd.args(["--log-format", "text", "--log-level", "debug"]).args(args);
                cmd.arg("--pg-data")
                    .arg(self.pgdata())
                    .arg("--controller-dir")
                    .arg(self.root.join("controller"))
                    .arg("--pg-bin-dir")
                    .arg(bin_dir(MAJOR).unwrap());
                cmd.env_remove("KUBERNETES_SERVICE_HOST").env_remove("PGDATA");
                cmd
            }
            Runner::Docker { image, container } => {
                let mut cmd = Command::new("docker");
                let mount =
                    |host: &str, inside: &str, mode: &str| format!("{}:{inside}{mode}", self.root.join(host).display());
                cmd.args(["run", "--rm", "--name", container])
                    .args(docker_security())
                    .args(["--network", "host", "--entrypoint", "/controller/manager"])
                    .args(["-v", &mount("data", "/var/lib/postgresql/data", "")])
                    .args(["-v", &mount("controller", "/controller", "")])
                    .args([
                        "-v",
                        &mount("serviceaccount", "/var/run/secrets/kubernetes.io/serviceaccount", ":ro"),
                    ])
                    .arg(image)
                    .args(["--log-format", "text", "--log-level", "debug"])
                    .args(args);
                cmd
            }
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        cmd.stdin(Stdio::null()).stdout(log.try_clone().unwrap()).stderr(log);
        cmd
    }

    pub fn kube_args(&self) -> Vec<String> {
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
        .chain([match self.runner {
            Runner::Host => self.root.join("serviceaccount").display().to_string(),
            Runner::Docker { .. } => "/var/run/secrets/kubernetes.io/serviceaccount".to_owned(),
        }])
        .collect()
    }

    pub fn init(&self) {
        let status = self.command(&["instance", "init"]).status().unwrap();
        assert!(status.success(), "instance init failed:\n{}", self.log());
    }

    /// `instance restore` (the full-recovery job): Ok, or the node's log.
    pub fn restore(&self) -> Result<(), String> {
        let mut args = vec!["instance".to_owned(), "restore".to_owned()];
        args.extend(self.kube_args());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let status = self.command(&args).status().unwrap();
        if status.success() { Ok(()) } else { Err(self.log()) }
    }

    pub fn join(&self, primary: &Proxy) -> Result<(), String> {
        let mut args = vec!["instance".to_owned(), "join".to_owned()];
        args.extend(self.kube_args());
        args.extend(["--parent-node".to_owned(), primary.address().ip().to_string()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let status = self.command(&args).status().unwrap();
        if status.success() { Ok(()) } else { Err(self.log()) }
    }

    pub fn start(&mut self, primary: &Proxy) {
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
        if self.metrics_ca.is_some() {
            args.push("--metrics-port-tls".to_owned());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.run = Some(self.command(&args).spawn().unwrap());
    }

    /// SIGTERM, as the kubelet sends it; the exit status.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
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
    pub fn postgres_log(&self) -> String {
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
        if let Runner::Docker { container, .. } = &self.runner {
            let _ = Command::new("docker").args(["rm", "-f", container]).output();
            return;
        }
        // A postmaster left behind by a failed test must not hold the address for the next.
        if let Ok(pid) = std::fs::read_to_string(self.pgdata().join("postmaster.pid"))
            && let Some(pid) = pid.lines().next()
        {
            let _ = Command::new("kill").args(["-QUIT", pid]).status();
        }
    }
}

/// The container settings every PostgreSQL container gets (the pod's security context):
/// read-only root, uid/gid 26, no capabilities, no privilege gain. Docker's default seccomp
/// profile applies (RuntimeDefault).
pub fn docker_security() -> [&'static str; 7] {
    [
        "--read-only",
        "--user",
        "26:26",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
    ]
}

pub fn streaming(status: &InstanceStatus, names: &[&str]) -> bool {
    names.iter().all(|name| {
        status
            .replication_info
            .iter()
            .any(|r| r.application_name == *name && r.state == "streaming")
    })
}

/// psql over `node`'s Unix socket as the `postgres` OS user: peer authentication.
pub fn peer_sql(node: &Node, sql: &str) -> Result<String, String> {
    let out = as_user(&bin_dir(MAJOR).unwrap().join("psql"), node.ids)
        .args(["-X", "-A", "-t", "-U", "postgres", "-d", "postgres", "-c", sql, "-h"])
        .arg(node.root.join("controller/run"))
        .output()
        .unwrap();
    rows(&out)
}

/// psql's rows (unaligned), or its error message.
fn rows(out: &std::process::Output) -> Result<String, String> {
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}
