//! PostgreSQL's configuration from a Cluster, as pure functions: `postgresql.conf` and the
//! files it includes, `pg_hba.conf`, `pg_ident.conf`, and the password verifiers roles are set
//! with. The instance manager writes what these return; nothing here touches a file, a server
//! or the network.
//!
//! Flow: a Cluster spec, the major version and the instance's role go in; user parameters and
//! `pg_hba`/`pg_ident` lines are validated first (the same checks as the admission webhook), so a
//! refused line never reaches a file; then the fixed settings are laid over them.

pub mod conf;
pub mod hba;
pub mod monitoring;
pub mod password;
pub mod paths;
