//! `guardrails rules bench` (hidden): what loading and evaluating rules
//! costs, for `cargo xtask bench rules`.
//!
//! The rules are loaded and compiled several times (the median counts, in
//! CPU time of the loading thread; wall-clock too). The
//! recorded events are read and deserialized once, before anything is timed;
//! then they are evaluated in a loop on one thread, with an empty rule set
//! (the baseline: the loop, the view and the type lookup) and with the rules,
//! alternating; then with the rules on several threads at once. With
//! `--profile`, each enabled rule's condition and each field the rules read
//! are also timed alone over the events they apply to. Rates are per second
//! of the evaluating thread's CPU time (wall-clock rates are given too), so
//! that other work on the machine does not count. The figures are one JSON
//! line.

use std::{
    collections::HashMap,
    io::Write,
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use super::{RulesBenchArgs, rules::RulesCommandError};
use crate::{
    events::{
        event::{Ancestor, ArgValue, Event, EventKind, Leader},
        reader::BATCH_EVENTS,
    },
    process::Args,
    rules::{
        MatchMode, RuleSet, Selection, Sources,
        eval::Accessor,
        fields::{EventView, FieldArg},
        index::event_type_id,
        verdicts::Verdicts,
    },
};

/// One timed loop: how many events were evaluated, how many violations
/// they raised, and how long it took.
#[derive(Clone, Copy, Debug, Default)]
struct Run {
    events: u64,
    violations: u64,
    /// Events given a verdict reached before in the same pass.
    reused: u64,
    /// Wall-clock time.
    elapsed: Duration,
    /// CPU time of the thread that ran the loop.
    cpu: Duration,
}

impl Run {
    /// Events per second of the thread's CPU time: what one core does,
    /// whatever else the machine runs.
    #[expect(clippy::cast_precision_loss, reason = "a rate, not an exact count")]
    fn rate(self) -> f64 {
        self.events as f64 / self.cpu.as_secs_f64().max(1e-9)
    }

    /// Events per second of wall-clock time.
    #[expect(clippy::cast_precision_loss, reason = "a rate, not an exact count")]
    fn wall_rate(self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl std::ops::AddAssign for Run {
    fn add_assign(&mut self, other: Self) {
        self.events += other.events;
        self.violations += other.violations;
        self.reused += other.reused;
        self.elapsed += other.elapsed;
        self.cpu += other.cpu;
    }
}

/// Whether a loop keeps the rules' verdicts on calls it has seen, as the
/// agent does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Keep {
    Verdicts,
    None,
}

/// The calling thread's CPU time.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, which `ts` is.
    let ok = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } == 0;
    if !ok {
        return Duration::ZERO;
    }
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

/// Runs the benchmark and writes its figures as one JSON line to `out`.
pub fn run(args: &RulesBenchArgs, out: &mut impl Write) -> Result<(), RulesCommandError> {
    let sources = Sources {
        defaults: args.with_defaults,
        files: args.rules.clone(),
        selection: Selection::default(),
        mode: MatchMode::All,
    };
    let started = Instant::now();
    let cpu = thread_cpu();
    let set = RuleSet::load(&sources)?;
    let mut load_ms = vec![thread_cpu().saturating_sub(cpu).as_secs_f64() * 1e3];
    let mut load_wall_ms = vec![started.elapsed().as_secs_f64() * 1e3];
    for _ in 1..args.loads.max(1) {
        let started = Instant::now();
        let cpu = thread_cpu();
        std::hint::black_box(RuleSet::load(&sources)?);
        load_ms.push(thread_cpu().saturating_sub(cpu).as_secs_f64() * 1e3);
        load_wall_ms.push(started.elapsed().as_secs_f64() * 1e3);
    }
    load_wall_ms.sort_by(f64::total_cmp);
    load_ms.sort_by(f64::total_cmp);
    let empty = RuleSet::from_texts(&[], &Selection::default(), MatchMode::All)?;

    let (mut events, skipped) = read_events(args)?;
    Sharing::default().share(&mut events);
    let seconds = Duration::from_secs_f64(args.seconds.clamp(0.01, 600.0));

    let mut baseline = Run::default();
    let mut single = Run::default();
    let mut every_rule_tested = Run::default();
    for _ in 0..args.rounds.max(1) {
        let b = evaluate_for(&empty, &events, seconds, Keep::Verdicts);
        if b.rate() > baseline.rate() {
            baseline = b;
        }
        let r = evaluate_for(&set, &events, seconds, Keep::Verdicts);
        if r.rate() > single.rate() {
            single = r;
        }
        let r = evaluate_for(&set, &events, seconds, Keep::None);
        if r.rate() > every_rule_tested.rate() {
            every_rule_tested = r;
        }
    }
    // The same with each slice of events evaluated while still in the cache,
    // as the agent evaluates a batch right after decoding it.
    let warm_baseline = evaluate_warm(&empty, &events);
    let warm = evaluate_warm(&set, &events);
    let workers = args.workers.max(1);
    let threaded: Vec<Run> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| scope.spawn(|| evaluate_for(&set, &events, seconds, Keep::Verdicts)))
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let threaded_rate: f64 = threaded.iter().map(|r| r.wall_rate()).sum();

    let per_pass = violations_per_pass(&set, &events);
    let mut figures = json!({
        "rules": set.rules().len(),
        "enabled": set.enabled(),
        "load_ms_median": median(&load_ms),
        "load_wall_ms_median": median(&load_wall_ms),
        "load_ms_min": load_ms.first().copied().unwrap_or(0.0),
        "load_ms_max": load_ms.last().copied().unwrap_or(0.0),
        "loads": load_ms.len(),
        "events": events.len(),
        "skipped": skipped,
        "event_types": type_counts(&events),
        "violations_per_pass": per_pass,
        "candidates_per_event": candidates_per_event(&set, &events),
        "seconds": seconds.as_secs_f64(),
        "rounds": args.rounds.max(1),
        "baseline_events_per_s": baseline.rate(),
        "events_per_s": single.rate(),
        "ratio_to_baseline": single.rate() / baseline.rate().max(1e-9),
        "ns_per_event": 1e9 / single.rate().max(1e-9),
        "ns_per_event_baseline": 1e9 / baseline.rate().max(1e-9),
        "verdicts_reused_share": share(single.reused, single.events),
        "without_verdicts_events_per_s": every_rule_tested.rate(),
        "warm_baseline_events_per_s": warm_baseline.rate(),
        "warm_events_per_s": warm.rate(),
        "warm_slice": WARM_SLICE,
        "violations": single.violations,
        "evaluated": single.events,
        "workers": workers,
        "workers_events_per_s": threaded_rate,
        "workers_each_events_per_s": threaded.iter().map(|r| r.wall_rate()).collect::<Vec<_>>(),
        "workers_each_events_per_cpu_s": threaded.iter().map(|r| r.rate()).collect::<Vec<_>>(),
        "wall_events_per_s": single.wall_rate(),
        "wall_baseline_events_per_s": baseline.wall_rate(),
    });
    if args.profile
        && let Some(map) = figures.as_object_mut()
    {
        map.insert("profile".to_owned(), profile(&set, &events));
    }
    serde_json::to_writer(&mut *out, &figures).map_err(|e| RulesCommandError::Output(e.into()))?;
    out.write_all(b"\n").map_err(RulesCommandError::Output)
}

