//! What each received message does.

use super::{FinishedJob, Node, truncate_utf8};
use crate::durable::Ending;
use crate::effects::Effect;
use crate::ids::{JobId, Millis, NodeId};
use crate::job_state::{Completion, JobState, TaskState};
use crate::rendezvous;
use crate::topic::Topic;
use crate::view::{ME, PeerIx};
use crate::wire::Message;
use crate::wire::{
    Advert, Announce, Batch, Decline, Failure, Finished, MAX_REASON_BYTES, Pulse, ResultRef,
};
use std::sync::Arc;

impl Node {
    pub(super) fn on_advert(&mut self, now: Millis, from: PeerIx, advert: &Advert) {
        if advert.first {
            // A peer's first advert since it started: it came back as a new process (perhaps a
            // restart quicker than the member TTL), and what the old one held went with it: its
            // claims, its results and its copies, forgotten as for a member that went silent.
            for job in self.jobs.values_mut() {
                job.forget(&[from], now);
            }
        }
        self.view.update(from, advert.clone(), now);
        if self.view.coverage_due() {
            self.adjust_coverage(now);
            if self.first_advert_held {
                // Enough of the mesh heard to size the period: the first advert can go.
                self.first_advert_held = false;
                self.next_advert = now;
            }
        }
    }

    pub(super) fn on_announce(&mut self, now: Millis, from: PeerIx, a: &Announce) {
        let id = a.job;
        if self.finished.get(&id).is_some_and(|f| f.epoch >= a.epoch) {
            return;
        }
        let me = self.id();
        let Ok(mine) = a.members.binary_search_by_key(&me, |m| m.id) else {
            // Not a member: the job is none of this node's business, but it can say, asked,
            // that the job runs and how far it is.
            self.heard_announce(from, a);
            return;
        };
        let my_slots = self.slots_for(&a.spec.sched.needs);
        // A job is its submitter's, whoever announces it. A successor may announce it to
        // members new to it only where anyone's jobs are run (an allow-list names submitters,
        // and a successor is not one).
        let sender = self.view.id(from);
        let tracked = self.jobs.contains_key(&id);
        let allowed = self.accepts_jobs_from(&a.submitter)
            && (tracked
                || sender == a.submitter
                || (a.spec.keep.copies > 1 && self.submitters.is_none()));
        if !allowed || (my_slots == 0 && a.members[mine].weight > 0) {
            if self.declined.get(&id) != Some(&a.epoch) {
                self.declined.insert(id, a.epoch);
                self.stats.jobs_declined += 1;
                let decline = Decline {
                    job: id,
                    epoch: a.epoch,
                };
                self.publish(Topic::Jobs, Message::Decline(decline));
            }
            return;
        }
        self.view.heard(from, now + self.cfg.member_ttl_ms);
        if let Some(job) = self.jobs.get_mut(&id) {
            // Another node announcing a job this node runs alone: the mesh knows of it after
            // all, so its traffic goes out again like any job's.
            job.alone = false;
        }
        if let Some(job) = self.jobs.get(&id) {
            if job.epoch == a.epoch {
                self.announced_by(now, from, a);
                self.merge_members(id, from, a, now);
                if let Some(job) = self.jobs.get_mut(&id) {
                    // Fills in completions this node missed. Skipped while it knows of as many
                    // done tasks as the summary lists: walking every range each second would
                    // cost a pass over the job's tasks.
                    let listed: u64 = a.done.iter().map(|&(lo, hi)| u64::from(hi - lo)).sum();
                    if u64::from(job.done) < listed {
                        job.record_done_ranges(&a.done, now);
                    }
                }
            }
            return;
        }
        if self.jobs.len() >= self.cfg.max_jobs {
            self.stats.jobs_refused += 1;
            return;
        }
        let weight = a.members[mine].weight.min(my_slots);
        let Some(submitter) = self.view.intern(a.submitter) else {
            return;
        };
        let mut job = JobState::new(
            Arc::new(a.spec.clone()),
            id,
            (submitter, &a.submitter),
            a.epoch,
            now,
            &me,
            weight,
        );
        job.coordinator = from;
        if submitter == ME {
            // This node submitted the job before it restarted: what it held went with the
            // old process, and the job stays with its successor.
            job.holders.iter_mut().for_each(Vec::clear);
        }
        job.steal_delay_ms = self.cfg.steal_delay_ms;
        job.near_inputs = self.cfg.reduce_near_inputs;
        if !a.own_topic {
            job.topic = Topic::Jobs;
        }
        job.record_done_ranges(&a.done, now);
        self.insert_job(job);
        self.merge_members(id, from, a, now);
        self.take_up_early(now, id);
        self.plan_keeps(now);
    }

