//! Mutations of a genuine signed message and its keyring: at the text, the armor, the packet,
//! the signature (signing again with odd parameters) and the keyring level. Every case is a
//! pure function of (seed, index), so a failing case can be regenerated from its number.

use std::sync::Arc;

use base64::Engine as _;
use cnpg_testkit::openpgp::{
    self, Binding, FLAG_CERTIFY, FLAG_ENCRYPT, FLAG_SIGN, MD5, SHA1, SHA224, SHA256, SHA384, SHA512, SIG_BINARY,
    SIG_POSITIVE_CERT, SIG_TEXT, SecretKey, Subpacket,
};

use super::scenarios::{DAY, HandMade, Scenario};

/// SplitMix64: small, fast, and the same everywhere.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// One case: what was done, the keyring and the message.
#[derive(Debug, Clone)]
pub struct Case {
    pub scenario: String,
    pub mutations: Vec<String>,
    pub keyring: Arc<Vec<u8>>,
    pub keyring_changed: bool,
    pub message: Vec<u8>,
}

impl Case {
    fn note(&mut self, what: impl Into<String>) {
        self.mutations.push(what.into());
    }
}

/// Builds case `index` from the scenarios.
pub fn case(seed: u64, index: u64, scenarios: &[Scenario]) -> Case {
    let mut rng = Rng::new(seed ^ index.wrapping_mul(0xA076_1D64_78BD_642F));
    let scenario = &scenarios[rng.below(scenarios.len())];
    let mut case = Case {
        scenario: scenario.name.clone(),
        mutations: Vec::new(),
        keyring: scenario.keyring.clone(),
        keyring_changed: false,
        message: scenario.message.clone().into_bytes(),
    };
    let rounds = if rng.chance(30) { 2 } else { 1 };
    for _ in 0..rounds {
        mutate(&mut rng, scenario, scenarios, &mut case);
    }
    case
}

fn mutate(rng: &mut Rng, scenario: &Scenario, all: &[Scenario], case: &mut Case) {
    // Hand-made scenarios can also be signed again and have their keys re-attached.
    let families = if scenario.hand_made.is_some() { 5 } else { 4 };
    match rng.below(families) {
        0 => text(rng, case, all),
        1 => armor(rng, case, all),
        2 => packets(rng, case, all),
        3 => keyring_packets(rng, case, all),
        _ => {
            let made = scenario.hand_made.as_ref().unwrap();
            if rng.chance(50) {
                resign(rng, scenario, made, case);
            } else {
                rekey(rng, made, case);
            }
        }
    }
}

// ---- the message as text ------------------------------------------------------------------

const BEGIN_MESSAGE: &[u8] = b"-----BEGIN PGP SIGNED MESSAGE-----";
const BEGIN_SIG: &[u8] = b"-----BEGIN PGP SIGNATURE-----";
const END_SIG: &[u8] = b"-----END PGP SIGNATURE-----";

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn replace_first(hay: &mut Vec<u8>, needle: &[u8], with: &str) {
    if let Some(at) = find(hay, needle) {
        hay.splice(at..at + needle.len(), with.bytes());
    }
}

/// Flips one random bit of `body`, if it has any.
fn flip_bit(rng: &mut Rng, body: &mut [u8]) {
    if !body.is_empty() {
        let at = rng.below(body.len());
        body[at] ^= 1 << rng.below(8);
    }
}

/// Byte range of the signed text: after the header's blank line, up to the signature.
fn text_range(message: &[u8]) -> Option<(usize, usize)> {
    let start = find(message, b"\n\n")? + 2;
    let end = find(message, BEGIN_SIG)?;
    (start <= end).then_some((start, end))
}

/// Start offsets of the lines in `range`.
fn line_starts(message: &[u8], (start, end): (usize, usize)) -> Vec<usize> {
    let mut out = vec![start];
    for (i, b) in message[start..end].iter().enumerate() {
        if *b == b'\n' && start + i + 1 < end {
            out.push(start + i + 1);
        }
    }
    out
}

fn line_end(message: &[u8], at: usize) -> usize {
    message[at..]
        .iter()
        .position(|b| *b == b'\n')
        .map_or(message.len(), |p| at + p)
}

