//! The timers: adverts and the coverage of the view, pulses, announcements and the members of
//! this node's jobs, expiry of members and claims, and repair of lost completions.

use super::{Node, result_entry_len};
use crate::ids::{JobId, Millis};
use crate::job_state::JobState;
use crate::members::RankChange;
use crate::rendezvous;
use crate::topic::{Subscription, Topic};
use crate::view::ME;
use crate::wire::{Advert, MAX_MEMBERS, MAX_PULSE_TASKS, Message, Pulse};

/// Most completions re-sent per repair round.
const REPAIR_MAX_PER_ROUND: usize = 4096;

impl Node {
    pub(super) fn upkeep(&mut self, now: Millis) {
        let started = *self.started.get_or_insert(now);
        if self.first_advert_held && now < started + super::FIRST_ADVERT_DELAY_MS {
            self.next_advert = self.next_advert.max(started + super::FIRST_ADVERT_DELAY_MS);
        }
        if now >= self.next_advert {
            self.first_advert_held = false;
            self.adjust_coverage(now);
            let interval = self.advert_interval(now);
            self.send_advert(interval);
            self.next_advert = now + interval;
            self.last_advert = Some(now);
        }
        if now >= self.next_sweep {
            self.sweep(now);
            self.check_parts(now);
            self.check_pieces(now);
            self.next_sweep = now + self.cfg.sweep_interval_ms;
        }
        if now >= self.next_announce {
            self.announce_mine(now);
            self.next_announce = now + self.cfg.announce_interval_ms;
        }
        if now >= self.next_pulse {
            self.pulse();
            self.next_pulse = now + self.cfg.pulse_interval_ms;
        }
        if now >= self.next_repair {
            self.repair(now);
            self.next_repair = now + self.cfg.repair_interval_ms;
        }
    }

    /// Listens to fewer or more advert shards so that the view stays near its target size.
    pub(super) fn adjust_coverage(&mut self, now: Millis) {
        let before: Vec<u8> = self.view.shards().collect();
        if !self.view.adjust_coverage(now) {
            return;
        }
        let after: Vec<u8> = self.view.shards().collect();
        for &s in before.iter().filter(|s| !after.contains(s)) {
            self.subscriptions
                .push_back(Subscription::Leave(Topic::Adverts(s)));
        }
        for &s in after.iter().filter(|s| !before.contains(s)) {
            self.subscriptions
                .push_back(Subscription::Join(Topic::Adverts(s)));
        }
    }

    /// The advert period: the base period, stretched in a large view so that each node
    /// receives at most `advert_rate_max` adverts per second. A newcomer sizes it by the view
    /// it will have, not by the few peers it has heard so far, so that a mesh booting at once
    /// does not advertise at the small-mesh rate until every view has filled.
    fn advert_interval(&self, now: Millis) -> Millis {
        let peers = self.view.expected_size(now);
        let stretched = peers * 1000 / Millis::from(self.cfg.advert_rate_max.max(1));
        stretched.clamp(
            self.cfg.advert_interval_ms,
            self.cfg
                .advert_interval_max_ms
                .max(self.cfg.advert_interval_ms),
        )
    }

    fn send_advert(&mut self, interval: Millis) {
        let advert = Advert {
            slots_total: self.capacity.slots,
            slots_free: self.free_slots(),
            cores: self.capacity.cores,
            mem_mb: self.capacity.mem_mb,
            load_milli: self.load_milli,
            interval_ms: u32::try_from(interval).unwrap_or(u32::MAX),
            first: self.last_advert.is_none(),
            tags: self.tags.clone(),
            shares: self.shares.clone(),
        };
        let shard = self.view.home_shard();
        self.publish(Topic::Adverts(shard), Message::Advert(advert));
    }

