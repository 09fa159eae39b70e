//! The instance manager's own connection to PostgreSQL: the Unix socket, as `postgres`, by
//! peer authentication (the `local` map), with a pinned `search_path` so no object a user
//! created can shadow the catalog functions we call.

use std::path::Path;
use std::time::Duration;

use cnpg_instance_api::{ReplicationInfo, SlotInfo};
use postgres_protocol::escape::{escape_identifier, escape_literal};
use tokio_postgres::NoTls;

/// A statement failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to connect to PostgreSQL over {socket}")]
    Connect {
        socket: String,
        source: tokio_postgres::Error,
    },
    #[error("failed to {what}")]
    Query {
        what: &'static str,
        source: tokio_postgres::Error,
    },
}

/// An open session.
#[derive(Debug)]
pub struct Db {
    client: tokio_postgres::Client,
}

/// The fields of `/pg/status` that come from SQL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SqlStatus {
    pub in_recovery: bool,
    pub current_lsn: Option<String>,
    pub received_lsn: Option<String>,
    pub replay_lsn: Option<String>,
    pub system_id: Option<String>,
    pub timeline: Option<u32>,
    pub config_hash: Option<String>,
    pub version: Option<String>,
    pub wal_receiver_active: bool,
    pub replay_paused: bool,
    pub pending_restart: bool,
    pub replication: Vec<ReplicationInfo>,
    pub slots: Vec<SlotInfo>,
    pub archiving: bool,
    pub last_archived_wal: Option<String>,
    pub last_archived_time: Option<String>,
    pub last_failed_wal: Option<String>,
    pub last_failed_time: Option<String>,
}

fn query(what: &'static str) -> impl FnOnce(tokio_postgres::Error) -> Error {
    move |source| Error::Query { what, source }
}

/// A session over the socket in `sockets` with `search_path` pinned to the catalog first;
/// `options` adds `-c name=value` settings.
pub fn socket_config(
    sockets: &Path,
    user: &str,
    dbname: &str,
    application: &str,
    options: &str,
) -> tokio_postgres::Config {
    let mut config = tokio_postgres::Config::new();
    config
        .host_path(sockets)
        .port(cnpg_postgres::paths::PORT)
        .user(user)
        .dbname(dbname)
        .application_name(application)
        .options(format!("-c search_path=pg_catalog,public,pg_temp {options}").trim_end())
        .connect_timeout(Duration::from_secs(5));
    config
}

/// The HA slots' prefix: slots we create and may drop.
pub const SLOT_PREFIX: &str = "_cnpg_";

impl Db {
    /// Connects to the `postgres` database over the socket in `sockets`.
    pub async fn connect(sockets: &Path, user: &str) -> Result<Self, Error> {
        Self::connect_to(sockets, user, "postgres").await
    }

