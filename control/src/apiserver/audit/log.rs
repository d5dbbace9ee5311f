//! The log backend (`--audit-log-path`): events as JSON lines appended to
//! a file, rotated as kube-apiserver's lumberjack logger rotates it. When
//! a line would take the file past `--audit-log-maxsize` megabytes, the
//! file is renamed to `<name>-<UTC time YYYY-MM-DDTHH-MM-SS.mmm><ext>`
//! and a new one started; backups beyond `--audit-log-maxbackup` (0 keeps
//! them all) and older than `--audit-log-maxage` days (0 keeps them all)
//! are removed. Each line is written whole under one lock, and the file is
//! renamed before the next is opened, so no line is lost or split across
//! a rotation. The path `-` is standard output.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// lumberjack's size limit when none is given: 100 MB.
const DEFAULT_MAX_MEGABYTES: u64 = 100;
const MEGABYTE: u64 = 1024 * 1024;
/// The backup names' time, after the file's stem and a `-`.
const BACKUP_TIME_FORMAT: &str = "%Y-%m-%dT%H-%M-%S%.3f";
const BACKUP_TIME_LEN: usize = "2006-01-02T15-04-05.000".len();

/// Where the log goes and how it rotates (the `--audit-log-*` flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// A file, or `-` for standard output.
    pub path: PathBuf,
    /// Megabytes before rotation; 0 is lumberjack's 100.
    pub max_size_mb: u64,
    /// Backups kept; 0 keeps every one.
    pub max_backups: usize,
    /// Days a backup is kept; 0 keeps it forever.
    pub max_age_days: u64,
}

/// Errors opening or writing the log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("audit log {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("write length {len} exceeds maximum file size {max}")]
    TooLong { len: u64, max: u64 },
}

/// The log backend: lines are written one at a time, whole.
pub struct LogBackend {
    out: Mutex<Output>,
}

enum Output {
    Stdout,
    File(RotatingFile),
}

impl LogBackend {
    /// Opens the log (creating its directory, mode 0700, and the file,
    /// mode 0600, as kube-apiserver does).
    pub fn open(config: &LogConfig) -> Result<LogBackend, LogError> {
        let out = if config.path.as_os_str() == "-" {
            Output::Stdout
        } else {
            let megabytes = match config.max_size_mb {
                0 => DEFAULT_MAX_MEGABYTES,
                n => n,
            };
            let max = megabytes.saturating_mul(MEGABYTE);
            Output::File(RotatingFile::open(
                config.path.clone(),
                max,
                config.max_backups,
                config.max_age_days,
            )?)
        };
        Ok(LogBackend {
            out: Mutex::new(out),
        })
    }

    /// Appends one line (`line` holds no newline; one is added).
    pub fn write_line(&self, line: &[u8]) -> Result<(), LogError> {
        let mut record = Vec::with_capacity(line.len() + 1);
        record.extend_from_slice(line);
        record.push(b'\n');
        let mut out = self
            .out
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match &mut *out {
            Output::Stdout => {
                let mut stdout = std::io::stdout().lock();
                stdout
                    .write_all(&record)
                    .and_then(|()| stdout.flush())
                    .map_err(|source| LogError::Io {
                        path: "-".into(),
                        source,
                    })
            }
            Output::File(f) => f.write(&record),
        }
    }
}

/// A file that rotates by size (lumberjack's `Logger`).
pub struct RotatingFile {
    path: PathBuf,
    max_bytes: u64,
    max_backups: usize,
    max_age_days: u64,
    file: Option<File>,
    size: u64,
    /// The time in the last backup's name.
    last_backup: Option<jiff::Timestamp>,
}

