//! Templates: the kernel, initramfs and root disk a VM boots from, as built by
//! `cargo xtask template`, with a manifest (`template.json`) that names every file and its
//! SHA-256. A template is installed (copied) under `<data>/templates/<name>/` and is never
//! written afterwards: VM root disks are qcow2 linked clones that point at its
//! `root.qcow2`. Before first use its files are checked against the manifest.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use crate::error::{Error, Result};

/// The files a template must have (besides the manifest).
pub const TEMPLATE_FILES: [&str; 3] = ["vmlinuz", "initrd.img", "root.qcow2"];

/// `template.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub name: String,
    /// Virtual size of `root.qcow2`: the smallest disk a VM of this template can have.
    pub disk_gib: u64,
    /// What the guest prints on its serial console when it has booted.
    pub ready_marker: String,
    pub files: Vec<ManifestFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    pub name: String,
    pub sha256: String,
    pub bytes: u64,
}

/// An installed (or source) template directory with its manifest.
#[derive(Debug, Clone)]
pub struct Template {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

impl Template {
    /// Reads the template in `dir` (its manifest only; see [`Template::verify`]).
    pub async fn open(dir: &Path) -> Result<Self> {
        let path = dir.join("template.json");
        let text = tokio::fs::read_to_string(&path)
            .await
            .map_err(|e| Error::io(format!("template manifest {}", path.display()), e))?;
        let manifest: Manifest = serde_json::from_str(&text).map_err(|e| Error::BadTemplate {
            name: dir.display().to_string(),
            reason: format!("unreadable template.json: {e}"),
        })?;
        valid_name(&manifest.name)?;
        for f in TEMPLATE_FILES {
            if !manifest.files.iter().any(|m| m.name == f) {
                return Err(Error::BadTemplate {
                    name: manifest.name.clone(),
                    reason: format!("manifest does not list {f}"),
                });
            }
        }
        Ok(Template {
            dir: dir.to_path_buf(),
            manifest,
        })
    }

    /// Copies the template in `src` (a directory with `template.json`) to
    /// `<data_dir>/templates/<name>/`, verifying the copy. Installing the same template
    /// again is a no-op; a different one under an existing name is refused, since VM disks
    /// depend on the installed root disk.
    pub async fn install(data_dir: &Path, src: &Path) -> Result<Self> {
        let source = Template::open(src).await?;
        let dest = data_dir.join("templates").join(&source.manifest.name);
        if dest.join("template.json").exists() {
            let installed = Template::open(&dest).await?;
            if installed.manifest != source.manifest {
                return Err(Error::BadTemplate {
                    name: source.manifest.name.clone(),
                    reason: "a different template with this name is installed".into(),
                });
            }
            installed.verify().await?;
            return Ok(installed);
        }
        source.verify().await?;
        // A staging directory of our own: on shared storage several hosts may install
        // the same template at once.
        let staging = data_dir.join("templates").join(format!(
            ".{}.installing-{}",
            source.manifest.name,
            uuid::Uuid::new_v4()
        ));
        tokio::fs::create_dir_all(&staging)
            .await
            .map_err(|e| Error::io(format!("create {}", staging.display()), e))?;
        for f in TEMPLATE_FILES.iter().chain(["template.json"].iter()) {
            tokio::fs::copy(src.join(f), staging.join(f))
                .await
                .map_err(|e| Error::io(format!("copy template file {f}"), e))?;
        }
        if let Err(e) = tokio::fs::rename(&staging, &dest).await {
            let _ = tokio::fs::remove_dir_all(&staging).await;
            if !dest.join("template.json").exists() {
                return Err(Error::io(
                    format!("install template to {}", dest.display()),
                    e,
                ));
            }
            // Installed meanwhile by another host.
        }
        let t = Template::open(&dest).await?;
        t.verify().await?;
        tracing::info!(template = %t.manifest.name, dir = %dest.display(), "template installed");
        Ok(t)
    }

    /// Checks every file's size and SHA-256 against the manifest.
    pub async fn verify(&self) -> Result<()> {
        for f in &self.manifest.files {
            let path = self.dir.join(&f.name);
            let (bytes, sum) = sha256_file(&path).await.map_err(|e| match e {
                Error::NotFound { .. } => Error::BadTemplate {
                    name: self.manifest.name.clone(),
                    reason: format!("{} is missing", f.name),
                },
                other => other,
            })?;
            if bytes != f.bytes || !sum.eq_ignore_ascii_case(&f.sha256) {
                return Err(Error::BadTemplate {
                    name: self.manifest.name.clone(),
                    reason: format!(
                        "{} does not match its manifest (sha256 {sum}, expected {})",
                        f.name, f.sha256
                    ),
                });
            }
        }
        Ok(())
    }

    pub fn name(&self) -> &str {
        &self.manifest.name
    }

    pub fn kernel(&self) -> PathBuf {
        self.dir.join("vmlinuz")
    }

    pub fn initrd(&self) -> PathBuf {
        self.dir.join("initrd.img")
    }

    pub fn root_disk(&self) -> PathBuf {
        self.dir.join("root.qcow2")
    }
}

/// Template names are directory names: lowercase letters, digits, `-`, `_`, `.`.
pub(crate) fn valid_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::BadSpec(format!("invalid template name {name:?}")))
    }
}

async fn sha256_file(path: &Path) -> Result<(u64, String)> {
    let mut f = tokio::fs::File::open(path)
        .await
        .map_err(|e| Error::io(format!("{}", path.display()), e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .await
            .map_err(|e| Error::io(format!("read {}", path.display()), e))?;
        if n == 0 {
            break;
        }
        total += n as u64;
        h.update(&buf[..n]);
    }
    let sum = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok((total, sum))
}