fn text(rng: &mut Rng, case: &mut Case, all: &[Scenario]) {
    let msg = &mut case.message;
    let Some(range) = text_range(msg) else {
        case.note("text:none");
        return;
    };
    let lines = line_starts(msg, range);
    let line = *rng.pick(&lines);
    match rng.below(14) {
        0 => {
            let at = range.0 + rng.below(range.1 - range.0);
            let byte = *rng.pick(&[b' ', b'\t', b'\r', b'\n', b'-', b'A', 0, 0xFF, 0x0B, 0x0C]);
            msg[at] = byte;
            case.note(format!("text:set-byte-{byte:#04x}"));
        }
        1 => {
            let blank = *rng.pick(&[" ", "\t", "\r", " \r", "\r\r", "\x0B", "\x0C", "\u{a0}"]);
            let end = line_end(msg, line);
            msg.splice(end..end, blank.bytes());
            case.note(format!("text:trailing-{blank:?}"));
        }
        2 => {
            let all_lines = rng.chance(50);
            let mut out = Vec::new();
            for (i, b) in msg.iter().enumerate() {
                if *b == b'\n' && (all_lines || (i >= range.0 && i < range.1)) {
                    out.push(b'\r');
                }
                out.push(*b);
            }
            *msg = out;
            case.note(if all_lines {
                "text:crlf-everywhere"
            } else {
                "text:crlf-in-text"
            });
        }
        3 => {
            // Dash-escaping games on one line.
            let what = rng.below(4);
            match what {
                0 if msg[line..].starts_with(b"- ") => {
                    msg.drain(line..line + 2);
                }
                1 => {
                    msg.splice(line..line, b"- ".iter().copied());
                }
                2 => {
                    msg.splice(line..line, b"-".iter().copied());
                }
                _ => {
                    msg.splice(line..line, b"- - ".iter().copied());
                }
            }
            case.note(format!("text:dash-escape-{what}"));
        }
        4 => {
            let header = *rng.pick(&[
                "",
                "Hash: SHA1",
                "Hash: SHA512",
                "Hash: SHA384",
                "Hash: SHA224",
                "Hash: MD5",
                "Hash: sha256",
                "hash: SHA256",
                "Hash:SHA256",
                "Hash:  SHA256",
                "Hash: SHA256 ",
                "Hash: SHA1, SHA256",
                "Hash: SHA1,SHA256",
                "Hash: SHA256,SHA512",
                "Hash: SHA512,SHA256",
                "Hash: MD5,SHA256",
                "Hash: SHA256,FOO",
                "Hash: SHA256\nHash: SHA512",
                "Hash: SHA512\nHash: SHA256",
                "Hash: SHA256\nComment: x",
                "Comment: x\nHash: SHA256",
                "Hash: SHA256\nVersion: x",
                "Hash: SHA256\n ",
                "Hash: SHA256\nHash: SHA256",
                "Hash: SHA256\r",
                "Hash: SHA512\nHash: SHA512",
            ]);
            let Some(h) = find(msg, b"\nHash: ") else {
                case.note("text:hash-header-absent");
                return;
            };
            let end = line_end(msg, h + 1);
            let replacement = if header.is_empty() {
                Vec::new()
            } else {
                format!("\n{header}").into_bytes()
            };
            msg.splice(h..end, replacement);
            case.note(format!("text:hash-header-{header:?}"));
        }
        5 => {
            let junk = *rng.pick(&["\n", "\n\n", " \n", "junk\n", "Suite: evil\n", "-----\n", "\u{feff}"]);
            msg.splice(0..0, junk.bytes());
            case.note(format!("text:before-{junk:?}"));
        }
        6 => {
            let junk = *rng.pick(&[
                "\n",
                "junk\n",
                "Suite: evil\n",
                "\n\n\n",
                "-----END PGP SIGNATURE-----\n",
            ]);
            msg.extend_from_slice(junk.as_bytes());
            case.note(format!("text:after-{junk:?}"));
        }
        7 => {
            let other = rng.pick(all);
            let first = rng.chance(50);
            if first {
                let mut joined = other.message.clone().into_bytes();
                joined.extend_from_slice(msg);
                *msg = joined;
            } else {
                msg.extend_from_slice(other.message.as_bytes());
            }
            case.note(if first {
                "text:another-message-before"
            } else {
                "text:another-message-after"
            });
        }
        8 => {
            let variant = *rng.pick(&[
                " -----BEGIN PGP SIGNED MESSAGE-----",
                "-----BEGIN PGP SIGNED MESSAGE----- ",
                "-----BEGIN PGP SIGNED MESSAGE-----\r",
                "x-----BEGIN PGP SIGNED MESSAGE-----",
                "-----BEGIN PGP SIGNED MESSAGE-----x",
                "-----BEGIN PGP MESSAGE-----",
            ]);
            replace_first(msg, BEGIN_MESSAGE, variant);
            case.note(format!("text:begin-{variant:?}"));
        }
        9 => {
            let at = rng.below(msg.len());
            msg.truncate(at);
            case.note("text:truncate");
        }
        10 => {
            let insert = *rng.pick(&[
                "Suite: evil",
                "",
                "-",
                "- ",
                "--",
                "- -----BEGIN PGP SIGNATURE-----",
                "-----BEGIN PGP SIGNATURE-----",
                "-----END PGP SIGNATURE-----",
                "-----BEGIN PGP SIGNED MESSAGE-----",
                "  ",
                "\t",
                "\r",
            ]);
            let mut bytes = insert.as_bytes().to_vec();
            bytes.push(b'\n');
            msg.splice(line..line, bytes);
            case.note(format!("text:insert-line-{insert:?}"));
        }
        11 => {
            // The line break before the signature belongs to the delimiter, not the text.
            if let Some(at) = find(msg, BEGIN_SIG) {
                if rng.chance(50) {
                    msg.splice(at..at, b"\n".iter().copied());
                    case.note("text:extra-newline-before-signature");
                } else if at > 0 {
                    msg.remove(at - 1);
                    case.note("text:no-newline-before-signature");
                }
            }
        }
        12 => {
            let choices: [&[u8]; 4] = [&[0u8], &[0xC3, 0x28], &[0xFF, 0xFE], &[0xE2, 0x80, 0xA8]];
            let bytes = *rng.pick(&choices);
            let at = range.0 + rng.below(range.1 - range.0);
            msg.splice(at..at, bytes.iter().copied());
            case.note(format!("text:insert-bytes-{bytes:02x?}"));
        }
        _ => {
            // Swap two text lines: same bytes, another order.
            if lines.len() >= 2 {
                let a = rng.below(lines.len() - 1);
                let (s1, s2) = (lines[a], lines[a + 1]);
                let e2 = line_end(msg, s2);
                let first = msg[s1..s2].to_vec();
                let second = msg[s2..e2].to_vec();
                let mut swapped = second;
                swapped.push(b'\n');
                swapped.extend_from_slice(&first[..first.len() - 1]);
                msg.splice(s1..e2, swapped);
            }
            case.note("text:swap-lines");
        }
    }
}

