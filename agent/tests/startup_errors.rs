//! Bad start-up input is refused before anything touches the kernel, with one
//! line on stderr that names the problem, and a non-zero exit.

mod support;

use std::process::{Command, Output};

use support::TempDir;

fn agent_with(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_guardrails"))
        .args(args)
        .env_remove("GUARDRAILS_CONFIG")
        .output()
        .expect("run guardrails")
}

/// The run failed, printed nothing on stdout and exactly one line on stderr,
/// which is returned.
fn one_error_line(output: &Output) -> String {
    assert!(!output.status.success(), "expected a failure");
    assert!(output.stdout.is_empty(), "nothing on stdout");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr, got: {stderr}");
    lines[0].to_owned()
}

fn config_file(dir: &TempDir, text: &str) -> String {
    let path = dir.path.join("config.yaml");
    std::fs::write(&path, text).expect("write the config");
    path.to_str().expect("utf-8").to_owned()
}

#[test]
fn an_unknown_config_key_is_named_with_the_file_and_line() {
    let dir = TempDir::new("startup");
    let path = config_file(
        &dir,
        "apiVersion: guardrails.dev/v1alpha1\ntransport:\n  ring_size: 4096\n",
    );
    let line = one_error_line(&agent_with(&["agent", "--config", &path]));
    assert!(line.contains(&format!("{path}:3:")), "{line}");
    assert!(line.contains("unknown field `ring_size`"), "{line}");
}

#[test]
fn an_unknown_sensor_is_named_with_the_sensors_that_exist() {
    let dir = TempDir::new("startup");
    let path = config_file(
        &dir,
        "apiVersion: guardrails.dev/v1alpha1\nsensors:\n  telepathy: true\n",
    );
    let line = one_error_line(&agent_with(&["agent", "--config", &path]));
    assert!(line.contains(&format!("{path}:3:")), "{line}");
    assert!(
        line.contains("unknown field `telepathy`, expected one of `process`, `file`, `network`, `descriptors`, `privilege`, `benchmark`, `syscall_hook`"),
        "{line}"
    );
}

#[test]
fn an_unreadable_config_is_named_with_the_reason() {
    let dir = TempDir::new("startup");
    let missing = dir.path.join("absent.yaml");
    let missing = missing.to_str().expect("utf-8");
    let line = one_error_line(&agent_with(&["agent", "--config", missing]));
    assert!(
        line.contains(&format!("cannot read config file {missing}")),
        "{line}"
    );
    assert!(line.contains("No such file or directory"), "{line}");

    let directory = dir.path.to_str().expect("utf-8");
    let line = one_error_line(&agent_with(&["agent", "--config", directory]));
    assert!(
        line.contains(&format!("cannot read config file {directory}")),
        "{line}"
    );
}

#[test]
fn a_bad_value_is_named_with_the_file_line_and_key() {
    let dir = TempDir::new("startup");
    let path = config_file(
        &dir,
        "apiVersion: guardrails.dev/v1alpha1\ntransport:\n  ring_buffer_bytes: 1000\n",
    );
    let line = one_error_line(&agent_with(&["agent", "--config", &path]));
    assert!(
        line.contains(&format!("{path}:3:")) && line.contains("ring_buffer_bytes"),
        "{line}"
    );
}

#[test]
fn a_bad_log_format_is_refused_by_the_command_line_parser() {
    let output = agent_with(&["--log-format", "xml", "version"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("invalid value 'xml'"));
}

#[test]
fn version_prints_the_versions_of_the_contracts() {
    let output = agent_with(&["version"]);
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.starts_with(&format!("guardrails {}", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    assert!(text.contains("event schema 1"), "{text}");
}

#[test]
fn a_misconfigured_alert_output_is_named_and_stops_the_start() {
    let dir = TempDir::new("startup");
    let path = config_file(
        &dir,
        "apiVersion: guardrails.dev/v1alpha1\nalerts:\n  outputs:\n    oncall:\n      type: alertmanager\n      url: http://127.0.0.1:9093\n    hook:\n      type: webhook\n      url: hooks.example.com/guardrails\n",
    );
    let line = one_error_line(&agent_with(&["agent", "--config", &path]));
    assert!(line.contains(&format!("{path}:8:")), "{line}");
    assert!(line.contains("alerts.outputs.hook:"), "{line}");
    assert!(
        line.contains("url \"hooks.example.com/guardrails\" must start with http:// or https://"),
        "{line}"
    );

    let path = config_file(
        &dir,
        "apiVersion: guardrails.dev/v1alpha1\nalerts:\n  outputs:\n    oncall:\n      type: alertmanager\n      url: http://127.0.0.1:9093\n      severity: page\n",
    );
    let line = one_error_line(&agent_with(&["agent", "--config", &path]));
    assert!(line.contains(&format!("{path}:7:")), "{line}");
    assert!(line.contains("alerts.outputs.oncall"), "{line}");
    assert!(line.contains("unknown field `severity`"), "{line}");
}
