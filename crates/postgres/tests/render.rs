//! What the instance manager will write, per major: order and content of pg_hba.conf, the
//! settings of custom.conf and override.conf, refusals before any text, password verifiers
//! against the RFC 7677 exchange.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "integration test helpers: a failed unwrap is a failed assertion"
)]

use std::collections::BTreeMap;
use std::net::IpAddr;

use base64::Engine as _;
use cnpg_api::cluster::ClusterSpec;
use cnpg_postgres::conf::{self, Role, Upstream};
use cnpg_postgres::paths::Paths;
use cnpg_postgres::{hba, password};
use serde_json::json;

fn spec(value: serde_json::Value) -> ClusterSpec {
    serde_json::from_value(value).unwrap()
}

#[test]
fn pg_hba_puts_fixed_rules_first_user_lines_next_and_the_password_rule_last() {
    let spec = spec(
        json!({"postgresql": {"pg_hba": ["hostssl app app 10.0.0.0/8 scram-sha-256", "host all all ${podselector:apps} reject"]}}),
    );
    let selectors = BTreeMap::from([(
        "apps".to_owned(),
        vec!["10.1.2.3".parse::<IpAddr>().unwrap(), "fd00::7".parse().unwrap()],
    )]);
    for major in [15, 16, 17, 18] {
        let text = hba::pg_hba(&spec, major, &selectors).unwrap();
        let rules: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            rules,
            [
                "local all cnpg_metrics_exporter peer map=cnpg_metrics_exporter",
                "local all all peer map=local",
                "hostssl postgres streaming_replica all cert map=cnpg_streaming_replica",
                "hostssl replication streaming_replica all cert map=cnpg_streaming_replica",
                "hostssl all cnpg_pooler_pgbouncer all cert map=cnpg_pooler_pgbouncer",
                "hostssl app app 10.0.0.0/8 scram-sha-256",
                "host all all 10.1.2.3/32 reject",
                "host all all fd00::7/128 reject",
                "hostssl all all all scram-sha-256",
            ],
            "PostgreSQL {major}"
        );
    }
    assert!(
        hba::pg_hba(&spec, 13, &selectors)
            .unwrap()
            .ends_with("hostssl all all all md5\n")
    );
    let unresolved = hba::pg_hba(&spec, 18, &BTreeMap::new()).unwrap();
    assert!(
        !unresolved.contains("podselector") && !unresolved.contains("reject"),
        "a selector with no pods adds no line"
    );
}

#[test]
fn a_bad_line_is_refused_before_any_text_exists() {
    let spec = spec(json!({"postgresql": {
        "pg_hba": ["host all all 10.0.0.0/8 md5", "host all all all trust\nlocal all all trust", "host all all all sesame"],
        "pg_ident": ["local root postgres"],
    }}));
    let errors = hba::pg_hba(&spec, 18, &BTreeMap::new()).unwrap_err();
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["spec.postgresql.pg_hba[1]", "spec.postgresql.pg_hba[2]"]);
    assert!(errors[0].message.contains("line break") && errors[1].message.contains("not an authentication method"));
    let errors = hba::pg_ident(&spec, "postgres").unwrap_err();
    assert_eq!(errors[0].path, "spec.postgresql.pg_ident[0]");
}

#[test]
fn pg_ident_maps_the_operating_system_user() {
    let spec = spec(json!({"postgresql": {"pg_ident": ["app alice alice"]}}));
    let text = hba::pg_ident(&spec, "postgres").unwrap();
    let maps: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        maps,
        [
            "local postgres postgres",
            "cnpg_streaming_replica streaming_replica streaming_replica",
            "cnpg_pooler_pgbouncer cnpg_pooler_pgbouncer cnpg_pooler_pgbouncer",
            "cnpg_metrics_exporter postgres cnpg_metrics_exporter",
            "app alice alice",
        ]
    );
}

fn setting<'a>(conf: &'a str, name: &str) -> Option<&'a str> {
    conf.lines().find_map(|l| l.strip_prefix(&format!("{name} = ")))
}