// ---- the armor of the signature -----------------------------------------------------------

/// The signature block's location and decoded packets.
struct SigBlock {
    start: usize,
    end: usize,
    data: Vec<u8>,
}

fn sig_block(message: &[u8]) -> Option<SigBlock> {
    let start = find(message, BEGIN_SIG)?;
    let end_at = start + find(&message[start..], END_SIG)?;
    let end = line_end(message, end_at);
    let inner = String::from_utf8_lossy(&message[start..end_at]).into_owned();
    let mut body = String::new();
    let mut in_body = false;
    for line in inner.lines().skip(1) {
        let line = line.trim_end();
        if !in_body {
            if line.is_empty() {
                in_body = true;
            }
            continue;
        }
        if line.starts_with('=') {
            continue;
        }
        body.push_str(line);
    }
    let data = base64::engine::general_purpose::STANDARD.decode(body).ok()?;
    Some(SigBlock { start, end, data })
}

fn replace_block(case: &mut Case, block: &SigBlock, data: &[u8]) {
    let armored = openpgp::armor("SIGNATURE", data);
    let armored = armored.trim_end_matches('\n');
    case.message.splice(block.start..block.end, armored.bytes());
}

fn armor(rng: &mut Rng, case: &mut Case, all: &[Scenario]) {
    let Some(start) = find(&case.message, BEGIN_SIG) else {
        case.note("armor:none");
        return;
    };
    let msg = &mut case.message;
    match rng.below(6) {
        0 => {
            // The CRC line: drop it or break it.
            let crc_at = msg[start..].windows(2).position(|w| w == b"\n=").map(|p| start + p + 1);
            if let Some(at) = crc_at {
                let end = line_end(msg, at);
                if rng.chance(50) {
                    msg.drain(at..=end.min(msg.len() - 1));
                    case.note("armor:crc-dropped");
                } else {
                    msg[at + 1] = if msg[at + 1] == b'A' { b'B' } else { b'A' };
                    case.note("armor:crc-wrong");
                }
            }
        }
        1 => {
            let header = *rng.pick(&[
                "Version: x",
                "Comment: y",
                "Hash: SHA1",
                "Foo: bar",
                "Charset: UTF-8",
                "Comment:",
            ]);
            let at = line_end(msg, start) + 1;
            let mut bytes = header.as_bytes().to_vec();
            bytes.push(b'\n');
            msg.splice(at..at, bytes);
            case.note(format!("armor:header-{header:?}"));
        }
        2 => {
            // Remove the blank line that ends the armor headers.
            let at = line_end(msg, start) + 1;
            if msg.get(at) == Some(&b'\n') {
                msg.remove(at);
            }
            case.note("armor:no-blank-line");
        }
        3 => {
            // Re-wrap or dirty the base64.
            let what = rng.below(3);
            let first_data = line_end(msg, line_end(msg, start) + 1) + 1;
            match what {
                0 => msg.splice(first_data..first_data, b" ".iter().copied()).for_each(drop),
                1 => msg.splice(first_data..first_data, b"*".iter().copied()).for_each(drop),
                _ => {
                    if let Some(block) = sig_block(msg) {
                        let b64 = base64::engine::general_purpose::STANDARD.encode(&block.data);
                        let rewrapped = format!("-----BEGIN PGP SIGNATURE-----\n\n{b64}\n-----END PGP SIGNATURE-----");
                        msg.splice(block.start..block.end, rewrapped.bytes());
                    }
                }
            }
            case.note(format!("armor:base64-{what}"));
        }
        4 => {
            // Another signature block after this one.
            let other = rng.pick(all);
            if let Some(block) = sig_block(other.message.as_bytes()) {
                msg.extend_from_slice(openpgp::armor("SIGNATURE", &block.data).as_bytes());
            }
            case.note(format!("armor:second-block-from-{}", other.name));
        }
        _ => {
            let variant = *rng.pick(&[
                "-----END PGP SIGNATURE----- ",
                "-----END PGP SIGNATURE-----x",
                "-----END PGP MESSAGE-----",
                "",
            ]);
            replace_first(msg, END_SIG, variant);
            case.note(format!("armor:end-{variant:?}"));
        }
    }
}

