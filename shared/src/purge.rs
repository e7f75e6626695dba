//! Deleting a file for good (`DELETE /v1/files/{id}`), in steps that can stop anywhere and resume.
//!
//! A file may have thousands of revisions, each with an object and up to three thumbnails: more
//! than one handler run (29 s) can be sure to delete. So the work is ordered to keep one invariant
//! at every point in between:
//!
//! > Once a file is marked `deleting_since`, every object of it that may still exist is named by a
//! > revision record under the file's partition (its content key and the thumbnail key of every
//! > size in [`THUMBNAIL_SIZES`]), and the marker exists as long as any revision record does.
//!
//! 1. [`crate::store::FileStore::mark_file_deleting`], one transaction: the record becomes a marker
//!    (every read answers 404 from then on, no index lists it), the name claim and the tag entries
//!    go (the name is free at once), and the version is bumped, so that no revision can be added
//!    any more: every revision write is conditioned on the file's version. An upload in flight finds
//!    no file when it lands and deletes its own object (`shared::finalize`).
//! 2. [`purge_file`], chunk by chunk, oldest revisions first: delete the chunk's objects and every
//!    thumbnail key (whatever the revision's recorded thumbnail state: the processor may have
//!    written them without recording them yet), and only then the chunk's revision records. An
//!    interruption between the two leaves records whose objects are (partly) gone: deleting a
//!    missing object succeeds, so the next run simply deletes them again.
//! 3. When no revision record is left, the marker goes, last.
//!
//! Whoever finds a marker resumes at step 2: a repeated `DELETE` does, and so does, without any
//! client, the `finish-deletes` function, which the table's stream invokes for every new marker.

use crate::App;
use crate::domain::THUMBNAIL_SIZES;
use crate::error::ApiError;
use crate::keys::thumbnail_key;
use tokio::time::Instant;

/// Revisions per chunk: their objects and thumbnails (400 keys) fit one DeleteObjects call, their
/// records four BatchWriteItem calls.
pub const REVISIONS_PER_CHUNK: usize = 100;

/// How long a run may work before it stops at a chunk boundary and leaves the rest for later.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    deadline: Instant,
    /// At most this many chunks (tests use it to stop a run at a known point).
    chunks: Option<usize>,
}

impl Budget {
    /// Start no chunk at or after `deadline`.
    pub fn until(deadline: Instant) -> Self {
        Budget {
            deadline,
            chunks: None,
        }
    }

    /// Also stop after `chunks` chunks.
    pub fn at_most(self, chunks: usize) -> Self {
        Budget {
            chunks: Some(chunks),
            ..self
        }
    }

    /// Takes one chunk from the budget; false when none is left.
    fn take_chunk(&mut self) -> bool {
        if Instant::now() >= self.deadline {
            return false;
        }
        match &mut self.chunks {
            Some(0) => false,
            Some(left) => {
                *left -= 1;
                true
            }
            None => true,
        }
    }
}

/// How far a run got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Nothing of the file is left: no record, no object.
    Done,
    /// The budget ran out; the marker and some revisions are left for the next run.
    Unfinished { revisions_deleted: usize },
}

/// Steps 2 and 3 for a file whose record is a marker (or already gone): deletes its revisions'
/// objects and records chunk by chunk, then the marker. Safe to run again, and concurrently.
pub async fn purge_file(
    app: &App,
    tenant: &str,
    file_id: &str,
    mut budget: Budget,
) -> Result<Progress, ApiError> {
    let mut revisions_deleted = 0;
    loop {
        if !budget.take_chunk() {
            return Ok(Progress::Unfinished { revisions_deleted });
        }
        let chunk = app
            .files
            .list_revisions_page(tenant, file_id, None, REVISIONS_PER_CHUNK)
            .await?
            .items;
        if chunk.is_empty() {
            app.files.delete_file_marker(tenant, file_id).await?;
            return Ok(Progress::Done);
        }
        let mut keys = Vec::with_capacity(chunk.len() * (1 + THUMBNAIL_SIZES.len()));
        for revision in &chunk {
            keys.push(revision.object_key.clone());
            keys.extend(
                THUMBNAIL_SIZES
                    .iter()
                    .map(|size| thumbnail_key(&revision.object_key, *size)),
            );
        }
        app.objects.delete_many(&keys).await?;
        app.files.delete_revision_items(&chunk).await?;
        revisions_deleted += chunk.len();
    }
}