/// The recorded events the rules evaluate (violations and loss reports are
/// left out, as the agent's matching step skips them), and how many lines
/// were left out.
fn read_events(args: &RulesBenchArgs) -> Result<(Vec<Event>, u64), RulesCommandError> {
    let path = args.events.display().to_string();
    let mut events = Vec::new();
    let mut skipped = 0u64;
    let bad = super::rules::each_event(&args.events, |event| {
        if matches!(event.kind, EventKind::Violation | EventKind::EventsLost) {
            skipped += 1;
        } else {
            events.push(event);
        }
        Ok(())
    })?;
    if let Some(first) = bad.first() {
        return Err(RulesCommandError::BadEvents {
            path,
            count: bad.len(),
            first: first.clone(),
        });
    }
    if events.is_empty() {
        return Err(RulesCommandError::NoEvents { path });
    }
    Ok((events, skipped))
}

/// Makes the replayed events share what the agent's events share: in the
/// agent, every event of a process carries the process tree's executable,
/// working directory, arguments and ancestry (one copy per process, not per
/// event), every event of a cgroup its container section and every event of
/// a container its pod section, and the names of syscalls, sensors and
/// arguments are the decoder's static strings. Deserialized one by one, each
/// event would own a copy of all of it (about 4 KiB of ancestry and
/// arguments per event here), and the replay would measure a memory
/// footprint the agent does not have.
#[derive(Default)]
struct Sharing {
    texts: std::collections::HashSet<Arc<str>>,
    args: HashMap<String, Args>,
    /// Ancestries by their pids and starts; equal keys, different images
    /// (an ancestor exec'd) are told apart by value.
    ancestries: HashMap<Vec<(u32, u64)>, Vec<Ancestry>>,
    leaders: HashMap<u32, Vec<Leader>>,
    /// Each thread's last process section.
    last_process: HashMap<u32, Arc<crate::events::event::Process>>,
    /// Each thread's last syscall section.
    last_call: HashMap<u32, Arc<crate::events::event::Syscall>>,
    /// The decoder's names of syscalls, sensors and arguments.
    names: std::collections::HashSet<&'static str>,
    /// Container sections (the enrichment hands out one per cgroup) and pod
    /// sections (the kube stage, one per container).
    containers: Vec<Arc<crate::events::event::ContainerInfo>>,
    pods: Vec<Arc<crate::events::kubernetes::Kubernetes>>,
}