    /// Adds the announced members to a tracked job (and updates their weights).
    fn merge_members(&mut self, id: JobId, from: PeerIx, a: &Announce, now: Millis) {
        let me = self.id();
        let mut changes = Vec::new();
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        let known = job.members.len();
        for m in &a.members {
            if m.id == me {
                continue;
            }
            let Some(ix) = self.view.intern(m.id) else {
                continue;
            };
            // A suspect stays out of this node's rankings whatever the submitter says.
            let suspect = self.suspects.get(&m.id).is_some_and(|s| s.until > now);
            let weight = if suspect { 0 } else { m.weight };
            changes.extend(job.members.announce(ix, m.id, weight, now));
        }
        changes.extend(job.members.heard(from, self.view.id(from), now));
        job.apply(&changes);
        if job.members.len() > known {
            self.brief_newcomers(id, now);
        }
    }

    /// Notes that `from` spoke on job `id`'s topic. Returns whether the job is tracked.
    fn heard_on_job(&mut self, now: Millis, from: PeerIx, id: &JobId) -> bool {
        let Some(job) = self.jobs.get_mut(id) else {
            return false;
        };
        if let Some(change) = job.members.heard(from, self.view.id(from), now) {
            job.apply(&[change]);
        }
        self.view.heard(from, now + self.cfg.member_ttl_ms);
        true
    }

    pub(super) fn on_batch(&mut self, now: Millis, from: PeerIx, b: &Batch) {
        if !self.heard_on_job(now, from, &b.job) {
            self.stats.ignored_entries += b.entries() as u64;
            self.keep_early(now, from, b);
            return;
        }
        if let Some(job) = self.jobs.get_mut(&b.job) {
            job.members.sent_batch(from, now);
            if b.looked_up && job.members.get(from).is_some() {
                job.looked_up.insert(from);
            }
            job.bytes_moved = job.bytes_moved.saturating_add(b.moved);
        }
        let job = b.job;
        // Completions before claims: a member that completed a reduce's last child and claimed
        // the reduce in the same batch (it holds the reduce's inputs) has its claim taken, not
        // ignored as a claim of a task still waiting for that child.
        for (task, result) in &b.done {
            let reused = b.reused.contains(task);
            self.on_done(now, job, *task, from, result.clone(), reused);
        }
        for &task in &b.claims {
            self.on_claim(now, job, task, from);
        }
        for f in &b.failed {
            self.on_failure(now, job, f.task, from, &f.reason, f.transient);
        }
        // Each holder whose result was put back in play is swept once per batch, however
        // many of its results the batch names (bounded by the job's members).
        let mut sweep: Vec<NodeId> = Vec::new();
        for l in &b.lost {
            if self.on_lost(now, job, l.task, l.holder) && !sweep.contains(&l.holder) {
                sweep.push(l.holder);
            }
        }
        for holder in sweep {
            self.sweep_holder(now, job, holder);
        }
        if !b.checks.is_empty() {
            self.on_checks(now, job, from, &b.checks);
        }
        for &task in &b.released {
            self.on_released(now, job, task, from);
        }
        if !b.held.is_empty() || b.output.is_some() {
            self.on_holdings(job, from, &b.held, b.output);
        }
    }

