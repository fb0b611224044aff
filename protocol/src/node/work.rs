//! Claiming tasks and starting them.

use super::Node;
use crate::effects::{ChildInput, Effect, MapSource, TaskRun, Work};
use crate::ids::{JobId, Millis};
use crate::job::Operator;
use crate::job_state::TaskState;
use crate::view::{ME, PeerIx};

/// How many peers a task run names as fallback sources of what the job shares.
const FALLBACK_SOURCES: usize = 4;

/// A claimed task waiting for a slot; see [`Node::startable_claims`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartableClaim {
    pub job: JobId,
    pub task: u32,
    pub priority: i32,
    pub claimed_at: Millis,
}

impl Node {
    /// How many tasks this node keeps claimed (queued plus running): two per slot for long
    /// tasks (one running, one waiting whose input can be fetched meanwhile), more for short
    /// ones so that claims and results travel in large batches.
    fn window(&self) -> usize {
        let slots = self.capacity.slots as usize;
        let per_slot = match self.avg_task_us {
            None => 1,
            Some(avg) => {
                ((self.cfg.queue_target_us as f64 / avg) as usize).clamp(2, self.cfg.prefetch_max)
            }
        };
        slots * per_slot
    }

    /// The priority of a tracked job (jobs no longer tracked rank lowest).
    fn priority_of(&self, id: &JobId) -> i32 {
        self.jobs
            .get(id)
            .map_or(i32::MIN, |j| j.spec.sched.priority)
    }

    /// Claims what this node may claim now, up to its window: the jobs in [`Node::order`]
    /// (highest priority first, then oldest). Tasks claimed but not started that belong to
    /// lower-priority jobs make room for a higher-priority job's ready tasks: they are released
    /// (and their release is sent, so other members may take them at once).
    pub(super) fn fill_queue(&mut self, now: Millis) {
        if self.capacity.slots == 0 {
            return;
        }
        let mut want = self
            .window()
            .saturating_sub(self.queue.len() + self.running.len());
        let mut wake: Option<Millis> = None;
        for k in 0..self.order.len() {
            let id = self.order[k];
            let priority = self.priority_of(&id);
            // Queued claims of lower-priority jobs, from the back of the (sorted) queue.
            let displaceable = self
                .queue
                .iter()
                .rev()
                .take_while(|(j, _)| self.priority_of(j) < priority)
                .count();
            if want + displaceable == 0 {
                // Jobs further down have lower priority still: none can displace anything.
                break;
            }
            let cap = self.room_for(&id);
            let job = self.jobs.get_mut(&id).expect("listed in order");
            if job.failed.is_some() || job.is_complete() || !job.takes_tasks() {
                continue;
            }
            if let Some(until) = job.reuse_lookup_until {
                if now < until && !job.lookups_over() {
                    // Its members are looking up the results they kept: claim once they have
                    // reported them.
                    wake = Some(wake.map_or(until, |x: Millis| x.min(until)));
                    continue;
                }
                job.reuse_lookup_until = None;
            }
            let limit = (want + displaceable).min(cap);
            let (mut tasks, w) = job.take_claimable(limit, now, self.cfg.steal_delay_ms);
            if let Some(w) = w {
                wake = Some(wake.map_or(w, |x: Millis| x.min(w)));
            }
            // Priority beats rank: a slot that would otherwise go to a lower-priority job (or
            // idle behind its queued claims) takes this job's ready tasks at once, best-ranked
            // first, rather than after their steal delay. Only slots that are idle now: the
            // window's look-ahead still waits its turn, so members race for few tasks.
            if w.is_some() && tasks.len() < limit {
                let idle = (self.capacity.slots as usize).saturating_sub(
                    self.running.len() + self.queue.len() - displaceable + tasks.len(),
                );
                if idle > 0 && self.lower_priority_work_after(k) {
                    let job = self.jobs.get_mut(&id).expect("listed in order");
                    let more = idle.min(limit - tasks.len());
                    let (stolen, _) =
                        job.take_claimable(more, Millis::MAX / 2, self.cfg.steal_delay_ms);
                    tasks.extend(stolen);
                }
            }
            let job = self.jobs.get_mut(&id).expect("listed in order");
            if tasks.is_empty() {
                continue;
            }
            for &t in &tasks {
                job.claim(t, ME, now);
            }
            let over = tasks.len().saturating_sub(want);
            want = want.saturating_sub(tasks.len());
            self.release_lowest(over, now);
            for &t in &tasks {
                self.enqueue(id, t, priority);
            }
            let bytes = 5 * tasks.len();
            self.queue_entry(id, bytes, |b| {
                // A task released and claimed again before the batch went out is claimed.
                if !b.released.is_empty() {
                    b.released.retain(|r| !tasks.contains(r));
                }
                b.claims.extend(tasks)
            });
        }
        self.claim_wakeup = wake;
    }