impl Sharing {
    fn share(&mut self, events: &mut [Event]) {
        for syscall in crate::bpf::syscalls::SYSCALLS {
            self.names.insert(syscall.name);
            self.names.insert(syscall.sensor.name());
            self.names.extend(syscall.args.iter().map(|arg| arg.name));
        }
        for event in events {
            if let Some(process) = event.process.as_mut() {
                self.share_process(Arc::make_mut(process));
                // As the agent does, a thread's successive equal sections
                // are one.
                match self.last_process.get(&process.tid) {
                    Some(last) if **last == **process => *process = last.clone(),
                    _ => {
                        self.last_process.insert(process.tid, process.clone());
                    }
                }
            }
            if let Some(syscall) = event.syscall.as_mut() {
                self.share_syscall(Arc::make_mut(syscall));
                // As the agent does, a thread's repeats of one call share
                // its section.
                if let Some(tid) = event.process.as_ref().map(|p| p.tid) {
                    match self.last_call.get(&tid) {
                        Some(last) if **last == **syscall => *syscall = last.clone(),
                        _ => {
                            self.last_call.insert(tid, syscall.clone());
                        }
                    }
                }
            }
            if let Some(container) = event.container.as_mut() {
                *container = equal_or_new(&mut self.containers, container);
            }
            if let Some(pod) = event.kubernetes.as_mut() {
                *pod = equal_or_new(&mut self.pods, pod);
            }
        }
    }

    fn share_process(&mut self, process: &mut crate::events::event::Process) {
        for text in [
            &mut process.exe,
            &mut process.cwd,
            &mut process.user_name,
            &mut process.group_name,
            &mut process.login_name,
        ]
        .into_iter()
        .flatten()
        {
            *text = self.text(text);
        }
        if let Some(args) = process.args.as_mut() {
            let key = args.iter().collect::<Vec<_>>().join("\0");
            *args = self.args.entry(key).or_insert_with(|| args.clone()).clone();
        }
        let key: Vec<(u32, u64)> = process
            .ancestors
            .iter()
            .map(|a| (a.pid, a.start_ns))
            .collect();
        process.ancestors =
            equal_or_new(self.ancestries.entry(key).or_default(), &process.ancestors);
        for leader in [&mut process.session_leader, &mut process.group_leader]
            .into_iter()
            .flatten()
        {
            *leader = equal_or_new(self.leaders.entry(leader.pid).or_default(), leader);
        }
    }

