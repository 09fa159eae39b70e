//! Monitoring queries in CloudNativePG's format (the `queries` key of `cnpg-default-monitoring`
//! and of custom ConfigMaps) and their Prometheus text exposition, as pure functions: parse
//! the YAML, decide which queries apply to an instance, turn result rows into samples, render
//! them. Running the SQL is the exporter's job.
//!
//! A metric is named `cnpg_<query>_<column>` (either part overridable with `name`); LABEL
//! columns become labels of every other column's sample.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Deserialize;

/// How a column is exposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Usage {
    Label,
    Gauge,
    Counter,
    Discard,
    /// A duration in milliseconds, exposed as a gauge.
    Duration,
    /// A text value mapped to a number through `metric_mapping`.
    Mappedmetric,
    /// Not supported: the query is refused with a counted error.
    Histogram,
}

/// One column of a query.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Metric {
    pub usage: Usage,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub metric_mapping: BTreeMap<String, f64>,
    /// Overrides the column part of the metric name.
    pub name: Option<String>,
}

/// One query.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Query {
    pub query: String,
    /// Columns in order, each with how it is exposed.
    pub metrics: Vec<BTreeMap<String, Metric>>,
    /// Runs on the primary only.
    #[serde(default)]
    pub primary: bool,
    /// The legacy spelling of `primary`.
    #[serde(default)]
    pub master: bool,
    /// A version range such as `>=17.0.0` or `>=12.0.0 <17.0.0`.
    pub runonserver: Option<String>,
    /// Databases to run in (`*`: every database that accepts connections); the `postgres`
    /// database when empty.
    #[serde(default)]
    pub target_databases: Vec<String>,
    /// Overrides the query part of the metric name.
    pub name: Option<String>,
    /// Accepted for compatibility; every scrape runs the query.
    pub cache_seconds: Option<u64>,
}

/// The YAML is not a queries document.
#[derive(Debug, thiserror::Error)]
#[error("failed to read monitoring queries")]
pub struct Error(#[source] serde_saphyr::Error);

/// Parses a queries document (top-level map: query name → query).
pub fn parse(yaml: &str) -> Result<BTreeMap<String, Query>, Error> {
    serde_saphyr::from_str(yaml).map_err(Error)
}

/// Whether `version` (`server_version_num`, e.g. 170004) satisfies `range`: blank-separated
/// `>=`, `>`, `<=`, `<`, `=` comparisons against `major.minor.patch`.
pub fn in_range(range: &str, version: u32) -> bool {
    let (major, minor) = (version / 10000, version % 10000);
    let ours = (major, minor, 0u32);
    range.split_whitespace().all(|clause| {
        let (op, rest) = [">=", "<=", ">", "<", "="]
            .iter()
            .find_map(|op| clause.strip_prefix(op).map(|rest| (*op, rest)))
            .unwrap_or(("=", clause));
        let mut parts = rest.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        let theirs = (
            parts.next().unwrap_or(0),
            parts.next().unwrap_or(0),
            parts.next().unwrap_or(0),
        );
        match op {
            ">=" => ours >= theirs,
            "<=" => ours <= theirs,
            ">" => ours > theirs,
            "<" => ours < theirs,
            _ => ours == theirs,
        }
    })
}

impl Query {
    /// Whether this query runs on an instance of `version` that is (or is not) the primary.
    pub fn applies(&self, version: u32, primary: bool) -> bool {
        (primary || !(self.primary || self.master)) && self.runonserver.as_deref().is_none_or(|r| in_range(r, version))
    }

    fn columns(&self) -> impl Iterator<Item = (&String, &Metric)> {
        self.metrics.iter().flat_map(|m| m.iter())
    }
}

/// Prometheus metric kinds we emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    Counter,
}

/// One sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub help: String,
    pub kind: Kind,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

fn number(text: &str) -> Option<f64> {
    match text {
        "t" | "true" => Some(1.0),
        "f" | "false" => Some(0.0),
        other => other.parse().ok(),
    }
}

