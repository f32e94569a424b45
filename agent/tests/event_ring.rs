//! The events ring buffer read in place, on the running kernel: the sensors
//! object loaded in this process with a ring of two pages, so that the
//! writers wrap around its end many times and records straddle it.

mod support;

use agent_common::Counter;
use aya::Btf;
use guardrails::{
    bpf::{
        Sensors,
        hooks::{Sensor, SyscallHook},
        loader::{LoadOptions, SensorMaps},
    },
    events::{EventKind, clock::BootClock, decode::Decoder},
};
use support::TestCgroup;

const RING_BYTES: u32 = 8192;

fn load(cgroup: &TestCgroup) -> (Sensors, SensorMaps) {
    let btf = Btf::from_sys_fs().expect("kernel BTF");
    let options = LoadOptions {
        ring_buffer_bytes: RING_BYTES,
        wakeup_bytes: 0,
        scope: vec![cgroup.id],
        sensors: vec![Sensor::Process],
        syscall_hook: SyscallHook::default(),
    };
    Sensors::load(&btf, &options).unwrap_or_else(|e| panic!("load the sensors: {e:?}"))
}

#[test]
fn a_two_page_ring_read_between_bursts_hands_out_every_record_in_order() {
    let cgroup = TestCgroup::new();
    let (_sensors, mut maps) = load(&cgroup);
    let mut decoder = Decoder::new(BootClock::now(), "test".into());
    let mut ran = Vec::new();
    let mut seen = Vec::new();
    let mut bytes = 0usize;

    // Each burst (four processes: an exec and an exit record each, some
    // hundred bytes apiece) fits in the ring; all of them together fill it
    // many times over, so the space the reader frees must reach the kernel.
    for _ in 0..40 {
        for _ in 0..4 {
            let mut child = cgroup
                .command("/bin/true")
                .spawn()
                .expect("start /bin/true");
            ran.push(child.id());
            let status = child.wait().expect("wait for /bin/true");
            assert!(status.success(), "{status:?}");
        }
        while let Some(record) = maps.events.next_record() {
            bytes += record.len();
            let event = decoder.decode(record).expect("a record decodes");
            let pid = event.process.as_ref().map_or(0, |p| p.pid);
            seen.push((event.kind, pid));
        }
    }

    let lost: u64 = maps
        .counters
        .get(&(Counter::RingbufFull as u32), 0)
        .expect("read the lost-event counters")
        .iter()
        .sum();
    assert_eq!(lost, 0, "the kernel found the ring full");
    assert!(
        bytes > 5 * RING_BYTES as usize,
        "only {bytes} bytes went through the ring"
    );
    // Each process's exec, then its exit, in the order they ran (each one
    // exits before the next starts): nothing lost, repeated or reordered.
    let expected: Vec<(EventKind, u32)> = ran
        .iter()
        .flat_map(|&pid| [(EventKind::ProcessExec, pid), (EventKind::ProcessExit, pid)])
        .collect();
    assert_eq!(seen, expected);
}
