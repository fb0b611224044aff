//! The results this node keeps for durable jobs (`--copies` 2 or more; see
//! `shoal_protocol::durable`): each output it collected as a keeper, and how each job it kept
//! ended, in `DATA-DIR/results/` (`JOB.out`, the output bytes; `JOB.end`, a JSON record), both
//! mode 0600. `shoal result` answers from here on any node that keeps the job, and peers fetch
//! kept outputs by hash.
//!
//! Bounded two ways, both configurable (`shoal node --result-budget`, `--result-retention`):
//! outputs are dropped oldest first once they take more than the budget, and when they are older
//! than the retention. A dropped output leaves its record, marked expired, so that `shoal
//! result` says "expired" rather than "unknown" (at most [`RECORDS_MAX`] records; the oldest go).
//! Without a data dir the same bounds apply in memory.

use serde::{Deserialize, Serialize};
use shoal_protocol::durable::{Ending, OutputRef};
use shoal_protocol::{BlobHash, JobId};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Default disk budget for kept outputs.
pub const DEFAULT_BUDGET: u64 = 1 << 30;
/// Default time a kept output stays.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// Most job records kept (outputs and tombstones).
pub const RECORDS_MAX: usize = 4096;

/// How a job ended, as kept here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub job: JobId,
    pub epoch: u64,
    pub ending: Ending,
    /// When this node kept it (seconds since the Unix epoch).
    pub kept_at: u64,
}

/// A kept output: its address, and its bytes when they are not on disk.
type KeptOutput = (OutputRef, Option<Arc<Vec<u8>>>);

#[derive(Debug, Default)]
struct Inner {
    records: BTreeMap<JobId, Record>,
    /// Outputs collected (on disk, or here without a data dir), with their size.
    outputs: BTreeMap<JobId, KeptOutput>,
}

