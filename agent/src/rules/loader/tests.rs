//! Loading rules files end to end: item semantics, merging across files,
//! diagnostics, and Falco's own stable ruleset.

use std::{path::PathBuf, sync::Arc};

use super::*;

fn files(texts: &[(&str, &str)]) -> Vec<(Arc<str>, Arc<str>)> {
    texts
        .iter()
        .map(|&(name, text)| (Arc::from(name), Arc::from(text)))
        .collect()
}

fn ok(texts: &[(&str, &str)]) -> Definitions {
    match load(&files(texts)) {
        Ok(definitions) => definitions,
        Err(error) => panic!("unexpected errors:\n{error}"),
    }
}

fn errors(texts: &[(&str, &str)]) -> Vec<Diagnostic> {
    let error = load(&files(texts)).expect_err("errors expected");
    error
        .0
        .into_iter()
        .filter(|d| d.severity == Severity::Error)
        .collect()
}

/// The one error, checking where it is and what it says.
fn one_error(texts: &[(&str, &str)], line: u32, column: u32, says: &str) -> Diagnostic {
    let errors = errors(texts);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let error = errors.into_iter().next().expect("one error");
    assert_eq!(
        (error.position.line, error.position.column),
        (line, column),
        "{error}"
    );
    assert!(error.message.contains(says), "{error}");
    error
}

fn rule<'a>(definitions: &'a Definitions, name: &str) -> &'a RuleDef {
    definitions
        .rules
        .iter()
        .find(|r| r.name == name)
        .expect("rule defined")
}

const BASE: &str = "\
- list: shells
  items: [bash, sh]

- macro: spawned
  condition: evt.type = execve

- rule: Shell
  desc: a shell ran
  condition: spawned and proc.name in (shells)
  output: shell %proc.name
  priority: WARNING
  tags: [process, shell]
";

#[test]
fn lists_macros_and_rules_load_with_the_position_of_their_first_key() {
    let definitions = ok(&[("base.yaml", BASE)]);
    assert_eq!(definitions.lists.len(), 1);
    assert_eq!(definitions.lists[0].items, ["bash", "sh"]);
    assert_eq!(definitions.lists[0].position.line, 1);
    assert_eq!(definitions.lists[0].position.column, 3);
    assert_eq!(definitions.macros[0].position.line, 4);
    let shell = rule(&definitions, "Shell");
    assert_eq!(shell.position.line, 7);
    assert_eq!(shell.priority, Priority::Warning);
    assert_eq!(shell.source, "syscall");
    assert!(shell.enabled);
    assert_eq!(shell.tags, ["process", "shell"]);
    assert_eq!(shell.output.text, "shell %proc.name");
    let at = shell
        .condition
        .position_of(shell.condition.text.find("proc").expect("proc"));
    assert_eq!((&*at.file, at.line, at.column), ("base.yaml", 9, 26));
    assert!(
        definitions.warnings.is_empty(),
        "{:?}",
        definitions.warnings
    );
}

#[test]
fn priorities_are_read_in_any_case_and_info_means_informational() {
    for (written, priority) in [
        ("emergency", Priority::Emergency),
        ("Alert", Priority::Alert),
        ("CRITICAL", Priority::Critical),
        ("error", Priority::Error),
        ("notice", Priority::Notice),
        ("INFO", Priority::Informational),
        ("Informational", Priority::Informational),
        ("debug", Priority::Debug),
    ] {
        let text =
            format!("- rule: r\n  desc: d\n  condition: a\n  output: o\n  priority: {written}\n");
        assert_eq!(ok(&[("f", &text)]).rules[0].priority, priority);
    }
}

#[test]
fn a_bad_priority_is_an_error_at_its_value_naming_the_rule() {
    let text = "- rule: r\n  desc: d\n  condition: a\n  output: o\n  priority: urgent\n";
    let error = one_error(&[("f", text)], 5, 13, "bad priority \"urgent\"");
    assert_eq!(error.item.as_deref(), Some("rule \"r\""));
}

