//! Rules from the cluster's custom resources, checked one resource at a
//! time so that a bad one is refused alone and the rest stay in force.
//!
//! - A `ClusterRuleSet` is a rules file of the platform's: loaded after the
//!   agent's files and the ClusterRuleSets before it in name order.
//! - A team's `RuleSet` may only make its namespace stricter: it adds `rule`
//!   items (which may use the platform's lists and macros, never define,
//!   override or disable anything of the platform's), tested against that
//!   namespace's events only and named `<namespace>/<name>`, and it may
//!   raise the namespace's mode, never lower it below the platform's.
//!
//! A resource whose new generation is refused keeps its last accepted
//! generation in force; each gets a [`Verdict`] for its status.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    fmt,
    sync::Arc,
};

use super::{
    MatchMode, RuleSet, Selection,
    diag::{RulesError, Severity},
    loader::{self, Definitions, RuleDef, RulesFile},
};
use crate::actions::Mode;

/// Which resource: a ClusterRuleSet by name, or a RuleSet by namespace and
/// name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceKey {
    /// The namespace of a RuleSet; `None` for a ClusterRuleSet.
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
}

impl fmt::Display for ResourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(namespace) => write!(f, "RuleSet {namespace}/{}", self.name),
            None => write!(f, "ClusterRuleSet {}", self.name),
        }
    }
}

/// One generation of a resource, as the watch saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceRules {
    /// Which resource.
    pub key: ResourceKey,
    /// Its `metadata.generation`.
    pub generation: i64,
    /// `spec.rules`.
    pub rules: Option<Arc<str>>,
    /// `spec.mode` (RuleSets only).
    pub mode: Option<Mode>,
}

impl ResourceRules {
    /// The name its rules go by in diagnostics.
    fn file_name(&self) -> Arc<str> {
        Arc::from(format!("{} (spec.rules)", self.key))
    }
}

/// What became of one generation of a resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Which resource.
    pub key: ResourceKey,
    /// The generation judged.
    pub generation: i64,
    /// Accepted or not, and why.
    pub outcome: Outcome,
}

/// Whether a generation is in force.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// In force, adding this many rules.
    Accepted {
        /// Rules it adds.
        rules: usize,
        /// What loading or compiling it warned of (an unknown key, an
        /// unused macro), each with its line: in force, but worth a look.
        warnings: Vec<String>,
    },
    /// It does not load or compile.
    Invalid(String),
    /// It would weaken enforcement.
    Refused(String),
}

impl Outcome {
    /// What is wrong; empty when accepted.
    pub fn message(&self) -> &str {
        match self {
            Outcome::Accepted { .. } => "",
            Outcome::Invalid(m) | Outcome::Refused(m) => m,
        }
    }

    /// The condition's reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Outcome::Accepted { .. } => "Accepted",
            Outcome::Invalid(_) => "Invalid",
            Outcome::Refused(_) => "Refused",
        }
    }
}

/// The modes the platform sets, below which a team cannot go.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlatformModes {
    /// `containment.mode`.
    pub default: Mode,
    /// `containment.namespaces`.
    pub namespaces: BTreeMap<String, Mode>,
}

impl PlatformModes {
    fn floor(&self, namespace: &str) -> Mode {
        self.namespaces
            .get(namespace)
            .copied()
            .unwrap_or(self.default)
    }
}

/// The rules in force with the resources', and what became of each.
#[derive(Debug)]
pub struct Assembled {
    /// The compiled rules.
    pub set: RuleSet,
    /// One per resource given.
    pub verdicts: Vec<Verdict>,
    /// The generation of each resource now in force.
    pub in_force: HashMap<ResourceKey, ResourceRules>,
}

