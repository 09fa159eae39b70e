//! Dependency resolution: from root package names to the closure of `Pre-Depends` and
//! `Depends` over a distribution's sources, with alternatives, versions and `Provides`, minus
//! an explicit prune list; then a check that nothing selected conflicts.
//!
//! Like apt, the first satisfiable alternative wins and the highest version of a name is
//! preferred across sources; unlike apt, a choice is never revisited (no backtracking), so an
//! impossible set is reported rather than searched around.

use std::cmp::Ordering;
use std::collections::{BTreeMap, VecDeque};

use crate::debian::packages::Package;
use crate::debian::relation::{self, Alternative, Dependency, Op};
use crate::debian::version;
use crate::repo::SourceIndex;
use crate::spec::{Reasoned, matches};

/// Resolution failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("package `{0}` is not in any configured source")]
    NotFound(String),
    #[error("{package} depends on `{dependency}`, which no configured source satisfies")]
    Unsatisfiable { package: String, dependency: String },
    #[error("{package} needs `{dependency}`, but {selected} was already chosen")]
    VersionClash {
        package: String,
        dependency: String,
        selected: String,
    },
    #[error("{package} {field} `{relation}`, and {other} is selected")]
    Conflict {
        package: String,
        field: &'static str,
        relation: String,
        other: String,
    },
    #[error("{package}")]
    Relation {
        package: String,
        source: crate::debian::Error,
    },
}

/// Where a package comes from: (source index, package index).
pub type Key = (usize, usize);

/// Every package of a distribution's sources, indexed by name and by what it provides.
#[derive(Debug)]
pub struct Universe {
    pub sources: Vec<SourceIndex>,
    by_name: BTreeMap<String, Vec<Key>>,
    providers: BTreeMap<String, Vec<(Key, Option<String>)>>,
}

impl Universe {
    pub fn new(sources: Vec<SourceIndex>) -> Self {
        let mut by_name: BTreeMap<String, Vec<Key>> = BTreeMap::new();
        let mut providers: BTreeMap<String, Vec<(Key, Option<String>)>> = BTreeMap::new();
        for (s, source) in sources.iter().enumerate() {
            for (p, pkg) in source.packages.iter().enumerate() {
                by_name.entry(pkg.name.clone()).or_default().push((s, p));
                for provided in &pkg.provides {
                    let v = provided
                        .version
                        .as_ref()
                        .filter(|(op, _)| *op == Op::Eq)
                        .map(|(_, v)| v.clone());
                    providers.entry(provided.name.clone()).or_default().push(((s, p), v));
                }
            }
        }
        let mut universe = Self {
            sources,
            by_name,
            providers,
        };
        // Highest version first; ties keep source order (earlier sources win).
        let mut by_name = std::mem::take(&mut universe.by_name);
        for keys in by_name.values_mut() {
            keys.sort_by(|a, b| version::compare(&universe.get(*b).version, &universe.get(*a).version));
        }
        universe.by_name = by_name;
        universe
    }

    /// The package behind a key. Keys only come from this universe.
    pub fn get(&self, (s, p): Key) -> &Package {
        // Keys are built from these very vectors, so both lookups succeed; the fallback
        // only exists to keep indexing panic-free.
        self.sources
            .get(s)
            .and_then(|src| src.packages.get(p))
            .unwrap_or_else(|| empty_package())
    }

    /// Whether any source carries a real package of this name.
    pub fn has(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// The best real package named `name` satisfying `constraint`.
    fn best(&self, name: &str, constraint: Option<&(Op, String)>) -> Option<Key> {
        self.by_name
            .get(name)?
            .iter()
            .copied()
            .find(|k| ok(&self.get(*k).version, constraint))
    }

    /// Real packages providing `name` in a way that satisfies `constraint`, best first.
    fn providing(&self, name: &str, constraint: Option<&(Op, String)>) -> Vec<Key> {
        let mut found: Vec<Key> = self
            .providers
            .get(name)
            .map(|list| {
                list.iter()
                    .filter(|(_, v)| match (constraint, v) {
                        (None, _) => true,
                        (Some((op, want)), Some(v)) => version::satisfies(v, *op, want),
                        (Some(_), None) => false,
                    })
                    .map(|(k, _)| *k)
                    .collect()
            })
            .unwrap_or_default();
        found.sort_by(|a, b| {
            let (pa, pb) = (self.get(*a), self.get(*b));
            pa.name
                .cmp(&pb.name)
                .then_with(|| version::compare(&pb.version, &pa.version))
        });
        found
    }
}

fn empty_package() -> &'static Package {
    static EMPTY: std::sync::OnceLock<Package> = std::sync::OnceLock::new();
    EMPTY.get_or_init(|| Package {
        name: String::new(),
        version: String::new(),
        architecture: String::new(),
        multi_arch: None,
        source: String::new(),
        source_version: String::new(),
        filename: String::new(),
        size: 0,
        sha256: String::new(),
        installed_size: 0,
        pre_depends: None,
        depends: None,
        conflicts: None,
        breaks: None,
        provides: Vec::new(),
        stanza: String::new(),
    })
}