    fn share_syscall(&mut self, syscall: &mut crate::events::event::Syscall) {
        // The decoder hands out one string for a path or text it read
        // lately (`RecentStrings`); recorded events repeat them as well.
        for value in syscall.args.values_mut() {
            if let ArgValue::Text(text) = value {
                *text = self.text(text);
            }
        }
        for path in syscall.fds.iter_mut().filter_map(|fd| fd.path.as_mut()) {
            *path = self.text(path);
        }
        for path in &mut syscall.paths {
            path.raw = self.text(&path.raw);
            if let Some(resolved) = path.resolved.as_mut() {
                *resolved = self.text(resolved);
            }
        }
        let names = &mut self.names;
        // Names the tables above do not hold (a descriptor's kind, a socket's
        // family) are static strings in the decoder too: one copy each, kept
        // for the rest of this benchmark's short run.
        let mut to_static = |name: &mut std::borrow::Cow<'static, str>| {
            let known = match names.get(name.as_ref()) {
                Some(known) => *known,
                None => {
                    let leaked: &'static str = Box::leak(name.as_ref().into());
                    names.insert(leaked);
                    leaked
                }
            };
            *name = std::borrow::Cow::Borrowed(known);
        };
        to_static(&mut syscall.name);
        to_static(&mut syscall.sensor);
        syscall.args.keys_mut().for_each(&mut to_static);
        for fd in &mut syscall.fds {
            to_static(&mut fd.arg);
            to_static(&mut fd.kind);
            if let Some(socket) = fd.socket.as_mut() {
                to_static(&mut socket.family);
                to_static(&mut socket.kind);
                to_static(&mut socket.protocol);
                if let Some(state) = socket.state.as_mut() {
                    to_static(state);
                }
            }
        }
        for path in &mut syscall.paths {
            to_static(&mut path.arg);
        }
    }

    fn text(&mut self, text: &Arc<str>) -> Arc<str> {
        if let Some(shared) = self.texts.get(text) {
            return shared.clone();
        }
        self.texts.insert(text.clone());
        text.clone()
    }
}

type Ancestry = Arc<[Ancestor]>;

/// The value in `seen` equal to `value`, else `value`, now seen.
fn equal_or_new<T: Clone + PartialEq>(seen: &mut Vec<T>, value: &T) -> T {
    if let Some(shared) = seen.iter().find(|s| *s == value) {
        return shared.clone();
    }
    seen.push(value.clone());
    value.clone()
}

/// Evaluates `events` in order, over and over, for at least `duration`, as
/// the agent's matching step does: in batches of the reader's size
/// (violations are built, then dropped), with a table of verdicts that
/// starts empty on each pass (a pass is the recording once, and what it
/// repeats is what the agent would have found repeated) or none at all.
fn evaluate_for(set: &RuleSet, events: &[Event], duration: Duration, keep: Keep) -> Run {
    let mut number = 0u64;
    let mut violations = 0u64;
    let mut reused = 0u64;
    let started = Instant::now();
    let cpu = thread_cpu();
    loop {
        let mut verdicts = (keep == Keep::Verdicts).then(Verdicts::new);
        for batch in events.chunks(BATCH_EVENTS) {
            set.evaluate_batch(
                std::hint::black_box(batch),
                number + 1,
                verdicts.as_mut(),
                |_, _| violations += 1,
            );
            number += batch.len() as u64;
        }
        reused += verdicts.map_or(0, |v| v.counts().0);
        let elapsed = started.elapsed();
        if elapsed >= duration {
            return Run {
                events: number,
                violations,
                reused,
                elapsed,
                cpu: thread_cpu().saturating_sub(cpu),
            };
        }
    }
}

