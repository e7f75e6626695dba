//! What `files upload` was in the middle of, so that running it again (or `files resume`) goes on
//! where it stopped. One JSON file, `$FILES_STATE_DIR/uploads.json`, by default
//! `<state dir>/files/uploads.json` (`~/.local/state/files/uploads.json` on Linux).
//!
//! An entry is written as soon as the upload session exists (before any content is sent) and
//! removed when the upload completed. It is keyed by the file's absolute path and the API, and only
//! used while the file has the same size and modification time.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub api_url: String,
    pub path: PathBuf,
    pub upload_id: String,
    pub file_id: String,
    pub size: u64,
    /// Seconds since the epoch (with nanoseconds), as the file system said when the upload began.
    pub modified: String,
    /// What the upload declared, to declare the same when `files resume` starts it afresh.
    pub name: String,
    pub content_type: String,
    #[serde(default)]
    pub parent: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub replace: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct StateFile {
    uploads: Vec<Entry>,
}

/// The state file, shared by the concurrent uploads of one run.
pub struct State {
    path: PathBuf,
    entries: Mutex<Vec<Entry>>,
}

pub fn state_dir() -> Option<PathBuf> {
    match std::env::var_os("FILES_STATE_DIR") {
        Some(dir) if !dir.is_empty() => Some(PathBuf::from(dir)),
        _ => dirs::state_dir()
            .or_else(dirs::data_local_dir)
            .map(|d| d.join("files")),
    }
}

/// A file's modification time as the state file keeps it.
pub fn modified(meta: &std::fs::Metadata) -> String {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| format!("{}.{:09}", d.as_secs(), d.subsec_nanos()))
        .unwrap_or_default()
}

impl State {
    /// Reads the state file (a missing or unreadable one is an empty state: losing it only means
    /// starting an upload over).
    pub fn load() -> State {
        let path = state_dir()
            .unwrap_or_else(|| PathBuf::from(".files-state"))
            .join("uploads.json");
        let entries = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<StateFile>(&bytes).ok())
            .map(|f| f.uploads)
            .unwrap_or_default();
        State {
            path,
            entries: Mutex::new(entries),
        }
    }

    pub fn entries(&self, api_url: &str) -> Vec<Entry> {
        self.lock()
            .iter()
            .filter(|e| e.api_url == api_url)
            .cloned()
            .collect()
    }

    /// The entry for `path` on `api_url`, while the file is unchanged.
    pub fn find(&self, api_url: &str, path: &Path, size: u64, modified: &str) -> Option<Entry> {
        self.lock()
            .iter()
            .find(|e| {
                e.api_url == api_url && e.path == path && e.size == size && e.modified == modified
            })
            .cloned()
    }

    pub fn put(&self, entry: Entry) {
        let mut entries = self.lock();
        entries.retain(|e| !(e.api_url == entry.api_url && e.path == entry.path));
        entries.push(entry);
        self.save(&entries);
    }

    pub fn remove(&self, api_url: &str, path: &Path) {
        let mut entries = self.lock();
        let before = entries.len();
        entries.retain(|e| !(e.api_url == api_url && e.path == path));
        if entries.len() != before {
            self.save(&entries);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes a temporary file and renames it over the old one: a crash mid-write leaves the old
    /// state, never a torn one. Failing to write only costs resumability, so it is not an error.
    fn save(&self, entries: &[Entry]) {
        let Some(dir) = self.path.parent() else {
            return;
        };
        let _ = std::fs::create_dir_all(dir);
        let tmp = self
            .path
            .with_extension(format!("json.{}", std::process::id()));
        let file = StateFile {
            uploads: entries.to_vec(),
        };
        let Ok(bytes) = serde_json::to_vec_pretty(&file) else {
            return;
        };
        if std::fs::write(&tmp, bytes).is_ok() && std::fs::rename(&tmp, &self.path).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}
