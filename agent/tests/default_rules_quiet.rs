//! The default rules against a real day's work on a host: building a crate
//! with cargo and running the usual shell tools must raise no violation,
//! while reading /etc/shadow with cat raises exactly the one rule about it.

mod support;

use std::{collections::BTreeSet, path::Path, process::Stdio};

use serde_json::Value;
use support::{Agent, Layout, TempDir, TestCgroup, config_for, in_cgroup, kernel_test};

/// The rule the positive control fires: it is one of the defaults that
/// applies on the host.
const CONTROL_RULE: &str = "Sensitive system file read by unexpected program";

/// Ordinary shell work in `dir`, with the tools a CI machine may lack
/// skipped; no network beyond the machine itself.
const SHELL_WORK: &str = r#"
set -eu
cd "$WORK"
has() { command -v "$1" >/dev/null 2>&1; }
ls -la . >/dev/null
cat src/main.rs Cargo.toml >/dev/null
grep -rn "fn main" src >/dev/null
sed -n '1,3p' Cargo.toml >/dev/null
sed 's/hello/bye/' src/main.rs > edited.rs
awk '{ n += NF } END { print n }' src/main.rs >/dev/null
find . -name '*.rs' -newer Cargo.toml >/dev/null || true
ps -ef >/dev/null
head -n 1 /etc/passwd >/dev/null
mkdir -p notes
echo "first" > notes/a.txt
cp notes/a.txt notes/b.txt
mv notes/b.txt notes/c.txt
tar -czf notes.tgz notes
tar -tzf notes.tgz >/dev/null
tar -xzf notes.tgz -C "$HOME_DIR"
rm -r notes notes.tgz edited.rs
rm -f "$HOME_DIR/notes/a.txt" "$HOME_DIR/notes/c.txt"
if has git; then
  git init -q repo
  git -C repo -c user.name=dev -c user.email=dev@example.com commit -q --allow-empty -m first
  git -C repo status --short >/dev/null
  git -C repo log --oneline >/dev/null
fi
if has vim; then
  echo "draft" > "$HOME_DIR/draft.txt"
  vim -Es -u NONE -i NONE -c '%s/draft/final/' -c 'wq' "$HOME_DIR/draft.txt" </dev/null
fi
if has less; then less -F Cargo.toml </dev/null >/dev/null; fi
if has curl; then curl -fsS "file://$WORK/Cargo.toml" >/dev/null; fi
if has ssh; then ssh -V 2>/dev/null; fi
if has ssh-keygen; then
  ssh-keygen -q -t ed25519 -N '' -f "$HOME_DIR/id_test"
  ssh-keygen -y -f "$HOME_DIR/id_test" >/dev/null
fi
if has apt; then apt list --installed 2>/dev/null | head -n 3 >/dev/null; fi
"#;

fn write(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create the crate's directories");
    }
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

fn violations<'a>(events: &'a [Value], cgroup: &TestCgroup) -> Vec<&'a Value> {
    in_cgroup(events, cgroup)
        .filter(|e| e["kind"] == "violation")
        .collect()
}

fn describe(violations: &[&Value]) -> String {
    violations
        .iter()
        .map(|v| {
            format!(
                "{}: {}",
                v["violation"]["rule"].as_str().unwrap_or("?"),
                v["violation"]["output"].as_str().unwrap_or("?")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn building_a_crate_and_using_shell_tools_on_a_host_raises_nothing_but_reading_shadow_does() {
    let Some(_kernel) = kernel_test() else { return };
    let cgroup = TestCgroup::with_layout(Layout::Host);
    // The defaults are on unless the config turns them off; say so anyway.
    let config = format!(
        "{}rules:\n  defaults: true\n  reload_interval_ms: 0\n",
        config_for(&cgroup)
    );
    let agent = Agent::start(&config);

    // A fresh crate without dependencies, built offline into its own target
    // directory.
    let work = TempDir::new("quiet-work");
    let home = TempDir::new("quiet-home");
    write(
        &work.path.join("Cargo.toml"),
        "[package]\nname = \"hello\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\n",
    );
    write(
        &work.path.join("src/main.rs"),
        "fn main() {\n    println!(\"hello\");\n}\n",
    );
    let build = cgroup
        .command(env!("CARGO"))
        .args(["build", "--offline", "--quiet"])
        .current_dir(&work.path)
        .env("CARGO_TARGET_DIR", work.path.join("target"))
        .stdin(Stdio::null())
        .output()
        .expect("run cargo");
    assert!(
        build.status.success(),
        "cargo build failed: {}",
        String::from_utf8_lossy(&build.stderr)
    );
    assert!(
        work.path.join("target/debug/hello").exists(),
        "the crate was built"
    );

    let shell = cgroup
        .command("/bin/sh")
        .args(["-c", SHELL_WORK])
        .env("WORK", &work.path)
        .env("HOME_DIR", &home.path)
        .stdin(Stdio::null())
        .output()
        .expect("run the shell tools");
    assert!(
        shell.status.success(),
        "the shell tools failed: {}",
        String::from_utf8_lossy(&shell.stderr)
    );

    // The positive control, last: once its violation is out, every event
    // before it has been through the rules.
    let mut control = cgroup
        .command("/bin/cat")
        .arg("/etc/shadow")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("run cat");
    let control_pid = control.id();
    assert!(control.wait().expect("wait for cat").success());
    agent.wait_for_events("the control's violation", |events| {
        events.iter().any(|e| {
            e["kind"] == "violation"
                && e["process"]["pid"] == control_pid
                && e["violation"]["rule"] == CONTROL_RULE
        })
    });
    let (events, status) = agent.stop();
    assert!(status.success(), "the agent stops cleanly: {status}");

    // The agent saw the work: the compiler and the tools ran in the cgroup.
    let programs: BTreeSet<&str> = in_cgroup(&events, &cgroup)
        .filter(|e| e["kind"] == "process_exec")
        .filter_map(|e| e["process"]["comm"].as_str())
        .collect();
    for expected in ["cargo", "rustc", "sh", "ls", "grep", "tar", "cat"] {
        assert!(
            programs.contains(expected),
            "no exec of {expected} among {programs:?}"
        );
    }

    let all = violations(&events, &cgroup);
    let (control, others): (Vec<&Value>, Vec<&Value>) = all
        .into_iter()
        .partition(|v| v["process"]["pid"] == control_pid);
    assert!(
        others.is_empty(),
        "ordinary work raised violations:\n{}",
        describe(&others)
    );
    assert_eq!(
        control.len(),
        1,
        "one violation for cat /etc/shadow:\n{}",
        describe(&control)
    );
    let v = &control[0]["violation"];
    assert_eq!(v["rule"], CONTROL_RULE);
    assert_eq!(v["event_type"], "openat");
    let output = v["output"].as_str().expect("an output");
    assert!(
        output.contains("file=/etc/shadow") && output.contains("process=cat"),
        "{output}"
    );
    assert!(output.contains("container=host"), "{output}");
    support::assert_schema_valid(&events);
}