    /// Members silent too long are gone for their jobs; claims past their lease go back into
    /// play; idle jobs are dropped.
    fn sweep(&mut self, now: Millis) {
        let mut idle = Vec::new();
        for id in self.order.clone() {
            let job = self.jobs.get_mut(&id).expect("listed in order");
            let (gone, changes) = job.members.expire(now, self.cfg.member_ttl_ms);
            job.apply(&changes);
            job.forget(&gone, now);
            job.expire_claims(now, self.cfg.lease_ms);
            job.senders = Some(job.members.senders_since(now.saturating_sub(1_000)) as u32 + 1);
            if job.coordinator != ME
                && !self.mine.contains(&id)
                && now.saturating_sub(job.last_progress) > self.cfg.job_idle_ms
            {
                idle.push((id, job.epoch));
            }
        }
        for (id, epoch) in idle {
            self.retire(id, epoch);
        }
        self.check_coordinators(now);
        self.plan_keeps(now);
        self.ask_unheard_endings(now);
        // Roots that became done again after a revert need collecting again, by whoever keeps
        // the output; a coordinator whose output keepers went away may end the job now.
        let complete: Vec<JobId> = self
            .order
            .iter()
            .filter(|id| self.jobs[*id].is_complete())
            .copied()
            .collect();
        for id in complete {
            let j = &self.jobs[&id];
            if j.output.is_some() {
                self.try_finish(id);
            } else if self.keeps_output(j, now) {
                self.request_collect(id);
            }
        }
    }

    /// Re-announces the running jobs this node submitted, topping their members up first.
    fn announce_mine(&mut self, now: Millis) {
        let running: Vec<JobId> = self
            .order
            .iter()
            .filter(|id| {
                let job = &self.jobs[*id];
                job.coordinator == ME && !job.alone && job.failed.is_none() && !job.is_complete()
            })
            .copied()
            .collect();
        for id in running {
            let added = self.recruit(id, now);
            let Some(job) = self.jobs.get_mut(&id) else {
                continue;
            };
            job.apply(&added);
            if job.declined > 0 && !job.takes_tasks() && job.members.live_candidates() == 0 {
                // Everyone asked said no, and nobody else is left to ask: waiting would be
                // forever.
                let error = format!(
                    "no node accepts jobs from you: {} node(s) declined the job (they run only \
                     jobs from the submitters they list with --submitters)",
                    job.declined
                );
                self.fail_job(id, error);
                continue;
            }
            if !added.is_empty() {
                self.brief_newcomers(id, now);
            }
            self.announce(id);
        }
    }

    /// Adds live peers of the view that offer slots to job `id`'s members (see
    /// [`Node::recruit_into`]). Returns the ranking changes.
    pub(super) fn recruit(&mut self, id: JobId, now: Millis) -> Vec<RankChange> {
        let Some(mut job) = self.jobs.remove(&id) else {
            return Vec::new();
        };
        let changes = self.recruit_into(&mut job, now);
        self.jobs.insert(id, job);
        changes
    }

