//! The observability package as tests see it: the metric names zookube's
//! Grafana dashboard and Prometheus alerts query (`charts/zookube/monitoring/`),
//! the names the README documents, and the names a `/metrics` exposition
//! really carries. The sidecar's and the operator's tests hold them against
//! each other, so no panel or alert can query a metric the code does not
//! export and the README lists exactly what is exported.
//!
//! ```
//! use zk_testkit::monitoring::{Exposition, check_names};
//! let exposition = Exposition::parse("# TYPE zookube_leader_myid gauge\nzookube_leader_myid 3\n");
//! assert!(exposition.sample_names().contains("zookube_leader_myid"));
//! // Only the names this exposition owns are checked; here none is.
//! check_names("an empty owner", &exposition, |_| false).unwrap();
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The dashboard, relative to the repository's root.
pub const DASHBOARD: &str = "charts/zookube/monitoring/dashboard.json";
/// The alerting rules (one source for Prometheus and the chart's PrometheusRule).
pub const ALERTS: &str = "charts/zookube/monitoring/alerts.yaml";
/// The `promtool test rules` unit tests of the alerts.
pub const ALERTS_TESTS: &str = "monitoring/alerts.test.yaml";
/// The example scrape configuration (annotation-based pod discovery).
pub const SCRAPE_CONFIG: &str = "monitoring/prometheus.yaml";
pub const README: &str = "README.md";

/// Target labels whose names look like metric names: relabelling sets
/// them, the code does not export them.
pub const TARGET_LABELS: [&str; 1] = ["zookube_cluster"];

/// The repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A file of the repository, by its path from the root.
pub fn repo_file(path: &str) -> String {
    let full = repo_root().join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("read {}: {e}", full.display()))
}

/// Every `zookube_…` name in `text` except the target labels and prefixes
/// written as such (`zookube_operator_*`).
pub fn zookube_names(text: &str) -> BTreeSet<String> {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("zookube_") {
        let preceded_by_word = rest[..at].chars().next_back().is_some_and(word);
        let tail = &rest[at..];
        let end = tail.find(|c: char| !word(c)).unwrap_or(tail.len());
        let name = &tail[..end];
        if !preceded_by_word && !name.ends_with('_') && !TARGET_LABELS.contains(&name) {
            names.insert(name.to_owned());
        }
        rest = &tail[end..];
    }
    names
}

/// The names the dashboard and the alerts query.
pub fn queried_names() -> BTreeMap<String, &'static str> {
    let mut names = BTreeMap::new();
    for file in [DASHBOARD, ALERTS] {
        for name in zookube_names(&repo_file(file)) {
            names.entry(name).or_insert(file);
        }
    }
    names
}

/// The metric families of a Prometheus text exposition (classic or
/// OpenMetrics), from its `# TYPE` lines. prometheus-client leaves out a
/// labelled family until it has a child: touch each one before encoding.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exposition {
    /// Family name → type (`gauge`, `counter`, `histogram`, …).
    pub families: BTreeMap<String, String>,
}

impl Exposition {
    pub fn parse(text: &str) -> Exposition {
        let families = text
            .lines()
            .filter_map(|line| line.strip_prefix("# TYPE "))
            .filter_map(|rest| {
                let (name, kind) = rest.split_once(' ')?;
                Some((name.to_owned(), kind.trim().to_owned()))
            })
            .collect();
        Exposition { families }
    }

    /// The series names Prometheus stores, the names a query can use: a
    /// gauge's own, a counter's `_total` (OpenMetrics names the family
    /// without it), a histogram's `_bucket`, `_sum` and `_count`.
    pub fn sample_names(&self) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        for (name, kind) in &self.families {
            let suffixes: &[&str] = match kind.as_str() {
                "counter" => &["_total"],
                "histogram" | "gaugehistogram" => &["_bucket", "_sum", "_count"],
                "summary" => &["", "_sum", "_count"],
                "info" => &["_info"],
                _ => &[""],
            };
            for suffix in suffixes {
                if *suffix == "_total" && name.ends_with("_total") {
                    names.insert(name.clone()); // the classic format's counter line
                } else {
                    names.insert(format!("{name}{suffix}"));
                }
            }
        }
        names
    }

    /// How the README names each family: a counter by its `_total` series,
    /// a histogram and anything else by the family name.
    pub fn documented_names(&self) -> BTreeSet<String> {
        self.families
            .iter()
            .map(|(name, kind)| match kind.as_str() {
                "counter" if !name.ends_with("_total") => format!("{name}_total"),
                _ => name.clone(),
            })
            .collect()
    }
}