    /// `by` gave back its unstarted claim of `task`: it is open again (a claim by anyone
    /// else stands).
    fn on_released(&mut self, now: Millis, job: JobId, task: u32, by: PeerIx) {
        let Some(j) = self.jobs.get_mut(&job) else {
            return;
        };
        match j.tasks.get(task as usize) {
            Some(TaskState::Claimed { by: cur, .. }) if *cur == by => j.reopen(task, now),
            _ => self.stats.ignored_entries += 1,
        }
    }

    /// The submitter of a spot-checked job decided which first results are checked (from
    /// anyone else, the decisions are ignored: they are the submitter's secret).
    fn on_checks(&mut self, now: Millis, job: JobId, from: PeerIx, checks: &[(u32, bool)]) {
        for &(task, check) in checks {
            let Some(j) = self
                .jobs
                .get_mut(&job)
                .filter(|j| j.coordinator == from && task < j.total())
            else {
                self.stats.ignored_entries += 1;
                continue;
            };
            let outcome = j.decide(task, check, now);
            self.after_completion(now, job, task, outcome);
        }
    }

    pub(super) fn on_pulse(&mut self, now: Millis, from: PeerIx, p: &Pulse) {
        if !self.heard_on_job(now, from, &p.job) {
            return;
        }
        if let Some(job) = self.jobs.get_mut(&p.job) {
            job.members.set_running(from, &p.running);
        }
    }

    pub(super) fn on_finished(&mut self, now: Millis, from: PeerIx, f: &Finished) {
        if let Some(j) = self.jobs.get(&f.job) {
            if !Self::may_end(j, from) {
                self.stats.ignored_entries += 1;
                return;
            }
            let later_run_here = j.epoch > f.epoch && j.coordinator == ME;
            self.heard_on_job(now, from, &f.job);
            if later_run_here && matches!(f.ending, Ending::Done { .. }) {
                // An earlier run of the job ended with its output while this node coordinates a
                // later one (it took over from a coordinator it thought silent). The job is
                // done whatever the run (its output is its content's): this run ends the same
                // way, so that its members stop too, where it would wait for keepers that
                // stopped with the earlier run (seen in the simulator: a successor holding the
                // output waited for a second keeper forever).
                self.end_job(f.job, f.ending.clone());
                return;
            }
        }
        let kept = self.heard_ending(f.job, f);
        let failed = matches!(f.ending, Ending::Failed { .. });
        if !kept && !failed && (self.mine.contains(&f.job) || self.collecting_copy(f)) {
            // This node waits for the output itself, or is fetching its copy of it: the job
            // ends here once that is done ([`Node::job_collected`]), not before, or a keeper
            // would hold an output nobody knows it keeps.
            return;
        }
        match self.jobs.get(&f.job) {
            Some(j) if j.epoch <= f.epoch => {
                if let (Ending::Failed { error }, true) = (&f.ending, self.mine.remove(&f.job)) {
                    let error = error.clone();
                    self.effects
                        .push_back(Effect::JobFailed { job: f.job, error });
                }
                self.retire(f.job, f.epoch)
            }
            Some(_) => {}
            // The end of a run this node has not heard of yet: its announcement may still be
            // on its way, and must not start the job here when it arrives.
            None if self.finished.get(&f.job).is_none_or(|e| e.epoch < f.epoch) => {
                let end = FinishedJob {
                    epoch: f.epoch,
                    view: None,
                };
                self.finished.insert(f.job, end);
            }
            None => {}
        }
    }

    fn on_claim(&mut self, now: Millis, job: JobId, task: u32, by: PeerIx) {
        if !self.claim_counts(&job, task, by, now) {
            self.stats.ignored_entries += 1;
            return;
        }
        let Some(current) = self
            .jobs
            .get(&job)
            .and_then(|j| j.tasks.get(task as usize))
            .cloned()
        else {
            self.stats.ignored_entries += 1;
            return;
        };
        let take = match current {
            TaskState::Ready { .. } => true,
            TaskState::Claimed { by: cur, at } => {
                cur == by
                    || !self.claim_valid(job, task, cur, at, now)
                    || rendezvous::conflict_winner(&job, task, self.view.id(cur), self.view.id(by))
                        == self.view.id(by)
            }
            _ => false,
        };
        if take && let Some(j) = self.jobs.get_mut(&job) {
            j.claim(task, by, now);
        }
    }