#[test]
fn every_problem_of_every_item_is_reported() {
    let text = "\
- rule: a
  desc: d
  output: o
  priority: info
- rule: b
  desc: d
  condition: x
  output: o
  priority: info
  enabled: maybe
- macro: m
- list: l
  items: nope
";
    let errors = errors(&[("f", text)]);
    let said: Vec<(Option<&str>, &str)> = errors
        .iter()
        .map(|e| (e.item.as_deref(), e.message.as_str()))
        .collect();
    assert_eq!(errors.len(), 4, "{said:#?}");
    assert_eq!(said[0], (Some("rule \"a\""), "missing \"condition\""));
    assert!(said[1].1.contains("\"enabled\" must be a bool"), "{said:?}");
    assert_eq!(said[2], (Some("macro \"m\""), "missing \"condition\""));
    assert!(
        said[3].1.contains("\"items\" must be a sequence"),
        "{said:?}"
    );
    assert_eq!(errors[1].position.line, 10);
}

#[test]
fn a_redefinition_replaces_the_earlier_one_but_keeps_its_place() {
    let later = "\
- list: shells
  items: [zsh]
- rule: Shell
  desc: other
  condition: proc.name = zsh
  output: other
  priority: error
";
    let definitions = ok(&[("base.yaml", BASE), ("local.yaml", later)]);
    assert_eq!(definitions.lists.len(), 1);
    assert_eq!(definitions.lists[0].items, ["zsh"]);
    let shell = &definitions.rules[0];
    assert_eq!(shell.condition.text, "proc.name = zsh");
    assert_eq!(shell.priority, Priority::Error);
    assert!(shell.tags.is_empty());
    assert_eq!(&*shell.position.file, "local.yaml");
}

#[test]
fn append_true_extends_lists_macros_and_rule_conditions_but_not_outputs() {
    let later = "\
- list: shells
  append: true
  items: [zsh]
- macro: spawned
  append: true
  condition: or evt.type = execveat
- rule: Shell
  append: true
  condition: and not user.name = root
  output: ignored
";
    let definitions = ok(&[("base.yaml", BASE), ("local.yaml", later)]);
    assert_eq!(definitions.lists[0].items, ["bash", "sh", "zsh"]);
    let spawned = &definitions.macros[0].condition;
    assert_eq!(spawned.text, "evt.type = execve or evt.type = execveat");
    let at = spawned.position_of(spawned.text.find("execveat").expect("word"));
    assert_eq!((&*at.file, at.line, at.column), ("local.yaml", 6, 28));
    let shell = rule(&definitions, "Shell");
    assert_eq!(
        shell.condition.text,
        "spawned and proc.name in (shells) and not user.name = root"
    );
    assert_eq!(shell.output.text, "shell %proc.name");
    let warned: Vec<&str> = definitions
        .warnings
        .iter()
        .map(|w| w.message.as_str())
        .collect();
    assert_eq!(
        warned.iter().filter(|w| w.contains("deprecated")).count(),
        3,
        "{warned:?}"
    );
    assert!(warned.iter().any(|w| w.contains("\"output\" is ignored")));
}

#[test]
fn override_appends_to_and_replaces_the_keys_it_names() {
    let later = "\
- list: shells
  items: [zsh]
  override:
    items: append
- macro: spawned
  condition: evt.type = execveat
  override:
    condition: replace
- rule: Shell
  condition: and proc.tty != 0
  output: (tty=%proc.tty)
  desc: on a terminal
  tags: [shell, terminal]
  priority: notice
  enabled: false
  override:
    condition: append
    output: append
    desc: append
    tags: append
    priority: replace
    enabled: replace
";
    let definitions = ok(&[("base.yaml", BASE), ("local.yaml", later)]);
    assert_eq!(definitions.lists[0].items, ["bash", "sh", "zsh"]);
    assert_eq!(definitions.macros[0].condition.text, "evt.type = execveat");
    let shell = rule(&definitions, "Shell");
    assert_eq!(
        shell.condition.text,
        "spawned and proc.name in (shells) and proc.tty != 0"
    );
    assert_eq!(shell.output.text, "shell %proc.name (tty=%proc.tty)");
    assert_eq!(shell.desc, "a shell ran on a terminal");
    assert_eq!(shell.tags, ["process", "shell", "terminal"]);
    assert_eq!(shell.priority, Priority::Notice);
    assert!(!shell.enabled);
    assert_eq!(&*shell.position.file, "base.yaml");
}

