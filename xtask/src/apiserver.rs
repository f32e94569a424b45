//! `cargo xtask kube-apiserver`: the kube-apiserver and etcd that the agent's
//! Kubernetes tests run against, on loopback, without a cluster.
//!
//! No package registry ships a kube-apiserver binary, so it is built once
//! from Debian 12's `kubernetes` source package (Kubernetes 1.20.2 with its
//! `vendor/` tree, so the build needs no network) with Debian's Go, the way
//! that package's `debian/rules` builds it: a GOPATH layout, cgo off and
//! `make WHAT=cmd/kube-apiserver`. One file set of the source is changed: the
//! vendored `github.com/modern-go/reflect2` 1.0.1 crashes under Go 1.18 and
//! later (the server dies on the first status patch), so its Go files are
//! replaced with those of Debian's `golang-github-modern-go-reflect2-dev`
//! (1.0.2). etcd is Debian's `etcd-server`.
//!
//! As root, missing Debian packages are installed (`etcd-server` and
//! `openssl` always; `golang-go`, `make`, `rsync`, `dpkg-dev` and reflect2
//! for a build). When apt knows no `kubernetes` source package, deb-src
//! entries for bookworm are derived from the machine's own bookworm `deb`
//! entries and written to a file of their own,
//! `/etc/apt/sources.list.d/guardrails-deb-src.sources`; no existing apt file
//! is edited. Without root, a missing package or source entry is an error
//! that says what to do.
//!
//! The binary is kept per user outside the clone, in
//! `$XDG_CACHE_HOME/guardrails/kube-apiserver-1.20.2/kube-apiserver` (by
//! default `~/.cache/guardrails/...`), so every clone on a machine shares one
//! build; remove that directory to rebuild. A build (five to six minutes on two
//! cores) runs in `build-<pid>/` beside it and its binary is renamed into
//! place only once built and checked: an interrupted build leaves no binary
//! behind, and its directory is removed by the next run.
//!
//! `cargo xtask kube-apiserver` prints the binary's path; `cargo xtask test`
//! passes it to the tests as `GUARDRAILS_KUBE_APISERVER`, and etcd's path as
//! `GUARDRAILS_ETCD`.

use std::{
    collections::HashSet,
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context, bail, ensure};

use crate::{install, is_root, run};

/// The Kubernetes release the tests run against.
const VERSION: &str = "1.20.2";
/// Debian's source package, and the Debian release that has it.
const SOURCE: &str = "kubernetes";
const CODENAME: &str = "bookworm";
/// Packages the tests need at run time: etcd, and openssl for keys.
const RUNTIME_PACKAGES: &[&str] = &["etcd-server", "openssl"];
/// Packages a build needs (`dpkg-dev` unpacks the source package).
const BUILD_PACKAGES: &[&str] = &[
    "golang-go",
    "make",
    "rsync",
    "dpkg-dev",
    "golang-github-modern-go-reflect2-dev",
];
const REFLECT2: &str = "github.com/modern-go/reflect2";
/// Where Debian's Go library packages put their sources.
const GOCODE: &str = "/usr/share/gocode/src";
/// Debian's default Go, ahead of any other `go` on PATH.
const GO_BIN: &str = "/usr/lib/go/bin";
const DEB_SRC_FILE: &str = "/etc/apt/sources.list.d/guardrails-deb-src.sources";

/// The binaries the Kubernetes tests run.
#[derive(Debug)]
pub(crate) struct KubeBinaries {
    pub(crate) apiserver: PathBuf,
    pub(crate) etcd: PathBuf,
}

/// Makes sure etcd is installed and kube-apiserver is built (building it
/// once per machine and user), and returns both paths.
pub(crate) fn ensure() -> anyhow::Result<KubeBinaries> {
    install(RUNTIME_PACKAGES)?;
    let etcd = find_in_path("etcd")
        .context("no etcd on PATH (Debian's etcd-server installs /usr/bin/etcd)")?;
    let cache = cache_dir()?;
    let dir = cache.join(format!("kube-apiserver-{VERSION}"));
    let apiserver = dir.join("kube-apiserver");
    if !apiserver.is_file() {
        build(&cache, &dir)?;
    }
    Ok(KubeBinaries { apiserver, etcd })
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// `$XDG_CACHE_HOME/guardrails`, or `$HOME/.cache/guardrails`.
fn cache_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").map(PathBuf::from)
        && dir.is_absolute()
    {
        return Ok(dir.join("guardrails"));
    }
    let home = std::env::var_os("HOME")
        .filter(|home| !home.is_empty())
        .context("neither XDG_CACHE_HOME nor HOME is set: nowhere to keep kube-apiserver")?;
    Ok(PathBuf::from(home).join(".cache/guardrails"))
}

