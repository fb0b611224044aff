//! Claiming tasks and starting them.

use super::Node;
use crate::effects::{ChildInput, Effect, MapSource, TaskRun, Work};
use crate::ids::{JobId, Millis};
use crate::job::Operator;
use crate::job_state::TaskState;
use crate::view::{ME, PeerIx};

/// How many peers a task run names as fallback sources of what the job shares.
const FALLBACK_SOURCES: usize = 4;

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

    /// Claims what this node may claim now, oldest jobs first, up to its window.
    pub(super) fn fill_queue(&mut self, now: Millis) {
        if self.capacity.slots == 0 {
            return;
        }
        let mut want = self
            .window()
            .saturating_sub(self.queue.len() + self.running.len());
        if want == 0 {
            return;
        }
        let mut wake: Option<Millis> = None;
        for k in 0..self.order.len() {
            if want == 0 {
                break;
            }
            let id = self.order[k];
            let job = self.jobs.get_mut(&id).expect("listed in order");
            if job.failed.is_some() || job.is_complete() || !job.takes_tasks() {
                continue;
            }
            let (tasks, w) = job.take_claimable(want, now, self.cfg.steal_delay_ms);
            if let Some(w) = w {
                wake = Some(wake.map_or(w, |x: Millis| x.min(w)));
            }
            if tasks.is_empty() {
                continue;
            }
            for &t in &tasks {
                job.claim(t, ME, now);
                self.queue.push_back((id, t));
                self.queued.insert((id, t));
            }
            want -= tasks.len();
            let bytes = 5 * tasks.len();
            self.queue_entry(id, bytes, |b| b.claims.extend(tasks));
        }
        self.claim_wakeup = wake;
    }

    /// Starts queued tasks while slots are free.
    pub(super) fn start_tasks(&mut self, now: Millis) {
        while self.running.len() < self.capacity.slots as usize {
            let Some((id, task)) = self.queue.pop_front() else {
                break;
            };
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
            if job.submitter == ME || !job.tree.is_map(task) {
                continue;
            }
            if let crate::job::Input::Chunks { manifest, .. } = job.spec.input {
                let source = MapSource::Chunk {
                    manifest,
                    index: task,
                    holder: self.view.id(job.submitter),
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
        let work = if job.tree.is_map(task) {
            let source = match job.spec.generated_part(task) {
                Some(part) => MapSource::Generated(part),
                None => match job.spec.input {
                    crate::job::Input::Chunks { manifest, .. } => MapSource::Chunk {
                        manifest,
                        index: task,
                        holder: self.view.id(job.submitter),
                    },
                    _ => unreachable!("generated_part covers every generated input"),
                },
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
            w.iter()
                .take(FALLBACK_SOURCES)
                .map(|&(_, ix)| self.view.id(ix))
                .collect()
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
