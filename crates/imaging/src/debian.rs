//! Debian repository formats: deb822 control data, version ordering, relationship fields,
//! `Release` files and `Packages` indexes. Pure parsing; no I/O.

pub mod control;
pub mod packages;
pub mod relation;
pub mod release;
pub mod version;

/// Repository data could not be understood.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("malformed control data: {0}")]
    Control(String),
    #[error("malformed relationship {0}")]
    Relation(String),
    #[error("malformed Release file: {0}")]
    Release(String),
}