impl RotatingFile {
    /// Opens `path` for appending; `max_bytes` is the size a file may
    /// reach.
    pub fn open(
        path: PathBuf,
        max_bytes: u64,
        max_backups: usize,
        max_age_days: u64,
    ) -> Result<RotatingFile, LogError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|source| io_error(dir, source))?;
        }
        let mut f = RotatingFile {
            path,
            max_bytes,
            max_backups,
            max_age_days,
            file: None,
            size: 0,
            last_backup: None,
        };
        f.open_existing()?;
        Ok(f)
    }

    fn open_existing(&mut self) -> Result<(), LogError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(|source| io_error(&self.path, source))?;
        self.size = file
            .metadata()
            .map_err(|source| io_error(&self.path, source))?
            .len();
        self.file = Some(file);
        Ok(())
    }

    /// Writes `record` whole, rotating first when it would take the file
    /// past the limit.
    pub fn write(&mut self, record: &[u8]) -> Result<(), LogError> {
        let len = record.len() as u64;
        if len > self.max_bytes {
            return Err(LogError::TooLong {
                len,
                max: self.max_bytes,
            });
        }
        if self.file.is_none() {
            self.open_existing()?;
        }
        if self.size + len > self.max_bytes {
            self.rotate()?;
        }
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        file.write_all(record)
            .map_err(|source| io_error(&self.path, source))?;
        self.size += len;
        Ok(())
    }

    /// Renames the file to its backup name, starts a new one, and removes
    /// the backups the limits do not keep.
    fn rotate(&mut self) -> Result<(), LogError> {
        self.file = None;
        let backup = self.free_backup_name(jiff::Timestamp::now());
        self.last_backup = backups_of_name(&self.path, &backup);
        std::fs::rename(&self.path, &backup).map_err(|source| io_error(&self.path, source))?;
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(|source| io_error(&self.path, source))?;
        self.file = Some(file);
        self.size = 0;
        if let Err(e) = self.remove_old_backups() {
            tracing::warn!(error = %e, "removing old audit log backups");
        }
        Ok(())
    }

    /// The backup name for `t`; a later millisecond when the last backup
    /// has that time or a backup of that name exists already, so backups
    /// sort as they were made and none is overwritten.
    fn free_backup_name(&self, mut t: jiff::Timestamp) -> PathBuf {
        let millisecond = jiff::SignedDuration::from_millis(1);
        if let Some(last) = self.last_backup
            && t < last + millisecond
        {
            t = last + millisecond;
        }
        loop {
            let name = backup_name(&self.path, t);
            if !name.exists() {
                return name;
            }
            t += jiff::SignedDuration::from_millis(1);
        }
    }

    /// lumberjack's cleanup: backups sorted newest first, those beyond
    /// `max_backups` and those older than `max_age_days` removed.
    fn remove_old_backups(&self) -> std::io::Result<()> {
        if self.max_backups == 0 && self.max_age_days == 0 {
            return Ok(());
        }
        let mut backups = backups_of(&self.path)?;
        backups.sort_by_key(|b| std::cmp::Reverse(b.0));
        let mut remove = Vec::new();
        if self.max_backups > 0 && backups.len() > self.max_backups {
            remove.extend(backups.split_off(self.max_backups));
        }
        if self.max_age_days > 0 {
            let max_age =
                i64::try_from(self.max_age_days.saturating_mul(86_400)).unwrap_or(i64::MAX);
            let cutoff = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(max_age);
            remove.extend(backups.into_iter().filter(|(t, _)| *t < cutoff));
        }
        for (_, path) in remove {
            std::fs::remove_file(&path)?;
        }
        Ok(())
    }
}