    /// Whether a job after position `k` of [`Node::order`] has a lower priority and tasks
    /// this node may run: the work a free slot would otherwise go to.
    fn lower_priority_work_after(&self, k: usize) -> bool {
        let priority = self.priority_of(&self.order[k]);
        self.order[k + 1..].iter().any(|id| {
            self.jobs.get(id).is_some_and(|j| {
                j.spec.sched.priority < priority
                    && j.takes_tasks()
                    && j.failed.is_none()
                    && !j.is_complete()
            })
        })
    }

    /// How many more tasks of job `id` this node may hold (queued or running): unbounded
    /// unless the job needs memory per task, when this node's memory bounds it.
    fn room_for(&self, id: &JobId) -> usize {
        let Some(job) = self.jobs.get(id) else {
            return 0;
        };
        if job.spec.sched.needs.mem_mb == 0 {
            return usize::MAX;
        }
        let cap = self.slots_for(&job.spec.sched.needs) as usize;
        let held = self.queue.iter().filter(|(j, _)| j == id).count()
            + self.running.keys().filter(|(j, _)| j == id).count();
        cap.saturating_sub(held)
    }

    /// Adds a claimed task to the queue behind every queued task of its priority or higher.
    fn enqueue(&mut self, id: JobId, task: u32, priority: i32) {
        let at = match self.queue.back() {
            // The common case: tasks of one job, or of jobs of equal priority, in claim order.
            Some((j, _)) if self.priority_of(j) >= priority => self.queue.len(),
            None => 0,
            Some(_) => self
                .queue
                .partition_point(|(j, _)| self.priority_of(j) >= priority),
        };
        self.queue.insert(at, (id, task));
        self.queued.insert((id, task));
    }

    /// Gives back the `n` queued claims of lowest priority: they go back into play here and,
    /// once the release is sent, on every member.
    fn release_lowest(&mut self, n: usize, now: Millis) {
        for _ in 0..n {
            let Some((id, task)) = self.queue.pop_back() else {
                return;
            };
            self.queued.remove(&(id, task));
            self.prefetched.remove(&(id, task));
            if let Some(job) = self.jobs.get_mut(&id)
                && matches!(job.tasks[task as usize], TaskState::Claimed { by: ME, .. })
            {
                job.reopen(task, now);
                self.queue_entry(id, 5, |b| {
                    b.claims.retain(|&c| c != task);
                    b.released.push(task)
                });
            }
        }
    }

    /// Starts queued tasks while slots are free, highest priority first (the queue is kept in
    /// that order), skipping a job whose memory need leaves no room for another running task.
    pub(super) fn start_tasks(&mut self, now: Millis) {
        let mut skipped = 0;
        while self.running.len() < self.capacity.slots as usize && skipped < self.queue.len() {
            let (id, task) = self.queue[skipped];
            if !self.may_start(&id) {
                skipped += 1;
                continue;
            }
            self.queue.remove(skipped);
            self.queued.remove(&(id, task));
            self.prefetched.remove(&(id, task));
            let Some(run) = self.task_run(id, task, now) else {
                // A claim this node cannot start (a child's result went missing since) goes
                // back into play rather than lingering.
                if let Some(job) = self.jobs.get_mut(&id)
                    && matches!(job.tasks[task as usize], TaskState::Claimed { by: ME, .. })
                {
                    job.reopen(task, now);
                }
                continue;
            };
            self.running.insert((id, task), now);
            self.effects.push_back(Effect::Run(run));
        }
        self.prefetch_queued();
    }

