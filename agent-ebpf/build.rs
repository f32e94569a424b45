//! Compiles the kernel programs in `bpf/` with clang and links the sensor hooks
//! into one object with bpftool, so that every hook shares one set of maps.
//! Containment is linked into an object of its own: it outlives the sensors.
//! The objects are embedded in the crate by `src/lib.rs`.

use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

/// The hooks linked into the sensors object, each with its own file.
const SENSOR_SOURCES: &[&str] = &[
    "bpf/maps.bpf.c",
    "bpf/process/exec.bpf.c",
    "bpf/process/deny.bpf.c",
    "bpf/process/fork.bpf.c",
    "bpf/process/exit.bpf.c",
    "bpf/syscalls/sys_exit.bpf.c",
    "bpf/net/tcp_state.bpf.c",
];
/// The containment programs and maps, which stay pinned after the agent exits.
const CONTAIN_SOURCES: &[&str] = &["bpf/contain/ledger.bpf.c", "bpf/contain/isolate.bpf.c"];
/// Programs loaded only to learn what the kernel accepts.
const PROBE_SOURCE: &str = "bpf/probe/features.bpf.c";

fn main() {
    println!("cargo::rerun-if-changed=bpf");
    println!("cargo::rerun-if-env-changed=CLANG");
    println!("cargo::rerun-if-env-changed=BPFTOOL");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let arch = match env::var("CARGO_CFG_TARGET_ARCH").as_deref() {
        Ok("x86_64") => "x86",
        Ok("aarch64") => "arm64",
        other => panic!("no BPF target architecture for {other:?}"),
    };
    let clang = find_tool("CLANG", &["clang-19", "clang"]);
    let bpftool = find_tool("BPFTOOL", &["bpftool"]);

    let mut objects = Vec::new();
    for source in SENSOR_SOURCES {
        objects.push(compile(&clang, arch, source, &out_dir));
    }
    link(&bpftool, &out_dir.join("sensors.bpf.o"), &objects);
    let contain: Vec<_> = CONTAIN_SOURCES
        .iter()
        .map(|source| compile(&clang, arch, source, &out_dir))
        .collect();
    link(&bpftool, &out_dir.join("contain.bpf.o"), &contain);
    let probe = compile(&clang, arch, PROBE_SOURCE, &out_dir);
    std::fs::copy(&probe, out_dir.join("probe.bpf.o")).expect("copy the probe object");
}

fn compile(clang: &Path, arch: &str, source: &str, out_dir: &Path) -> PathBuf {
    let stem = source.trim_start_matches("bpf/").replace(['/', '.'], "_");
    let object = out_dir.join(format!("{stem}.o"));
    run(Command::new(clang)
        .args([
            "-g", "-O2", "-Wall", "-Werror", "-target", "bpf", "-mcpu=v3",
        ])
        .arg(format!("-D__TARGET_ARCH_{arch}"))
        .args(["-Ibpf/include", "-Ibpf/lib", "-Ibpf"])
        .args(["-c", source, "-o"])
        .arg(&object));
    object
}

fn link(bpftool: &Path, linked: &Path, objects: &[PathBuf]) {
    run(Command::new(bpftool)
        .args(["gen", "object"])
        .arg(linked)
        .args(objects));
}

fn find_tool(env_var: &str, names: &[&str]) -> PathBuf {
    if let Some(path) = env::var_os(env_var) {
        return PathBuf::from(path);
    }
    let path = env::var_os("PATH").unwrap_or_default();
    let dirs = env::split_paths(&path).chain(["/usr/sbin".into(), "/sbin".into()]);
    for dir in dirs {
        for name in names {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "{} not found (set {env_var} to override): install the kernel-program toolchain with \
         `apt-get install clang-19 libbpf-dev bpftool`, or run `cargo xtask deps`",
        names.join(" or ")
    );
}

fn run(command: &mut Command) {
    let status = command
        .status()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(status.success(), "{command:?} failed with {status}");
}
