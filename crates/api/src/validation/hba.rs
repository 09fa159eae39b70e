//! `pg_hba.conf` and `pg_ident.conf` lines from the user: one rule each, with a known
//! connection type, a valid address and a known method. Include directives and `@file`
//! lists are refused (they read files the user does not control), and so is any line break
//! or control character (it would smuggle in a second rule).

use std::net::IpAddr;

use super::has_control;

/// Whose `hba` file a line goes to: PostgreSQL's or PgBouncer's (fewer types and methods).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Postgres,
    PgBouncer,
}

impl Flavor {
    fn types(self) -> &'static [&'static str] {
        match self {
            Self::Postgres => &["local", "host", "hostssl", "hostnossl", "hostgssenc", "hostnogssenc"],
            Self::PgBouncer => &["local", "host", "hostssl", "hostnossl"],
        }
    }

    fn methods(self) -> &'static [&'static str] {
        match self {
            Self::Postgres => &[
                "trust",
                "reject",
                "scram-sha-256",
                "md5",
                "password",
                "gss",
                "sspi",
                "ident",
                "peer",
                "ldap",
                "radius",
                "cert",
                "pam",
                "bsd",
                "oauth",
            ],
            Self::PgBouncer => &["trust", "reject", "md5", "password", "peer", "cert", "scram-sha-256"],
        }
    }
}

/// The `pg_ident` maps the operator writes itself; user lines may not extend them.
pub const RESERVED_MAPS: [&str; 4] = [
    "local",
    "cnpg_streaming_replica",
    "cnpg_pooler_pgbouncer",
    "cnpg_metrics_exporter",
];

/// Splits a line into tokens the way PostgreSQL does: blanks separate, double quotes group,
/// `#` outside quotes starts a comment. Quoted tokens keep their quotes.
fn tokens(line: &str) -> Result<Vec<String>, String> {
    if has_control(line) {
        return Err("holds a line break or another control character: write one rule per entry".into());
    }
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            '#' if !quoted => break,
            ' ' if !quoted => {
                if !current.is_empty() {
                    tokens.push(std::mem::take(&mut current));
                }
            }
            _ => current.push(c),
        }
    }
    if quoted {
        return Err("has an unterminated quote".into());
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    match tokens.first() {
        None => return Err("holds no rule".into()),
        Some(first) if first.starts_with("include") => return Err(format!("`{first}` directives are not allowed")),
        Some(_) => {}
    }
    Ok(tokens)
}

/// A database or user list: comma-separated, no `@file` inclusion.
fn check_list(field: &str, token: &str) -> Result<(), String> {
    if token.split(',').any(|item| item.is_empty()) {
        return Err(format!("the {field} list {token:?} has an empty element"));
    }
    if token.split(',').any(|item| item.starts_with('@')) {
        return Err(format!(
            "the {field} list {token:?} reads a file (`@…`), which is not allowed"
        ));
    }
    Ok(())
}

fn check_address(token: &str, flavor: Flavor) -> Result<(), String> {
    if let Some((ip, bits)) = token.split_once('/') {
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| format!("{token:?} is not a valid CIDR address"))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        return match bits.parse::<u8>() {
            Ok(n) if n <= max => Ok(()),
            _ => Err(format!("{token:?} has a prefix length outside 0..={max}")),
        };
    }
    if matches!(token, "all" | "samehost" | "samenet") {
        return Ok(());
    }
    if flavor == Flavor::Postgres
        && let Some(name) = token.strip_prefix("${podselector:").and_then(|t| t.strip_suffix('}'))
    {
        return super::names::dns_1123_label(name, 63).map_err(|e| format!("pod selector reference: {e}"));
    }
    let host = token.strip_prefix('.').unwrap_or(token);
    let host_ok = !host.is_empty()
        && host
            .split('.')
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    if host_ok {
        Ok(())
    } else {
        Err(format!("{token:?} is not an address, a CIDR range or a host name"))
    }
}

/// Checks one `pg_hba` line.
pub fn check_hba(line: &str, flavor: Flavor) -> Result<(), String> {
    let tokens = tokens(line)?;
    let mut rest = tokens.iter().map(String::as_str);
    let kind = rest.next().unwrap_or_default();
    if !flavor.types().contains(&kind) {
        return Err(format!(
            "{kind:?} is not a connection type: use one of {}",
            flavor.types().join(", ")
        ));
    }
    let (Some(database), Some(user)) = (rest.next(), rest.next()) else {
        return Err("is incomplete: expected `type database user [address] method [options]`".into());
    };
    check_list("database", database)?;
    check_list("user", user)?;
    if kind != "local" {
        let address = rest.next().ok_or("has no address")?;
        check_address(address, flavor)?;
        if address.parse::<IpAddr>().is_ok() {
            let mask = rest
                .next()
                .ok_or("gives an IP address without a prefix length or a netmask")?;
            mask.parse::<IpAddr>()
                .map_err(|_| format!("{mask:?} is not a netmask"))?;
        }
    }
    let method = rest.next().ok_or("has no authentication method")?;
    if !flavor.methods().contains(&method) {
        return Err(format!(
            "{method:?} is not an authentication method: use one of {}",
            flavor.methods().join(", ")
        ));
    }
    if method == "peer" && kind != "local" {
        return Err("`peer` authentication works on local connections only".into());
    }
    if let Some(option) = rest.find(|o| !o.contains('=')) {
        return Err(format!("the option {option:?} is not of the form name=value"));
    }
    Ok(())
}