#[test]
fn custom_conf_lays_fixed_settings_over_the_users() {
    let spec = spec(
        json!({"postgresql": {"parameters": {"work_mem": "16MB", "pg_stat_statements.max": "5000", "search_path": "\"$user\", public", "application_name": "it's\\here"},
        "shared_preload_libraries": ["auto_explain"]}}),
    );
    let paths = Paths::default();
    let rendered = conf::render(&spec, "pg", 18, &paths, &Role::Primary).unwrap();
    let c = &rendered.custom_conf;
    assert_eq!(setting(c, "work_mem"), Some("'16MB'"));
    assert_eq!(setting(c, "search_path"), Some("'\"$user\", public'"));
    assert_eq!(
        setting(c, "application_name"),
        Some("'it''s\\\\here'"),
        "quotes doubled, backslashes escaped"
    );
    assert_eq!(
        setting(c, "shared_preload_libraries"),
        Some("'auto_explain,pg_stat_statements'")
    );
    assert_eq!(setting(c, "port"), Some("'5432'"));
    assert_eq!(
        setting(c, "ssl_cert_file"),
        Some("'/controller/certificates/server.crt'")
    );
    assert_eq!(
        setting(c, "ssl_ca_file"),
        Some("'/controller/certificates/client-ca.crt'")
    );
    assert_eq!(setting(c, "ssl_min_protocol_version"), Some("'TLSv1.3'"));
    assert_eq!(setting(c, "cluster_name"), Some("'pg'"));
    assert_eq!(setting(c, "allow_alter_system"), Some("'off'"));
    assert_eq!(
        setting(c, "archive_command"),
        Some("'/controller/manager wal-archive --log-destination /controller/log/postgres.json %p'")
    );
    assert_eq!(
        c.lines().filter(|l| l.starts_with("port ")).count(),
        1,
        "one value per setting"
    );

    // The hash covers every setting: a change moves it, and it is what the file says.
    let body: String = c
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("cnpg."))
        .map(|l| format!("{l}\n"))
        .collect();
    let digest: String = openssl::sha::sha256(body.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(rendered.hash, digest);
    assert_eq!(setting(c, "cnpg.config_sha256"), Some(format!("'{digest}'").as_str()));
    let changed = conf::render(&spec_with("work_mem", "32MB"), "pg", 18, &paths, &Role::Primary).unwrap();
    assert_ne!(changed.hash, rendered.hash);

    assert!(
        setting(
            &conf::render(&spec, "pg", 16, &paths, &Role::Primary)
                .unwrap()
                .custom_conf,
            "allow_alter_system"
        )
        .is_none(),
        "no such setting before 17"
    );
    let alter = spec_json_alter();
    assert_eq!(
        setting(
            &conf::render(&alter, "pg", 17, &paths, &Role::Primary)
                .unwrap()
                .custom_conf,
            "allow_alter_system"
        ),
        Some("'on'")
    );
}

fn spec_with(name: &str, value: &str) -> ClusterSpec {
    spec(
        json!({"postgresql": {"parameters": {name: value, "pg_stat_statements.max": "5000", "search_path": "\"$user\", public", "application_name": "it's\\here"}, "shared_preload_libraries": ["auto_explain"]}}),
    )
}

fn spec_json_alter() -> ClusterSpec {
    spec(json!({"postgresql": {"enableAlterSystem": true}}))
}

#[test]
fn fixed_and_blocked_parameters_are_refused_not_dropped() {
    let spec = spec(
        json!({"postgresql": {"parameters": {"port": "6432", "log_directory": "/tmp", "work_mem": "1MB\nport = 1"}}}),
    );
    let errors = conf::render(&spec, "pg", 18, &Paths::default(), &Role::Primary).unwrap_err();
    let mut paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    paths.sort_unstable();
    assert_eq!(
        paths,
        [
            "spec.postgresql.parameters[log_directory]",
            "spec.postgresql.parameters[port]",
            "spec.postgresql.parameters[work_mem]"
        ]
    );
}

#[test]
fn a_preloaded_library_cannot_smuggle_a_setting_in() {
    // Found by the postgres_parameters fuzz target: a library name holding a line break wrote
    // a second setting into custom.conf (fuzz/regressions/postgres_parameters/).
    let spec = spec(json!({"postgresql": {"shared_preload_libraries": ["wB\nlisten_addresses = '*'"]}}));
    let errors = conf::render(&spec, "pg", 18, &Paths::default(), &Role::Primary).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].path, "spec.postgresql.shared_preload_libraries[0]");
    assert!(
        errors[0].message.contains("not a library name"),
        "{}",
        errors[0].message
    );
}

#[test]
fn include_directives_are_refused_as_parameters() {
    // PostgreSQL reads `include = '/x'` in custom.conf as a directive: the file it names would
    // override archive_command, ssl_passphrase_command, allow_alter_system and the rest.
    for name in ["include", "include_dir", "include_if_exists", "INCLUDE_DIR"] {
        let spec = spec(json!({"postgresql": {"parameters": {name: "/tmp/evil.conf", "work_mem": "8MB"}}}));
        let errors = conf::render(&spec, "pg", 18, &Paths::default(), &Role::Primary).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].path, format!("spec.postgresql.parameters[{name}]"));
        assert!(errors[0].message.contains("directive"), "{}", errors[0].message);
    }
}

