//! The rule author's tools, as a user runs them: `guardrails rules check` and
//! `guardrails rules test`.

mod support;

use std::process::{Command, Output};

use serde_json::Value;
use support::TempDir;

const FALCO_RULES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/compat/falco-rules/falco_rules.yaml"
);

fn guardrails(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_guardrails"))
        .args(args)
        .output()
        .expect("run guardrails")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn falcos_stable_rules_check_clean_with_all_25_rules_enabled_and_compiled() {
    let out = guardrails(&["rules", "check", FALCO_RULES]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("25 rules compiled (25 enabled), 87 macros, 49 lists"),
        "{stdout}"
    );
    // The container plugin requirement is met by built-in fields, and said so.
    assert!(stderr.contains("plugin \"container\""), "{stderr}");
    assert!(!stderr.contains("error"), "{stderr}");
}

#[test]
fn a_file_with_an_unknown_field_an_unknown_macro_and_a_bad_regex_fails_with_the_three_positions() {
    let dir = TempDir::new("rules-check");
    let path = dir.path.join("bad_rules.yaml");
    std::fs::write(
        &path,
        "\
- macro: opened
  condition: evt.type in (open, openat)

- rule: Unknown field
  desc: names a field that does not exist
  condition: opened and proc.nmae = bash
  output: \"%proc.name\"
  priority: WARNING

- rule: Unknown macro
  desc: names a macro that does not exist
  condition: >
    opened and
    never_defined_macro
  output: \"%proc.name\"
  priority: WARNING

- rule: Bad regex
  desc: a regex that does not compile
  condition: opened and fd.name regex \"[a-\"
  output: \"%fd.name\"
  priority: ERROR
",
    )
    .expect("write the rules");
    let out = guardrails(&["rules", "check", path.to_str().expect("utf-8")]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let file = path.display().to_string();
    for expected in [
        format!("{file}:6:25: error: rule \"Unknown field\": unknown field \"proc.nmae\""),
        format!(
            "{file}:14:5: error: rule \"Unknown macro\": unknown macro \"never_defined_macro\""
        ),
        format!("{file}:20:39: error: rule \"Bad regex\": fd.name: invalid regex \"[a-\""),
    ] {
        assert!(
            stderr.contains(&expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
    assert_eq!(stderr.matches(": error: ").count(), 3, "{stderr}");
}

#[test]
fn rules_test_replays_recorded_events_and_prints_the_violations() {
    let dir = TempDir::new("rules-test");
    let rules = dir.path.join("rules.yaml");
    std::fs::write(
        &rules,
        "\
- list: shells
  items: [bash, sh]
- rule: Shell reads shadow
  desc: a shell opened /etc/shadow
  condition: evt.type = openat and proc.name in (shells) and fd.name = /etc/shadow
  output: \"shadow opened by %proc.name (pid=%proc.pid user=%user.name parent=%proc.pname)\"
  priority: CRITICAL
  tags: [test]
",
    )
    .expect("write the rules");
    let event = |comm: &str, path: &str| {
        serde_json::json!({
            "schema_version": 1, "kind": "syscall", "time": "2026-11-26T08:00:00Z",
            "monotonic_ns": 5, "node": "n1",
            "process": {"pid": 42, "tid": 42, "ns_pid": 42, "ppid": 1, "uid": 0, "gid": 0,
                        "euid": 0, "egid": 0, "cgroup_id": 1, "comm": comm},
            "syscall": {"name": "openat", "nr": 257, "sensor": "file", "ret": 3,
                        "args": {"dirfd": -100, "pathname": path, "flags": 0, "mode": 0},
                        "fds": [{"arg": "ret", "fd": 3, "type": "file", "path": path}],
                        "paths": [{"arg": "pathname", "raw": path, "path": path}]}
        })
        .to_string()
    };
    let events = dir.path.join("events.jsonl");
    std::fs::write(
        &events,
        [
            event("bash", "/etc/shadow"),
            event("cat", "/etc/shadow"),
            event("bash", "/etc/hosts"),
        ]
        .join("\n"),
    )
    .expect("write the events");
    let out = guardrails(&[
        "rules",
        "test",
        "--rules",
        rules.to_str().expect("utf-8"),
        "--events",
        events.to_str().expect("utf-8"),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let violations: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(violations.len(), 1, "{violations:?}");
    let v = &violations[0];
    assert_eq!(v["kind"], "violation");
    assert_eq!(v["violation"]["rule"], "Shell reads shadow");
    assert_eq!(v["violation"]["priority"], "critical");
    assert_eq!(
        v["violation"]["output"],
        "shadow opened by bash (pid=42 user=<NA> parent=<NA>)"
    );
    assert_eq!(v["violation"]["fields"]["user.name"], Value::Null);
    assert!(text(&out.stderr).contains("3 events, 1 violations"));
}

#[test]
fn rules_test_names_the_line_of_an_event_that_is_not_one() {
    let dir = TempDir::new("rules-test-bad");
    let events = dir.path.join("events.jsonl");
    std::fs::write(&events, "{\"kind\": \"nonsense\"}\n").expect("write");
    let out = guardrails(&[
        "rules",
        "test",
        "--rules",
        FALCO_RULES,
        "--events",
        events.to_str().expect("utf-8"),
    ]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("events.jsonl:1:"), "{stderr}");
}

#[test]
fn a_rules_file_too_large_to_be_one_is_refused_with_its_name() {
    let dir = TempDir::new("rules-huge");
    let path = dir.path.join("huge.yaml");
    let line = "# padding\n".repeat(1 << 10);
    let mut padding = String::new();
    while padding.len() <= 16 << 20 {
        padding.push_str(&line);
    }
    std::fs::write(&path, padding).expect("write");
    let out = guardrails(&["rules", "check", path.to_str().expect("utf-8")]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}:1:1: error: the file is larger than 16 MiB",
            path.display()
        )),
        "{stderr}"
    );
}
