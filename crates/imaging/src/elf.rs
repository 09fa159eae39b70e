//! Just enough ELF to check that an image is complete: the program interpreter and the
//! shared libraries (`DT_NEEDED`) a binary asks for, and its `RUNPATH`/`RPATH`. 64-bit
//! little-endian only (amd64, arm64); anything else is reported as not ELF.

/// The dynamic-linking facts of one ELF file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dynamic {
    pub interpreter: Option<String>,
    pub needed: Vec<String>,
    pub runpath: Vec<String>,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at.checked_add(2)?)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at.checked_add(8)?)?.try_into().ok()?))
}

fn usize_at(b: &[u8], at: usize) -> Option<usize> {
    usize::try_from(u64_at(b, at)?).ok()
}

/// The `e_machine` of an ELF file.
pub fn machine(b: &[u8]) -> Option<u16> {
    is_elf(b).then(|| u16_at(b, 18)).flatten()
}

/// The `e_machine` binaries for a Debian architecture carry.
pub fn machine_of(debian_arch: &str) -> Option<u16> {
    match debian_arch {
        "amd64" => Some(62),
        "arm64" => Some(183),
        "ppc64el" => Some(21),
        "s390x" => Some(22),
        _ => None,
    }
}

/// Whether `bytes` start like an ELF file.
pub fn is_elf(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x7fELF")
}

/// Parses the dynamic-linking facts of a 64-bit little-endian ELF file; `None` for anything
/// else or anything malformed.
pub fn dynamic(b: &[u8]) -> Option<Dynamic> {
    // e_ident: class 2 (64-bit), data 1 (little-endian).
    if !is_elf(b) || b.get(4) != Some(&2) || b.get(5) != Some(&1) {
        return None;
    }
    let phoff = usize_at(b, 0x20)?;
    let phentsize = usize::from(u16_at(b, 0x36)?);
    let phnum = usize::from(u16_at(b, 0x38)?);
    let mut loads = Vec::new();
    let mut dynamic_segment = None;
    let mut out = Dynamic::default();
    for i in 0..phnum {
        let ph = phoff.checked_add(i.checked_mul(phentsize)?)?;
        let p_type = u32_at(b, ph)?;
        let offset = usize_at(b, ph + 0x08)?;
        let vaddr = u64_at(b, ph + 0x10)?;
        let filesz = usize_at(b, ph + 0x20)?;
        match p_type {
            1 => loads.push((vaddr, offset, filesz)),
            2 => dynamic_segment = Some((offset, filesz)),
            3 => {
                let raw = b.get(offset..offset.checked_add(filesz)?)?;
                let end = raw.iter().position(|c| *c == 0).unwrap_or(raw.len());
                out.interpreter = Some(String::from_utf8_lossy(raw.get(..end)?).into_owned());
            }
            _ => {}
        }
    }
    let Some((dyn_off, dyn_size)) = dynamic_segment else {
        return Some(out);
    };
    let mut strtab_addr = None;
    let mut needed_offsets = Vec::new();
    let mut runpath_offsets = Vec::new();
    let mut at = dyn_off;
    while at.checked_add(16)? <= dyn_off.checked_add(dyn_size)? {
        let tag = u64_at(b, at)?;
        let val = u64_at(b, at + 8)?;
        match tag {
            0 => break,
            1 => needed_offsets.push(val),
            5 => strtab_addr = Some(val),
            15 | 29 => runpath_offsets.push(val),
            _ => {}
        }
        at += 16;
    }
    // DT_STRTAB holds a virtual address: map it to a file offset through the load segments.
    let strtab = strtab_addr.and_then(|addr| {
        loads.iter().find_map(|(vaddr, offset, filesz)| {
            let delta = usize::try_from(addr.checked_sub(*vaddr)?).ok()?;
            (delta < *filesz).then(|| offset.checked_add(delta)).flatten()
        })
    })?;
    let string = |rel: u64| -> Option<String> {
        let start = strtab.checked_add(usize::try_from(rel).ok()?)?;
        let raw = b.get(start..)?;
        let end = raw.iter().position(|c| *c == 0)?;
        Some(String::from_utf8_lossy(raw.get(..end)?).into_owned())
    };
    out.needed = needed_offsets.into_iter().filter_map(string).collect();
    out.runpath = runpath_offsets
        .into_iter()
        .filter_map(string)
        .flat_map(|s| s.split(':').map(str::to_owned).collect::<Vec<_>>())
        .collect();
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_real_dynamic_binary_and_refuses_garbage() {
        // The test binary itself is a dynamic ELF on this machine's architecture.
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let dynamic = dynamic(&me).unwrap();
        assert!(dynamic.interpreter.unwrap().contains("ld-linux"));
        assert!(
            dynamic.needed.iter().any(|n| n.starts_with("libc.so")),
            "{:?}",
            dynamic.needed
        );
        assert_eq!(super::dynamic(b"\x7fELF\x02\x01"), None);
        assert_eq!(super::dynamic(b"#!/bin/sh\n"), None);
        let mut truncated = me.clone();
        truncated.truncate(100);
        assert!(super::dynamic(&truncated).is_none_or(|d| d.needed.is_empty()));
    }
}