#[test]
fn a_replica_streams_with_its_certificate_and_verifies_the_primary() {
    let upstream = Upstream {
        host: "pg-rw".into(),
        port: 5432,
        application_name: "pg-2".into(),
        slot: Some(conf::slot_name("_cnpg_", "pg-2")),
        tcp_user_timeout_ms: 5000,
    };
    let rendered = conf::render(
        &ClusterSpec::default(),
        "pg",
        18,
        &Paths::default(),
        &Role::Replica(upstream),
    )
    .unwrap();
    let o = &rendered.override_conf;
    let conninfo = setting(o, "primary_conninfo").unwrap();
    for part in [
        "host=pg-rw",
        "user=streaming_replica",
        "sslmode=verify-ca",
        "sslcert=/controller/certificates/streaming_replica.crt",
        "sslkey=/controller/certificates/streaming_replica.key",
        "sslrootcert=/controller/certificates/server-ca.crt",
        "application_name=pg-2",
        "tcp_user_timeout=5000",
    ] {
        assert!(conninfo.contains(part), "{part} missing from {conninfo}");
    }
    assert!(!conninfo.contains("password"));
    assert_eq!(setting(o, "primary_slot_name"), Some("'_cnpg_pg_2'"));
    assert_eq!(setting(o, "recovery_target_timeline"), Some("'latest'"));
    assert!(setting(o, "restore_command").unwrap().contains("wal-restore"));
    let primary = conf::render(&ClusterSpec::default(), "pg", 18, &Paths::default(), &Role::Primary).unwrap();
    assert!(setting(&primary.override_conf, "primary_conninfo").is_none());
    assert_eq!(
        rendered.custom_conf, primary.custom_conf,
        "the role changes override.conf only"
    );

    let initdb = "max_connections = 100\n";
    let once = conf::with_includes(initdb);
    assert!(once.starts_with(initdb) && once.ends_with(conf::INCLUDES));
    assert_eq!(conf::with_includes(&once), once, "idempotent");
    assert_eq!(
        conf::slot_name("_cnpg_", "Cluster-Example.2"),
        "_cnpg_cluster_example_2"
    );
}

#[test]
fn scram_verifiers_answer_the_rfc_7677_exchange() {
    // RFC 7677 section 3: user "user", password "pencil".
    let salt = base64::engine::general_purpose::STANDARD
        .decode("W22ZaJ0SNY7soEsUEjb6gQ==")
        .unwrap();
    let verifier = password::scram_with_salt("pencil", &salt, 4096).unwrap();
    let (_, keys) = verifier.rsplit_once('$').unwrap();
    let (stored_key, server_key) = keys.split_once(':').unwrap();
    let decode = |s: &str| base64::engine::general_purpose::STANDARD.decode(s).unwrap();
    let auth_message = "n=user,r=rOprNGfwEbeRWgbNEkqO,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    // The server's signature, as the RFC's server sends it.
    let signature = password::hmac_sha256(&decode(server_key), auth_message.as_bytes()).unwrap();
    assert_eq!(
        base64::engine::general_purpose::STANDARD.encode(signature),
        "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    );
    // The RFC client's proof checks out against our StoredKey, as a server checks it.
    let proof = decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
    let client_signature = password::hmac_sha256(&decode(stored_key), auth_message.as_bytes()).unwrap();
    let client_key: Vec<u8> = proof.iter().zip(&client_signature).map(|(a, b)| a ^ b).collect();
    assert_eq!(openssl::sha::sha256(&client_key).to_vec(), decode(stored_key));
    assert!(verifier.starts_with("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"));

    let a = password::scram("pencil").unwrap();
    let b = password::scram("pencil").unwrap();
    assert_ne!(a, b, "every verifier has its own salt");
    assert!(!a.contains("pencil"));
    // md5: the value Python's hashlib gives for md5("pencil" + "user").
    assert_eq!(
        password::md5("pencil", "user").unwrap(),
        "md520c46e3762c864548e296b33c3406aa9"
    );
    assert!(password::verifier("pencil", "user", 13).unwrap().starts_with("md5"));
    assert!(
        password::verifier("pencil", "user", 14)
            .unwrap()
            .starts_with("SCRAM-SHA-256$")
    );
}
