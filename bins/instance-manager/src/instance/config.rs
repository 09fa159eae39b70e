//! Turns a Cluster and its Secrets into files: certificates under the controller directory,
//! and in PGDATA `custom.conf`, `override.conf`, `pg_hba.conf`, `pg_ident.conf`, the include
//! lines in `postgresql.conf`, and `standby.signal` on replicas. Everything is rendered and
//! checked before the first file is written: a refused parameter or pg_hba line leaves the
//! instance exactly as it was.

use std::collections::BTreeMap;
use std::path::Path;

use cnpg_api::validation::FieldError;
use cnpg_postgres::conf::{self, Role, Upstream};
use cnpg_postgres::hba;
use cnpg_postgres::paths::Paths;

use crate::k8s::Materials;
use crate::layout::{Layout, WriteError, write_if_changed};

/// The configuration was refused or could not be written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("refused the Cluster's PostgreSQL configuration: {}", describe(.0))]
    Invalid(Vec<FieldError>),
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("failed to read {}", .path.display())]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("failed to read the major version in {}: {text:?}", .path.display())]
    Version { path: std::path::PathBuf, text: String },
}

fn describe(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {}", e.path, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The major version of the data directory (`PG_VERSION`).
pub fn major(pgdata: &Path) -> Result<u32, Error> {
    let path = pgdata.join("PG_VERSION");
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Read {
        path: path.clone(),
        source,
    })?;
    text.trim().parse().map_err(|_| Error::Version { path, text })
}

/// How a replica reaches its primary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replication {
    /// `<cluster>-rw` in a cluster.
    pub primary_host: String,
    /// This instance's name.
    pub pod_name: String,
}

impl Replication {
    pub fn upstream(&self) -> Upstream {
        Upstream {
            host: self.primary_host.clone(),
            port: cnpg_postgres::paths::PORT,
            application_name: self.pod_name.clone(),
            slot: Some(conf::slot_name(crate::db::SLOT_PREFIX, &self.pod_name)),
            tcp_user_timeout_ms: 5000,
        }
    }
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// Any configuration file changed (PostgreSQL must reload).
    pub changed: bool,
    /// `cnpg.config_sha256` of the new custom.conf.
    pub hash: String,
}

/// Writes the certificates; true when any changed.
pub fn write_certificates(layout: &Layout, materials: &Materials) -> Result<bool, WriteError> {
    let dir = layout.certificates();
    let files: [(&str, &str); 6] = [
        ("server.crt", &materials.server.certificate),
        ("server.key", materials.server.key.expose()),
        ("streaming_replica.crt", &materials.replication.certificate),
        ("streaming_replica.key", materials.replication.key.expose()),
        ("client-ca.crt", &materials.client_ca),
        ("server-ca.crt", &materials.server_ca),
    ];
    let mut changed = false;
    for (name, contents) in files {
        // Keys and certificates alike: 0600, readable by the instance's user only.
        changed |= write_if_changed(&dir.join(name), contents.as_bytes(), 0o600)?;
    }
    Ok(changed)
}

/// Writes, or removes, the WAL archiver's settings (credentials included: 0600, beside the
/// instance manager that `archive_command` runs); true when they changed.
pub fn write_archive_settings(layout: &Layout, materials: &Materials) -> Result<bool, WriteError> {
    let path = layout.controller_dir.join(cnpg_backup::archive::FILE_NAME);
    match &materials.archive {
        Some(settings) => write_settings(&path, settings),
        None => match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(WriteError { path, source }),
        },
    }
}

/// Object store settings (credentials included) as a file only the instance's user reads.
pub fn write_settings(path: &std::path::Path, settings: &cnpg_backup::archive::Settings) -> Result<bool, WriteError> {
    let text = serde_json::to_vec(settings).map_err(|e| WriteError {
        path: path.to_owned(),
        source: std::io::Error::other(e),
    })?;
    write_if_changed(path, &text, 0o600)
}

/// The rendered files, not yet written.
#[derive(Debug)]
struct Files {
    custom: String,
    override_conf: String,
    hba: String,
    ident: String,
    hash: String,
}

fn render(paths: &Paths, materials: &Materials, major: u32, role: &Role, os_user: &str) -> Result<Files, Error> {
    let spec = &materials.cluster.spec;
    let name = materials.cluster.metadata.name.clone().unwrap_or_default();
    let rendered = conf::render(spec, &name, major, paths, role);
    let hba = hba::pg_hba(spec, major, &BTreeMap::new());
    let ident = hba::pg_ident(spec, os_user);
    let mut errors = Vec::new();
    let (rendered, hba, ident) = match (rendered, hba, ident) {
        (Ok(r), Ok(h), Ok(i)) => (r, h, i),
        (r, h, i) => {
            for result in [r.err(), h.err(), i.err()].into_iter().flatten() {
                errors.extend(result);
            }
            return Err(Error::Invalid(errors));
        }
    };
    Ok(Files {
        custom: rendered.custom_conf,
        override_conf: rendered.override_conf,
        hba,
        ident,
        hash: rendered.hash,
    })
}

/// Renders and writes PostgreSQL's configuration for `role`; `paths` are what the files refer
/// to (the layout's, with the address to listen on).
pub fn write(
    layout: &Layout,
    paths: &Paths,
    materials: &Materials,
    major: u32,
    role: &Role,
    os_user: &str,
) -> Result<Written, Error> {
    let files = render(paths, materials, major, role, os_user)?;
    let data = &layout.pg_data;
    let main = data.join("postgresql.conf");
    let current = std::fs::read_to_string(&main).map_err(|source| Error::Read {
        path: main.clone(),
        source,
    })?;
    let mut changed = false;
    for (name, contents) in [
        ("custom.conf", files.custom.as_str()),
        ("override.conf", files.override_conf.as_str()),
        ("pg_hba.conf", files.hba.as_str()),
        ("pg_ident.conf", files.ident.as_str()),
        ("postgresql.conf", &conf::with_includes(&current)),
    ] {
        changed |= write_if_changed(&data.join(name), contents.as_bytes(), 0o600)?;
    }
    let signal = data.join("standby.signal");
    match role {
        Role::Replica(_) => changed |= write_if_changed(&signal, b"", 0o600)?,
        Role::Primary => match std::fs::remove_file(&signal) {
            Ok(()) => changed = true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(WriteError { path: signal, source }.into()),
        },
    }
    Ok(Written {
        changed,
        hash: files.hash,
    })
}

/// Whether the data directory is a replica's (it has `standby.signal`).
pub fn is_replica(layout: &Layout) -> bool {
    layout.pg_data.join("standby.signal").exists()
}