#[test]
fn override_refuses_keys_it_cannot_change_and_keys_without_an_entry() {
    let later = "\
- rule: Shell
  priority: debug
  override:
    priority: append
";
    one_error(
        &[("base.yaml", BASE), ("local.yaml", later)],
        4,
        5,
        "\"priority\" cannot be appended to, only replaced",
    );
    let later = "\
- rule: Shell
  condition: and x
  output: o
  override:
    condition: append
";
    one_error(
        &[("base.yaml", BASE), ("local.yaml", later)],
        3,
        3,
        "\"output\" has no entry under `override`",
    );
    let later = "\
- rule: Shell
  condition: and x
  override:
    condition: append
    desc: replace
";
    one_error(
        &[("base.yaml", BASE), ("local.yaml", later)],
        1,
        3,
        "says to replace \"desc\" but the item has no \"desc\"",
    );
    let later = "\
- macro: spawned
  condition: x
  append: true
  override:
    condition: append
";
    one_error(
        &[("base.yaml", BASE), ("local.yaml", later)],
        1,
        3,
        "cannot be used together",
    );
}

#[test]
fn changing_an_item_that_is_not_defined_is_an_error_at_the_change() {
    let text = "\
- rule: Nope
  condition: and x
  override:
    condition: append
";
    let error = one_error(
        &[("f", text)],
        1,
        3,
        "appends to a rule that is not defined",
    );
    assert_eq!(error.item.as_deref(), Some("rule \"Nope\""));
    one_error(
        &[("f", "- list: l\n  items: [a]\n  append: true\n")],
        1,
        3,
        "appends to a list that is not defined",
    );
    one_error(
        &[(
            "f",
            "- macro: m\n  condition: x\n  override:\n    condition: append\n",
        )],
        1,
        3,
        "appends to a macro that is not defined",
    );
    one_error(
        &[(
            "f",
            "- rule: r\n  priority: info\n  override:\n    priority: replace\n",
        )],
        1,
        3,
        "overrides (replace) a rule that is not defined",
    );
    one_error(
        &[("f", "- rule: r\n  enabled: false\n")],
        1,
        3,
        "sets `enabled` on a rule that is not defined",
    );
}

#[test]
fn replacing_a_list_or_macro_that_is_not_defined_defines_it() {
    let text = "- list: l\n  items: [a]\n  override:\n    items: replace\n";
    assert_eq!(ok(&[("f", text)]).lists[0].items, ["a"]);
}

#[test]
fn appending_to_a_definition_that_failed_is_not_reported_again() {
    let text = "\
- macro: m
  condition: ''
- macro: m
  append: true
  condition: or y
";
    one_error(&[("f", text)], 2, 14, "\"condition\" is empty");
}

#[test]
fn an_item_with_only_enabled_toggles_an_earlier_rule() {
    let later = "- rule: Shell\n  enabled: false\n";
    let definitions = ok(&[("base.yaml", BASE), ("local.yaml", later)]);
    let shell = rule(&definitions, "Shell");
    assert!(!shell.enabled);
    assert_eq!(shell.condition.text, "spawned and proc.name in (shells)");
    assert!(
        definitions
            .warnings
            .iter()
            .any(|w| w.message.contains("only `enabled` is deprecated"))
    );
    one_error(
        &[
            ("base.yaml", BASE),
            ("local.yaml", "- rule: Shell\n  enabled: 3\n"),
        ],
        2,
        12,
        "\"enabled\" must be a bool (true or false), not \"3\"",
    );
}