fn ok(version: &str, constraint: Option<&(Op, String)>) -> bool {
    constraint.is_none_or(|(op, want)| version::satisfies(version, *op, want))
}

/// A dependency left unsatisfied because every alternative is pruned.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Pruned {
    pub dependency: String,
    pub required_by: String,
    pub reason: String,
}

/// The closure.
#[derive(Debug, Clone)]
pub struct Resolution {
    /// Selected packages, sorted by name.
    pub packages: Vec<Key>,
    pub pruned: Vec<Pruned>,
    /// Optional roots no source carries.
    pub unavailable_optional: Vec<String>,
}

/// Resolves `roots` (required) and `optional` roots against `universe`. Prune rules apply
/// to dependencies only: a package asked for by name is always installed.
pub fn resolve(
    universe: &Universe,
    roots: &[String],
    optional: &[String],
    prune: &[Reasoned],
) -> Result<Resolution, Error> {
    let pruned_by = |name: &str| prune.iter().find(|r| matches(&r.pattern, name));
    let mut selected: BTreeMap<String, Key> = BTreeMap::new();
    let mut queue = VecDeque::new();
    let mut unavailable_optional = Vec::new();
    for (name, required) in roots
        .iter()
        .map(|r| (r, true))
        .chain(optional.iter().map(|r| (r, false)))
    {
        match universe.best(name, None) {
            Some(key) => {
                if selected.insert(name.clone(), key).is_none() {
                    queue.push_back(key);
                }
            }
            None if required => return Err(Error::NotFound(name.clone())),
            None => unavailable_optional.push(name.clone()),
        }
    }
    let mut pruned = Vec::new();
    while let Some(key) = queue.pop_front() {
        let pkg = universe.get(key);
        for dependency in relations(pkg, [pkg.pre_depends.as_deref(), pkg.depends.as_deref()])? {
            if satisfied(universe, &selected, &dependency) {
                continue;
            }
            let mut chosen = None;
            let mut clash = None;
            let mut all_pruned = true;
            for alt in &dependency {
                if pruned_by(&alt.name).is_some() {
                    continue;
                }
                all_pruned = false;
                if let Some(existing) = selected.get(&alt.name) {
                    // Chosen before at a version this alternative does not accept.
                    clash = Some(*existing);
                    continue;
                }
                let candidate = universe.best(&alt.name, alt.version.as_ref()).or_else(|| {
                    universe
                        .providing(&alt.name, alt.version.as_ref())
                        .into_iter()
                        .find(|k| pruned_by(&universe.get(*k).name).is_none())
                });
                if let Some(candidate) = candidate {
                    chosen = Some(candidate);
                    break;
                }
            }
            match chosen {
                Some(candidate) => {
                    let name = universe.get(candidate).name.clone();
                    if let Some(existing) = selected.get(&name) {
                        return Err(Error::VersionClash {
                            package: pkg.id(),
                            dependency: render(&dependency),
                            selected: universe.get(*existing).id(),
                        });
                    }
                    selected.insert(name, candidate);
                    queue.push_back(candidate);
                }
                None if clash.is_some() => {
                    return Err(Error::VersionClash {
                        package: pkg.id(),
                        dependency: render(&dependency),
                        selected: clash.map(|k| universe.get(k).id()).unwrap_or_default(),
                    });
                }
                None if all_pruned => {
                    let reason = dependency
                        .iter()
                        .filter_map(|a| pruned_by(&a.name))
                        .map(|r| r.reason.clone())
                        .next()
                        .unwrap_or_default();
                    pruned.push(Pruned {
                        dependency: render(&dependency),
                        required_by: pkg.name.clone(),
                        reason,
                    });
                }
                None => {
                    return Err(Error::Unsatisfiable {
                        package: pkg.id(),
                        dependency: render(&dependency),
                    });
                }
            }
        }
    }
    check_conflicts(universe, &selected)?;
    pruned.sort_by(|a, b| {
        a.dependency
            .cmp(&b.dependency)
            .then_with(|| a.required_by.cmp(&b.required_by))
    });
    pruned.dedup();
    Ok(Resolution {
        packages: selected.into_values().collect(),
        pruned,
        unavailable_optional,
    })
}