    /// Adds live peers of the view that offer slots to `job`'s members, best-ranked for the
    /// job first, until it has [`super::Config::job_members_max`] live candidates. Returns the
    /// ranking changes.
    pub(super) fn recruit_into(&mut self, job: &mut JobState, now: Millis) -> Vec<RankChange> {
        let live = job.members.live_candidates() + usize::from(job.takes_tasks());
        let room = MAX_MEMBERS - 1 - job.members.len().min(MAX_MEMBERS - 1);
        let want = self.cfg.job_members_max.saturating_sub(live).min(room);
        if want == 0 {
            return Vec::new();
        }
        let id = job.id;
        let needs = &job.spec.sched.needs;
        let mut fresh: Vec<(f64, u32, u32)> = self
            .view
            .candidates(now)
            .into_iter()
            .filter(|&(ix, _)| {
                ix != ME
                    && job.members.get(ix).is_none()
                    && !self.is_suspect(&self.view.id(ix), now)
            })
            // Only nodes that meet every need, each weighted by the tasks it can run at once.
            .filter_map(|(ix, slots)| {
                let advert = &self.view.info(ix)?.advert;
                let w = needs.slots(&advert.tags, slots, advert.mem_mb);
                (w > 0).then_some((ix, w))
            })
            .map(|(ix, w)| {
                (
                    rendezvous::score(&id, u32::MAX, &self.view.id(ix), w),
                    ix,
                    w,
                )
            })
            .collect();
        fresh.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
        // A dataset's holders first: its map tasks are theirs ([`crate::locality`]). They are
        // named by the job, so they are recruited whether or not this node's view holds them
        // (in a large mesh the view is a sample): with the slots they advertise, or one.
        let mut holders: Vec<(u32, u32)> = Vec::new();
        if let crate::job::Input::Dataset(d) = &job.spec.input {
            for id in d.parts.iter().flat_map(|p| &p.holders) {
                let Some(ix) = self.view.intern(*id) else {
                    continue;
                };
                if ix == ME
                    || job.members.get(ix).is_some()
                    || self.is_suspect(id, now)
                    || holders.iter().any(|&(h, _)| h == ix)
                {
                    continue;
                }
                let w = match self.view.info(ix) {
                    Some(info) => {
                        let a = &info.advert;
                        needs.slots(&a.tags, a.slots_total, a.mem_mb)
                    }
                    None => 1,
                };
                if w > 0 {
                    holders.push((ix, w));
                }
            }
        }
        let mut changes = Vec::new();
        let others = fresh
            .into_iter()
            .map(|(_, ix, w)| (ix, w))
            .filter(|(ix, _)| !holders.iter().any(|(h, _)| h == ix));
        for (ix, w) in holders.iter().copied().chain(others).take(want) {
            changes.extend(job.members.announce(ix, self.view.id(ix), w, now));
        }
        changes
    }

    /// Tells each job's members that this node is still there, and which tasks it runs.
    fn pulse(&mut self) {
        for id in self.order.clone() {
            self.pulse_job(id);
        }
    }

    /// Tells job `id`'s members that this node is there, and which of its tasks it runs.
    pub(super) fn pulse_job(&mut self, id: JobId) {
        if self.jobs.get(&id).is_some_and(|j| j.alone) {
            return;
        }
        let mut running: Vec<u32> = self
            .running
            .keys()
            .filter(|(j, _)| *j == id)
            .map(|&(_, t)| t)
            .take(MAX_PULSE_TASKS)
            .collect();
        running.sort_unstable();
        let topic = self.topic_of(&id);
        self.publish(topic, Message::Pulse(Pulse { job: id, running }));
    }

    /// Re-sends completions of results held here that are still needed (bounded per round).
    fn repair(&mut self, now: Millis) {
        let mut budget = REPAIR_MAX_PER_ROUND;
        for id in self.order.clone() {
            if budget == 0 {
                break;
            }
            budget -= self.resend_needed(id, now, self.cfg.repair_interval_ms, budget);
        }
        self.repair_holdings();
    }

    /// New members joined job `id`: they know which tasks are done (the announcement says),
    /// but not where the results still needed are, and may rank first for the tasks that
    /// combine them. Tell them now rather than at the next repair round.
    pub(super) fn brief_newcomers(&mut self, id: JobId, now: Millis) {
        self.resend_needed(id, now, 0, REPAIR_MAX_PER_ROUND);
    }

    /// Re-sends, in job `id`'s next batch, up to `max` completions of results held here that
    /// are still needed and at least `min_age` old. Returns how many.
    pub(super) fn resend_needed(
        &mut self,
        id: JobId,
        now: Millis,
        min_age: Millis,
        max: usize,
    ) -> usize {
        let Some(job) = self.jobs.get_mut(&id) else {
            return 0;
        };
        let results = job.needed_results(now, min_age, max);
        // The submitter's spot checks still waiting for their second result: a member that
        // missed the decision would never compute it.
        let checks = if job.coordinator == ME {
            job.open_checks(max.saturating_sub(results.len()))
        } else {
            Vec::new()
        };
        let count = results.len() + checks.len();
        for (task, result) in results {
            let size = result_entry_len(&result);
            self.queue_entry(id, size, |b| b.done.push((task, result)));
        }
        for task in checks {
            self.queue_entry(id, 6, |b| b.checks.push((task, true)));
        }
        count
    }
}