// ---- the packets of the signature ---------------------------------------------------------

/// Splits framed packets (new and old format); None when the framing is broken.
pub fn split_packets(data: &[u8]) -> Option<Vec<(u8, Vec<u8>)>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < data.len() {
        let header = data[i];
        i += 1;
        if header & 0x80 == 0 {
            return None;
        }
        let (tag, len) = if header & 0x40 != 0 {
            let first = *data.get(i)? as usize;
            i += 1;
            let len = match first {
                0..=191 => first,
                192..=223 => {
                    let second = *data.get(i)? as usize;
                    i += 1;
                    ((first - 192) << 8) + second + 192
                }
                255 => {
                    let bytes = data.get(i..i + 4)?;
                    i += 4;
                    u32::from_be_bytes(bytes.try_into().ok()?) as usize
                }
                _ => return None,
            };
            (header & 0x3F, len)
        } else {
            let width = match header & 3 {
                0 => 1,
                1 => 2,
                2 => 4,
                _ => return None,
            };
            let bytes = data.get(i..i + width)?;
            i += width;
            let len = bytes.iter().fold(0usize, |acc, b| (acc << 8) | *b as usize);
            ((header >> 2) & 0x0F, len)
        };
        out.push((tag, data.get(i..i + len)?.to_vec()));
        i += len;
    }
    Some(out)
}

fn join_packets(packets: &[(u8, Vec<u8>)]) -> Vec<u8> {
    packets
        .iter()
        .flat_map(|(tag, body)| openpgp::packet(*tag, body))
        .collect()
}

fn old_format(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    if let Ok(len) = u8::try_from(body.len()) {
        out.push(0x80 | (tag << 2));
        out.push(len);
    } else {
        out.push(0x80 | (tag << 2) | 2);
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    }
    out.extend_from_slice(body);
    out
}

