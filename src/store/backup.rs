//! Backups: `readrealm-chat backup --data-dir D --to DIR` copies a data directory, consistently,
//! into a new directory a server can start on (restoring is starting on it).
//!
//! Owns the two ways of doing it and the command line:
//!
//! - the server is stopped (the directory's lock is free) and the directory is ours: a RocksDB
//!   checkpoint — hard links to the immutable table files plus a copy of the WAL, exact and
//!   fast (opening the store to checkpoint it writes a few files into the directory, so this is
//!   done only by the directory's owner: files owned by root in a service's data directory
//!   would stop the service from opening it). The directory is opened as it is: one of an
//!   older layout is neither migrated nor given new column families (`layout`), so the older
//!   server still opens it;
//! - the server is running (it holds the lock), or the directory belongs to another user: the
//!   directory is opened as a RocksDB
//!   *secondary* instance, which reads the primary's MANIFEST and WAL without the lock,
//!   caught up with the primary, and every key of every column family is copied (the
//!   secondary moves only when told to catch up, so every iterator reads the same moment)
//!   into a fresh store in `DIR`, migrated at the end if the source had an older layout. The copy is the state after some whole write
//!   batch — messages are stored a batch per home-shard turn and acknowledged only after it —
//!   so it holds every message acknowledged before the backup started, and never half a batch.
//!   The secondary keeps every table file open (`max_open_files = -1`), so the primary
//!   compacting and deleting files meanwhile does not disturb it.

use std::path::{Path, PathBuf};

use rocksdb::{IteratorMode, WriteBatch, WriteOptions, DB};

use super::{Store, StoreError};

/// Keys copied per write batch into the backup.
const COPY_BATCH: usize = 4096;

/// How a backup was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// The data directory was free: a RocksDB checkpoint.
    Checkpoint,
    /// A server held it (or another user owns it): a copy through a caught-up secondary
    /// instance; the count of messages copied (the `_id` index is copied beside them).
    SecondaryCopy { keys: u64 },
}

/// Back `data_dir` up into `to`, which must not exist yet (or be an empty directory).
pub fn backup(data_dir: &Path, to: &Path) -> Result<Method, StoreError> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    backup_as(data_dir, to, euid)
}

/// [`backup`] as a process with effective user id `euid` decides it: the tests use another
/// user's id to check, without root, that a directory not ours is never written into.
pub(super) fn backup_as(data_dir: &Path, to: &Path, euid: u32) -> Result<Method, StoreError> {
    if !data_dir.join("CURRENT").is_file() {
        return Err(StoreError(format!(
            "{} holds no message store (no CURRENT file)",
            data_dir.display()
        )));
    }
    if let Ok(mut entries) = std::fs::read_dir(to) {
        if entries.next().is_some() {
            return Err(StoreError(format!(
                "{} exists and is not empty; back up into a new directory",
                to.display()
            )));
        }
        // An empty directory: RocksDB's checkpoint wants to create it itself.
        let _ = std::fs::remove_dir(to);
    }
    if !owned_by(data_dir, euid) {
        return copy_from_running(data_dir, to);
    }
    match open_as_is(data_dir) {
        Ok(db) => {
            rocksdb::checkpoint::Checkpoint::new(&db)?.create_checkpoint(to)?;
            Ok(Method::Checkpoint)
        }
        Err(e) if is_lock_held(&e) => copy_from_running(data_dir, to),
        Err(e) => Err(e),
    }
}

/// The store in `data_dir` with the column families it has, none created and its layout not
/// migrated: backing up a directory of an older layout leaves it as the older server can
/// still open it (a rollback needs that); the backup is migrated when a server opens it.
fn open_as_is(data_dir: &Path) -> Result<DB, StoreError> {
    let options = Store::options();
    let families = DB::list_cf(&options, data_dir)?;
    let descriptors = Store::column_families()
        .into_iter()
        .filter(|d| families.iter().any(|f| f == d.name()));
    Ok(DB::open_cf_descriptors(&options, data_dir, descriptors)?)
}

/// Whether user `euid` owns `dir` (only then may a backup by it write into it).
fn owned_by(dir: &Path, euid: u32) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(dir).is_ok_and(|meta| meta.uid() == euid)
}

/// Whether opening failed because another process (a running server) holds the lock.
fn is_lock_held(e: &StoreError) -> bool {
    let text = e.0.to_ascii_lowercase();
    text.contains("lock")
}

