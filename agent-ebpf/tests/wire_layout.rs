//! The `#[repr(C)]` mirrors in `agent-common` must have exactly the sizes and
//! field offsets that the compiled kernel objects' BTF gives the C structs in
//! `bpf/lib/wire.h` and `bpf/contain/contain.h`.

use std::{collections::BTreeMap, mem::offset_of, process::Command};

use agent_common::{
    Config, EventHeader, ExecEvent, ExitEvent, ForkEvent, KillArgs, Part, Process, SockOwner,
    SocketInfo, SyscallEvent, SyscallSpec, TcpStateEvent,
    contain::{AllowEntry, ContainAction, Contained, Drops},
};
use serde_json::Value;

/// A struct's size and its fields' byte offsets, by name.
#[derive(Debug, PartialEq)]
struct Layout {
    size: u64,
    fields: BTreeMap<String, u64>,
}

macro_rules! rust_layout {
    ($ty:ty { $($field:ident),* $(,)? }) => {
        Layout {
            size: std::mem::size_of::<$ty>() as u64,
            fields: [$((stringify!($field).trim_start_matches("r#").to_owned(), offset_of!($ty, $field) as u64)),*]
                .into_iter()
                .collect(),
        }
    };
}

fn btf_structs(name: &str, bytes: &[u8]) -> BTreeMap<String, Layout> {
    let dir = std::env::temp_dir().join(format!("guardrails-wire-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create a temp dir");
    let object = dir.join(format!("{name}.bpf.o"));
    std::fs::write(&object, bytes).expect("write the object");
    let output = Command::new(bpftool())
        .args(["--json", "btf", "dump", "file"])
        .arg(&object)
        .output()
        .expect("run bpftool (apt-get install bpftool)");
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        output.status.success(),
        "bpftool failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let dump: Value = serde_json::from_slice(&output.stdout).expect("bpftool prints JSON");
    let types = dump["types"].as_array().expect("a types array");
    types
        .iter()
        .filter(|t| t["kind"] == "STRUCT")
        .filter_map(|t| {
            let name = t["name"].as_str().filter(|n| n.starts_with("gr_"))?;
            let fields = t["members"]
                .as_array()?
                .iter()
                .map(|m| {
                    let bits = m["bits_offset"].as_u64().expect("bits_offset");
                    assert_eq!(
                        bits % 8,
                        0,
                        "{name}: bit fields are not part of the wire contract"
                    );
                    (
                        m["name"].as_str().expect("member name").to_owned(),
                        bits / 8,
                    )
                })
                .collect();
            Some((
                name.to_owned(),
                Layout {
                    size: t["size"].as_u64()?,
                    fields,
                },
            ))
        })
        .collect()
}

fn bpftool() -> String {
    std::env::var("BPFTOOL").unwrap_or_else(|_| {
        ["/usr/sbin/bpftool", "/sbin/bpftool"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .unwrap_or("bpftool")
            .to_owned()
    })
}

#[test]
fn every_wire_struct_has_the_same_size_and_offsets_in_rust_and_in_the_object() {
    let btf = btf_structs("sensors", agent_ebpf::SENSORS);
    let expected = [
        (
            "gr_event_header",
            rust_layout!(EventHeader {
                kind,
                version,
                cpu,
                ktime_ns
            }),
        ),
        (
            "gr_process",
            rust_layout!(Process {
                pid,
                tid,
                ppid,
                ns_pid,
                uid,
                gid,
                euid,
                egid,
                login_uid,
                tty,
                pgid,
                sid,
                vpgid,
                _pad,
                cgroup_id,
                start_ns,
                memory_cgroup_id,
                cap_effective,
                comm
            }),
        ),
        (
            "gr_exec_event",
            rust_layout!(ExecEvent {
                hdr,
                proc,
                filename_len,
                exe_len,
                cwd_len,
                args_len,
                argc,
                flags,
                cap_effective,
                exe_ino,
                exe_mtime_ns,
                exe_ctime_ns,
                kill_slot,
                _pad
            }),
        ),
        (
            "gr_fork_event",
            rust_layout!(ForkEvent {
                hdr,
                parent,
                child_pid,
                child_ns_pid,
                child_start_ns
            }),
        ),
        (
            "gr_exit_event",
            rust_layout!(ExitEvent {
                hdr,
                proc,
                status,
                _pad
            }),
        ),
        (
            "gr_syscall_event",
            rust_layout!(SyscallEvent {
                hdr,
                proc,
                nr,
                flags,
                ret,
                args,
                parts_len,
                _pad2
            }),
        ),
        (
            "gr_syscall_spec",
            rust_layout!(SyscallSpec {
                args,
                ret,
                dirfd_of,
                filter_arg,
                require_address,
                filter_values
            }),
        ),
        ("gr_part", rust_layout!(Part { kind, arg, len })),
        (
            "gr_socket_info",
            rust_layout!(SocketInfo {
                family,
                r#type,
                protocol,
                state,
                local_port,
                remote_port,
                _pad,
                local_addr,
                remote_addr
            }),
        ),
        (
            "gr_tcp_state_event",
            rust_layout!(TcpStateEvent {
                hdr,
                cgroup_id,
                owner_start_ns,
                owner_pid,
                old_state,
                new_state,
                owner_comm,
                socket
            }),
        ),
        (
            "gr_sock_owner",
            rust_layout!(SockOwner {
                pid,
                _pad,
                start_ns,
                comm
            }),
        ),
        ("gr_kill_args", rust_layout!(KillArgs { len, prefix })),
        (
            "gr_config",
            rust_layout!(Config {
                agent_pid,
                scope_enabled,
                wakeup_bytes
            }),
        ),
    ];
    assert_same(&btf, expected);
}

#[test]
fn every_containment_struct_has_the_same_size_and_offsets_in_rust_and_in_the_object() {
    let btf = btf_structs("contain", agent_ebpf::CONTAIN);
    let expected = [
        (
            "gr_allow_rule",
            rust_layout!(AllowEntry {
                used,
                proto,
                family,
                prefix_len,
                port,
                _pad,
                addr
            }),
        ),
        ("gr_drops", rust_layout!(Drops { ingress, egress })),
        (
            "gr_contain_action",
            rust_layout!(ContainAction {
                since_unix_ns,
                rule
            }),
        ),
        (
            "gr_contained",
            rust_layout!(Contained {
                flags,
                _pad,
                frozen,
                isolated,
                container_id,
                cgroup_path
            }),
        ),
    ];
    assert_same(&btf, expected);
}

fn assert_same<const N: usize>(btf: &BTreeMap<String, Layout>, expected: [(&str, Layout); N]) {
    for (name, rust) in expected {
        let c = btf
            .get(name)
            .unwrap_or_else(|| panic!("struct {name} is not in the object's BTF"));
        assert_eq!(&rust, c, "struct {name}: Rust (left) and C (right) differ");
    }
}