fn build(cache: &Path, dir: &Path) -> anyhow::Result<()> {
    install(BUILD_PACKAGES)?;
    let version = source_version()?;
    fs::create_dir_all(cache).with_context(|| format!("creating {}", cache.display()))?;
    remove_abandoned_builds(cache);
    let work = cache.join(format!("build-{}", std::process::id()));
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let log = work.join("build.log");
    eprintln!(
        "xtask: building kube-apiserver {VERSION} from Debian's {SOURCE} {version}, once per machine (a few minutes; log: {})",
        log.display()
    );
    let started = Instant::now();
    let binary = build_in(&work, &version, &log)?;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    fs::write(dir.join("source-version"), format!("{SOURCE} {version}\n"))
        .with_context(|| format!("writing {}", dir.join("source-version").display()))?;
    let target = dir.join("kube-apiserver");
    fs::rename(&binary, &target)
        .with_context(|| format!("moving {} to {}", binary.display(), target.display()))?;
    let _ = fs::remove_dir_all(&work);
    let seconds = started.elapsed().as_secs();
    eprintln!(
        "xtask: built {} in {}m {:02}s",
        target.display(),
        seconds / 60,
        seconds % 60
    );
    Ok(())
}

/// Fetches, patches and builds the source in `work`; returns the binary.
fn build_in(work: &Path, version: &str, log: &Path) -> anyhow::Result<PathBuf> {
    let mut fetch = Command::new("apt-get");
    fetch.args(["source", "-qq"]);
    if is_root() {
        // apt's download sandbox user cannot write into root's cache.
        fetch.args(["-o", "APT::Sandbox::User=root"]);
    }
    run_logged(
        fetch.arg(format!("{SOURCE}={version}")).current_dir(work),
        log,
    )?;
    let source = fs::read_dir(work)
        .with_context(|| format!("reading {}", work.display()))?
        .flatten()
        .map(|entry| entry.path())
        .find(|path| {
            path.is_dir()
                && path
                    .file_name()
                    .is_some_and(|name| name.to_string_lossy().starts_with("kubernetes-"))
        })
        .with_context(|| format!("apt-get source unpacked nothing into {}", work.display()))?;
    replace_reflect2(&source)?;

    // GOPATH/src/k8s.io/kubernetes is the source tree, as in debian/rules.
    let gopath = source.join(".go");
    let k8s_io = gopath.join("src/k8s.io");
    fs::create_dir_all(&k8s_io).with_context(|| format!("creating {}", k8s_io.display()))?;
    std::os::unix::fs::symlink("../../..", k8s_io.join("kubernetes"))
        .context("linking the source into GOPATH")?;
    let home = work.join("home");
    fs::create_dir_all(&home).with_context(|| format!("creating {}", home.display()))?;
    let mut path = std::ffi::OsString::from(GO_BIN);
    if let Some(inherited) = std::env::var_os("PATH") {
        path.push(":");
        path.push(inherited);
    }
    // The build scripts run Go in GOPATH mode (GO111MODULE=off) from the
    // vendor tree, so GOFLAGS stays empty (they would take a -mod flag for a
    // build tag); GOPROXY=off makes any attempt to download fail.
    run_logged(
        Command::new("make")
            .arg("WHAT=cmd/kube-apiserver")
            .current_dir(&source)
            .env("PATH", path)
            .env("GOPATH", &gopath)
            .env("HOME", &home)
            .env("CGO_ENABLED", "0")
            .env("GOPROXY", "off")
            .env("GOFLAGS", "")
            .env("GOTOOLCHAIN", "local")
            .env_remove("GOROOT")
            .env_remove("GO111MODULE"),
        log,
    )?;

    let binary = source.join("_output/bin/kube-apiserver");
    let output = Command::new(&binary)
        .arg("--version")
        .output()
        .with_context(|| format!("running {} --version", binary.display()))?;
    let said = String::from_utf8_lossy(&output.stdout);
    ensure!(
        output.status.success() && said.trim() == format!("Kubernetes v{VERSION}"),
        "the built {} says {:?}, not Kubernetes v{VERSION}",
        binary.display(),
        said.trim()
    );
    Ok(binary)
}

/// Replaces the vendored reflect2's Go and assembly files with Debian's.
fn replace_reflect2(source: &Path) -> anyhow::Result<()> {
    let vendored = source.join("vendor").join(REFLECT2);
    let debian = Path::new(GOCODE).join(REFLECT2);
    let is_code = |path: &Path| {
        matches!(
            path.extension().and_then(|ext| ext.to_str()),
            Some("go" | "s")
        )
    };
    for entry in fs::read_dir(&vendored)
        .with_context(|| format!("reading {}", vendored.display()))?
        .flatten()
    {
        let path = entry.path();
        if is_code(&path) {
            fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        }
    }
    let mut copied = 0;
    for entry in fs::read_dir(&debian)
        .with_context(|| format!("reading {}", debian.display()))?
        .flatten()
    {
        let path = entry.path();
        if is_code(&path) {
            fs::copy(&path, vendored.join(entry.file_name()))
                .with_context(|| format!("copying {}", path.display()))?;
            copied += 1;
        }
    }
    ensure!(copied > 0, "no Go files in {}", debian.display());
    Ok(())
}

