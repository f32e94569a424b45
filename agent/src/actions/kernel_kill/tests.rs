use std::sync::Arc;

use super::*;
use crate::rules::{MatchMode, RuleSet, Selection};

/// Falco's macros as its stable rules spell them.
const MACROS: &str = r#"
- macro: spawned_process
  condition: (evt.type in (execve, execveat) and evt.dir=<)
- macro: container
  condition: (container.id != host)
- list: miners
  items: [xmrig, minerd]
"#;

fn compiled(condition: &str, extra: &str) -> CompiledRule {
    let text = format!(
        "{MACROS}\n- rule: r\n  desc: d\n  condition: {condition}\n  output: o\n  priority: WARNING\n{extra}"
    );
    let files = [(Arc::from("test.yaml"), Arc::from(text.as_str()))];
    let set = RuleSet::from_texts(&files, &Selection::default(), MatchMode::All)
        .unwrap_or_else(|e| panic!("{e}"));
    set.rules()[0].clone()
}

fn kernel(condition: &str) -> Result<KernelMatch, NotExpressible> {
    kernel_match(&compiled(condition, ""))
}

fn names(names: &[&str]) -> KernelMatch {
    KernelMatch {
        names: names.iter().map(|n| (*n).to_owned()).collect(),
        ..KernelMatch::default()
    }
}

#[test]
fn a_name_in_a_list_inside_falcos_macros_is_expressible() {
    assert_eq!(
        kernel("spawned_process and container and proc.name in (miners)"),
        Ok(names(&["minerd", "xmrig"]))
    );
}

#[test]
fn names_given_as_alternatives_of_one_field_are_merged_into_one_test() {
    assert_eq!(
        kernel("evt.type = execve and (proc.name = b or proc.name = a)"),
        Ok(names(&["a", "b"]))
    );
}

#[test]
fn an_executable_path_with_an_argument_prefix_is_expressible() {
    assert_eq!(
        kernel(
            r#"spawned_process and proc.exepath in (/usr/bin/nc, /bin/nc) and proc.args startswith "-e /bin""#
        ),
        Ok(KernelMatch {
            exes: vec!["/bin/nc".into(), "/usr/bin/nc".into()],
            args_prefix: Some("-e /bin".into()),
            ..KernelMatch::default()
        })
    );
}

#[test]
fn a_field_the_kernel_does_not_see_is_named_in_the_reason() {
    let err = kernel("spawned_process and proc.name = bash and proc.pname = sshd")
        .expect_err("proc.pname is not in the kernel");
    assert_eq!(err, NotExpressible::Field("proc.pname".into()));
    assert_eq!(err.to_string(), "proc.pname is not available in the kernel");
    assert_eq!(
        kernel("spawned_process and tolower(proc.name) = bash"),
        Err(NotExpressible::Field("tolower(proc.name)".into()))
    );
}

#[test]
fn or_across_fields_and_not_are_not_expressible() {
    assert_eq!(
        kernel("spawned_process and (proc.name = a or proc.exepath = /bin/a)"),
        Err(NotExpressible::Or)
    );
    assert_eq!(
        kernel("spawned_process and proc.name = a and not proc.args startswith -x"),
        Err(NotExpressible::Not)
    );
}

#[test]
fn an_exception_adds_a_condition_the_kernel_cannot_decide() {
    let rule = compiled(
        "spawned_process and proc.name = bash",
        "  exceptions:\n    - name: known\n      fields: [proc.pname]\n      comps: [=]\n      values:\n        - [sshd]\n",
    );
    assert_eq!(kernel_match(&rule), Err(NotExpressible::Not));
}

#[test]
fn a_rule_not_limited_to_exec_events_is_not_expressible() {
    assert_eq!(kernel("proc.name = a"), Err(NotExpressible::EventTypes));
    assert_eq!(
        kernel("evt.type = openat and proc.name = a"),
        Err(NotExpressible::EventTypes)
    );
}

#[test]
fn proc_exe_is_argv_zero_and_not_the_executable() {
    let err = kernel("spawned_process and proc.exe = /bin/nc").expect_err("argv[0]");
    assert_eq!(err, NotExpressible::ArgvZero);
    assert!(err.to_string().contains("use proc.exepath"), "{err}");
}

