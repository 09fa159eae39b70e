//! Every CI/CD step calls a script from `scripts/` (or checks out the code with an action
//! pinned by commit), so what CI does is exactly what a developer runs locally.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "integration test helpers: a failed unwrap is a failed assertion"
)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;

use cnpg_conformance::{read, repo_root};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Workflow {
    /// Trigger name → its settings (`null` for `push:` without filters).
    on: BTreeMap<String, serde_json::Value>,
    permissions: Option<BTreeMap<String, String>>,
    jobs: BTreeMap<String, Job>,
}

#[derive(Debug, Deserialize)]
struct Job {
    #[serde(rename = "timeout-minutes")]
    timeout_minutes: Option<u32>,
    steps: Vec<Step>,
}

#[derive(Debug, Deserialize)]
struct Step {
    name: Option<String>,
    uses: Option<String>,
    run: Option<String>,
}

/// Actions a step may use instead of a script, pinned by full commit hash.
const ALLOWED_ACTIONS: &[&str] = &["actions/checkout"];

/// Why a step is not acceptable, or `None` when it is.
fn step_problem(step: &Step) -> Option<String> {
    match (&step.uses, &step.run) {
        (Some(uses), None) => {
            let (action, rev) = uses.split_once('@')?;
            if !ALLOWED_ACTIONS.contains(&action) {
                return Some(format!(
                    "uses `{action}`: only {ALLOWED_ACTIONS:?} may replace a script"
                ));
            }
            let pinned = rev.len() == 40 && rev.bytes().all(|b| b.is_ascii_hexdigit());
            (!pinned).then(|| format!("`{uses}` is not pinned to a full commit hash"))
        }
        (None, Some(run)) => {
            let command = run.trim();
            if command.contains('\n') || command.contains("&&") || command.contains(';') || command.contains('|') {
                return Some(format!("`{command}` is inline logic: move it into a script"));
            }
            let script = command.split_whitespace().next().unwrap_or_default();
            if !script.starts_with("scripts/") || !script.ends_with(".sh") {
                return Some(format!("`{command}` does not call a script from scripts/"));
            }
            let path = repo_root().join(script);
            let executable = std::fs::metadata(&path).map(|m| m.permissions().mode() & 0o111 != 0);
            match executable {
                Ok(true) => None,
                Ok(false) => Some(format!("{script} is not executable")),
                Err(_) => Some(format!("{script} does not exist")),
            }
        }
        _ => Some("a step has both or neither of `uses` and `run`".to_owned()),
    }
}

fn workflow(name: &str) -> Workflow {
    serde_saphyr::from_str(&read(format!("pipelines/{name}.yml")).unwrap())
        .unwrap_or_else(|e| panic!("pipelines/{name}.yml: {e}"))
}

#[test]
fn every_step_of_every_pipeline_calls_a_script() {
    let mut problems = Vec::new();
    let mut files = 0;
    for entry in std::fs::read_dir(repo_root().join("pipelines")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yml") {
            continue;
        }
        files += 1;
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let wf = workflow(&stem);
        assert!(
            wf.permissions
                .as_ref()
                .is_some_and(|p| p.get("contents").is_some_and(|v| v == "read")),
            "{stem}: the token must default to `contents: read`"
        );
        for (job_name, job) in &wf.jobs {
            assert!(
                job.timeout_minutes.is_some_and(|t| t <= 60),
                "{stem}/{job_name}: no timeout-minutes ≤ 60"
            );
            assert!(!job.steps.is_empty(), "{stem}/{job_name}: no steps");
            for step in &job.steps {
                if let Some(p) = step_problem(step) {
                    problems.push(format!(
                        "{stem}/{job_name}/{}: {p}",
                        step.name.as_deref().unwrap_or("?")
                    ));
                }
            }
        }
    }
    assert!(files >= 3, "expected the ci, images and rebuild pipelines");
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn ci_runs_on_every_push_and_pull_request() {
    let ci = workflow("ci");
    assert_eq!(
        ci.on.get("push"),
        Some(&serde_json::Value::Null),
        "ci runs on every push, unfiltered"
    );
    assert!(ci.on.contains_key("pull_request"), "ci runs on every pull request");
}

#[test]
fn images_build_from_main_only_and_rebuild_runs_daily() {
    let images = workflow("images");
    let branches = images.on.get("push").and_then(|p| p.get("branches")).cloned();
    assert_eq!(
        branches,
        Some(serde_json::json!(["main"])),
        "images are built from main only"
    );

    let rebuild = workflow("rebuild");
    let schedule = rebuild
        .on
        .get("schedule")
        .and_then(|s| s.as_array())
        .cloned()
        .unwrap_or_default();
    assert_eq!(schedule.len(), 1, "one daily schedule");
    let cron = schedule[0]["cron"].as_str().unwrap();
    let fields: Vec<&str> = cron.split_whitespace().collect();
    assert_eq!(fields.len(), 5, "{cron}");
    assert!(
        fields[2..].iter().all(|f| *f == "*"),
        "every day of every month: {cron}"
    );
}

#[test]
fn the_step_checker_rejects_inline_logic_and_unpinned_actions() {
    let run = |s: &str| Step {
        name: None,
        uses: None,
        run: Some(s.to_owned()),
    };
    let uses = |s: &str| Step {
        name: None,
        uses: Some(s.to_owned()),
        run: None,
    };
    assert!(step_problem(&run("scripts/test.sh")).is_none());
    assert!(step_problem(&run("cargo test")).is_some());
    assert!(step_problem(&run("scripts/test.sh && rm -rf /")).is_some());
    assert!(step_problem(&run("scripts/test.sh\ncurl x | sh")).is_some());
    assert!(step_problem(&run("scripts/absent.sh")).is_some());
    assert!(step_problem(&uses("actions/checkout@v4")).is_some());
    assert!(step_problem(&uses("someone/action@11bd71901bbe5b1630ceea73d27597364c9af683")).is_some());
    assert!(step_problem(&uses("actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683")).is_none());
}