fn foreign_signature(rng: &mut Rng, all: &[Scenario]) -> Option<(String, Vec<u8>)> {
    let other = rng.pick(all);
    let block = sig_block(other.message.as_bytes())?;
    let packets = split_packets(&block.data)?;
    let (_, body) = rng.pick(&packets).clone();
    Some((other.name.clone(), body))
}

fn packets(rng: &mut Rng, case: &mut Case, all: &[Scenario]) {
    let Some(block) = sig_block(&case.message) else {
        case.note("packets:none");
        return;
    };
    let Some(mut packets) = split_packets(&block.data) else {
        case.note("packets:unframed");
        return;
    };
    if packets.is_empty() {
        case.note("packets:empty");
        return;
    }
    let i = rng.below(packets.len());
    let mut raw = None;
    match rng.below(10) {
        0 => {
            flip_bit(rng, &mut packets[i].1);
            case.note("packets:bit-flip");
        }
        1 => {
            let body = &mut packets[i].1;
            let keep = rng.below(body.len() + 1);
            body.truncate(keep);
            case.note("packets:truncate-body");
        }
        2 => {
            packets[i].1.extend_from_slice(&[0, 1, 2]);
            case.note("packets:trailing-bytes");
        }
        3 => {
            packets.remove(i);
            case.note("packets:drop");
        }
        4 => {
            let copy = packets[i].clone();
            packets.insert(i, copy);
            case.note("packets:duplicate");
        }
        5 => {
            packets.reverse();
            case.note("packets:reverse");
        }
        6 => {
            if let Some((from, body)) = foreign_signature(rng, all) {
                let at = rng.below(packets.len() + 1);
                packets.insert(at, (2, body));
                case.note(format!("packets:foreign-signature-from-{from}"));
            }
        }
        7 => {
            // Header fields: version, type, key and hash algorithm.
            let body = &mut packets[i].1;
            let (field, values): (usize, &[u8]) = *rng.pick(&[
                (0usize, &[3u8, 5, 6][..]),
                (1, &[0x00, 0x02, 0x10, 0x13, 0x18, 0x1F, 0x20, 0x40][..]),
                (2, &[1, 17, 19, 22, 27][..]),
                (3, &[1, 2, 3, 8, 9, 10, 11, 12, 14][..]),
            ]);
            let value = *rng.pick(values);
            if let Some(b) = body.get_mut(field) {
                *b = value;
            }
            case.note(format!("packets:field{field}={value:#04x}"));
        }
        8 => {
            let tag = *rng.pick(&[10u8, 11, 4, 13, 6, 8, 60]);
            let body: Vec<u8> = match tag {
                10 => b"PGP".to_vec(),
                11 => b"b\x00\x00\x00\x00\x00hello".to_vec(),
                4 => vec![3, 1, 8, 22, 1, 2, 3, 4, 5, 6, 7, 8, 1],
                _ => vec![1, 2, 3],
            };
            let at = rng.below(packets.len() + 1);
            packets.insert(at, (tag, body));
            case.note(format!("packets:insert-tag-{tag}"));
        }
        _ => {
            // Same packets in old-format framing.
            raw = Some(
                packets
                    .iter()
                    .flat_map(|(tag, body)| old_format(*tag, body))
                    .collect::<Vec<u8>>(),
            );
            case.note("packets:old-format");
        }
    }
    let data = raw.unwrap_or_else(|| join_packets(&packets));
    replace_block(case, &block, &data);
}

// ---- keyring packets ----------------------------------------------------------------------