#[test]
fn the_program_must_be_named_once_by_name_or_by_path() {
    assert_eq!(
        kernel("spawned_process and container"),
        Err(NotExpressible::NoProgram)
    );
    assert_eq!(
        kernel("spawned_process and proc.name = a and proc.exepath = /bin/a"),
        Err(NotExpressible::NameAndExe)
    );
    assert_eq!(
        kernel("spawned_process and proc.name = a and proc.name in (a, b)"),
        Err(NotExpressible::Repeated("proc.name"))
    );
}

#[test]
fn values_the_kernel_would_compare_differently_are_refused() {
    assert_eq!(
        kernel("spawned_process and proc.name = averyveryverylongname"),
        Err(NotExpressible::TooLong {
            field: "proc.name",
            value: "averyveryverylongname".into(),
            max: 15
        })
    );
    let long_path = format!("/{}", "x".repeat(KILL_PATH_MAX));
    assert!(matches!(
        kernel(&format!("spawned_process and proc.exepath = {long_path}")),
        Err(NotExpressible::TooLong {
            field: "proc.exepath",
            ..
        })
    ));
    assert!(matches!(
        kernel("spawned_process and proc.exepath = nc"),
        Err(NotExpressible::Value {
            field: "proc.exepath",
            ..
        })
    ));
}

#[test]
fn only_the_tests_the_kernel_runs_are_accepted_on_known_fields() {
    assert_eq!(
        kernel("spawned_process and proc.name startswith py"),
        Err(NotExpressible::Test {
            field: "proc.name",
            allowed: "`=` or `in`"
        })
    );
    assert_eq!(
        kernel("spawned_process and proc.name = a and proc.args contains x"),
        Err(NotExpressible::Test {
            field: "proc.args",
            allowed: "`startswith` with one prefix"
        })
    );
    assert_eq!(
        kernel("spawned_process and proc.name = a and container.id = abc"),
        Err(NotExpressible::Test {
            field: "container.id",
            allowed: "`!= host`"
        })
    );
}

#[test]
fn a_path_key_is_zero_padded_and_an_argument_prefix_keeps_its_length() {
    let key = path_key("/bin/nc");
    assert_eq!(&key[..7], b"/bin/nc");
    assert!(key[7..].iter().all(|b| *b == 0));
    let args = args_value("-e /bin");
    assert_eq!(args.len, 7);
    assert_eq!(&args.prefix[..7], b"-e /bin");
}

fn slots(entries: &[(u8, KernelMatch)]) -> BTreeMap<u8, KernelMatch> {
    entries.iter().cloned().collect()
}

#[test]
fn a_deny_slot_must_be_a_slot_and_must_not_compare_arguments() {
    let with_args = KernelMatch {
        args_prefix: Some("-e".into()),
        ..names(&["nc"])
    };
    let set = slots(&[(0, names(&["xmrig"])), (3, with_args.clone())]);
    assert!(check_deny(&set, 0).is_ok());
    assert!(check_deny(&set, 1 << 0).is_ok());
    assert!(matches!(
        check_deny(&set, 1 << 1),
        Err(KillMapsError::DenyNotASlot(1))
    ));
    assert!(matches!(
        check_deny(&set, 1 << 0 | 1 << 3),
        Err(KillMapsError::Deny {
            slot: 3,
            source: NotExpressible::ArgsAtDeny
        })
    ));
    assert!(matches!(
        check_deny(&set, 1 << 63),
        Err(KillMapsError::DenyNotASlot(63))
    ));
    assert_eq!(deny_match(&with_args), Err(NotExpressible::ArgsAtDeny));
    assert_eq!(deny_match(&names(&["nc"])), Ok(()));
}

#[test]
fn a_deny_slot_whose_match_changes_goes_back_to_the_exec_hook_until_its_keys_are_written() {
    // Slot 0 stays a deny slot with its match; slot 1 stays one but its
    // match changes; slot 2 stops being one; slot 3 becomes one.
    let old = 0b0111;
    let new = 0b1011;
    let changed = 0b0010;
    assert_eq!(deny_before(old, new, changed), 0b0001);
    // Nothing changes: every deny slot stays throughout.
    assert_eq!(deny_before(old, old, 0), old);
    // Nothing was denied before: nothing is while the keys move.
    assert_eq!(deny_before(0, new, changed), 0);
}