/// Events per slice in the cache-warm loop.
const WARM_SLICE: usize = BATCH_EVENTS;
/// Timed passes over each slice, after one untimed pass that warms it.
const WARM_PASSES: u32 = 4;

/// One untimed `pass` over a slice of `len` events, to bring it into the
/// cache, then [`WARM_PASSES`] timed ones; `pass` returns the violations it
/// raised.
fn warm_passes(len: usize, mut pass: impl FnMut() -> u64) -> Run {
    pass();
    let started = Instant::now();
    let cpu = thread_cpu();
    let violations = (0..WARM_PASSES).map(|_| pass()).sum();
    Run {
        events: len as u64 * u64::from(WARM_PASSES),
        violations,
        elapsed: started.elapsed(),
        cpu: thread_cpu().saturating_sub(cpu),
        ..Run::default()
    }
}

/// Evaluates the events slice by slice, each slice cache-warm.
fn evaluate_warm(set: &RuleSet, events: &[Event]) -> Run {
    let mut run = Run::default();
    for (first, slice) in (1u64..).step_by(WARM_SLICE).zip(events.chunks(WARM_SLICE)) {
        run += warm_passes(slice.len(), || {
            let mut violations = 0u64;
            let mut verdicts = Verdicts::new();
            set.evaluate_batch(
                std::hint::black_box(slice),
                first,
                Some(&mut verdicts),
                |_, _| violations += 1,
            );
            violations
        });
    }
    run
}

fn violations_per_pass(set: &RuleSet, events: &[Event]) -> Value {
    let mut by_rule: HashMap<String, u64> = HashMap::new();
    let mut raised = Vec::new();
    for (number, event) in (1..).zip(events) {
        set.evaluate(event, number, &mut raised);
        for v in raised.drain(..) {
            if let Some(v) = v.violation {
                *by_rule.entry(v.rule).or_default() += 1;
            }
        }
    }
    let mut sorted: Vec<(String, u64)> = by_rule.into_iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    json!({
        "total": sorted.iter().map(|(_, n)| n).sum::<u64>(),
        "by_rule": sorted.into_iter().map(|(rule, n)| json!([rule, n])).collect::<Vec<_>>(),
    })
}

fn type_counts(events: &[Event]) -> Value {
    let mut counts: HashMap<&str, u64> = HashMap::new();
    for (number, event) in (1..).zip(events) {
        let view = EventView::new(event, number);
        *counts.entry(view.event_type()).or_default() += 1;
    }
    let mut sorted: Vec<(&str, u64)> = counts.into_iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    Value::Array(sorted.into_iter().map(|(t, n)| json!([t, n])).collect())
}

/// The mean number of enabled rules an event is tested against.
#[expect(clippy::cast_precision_loss, reason = "a mean")]
fn candidates_per_event(set: &RuleSet, events: &[Event]) -> f64 {
    let total: usize = (1..)
        .zip(events)
        .map(|(number, event)| {
            let view = EventView::new(event, number);
            candidates(set, view.event_type()).count()
        })
        .sum();
    total as f64 / events.len().max(1) as f64
}

/// The enabled rules an event of this type is tested against, as
/// `RuleSet::evaluate` picks them.
fn candidates<'s>(
    set: &'s RuleSet,
    event_type: &str,
) -> impl Iterator<Item = &'s crate::rules::compile::CompiledRule> {
    let id = event_type_id(event_type);
    set.rules().iter().filter(move |rule| {
        rule.enabled
            && match id {
                Some(id) => rule.event_types.contains(id),
                None => rule.event_types.is_all(),
            }
    })
}

/// Passes over the events when one rule or one field is timed alone.
const PROFILE_PASSES: u32 = 20;