fn keyring_packets(rng: &mut Rng, case: &mut Case, all: &[Scenario]) {
    let Some(mut packets) = split_packets(&case.keyring) else {
        case.note("keyring:unframed");
        return;
    };
    if packets.is_empty() {
        return;
    }
    let i = rng.below(packets.len());
    match rng.below(7) {
        0 => {
            flip_bit(rng, &mut packets[i].1);
            case.note(format!("keyring:bit-flip-tag{}", packets[i].0));
        }
        1 => {
            let tag = packets[i].0;
            packets.remove(i);
            case.note(format!("keyring:drop-tag{tag}"));
        }
        2 => {
            let copy = packets[i].clone();
            packets.insert(i, copy);
            case.note("keyring:duplicate");
        }
        3 => {
            let j = rng.below(packets.len());
            packets.swap(i, j);
            case.note("keyring:swap");
        }
        4 => {
            // Another certificate's packets appended: a foreign primary, its subkeys.
            let other = rng.pick(all);
            if let Some(more) = split_packets(&other.keyring) {
                let take = rng.below(more.len().min(12)) + 1;
                let from = rng.below(more.len() - take + 1);
                packets.extend(more[from..from + take].iter().cloned());
            }
            case.note(format!("keyring:append-from-{}", other.name));
        }
        5 => {
            // A signature from elsewhere in the keyring attached here.
            let sigs: Vec<usize> = (0..packets.len()).filter(|k| packets[*k].0 == 2).collect();
            if !sigs.is_empty() {
                let s = packets[*rng.pick(&sigs)].clone();
                packets.insert(i, s);
            }
            case.note("keyring:move-signature");
        }
        _ => {
            let body = &mut packets[i].1;
            let keep = rng.below(body.len() + 1);
            body.truncate(keep);
            case.note("keyring:truncate-packet");
        }
    }
    case.keyring = Arc::new(join_packets(&packets));
    case.keyring_changed = true;
}

// ---- signing again ------------------------------------------------------------------------

fn resign(rng: &mut Rng, scenario: &Scenario, made: &HandMade, case: &mut Case) {
    let now = made.now;
    let signer = made.signer();
    let mut sig = signer.sig(SIG_TEXT, SHA256, now - DAY);
    let mut header = "SHA256".to_owned();
    let mut extra: Vec<Vec<u8>> = Vec::new();
    let mut key: &SecretKey = signer;
    match rng.below(9) {
        0 => {
            let hash = *rng.pick(&[MD5, SHA1, SHA224, SHA256, SHA384, SHA512]);
            sig.hash = hash;
            if rng.chance(70) {
                header = openpgp::hash_name(hash).to_owned();
            }
            case.note(format!("resign:hash-{}-header-{header}", openpgp::hash_name(hash)));
        }
        1 => {
            let (label, created) = *rng.pick(&[
                ("future-hour", now + 3600),
                ("future-day", now + DAY),
                ("before-key", signer.created - 3600),
                ("epoch", 0),
                ("ten-years-ago", now - 3650 * DAY),
            ]);
            sig.hashed.retain(|s| !matches!(s, Subpacket::Created(_)));
            sig.hashed.push(Subpacket::Created(created));
            case.note(format!("resign:created-{label}"));
        }
        2 => {
            let unhashed = rng.chance(50);
            sig.hashed.retain(|s| !matches!(s, Subpacket::Created(_)));
            if unhashed {
                sig.unhashed.push(Subpacket::Created(now - DAY));
            }
            case.note(if unhashed {
                "resign:created-unhashed"
            } else {
                "resign:no-creation-time"
            });
        }
        3 => {
            let (label, after) = *rng.pick(&[("expired", 3600u32), ("valid", 30 * DAY), ("zero", 0)]);
            sig.hashed.push(Subpacket::SigExpires(after));
            case.note(format!("resign:sig-expires-{label}"));
        }
        4 => {
            let (label, kind, critical) = *rng.pick(&[
                ("unknown-critical", 100u8, true),
                ("unknown", 100, false),
                ("notation-critical", 20, true),
                ("policy-critical", 26, true),
                ("flags-critical", 27, true),
                ("reserved-critical", 0, true),
            ]);
            let body = if kind == 20 {
                vec![0x80, 0, 0, 0, 0, 1, 0, 1, b'a', b'b']
            } else {
                vec![1]
            };
            let sub = Subpacket::Raw { kind, critical, body };
            if rng.chance(80) {
                sig.hashed.push(sub);
                case.note(format!("resign:{label}"));
            } else {
                sig.unhashed.push(sub);
                case.note(format!("resign:{label}-unhashed"));
            }
        }
        5 => {
            let what = rng.below(6);
            let stranger = &made.stranger;
            match what {
                0 => {
                    sig.hashed.retain(|s| !matches!(s, Subpacket::IssuerFingerprint(_)));
                    sig.unhashed.clear();
                }
                1 => {
                    sig.hashed.retain(|s| !matches!(s, Subpacket::IssuerFingerprint(_)));
                    sig.hashed.push(Subpacket::IssuerFingerprint(stranger.fingerprint()));
                }
                2 => sig.hashed.retain(|s| !matches!(s, Subpacket::IssuerFingerprint(_))),
                3 => {
                    sig.unhashed.clear();
                    sig.unhashed.push(Subpacket::IssuerKeyId(stranger.key_id()));
                    sig.hashed.retain(|s| !matches!(s, Subpacket::IssuerFingerprint(_)));
                }
                4 => {
                    sig.hashed.retain(|s| !matches!(s, Subpacket::IssuerFingerprint(_)));
                    sig.unhashed.push(Subpacket::IssuerFingerprint(signer.fingerprint()));
                }
                _ => sig.unhashed.clear(),
            }
            case.note(format!("resign:issuer-{what}"));
        }
        6 => {
            let t = *rng.pick(&[SIG_BINARY, 0x02, 0x10, SIG_POSITIVE_CERT, 0x40]);
            sig.sig_type = t;
            case.note(format!("resign:type-{t:#04x}"));
        }
        7 => {
            // More signatures beside the good one: a stranger's, or a broken one by our key.
            let stranger = &made.stranger;
            let what = rng.below(3);
            match what {
                0 => extra.push(
                    openpgp::sign_text(stranger, &stranger.sig(SIG_TEXT, SHA256, now - DAY), &scenario.text).unwrap(),
                ),
                1 => {
                    let mut bad =
                        openpgp::sign_text(signer, &signer.sig(SIG_TEXT, SHA256, now - 2 * DAY), "other text\n")
                            .unwrap();
                    let last = bad.len() - 1;
                    bad[last] ^= 1;
                    extra.push(bad);
                }
                _ => {
                    // The only signature is the stranger's.
                    key = stranger;
                    sig = stranger.sig(SIG_TEXT, SHA256, now - DAY);
                }
            }
            case.note(format!("resign:extra-{what}"));
        }
        _ => {
            // The primary signs although the certificate may not allow it to.
            key = &made.primary;
            sig = made.primary.sig(SIG_TEXT, SHA256, now - DAY);
            case.note("resign:by-primary");
        }
    }
    let mut packets = openpgp::sign_text(key, &sig, &scenario.text).unwrap();
    if rng.chance(50) {
        for e in &extra {
            packets.extend_from_slice(e);
        }
    } else {
        let mut first: Vec<u8> = extra.concat();
        first.extend(packets);
        packets = first;
    }
    case.message = openpgp::cleartext(&scenario.text, &header, &packets).into_bytes();
}