/// Removes the build directories of runs that are gone.
fn remove_abandoned_builds(cache: &Path) {
    let Ok(entries) = fs::read_dir(cache) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|name| name.strip_prefix("build-")) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// Runs `command` with its output appended to `log`; a failure carries the
/// log's last lines.
fn run_logged(command: &mut Command, log: &Path) -> anyhow::Result<()> {
    let file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let program = command.get_program().to_string_lossy().into_owned();
    let status = command
        .stdout(
            file.try_clone()
                .context("duplicating the log's descriptor")?,
        )
        .stderr(file)
        .status()
        .with_context(|| format!("running {program}"))?;
    if !status.success() {
        let text = fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        bail!(
            "{program} failed with {status}; the end of {}:\n{tail}",
            log.display()
        );
    }
    Ok(())
}

/// The version of the source package to build, adding deb-src entries and
/// updating apt's lists first when apt knows none (as root).
fn source_version() -> anyhow::Result<String> {
    if let Some(version) = known_source_version()? {
        return Ok(version);
    }
    ensure!(
        is_root(),
        "apt knows no source package {SOURCE} {VERSION}: enable deb-src entries for Debian 12 ({CODENAME}) and run `apt-get update`, or run this as root"
    );
    let file = Path::new(DEB_SRC_FILE);
    if !file.exists() {
        fs::write(file, deb_src_entries()?)
            .with_context(|| format!("writing {}", file.display()))?;
        eprintln!("xtask: added deb-src entries for {CODENAME} in {DEB_SRC_FILE}");
    }
    run(Command::new("apt-get")
        .args(["update", "-qq"])
        .stdout(std::io::stderr()))?;
    known_source_version()?.with_context(|| {
        format!("apt knows no source package {SOURCE} {VERSION} (Debian 12, {CODENAME}, has it)")
    })
}

/// The newest version of the source package that apt knows and that is
/// Kubernetes [`VERSION`].
fn known_source_version() -> anyhow::Result<Option<String>> {
    let output = Command::new("apt-cache")
        .args(["showsrc", "--only-source", SOURCE])
        .output()
        .context("running apt-cache showsrc")?;
    let text = String::from_utf8_lossy(&output.stdout);
    let mut versions: Vec<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("Version:"))
        .map(str::trim)
        .filter(|version| upstream(version) == VERSION)
        .collect();
    versions.sort_by(|a, b| compare_versions(a, b));
    Ok(versions.last().map(|version| (*version).to_owned()))
}

/// The Kubernetes release in a Debian version: `1.20.5+really1.20.2-1.1`
/// is 1.20.2.
fn upstream(version: &str) -> &str {
    let version = version.split_once(':').map_or(version, |(_, rest)| rest);
    let version = version.rsplit_once('-').map_or(version, |(up, _)| up);
    version.rsplit_once("really").map_or(version, |(_, up)| up)
}

/// Orders two Debian versions as dpkg does.
fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    let greater = Command::new("dpkg")
        .args(["--compare-versions", a, "gt", b])
        .status()
        .is_ok_and(|status| status.success());
    if greater {
        std::cmp::Ordering::Greater
    } else if a == b {
        std::cmp::Ordering::Equal
    } else {
        std::cmp::Ordering::Less
    }
}

/// deb-src entries (deb822) for the `main` component of [`CODENAME`] on the
/// mirrors that the machine's `deb` entries for it use.
fn deb_src_entries() -> anyhow::Result<String> {
    let release = fs::read_to_string("/etc/os-release").unwrap_or_default();
    let codename = release
        .lines()
        .find_map(|line| line.strip_prefix("VERSION_CODENAME="))
        .map(|name| name.trim_matches('"'));
    ensure!(
        codename == Some(CODENAME),
        "the {SOURCE} source package is built on Debian 12 ({CODENAME}); this machine is {}",
        codename.unwrap_or("not Debian")
    );
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(entries) = fs::read_dir("/etc/apt/sources.list.d") {
        files.extend(entries.flatten().map(|entry| entry.path()));
    }
    files.sort();
    let mut uris = HashSet::new();
    let mut text = String::from(
        "# Debian's source packages, for the kube-apiserver that the agent's\n# Kubernetes tests build (cargo xtask kube-apiserver).\n",
    );
    for file in files {
        let Ok(content) = fs::read_to_string(&file) else {
            continue;
        };
        let name = file.to_string_lossy();
        let entries = if name.ends_with(".sources") {
            deb822_entries(&content)
        } else if name.ends_with(".list") {
            one_line_entries(&content)
        } else {
            continue;
        };
        for (uri, signed_by) in entries {
            if !uris.insert(uri.clone()) {
                continue;
            }
            text.push_str(&format!(
                "\nTypes: deb-src\nURIs: {uri}\nSuites: {CODENAME}\nComponents: main\n"
            ));
            if let Some(signed_by) = signed_by {
                text.push_str(&format!("Signed-By:{signed_by}\n"));
            }
        }
    }
    ensure!(
        !uris.is_empty(),
        "apt has no deb entry for {CODENAME} main to take a mirror from; add a deb-src entry for {CODENAME} by hand"
    );
    Ok(text)
}

