//! The Grafana dashboard in `deploy/grafana/` charts only series the agent
//! exports, so that no panel stays empty after a rename.

use std::collections::BTreeSet;

use serde_json::Value;

fn dashboard() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/grafana/guardrails-dashboard.json"
    );
    let text = std::fs::read_to_string(path).expect("read the dashboard");
    serde_json::from_str(&text).expect("the dashboard is JSON")
}

/// Every family the agent's `/metrics` declares, with every part enabled.
fn exported() -> BTreeSet<String> {
    let metrics = guardrails::metrics::Metrics::default();
    metrics.kube().set_enabled();
    metrics
        .render()
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_panel_queries_series_the_agent_exports() {
    let exported = exported();
    let dashboard = dashboard();
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    let mut queried = BTreeSet::new();
    for panel in panels {
        assert!(
            ids.insert(panel["id"].as_u64().expect("an id")),
            "ids are unique"
        );
        let grid = &panel["gridPos"];
        let right = grid["x"].as_u64().unwrap_or(99) + grid["w"].as_u64().unwrap_or(99);
        assert!(right <= 24, "{} fits the 24 columns", panel["title"]);
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("an expression");
            let mut rest = expr;
            while let Some(at) = rest.find("guardrails_") {
                let name: String = rest[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                rest = &rest[at + name.len()..];
                queried.insert(name);
            }
        }
    }
    assert!(
        queried.len() >= 20,
        "the dashboard charts the agent: {queried:?}"
    );
    let missing: Vec<_> = queried.difference(&exported).collect();
    assert!(missing.is_empty(), "not exported: {missing:?}");
}
