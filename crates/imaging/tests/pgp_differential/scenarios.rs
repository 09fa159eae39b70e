//! The genuine starting points the mutations work from: keys and messages made by hand (so
//! they can be re-signed in odd ways), one made by GnuPG, and the `InRelease` files this
//! machine's apt fetched from its mirror with the Debian keyring apt trusts.

use std::sync::Arc;

use cnpg_testkit::gpg::Gpg;
use cnpg_testkit::openpgp::{self, Algo, Binding, FLAG_CERTIFY, FLAG_SIGN, SHA256, SIG_TEXT, SecretKey, SelfSig};

pub const DAY: u32 = 86_400;

/// Where the machine's apt keeps the metadata it fetched, and the keyring it trusts.
const APT_LISTS: &str = "/var/lib/apt/lists";
const DEBIAN_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// A starting point: a keyring, a message it verifies, and (for hand-made ones) the secret
/// keys, so mutations can sign again with other parameters.
pub struct Scenario {
    pub name: String,
    pub keyring: Arc<Vec<u8>>,
    pub message: String,
    pub text: String,
    pub hand_made: Option<HandMade>,
}

/// The secret side of a hand-made scenario.
pub struct HandMade {
    pub primary: SecretKey,
    pub primary_flags: u8,
    pub uid: String,
    /// The key that signs the message: the primary (None) or this subkey.
    pub subkey: Option<SecretKey>,
    /// A key no keyring holds.
    pub stranger: SecretKey,
    pub now: u32,
}

impl HandMade {
    pub fn signer(&self) -> &SecretKey {
        self.subkey.as_ref().unwrap_or(&self.primary)
    }

    /// The certificate with the primary and subkey attached as told.
    pub fn certificate(&self, self_sig: &SelfSig, binding: Option<Binding>) -> Vec<u8> {
        let subs: Vec<(&SecretKey, Binding)> = match (&self.subkey, binding) {
            (Some(sub), Some(binding)) => vec![(sub, binding)],
            (Some(sub), None) => vec![(sub, Binding::signing(self.now - 20 * DAY))],
            (None, _) => Vec::new(),
        };
        openpgp::certificate(&self.primary, &self.uid, self_sig, &subs).unwrap()
    }

    pub fn self_sig(&self) -> SelfSig {
        SelfSig::new(self.primary_flags, self.now - 25 * DAY)
    }
}

/// A Release-like text, with the things cleartext handling must get right: trailing blanks,
/// a line starting with a dash, an indented continuation, a blank line inside.
pub fn release_text(suite: &str) -> String {
    format!(
        "Origin: Test\nLabel: Test\nSuite: {suite}\nCodename: {suite}\nDate: Sat, 11 Jul 2026 10:17:11 UTC\n\
         Valid-Until: Sat, 18 Jul 2099 10:17:11 UTC\nArchitectures: amd64\nComponents: main\n\
         Description: trailing blanks   \n-Dash: a field starting with a dash\nSHA256:\n \
         0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef 42 main/binary-amd64/Packages\n"
    )
}

fn hand_made(name: &str, primary: Algo, subkey: Option<Algo>, now: u32) -> Scenario {
    let created = now - 30 * DAY;
    let primary_key = SecretKey::generate(primary, created).unwrap();
    let subkey = subkey.map(|algo| SecretKey::generate(algo, created + DAY).unwrap());
    let primary_flags = if subkey.is_some() {
        FLAG_CERTIFY
    } else {
        FLAG_CERTIFY | FLAG_SIGN
    };
    let made = HandMade {
        primary: primary_key,
        primary_flags,
        uid: format!("{name} <{name}@example.org>"),
        subkey,
        stranger: SecretKey::generate(Algo::Ed25519, created).unwrap(),
        now,
    };
    let keyring = made.certificate(&made.self_sig(), None);
    let text = release_text("stable");
    let signer = made.signer();
    let sig = openpgp::sign_text(signer, &signer.sig(SIG_TEXT, SHA256, now - DAY), &text).unwrap();
    Scenario {
        name: name.to_owned(),
        keyring: Arc::new(keyring),
        message: openpgp::cleartext(&text, "SHA256", &sig),
        text,
        hand_made: Some(made),
    }
}

/// Every starting point. Fails, naming what is missing, when the machine has no apt metadata.
pub fn all(now: u32) -> Vec<Scenario> {
    let mut out = vec![
        hand_made("ed25519", Algo::Ed25519, None, now),
        hand_made("rsa-ed25519sub", Algo::Rsa(2048), Some(Algo::Ed25519), now),
        hand_made("ed25519-rsasub", Algo::Ed25519, Some(Algo::Rsa(2048)), now),
    ];

    // GnuPG's own output, as a repository signed with it would serve it.
    let gpg = Gpg::new().unwrap();
    let primary = gpg
        .generate("Archive <archive@example.org>", "rsa3072", "1y", None)
        .unwrap();
    let subkey = gpg.add_signing_subkey(&primary, "ed25519", "1y").unwrap();
    let text = release_text("gnupg");
    let message = gpg.clearsign(&subkey, &text, None).unwrap();
    let armored = gpg.export(&primary).unwrap();
    out.push(Scenario {
        name: "gnupg".into(),
        keyring: Arc::new(dearmor(&armored)),
        message,
        text,
        hand_made: None,
    });

    // What this machine's mirror serves, with the keyring apt itself uses.
    let keyring = std::fs::read(DEBIAN_KEYRING)
        .unwrap_or_else(|e| panic!("{DEBIAN_KEYRING}: {e} (install debian-archive-keyring)"));
    let keyring = Arc::new(keyring);
    let mut real = 0;
    let mut lists: Vec<_> = std::fs::read_dir(APT_LISTS)
        .unwrap_or_else(|e| panic!("{APT_LISTS}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with("_InRelease"))
        .collect();
    lists.sort();
    for path in lists {
        let message = std::fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy();
        // `<host>_<path>_dists_<suite>_InRelease`: keep the suite, never the mirror's host.
        let suite = name
            .trim_end_matches("_InRelease")
            .rsplit("_dists_")
            .next()
            .unwrap_or("suite")
            .to_owned();
        out.push(Scenario {
            name: format!("debian-{suite}"),
            keyring: keyring.clone(),
            text: String::new(),
            message,
            hand_made: None,
        });
        real += 1;
    }
    assert!(
        real > 0,
        "no InRelease under {APT_LISTS}: the differential test needs real repository metadata (run apt-get update)"
    );
    out
}

/// An armored key block as binary packets (gpgv reads binary keyrings).
pub fn dearmor(armored: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    let text = String::from_utf8_lossy(armored);
    let mut body = String::new();
    let mut in_body = false;
    for line in text.lines() {
        if line.starts_with("-----BEGIN") {
            in_body = false;
            continue;
        }
        if line.starts_with("-----END") {
            break;
        }
        if !in_body {
            if line.trim().is_empty() {
                in_body = true;
            }
            continue;
        }
        if line.starts_with('=') {
            continue;
        }
        body.push_str(line.trim());
    }
    base64::engine::general_purpose::STANDARD.decode(body).unwrap()
}
