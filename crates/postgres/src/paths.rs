//! Where things live in an instance container (CloudNativePG's layout) and the address it
//! listens on. Tests that run PostgreSQL on the host point these at a temporary directory
//! and a loopback address.

use std::path::PathBuf;

/// The directories configuration refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// The instance manager binary (`archive_command` and `restore_command` call it).
    pub manager: PathBuf,
    /// `server.crt`, `server.key`, `client-ca.crt`, `server-ca.crt`, `streaming_replica.*`.
    pub certificates: PathBuf,
    /// The Unix socket directory.
    pub sockets: PathBuf,
    /// Where PostgreSQL writes its logs.
    pub logs: PathBuf,
    /// `listen_addresses`: `*` in a pod; one address where instances share a host (tests).
    pub listen_addresses: String,
}

impl Default for Paths {
    fn default() -> Self {
        Self {
            manager: "/controller/manager".into(),
            certificates: "/controller/certificates".into(),
            sockets: "/controller/run".into(),
            logs: "/controller/log".into(),
            listen_addresses: "*".into(),
        }
    }
}

/// PGDATA in an instance container.
pub const PGDATA: &str = "/var/lib/postgresql/data/pgdata";
/// The PostgreSQL port.
pub const PORT: u16 = 5432;