#[test]
fn a_rule_cannot_change_its_source() {
    let later = "\
- rule: Shell
  desc: d
  condition: x
  output: o
  priority: info
  source: k8s_audit
";
    one_error(
        &[("base.yaml", BASE), ("local.yaml", later)],
        1,
        3,
        "cannot be changed to source \"k8s_audit\"",
    );
}

const WITH_EXCEPTIONS: &str = "\
- rule: Write
  desc: d
  condition: open_write
  output: o
  priority: error
  exceptions:
    - name: known_procs
      fields: proc.name
      values: [dpkg, rpm]
    - name: known_pairs
      fields: [proc.name, fd.name]
      comps: [=, startswith]
      values:
        - [apt, /var/lib/apt]
        - [[yum, dnf], /var/cache]
    - name: no_values
      fields: [proc.pname, fd.directory]
";

#[test]
fn exceptions_are_read_with_default_comps() {
    let definitions = ok(&[("f", WITH_EXCEPTIONS)]);
    let exceptions = &rule(&definitions, "Write").exceptions;
    assert_eq!(exceptions.len(), 3);
    let single = &exceptions[0];
    assert_eq!(
        single.fields,
        ExceptionFields::Single("proc.name".to_owned())
    );
    assert_eq!(single.comps, ["in"]);
    assert_eq!(
        single.values,
        [
            ExceptionValue::Scalar("dpkg".to_owned()),
            ExceptionValue::Scalar("rpm".to_owned())
        ]
    );
    assert_eq!(single.position.line, 7);
    let pairs = &exceptions[1];
    assert_eq!(pairs.comps, ["=", "startswith"]);
    assert_eq!(
        pairs.values[1],
        ExceptionValue::Seq(vec![
            ExceptionValue::Seq(vec![
                ExceptionValue::Scalar("yum".to_owned()),
                ExceptionValue::Scalar("dnf".to_owned()),
            ]),
            ExceptionValue::Scalar("/var/cache".to_owned()),
        ])
    );
    assert_eq!(exceptions[2].comps, ["=", "="]);
    assert!(exceptions[2].values.is_empty());
}

#[test]
fn an_exception_value_must_have_as_many_entries_as_fields() {
    let text = WITH_EXCEPTIONS.replace("- [apt, /var/lib/apt]", "- [apt]");
    one_error(
        &[("f", &text)],
        14,
        11,
        "has 1 entries but the exception has 2 fields",
    );
    let text = WITH_EXCEPTIONS.replace("values: [dpkg, rpm]", "values: [[dpkg], rpm]");
    one_error(
        &[("f", &text)],
        9,
        16,
        "each value must be a string, not a list",
    );
    let text = WITH_EXCEPTIONS.replace("comps: [=, startswith]", "comps: [=]");
    one_error(
        &[("f", &text)],
        10,
        7,
        "so its comps must be a list of as many",
    );
    let text = WITH_EXCEPTIONS.replace("comps: [=, startswith]", "comps: [=, near]");
    one_error(&[("f", &text)], 10, 7, "\"near\" in comps");
    let text = WITH_EXCEPTIONS.replace("fields: proc.name", "fields: proc.name\n      comps: =");
    one_error(&[("f", &text)], 7, 7, "must be in, pmatch or intersects");
}

#[test]
fn duplicate_exception_names_in_one_rule_are_an_error() {
    let text = WITH_EXCEPTIONS.replace("name: no_values", "name: known_procs");
    one_error(
        &[("f", &text)],
        16,
        7,
        "duplicate exception name \"known_procs\"",
    );
}