/// The URIs and Signed-By values of the deb822 stanzas that enable `deb`
/// for [`CODENAME`] main. A Signed-By value keeps its continuation lines and
/// its leading space.
fn deb822_entries(content: &str) -> Vec<(String, Option<String>)> {
    let mut entries = Vec::new();
    for stanza in content.split("\n\n") {
        let mut fields: Vec<(String, String)> = Vec::new();
        for line in stanza.lines() {
            if line.starts_with('#') {
                continue;
            }
            if line.starts_with([' ', '\t']) {
                if let Some((_, value)) = fields.last_mut() {
                    value.push('\n');
                    value.push_str(line);
                }
            } else if let Some((key, value)) = line.split_once(':') {
                fields.push((key.trim().to_ascii_lowercase(), value.to_owned()));
            }
        }
        let field = |key: &str| {
            fields
                .iter()
                .find(|(name, _)| name == key)
                .map(|(_, value)| value.as_str())
        };
        let has = |key: &str, word: &str| {
            field(key).is_some_and(|value| value.split_whitespace().any(|w| w == word))
        };
        let enabled = field("enabled").is_none_or(|value| value.trim() != "no");
        if !(enabled && has("types", "deb") && has("suites", CODENAME) && has("components", "main"))
        {
            continue;
        }
        let Some(uris) = field("uris") else { continue };
        for uri in uris.split_whitespace() {
            entries.push((uri.to_owned(), field("signed-by").map(str::to_owned)));
        }
    }
    entries
}

/// The URIs and signed-by options of one-line `deb` entries for
/// [`CODENAME`] main.
fn one_line_entries(content: &str) -> Vec<(String, Option<String>)> {
    let mut entries = Vec::new();
    for line in content.lines() {
        let Some(rest) = line.trim().strip_prefix("deb ") else {
            continue;
        };
        let rest = rest.trim_start();
        let (options, rest) = match rest.strip_prefix('[') {
            Some(bracketed) => match bracketed.split_once(']') {
                Some((options, rest)) => (options, rest),
                None => continue,
            },
            None => ("", rest),
        };
        let mut words = rest.split_whitespace();
        let (Some(uri), Some(suite)) = (words.next(), words.next()) else {
            continue;
        };
        if suite != CODENAME || !words.any(|component| component == "main") {
            continue;
        }
        let signed_by = options
            .split_whitespace()
            .find_map(|option| option.strip_prefix("signed-by="))
            .map(|path| format!(" {path}"));
        entries.push((uri.to_owned(), signed_by));
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_is_the_release_a_really_version_carries() {
        assert_eq!(upstream("1.20.5+really1.20.2-1.1+deb12u1"), "1.20.2");
        assert_eq!(upstream("1:1.20.2-3"), "1.20.2");
        assert_eq!(upstream("1.20.2"), "1.20.2");
    }

    #[test]
    fn deb822_stanzas_for_the_codename_main_give_their_mirrors() {
        let content = "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\nTypes: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\nComponents: main\n\n# Types: deb\nEnabled: no\nTypes: deb\nURIs: http://off.example/debian\nSuites: bookworm\nComponents: main\n";
        assert_eq!(
            deb822_entries(content),
            vec![(
                "http://mirror.example/debian".to_owned(),
                Some(" /usr/share/keyrings/debian-archive-keyring.gpg".to_owned())
            )]
        );
    }

    #[test]
    fn one_line_entries_keep_their_signed_by_option() {
        let content = "# deb http://old.example/debian bookworm main\ndeb [arch=amd64 signed-by=/etc/apt/keyrings/debian.gpg] http://mirror.example/debian bookworm main contrib\ndeb-src http://mirror.example/debian bookworm main\ndeb http://mirror.example/debian bookworm-updates main\ndeb http://plain.example/debian bookworm main\n";
        assert_eq!(
            one_line_entries(content),
            vec![
                (
                    "http://mirror.example/debian".to_owned(),
                    Some(" /etc/apt/keyrings/debian.gpg".to_owned())
                ),
                ("http://plain.example/debian".to_owned(), None),
            ]
        );
    }
}
