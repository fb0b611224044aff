//! Shared datasets on a node: the parts this node shares (named in its adverts), the datasets
//! of the mesh as the adverts of live peers describe them, what a job over a dataset moves
//! and where its map tasks ran, and the check that fails a job whose unread part no live node
//! holds (rather than let it wait for ever).

use super::Node;
use crate::dataset::{self, Dataset, DatasetError, MAX_PART_HOLDERS, Part, Share};
use crate::effects::Effect;
use crate::ids::{BlobHash, JobId, Millis, NodeId};
use crate::job::Input;
use crate::view::ME;
use std::collections::BTreeMap;

/// How long a part with map tasks still to run may have no live holder before its job fails.
/// Counted from when the last holder was found gone (itself a member TTL after it went quiet),
/// so that a holder that restarts at once comes back in time.
pub const PART_LOST_MS: Millis = 5_000;

impl Node {
    /// Sets the dataset parts this node shares (checked, sorted, deduplicated); the next
    /// advert names them, and it goes out at the next step if they changed.
    pub fn set_shares(&mut self, mut shares: Vec<Share>) -> Result<(), DatasetError> {
        dataset::check_shares(&shares)?;
        shares.sort_by(|a, b| (&a.name, a.manifest).cmp(&(&b.name, b.manifest)));
        shares.dedup();
        if shares != self.shares {
            self.shares = shares;
            self.next_advert = self.next_advert.min(self.last_now);
        }
        Ok(())
    }

    /// The dataset parts this node shares.
    pub fn shares(&self) -> &[Share] {
        &self.shares
    }

    /// The datasets this node knows: its own shares and those named in the adverts of live
    /// peers in its view, by name; each part (by manifest, in manifest order) with its
    /// holders, sorted, at most [`MAX_PART_HOLDERS`]. A part with no chunks (an empty folder)
    /// is left out; a holder that names a known part with another size is not counted.
    pub fn datasets(&self) -> Vec<Dataset> {
        let now = self.view_now();
        let me = self.id();
        let own = self.shares.iter().map(|s| (me, s));
        let peers = self
            .view
            .live_peers(now)
            .flat_map(|(id, info)| info.advert.shares.iter().map(move |s| (id, s)));
        let mut by_name: BTreeMap<&str, BTreeMap<BlobHash, Part>> = BTreeMap::new();
        for (holder, s) in own.chain(peers) {
            if s.chunks == 0 {
                continue;
            }
            let part = by_name
                .entry(&s.name)
                .or_default()
                .entry(s.manifest)
                .or_insert_with(|| Part {
                    manifest: s.manifest,
                    chunks: s.chunks,
                    bytes: s.bytes,
                    holders: Vec::new(),
                });
            if (part.chunks, part.bytes) == (s.chunks, s.bytes) {
                part.holders.push(holder);
            }
        }
        by_name
            .into_iter()
            .map(|(name, parts)| Dataset {
                name: name.to_string(),
                parts: parts
                    .into_values()
                    .map(|mut p| {
                        p.holders.sort_unstable();
                        p.holders.dedup();
                        p.holders.truncate(MAX_PART_HOLDERS);
                        p
                    })
                    .collect(),
            })
            .collect()
    }

    /// The dataset `name` as a job's input: every part of it this node knows, with holders.
    pub fn dataset(&self, name: &str) -> Result<Dataset, DatasetError> {
        dataset::check_name(name)?;
        let found = self
            .datasets()
            .into_iter()
            .find(|d| d.name == name)
            .ok_or_else(|| DatasetError::Unknown(name.to_string()))?;
        found.validate()?;
        Ok(found)
    }

    /// This node fetched `bytes` of job `job`'s input over the network: counted in the job's
    /// `bytes_moved` here and at its members.
    pub fn input_moved(&mut self, now: Millis, job: JobId, bytes: u64) {
        let Some(j) = self.jobs.get_mut(&job) else {
            return;
        };
        j.bytes_moved = j.bytes_moved.saturating_add(bytes);
        self.queue_entry(job, 9, |b| b.moved = b.moved.saturating_add(bytes));
        self.after_step(now);
    }

    /// Where a job over a dataset starts on this node: the parts it shares are served to the
    /// job's members ([`Effect::ServeParts`]).
    pub(super) fn serve_shared_parts(&mut self, job: JobId) {
        let Some(j) = self.jobs.get(&job) else {
            return;
        };
        let Input::Dataset(d) = &j.spec.input else {
            return;
        };
        let manifests: Vec<BlobHash> = d
            .parts
            .iter()
            .filter(|p| self.shares.iter().any(|s| s.manifest == p.manifest))
            .map(|p| p.manifest)
            .collect();
        if !manifests.is_empty() {
            self.effects
                .push_back(Effect::ServeParts { job, manifests });
        }
    }

    /// Fails each job over a dataset that this node coordinates and whose map tasks still to
    /// run include one that no live node holds (its part's holders and any member that copied
    /// it) for [`PART_LOST_MS`]: the error names the part and its holders.
    pub(super) fn check_parts(&mut self, now: Millis) {
        let mut failing = Vec::new();
        for i in 0..self.order.len() {
            let id = self.order[i];
            let j = &self.jobs[&id];
            let Input::Dataset(d) = &j.spec.input else {
                continue;
            };
            if j.coordinator != ME || j.failed.is_some() {
                continue;
            }
            // Only a member serves a job's data: a holder that declined the job (it runs only
            // its listed submitters' jobs), or that the job never reached, holds it for nobody.
            let live = |ix: u32| j.members.is_live(ix);
            let orphan = (0..j.tree.maps()).find(|&t| {
                !j.tasks[t as usize].is_done()
                    && !j
                        .holders
                        .get(t as usize)
                        .is_some_and(|h| h.iter().any(|&ix| live(ix)))
            });
            let error = orphan
                .and_then(|t| d.locate(t))
                .map(|(part, _)| lost_part_error(&d.name, &d.parts[part]));
            let j = self.jobs.get_mut(&id).expect("listed in order");
            if j.unheld_for(error.is_some(), now) >= PART_LOST_MS
                && let Some(error) = error
            {
                failing.push((id, error));
            }
        }
        for (job, error) in failing {
            self.fail_job(job, error);
        }
    }
}

/// The error of a job whose part `part` of dataset `name` no live node holds.
fn lost_part_error(name: &str, part: &Part) -> String {
    let holders: Vec<String> = part.holders.iter().map(NodeId::to_string).collect();
    format!(
        "dataset {name}: part {} ({} chunks, {} bytes) has no live holder (it was shared by {}); \
         share it again or submit without it",
        part.manifest,
        part.chunks,
        part.bytes,
        holders.join(", ")
    )
}
