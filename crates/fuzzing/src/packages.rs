//! What the image builder reads from package repositories: OpenPGP keys and signed
//! `InRelease` files, deb822 metadata, versions, `.deb` archives and what is inside them.

use std::cmp::Ordering;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use cnpg_imaging::compress::{self, Format};
use cnpg_imaging::debian::{packages, relation, release::Release, version};
use cnpg_imaging::pgp::Keyring;

/// Decompressed output and unpacked packages may not exceed this in a fuzz run; the
/// production limits are larger, the code enforcing them the same.
const LIMIT: u64 = 64 << 20;

fn now() -> u64 {
    static NOW: OnceLock<u64> = OnceLock::new();
    *NOW.get_or_init(|| SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()))
}

/// The keys the project pins (`images/keys/`), as the builder reads them.
fn pinned() -> &'static Keyring {
    static KEYS: OnceLock<Keyring> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut keyring = Keyring::default();
        for key in [
            &include_bytes!("../../../images/keys/debian-archive-bookworm-automatic.asc")[..],
            include_bytes!("../../../images/keys/debian-archive-bookworm-security-automatic.asc"),
            include_bytes!("../../../images/keys/debian-archive-bookworm-stable.asc"),
            include_bytes!("../../../images/keys/debian-archive-trixie-automatic.asc"),
            include_bytes!("../../../images/keys/debian-archive-trixie-security-automatic.asc"),
            include_bytes!("../../../images/keys/debian-archive-trixie-stable.asc"),
            include_bytes!("../../../images/keys/pgdg.asc"),
        ] {
            keyring.extend(Keyring::read(key, now()).expect("a pinned key no longer reads"));
        }
        keyring
    })
}

/// A key file, armored or binary.
pub fn openpgp_keyring(data: &[u8]) {
    if let Ok(keyring) = Keyring::read(data, now()) {
        assert!(
            !keyring.fingerprints().is_empty(),
            "a keyring read without a certificate"
        );
    }
}

/// An `InRelease` file against the pinned keys: what comes back is signed text, by one of them.
pub fn openpgp_cleartext(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let keys = pinned();
    if let Ok(verified) = keys.verify_cleartext(text, now()) {
        assert!(
            keys.fingerprints().contains(&verified.signer),
            "signer outside the keyring"
        );
        assert!(
            verified.text.is_empty() || verified.text.ends_with('\n'),
            "signed text without its last line end"
        );
        assert!(
            !verified.text.lines().any(|l| l.ends_with([' ', '\t', '\r'])),
            "trailing blanks the signature does not cover came back"
        );
    }
}

/// A `Release` file's text.
pub fn debian_release(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(release) = Release::parse(&text) {
        for (name, file) in &release.files {
            assert_eq!(file.sha256.len(), 64, "{name}: a SHA-256 that is not 64 hex digits");
        }
    }
}

/// A `Packages` index: every package, its relations and its version.
pub fn debian_packages(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(packages) = packages::parse(&text) else { return };
    for package in &packages {
        assert_eq!(version::compare(&package.version, &package.version), Ordering::Equal);
        for field in [&package.depends, &package.pre_depends].into_iter().flatten() {
            let _ = relation::parse(field);
        }
    }
}

/// Three versions: comparison is a total order (reflexive, antisymmetric, transitive).
pub fn debian_version(data: &[u8]) {
    let parts = crate::fields(data, 3);
    let [a, b, c] = [0, 1, 2].map(|i| parts.get(i).map_or("", String::as_str));
    assert_eq!(version::compare(a, a), Ordering::Equal);
    assert_eq!(
        version::compare(a, b),
        version::compare(b, a).reverse(),
        "{a:?} vs {b:?}"
    );
    if version::compare(a, b) != Ordering::Greater && version::compare(b, c) != Ordering::Greater {
        assert_ne!(version::compare(a, c), Ordering::Greater, "{a:?} <= {b:?} <= {c:?}");
    }
    for op in [
        relation::Op::Lt,
        relation::Op::Le,
        relation::Op::Eq,
        relation::Op::Ge,
        relation::Op::Gt,
    ] {
        let _ = version::satisfies(a, op, b);
    }
}

/// A `.deb` file: nothing in it may name a path outside the image root.
pub fn deb(data: &[u8]) {
    if let Ok(deb) = cnpg_imaging::deb::read_limited(data, LIMIT) {
        for entry in &deb.entries {
            assert!(
                !entry.path.starts_with('/') && !entry.path.split('/').any(|c| c == ".." || c.is_empty()),
                "unnormalized path {:?}",
                entry.path
            );
        }
    }
}

/// Compressed data (the first byte picks the format): bounded output whatever the input.
pub fn decompress(data: &[u8]) {
    let Some((first, rest)) = data.split_first() else {
        return;
    };
    let format = match first % 4 {
        0 => Format::Xz,
        1 => Format::Gzip,
        2 => Format::Zstd,
        _ => Format::None,
    };
    if let Ok(out) = compress::decompress(format, rest, LIMIT) {
        assert!(out.len() as u64 <= LIMIT, "decompressed past the limit");
    }
}

/// A tar stream, as image layers and `.deb` members carry them.
pub fn tar(data: &[u8]) {
    if let Ok(entries) = cnpg_imaging::deb::read_tar_limited("layer.tar", data, LIMIT) {
        for entry in &entries {
            assert!(!entry.path.split('/').any(|c| c == ".."), "{:?}", entry.path);
        }
    }
}

/// An ELF file, as the scanner reads every binary of an image.
pub fn elf(data: &[u8]) {
    let _ = cnpg_imaging::elf::machine(data);
    let _ = cnpg_imaging::elf::dynamic(data);
}