    /// A claim is valid while its holder is a live member and either claimed it within the
    /// lease or says in its pulses that it runs it. This node's own claims are valid while it
    /// holds the task.
    pub(super) fn claim_valid(
        &self,
        job: JobId,
        task: u32,
        by: PeerIx,
        at: Millis,
        now: Millis,
    ) -> bool {
        if by == ME {
            return self.running.contains_key(&(job, task)) || self.queued.contains(&(job, task));
        }
        self.jobs.get(&job).is_some_and(|j| {
            j.members.is_live(by)
                && (now.saturating_sub(at) < self.cfg.lease_ms || j.members.runs(by, task))
        })
    }

    pub(super) fn on_done(
        &mut self,
        now: Millis,
        job: JobId,
        task: u32,
        holder: PeerIx,
        result: ResultRef,
        reused: bool,
    ) {
        // A suspect's results are not counted: one that lost a vote does not get to vote again.
        let suspect = holder != ME && self.is_suspect(&self.view.id(holder), now);
        let Some(j) = self
            .jobs
            .get_mut(&job)
            .filter(|j| task < j.total() && (!suspect || j.single_vote()))
        else {
            self.stats.ignored_entries += 1;
            return;
        };
        if reused && !j.tasks[task as usize].is_done() {
            // Before the result is recorded: its parent, if it becomes ready, looks at it.
            j.reported_reused.insert(task);
        }
        let mut outcome = j.record_result(task, holder, result, now);
        if matches!(outcome, Completion::Done { .. }) {
            if reused {
                j.reused += 1;
            } else if j.tree.is_map(task)
                && j.at_data(task, &self.view.id(holder), &self.view.id(j.submitter))
            {
                j.at_data += 1;
            }
        }
        if outcome == Completion::Voted && j.coordinator == ME && j.need(task).is_none() {
            outcome = self.spot_check(now, job, task, holder);
        }
        self.after_completion(now, job, task, outcome);
    }

    /// What follows a task's completion: its inputs' blobs released, the root collected,
    /// the members whose votes lost suspected.
    fn after_completion(&mut self, now: Millis, job: JobId, task: u32, outcome: Completion) {
        let Completion::Done { losers } = outcome else {
            return;
        };
        let Some(j) = self.jobs.get_mut(&job) else {
            return;
        };
        for (task, key) in j.reuse_ready.drain(..) {
            self.effects
                .push_back(Effect::ReuseReduce { job, task, key });
        }
        for blob in j.released_by(task) {
            self.effects.push_back(Effect::Release { blob });
        }
        let awaited = j.output.is_some();
        if task == j.tree.root() && self.keeps_output(&self.jobs[&job], now) {
            self.request_collect(job);
        } else if awaited {
            // A completion the job's account waited for.
            self.try_finish(job);
        }
        if !losers.is_empty() {
            self.votes_lost(now, &losers);
        }
    }

    /// Reports a task of this node that failed, and tells the job's members.
    pub(super) fn fail_task(
        &mut self,
        now: Millis,
        job: JobId,
        task: u32,
        mut reason: String,
        transient: bool,
    ) {
        truncate_utf8(&mut reason, MAX_REASON_BYTES);
        self.on_failure(now, job, task, ME, &reason, transient);
        self.queue_entry(job, 16 + reason.len(), |b| {
            b.failed.push(Failure {
                task,
                reason,
                transient,
            })
        });
    }

