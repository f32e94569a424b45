//! `guardrails rules list|enable|disable`: the rules of a running agent.

use std::io::Write;

use proto::v1::{ListRulesRequest, Rule, SetRuleEnabledRequest};
use serde_json::{Value, json};

use super::{
    RuleSwitchArgs, RulesFormat, RulesListArgs,
    client::{ClientError, CommandError, Connection},
};

/// Runs `guardrails rules list`, writing the rules to `out`.
pub async fn list(args: &RulesListArgs, out: &mut impl Write) -> Result<(), CommandError> {
    let mut connection = Connection::open(&args.connect).await?;
    let rules = connection
        .client()
        .list_rules(ListRulesRequest {})
        .await
        .map_err(|status| connection.call_error(&status))?
        .into_inner()
        .rules;
    let text = match args.output {
        RulesFormat::Table => table(&rules),
        RulesFormat::Json => format!("{}\n", json(&rules)),
    };
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(CommandError::Output)
}

/// Runs `guardrails rules enable` (`enabled`) or `disable`, writing the
/// rule's new state to `out`.
pub async fn set_enabled(
    args: &RuleSwitchArgs,
    enabled: bool,
    out: &mut impl Write,
) -> Result<(), CommandError> {
    let mut connection = Connection::open(&args.connect).await?;
    let response = connection
        .client()
        .set_rule_enabled(SetRuleEnabledRequest {
            name: args.name.clone(),
            enabled,
        })
        .await;
    let rule = match response {
        Ok(response) => response.into_inner().rule,
        Err(status) if status.code() == tonic::Code::NotFound => {
            return Err(ClientError::Call {
                target: connection.target().to_string(),
                why: format!(
                    "it has no rule named {:?}; `guardrails rules list` shows its rules",
                    args.name
                ),
                code: status.code(),
            }
            .into());
        }
        Err(status) => return Err(connection.call_error(&status).into()),
    };
    let name = rule
        .as_ref()
        .map_or(args.name.as_str(), |r| r.name.as_str());
    let now = rule.as_ref().map_or(enabled, |r| r.enabled);
    writeln!(
        out,
        "{name}: {} until the agent restarts",
        if now { "enabled" } else { "disabled" }
    )
    .and_then(|()| out.flush())
    .map_err(CommandError::Output)
}

/// A priority as Falco writes it (`WARNING`); `-` when unset.
pub fn priority_name(priority: i32) -> String {
    match proto::v1::Priority::try_from(priority) {
        Ok(proto::v1::Priority::Unspecified) => "-".into(),
        Ok(p) => p.as_str_name().trim_start_matches("PRIORITY_").to_owned(),
        Err(_) => priority.to_string(),
    }
}

/// The rules as aligned columns: NAME, PRIORITY, ENABLED, TAGS.
pub fn table(rules: &[Rule]) -> String {
    let rows: Vec<[String; 4]> = rules
        .iter()
        .map(|r| {
            [
                r.name.clone(),
                priority_name(r.priority),
                if r.enabled { "yes" } else { "no" }.to_owned(),
                r.tags.join(","),
            ]
        })
        .collect();
    let header = ["NAME", "PRIORITY", "ENABLED", "TAGS"].map(str::to_owned);
    let mut widths = [0usize; 3];
    for row in std::iter::once(&header).chain(&rows) {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    for [name, priority, enabled, tags] in std::iter::once(&header).chain(&rows) {
        let [w0, w1, w2] = widths;
        let line = format!("{name:<w0$}  {priority:<w1$}  {enabled:<w2$}  {tags}");
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

/// The rules as one JSON array.
pub fn json(rules: &[Rule]) -> Value {
    Value::Array(
        rules
            .iter()
            .map(|r| {
                json!({
                    "name": r.name,
                    "priority": priority_name(r.priority).to_lowercase(),
                    "enabled": r.enabled,
                    "tags": r.tags,
                    "description": r.description,
                })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Vec<Rule> {
        vec![
            Rule {
                name: "Terminal shell in container".into(),
                priority: proto::v1::Priority::Notice.into(),
                tags: vec!["container".into(), "shell".into()],
                enabled: true,
                description: "A shell was spawned".into(),
            },
            Rule {
                name: "Write below etc".into(),
                priority: proto::v1::Priority::Error.into(),
                tags: vec![],
                enabled: false,
                description: String::new(),
            },
        ]
    }

    #[test]
    fn the_table_aligns_name_priority_enabled_and_tags() {
        assert_eq!(
            table(&rules()),
            "\
NAME                         PRIORITY  ENABLED  TAGS
Terminal shell in container  NOTICE    yes      container,shell
Write below etc              ERROR     no
"
        );
    }

    #[test]
    fn priorities_are_named_as_falco_does() {
        assert_eq!(
            priority_name(proto::v1::Priority::Emergency.into()),
            "EMERGENCY"
        );
        assert_eq!(priority_name(0), "-");
        assert_eq!(priority_name(42), "42");
        assert_eq!(json(&rules())[1]["priority"], "error");
    }
}