/// A cloneable handle to the kept results.
#[derive(Debug, Clone)]
pub struct ResultStore {
    dir: Option<PathBuf>,
    budget: u64,
    retention: Duration,
    inner: Arc<Mutex<Inner>>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl ResultStore {
    /// The results kept under `data_dir` (read back leniently: a record that does not parse
    /// is skipped with a warning; an output without its record, left by a crash before the
    /// job ended, is removed).
    pub fn open(data_dir: Option<&Path>, budget: u64, retention: Duration) -> Self {
        let dir = data_dir.map(|d| d.join("results"));
        let mut inner = Inner::default();
        if let Some(dir) = &dir {
            if let Err(e) = create_private_dir(dir) {
                tracing::warn!(
                    "cannot create {}: {e}; results are kept in memory",
                    dir.display()
                );
            }
            load(dir, &mut inner);
        }
        Self {
            dir,
            budget,
            retention,
            inner: Arc::new(Mutex::new(inner)),
        }
    }

    fn path(&self, job: &JobId, ext: &str) -> Option<PathBuf> {
        self.dir
            .as_ref()
            .map(|d| d.join(format!("{}.{ext}", job.to_hex())))
    }

    /// Keeps a job's output; returns its content address.
    pub fn put_output(&self, job: JobId, bytes: &Arc<Vec<u8>>) -> OutputRef {
        let output = OutputRef {
            hash: BlobHash::of(bytes),
            len: bytes.len() as u64,
        };
        let in_memory = match self.path(&job, "out") {
            Some(path) => match write_atomic(&path, bytes) {
                Ok(()) => None,
                Err(e) => {
                    tracing::warn!(
                        "cannot keep the output of job {job} in {}: {e}",
                        path.display()
                    );
                    Some(bytes.clone())
                }
            },
            None => Some(bytes.clone()),
        };
        let mut inner = self.inner.lock().expect("results lock");
        inner.outputs.insert(job, (output, in_memory));
        output
    }

    /// Records how job `job` ended. A failure or an expiry drops the output.
    pub fn record(&self, job: JobId, epoch: u64, ending: Ending) {
        let record = Record {
            job,
            epoch,
            ending,
            kept_at: unix_now(),
        };
        let mut inner = self.inner.lock().expect("results lock");
        if !matches!(record.ending, Ending::Done { .. }) {
            self.drop_output(&mut inner, &job);
        }
        self.write_record(&record);
        inner.records.insert(job, record);
        self.trim_records(&mut inner);
    }

    fn write_record(&self, record: &Record) {
        if let Some(path) = self.path(&record.job, "end") {
            let json = serde_json::to_vec_pretty(record).expect("a record serializes");
            if let Err(e) = write_atomic(&path, &json) {
                tracing::warn!(
                    "cannot keep how job {} ended in {}: {e}",
                    record.job,
                    path.display()
                );
            }
        }
    }

    fn drop_output(&self, inner: &mut Inner, job: &JobId) {
        if inner.outputs.remove(job).is_some()
            && let Some(path) = self.path(job, "out")
            && let Err(e) = std::fs::remove_file(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("cannot remove {}: {e}", path.display());
        }
    }

    /// Drops the oldest tombstones past [`RECORDS_MAX`] records.
    fn trim_records(&self, inner: &mut Inner) {
        while inner.records.len() > RECORDS_MAX {
            let Some(oldest) = inner
                .records
                .values()
                .min_by_key(|r| (!matches!(r.ending, Ending::Expired), r.kept_at))
                .map(|r| r.job)
            else {
                break;
            };
            self.drop_output(inner, &oldest);
            inner.records.remove(&oldest);
            if let Some(path) = self.path(&oldest, "end") {
                let _ = std::fs::remove_file(path);
            }
        }
    }

    /// How job `job` ended, if this node keeps it.
    pub fn record_of(&self, job: &JobId) -> Option<Record> {
        self.inner
            .lock()
            .expect("results lock")
            .records
            .get(job)
            .cloned()
    }

    /// The kept output of job `job`, read and checked against its hash.
    pub fn output(&self, job: &JobId) -> Option<Arc<Vec<u8>>> {
        let (output, memory) = self
            .inner
            .lock()
            .expect("results lock")
            .outputs
            .get(job)
            .cloned()?;
        let bytes = match memory {
            Some(bytes) => bytes,
            None => Arc::new(std::fs::read(self.path(job, "out")?).ok()?),
        };
        (BlobHash::of(&bytes) == output.hash).then_some(bytes)
    }

    /// A kept output by its hash (for a peer that fetches it).
    pub fn output_by_hash(&self, hash: &BlobHash) -> Option<Arc<Vec<u8>>> {
        let job = self.job_of(hash)?;
        self.output(&job)
    }

    /// The job whose kept output hashes to `hash`.
    pub fn job_of(&self, hash: &BlobHash) -> Option<JobId> {
        self.inner
            .lock()
            .expect("results lock")
            .outputs
            .iter()
            .find(|(_, (o, _))| o.hash == *hash)
            .map(|(job, _)| *job)
    }

    /// Every ending kept, for the protocol after a restart.
    pub fn endings(&self) -> Vec<Record> {
        let inner = self.inner.lock().expect("results lock");
        inner.records.values().cloned().collect()
    }

    /// Drops the outputs past their retention, then the oldest past the budget. Returns the
    /// jobs whose outputs went, with their epochs (their records now say expired).
    pub fn expire(&self) -> Vec<(JobId, u64)> {
        let now = unix_now();
        let mut inner = self.inner.lock().expect("results lock");
        let mut done: Vec<(u64, JobId, u64)> = inner
            .records
            .values()
            .filter(|r| matches!(r.ending, Ending::Done { .. }))
            .map(|r| {
                let len = inner.outputs.get(&r.job).map_or(0, |(o, _)| o.len);
                (r.kept_at, r.job, len)
            })
            .collect();
        done.sort_unstable();
        let mut total: u64 = done.iter().map(|d| d.2).sum();
        let mut expired = Vec::new();
        for (kept_at, job, len) in done {
            let old = now.saturating_sub(kept_at) >= self.retention.as_secs();
            if !old && total <= self.budget {
                continue;
            }
            total -= len;
            self.drop_output(&mut inner, &job);
            if let Some(r) = inner.records.get_mut(&job) {
                r.ending = Ending::Expired;
                let r = r.clone();
                self.write_record(&r);
                expired.push((job, r.epoch));
            }
        }
        expired
    }
}

pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    crate::suspects::write_private(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// Reads the records and outputs under `dir`.
fn load(dir: &Path, inner: &mut Inner) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut outs = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        match path.extension().and_then(|e| e.to_str()) {
            Some("end") => match std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Record>(&b).map_err(|e| e.to_string()))
            {
                Ok(record) => {
                    inner.records.insert(record.job, record);
                }
                Err(e) => tracing::warn!("skipping {}: {e}", path.display()),
            },
            Some("out") => outs.push(path),
            Some("tmp") => {
                let _ = std::fs::remove_file(&path);
            }
            _ => {}
        }
    }
    for path in outs {
        let job = path
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(JobId::from_hex);
        let kept = job.and_then(|job| match inner.records.get(&job).map(|r| &r.ending) {
            Some(Ending::Done { output, .. }) => Some((job, *output)),
            _ => None,
        });
        match kept {
            Some((job, output)) => {
                inner.outputs.insert(job, (output, None));
            }
            None => {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(b: u8) -> JobId {
        JobId([b; 32])
    }

    fn done(output: OutputRef) -> Ending {
        Ending::Done {
            output,
            holders: Vec::new(),
        }
    }

    #[test]
    fn a_kept_output_survives_a_restart_and_an_unfinished_one_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let store = ResultStore::open(Some(dir.path()), DEFAULT_BUDGET, DEFAULT_RETENTION);
        let bytes = Arc::new(b"{\"a\":1}".to_vec());
        let out = store.put_output(job(1), &bytes);
        store.record(job(1), 7, done(out));
        store.put_output(job(2), &Arc::new(b"half".to_vec()));
        let again = ResultStore::open(Some(dir.path()), DEFAULT_BUDGET, DEFAULT_RETENTION);
        assert_eq!(again.output(&job(1)).unwrap(), bytes);
        assert_eq!(again.record_of(&job(1)).unwrap().epoch, 7);
        assert_eq!(again.output_by_hash(&out.hash).unwrap(), bytes);
        assert!(again.output(&job(2)).is_none());
        assert!(
            !dir.path()
                .join("results")
                .join(format!("{}.out", job(2).to_hex()))
                .exists()
        );
    }

    #[test]
    fn outputs_past_the_budget_expire_oldest_first_and_leave_a_tombstone() {
        let dir = tempfile::tempdir().unwrap();
        let store = ResultStore::open(Some(dir.path()), 10, DEFAULT_RETENTION);
        for b in 1..=3 {
            let out = store.put_output(job(b), &Arc::new(vec![b; 6]));
            store.record(job(b), 1, done(out));
            // Distinct ages, oldest first.
            store
                .inner
                .lock()
                .unwrap()
                .records
                .get_mut(&job(b))
                .unwrap()
                .kept_at = unix_now() - 10 + u64::from(b);
        }
        let expired = store.expire();
        assert_eq!(expired, vec![(job(1), 1), (job(2), 1)]);
        assert_eq!(store.record_of(&job(1)).unwrap().ending, Ending::Expired);
        assert!(store.output(&job(1)).is_none());
        assert!(store.output(&job(3)).is_some());
        let again = ResultStore::open(Some(dir.path()), 10, DEFAULT_RETENTION);
        assert_eq!(again.record_of(&job(2)).unwrap().ending, Ending::Expired);
    }

    #[test]
    fn outputs_past_their_retention_expire() {
        let store = ResultStore::open(None, DEFAULT_BUDGET, Duration::from_secs(60));
        let out = store.put_output(job(1), &Arc::new(b"x".to_vec()));
        store.record(job(1), 1, done(out));
        assert!(store.expire().is_empty());
        store
            .inner
            .lock()
            .unwrap()
            .records
            .get_mut(&job(1))
            .unwrap()
            .kept_at -= 61;
        assert_eq!(store.expire(), vec![(job(1), 1)]);
    }

    #[test]
    fn a_kept_file_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = ResultStore::open(Some(dir.path()), DEFAULT_BUDGET, DEFAULT_RETENTION);
        let out = store.put_output(job(4), &Arc::new(b"secret".to_vec()));
        store.record(job(4), 1, done(out));
        let results = dir.path().join("results");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&results), 0o700);
        assert_eq!(
            mode(&results.join(format!("{}.out", job(4).to_hex()))),
            0o600
        );
        assert_eq!(
            mode(&results.join(format!("{}.end", job(4).to_hex()))),
            0o600
        );
    }
}
