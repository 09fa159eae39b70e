//! Building container images from signed Debian-format package repositories, without a
//! daemon and without root, reproducibly.
//!
//! Data flow: spec → repository metadata (OpenPGP-verified `InRelease` → `Packages` by hash)
//! → dependency closure and lock → `.deb` files (sha256-verified, content-addressed cache) →
//! an in-memory filesystem → deterministic tar layers → OCI config, manifest and index →
//! scan → sink (OCI layout directory or docker archive).

pub mod assemble;
pub mod catalog;
pub mod compress;
pub mod deb;
pub mod debian;
pub mod digest;
pub mod elf;
pub mod fetch;
pub mod image;
pub mod layer;
pub mod layout;
pub mod lock;
pub mod oci;
pub mod pgp;
pub mod pipeline;
pub mod plan;
pub mod progress;
pub mod publish;
pub mod registry;
pub mod repo;
pub mod resolve;
pub mod sbom;
pub mod scan;
pub mod site;
pub mod spec;
pub mod tree;