fn copy_from_running(data_dir: &Path, to: &Path) -> Result<Method, StoreError> {
    let scratch = ScratchDir::new()?;
    let mut options = Store::options();
    options.set_max_open_files(-1);
    // The source's own column families: a directory of an older layout has the messages
    // only, and its copy is migrated like the directory itself would be (`layout`).
    let families = DB::list_cf(&options, data_dir)?;
    let source = DB::open_cf_as_secondary(&options, data_dir, &scratch.0, &families)?;
    source.try_catch_up_with_primary()?;
    // The target is opened unmigrated so the source's layout marker, copied with the rest,
    // is the one that counts; opening it as a store afterwards migrates an older copy.
    let target = Store::open_unmigrated(to, false)?;
    let mut keys = 0u64;
    // The secondary moves only at `try_catch_up_with_primary`, so the iterators below all
    // read the state of that one moment: the messages and their index agree.
    for family in &families {
        let (Some(from), Ok(into)) = (source.cf_handle(family), target.cf(family)) else {
            return Err(StoreError(format!(
                "column family {family} of {} is not one of the store's",
                data_dir.display()
            )));
        };
        let messages = family == rocksdb::DEFAULT_COLUMN_FAMILY_NAME;
        let mut batch = WriteBatch::default();
        for item in source.iterator_cf(from, IteratorMode::Start) {
            let (key, value) = item?;
            batch.put_cf(into, key, value);
            keys += u64::from(messages);
            if batch.len() >= COPY_BATCH {
                target
                    .db
                    .write_opt(std::mem::take(&mut batch), &WriteOptions::default())?;
            }
        }
        target.db.write_opt(batch, &WriteOptions::default())?;
    }
    target.flush()?;
    drop(target);
    Store::open(to, false)?.flush()?;
    Ok(Method::SecondaryCopy { keys })
}

/// The secondary instance's own directory (its info log and state), removed after.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new() -> Result<ScratchDir, StoreError> {
        let mut name = [0u8; 8];
        getrandom::fill(&mut name).map_err(|e| StoreError(e.to_string()))?;
        let path = std::env::temp_dir().join(format!(
            "readrealm-backup-{}-{:016x}",
            std::process::id(),
            u64::from_le_bytes(name)
        ));
        std::fs::create_dir_all(&path)
            .map_err(|e| StoreError(format!("cannot create {}: {e}", path.display())))?;
        Ok(ScratchDir(path))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub const USAGE: &str = "usage: readrealm-chat backup --data-dir DIR --to NEW_DIR\n\n\
    Copies the message store in DIR (default: READREALM_DATA_DIR or ./data) into NEW_DIR,\n\
    consistently, whether or not a server is running on it. Restore by starting a server\n\
    with --data-dir NEW_DIR (or by moving NEW_DIR into place while the server is stopped).\n";

/// `readrealm-chat backup ...`: parse the arguments, back up, say what was done.
pub fn command(args: &[String]) -> Result<String, String> {
    let mut data_dir = std::env::var(crate::config::env_name("--data-dir"))
        .ok()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("./data"));
    let mut to = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let (flag, value) = match arg.split_once('=') {
            Some((flag, value)) => (flag, Some(value.to_owned())),
            None => (arg.as_str(), args.next().cloned()),
        };
        let value = value.ok_or_else(|| format!("{flag} needs a value\n\n{USAGE}"))?;
        match flag {
            "--data-dir" => data_dir = PathBuf::from(value),
            "--to" => to = Some(PathBuf::from(value)),
            _ => return Err(format!("unknown argument {flag}\n\n{USAGE}")),
        }
    }
    let to = to.ok_or_else(|| format!("--to is required\n\n{USAGE}"))?;
    let method = backup(&data_dir, &to).map_err(|e| {
        format!(
            "backup of {} into {} failed: {e}",
            data_dir.display(),
            to.display()
        )
    })?;
    Ok(match method {
        Method::Checkpoint => format!(
            "backed up {} into {} (checkpoint; no server was running)",
            data_dir.display(),
            to.display()
        ),
        Method::SecondaryCopy { keys } => format!(
            "backed up {} into {} ({keys} messages copied through a secondary instance: \
             a server holds the directory, or another user owns it)",
            data_dir.display(),
            to.display()
        ),
    })
}
