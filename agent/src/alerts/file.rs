//! Alerts as JSON lines in a file, rotated by size: `alerts.jsonl` is
//! renamed `alerts.jsonl.1` (and older ones shifted up to `keep`) before a
//! line would take it past `max_bytes`.

use std::{
    fs::{File, OpenOptions},
    io::Write,
    path::{Path, PathBuf},
};

use super::alert::Alert;

/// An open alert file.
#[derive(Debug)]
pub struct AlertFile {
    path: PathBuf,
    max_bytes: u64,
    keep: u32,
    file: Option<(File, u64)>,
}

impl AlertFile {
    /// Alerts appended to `path`; the file is opened at the first write.
    pub fn new(path: PathBuf, max_bytes: u64, keep: u32) -> Self {
        Self {
            path,
            max_bytes,
            keep,
            file: None,
        }
    }

    /// Appends one line per alert, each with the drops to report.
    pub fn write(&mut self, alerts: &[Alert], dropped: u64) -> std::io::Result<()> {
        let mut lines = Vec::new();
        for alert in alerts {
            let mut alert = alert.clone();
            alert.dropped = dropped;
            let mut line = serde_json::to_vec(&alert).map_err(std::io::Error::other)?;
            line.push(b'\n');
            lines.push(line);
        }
        for line in lines {
            let size = self.open()?;
            if size > 0 && size + line.len() as u64 > self.max_bytes {
                self.rotate()?;
                self.open()?;
            }
            if let Some((file, size)) = &mut self.file {
                file.write_all(&line)?;
                *size += line.len() as u64;
            }
        }
        if let Some((file, _)) = &mut self.file {
            file.flush()?;
        }
        Ok(())
    }

    /// Opens the file if needed; its size.
    fn open(&mut self) -> std::io::Result<u64> {
        if let Some((_, size)) = &self.file {
            return Ok(*size);
        }
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        let size = file.metadata()?.len();
        self.file = Some((file, size));
        Ok(size)
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.file = None;
        if self.keep == 0 {
            std::fs::remove_file(&self.path)?;
            return Ok(());
        }
        for n in (1..self.keep).rev() {
            let from = rotated(&self.path, n);
            if from.exists() {
                std::fs::rename(&from, rotated(&self.path, n + 1))?;
            }
        }
        std::fs::rename(&self.path, rotated(&self.path, 1))
    }
}

fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::incident::tests::alert;

    #[test]
    fn lines_rotate_by_size_and_old_files_are_shifted_then_dropped() {
        let dir =
            std::env::temp_dir().join(format!("guardrails-alert-file-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("alerts.jsonl");
        let line_len = serde_json::to_vec(&alert("a")).expect("JSON").len() as u64 + 1;
        // Two lines fit in a file; keep two rotated files.
        let mut file = AlertFile::new(path.clone(), line_len * 2 + 1, 2);
        for _ in 0..7 {
            file.write(&[alert("a")], 0).expect("write");
        }
        let lines = |p: &Path| {
            std::fs::read_to_string(p)
                .map(|t| t.lines().count())
                .unwrap_or(0)
        };
        assert_eq!(lines(&path), 1, "7 = 2 + 2 + 2 + 1");
        assert_eq!(lines(&rotated(&path, 1)), 2);
        assert_eq!(lines(&rotated(&path, 2)), 2);
        assert!(
            !rotated(&path, 3).exists(),
            "only two rotated files are kept"
        );
        for line in std::fs::read_to_string(&path).expect("read").lines() {
            let value: serde_json::Value = serde_json::from_str(line).expect("JSON line");
            assert_eq!(value["rule"], "Test rule");
        }
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    #[test]
    fn drops_are_written_with_the_next_line() {
        let dir =
            std::env::temp_dir().join(format!("guardrails-alert-drops-{}", std::process::id()));
        let path = dir.join("alerts.jsonl");
        let mut file = AlertFile::new(path.clone(), 1 << 20, 1);
        file.write(&[alert("a")], 3).expect("write");
        let text = std::fs::read_to_string(&path).expect("read");
        let value: serde_json::Value = serde_json::from_str(text.trim()).expect("JSON");
        assert_eq!(value["dropped"], 3);
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
