use std::collections::HashMap;

use super::*;
use crate::events::{
    Event, EventKind,
    event::{Process, WallTime},
    kubernetes::Kubernetes,
};

const PLATFORM: &str = "\
- list: shells
  items: [bash, sh]
- rule: Shell started
  desc: a shell
  condition: evt.type = execve and proc.name in (shells)
  output: shell %proc.name
  priority: WARNING
";

fn files() -> Vec<RulesFile> {
    vec![(Arc::from("platform.yaml"), Arc::from(PLATFORM))]
}

fn resource(namespace: Option<&str>, generation: i64, rules: &str) -> ResourceRules {
    ResourceRules {
        key: ResourceKey {
            namespace: namespace.map(str::to_owned),
            name: "r".into(),
        },
        generation,
        rules: Some(Arc::from(rules)),
        mode: None,
    }
}

fn team_rule(name: &str, process: &str) -> String {
    format!(
        "- rule: {name}\n  desc: d\n  condition: evt.type = execve and proc.name = {process}\n  \
         output: o\n  priority: ERROR\n  actions: [kill]\n"
    )
}

fn run(
    resources: &[ResourceRules],
    previous: &HashMap<ResourceKey, ResourceRules>,
    platform: &PlatformModes,
) -> Assembled {
    assemble(
        &files(),
        resources,
        previous,
        platform,
        &Selection::default(),
        MatchMode::All,
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn exec_in(namespace: &str, comm: &str) -> Event {
    Event {
        process: Some(Arc::new(Process {
            pid: 10,
            comm: comm.into(),
            ..Process::default()
        })),
        kubernetes: Some(Arc::new(Kubernetes {
            namespace: Some(namespace.into()),
            ..Kubernetes::unresolved()
        })),
        ..Event::new(
            EventKind::ProcessExec,
            WallTime(std::time::SystemTime::now()),
            1,
            "n".into(),
        )
    }
}

fn fired(set: &RuleSet, event: &Event) -> Vec<String> {
    set.fired(event)
}

#[test]
fn a_team_rule_is_named_into_its_namespace_and_fires_there_only() {
    let shop = resource(Some("shop"), 1, &team_rule("Miner", "xmrig"));
    let assembled = run(&[shop], &HashMap::new(), &PlatformModes::default());
    assert_eq!(
        assembled.verdicts[0].outcome,
        Outcome::Accepted {
            rules: 1,
            warnings: Vec::new()
        }
    );
    let rule = assembled
        .set
        .rules()
        .iter()
        .find(|r| r.name == "shop/Miner")
        .expect("the team's rule");
    assert_eq!(rule.actions, [crate::actions::Action::Kill]);
    assert_eq!(
        fired(&assembled.set, &exec_in("shop", "xmrig")),
        ["shop/Miner"]
    );
    assert!(fired(&assembled.set, &exec_in("other", "xmrig")).is_empty());
    assert_eq!(
        fired(&assembled.set, &exec_in("other", "bash")),
        ["Shell started"],
        "the platform's rules stay"
    );
}

#[test]
fn a_team_may_use_the_platforms_lists_but_not_define_or_redefine() {
    let uses_list = resource(
        Some("shop"),
        1,
        "- rule: Shell here\n  desc: d\n  condition: evt.type = execve and proc.name in (shells)\n  output: o\n  priority: ERROR\n",
    );
    let defines = resource(Some("a"), 1, "- macro: mine\n  condition: proc.name = x\n");
    let redefines = resource(
        Some("b"),
        1,
        "- rule: Shell started\n  desc: d\n  condition: evt.type = execve\n  output: o\n  priority: DEBUG\n",
    );
    let disables = resource(Some("c"), 1, "- rule: Shell started\n  enabled: false\n");
    let assembled = run(
        &[uses_list, defines, redefines, disables],
        &HashMap::new(),
        &PlatformModes::default(),
    );
    let by_namespace = |ns: &str| {
        assembled
            .verdicts
            .iter()
            .find(|v| v.key.namespace.as_deref() == Some(ns))
            .map(|v| v.outcome.clone())
            .expect("a verdict")
    };
    assert_eq!(
        by_namespace("shop"),
        Outcome::Accepted {
            rules: 1,
            warnings: Vec::new()
        }
    );
    match by_namespace("a") {
        Outcome::Refused(m) => assert!(
            m.starts_with("RuleSet a/r (spec.rules):1:3: macro \"mine\""),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
    match by_namespace("b") {
        Outcome::Refused(m) => assert!(
            m.contains("rule \"Shell started\" is the platform's"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(by_namespace("c"), Outcome::Invalid(_) | Outcome::Refused(_)),
        "disabling the platform's rule is not taken"
    );
    let platform = assembled
        .set
        .rules()
        .iter()
        .find(|r| r.name == "Shell started")
        .expect("the platform's rule");
    assert!(platform.enabled && platform.namespace.is_none());
}

#[test]
fn an_invalid_generation_names_its_line_and_the_previous_one_stays_in_force() {
    let first = resource(Some("shop"), 1, &team_rule("Miner", "xmrig"));
    let accepted = run(
        std::slice::from_ref(&first),
        &HashMap::new(),
        &PlatformModes::default(),
    );
    let broken = resource(
        Some("shop"),
        2,
        "- rule: Miner\n  desc: d\n  condition: evt.type = execve and proc.nme = xmrig\n  output: o\n  priority: ERROR\n",
    );
    let assembled = run(&[broken], &accepted.in_force, &PlatformModes::default());
    let verdict = &assembled.verdicts[0];
    assert_eq!(verdict.generation, 2);
    match &verdict.outcome {
        Outcome::Invalid(m) => {
            assert!(m.starts_with("RuleSet shop/r (spec.rules):3:"), "{m}");
            assert!(m.contains("proc.nme"), "{m}");
            assert!(m.ends_with("generation 1 stays in force"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(assembled.in_force[&verdict.key].generation, 1);
    assert_eq!(
        fired(&assembled.set, &exec_in("shop", "xmrig")),
        ["shop/Miner"]
    );
}

#[test]
fn two_rule_sets_of_a_namespace_cannot_define_the_same_rule() {
    let first = resource(Some("shop"), 1, &team_rule("Miner", "xmrig"));
    let second = ResourceRules {
        key: ResourceKey {
            namespace: Some("shop".into()),
            name: "s".into(),
        },
        ..resource(Some("shop"), 1, &team_rule("Miner", "minerd"))
    };
    let assembled = run(&[second, first], &HashMap::new(), &PlatformModes::default());
    assert_eq!(
        assembled.verdicts[0].outcome,
        Outcome::Accepted {
            rules: 1,
            warnings: Vec::new()
        }
    );
    match &assembled.verdicts[1].outcome {
        Outcome::Refused(m) => assert!(
            m.contains("rule \"shop/Miner\" is already defined by another RuleSet"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        fired(&assembled.set, &exec_in("shop", "xmrig")),
        ["shop/Miner"]
    );
    assert!(fired(&assembled.set, &exec_in("shop", "minerd")).is_empty());
}

#[test]
fn a_mode_can_be_raised_but_not_lowered_below_the_platforms() {
    let platform = PlatformModes {
        default: Mode::Monitor,
        namespaces: BTreeMap::from([("payments".to_owned(), Mode::Enforce)]),
    };
    let raise = ResourceRules {
        mode: Some(Mode::Enforce),
        rules: None,
        ..resource(Some("shop"), 1, "")
    };
    let lower = ResourceRules {
        mode: Some(Mode::Warn),
        rules: None,
        ..resource(Some("payments"), 1, "")
    };
    let assembled = run(&[raise, lower], &HashMap::new(), &platform);
    assert_eq!(
        assembled.set.namespace_modes(),
        &BTreeMap::from([("shop".to_owned(), Mode::Enforce)])
    );
    let refused = assembled
        .verdicts
        .iter()
        .find(|v| v.key.namespace.as_deref() == Some("payments"))
        .expect("a verdict");
    match &refused.outcome {
        Outcome::Refused(m) => assert!(
            m.contains(
                "spec.mode: warn would lower namespace payments below the platform's enforce"
            ),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_cluster_rule_set_extends_the_platform_and_a_broken_one_is_refused_alone() {
    let adds = ResourceRules {
        key: ResourceKey {
            namespace: None,
            name: "a-extra".into(),
        },
        ..resource(
            None,
            1,
            "- list: shells\n  items: [zsh]\n  append: true\n- rule: Miner\n  desc: d\n  condition: evt.type = execve and proc.name = xmrig\n  output: o\n  priority: ERROR\n",
        )
    };
    let broken = ResourceRules {
        key: ResourceKey {
            namespace: None,
            name: "b-broken".into(),
        },
        ..resource(None, 4, "- rule: [oops\n")
    };
    let assembled = run(&[broken, adds], &HashMap::new(), &PlatformModes::default());
    assert_eq!(
        assembled.verdicts[0].outcome,
        Outcome::Accepted {
            rules: 1,
            warnings: vec![
                "ClusterRuleSet a-extra (spec.rules):1:3: warning: list \"shells\": `append: true` \
                 is deprecated; use `override` (e.g. `override: {condition: append}`)"
                    .to_owned()
            ]
        }
    );
    match &assembled.verdicts[1].outcome {
        Outcome::Invalid(m) => assert!(
            m.starts_with("ClusterRuleSet b-broken (spec.rules):2:1: error: yaml syntax error"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(fired(&assembled.set, &exec_in("any", "xmrig")), ["Miner"]);
    assert_eq!(
        fired(&assembled.set, &exec_in("any", "zsh")),
        ["Shell started"]
    );
}

#[test]
fn warnings_about_a_resource_reach_its_verdict_with_their_lines_and_the_platforms_do_not() {
    let platform_warns = format!("{PLATFORM}  colour: blue\n");
    let team = format!("{}  severity: high\n", team_rule("Miner", "xmrig"));
    let cluster = "- macro: never_used\n  condition: proc.name = nothing\n";
    let assembled = assemble(
        &[(
            Arc::from("platform.yaml"),
            Arc::from(platform_warns.as_str()),
        )],
        &[resource(Some("shop"), 1, &team), resource(None, 1, cluster)],
        &HashMap::new(),
        &PlatformModes::default(),
        &Selection::default(),
        MatchMode::All,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let warnings_of = |namespace: Option<&str>| match &assembled
        .verdicts
        .iter()
        .find(|v| v.key.namespace.as_deref() == namespace)
        .expect("a verdict")
        .outcome
    {
        Outcome::Accepted { warnings, .. } => warnings.clone(),
        other => panic!("accepted: {other:?}"),
    };
    let team = warnings_of(Some("shop"));
    assert_eq!(team.len(), 1, "{team:?}");
    assert!(
        team[0].starts_with("RuleSet shop/r (spec.rules):7:") && team[0].contains("\"severity\""),
        "{team:?}"
    );
    let cluster = warnings_of(None);
    assert_eq!(cluster.len(), 1, "{cluster:?}");
    assert!(
        cluster[0].contains("never_used") && cluster[0].contains("not used by any rule"),
        "{cluster:?}"
    );
}