fn io_error(path: &Path, source: std::io::Error) -> LogError {
    LogError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// `<dir>/<stem>-<UTC time><ext>`, lumberjack's `backupName`.
pub fn backup_name(path: &Path, t: jiff::Timestamp) -> PathBuf {
    let (stem, ext) = stem_and_ext(path);
    let time = t.strftime(BACKUP_TIME_FORMAT).to_string();
    path.with_file_name(format!("{stem}-{time}{ext}"))
}

/// A file name's stem and extension (with its dot), as Go's
/// `filepath.Ext` splits it.
fn stem_and_ext(path: &Path) -> (String, String) {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match name.rfind('.') {
        Some(i) => (name[..i].to_owned(), name[i..].to_owned()),
        None => (name, String::new()),
    }
}

/// The time in the name of `backup`, a backup of `path`.
fn backups_of_name(path: &Path, backup: &Path) -> Option<jiff::Timestamp> {
    let (stem, ext) = stem_and_ext(path);
    let name = backup.file_name()?.to_str()?;
    let time = name.strip_prefix(&format!("{stem}-"))?.strip_suffix(&ext)?;
    parse_backup_time(time)
}

fn parse_backup_time(time: &str) -> Option<jiff::Timestamp> {
    if time.len() != BACKUP_TIME_LEN {
        return None;
    }
    jiff::civil::DateTime::strptime(BACKUP_TIME_FORMAT, time)
        .and_then(|dt| dt.to_zoned(jiff::tz::TimeZone::UTC))
        .ok()
        .map(|z| z.timestamp())
}

/// The backups of `path` beside it, with the time their names hold.
pub fn backups_of(path: &Path) -> std::io::Result<Vec<(jiff::Timestamp, PathBuf)>> {
    let (stem, ext) = stem_and_ext(path);
    let prefix = format!("{stem}-");
    let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(d) => d.to_path_buf(),
        None => PathBuf::from("."),
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir)? {
        let entry = entry?;
        if !entry.file_type()?.is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(t) = name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(&ext))
            .and_then(parse_backup_time)
        {
            out.push((t, entry.path()));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A line of the same length whatever `i` (below a million).
    fn line(i: usize) -> Vec<u8> {
        serde_json::to_vec(
            &serde_json::json!({"kind": "Event", "n": format!("{i:06}"), "pad": "x".repeat(80)}),
        )
        .unwrap()
    }

    fn numbers(lines: &[serde_json::Value]) -> Vec<u64> {
        let mut n: Vec<u64> = lines
            .iter()
            .map(|v| v["n"].as_str().unwrap().parse().unwrap())
            .collect();
        n.sort_unstable();
        n
    }

    /// Every line of the log and its backups, each parsed.
    fn all_lines(path: &Path) -> Vec<serde_json::Value> {
        let mut files: Vec<PathBuf> = backups_of(path)
            .unwrap()
            .into_iter()
            .map(|(_, p)| p)
            .collect();
        files.push(path.to_path_buf());
        let mut out = Vec::new();
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            assert!(
                text.is_empty() || text.ends_with('\n'),
                "{f:?} ends mid-line"
            );
            for l in text.lines() {
                out.push(serde_json::from_str(l).unwrap());
            }
        }
        out
    }

    #[test]
    fn backup_names_are_lumberjacks() {
        let t: jiff::Timestamp = "2026-12-07T21:04:05.123456Z".parse().unwrap();
        assert_eq!(
            backup_name(Path::new("/var/log/audit.log"), t),
            PathBuf::from("/var/log/audit-2026-12-07T21-04-05.123.log")
        );
        assert_eq!(
            backup_name(Path::new("/var/log/audit"), t),
            PathBuf::from("/var/log/audit-2026-12-07T21-04-05.123")
        );
        assert_eq!(
            backup_name(Path::new("logs/a.b.json"), t),
            PathBuf::from("logs/a.b-2026-12-07T21-04-05.123.json")
        );
    }

    #[test]
    fn rotation_keeps_every_line_and_names_backups_as_upstream() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/audit.log");
        let one = line(0).len() as u64 + 1;
        // Ten lines a file.
        let mut f = RotatingFile::open(path.clone(), one * 10, 0, 0).unwrap();
        for i in 0..95 {
            f.write(&[line(i), b"\n".to_vec()].concat()).unwrap();
        }
        let backups = backups_of(&path).unwrap();
        assert_eq!(backups.len(), 9);
        for (_, b) in &backups {
            let name = b.file_name().unwrap().to_str().unwrap();
            // audit-YYYY-MM-DDTHH-MM-SS.mmm.log
            assert_eq!(name.len(), "audit-".len() + BACKUP_TIME_LEN + ".log".len());
            assert!(
                name.starts_with("audit-") && name.ends_with(".log"),
                "{name}"
            );
            assert_eq!(std::fs::read_to_string(b).unwrap().lines().count(), 10);
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 5);
        assert_eq!(numbers(&all_lines(&path)), (0..95).collect::<Vec<_>>());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn only_max_backups_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let one = line(0).len() as u64 + 1;
        let mut f = RotatingFile::open(path.clone(), one * 4, 3, 0).unwrap();
        for i in 0..40 {
            f.write(&[line(i), b"\n".to_vec()].concat()).unwrap();
        }
        let backups = backups_of(&path).unwrap();
        assert_eq!(backups.len(), 3);
        // The newest are kept: lines 24..36 are in the backups, 36..40 in
        // the file.
        assert_eq!(numbers(&all_lines(&path)), (24..40).collect::<Vec<_>>());
    }

    #[test]
    fn backups_older_than_max_age_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let old = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24 * 3);
        let recent = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(12);
        let unrelated = dir.path().join("other-2020-01-01T00-00-00.000.log");
        for p in [
            backup_name(&path, old),
            backup_name(&path, recent),
            unrelated.clone(),
        ] {
            std::fs::write(p, "{}\n").unwrap();
        }
        let one = line(0).len() as u64 + 1;
        let mut f = RotatingFile::open(path.clone(), one, 0, 2).unwrap();
        f.write(&[line(0), b"\n".to_vec()].concat()).unwrap();
        f.write(&[line(1), b"\n".to_vec()].concat()).unwrap();
        let mut kept: Vec<jiff::Timestamp> = backups_of(&path)
            .unwrap()
            .into_iter()
            .map(|(t, _)| t)
            .collect();
        kept.sort();
        assert_eq!(kept.len(), 2, "{kept:?}");
        assert!(kept[0] > old);
        assert!(unrelated.exists());
    }

    #[test]
    fn an_existing_log_is_appended_to() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        std::fs::write(&path, "{\"n\":-1}\n").unwrap();
        let backend = LogBackend::open(&LogConfig {
            path: path.clone(),
            max_size_mb: 1,
            max_backups: 0,
            max_age_days: 0,
        })
        .unwrap();
        backend.write_line(b"{\"n\":0}").unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"n\":-1}\n{\"n\":0}\n"
        );
    }

    #[test]
    fn a_line_longer_than_the_limit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = RotatingFile::open(dir.path().join("a.log"), 4, 0, 0).unwrap();
        assert!(matches!(
            f.write(b"12345\n"),
            Err(LogError::TooLong { len: 6, max: 4 })
        ));
    }

    #[test]
    fn concurrent_writers_lose_nothing_across_rotations() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let backend = std::sync::Arc::new(
            LogBackend::open(&LogConfig {
                path: path.clone(),
                max_size_mb: 1,
                max_backups: 0,
                max_age_days: 0,
            })
            .unwrap(),
        );
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let backend = backend.clone();
                std::thread::spawn(move || {
                    for i in 0..6000 {
                        backend.write_line(&line(t * 10_000 + i)).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(backups_of(&path).unwrap().len() >= 2);
        let mut expected: Vec<u64> = (0..4u64)
            .flat_map(|t| (0..6000).map(move |i| t * 10_000 + i))
            .collect();
        expected.sort_unstable();
        assert_eq!(numbers(&all_lines(&path)), expected);
    }
}