fn relations(pkg: &Package, fields: [Option<&str>; 2]) -> Result<Vec<Dependency>, Error> {
    let mut out = Vec::new();
    for field in fields.into_iter().flatten() {
        out.extend(relation::parse(field).map_err(|source| Error::Relation {
            package: pkg.id(),
            source,
        })?);
    }
    Ok(out)
}

/// Whether a selected package (real, or through Provides) already satisfies a dependency.
fn satisfied(universe: &Universe, selected: &BTreeMap<String, Key>, dependency: &Dependency) -> bool {
    dependency.iter().any(|alt| {
        let real = selected
            .get(&alt.name)
            .is_some_and(|key| ok(&universe.get(*key).version, alt.version.as_ref()));
        real || selected.values().any(|key| provides(universe.get(*key), alt))
    })
}

fn provides(pkg: &Package, alt: &Alternative) -> bool {
    pkg.provides.iter().any(|p| {
        p.name == alt.name
            && match (&alt.version, &p.version) {
                (None, _) => true,
                (Some((op, want)), Some((Op::Eq, v))) => version::satisfies(v, *op, want),
                _ => false,
            }
    })
}

fn check_conflicts(universe: &Universe, selected: &BTreeMap<String, Key>) -> Result<(), Error> {
    for key in selected.values() {
        let pkg = universe.get(*key);
        for (field, text) in [
            ("conflicts with", pkg.conflicts.as_deref()),
            ("breaks", pkg.breaks.as_deref()),
        ] {
            let Some(text) = text else { continue };
            let deps = relation::parse(text).map_err(|source| Error::Relation {
                package: pkg.id(),
                source,
            })?;
            for alt in deps.iter().flatten() {
                let clash = selected.values().map(|k| universe.get(*k)).find(|other| {
                    other.name != pkg.name
                        && ((other.name == alt.name && ok(&other.version, alt.version.as_ref()))
                            || (alt.version.is_none() && provides(other, alt)))
                });
                if let Some(other) = clash {
                    return Err(Error::Conflict {
                        package: pkg.id(),
                        field,
                        relation: render(&vec![alt.clone()]),
                        other: other.id(),
                    });
                }
            }
        }
    }
    Ok(())
}

