//! Our OpenPGP verifier against Debian's `gpgv` on the same keyrings, over mutated real and
//! hand-made signed messages: we must never accept what gpgv rejects, never return other text
//! than gpgv verified, never name a signer gpgv did not. Where we reject what gpgv accepts,
//! the case is counted by kind and listed (being stricter is allowed).
//!
//! `CNPG_PGP_DIFFERENTIAL_CASES` sets the number of cases (default 3000),
//! `CNPG_PGP_DIFFERENTIAL_SEED` the seed (default: fixed), `CNPG_PGP_DIFFERENTIAL_SUMMARY` a
//! file to write the summary line to (scripts/fuzz.sh --bench reads it).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation,
    reason = "a test harness: a failed unwrap is a failed assertion; lengths here are small"
)]

#[path = "pgp_differential/gpgv.rs"]
mod gpgv;
#[path = "pgp_differential/mutate.rs"]
mod mutate;
#[path = "pgp_differential/scenarios.rs"]
mod scenarios;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use cnpg_imaging::pgp::Keyring;

use gpgv::Gpgv;
use mutate::Case;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// What our verifier made of a case.
enum Ours {
    Accepted { text: String, signer: String },
    Rejected(String),
}

fn ours(case: &Case, parsed: &BTreeMap<usize, Result<Keyring, String>>, key: usize, now: u64) -> Ours {
    let owned;
    let keyring = if case.keyring_changed {
        owned = Keyring::read(&case.keyring, now).map_err(|e| e.to_string());
        &owned
    } else {
        &parsed[&key]
    };
    let keyring = match keyring {
        Ok(k) => k,
        Err(e) => return Ours::Rejected(format!("keyring: {e}")),
    };
    let Ok(message) = std::str::from_utf8(&case.message) else {
        return Ours::Rejected("not UTF-8".into());
    };
    match keyring.verify_cleartext(message, now) {
        Ok(v) => Ours::Accepted {
            text: v.text,
            signer: v.signer,
        },
        Err(e) => Ours::Rejected(e.to_string()),
    }
}

/// A rejection reason without the parts that vary per case (key IDs, numbers).
fn reason_class(reason: &str) -> String {
    let mut out = String::new();
    let mut run = String::new();
    for c in reason.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_hexdigit() {
            run.push(c);
            continue;
        }
        if run.len() >= 8 {
            out.push_str("<hex>");
        } else if !run.is_empty() && run.chars().all(|d| d.is_ascii_digit()) {
            out.push('N');
        } else {
            out.push_str(&run);
        }
        run.clear();
        out.push(c);
    }
    let first = out.trim().split("; ").next().unwrap_or_default().to_owned();
    first.chars().take(110).collect()
}

/// The mutation without its parameters beyond the family and kind.
fn mutation_class(case: &Case) -> String {
    case.mutations.join(" + ")
}

struct Tally {
    cases: AtomicU64,
    both_accept: AtomicU64,
    both_reject: AtomicU64,
    violations: Mutex<Vec<String>>,
    stricter: Mutex<BTreeMap<(String, String), u64>>,
}

fn keyring_file(dir: &Path, bytes: &[u8], name: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn save_violation(dir: &Path, index: u64, case: &Case) -> PathBuf {
    let out = dir.join(format!("violation-{index}"));
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("keyring.gpg"), case.keyring.as_slice()).unwrap();
    std::fs::write(out.join("InRelease"), &case.message).unwrap();
    out
}