    /// Connects to `dbname` over the socket in `sockets` (port 5432's socket file).
    pub async fn connect_to(sockets: &Path, user: &str, dbname: &str) -> Result<Self, Error> {
        let config = socket_config(sockets, user, dbname, "cnpg-instance-manager", "");
        let (client, connection) = config.connect(NoTls).await.map_err(|source| Error::Connect {
            socket: sockets.display().to_string(),
            source,
        })?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "database session ended");
            }
        });
        Ok(Self { client })
    }

    /// The statements of `sql`, one by one (simple protocol).
    pub async fn execute(&self, sql: &str) -> Result<(), Error> {
        self.client.batch_execute(sql).await.map_err(query("run a statement"))
    }

    pub async fn in_recovery(&self) -> Result<bool, Error> {
        let row = self
            .client
            .query_one("SELECT pg_is_in_recovery()", &[])
            .await
            .map_err(query("ask whether PostgreSQL is in recovery"))?;
        row.try_get(0).map_err(query("read pg_is_in_recovery()"))
    }

    /// Everything `/pg/status` reports from SQL.
    pub async fn status(&self) -> Result<SqlStatus, Error> {
        let row = self
            .client
            .query_one(
                "SELECT pg_is_in_recovery(),
                        CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()
                             ELSE pg_current_wal_lsn() END::text,
                        pg_last_wal_receive_lsn()::text,
                        pg_last_wal_replay_lsn()::text,
                        (SELECT system_identifier::text FROM pg_control_system()),
                        CASE WHEN pg_is_in_recovery()
                             THEN coalesce((SELECT received_tli FROM pg_stat_wal_receiver),
                                           (SELECT timeline_id FROM pg_control_checkpoint()))
                             ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int
                        END,
                        current_setting('cnpg.config_sha256', true),
                        current_setting('server_version'),
                        EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming'),
                        CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() ELSE false END,
                        EXISTS (SELECT 1 FROM pg_settings WHERE pending_restart)",
                &[],
            )
            .await
            .map_err(query("read the instance status"))?;
        let text = |i: usize| {
            row.try_get::<_, Option<String>>(i)
                .map_err(query("read the instance status"))
        };
        let flag = |i: usize| row.try_get::<_, bool>(i).map_err(query("read the instance status"));
        let timeline: Option<i32> = row.try_get(5).map_err(query("read the timeline"))?;
        let mut status = SqlStatus {
            in_recovery: flag(0)?,
            current_lsn: text(1)?,
            received_lsn: text(2)?,
            replay_lsn: text(3)?,
            system_id: text(4)?,
            timeline: timeline.and_then(|t| u32::try_from(t).ok()),
            config_hash: text(6)?.filter(|h| !h.is_empty()),
            version: text(7)?,
            wal_receiver_active: flag(8)?,
            replay_paused: flag(9)?,
            pending_restart: flag(10)?,
            ..SqlStatus::default()
        };
        let archiver = self
            .client
            .query_one(
                "SELECT current_setting('archive_mode') = 'always'
                            OR (current_setting('archive_mode') = 'on' AND NOT pg_is_in_recovery()),
                        last_archived_wal, last_archived_time::text, last_failed_wal, last_failed_time::text
                   FROM pg_stat_archiver",
                &[],
            )
            .await
            .map_err(query("read pg_stat_archiver"))?;
        let get = |i: usize| {
            archiver
                .try_get::<_, Option<String>>(i)
                .map_err(query("read pg_stat_archiver"))
        };
        status.archiving = archiver.try_get(0).map_err(query("read pg_stat_archiver"))?;
        status.last_archived_wal = get(1)?;
        status.last_archived_time = get(2)?;
        status.last_failed_wal = get(3)?;
        status.last_failed_time = get(4)?;
        for row in self
            .client
            .query(
                "SELECT coalesce(application_name, ''), coalesce(state, ''), sent_lsn::text, write_lsn::text,
                        flush_lsn::text, replay_lsn::text, coalesce(sync_state, ''), coalesce(sync_priority, 0)
                   FROM pg_stat_replication ORDER BY application_name",
                &[],
            )
            .await
            .map_err(query("read pg_stat_replication"))?
        {
            let get = |i: usize| row.try_get::<_, Option<String>>(i).ok().flatten();
            status.replication.push(ReplicationInfo {
                application_name: get(0).unwrap_or_default(),
                state: get(1).unwrap_or_default(),
                received_lsn: get(2),
                write_lsn: get(3),
                flush_lsn: get(4),
                replay_lsn: get(5),
                sync_state: get(6).unwrap_or_default(),
                sync_priority: row.try_get(7).unwrap_or_default(),
            });
        }
        for row in self
            .client
            .query(
                "SELECT slot_name::text, slot_type, active, restart_lsn::text, wal_status
                   FROM pg_replication_slots ORDER BY slot_name",
                &[],
            )
            .await
            .map_err(query("read pg_replication_slots"))?
        {
            let get = |i: usize| row.try_get::<_, Option<String>>(i).ok().flatten();
            status.slots.push(SlotInfo {
                slot_name: get(0).unwrap_or_default(),
                slot_type: get(1).unwrap_or_default(),
                active: row.try_get(2).unwrap_or_default(),
                restart_lsn: get(3),
                wal_status: get(4),
            });
        }
        Ok(status)
    }

    /// The stored verifier of `role`: Ok(None) for a role without password, Err when the role
    /// does not exist.
    pub async fn stored_password(&self, role: &str) -> Result<Option<Option<String>>, Error> {
        let row = self
            .client
            .query_opt("SELECT rolpassword FROM pg_authid WHERE rolname = $1", &[&role])
            .await
            .map_err(query("read a role's password verifier"))?;
        match row {
            None => Ok(None),
            Some(row) => Ok(Some(row.try_get(0).map_err(query("read rolpassword"))?)),
        }
    }

    /// Sets (or with `None`, removes) `role`'s password. The statement carries a verifier, never
    /// the cleartext, and runs with statement logging off, so not even the verifier reaches the
    /// server log: each statement is sent on its own, because a multi-statement string is
    /// logged whole before the first `SET LOCAL` takes effect.
    pub async fn set_password(&mut self, role: &str, verifier: Option<&str>) -> Result<(), Error> {
        let statement = match verifier {
            Some(v) => format!("ALTER ROLE {} PASSWORD {}", escape_identifier(role), escape_literal(v)),
            None => format!("ALTER ROLE {} PASSWORD NULL", escape_identifier(role)),
        };
        let tx = self.client.transaction().await.map_err(query("begin a transaction"))?;
        for quiet in [
            "SET LOCAL log_statement = 'none'",
            "SET LOCAL log_min_duration_statement = -1",
            "SET LOCAL log_min_error_statement = 'panic'",
        ] {
            tx.batch_execute(quiet)
                .await
                .map_err(query("silence statement logging"))?;
        }
        tx.batch_execute(&statement)
            .await
            .map_err(query("set a role's password"))?;
        tx.commit().await.map_err(query("commit a password change"))
    }

    /// `streaming_replica`: replication by certificate, plus the functions pg_rewind needs.
    pub async fn ensure_streaming_replica(&self) -> Result<(), Error> {
        if !self.role_exists("streaming_replica").await? {
            self.execute("CREATE ROLE streaming_replica LOGIN REPLICATION").await?;
        }
        self.execute(
            "GRANT EXECUTE ON FUNCTION pg_catalog.pg_ls_dir(text, boolean, boolean) TO streaming_replica;
             GRANT EXECUTE ON FUNCTION pg_catalog.pg_stat_file(text, boolean) TO streaming_replica;
             GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text) TO streaming_replica;
             GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean) TO streaming_replica",
        )
        .await
    }

    /// Physical slots `wanted` exist (reserving WAL from now); other inactive HA slots go.
    pub async fn reconcile_slots(&self, wanted: &[String]) -> Result<(), Error> {
        let existing: Vec<(String, bool)> = self
            .client
            .query(
                "SELECT slot_name::text, active FROM pg_replication_slots WHERE slot_name LIKE '\\_cnpg\\_%'",
                &[],
            )
            .await
            .map_err(query("list replication slots"))?
            .iter()
            .filter_map(|row| Some((row.try_get(0).ok()?, row.try_get(1).ok()?)))
            .collect();
        for slot in wanted {
            if !existing.iter().any(|(name, _)| name == slot) {
                self.client
                    .execute("SELECT pg_create_physical_replication_slot($1, true)", &[slot])
                    .await
                    .map_err(query("create a replication slot"))?;
                tracing::info!(slot, "replication slot created");
            }
        }
        for (name, active) in &existing {
            if !active && !wanted.contains(name) {
                self.client
                    .execute("SELECT pg_drop_replication_slot($1)", &[name])
                    .await
                    .map_err(query("drop a replication slot"))?;
                tracing::info!(slot = name, "replication slot dropped");
            }
        }
        Ok(())
    }

    /// Promotes a replica and waits (up to a minute) for it to leave recovery.
    pub async fn promote(&self) -> Result<bool, Error> {
        let row = self
            .client
            .query_one("SELECT pg_promote(true, 60)", &[])
            .await
            .map_err(query("promote"))?;
        row.try_get(0).map_err(query("read pg_promote()"))
    }

    /// `pg_backup_start` on this session (which must stay open until [`Self::backup_stop`]):
    /// the backup's starting LSN.
    pub async fn backup_start(&self, label: &str, fast: bool) -> Result<String, Error> {
        let row = self
            .client
            .query_one("SELECT pg_backup_start($1, $2)::text", &[&label, &fast])
            .await
            .map_err(query("start backup mode"))?;
        row.try_get(0).map_err(query("read pg_backup_start()"))
    }

    /// `pg_backup_stop` on the session that started the backup: the end LSN, the
    /// `backup_label` and the `tablespace_map` contents.
    pub async fn backup_stop(&self, wait_for_archive: bool) -> Result<(String, String, String), Error> {
        let row = self
            .client
            .query_one(
                "SELECT lsn::text, labelfile, coalesce(spcmapfile, '') FROM pg_backup_stop($1)",
                &[&wait_for_archive],
            )
            .await
            .map_err(query("stop backup mode"))?;
        let read = |i: usize| row.try_get::<_, String>(i).map_err(query("read pg_backup_stop()"));
        Ok((read(0)?, read(1)?, read(2)?))
    }

    /// What a base backup records of the server, and how many tablespaces besides the
    /// default ones it has.
    pub async fn backup_server(&self) -> Result<(cnpg_backup::base::Server, i64), Error> {
        let row = self
            .client
            .query_one(
                "SELECT current_setting('server_version_num')::int, \
                        (SELECT system_identifier::text FROM pg_control_system()), \
                        (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size'), \
                        current_setting('data_directory'), current_setting('config_file'), \
                        current_setting('hba_file'), current_setting('ident_file'), \
                        (SELECT count(*) FROM pg_tablespace WHERE spcname NOT IN ('pg_default', 'pg_global'))",
                &[],
            )
            .await
            .map_err(query("read the server's identity"))?;
        let text = |i: usize| row.try_get::<_, String>(i).map_err(query("read the server's identity"));
        let version: i32 = row.try_get(0).map_err(query("read server_version_num"))?;
        let segment_size: i64 = row.try_get(2).map_err(query("read wal_segment_size"))?;
        let server = cnpg_backup::base::Server {
            version: u32::try_from(version).unwrap_or_default(),
            system_id: text(1)?,
            segment_size: u64::try_from(segment_size).unwrap_or_default(),
            pgdata: text(3)?,
            config_file: text(4)?,
            hba_file: text(5)?,
            ident_file: text(6)?,
        };
        let tablespaces: i64 = row.try_get(7).map_err(query("count tablespaces"))?;
        Ok((server, tablespaces))
    }

    /// Whether archiving is failing (the last failure is newer than the last success) and
    /// whether anything was archived yet, from `pg_stat_archiver`.
    pub async fn archiver(&self) -> Result<(bool, bool), Error> {
        let row = self
            .client
            .query_one(
                "SELECT coalesce(last_failed_time > coalesce(last_archived_time, '-infinity'), false), \
                        last_archived_wal IS NOT NULL \
                   FROM pg_stat_archiver",
                &[],
            )
            .await
            .map_err(query("read pg_stat_archiver"))?;
        let failing: bool = row.try_get(0).map_err(query("read pg_stat_archiver"))?;
        let archived: bool = row.try_get(1).map_err(query("read pg_stat_archiver"))?;
        Ok((failing, archived))
    }

    pub async fn reload(&self) -> Result<(), Error> {
        self.execute("SELECT pg_reload_conf()").await
    }

    /// The exporter's role: logs in by peer authentication only (no password), reads
    /// statistics through pg_monitor, owns nothing.
    pub async fn ensure_metrics_exporter(&self, role: &str, connection_limit: i32) -> Result<(), Error> {
        let current: Option<i32> = self
            .client
            .query_opt("SELECT rolconnlimit FROM pg_roles WHERE rolname = $1", &[&role])
            .await
            .map_err(query("look up a role"))?
            .map(|row| row.try_get(0))
            .transpose()
            .map_err(query("read a role's connection limit"))?;
        let escaped = escape_identifier(role);
        match current {
            None => {
                self.execute(&format!(
                    "CREATE ROLE {escaped} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS CONNECTION LIMIT {connection_limit} PASSWORD NULL"
                ))
                .await?;
                self.execute(&format!("GRANT pg_monitor TO {escaped}")).await?;
            }
            Some(limit) if limit != connection_limit => {
                self.execute(&format!("ALTER ROLE {escaped} CONNECTION LIMIT {connection_limit}"))
                    .await?;
            }
            Some(_) => {}
        }
        Ok(())
    }

    async fn role_exists(&self, role: &str) -> Result<bool, Error> {
        Ok(self
            .client
            .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&role])
            .await
            .map_err(query("look up a role"))?
            .is_some())
    }
}