/// Each enabled rule's condition, and each field the rules read, timed alone
/// over the events it applies to: total time per pass over the recording,
/// highest first.
#[expect(clippy::cast_precision_loss, reason = "figures")]
fn profile(set: &RuleSet, events: &[Event]) -> Value {
    let views: Vec<(usize, &str)> = (1..)
        .zip(events)
        .enumerate()
        .map(|(i, (number, event))| (i, EventView::new(event, number).event_type()))
        .collect();
    let mut rules = Vec::new();
    let mut accessors: HashMap<&Accessor, Vec<&str>> = HashMap::new();
    for rule in set.rules().iter().filter(|r| r.enabled) {
        let applies: Vec<usize> = views
            .iter()
            .filter(|(_, t)| match event_type_id(t) {
                Some(id) => rule.event_types.contains(id),
                None => rule.event_types.is_all(),
            })
            .map(|(i, _)| *i)
            .collect();
        rule.condition.visit_accessors(&mut |a| {
            accessors.entry(a).or_default().push(rule.name.as_str());
        });
        let mut matched = 0u64;
        let started = thread_cpu();
        for _ in 0..PROFILE_PASSES {
            for &i in &applies {
                let Some(event) = events.get(i) else { continue };
                let view = EventView::new(event, i as u64 + 1);
                matched += u64::from(std::hint::black_box(rule.program.eval(&view)));
            }
        }
        let per_pass_ns =
            thread_cpu().saturating_sub(started).as_nanos() as f64 / f64::from(PROFILE_PASSES);
        // The same with each slice of the events it applies to still in the
        // cache, as the agent evaluates a batch right after decoding it.
        let mut warm = Run::default();
        for slice in applies.chunks(WARM_SLICE) {
            warm += warm_passes(slice.len(), || {
                for &i in slice {
                    let Some(event) = events.get(i) else { continue };
                    let view = EventView::new(event, i as u64 + 1);
                    std::hint::black_box(rule.program.eval(&view));
                }
                0
            });
        }
        let warm_ns_per_event = warm.cpu.as_nanos() as f64 / warm.events.max(1) as f64;
        rules.push((
            per_pass_ns,
            json!({
                "rule": rule.name,
                "events": applies.len(),
                "matched_per_pass": matched / u64::from(PROFILE_PASSES),
                "ns_per_pass": per_pass_ns,
                "ns_per_event_tested": per_pass_ns / applies.len().max(1) as f64,
                "ns_per_event_tested_warm": warm_ns_per_event,
                "ns_per_recorded_event": per_pass_ns / events.len().max(1) as f64,
            }),
        ));
    }
    rules.sort_by(|a, b| b.0.total_cmp(&a.0));

    let mut fields = Vec::new();
    for (accessor, users) in accessors {
        let started = thread_cpu();
        let mut present = 0u64;
        for _ in 0..PROFILE_PASSES {
            for (number, event) in (1..).zip(events) {
                let view = EventView::new(event, number);
                present += u64::from(std::hint::black_box(accessor.get(&view)).is_some());
            }
        }
        let per_pass_ns =
            thread_cpu().saturating_sub(started).as_nanos() as f64 / f64::from(PROFILE_PASSES);
        let mut users = users;
        users.sort_unstable();
        users.dedup();
        fields.push((
            per_pass_ns,
            json!({
                "field": accessor_name(accessor),
                "present_per_pass": present / u64::from(PROFILE_PASSES),
                "ns_per_event": per_pass_ns / events.len().max(1) as f64,
                "rules": users,
            }),
        ));
    }
    fields.sort_by(|a, b| b.0.total_cmp(&a.0));
    // The view alone: what every evaluation pays before any field.
    let started = thread_cpu();
    for _ in 0..PROFILE_PASSES {
        for (number, event) in (1..).zip(events) {
            std::hint::black_box(EventView::new(std::hint::black_box(event), number).event_type());
        }
    }
    let view_ns = thread_cpu().saturating_sub(started).as_nanos() as f64
        / f64::from(PROFILE_PASSES)
        / events.len().max(1) as f64;
    json!({
        "passes": PROFILE_PASSES,
        "view_ns_per_event": view_ns,
        "rules": rules.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
        "fields": fields.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
    })
}