fn render(dependency: &Dependency) -> String {
    dependency
        .iter()
        .map(|a| match &a.version {
            Some((op, v)) => {
                let op = match op {
                    Op::Lt => "<<",
                    Op::Le => "<=",
                    Op::Eq => "=",
                    Op::Ge => ">=",
                    Op::Gt => ">>",
                };
                format!("{} ({op} {v})", a.name)
            }
            None => a.name.clone(),
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

/// Orders two packages by name, then version (for stable outputs).
pub fn by_name_version(a: &Package, b: &Package) -> Ordering {
    a.name
        .cmp(&b.name)
        .then_with(|| version::compare(&a.version, &b.version))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::Provenance;
    use crate::spec::SourceSpec;

    fn stanza(name: &str, version: &str, extra: &str) -> String {
        format!(
            "Package: {name}\nVersion: {version}\nArchitecture: amd64\n{extra}Filename: pool/{name}_{version}.deb\nSize: 1\nSHA256: {}\n\n",
            "0".repeat(64)
        )
    }

    fn universe(suites: &[&str]) -> Universe {
        let sources = suites
            .iter()
            .enumerate()
            .map(|(i, text)| SourceIndex {
                provenance: Provenance {
                    repository: "test".into(),
                    suite: format!("s{i}"),
                    uri: String::new(),
                    inrelease_sha256: String::new(),
                    signed_by: String::new(),
                    date: None,
                    accepted_expired_since: None,
                },
                source: SourceSpec {
                    repository: "test".into(),
                    suite: format!("s{i}"),
                    components: vec!["main".into()],
                    optional: false,
                },
                packages: crate::debian::packages::parse(text).unwrap(),
            })
            .collect();
        Universe::new(sources)
    }

    fn names(u: &Universe, r: &Resolution) -> Vec<String> {
        r.packages
            .iter()
            .map(|k| format!("{}={}", u.get(*k).name, u.get(*k).version))
            .collect()
    }

    fn rule(pattern: &str) -> Reasoned {
        Reasoned {
            pattern: pattern.into(),
            reason: format!("no {pattern}"),
        }
    }

    #[test]
    fn follows_depends_alternatives_provides_and_prefers_the_highest_version() {
        let main = [
            stanza(
                "pg",
                "15.1",
                "Pre-Depends: libc (>= 2)\nDepends: locales | locales-all, debconf | debconf-2.0, libssl\n",
            ),
            stanza("libc", "2.36", ""),
            stanza("locales-all", "2.36", ""),
            stanza("libssl3t64", "3.4", "Provides: libssl (= 3.4)\n"),
        ]
        .concat();
        let updates = stanza("libc", "2.36-9+deb12u1", "");
        let u = universe(&[&main, &updates]);
        let r = resolve(&u, &["pg".into()], &[], &[rule("locales"), rule("debconf*")]).unwrap();
        assert_eq!(
            names(&u, &r),
            ["libc=2.36-9+deb12u1", "libssl3t64=3.4", "locales-all=2.36", "pg=15.1"]
        );
        assert_eq!(r.pruned.len(), 1);
        assert_eq!(r.pruned[0].dependency, "debconf | debconf-2.0");
        assert_eq!(r.pruned[0].required_by, "pg");
    }

    #[test]
    fn a_missing_dependency_names_the_package_and_the_relation() {
        let u = universe(&[&stanza("pg", "15", "Depends: libicu72 (>= 72)\n")]);
        let err = resolve(&u, &["pg".into()], &[], &[]).unwrap_err().to_string();
        assert!(err.contains("pg 15 amd64") && err.contains("libicu72 (>= 72)"), "{err}");
        assert!(
            resolve(&u, &["nope".into()], &[], &[])
                .unwrap_err()
                .to_string()
                .contains("`nope`")
        );
    }

    #[test]
    fn optional_roots_may_be_absent_and_named_roots_win_over_prunes() {
        let u = universe(&[&[
            stanza("pg", "15", "Depends: locales-all\n"),
            stanza("locales-all", "1", ""),
        ]
        .concat()]);
        let r = resolve(&u, &["pg".into()], &["pgvector".into()], &[]).unwrap();
        assert_eq!(r.unavailable_optional, ["pgvector"]);
        let pruned = resolve(&u, &["pg".into()], &[], &[rule("locales-all")]).unwrap();
        assert_eq!(names(&u, &pruned), ["pg=15"]);
        let asked = resolve(&u, &["pg".into(), "locales-all".into()], &[], &[rule("locales-all")]).unwrap();
        assert_eq!(names(&u, &asked), ["locales-all=1", "pg=15"]);
    }

    #[test]
    fn conflicts_and_version_clashes_are_reported() {
        let text = [
            stanza("a", "1", "Depends: b, c\n"),
            stanza("b", "1", "Conflicts: c (<< 2)\n"),
            stanza("c", "1", ""),
        ]
        .concat();
        let u = universe(&[&text]);
        let err = resolve(&u, &["a".into()], &[], &[]).unwrap_err().to_string();
        assert!(err.contains("conflicts with") && err.contains("c 1 amd64"), "{err}");

        let text = [
            stanza("a", "1", "Depends: b (>= 2)\n"),
            stanza("b", "1", ""),
            stanza("r", "1", "Depends: b\n"),
        ]
        .concat();
        let u = universe(&[&text]);
        let err = resolve(&u, &["r".into(), "a".into()], &[], &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("b (>= 2)") && err.contains("b 1 amd64"), "{err}");
    }
}