#[test]
fn we_never_accept_what_gpgv_rejects() {
    let total = env_u64("CNPG_PGP_DIFFERENTIAL_CASES", 3000);
    let seed = env_u64("CNPG_PGP_DIFFERENTIAL_SEED", 0x05EE_D0FC_1A55);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let scenarios = scenarios::all(u32::try_from(now).unwrap());
    // GnuPG made its key just now: verify at a time after every key was made.
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + 1;

    let work = tempfile::tempdir().unwrap();
    let keep = std::env::var_os("CNPG_PGP_DIFFERENTIAL_KEEP").map(PathBuf::from);
    let violations_dir = keep.clone().unwrap_or_else(|| work.path().join("violations"));

    // Every unchanged keyring is parsed once, and written once for gpgv.
    let mut parsed = BTreeMap::new();
    let mut files = BTreeMap::new();
    for (i, s) in scenarios.iter().enumerate() {
        let key = std::sync::Arc::as_ptr(&s.keyring) as usize;
        parsed
            .entry(key)
            .or_insert_with(|| Keyring::read(&s.keyring, now).map_err(|e| e.to_string()));
        files
            .entry(key)
            .or_insert_with(|| keyring_file(work.path(), &s.keyring, &format!("keyring-{i}.gpg")));
        // Each genuine scenario must verify on both sides, or the mutations prove nothing.
        let case = Case {
            scenario: s.name.clone(),
            mutations: Vec::new(),
            keyring: s.keyring.clone(),
            keyring_changed: false,
            message: s.message.clone().into_bytes(),
        };
        let gpgv = Gpgv::new();
        let verdict = gpgv.verify(&files[&key], &case.message, work.path());
        assert!(verdict.accepted, "gpgv rejects genuine {}: {}", s.name, verdict.status);
        match ours(&case, &parsed, key, now) {
            Ours::Accepted { .. } => {}
            Ours::Rejected(why) => panic!("we reject genuine {}: {why}", s.name),
        }
    }

    let tally = Tally {
        cases: AtomicU64::new(0),
        both_accept: AtomicU64::new(0),
        both_reject: AtomicU64::new(0),
        violations: Mutex::new(Vec::new()),
        stricter: Mutex::new(BTreeMap::new()),
    };
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get()) as u64;
    let next = AtomicU64::new(0);
    std::thread::scope(|scope| {
        for w in 0..workers {
            let (tally, next, scenarios, parsed, files) = (&tally, &next, &scenarios, &parsed, &files);
            let violations_dir = &violations_dir;
            let dir = work.path().join(format!("worker-{w}"));
            std::fs::create_dir_all(&dir).unwrap();
            scope.spawn(move || {
                let gpgv = Gpgv::new();
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= total {
                        break;
                    }
                    let case = mutate::case(seed, index, scenarios);
                    let key = scenarios
                        .iter()
                        .find(|s| s.name == case.scenario)
                        .map(|s| std::sync::Arc::as_ptr(&s.keyring) as usize)
                        .unwrap();
                    let keyring_path = if case.keyring_changed {
                        keyring_file(&dir, &case.keyring, "mutated.gpg")
                    } else {
                        files[&key].clone()
                    };
                    let theirs = gpgv.verify(&keyring_path, &case.message, &dir);
                    let mine = ours(&case, parsed, key, now);
                    tally.cases.fetch_add(1, Ordering::Relaxed);
                    let problem = match (&mine, theirs.accepted) {
                        (Ours::Accepted { .. }, false) => Some("we accept what gpgv rejects".to_owned()),
                        (Ours::Accepted { text, signer }, true) => {
                            tally.both_accept.fetch_add(1, Ordering::Relaxed);
                            if text.as_bytes() != theirs.text.as_slice() {
                                Some(format!(
                                    "we return other text than gpgv verified: ours {:?}… gpgv {:?}…",
                                    &text.chars().take(80).collect::<String>(),
                                    String::from_utf8_lossy(&theirs.text)
                                        .chars()
                                        .take(80)
                                        .collect::<String>()
                                ))
                            } else if !theirs.signers.contains(signer) {
                                Some(format!("we name signer {signer}, gpgv {:?}", theirs.signers))
                            } else {
                                None
                            }
                        }
                        (Ours::Rejected(why), true) => {
                            let class = (mutation_class(&case), reason_class(why));
                            *tally.stricter.lock().unwrap().entry(class).or_default() += 1;
                            None
                        }
                        (Ours::Rejected(_), false) => {
                            tally.both_reject.fetch_add(1, Ordering::Relaxed);
                            None
                        }
                    };
                    if let Some(problem) = problem {
                        let saved = save_violation(violations_dir, index, &case);
                        tally.violations.lock().unwrap().push(format!(
                            "case {index} ({} + {}): {problem}\n  gpgv: {}\n  saved in {}",
                            case.scenario,
                            case.mutations.join(" + "),
                            theirs
                                .status
                                .lines()
                                .filter(|l| !l.contains("KEY_CONSIDERED"))
                                .collect::<Vec<_>>()
                                .join(" | "),
                            saved.display()
                        ));
                    }
                }
            });
        }
    });

    let violations = tally.violations.into_inner().unwrap();
    let stricter = tally.stricter.into_inner().unwrap();
    let cases = tally.cases.load(Ordering::Relaxed);
    let stricter_total: u64 = stricter.values().sum();
    println!("stricter than gpgv, by mutation (mutation → our reason: cases):");
    for ((mutation, reason), n) in &stricter {
        println!("  {mutation} → {reason}: {n}");
    }
    let mut by_reason: BTreeMap<&str, (u64, &str)> = BTreeMap::new();
    for ((mutation, reason), n) in &stricter {
        let entry = by_reason.entry(reason.as_str()).or_insert((0, mutation.as_str()));
        entry.0 += n;
    }
    let mut by_reason: Vec<_> = by_reason.into_iter().collect();
    by_reason.sort_by_key(|(_, (n, _))| std::cmp::Reverse(*n));
    println!("stricter than gpgv, by our reason (cases, one mutation that led there):");
    for (reason, (n, example)) in &by_reason {
        println!("  {n:>7}  {reason}  [{example}]");
    }
    let line = format!(
        "openpgp differential cases={cases} accepted-but-gpgv-rejected={} both-accepted={} both-rejected={} stricter={stricter_total}",
        violations.len(),
        tally.both_accept.load(Ordering::Relaxed),
        tally.both_reject.load(Ordering::Relaxed),
    );
    println!("{line}");
    if let Some(path) = std::env::var_os("CNPG_PGP_DIFFERENTIAL_SUMMARY") {
        let summary = format!(
            "openpgp differential cases={cases} accepted-but-gpgv-rejected={}",
            violations.len()
        );
        std::fs::write(path, summary).unwrap();
    }
    assert!(
        violations.is_empty(),
        "{} cases where we accept what gpgv rejects (or accept something else):\n{}",
        violations.len(),
        violations.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
    assert_eq!(cases, total);
}