/// Checks one `pg_ident` line: `map system-user database-user`.
pub fn check_ident(line: &str) -> Result<(), String> {
    let tokens = tokens(line)?;
    let [map, _, database_user] = tokens.as_slice() else {
        return Err(format!(
            "has {} fields: expected `map system-user database-user`",
            tokens.len()
        ));
    };
    if RESERVED_MAPS.contains(&map.as_str()) {
        return Err(format!("the map {map:?} belongs to the operator"));
    }
    if database_user.starts_with('@') {
        return Err("a database user of the form `@…` reads a file, which is not allowed".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_rules_people_write() {
        for line in [
            "host all all 10.244.0.0/16 scram-sha-256",
            "hostssl app app 0.0.0.0/0 cert clientcert=verify-full",
            "hostssl all all ::1/128 scram-sha-256",
            "host all all 192.168.1.0 255.255.255.0 md5",
            "host \"my db\" \"app user\" .svc.cluster.local scram-sha-256 # trailing comment",
            "local all all peer map=app",
            "host all all ${podselector:apps} scram-sha-256",
            "host all app,analytics samenet reject",
            "hostgssenc all all all gss include_realm=0",
        ] {
            assert_eq!(check_hba(line, Flavor::Postgres), Ok(()), "{line}");
        }
        assert_eq!(
            check_hba("host all all 0.0.0.0/0 scram-sha-256", Flavor::PgBouncer),
            Ok(())
        );
    }

    #[test]
    fn refuses_what_postgres_would_misread_or_should_not_read() {
        for (line, why) in [
            ("host all all 0.0.0.0/0 trust\nhost all all all trust", "line break"),
            ("host all all 0.0.0.0/0 md5\r", "control character"),
            ("include /etc/passwd", "directives are not allowed"),
            ("include_dir /tmp", "directives are not allowed"),
            ("hots all all all md5", "not a connection type"),
            ("host all all 10.0.0.0/33 md5", "prefix length"),
            ("host all all 300.0.0.1/32 md5", "not a valid CIDR"),
            ("host all all 10.0.0.1 md5", "not a netmask"),
            ("host all all 10.0.0.0/8 magic", "not an authentication method"),
            ("host all all 10.0.0.0/8", "no authentication method"),
            ("host all @/etc/users 10.0.0.0/8 md5", "reads a file"),
            ("host all a,,b 10.0.0.0/8 md5", "empty element"),
            ("host all all 10.0.0.0/8 peer", "local connections only"),
            ("host all all 10.0.0.0/8 ldap ldapserver", "name=value"),
            ("host \"all all 10.0.0.0/8 md5", "unterminated quote"),
            ("# just a comment", "holds no rule"),
            ("host all", "incomplete"),
            ("host all all my_host! md5", "not an address"),
        ] {
            let err = check_hba(line, Flavor::Postgres).unwrap_err();
            assert!(err.contains(why), "{line:?}: {err}");
        }
        let err = check_hba("hostgssenc all all all md5", Flavor::PgBouncer).unwrap_err();
        assert!(err.contains("not a connection type"), "{err}");
        let err = check_hba("host all all all gss", Flavor::PgBouncer).unwrap_err();
        assert!(err.contains("not an authentication method"), "{err}");
        let err = check_hba("host all all ${podselector:x} md5", Flavor::PgBouncer).unwrap_err();
        assert!(err.contains("not an address"), "{err}");
    }

    #[test]
    fn ident_lines_map_one_user_each() {
        assert_eq!(check_ident("app /^(.*)@example$ \\1"), Ok(()));
        assert_eq!(check_ident("app alice alice"), Ok(()));
        for (line, why) in [
            ("app alice", "expected `map system-user database-user`"),
            ("local root postgres", "belongs to the operator"),
            ("app alice alice\napp bob postgres", "line break"),
            ("app alice @admins", "reads a file"),
            ("include_if_exists other", "directives are not allowed"),
        ] {
            let err = check_ident(line).unwrap_err();
            assert!(err.contains(why), "{line:?}: {err}");
        }
    }
}
