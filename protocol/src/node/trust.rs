//! How far this node trusts its peers' results: the members whose votes lost are suspects,
//! for a time that doubles with each offence; a suspect is not recruited, not ranked for tasks,
//! its claims are ignored, and it is not asked for what the jobs share. And, for a job this node
//! submitted with spot checks, which first results a second member must check: chosen with a
//! secret only this node knows, once the first result is in.
//!
//! Suspicions are local state: each node judges for itself from the votes it saw. They are
//! bounded, and the driver keeps them across restarts ([`Effect::Suspected`],
//! [`Node::restore_suspect`]).

use super::Node;
use crate::effects::Effect;
use crate::ids::{JobId, Millis, NodeId};
use crate::job_state::Completion;
use crate::view::{ME, PeerIx};

/// How long a first offence makes a peer a suspect; each further one doubles it.
pub const SUSPECT_BASE_MS: Millis = 60_000;
/// The longest a suspicion lasts.
pub const SUSPECT_MAX_MS: Millis = 24 * 3600 * 1000;
/// Suspects remembered (oldest forgotten first).
pub const SUSPECTS_MAX: usize = 4096;

/// What this node holds against a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Suspicion {
    /// Votes it lost, in all.
    pub lost: u32,
    /// Times it was caught (a job's losses count once).
    pub offences: u32,
    /// Until when it stays a suspect.
    pub until: Millis,
}

impl Node {
    /// Sets the secret this node chooses spot checks with (the driver passes random bytes).
    pub fn set_secret(&mut self, secret: [u8; 32]) {
        self.secret = secret;
    }

    /// Whether `peer` is a suspect at `now`.
    pub fn is_suspect(&self, peer: &NodeId, now: Millis) -> bool {
        self.suspects.get(peer).is_some_and(|s| s.until > now)
    }

    pub(super) fn suspect_ix(&self, ix: PeerIx, now: Millis) -> bool {
        ix != ME && self.is_suspect(&self.view.id(ix), now)
    }

    /// The suspects at `now`.
    pub fn suspects(&self, now: Millis) -> Vec<(NodeId, Suspicion)> {
        self.suspects
            .iter()
            .filter(|(_, s)| s.until > now)
            .map(|(id, s)| (*id, *s))
            .collect()
    }

    /// Restores a suspicion the driver kept (`remaining_ms` of it left).
    pub fn restore_suspect(
        &mut self,
        now: Millis,
        peer: NodeId,
        lost: u32,
        offences: u32,
        remaining_ms: Millis,
    ) {
        let until = now + remaining_ms.min(SUSPECT_MAX_MS);
        self.suspects.insert(
            peer,
            Suspicion {
                lost,
                offences,
                until,
            },
        );
    }

    /// Members of a job lost votes: each becomes (or stays longer) a suspect and stops taking
    /// part in this node's jobs.
    pub(super) fn votes_lost(&mut self, now: Millis, losers: &[PeerIx]) {
        for &ix in losers {
            if ix == ME {
                continue; // this node's own result lost: nothing to hold against itself
            }
            let id = self.view.id(ix);
            let s = self.suspects.get_or_insert_with(id, || Suspicion {
                lost: 0,
                offences: 0,
                until: now,
            });
            s.lost += 1;
            s.offences += 1;
            let span = SUSPECT_BASE_MS
                .saturating_mul(1 << (s.offences - 1).min(20))
                .min(SUSPECT_MAX_MS);
            s.until = s.until.max(now + span);
            let suspicion = *s;
            self.effects.push_back(Effect::Suspected {
                peer: id,
                lost: suspicion.lost,
                offences: suspicion.offences,
                remaining_ms: suspicion.until - now,
            });
            // Out of every job's ranking: its claims will not be waited for.
            for job in self.jobs.values_mut() {
                if let Some(m) = job.members.get(ix)
                    && m.weight > 0
                {
                    let changes = job.members.announce(ix, id, 0, now);
                    job.apply(&changes);
                }
            }
        }
    }

    /// Whether a claim by `by` should count: not a suspect, and not a member that voted on
    /// the task already (no member computes two replicas of one task).
    pub(super) fn claim_counts(&self, job: &JobId, task: u32, by: PeerIx, now: Millis) -> bool {
        !self.suspect_ix(by, now) && self.jobs.get(job).is_none_or(|j| !j.votes.voted(task, by))
    }

    /// The coordinator of a spot-checked job (its submitter, or a successor) heard the first
    /// result of `task`, from `first`: it decides, with its secret, whether a second member
    /// must check it, and says so to the members. A result this node computed itself is never
    /// checked (it trusts itself; a second computation would only cost time): the
    /// coordinator's own share of the tasks costs nothing more, and a worker's results are
    /// checked at the rate asked whatever share the coordinator took.
    pub(super) fn spot_check(
        &mut self,
        now: Millis,
        job: JobId,
        task: u32,
        first: PeerIx,
    ) -> Completion {
        let Some(j) = self.jobs.get_mut(&job) else {
            return Completion::Old;
        };
        if j.coordinator != ME || j.need(task).is_some() {
            return Completion::Old;
        }
        let mut h = blake3::Hasher::new_keyed(&self.secret);
        h.update(&job.0);
        h.update(&task.to_le_bytes());
        let draw = u32::from_le_bytes(h.finalize().as_bytes()[..4].try_into().expect("4 bytes"));
        // A uniform draw in 0..1,000,000 below the fraction: checked.
        let check = first != ME && u64::from(draw) % 1_000_000 < u64::from(j.spec.trust.verify_ppm);
        let outcome = j.decide(task, check, now);
        self.queue_entry(job, 6, |b| b.checks.push((task, check)));
        outcome
    }
}