    /// Tasks this node claimed and has not started that it could start now (their job's
    /// memory cap allows one more), with their job's priority and when they were claimed:
    /// after a step, none claimed before it may outrank a task the step started (the
    /// simulator checks it).
    pub fn startable_claims(&self) -> Vec<StartableClaim> {
        self.queue
            .iter()
            .filter(|(id, _)| self.may_start(id))
            .filter_map(|&(id, task)| {
                let job = self.jobs.get(&id)?;
                let TaskState::Claimed { by: ME, at } = job.tasks[task as usize] else {
                    return None;
                };
                Some(StartableClaim {
                    job: id,
                    task,
                    priority: job.spec.sched.priority,
                    claimed_at: at,
                })
            })
            .collect()
    }

    /// Whether another task of job `id` may start: always, unless the job needs memory per
    /// task and as many as this node's memory holds run already.
    fn may_start(&self, id: &JobId) -> bool {
        let Some(job) = self.jobs.get(id) else {
            return true;
        };
        if job.spec.sched.needs.mem_mb == 0 {
            return true;
        }
        let running = self.running.keys().filter(|(j, _)| j == id).count();
        running < self.slots_for(&job.spec.sched.needs) as usize
    }

    /// Asks the driver to fetch, ahead of time, the input chunks of the next queued map tasks
    /// (one per slot) that read from another node.
    fn prefetch_queued(&mut self) {
        let ahead = self.capacity.slots as usize;
        for &(id, task) in self.queue.iter().take(ahead) {
            if self.prefetched.contains(&(id, task)) {
                continue;
            }
            let Some(job) = self.jobs.get(&id) else {
                continue;
            };
            if !job.tree.is_map(task) || job.holds_piece(task) {
                continue;
            }
            if let Some((manifest, index)) = job.spec.chunk_of(task) {
                let source = MapSource::Chunk {
                    manifest,
                    index,
                    holders: self.piece_sources(job, task, self.last_now),
                };
                self.prefetched.insert((id, task));
                self.effects.push_back(Effect::Prefetch {
                    job: id,
                    task,
                    source,
                });
            }
        }
    }

    /// What the driver needs to run `task`, if this node still holds it and can start it.
    fn task_run(&self, id: JobId, task: u32, now: Millis) -> Option<TaskRun> {
        let job = self.jobs.get(&id)?;
        if !matches!(job.tasks[task as usize], TaskState::Claimed { by: ME, .. })
            || job.failed.is_some()
        {
            return None;
        }
        let work = if job.tree.is_map(task) && job.runs.fused() {
            let tasks = job.runs.tasks_of(task);
            Work::Map {
                source: MapSource::Run { tasks },
            }
        } else if job.tree.is_map(task) {
            let source = match job.spec.generated_part(task) {
                Some(part) => MapSource::Generated(part),
                None => {
                    let (manifest, index) = job
                        .spec
                        .chunk_of(task)
                        .expect("a map task of an input of chunks has a chunk");
                    MapSource::Chunk {
                        manifest,
                        index,
                        holders: self.piece_sources(job, task, now),
                    }
                }
            };
            Work::Map { source }
        } else {
            let mut children = Vec::new();
            for child in job.tree.children(task) {
                match &job.tasks[child as usize] {
                    TaskState::Done { holder, result } => children.push(ChildInput {
                        task: child,
                        result: result.clone(),
                        holder: self.view.id(*holder),
                    }),
                    _ => return None,
                }
            }
            Work::Reduce { children }
        };
        // Only a module is shared by every task of a job: name the members that completed
        // tasks, and so hold it, as fallbacks when the submitter cannot serve it.
        let workers = if matches!(job.spec.op, Operator::Wasm { .. }) {
            let mut w: Vec<(u32, PeerIx)> = job
                .completions
                .iter()
                .filter(|&(&ix, _)| {
                    ix != ME
                        && ix != job.submitter
                        && job.members.is_live(ix)
                        && !self.view.gone(ix, now)
                        && !self.is_suspect(&self.view.id(ix), now)
                })
                .map(|(&ix, &n)| (n, ix))
                .collect();
            w.sort_unstable_by(|a, b| b.cmp(a));
            // Members that keep copies of the input keep the module too: first, since they
            // keep it for the job's life.
            let mut sources = self.piece_holders(job, now);
            sources.extend(w.iter().map(|&(_, ix)| self.view.id(ix)));
            sources.dedup();
            sources.truncate(FALLBACK_SOURCES);
            sources
        } else {
            Vec::new()
        };
        Some(TaskRun {
            job: id,
            task,
            spec: job.spec.clone(),
            submitter: self.view.id(job.submitter),
            workers,
            work,
        })
    }
}
