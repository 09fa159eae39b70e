//! Package relationship fields (Debian Policy §7.1): `a (>= 1) | b, c:any`.

use super::Error;

/// A version relation operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
}

/// One alternative: a package name, an optional architecture qualifier and version constraint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alternative {
    pub name: String,
    pub arch: Option<String>,
    pub version: Option<(Op, String)>,
}

/// One dependency: any of its alternatives satisfies it.
pub type Dependency = Vec<Alternative>;

/// Parses a relationship field into dependencies (AND of ORs).
pub fn parse(field: &str) -> Result<Vec<Dependency>, Error> {
    let mut deps = Vec::new();
    for group in field.split(',').map(str::trim).filter(|g| !g.is_empty()) {
        let mut alternatives = Vec::new();
        for alt in group.split('|').map(str::trim) {
            alternatives.push(parse_alternative(alt).map_err(|why| Error::Relation(format!("`{alt}`: {why}")))?);
        }
        deps.push(alternatives);
    }
    Ok(deps)
}

fn parse_alternative(text: &str) -> Result<Alternative, String> {
    let (head, version) = match text.split_once('(') {
        Some((head, rest)) => {
            let (inner, after) = rest.split_once(')').ok_or("unclosed version constraint")?;
            if !after.trim().is_empty() {
                return Err("unexpected text after the version constraint".into());
            }
            let inner = inner.trim();
            let (op, v) = [
                ("<<", Op::Lt),
                ("<=", Op::Le),
                (">=", Op::Ge),
                (">>", Op::Gt),
                ("=", Op::Eq),
            ]
            .into_iter()
            .find_map(|(sym, op)| inner.strip_prefix(sym).map(|v| (op, v.trim())))
            .ok_or("unknown version operator")?;
            if v.is_empty() || v.contains(char::is_whitespace) {
                return Err("bad version in constraint".into());
            }
            (head.trim(), Some((op, v.to_owned())))
        }
        None => (text, None),
    };
    // Architecture restrictions `[...]` and build profiles `<...>` only appear in source
    // packages; a binary index carrying them is malformed for our purpose.
    if head.contains(['[', '<']) {
        return Err("architecture or profile restrictions are not expected in a binary index".into());
    }
    let (name, arch) = match head.split_once(':') {
        Some((n, a)) => (n, Some(a.to_owned())),
        None => (head, None),
    };
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b))
    {
        return Err("bad package name".into());
    }
    Ok(Alternative {
        name: name.to_owned(),
        arch,
        version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_alternatives_versions_and_qualifiers() {
        let deps = parse("locales | locales-all, postgresql-common (>= 241~), perl:any,\n libc6 (>= 2.34)").unwrap();
        assert_eq!(deps.len(), 4);
        assert_eq!(
            deps[0].iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
            ["locales", "locales-all"]
        );
        assert_eq!(deps[1][0].version, Some((Op::Ge, "241~".to_owned())));
        assert_eq!(deps[2][0].arch.as_deref(), Some("any"));
        assert_eq!(deps[3][0].version, Some((Op::Ge, "2.34".to_owned())));
        assert_eq!(
            parse("a (<< 2), b (= 1:2.0-1), c (>> 0)").unwrap()[1][0].version,
            Some((Op::Eq, "1:2.0-1".to_owned()))
        );
    }

    #[test]
    fn malformed_relations_name_the_culprit() {
        for bad in ["a (>= 1", "a (~ 1)", "Bad_Name", "a [amd64]"] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(err.contains(bad.split(' ').next().unwrap()), "{bad}: {err}");
        }
    }
}