#[test]
fn appended_exceptions_merge_values_by_name_and_add_new_ones() {
    let later = "\
- rule: Write
  exceptions:
    - name: known_procs
      values: [yum]
    - name: known_pairs
      values:
        - [zypper, /var/cache/zypp]
    - name: new_one
      fields: fd.name
      comps: pmatch
      values: [/tmp]
  override:
    exceptions: append
- rule: Write
  append: true
  exceptions:
    - name: no_values
      values: [[cron, /etc]]
";
    let definitions = ok(&[("base.yaml", WITH_EXCEPTIONS), ("local.yaml", later)]);
    let exceptions = &rule(&definitions, "Write").exceptions;
    assert_eq!(exceptions.len(), 4);
    assert_eq!(exceptions[0].values.len(), 3);
    assert_eq!(exceptions[1].values.len(), 3);
    assert_eq!(exceptions[2].values.len(), 1);
    assert_eq!(exceptions[3].name, "new_one");
    assert_eq!(exceptions[3].comps, ["pmatch"]);
    assert_eq!(&*exceptions[3].position.file, "local.yaml");
}

#[test]
fn appending_fields_to_an_existing_exception_or_badly_shaped_values_is_an_error() {
    let later = "\
- rule: Write
  exceptions:
    - name: known_procs
      fields: proc.pname
      values: [yum]
  override:
    exceptions: append
";
    one_error(
        &[("base.yaml", WITH_EXCEPTIONS), ("local.yaml", later)],
        3,
        7,
        "only values can be appended to it, not fields",
    );
    let later = "\
- rule: Write
  exceptions:
    - name: known_pairs
      values: [[zypper]]
  override:
    exceptions: append
";
    one_error(
        &[("base.yaml", WITH_EXCEPTIONS), ("local.yaml", later)],
        4,
        16,
        "has 1 entries but the exception has 2 fields",
    );
}

#[test]
fn replacing_exceptions_replaces_them_all() {
    let later = "\
- rule: Write
  exceptions:
    - name: only
      fields: proc.name
      values: [x]
  override:
    exceptions: replace
";
    let definitions = ok(&[("base.yaml", WITH_EXCEPTIONS), ("local.yaml", later)]);
    let exceptions = &rule(&definitions, "Write").exceptions;
    assert_eq!(exceptions.len(), 1);
    assert_eq!(exceptions[0].name, "only");
}

#[test]
fn an_engine_version_up_to_ours_is_accepted_in_both_forms() {
    ok(&[("f", "- required_engine_version: 0.57.0\n")]);
    ok(&[("f", "- required_engine_version: 0.31.2\n")]);
    ok(&[("f", "- required_engine_version: 12\n")]);
}

#[test]
fn a_later_engine_version_is_an_error_naming_both_versions() {
    one_error(
        &[("f", "- required_engine_version: 0.58.0\n")],
        1,
        28,
        "rules require engine version 0.58.0, but this engine is version 0.57.0",
    );
    one_error(
        &[("f", "- required_engine_version: 99\n")],
        1,
        28,
        "rules require engine version 0.99.0",
    );
    one_error(
        &[("f", "- required_engine_version: banana\n")],
        1,
        28,
        "cannot read engine version \"banana\"",
    );
}

#[test]
fn the_container_plugin_is_met_by_built_in_fields_and_others_are_errors() {
    let text = "\
- required_plugin_versions:
    - name: container
      version: 0.4.0
    - name: k8saudit
      version: 0.1.0
      alternatives:
        - name: container
          version: 0.2.0
";
    let definitions = ok(&[("f", text)]);
    let warnings: Vec<String> = definitions
        .warnings
        .iter()
        .map(|w| w.message.clone())
        .collect();
    assert_eq!(
        warnings,
        [
            "plugin \"container\" requirement (>= 0.4.0) is met by the built-in container fields",
            "plugin \"container\" requirement (>= 0.2.0) is met by the built-in container fields",
        ]
    );
    assert_eq!(definitions.warnings[0].severity, Severity::Warning);
    assert_eq!(definitions.warnings[0].position.line, 2);
    let text = "\
- required_plugin_versions:
    - name: k8saudit
      version: 0.1.0
      alternatives:
        - name: k8saudit-eks
          version: 0.2.0
";
    one_error(
        &[("f", text)],
        2,
        7,
        "plugin \"k8saudit\" (>= 0.1.0) or \"k8saudit-eks\" (>= 0.2.0) is required",
    );
}