    /// A task failed on `by`. A transient failure (its input could not be fetched) does not
    /// count towards the attempt limit: the task is offered again after a back-off, so that a
    /// partition or a slow peer cannot fail a job that would succeed later.
    fn on_failure(
        &mut self,
        now: Millis,
        job: JobId,
        task: u32,
        by: PeerIx,
        reason: &str,
        transient: bool,
    ) {
        let max = self.cfg.max_attempts;
        let backoff = self.cfg.unavailable_backoff_ms;
        let Some(j) = self.jobs.get_mut(&job).filter(|j| task < j.total()) else {
            self.stats.ignored_entries += 1;
            return;
        };
        if let TaskState::Claimed { by: cur, .. } = j.tasks[task as usize]
            && cur == by
        {
            j.reopen(task, if transient { now + backoff } else { now });
        }
        if transient {
            return;
        }
        let attempts = j.attempts.entry(task).or_insert(0);
        *attempts += 1;
        let attempts = *attempts;
        if attempts >= max && j.failed.is_none() {
            let error = format!(
                "job {} failed: task {task} failed {attempts} times; last error: {reason}",
                job
            );
            self.fail_job(job, error);
        }
    }

    /// Job `job` has failed for good: its submitter reports it; its coordinator tells
    /// everyone and drops it; a member keeps the reason until the coordinator's end arrives.
    pub(super) fn fail_job(&mut self, job: JobId, error: String) {
        let Some(j) = self.jobs.get_mut(&job) else {
            return;
        };
        j.failed = Some(error.clone());
        let (epoch, coordinator) = (j.epoch, j.coordinator);
        if self.mine.remove(&job) {
            self.effects.push_back(Effect::JobFailed {
                job,
                error: error.clone(),
            });
            if coordinator != ME {
                self.retire(job, epoch);
                return;
            }
        }
        if coordinator == ME {
            self.end_job(job, Ending::Failed { error });
        }
    }

    /// A member declined a job this node submitted: it is kept as a member that takes no
    /// tasks (so it is not recruited again), and counted.
    pub(super) fn on_decline(&mut self, now: Millis, from: PeerIx, d: &Decline) {
        let Some(job) = self.jobs.get_mut(&d.job) else {
            return;
        };
        if job.coordinator != ME || job.epoch != d.epoch {
            return;
        }
        let was_member = job.members.get(from).is_some_and(|m| m.weight > 0);
        let changes = job.members.announce(from, self.view.id(from), 0, now);
        job.apply(&changes);
        if was_member {
            job.declined += 1;
        }
    }

    /// `task`'s result, which its completion said `holder` holds, could not be fetched: a
    /// member whose record names the same holder puts the task back in play. Returns whether
    /// it put back a result another member held: the caller then sweeps that holder once
    /// ([`Node::sweep_holder`]), however many of its results a batch names, so a batch of lost
    /// reports costs one pass over the job's tasks per holder, not per report.
    pub(super) fn on_lost(&mut self, now: Millis, job: JobId, task: u32, holder: NodeId) -> bool {
        let Some(holder_ix) = self.view.lookup(&holder) else {
            return false;
        };
        let Some(j) = self.jobs.get_mut(&job).filter(|j| task < j.total()) else {
            self.stats.ignored_entries += 1;
            return false;
        };
        let named = match j.tasks[task as usize] {
            TaskState::Done { holder: h, .. } => h == holder_ix,
            // This node is named as the holder of a result it does not know it holds: it learnt
            // of the completion from a summary (after a restart, or joining late), so it has no
            // copy to serve, and may be the member meant to compute it again (its part's
            // holder, which others leave it to for the locality wait).
            TaskState::DoneElsewhere => holder_ix == ME,
            _ => false,
        };
        named && j.revert(task, now) && holder_ix != ME
    }

    /// After [`Node::on_lost`] put back in play a result `holder` held: every other result
    /// still needed that it is known to hold goes back in play too
    /// ([`crate::job_state::JobState::revert_held_by`]).
    pub(super) fn sweep_holder(&mut self, now: Millis, job: JobId, holder: NodeId) {
        if let (Some(ix), Some(j)) = (self.view.lookup(&holder), self.jobs.get_mut(&job)) {
            j.revert_held_by(ix, now);
        }
    }
}
