//! The BPF LSM program of deny-exec, as far as it can be checked without
//! loading it (most kernels refuse BPF LSM): it is in the sensors object under
//! the names the agent uses, in the section that makes it an LSM program on
//! its hook, and it decides with the maps the exec hook kills with.

use std::collections::BTreeSet;

use guardrails::bpf::hooks::{
    DENY_EXEC_HOOK, DENY_EXEC_PROGRAM, EVENTS_MAP, KILL_CGROUPS_MAP, KILL_DENY_MAP, KILL_EXES_MAP,
    KILL_NAMES_MAP,
};
use object::{Object, ObjectSection, ObjectSymbol, RelocationTarget};

/// The section of the program named `program` and the maps its code
/// refers to.
fn program(file: &object::File<'_>, program: &str) -> (String, BTreeSet<String>) {
    let symbol = file
        .symbols()
        .find(|s| s.name() == Ok(program))
        .unwrap_or_else(|| panic!("{program} is not in the sensors object"));
    let index = symbol
        .section_index()
        .unwrap_or_else(|| panic!("{program} has no section"));
    let section = file.section_by_index(index).expect("the program's section");
    let maps = section
        .relocations()
        .filter_map(|(_, relocation)| match relocation.target() {
            RelocationTarget::Symbol(target) => file.symbol_by_index(target).ok(),
            _ => None,
        })
        .filter_map(|target| target.name().ok().map(str::to_owned))
        .filter(|name| name.starts_with("gr_"))
        .collect();
    (section.name().expect("a section name").to_owned(), maps)
}

#[test]
fn the_deny_exec_program_is_a_non_sleepable_lsm_program_on_bprm_check_security() {
    let file = object::File::parse(agent_ebpf::SENSORS).expect("the sensors object parses");
    let (section, _) = program(&file, DENY_EXEC_PROGRAM);
    // "lsm.s/" would make it sleepable, which fewer hooks and kernels take.
    assert_eq!(section, format!("lsm/{DENY_EXEC_HOOK}"));
}

#[test]
fn the_deny_exec_program_decides_with_the_kill_maps_and_the_exec_hook_reads_the_deny_slots() {
    let file = object::File::parse(agent_ebpf::SENSORS).expect("the sensors object parses");
    let (_, deny_maps) = program(&file, DENY_EXEC_PROGRAM);
    for map in [
        KILL_CGROUPS_MAP,
        KILL_NAMES_MAP,
        KILL_EXES_MAP,
        KILL_DENY_MAP,
        EVENTS_MAP,
    ] {
        assert!(
            deny_maps.contains(map),
            "{DENY_EXEC_PROGRAM} does not use {map}: {deny_maps:?}"
        );
    }
    let (section, exec_maps) = program(&file, "gr_exec");
    assert_eq!(section, "tp_btf/sched_process_exec");
    assert!(
        exec_maps.contains(KILL_DENY_MAP),
        "the exec hook does not leave deny slots alone: {exec_maps:?}"
    );
}