// ---- attaching keys differently -----------------------------------------------------------

fn rekey(rng: &mut Rng, made: &HandMade, case: &mut Case) {
    let now = made.now;
    let mut self_sig = made.self_sig();
    let mut binding = Binding::signing(now - 20 * DAY);
    let label = match rng.below(12) {
        0 => {
            binding.bound = false;
            "unbound-subkey"
        }
        1 => {
            binding.back_signature = false;
            "no-back-signature"
        }
        2 => {
            binding.flags = *rng.pick(&[FLAG_ENCRYPT, FLAG_CERTIFY, 0]);
            "subkey-not-for-signing"
        }
        3 => {
            binding.revoked = true;
            "revoked-subkey"
        }
        4 => {
            // Expired ten days ago.
            binding.expires_after = 10 * DAY + DAY;
            "expired-subkey"
        }
        5 => {
            self_sig.expires_after = 20 * DAY;
            "expired-primary"
        }
        6 => {
            self_sig.revoked = true;
            "revoked-primary"
        }
        7 => {
            binding.created = now + DAY;
            "binding-in-the-future"
        }
        8 => {
            self_sig.created = now + DAY;
            "self-signature-in-the-future"
        }
        9 => {
            let hash = *rng.pick(&[SHA1, MD5]);
            if rng.chance(50) {
                self_sig.hash = hash;
                "weak-self-signature"
            } else {
                binding.hash = hash;
                "weak-binding"
            }
        }
        10 => {
            self_sig.flags = if rng.chance(50) { FLAG_CERTIFY } else { FLAG_SIGN };
            "primary-flags"
        }
        _ => {
            binding.created = made.subkey.as_ref().map_or(now, |s| s.created) - DAY;
            "binding-before-subkey"
        }
    };
    case.keyring = Arc::new(made.certificate(&self_sig, Some(binding)));
    case.keyring_changed = true;
    case.note(format!("rekey:{label}"));
}
