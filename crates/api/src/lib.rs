//! The `postgresql.cnpg.io/v1` API: CloudNativePG's kinds as Rust types, their defaults and
//! validation as pure functions, and the CustomResourceDefinitions generated from them.
//!
//! No client and no runtime live here: the admission webhook and the reconciler both call
//! [`defaults`] and [`validation`] on the objects they hold.

pub mod backup;
pub mod barman;
pub mod catalog;
pub mod cluster;
pub mod crds;
pub mod defaults;
pub mod fencing;
pub mod pooler;
pub mod schedule;
pub mod validation;

pub use backup::{Backup, ScheduledBackup};
pub use catalog::{ClusterImageCatalog, ImageCatalog};
pub use cluster::Cluster;
pub use pooler::Pooler;

/// The API group.
pub const GROUP: &str = "postgresql.cnpg.io";
/// The API version.
pub const VERSION: &str = "v1";

/// The PostgreSQL majors a Cluster may run.
pub const SUPPORTED_MAJORS: [u32; 4] = [15, 16, 17, 18];