fn accessor_name(accessor: &Accessor) -> String {
    let mut name = format!("{:?}", accessor.field.id);
    match &accessor.field.arg {
        FieldArg::None => {}
        other => name.push_str(&format!("[{other:?}]")),
    }
    for t in &accessor.transformers {
        name = format!("{t:?}({name})");
    }
    name
}

/// `part` of `whole`, from 0 to 1.
#[expect(clippy::cast_precision_loss, reason = "a share, not an exact count")]
fn share(part: u64, whole: u64) -> f64 {
    part as f64 / whole.max(1) as f64
}

fn median(sorted: &[f64]) -> f64 {
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted.get(n / 2).copied().unwrap_or(0.0),
        n => {
            (sorted.get(n / 2 - 1).copied().unwrap_or(0.0)
                + sorted.get(n / 2).copied().unwrap_or(0.0))
                / 2.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(path: &str) -> Event {
        serde_json::from_value(json!({
            "schema_version": 1, "kind": "syscall", "time": "2026-11-27T08:00:00Z",
            "monotonic_ns": 5, "node": "n",
            "container": {"kind": "container", "id": "c".repeat(64), "runtime": "containerd"},
            "process": {"pid": 7, "tid": 7, "ns_pid": 7, "ppid": 6, "uid": 0, "gid": 0,
                "euid": 0, "egid": 0, "cgroup_id": 1, "comm": "cat", "exe": "/usr/bin/cat",
                "cwd": "/root", "args": ["cat", path],
                "ancestors": [{"pid": 6, "start_ns": 1, "comm": "bash", "exe": "/usr/bin/bash",
                               "args": ["bash"]}]},
            "syscall": {"name": "openat", "nr": 257, "sensor": "file", "ret": 3,
                "args": {"dirfd": -100, "flags": 0, "mode": 0},
                "fds": [{"arg": "ret", "fd": 3, "type": "file", "path": path}],
                "paths": [{"arg": "pathname", "raw": path, "path": path}]}
        }))
        .expect("an open event")
    }

    #[test]
    fn replayed_events_share_their_process_as_the_agents_do_and_read_the_same() {
        let mut events = vec![open("/etc/shadow"), open("/etc/shadow"), open("/etc/hosts")];
        let before = events.clone();
        Sharing::default().share(&mut events);
        assert_eq!(events, before, "sharing changes no value");
        let process = |i: usize| events[i].process.as_ref().expect("a process");
        assert!(Arc::ptr_eq(&process(0).ancestors, &process(2).ancestors));
        assert!(Arc::ptr_eq(
            process(0).exe.as_ref().expect("exe"),
            process(2).exe.as_ref().expect("exe")
        ));
        let syscall = events[0].syscall.as_deref().expect("a syscall");
        assert!(matches!(syscall.name, std::borrow::Cow::Borrowed("openat")));
        assert!(
            syscall
                .args
                .keys()
                .all(|k| matches!(k, std::borrow::Cow::Borrowed(_)))
        );
        let fd = syscall.fds.first().expect("the opened descriptor");
        assert!(matches!(
            (&fd.arg, &fd.kind),
            (
                std::borrow::Cow::Borrowed("ret"),
                std::borrow::Cow::Borrowed("file")
            )
        ));
        // Equal paths are one string, as the decoder's recent strings make
        // them; a different path is its own.
        let syscall = |i: usize| events[i].syscall.as_deref().expect("a syscall");
        let opened = |i: usize| syscall(i).fds[0].path.as_ref().expect("a path");
        let named = |i: usize| syscall(i).paths[0].path();
        assert!(Arc::ptr_eq(opened(0), opened(1)));
        assert!(Arc::ptr_eq(opened(0), named(1)));
        assert!(!Arc::ptr_eq(opened(0), opened(2)));
        assert_eq!(&**named(2), "/etc/hosts");
        // One container section for the events of a cgroup, as the
        // enrichment hands out.
        let container = |i: usize| events[i].container.as_ref().expect("a container");
        assert!(Arc::ptr_eq(container(0), container(2)));
    }
}
