//! The rendered configuration on a real server: Debian's PostgreSQL 15 started with our
//! custom.conf, pg_hba.conf and pg_ident.conf and certificates from our PKI. What a client
//! sees: TLS 1.3 only, passwords checked against the verifiers we computed, replication
//! by certificate alone, and no password in the server's log.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "integration test helpers: a failed unwrap is a failed assertion"
)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use cnpg_pki::{Authority, Usage};
use cnpg_postgres::conf::{self, Role};
use cnpg_postgres::paths::Paths;
use cnpg_postgres::{hba, password};
use cnpg_testkit::postgres::{Postgres, bin_dir};

const MAJOR: u32 = 15;

/// psql over TCP to 127.0.0.1 with `conninfo` extras; Ok(stdout) or Err(stderr).
fn psql(pg: &Postgres, conninfo: &str, password: Option<&str>, query: &str) -> Result<String, String> {
    let psql = bin_dir(MAJOR).map_err(|e| e.to_string())?.join("psql");
    let mut cmd = Command::new(psql);
    cmd.args([
        "-X",
        "-A",
        "-t",
        "-c",
        query,
        &format!("host=127.0.0.1 port={} {conninfo}", pg.port),
    ]);
    cmd.env_remove("PGPASSWORD");
    if let Some(password) = password {
        cmd.env("PGPASSWORD", password);
    }
    let out = cmd.output().map_err(|e| format!("psql did not start: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn write_pair(pg: &Postgres, dir: &Path, name: &str, pair: &cnpg_pki::Pair) {
    pg.write(&dir.join(format!("{name}.crt")), &pair.certificate, 0o644)
        .unwrap();
    pg.write(&dir.join(format!("{name}.key")), pair.key.expose(), 0o600)
        .unwrap();
}

#[test]
fn postgres_runs_our_configuration_and_enforces_it() {
    let mut pg = Postgres::init(MAJOR, &[]).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .try_into()
        .unwrap();
    let ca = Authority::generate("pg", "db", now, 1).unwrap();
    let server = ca
        .issue(
            "pg-rw",
            Usage::Server,
            &["localhost".into(), "127.0.0.1".into()],
            now,
            1,
        )
        .unwrap();
    let replica = ca.issue("streaming_replica", Usage::Client, &[], now, 1).unwrap();
    let certificates = pg.certificates();
    write_pair(&pg, &certificates, "server", &server);
    pg.write(
        &certificates.join("client-ca.crt"),
        &ca.certificate_pem().unwrap(),
        0o644,
    )
    .unwrap();
    pg.write(
        &certificates.join("server-ca.crt"),
        &ca.certificate_pem().unwrap(),
        0o644,
    )
    .unwrap();
    // The client side of replication, readable by this test (psql runs as us).
    let client_dir = tempfile::tempdir().unwrap();
    std::fs::write(client_dir.path().join("streaming_replica.crt"), &replica.certificate).unwrap();
    let key_path = client_dir.path().join("streaming_replica.key");
    {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut key = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&key_path)
            .unwrap();
        key.write_all(replica.key.expose().as_bytes()).unwrap();
    }
    std::fs::write(client_dir.path().join("ca.crt"), ca.certificate_pem().unwrap()).unwrap();

    let spec: cnpg_api::cluster::ClusterSpec = serde_json::from_value(serde_json::json!({"postgresql": {
        "parameters": {"work_mem": "8MB", "log_statement": "all"},
        "pg_hba": ["hostssl app app 127.0.0.1/32 scram-sha-256"],
    }}))
    .unwrap();
    let paths = Paths {
        manager: "/bin/true".into(),
        certificates: certificates.clone(),
        sockets: pg.sockets(),
        logs: pg.logs(),
        listen_addresses: "127.0.0.1".into(),
    };
    let rendered = conf::render(&spec, "pg", MAJOR, &paths, &Role::Primary).unwrap();
    let data = pg.data();
    pg.write(&data.join("custom.conf"), &rendered.custom_conf, 0o600)
        .unwrap();
    pg.write(&data.join("override.conf"), &rendered.override_conf, 0o600)
        .unwrap();
    let initdb_conf = std::fs::read_to_string(data.join("postgresql.conf")).unwrap();
    pg.write(&data.join("postgresql.conf"), &conf::with_includes(&initdb_conf), 0o600)
        .unwrap();
    pg.write(
        &data.join("pg_hba.conf"),
        &hba::pg_hba(&spec, MAJOR, &BTreeMap::new()).unwrap(),
        0o600,
    )
    .unwrap();
    pg.write(
        &data.join("pg_ident.conf"),
        &hba::pg_ident(&spec, &pg.os_user()).unwrap(),
        0o600,
    )
    .unwrap();
    pg.start().unwrap();

    // The server runs what we rendered.
    assert_eq!(pg.sql("SHOW cnpg.config_sha256").unwrap(), rendered.hash);
    assert_eq!(pg.sql("SHOW work_mem").unwrap(), "8MB");
    assert_eq!(pg.sql("SHOW ssl").unwrap(), "on");
    assert_eq!(
        pg.sql("SELECT count(*) FROM pg_hba_file_rules WHERE error IS NOT NULL")
            .unwrap(),
        "0"
    );

    // Roles get verifiers, never cleartext; statement logging is off for that statement.
    let secret = "Z9kq2VbXr7LmN4pT8sWc1dYh6Jf3Ga0Ue5Qo";
    let verifier = password::verifier(secret, "app", MAJOR).unwrap();
    pg.sql("CREATE DATABASE app").unwrap();
    // As the instance manager sends it: each statement on its own, so log_statement is off
    // before the one carrying the verifier arrives (a multi-statement string is logged whole).
    let create = format!("CREATE ROLE app LOGIN PASSWORD '{verifier}'");
    pg.sql_each(&[
        "BEGIN",
        "SET LOCAL log_statement = 'none'",
        "SET LOCAL log_min_error_statement = 'PANIC'",
        &create,
        "COMMIT",
    ])
    .unwrap();
    pg.sql("CREATE ROLE streaming_replica LOGIN REPLICATION").unwrap();

    let tls = format!(
        "sslmode=verify-full sslrootcert={}",
        client_dir.path().join("ca.crt").display()
    );
    assert_eq!(
        psql(
            &pg,
            &format!("{tls} user=app dbname=app"),
            Some(secret),
            "SELECT current_user"
        )
        .unwrap(),
        "app"
    );
    let wrong = psql(&pg, &format!("{tls} user=app dbname=app"), Some("not-it"), "SELECT 1").unwrap_err();
    assert!(wrong.contains("password authentication failed"), "{wrong}");
    let old_tls = psql(
        &pg,
        &format!("{tls} ssl_max_protocol_version=TLSv1.2 user=app dbname=app"),
        Some(secret),
        "SELECT 1",
    )
    .unwrap_err();
    assert!(
        old_tls.contains("SSL") || old_tls.contains("protocol"),
        "TLS 1.2 must be refused: {old_tls}"
    );
    let plain = psql(&pg, "sslmode=disable user=app dbname=app", Some(secret), "SELECT 1").unwrap_err();
    assert!(
        plain.contains("no pg_hba.conf entry") || plain.contains("authentication failed"),
        "{plain}"
    );

    // streaming_replica gets in with its certificate, and only with it.
    let cert = format!(
        "{tls} sslcert={} sslkey={} user=streaming_replica dbname=postgres",
        client_dir.path().join("streaming_replica.crt").display(),
        key_path.display()
    );
    assert_eq!(
        psql(&pg, &cert, None, "SELECT current_user").unwrap(),
        "streaming_replica"
    );
    let without = psql(
        &pg,
        &format!("{tls} user=streaming_replica dbname=postgres"),
        Some("guess"),
        "SELECT 1",
    )
    .unwrap_err();
    assert!(
        without.contains("authentication failed") || without.contains("certificate"),
        "{without}"
    );

    pg.stop();
    let log = pg.log_text();
    assert!(log.contains("app"), "the log was written: {log}");
    assert!(!log.contains(secret), "the password reached the server log");
    assert!(!log.contains(&verifier), "the verifier reached the server log");
}

#[test]
fn every_default_monitoring_query_runs_and_returns_its_declared_columns() {
    let path = std::path::PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap())
        .join("../../deploy/monitoring/default-monitoring.yaml");
    let config_map: serde_json::Value = serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let queries: serde_json::Map<String, serde_json::Value> =
        serde_saphyr::from_str(config_map["data"]["queries"].as_str().unwrap()).unwrap();
    assert!(queries.len() >= 7);
    let mut pg = Postgres::init(MAJOR, &[]).unwrap();
    pg.start().unwrap();
    for (name, query) in &queries {
        let declared: Vec<String> = query["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m.as_object().unwrap().keys().next().unwrap().clone())
            .collect();
        let view = format!("CREATE TEMP VIEW probe AS {}", query["query"].as_str().unwrap());
        let columns = "SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_catalog.pg_attribute WHERE attrelid = 'probe'::regclass AND attnum > 0";
        let got = pg.sql_each(&[&view, columns]).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            got,
            declared.join(","),
            "{name}: the columns differ from the declared metrics"
        );
        pg.sql(&format!("SELECT * FROM ({}) q", query["query"].as_str().unwrap()))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}