#[test]
fn a_yaml_syntax_error_is_reported_where_the_parser_stopped() {
    let text = "- rule: r\n  desc: [unclosed\n- list: l\n";
    let errors = errors(&[("bad.yaml", text)]);
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].message.starts_with("yaml syntax error"),
        "{}",
        errors[0]
    );
    assert_eq!(&*errors[0].position.file, "bad.yaml");
    assert!(errors[0].position.line >= 2, "{}", errors[0]);
}

#[test]
fn a_top_level_that_is_not_a_sequence_is_an_error() {
    one_error(&[("f", "rule: r\n")], 1, 1, "must be a sequence of items");
    one_error(
        &[("f", "- just a string\n")],
        1,
        3,
        "an item must be a mapping",
    );
}

#[test]
fn empty_files_and_documents_load_nothing() {
    let definitions = ok(&[("a", ""), ("b", "# only a comment\n"), ("c", "---\n...\n")]);
    assert!(definitions.rules.is_empty());
}

#[test]
fn unknown_keys_and_items_are_warnings_with_their_position() {
    let text = "- macro: m\n  condition: x\n  colour: blue\n- frobnicate: yes\n";
    let definitions = ok(&[("f", text)]);
    assert_eq!(definitions.warnings.len(), 2, "{:?}", definitions.warnings);
    let unknown = &definitions.warnings[0];
    assert_eq!(unknown.message, "unknown key \"colour\" is ignored");
    assert_eq!((unknown.position.line, unknown.position.column), (3, 3));
    assert_eq!(unknown.item.as_deref(), Some("macro \"m\""));
    assert!(
        definitions.warnings[1]
            .message
            .contains("unknown top-level item")
    );
}

#[test]
fn a_file_that_cannot_be_read_is_an_error_at_its_start() {
    let missing = PathBuf::from("/nonexistent/rules.yaml");
    let error = load_paths(&[missing]).expect_err("unreadable");
    assert_eq!(error.0.len(), 1);
    assert_eq!(error.0[0].position.line, 1);
    assert_eq!(error.0[0].position.column, 1);
    assert!(error.0[0].message.starts_with("cannot read the rules file"));
}

#[test]
fn falcos_stable_ruleset_loads_without_errors() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/compat/falco-rules/falco_rules.yaml"
    );
    let definitions = match load_paths(&[PathBuf::from(path)]) {
        Ok(definitions) => definitions,
        Err(error) => panic!("falco_rules.yaml did not load:\n{error}"),
    };
    assert_eq!(definitions.rules.len(), 25);
    assert_eq!(definitions.macros.len(), 87);
    assert_eq!(definitions.lists.len(), 49);
    assert_eq!(
        definitions
            .warnings
            .iter()
            .map(|w| w.message.as_str())
            .collect::<Vec<_>>(),
        ["plugin \"container\" requirement (>= 0.4.0) is met by the built-in container fields"]
    );

    let terminal = rule(&definitions, "Terminal shell in container");
    let condition = &terminal.condition;
    let source = &condition.pieces[0].source;
    // The token's line and column, found in the file itself.
    let header = source
        .find("- rule: Terminal shell in container")
        .expect("the rule in the file");
    let in_file = header
        + source[header..]
            .find("and container_entrypoint")
            .expect("the token in the file")
        + "and ".len();
    let line = source[..in_file].matches('\n').count() + 1;
    let column = in_file - source[..in_file].rfind('\n').map_or(0, |i| i + 1) + 1;
    let offset = condition
        .text
        .find("container_entrypoint")
        .expect("the token in the condition");
    let at = condition.position_of(offset);
    assert_eq!(
        (at.line, at.column),
        (
            u32::try_from(line).expect("line"),
            u32::try_from(column).expect("column")
        )
    );
    assert_eq!((at.line, at.column), (725, 9));
}