/// The samples of one query's rows. `columns` are the result's column names; a row holds
/// each column's text (None for NULL). A NULL or non-numeric value skips that sample.
pub fn samples(
    query_name: &str,
    query: &Query,
    columns: &[String],
    rows: &[Vec<Option<String>>],
) -> Result<Vec<Sample>, String> {
    let prefix = query.name.as_deref().unwrap_or(query_name);
    if let Some((column, _)) = query.columns().find(|(_, m)| m.usage == Usage::Histogram) {
        return Err(format!("{query_name}.{column}: HISTOGRAM columns are not supported"));
    }
    let index = |column: &str| columns.iter().position(|c| c == column);
    for (column, _) in query.columns() {
        if index(column).is_none() {
            return Err(format!("{query_name}: the query returns no column {column:?}"));
        }
    }
    let mut out = Vec::new();
    for row in rows {
        let value_of = |column: &str| index(column).and_then(|i| row.get(i)).and_then(Clone::clone);
        let labels: Vec<(String, String)> = query
            .columns()
            .filter(|(_, m)| m.usage == Usage::Label)
            .map(|(column, m)| {
                (
                    m.name.clone().unwrap_or_else(|| column.clone()),
                    value_of(column).unwrap_or_default(),
                )
            })
            .collect();
        for (column, metric) in query.columns() {
            let kind = match metric.usage {
                Usage::Counter => Kind::Counter,
                Usage::Gauge | Usage::Duration | Usage::Mappedmetric => Kind::Gauge,
                Usage::Label | Usage::Discard | Usage::Histogram => continue,
            };
            let Some(text) = value_of(column) else { continue };
            let value = match metric.usage {
                Usage::Mappedmetric => metric.metric_mapping.get(&text).copied(),
                Usage::Duration => number(&text).map(|ms| ms / 1000.0),
                _ => number(&text),
            };
            let Some(value) = value else { continue };
            out.push(Sample {
                name: format!("cnpg_{prefix}_{}", metric.name.as_deref().unwrap_or(column)),
                help: metric.description.clone(),
                kind,
                labels: labels.clone(),
                value,
            });
        }
    }
    Ok(out)
}

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The text exposition format: samples grouped by name, one HELP and TYPE line per family.
pub fn exposition(samples: &[Sample]) -> String {
    let mut families: BTreeMap<&str, Vec<&Sample>> = BTreeMap::new();
    for sample in samples {
        families.entry(sample.name.as_str()).or_default().push(sample);
    }
    let mut out = String::new();
    for (name, samples) in families {
        let Some(first) = samples.first() else { continue };
        let kind = match first.kind {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
        };
        let help = first.help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for sample in samples {
            out.push_str(name);
            if !sample.labels.is_empty() {
                let labels: Vec<String> = sample
                    .labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                    .collect();
                let _ = write!(out, "{{{}}}", labels.join(","));
            }
            let _ = writeln!(out, " {}", sample.value);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = r#"
backends:
  query: SELECT datname, state, total FROM x
  metrics:
    - datname: {usage: LABEL, description: Database}
    - state: {usage: LABEL, description: State}
    - total: {usage: GAUGE, description: "Backends"}
archiver:
  query: SELECT archived_count, last_age FROM y
  primary: true
  runonserver: ">=16.0.0 <18.0.0"
  metrics:
    - archived_count: {usage: COUNTER, description: Archived}
    - last_age: {usage: DURATION, description: Age}
mode:
  name: sync
  query: SELECT state FROM z
  metrics:
    - state: {usage: MAPPEDMETRIC, description: Mode, name: mode, metric_mapping: {async: 0, sync: 1}}
"#;

    fn owned(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn columns_become_named_samples_with_labels() {
        let queries = parse(YAML).unwrap();
        let backends = &queries["backends"];
        let rows = vec![
            vec![Some("app".into()), Some("idle".into()), Some("3".into())],
            vec![Some("a\"b".into()), Some("active".into()), None],
        ];
        let samples = samples("backends", backends, &owned(&["datname", "state", "total"]), &rows).unwrap();
        assert_eq!(samples.len(), 1, "a NULL value yields no sample");
        assert_eq!(samples[0].name, "cnpg_backends_total");
        assert_eq!(
            samples[0].labels,
            vec![("datname".into(), "app".into()), ("state".into(), "idle".into())]
        );
        let text = exposition(&samples);
        assert_eq!(
            text,
            "# HELP cnpg_backends_total Backends\n# TYPE cnpg_backends_total gauge\ncnpg_backends_total{datname=\"app\",state=\"idle\"} 3\n"
        );
        let mapped = samples_of(&queries, "mode", &["state"], &[&["sync"]]);
        assert_eq!((mapped[0].name.as_str(), mapped[0].value), ("cnpg_sync_mode", 1.0));
        let archiver = samples_of(&queries, "archiver", &["archived_count", "last_age"], &[&["7", "1500"]]);
        assert_eq!(archiver[0].kind, Kind::Counter);
        assert!(
            (archiver[1].value - 1.5).abs() < f64::EPSILON,
            "milliseconds become seconds"
        );
    }

    fn samples_of(queries: &BTreeMap<String, Query>, name: &str, columns: &[&str], rows: &[&[&str]]) -> Vec<Sample> {
        let rows: Vec<Vec<Option<String>>> = rows
            .iter()
            .map(|r| r.iter().map(|v| Some((*v).to_owned())).collect())
            .collect();
        samples(name, &queries[name], &owned(columns), &rows).unwrap()
    }

    #[test]
    fn primary_only_and_version_ranges_decide_where_a_query_runs() {
        let queries = parse(YAML).unwrap();
        let archiver = &queries["archiver"];
        assert!(archiver.applies(170002, true));
        assert!(!archiver.applies(170002, false), "primary only");
        assert!(!archiver.applies(150008, true), "below the range");
        assert!(!archiver.applies(180000, true), "above the range");
        assert!(queries["backends"].applies(150008, false));
    }

    #[test]
    fn a_missing_column_or_a_histogram_is_an_error_naming_it() {
        let queries = parse(YAML).unwrap();
        let err = samples("backends", &queries["backends"], &owned(&["datname"]), &[]).unwrap_err();
        assert!(err.contains("\"state\""), "{err}");
        let histogram = parse("h:\n  query: SELECT 1\n  metrics:\n    - x: {usage: HISTOGRAM}\n").unwrap();
        let err = samples("h", &histogram["h"], &owned(&["x"]), &[]).unwrap_err();
        assert!(err.contains("HISTOGRAM"), "{err}");
        assert!(parse("not: [a, map").is_err());
    }

    #[test]
    fn the_shipped_default_queries_parse() {
        let path = std::path::PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap())
            .join("../../deploy/monitoring/default-monitoring.yaml");
        let config_map: serde_json::Value = serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let queries = parse(config_map["data"]["queries"].as_str().unwrap()).unwrap();
        assert!(queries.len() >= 7);
    }
}