/// Holds the dashboard, the alerts and the README against an exposition,
/// for the names `owns` says belong to it (the sidecar's, or the
/// operator's `zookube_operator_…`): every queried name is a series it
/// exports, every name the README lists is one of its families or series,
/// and every family it exports is in the README. The error lists every
/// problem.
pub fn check_names(
    owner: &str,
    exposition: &Exposition,
    owns: impl Fn(&str) -> bool,
) -> Result<(), String> {
    let series = exposition.sample_names();
    let mut problems = Vec::new();
    for (name, file) in queried_names() {
        if owns(&name) && !series.contains(&name) {
            problems.push(format!("{file} uses {name}, which {owner} does not export"));
        }
    }
    let documented = zookube_names(&repo_file(README));
    for name in documented.iter().filter(|n| owns(n)) {
        if !series.contains(name) && !exposition.families.contains_key(name) {
            problems.push(format!(
                "{README} lists {name}, which {owner} does not export"
            ));
        }
    }
    for name in exposition.documented_names() {
        if owns(&name) && !documented.contains(&name) {
            problems.push(format!(
                "{owner} exports {name}, which {README} does not list"
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}\n(series {owner} exports: {})",
            problems.join("\n"),
            series.into_iter().collect::<Vec<_>>().join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_found_in_queries_and_prose_but_labels_and_prefixes_are_not() {
        let names = zookube_names(
            r#"max by (zookube_cluster) (zookube_leader_myid{zookube_cluster="$cluster"}) and zookube_operator_* but not my_zookube_thing; `zookube_elections_total`."#,
        );
        assert_eq!(
            names.into_iter().collect::<Vec<_>>(),
            ["zookube_elections_total", "zookube_leader_myid"]
        );
    }

    #[test]
    fn series_names_follow_the_family_type() {
        let exposition = Exposition::parse(
            "# HELP zookube_elections x\n# TYPE zookube_elections counter\nzookube_elections_total 1\n\
             # TYPE zookube_election_duration_seconds histogram\n\
             # TYPE zookube_leader_myid gauge\n\
             # TYPE old_style_total counter\n",
        );
        assert_eq!(
            exposition.sample_names().into_iter().collect::<Vec<_>>(),
            [
                "old_style_total",
                "zookube_election_duration_seconds_bucket",
                "zookube_election_duration_seconds_count",
                "zookube_election_duration_seconds_sum",
                "zookube_elections_total",
                "zookube_leader_myid",
            ]
        );
        assert!(
            exposition
                .documented_names()
                .contains("zookube_elections_total")
        );
        assert!(
            exposition
                .documented_names()
                .contains("zookube_election_duration_seconds")
        );
    }

    fn dashboard() -> serde_json::Value {
        serde_json::from_str(&repo_file(DASHBOARD)).expect("the dashboard is JSON")
    }

    /// The selector right after each `name` in `expr` (`""` when none).
    fn selectors_of<'a>(expr: &'a str, name: &str) -> Vec<&'a str> {
        let mut found = Vec::new();
        let mut rest = expr;
        while let Some(at) = rest.find(name) {
            let after = &rest[at + name.len()..];
            if after.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
                rest = after; // a longer name
                continue;
            }
            let selector = after
                .strip_prefix('{')
                .and_then(|s| s.split_once('}'))
                .map_or("", |(inside, _)| inside);
            found.push(selector);
            rest = after;
        }
        found
    }

    #[test]
    fn the_dashboard_selects_every_cluster_series_by_namespace_and_cluster() {
        let dashboard = dashboard();
        let mut problems = Vec::new();
        for panel in dashboard["panels"].as_array().expect("panels") {
            let title = panel["title"].as_str().unwrap_or_default();
            for target in panel["targets"].as_array().into_iter().flatten() {
                let expr = target["expr"].as_str().unwrap_or_default();
                for name in zookube_names(expr) {
                    for selector in selectors_of(expr, &name) {
                        let cluster_series = !name.starts_with("zookube_operator_");
                        let selected = selector.contains(r#"namespace="$namespace""#)
                            && selector.contains(r#"zookube_cluster="$cluster""#);
                        if cluster_series != selected {
                            problems.push(format!("{title:?}: {name}{{{selector}}}"));
                        }
                    }
                }
            }
        }
        assert!(
            problems.is_empty(),
            "sidecar series must be selected by namespace=\"$namespace\" and zookube_cluster=\"$cluster\", operator series by neither:\n{}",
            problems.join("\n")
        );
    }

    #[test]
    fn the_dashboard_variables_panels_and_layout_fit_together() {
        let dashboard = dashboard();
        let variables: Vec<(&str, &str)> = dashboard["templating"]["list"]
            .as_array()
            .expect("variables")
            .iter()
            .map(|v| {
                let query = v["query"]["query"].as_str().or(v["query"].as_str());
                (
                    v["name"].as_str().unwrap_or_default(),
                    query.unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            variables,
            [
                ("datasource", "prometheus"),
                ("namespace", "label_values(zookube_member_state, namespace)"),
                (
                    "cluster",
                    r#"label_values(zookube_member_state{namespace="$namespace"}, zookube_cluster)"#
                ),
            ]
        );
        let panels = dashboard["panels"].as_array().expect("panels");
        let mut ids = BTreeSet::new();
        let mut boxes: Vec<(&str, [i64; 4])> = Vec::new();
        for panel in panels {
            let title = panel["title"].as_str().unwrap_or_default();
            assert!(ids.insert(panel["id"].as_i64()), "id of {title:?} repeats");
            let grid = &panel["gridPos"];
            let [x, y, w, h] = ["x", "y", "w", "h"].map(|k| grid[k].as_i64().unwrap_or(-1));
            assert!(
                x >= 0 && y >= 0 && w > 0 && h > 0 && x + w <= 24,
                "{title:?}: {grid}"
            );
            for (other, [ox, oy, ow, oh]) in &boxes {
                let apart = x + w <= *ox || *ox + ow <= x || y + h <= *oy || *oy + oh <= y;
                assert!(apart, "{title:?} overlaps {other:?}");
            }
            boxes.push((title, [x, y, w, h]));
            if panel["type"] != "row" {
                assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title:?}");
                assert!(
                    panel["description"].as_str().is_some_and(|d| !d.is_empty()),
                    "{title:?} says what it shows"
                );
                let targets = panel["targets"].as_array().map_or(0, Vec::len);
                assert!(targets > 0, "{title:?} queries something");
            }
        }
    }

    #[test]
    fn every_alert_says_what_to_check_and_has_a_firing_and_a_quiet_unit_test() {
        let rules: serde_json::Value =
            serde_saphyr::from_str(&repo_file(ALERTS)).expect("the alerts are YAML");
        let tests = repo_file(ALERTS_TESTS);
        let lines: Vec<&str> = tests.lines().map(str::trim).collect();
        let cases = |alert: &str, firing: bool| {
            lines.windows(2).any(|pair| {
                pair[0] == format!("alertname: {alert}")
                    && (pair[1] == "exp_alerts: []") != firing
                    && pair[1].starts_with("exp_alerts:")
            })
        };
        let mut alerts = 0;
        for group in rules["groups"].as_array().expect("groups") {
            for rule in group["rules"].as_array().expect("rules") {
                let name = rule["alert"].as_str().expect("alerting rules only");
                alerts += 1;
                for key in ["summary", "description"] {
                    assert!(
                        rule["annotations"][key]
                            .as_str()
                            .is_some_and(|t| t.len() > 20),
                        "{name} has no {key}"
                    );
                }
                assert!(
                    rule["annotations"]["description"]
                        .as_str()
                        .is_some_and(|d| d.contains("Check:")),
                    "{name}'s description tells on-call what to check"
                );
                assert!(
                    ["critical", "warning"]
                        .contains(&rule["labels"]["severity"].as_str().unwrap_or("")),
                    "{name} has a severity"
                );
                assert!(
                    cases(name, true),
                    "{name} has no firing case in {ALERTS_TESTS}"
                );
                assert!(
                    cases(name, false),
                    "{name} has no quiet case in {ALERTS_TESTS}"
                );
            }
        }
        assert!(alerts >= 6, "{alerts} alerts");
    }

    #[test]
    fn an_unknown_name_in_the_dashboard_is_reported_with_its_file() {
        // The real dashboard queries zookube_leader_myid; an exposition
        // without it must fail the check and say where it is used.
        let without = Exposition::parse("# TYPE zookube_peer_epoch gauge\n");
        let error = check_names("a test exposition", &without, |n| {
            n == "zookube_leader_myid"
        })
        .unwrap_err();
        assert!(
            error.contains(&format!(
                "{DASHBOARD} uses zookube_leader_myid, which a test exposition does not export"
            )),
            "{error}"
        );
    }
}