/// Compiles `files` (defaults included) with `resources`, falling back for
/// each refused resource to its generation in `previous`. Fails only when
/// the files themselves do not load or compile.
pub fn assemble(
    files: &[RulesFile],
    resources: &[ResourceRules],
    previous: &HashMap<ResourceKey, ResourceRules>,
    platform: &PlatformModes,
    selection: &Selection,
    mode: MatchMode,
) -> Result<Assembled, RulesError> {
    let mut good: Vec<RulesFile> = files.to_vec();
    let mut definitions = loader::load(&good)?;
    if !resources.is_empty() {
        // Files that do not compile would make every resource look invalid;
        // without resources the compile below says so, once.
        RuleSet::from_definitions(&definitions, selection, mode)?;
    }
    let mut sorted: Vec<&ResourceRules> = resources.iter().collect();
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    let mut verdicts = Vec::with_capacity(sorted.len());
    let mut in_force = HashMap::new();

    for resource in sorted.iter().filter(|r| r.key.namespace.is_none()) {
        let check = |candidate: &ResourceRules| -> Result<(RulesFile, Accepted), Outcome> {
            let file: RulesFile = (
                candidate.file_name(),
                candidate.rules.clone().unwrap_or_else(|| Arc::from("")),
            );
            let mut trial = good.clone();
            trial.push(file.clone());
            let loaded = loader::load(&trial).map_err(invalid)?;
            let set = RuleSet::from_definitions(&loaded, selection, mode).map_err(invalid)?;
            let rules = loaded
                .rules
                .iter()
                .filter(|r| r.position.file == file.0)
                .count();
            let warnings = own_warnings(&set, &file.0);
            Ok((file, Accepted { rules, warnings }))
        };
        let (kept, verdict) = judge(resource, previous, check);
        verdicts.push(verdict);
        if let Some((candidate, file)) = kept {
            good.push(file);
            in_force.insert(candidate.key.clone(), candidate);
        }
    }
    if good.len() > files.len() {
        definitions = loader::load(&good)?;
    }

    let platform_rules: HashSet<&str> = definitions.rules.iter().map(|r| r.name.as_str()).collect();
    let mut team_rules: Vec<RuleDef> = Vec::new();
    let mut namespace_modes: BTreeMap<String, Mode> = BTreeMap::new();
    for resource in sorted.iter().filter(|r| r.key.namespace.is_some()) {
        let check = |candidate: &ResourceRules| {
            let (rules, warnings) = team_rules_of(
                candidate,
                &definitions,
                &platform_rules,
                platform,
                selection,
                mode,
            )?;
            if let Some(taken) = rules
                .iter()
                .find(|r| team_rules.iter().any(|t| t.name == r.name))
            {
                return Err(Outcome::Refused(format!(
                    "{}: rule \"{}\" is already defined by another RuleSet in this namespace",
                    taken.position, taken.name
                )));
            }
            let accepted = Accepted {
                rules: rules.len(),
                warnings,
            };
            Ok((rules, accepted))
        };
        let (kept, verdict) = judge(resource, previous, check);
        verdicts.push(verdict);
        if let Some((candidate, rules)) = kept {
            if let (Some(namespace), Some(m)) = (&candidate.key.namespace, candidate.mode) {
                let entry = namespace_modes.entry(namespace.clone()).or_insert(m);
                *entry = (*entry).max(m);
            }
            team_rules.extend(rules);
            in_force.insert(candidate.key.clone(), candidate);
        }
    }
    definitions.rules.extend(team_rules);
    let mut set = RuleSet::from_definitions(&definitions, selection, mode)?;
    set.set_namespace_modes(namespace_modes);
    Ok(Assembled {
        set,
        verdicts,
        in_force,
    })
}

/// Checks `resource`; when refused, checks its generation in force before
/// (if another) instead. Returns what to keep in force and the verdict on
/// `resource`.
fn judge<T>(
    resource: &ResourceRules,
    previous: &HashMap<ResourceKey, ResourceRules>,
    check: impl Fn(&ResourceRules) -> Result<(T, Accepted), Outcome>,
) -> (Option<(ResourceRules, T)>, Verdict) {
    let verdict = |outcome| Verdict {
        key: resource.key.clone(),
        generation: resource.generation,
        outcome,
    };
    match check(resource) {
        Ok((kept, Accepted { rules, warnings })) => (
            Some((resource.clone(), kept)),
            verdict(Outcome::Accepted { rules, warnings }),
        ),
        Err(outcome) => {
            let fallback = previous
                .get(&resource.key)
                .filter(|p| *p != resource)
                .and_then(|p| check(p).ok().map(|(kept, _)| (p.clone(), kept)));
            let outcome = match (&fallback, outcome) {
                (Some((p, _)), Outcome::Invalid(m)) => {
                    Outcome::Invalid(format!("{m}\ngeneration {} stays in force", p.generation))
                }
                (Some((p, _)), Outcome::Refused(m)) => {
                    Outcome::Refused(format!("{m}\ngeneration {} stays in force", p.generation))
                }
                (_, outcome) => outcome,
            };
            (fallback, verdict(outcome))
        }
    }
}

