//! Building container images from signed Debian-format package repositories, without a
//! daemon and without root, reproducibly.
//!
//! Data flow: spec → repository metadata (OpenPGP-verified `InRelease` → `Packages` by hash)
//! → dependency closure and lock → `.deb` files (sha256-verified, content-addressed cache) →
//! an in-memory filesystem → deterministic tar layers → OCI config, manifest and index →
//! scan → sink (OCI layout directory or docker archive).

pub mod compress;
pub mod debian;
pub mod digest;
pub mod fetch;
pub mod pgp;
pub mod repo;
pub mod resolve;
pub mod site;
pub mod spec;