fn invalid(e: RulesError) -> Outcome {
    Outcome::Invalid(e.to_string())
}

/// What a check found acceptable.
struct Accepted {
    rules: usize,
    warnings: Vec<String>,
}

/// The warnings about `file` alone: the platform's own are not the
/// resource's to fix.
fn own_warnings(set: &RuleSet, file: &Arc<str>) -> Vec<String> {
    set.warnings()
        .iter()
        .filter(|d| d.position.file == *file)
        .map(ToString::to_string)
        .collect()
}

/// A team's rules, scoped to its namespace and renamed into it; or why the
/// resource cannot be taken.
fn team_rules_of(
    resource: &ResourceRules,
    platform_definitions: &Definitions,
    platform_rules: &HashSet<&str>,
    platform: &PlatformModes,
    selection: &Selection,
    mode: MatchMode,
) -> Result<(Vec<RuleDef>, Vec<String>), Outcome> {
    let Some(namespace) = resource.key.namespace.as_deref() else {
        return Ok((Vec::new(), Vec::new()));
    };
    if let Some(wanted) = resource.mode {
        let floor = platform.floor(namespace);
        if wanted < floor {
            return Err(Outcome::Refused(format!(
                "spec.mode: {wanted} would lower namespace {namespace} below the platform's \
                 {floor}; a RuleSet can only raise its namespace's mode"
            )));
        }
    }
    let Some(text) = resource.rules.clone() else {
        return Ok((Vec::new(), Vec::new()));
    };
    let name = resource.file_name();
    let alone = loader::load(&[(name.clone(), text)]).map_err(invalid)?;
    if let Some(list) = alone.lists.first() {
        return Err(Outcome::Refused(format!(
            "{}: list \"{}\": a RuleSet adds rules only; lists and macros are the platform's \
             (a ClusterRuleSet)",
            list.position, list.name
        )));
    }
    if let Some(found) = alone.macros.first() {
        return Err(Outcome::Refused(format!(
            "{}: macro \"{}\": a RuleSet adds rules only; lists and macros are the platform's \
             (a ClusterRuleSet)",
            found.position, found.name
        )));
    }
    if let Some(rule) = alone
        .rules
        .iter()
        .find(|r| platform_rules.contains(r.name.as_str()))
    {
        return Err(Outcome::Refused(format!(
            "{}: rule \"{}\" is the platform's: a RuleSet cannot redefine, override or disable \
             it; give yours a name of its own",
            rule.position, rule.name
        )));
    }
    // A team's file adds only rules of its own, so it compiles against the
    // platform's lists and macros as they are, without loading the
    // platform's files again for each RuleSet.
    let loaded = Definitions {
        lists: platform_definitions.lists.clone(),
        macros: platform_definitions.macros.clone(),
        rules: alone.rules,
        warnings: alone.warnings,
    };
    let set = RuleSet::from_definitions(&loaded, selection, mode).map_err(|e| {
        // Only the team's own problems: the platform's compiled already.
        let own: Vec<_> =
            e.0.into_iter()
                .filter(|d| d.severity == Severity::Error && d.position.file == name)
                .collect();
        if own.is_empty() {
            Outcome::Invalid("the rules do not compile with the platform's".to_owned())
        } else {
            invalid(RulesError(own))
        }
    })?;
    let warnings = own_warnings(&set, &name);
    Ok((scoped(loaded.rules, namespace), warnings))
}

/// A team's rules, named `<namespace>/<name>` and tested against
/// `namespace`'s events only.
fn scoped(rules: Vec<RuleDef>, namespace: &str) -> Vec<RuleDef> {
    rules
        .into_iter()
        .map(|mut rule| {
            rule.name = format!("{namespace}/{}", rule.name);
            rule.namespace = Some(namespace.to_owned());
            rule
        })
        .collect()
}

#[cfg(test)]
mod tests;
