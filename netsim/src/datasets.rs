//! The dataset mode (`--datasets`): each job reads a shared dataset of several parts, each
//! held by one or two nodes other than its submitter, as `shoal node --share` would have them
//! ([`shoal_protocol::dataset`]). A part's files outlive a restart of its holder. What is drawn
//! here comes from the seed; the checks run at every task start and when a job fails.

use shoal_ops::SplitMix64;
use shoal_protocol::dataset::{Dataset, Part};
use shoal_protocol::{BlobHash, Input, JobSpec, Millis, NodeId, TaskRun, Work};

/// Parts per dataset.
const PARTS_MIN: u32 = 2;
const PARTS_MAX: u32 = 8;

/// A dataset of `tasks` chunks in 2 to 8 parts for job `job`, each part held by one or two
/// of `eligible` (node indices, the submitter and restricted nodes left out by the caller),
/// identified by `ids`. Returns the dataset and each part's holders by index.
pub fn draw(
    rng: &mut SplitMix64,
    job: usize,
    tasks: u32,
    eligible: &[usize],
    ids: &[NodeId],
) -> (Dataset, Vec<Vec<usize>>) {
    let parts = (PARTS_MIN + (rng.next_u64() % u64::from(PARTS_MAX - PARTS_MIN + 1)) as u32)
        .min(tasks.max(1));
    let mut out = Vec::new();
    let mut holders_of = Vec::new();
    for p in 0..parts {
        let chunks = tasks / parts + u32::from(p < tasks % parts);
        let copies = 1 + (rng.next_u64() % 2) as usize;
        let mut holders: Vec<usize> = Vec::new();
        while holders.len() < copies.min(eligible.len()) {
            let n = eligible[(rng.next_u64() % eligible.len() as u64) as usize];
            if !holders.contains(&n) {
                holders.push(n);
            }
        }
        let mut ids: Vec<NodeId> = holders.iter().map(|&n| ids[n]).collect();
        ids.sort_unstable();
        out.push(Part {
            manifest: BlobHash::of(format!("sim-job-{job}-part-{p}").as_bytes()),
            chunks,
            bytes: u64::from(chunks),
            holders: ids,
        });
        holders_of.push(holders);
    }
    let dataset = Dataset {
        name: format!("sim-{job}"),
        parts: out,
    };
    (dataset, holders_of)
}

/// The part map task `run` reads, if it is a map task of a job over a dataset.
pub fn part_of(spec: &JobSpec, run: &TaskRun) -> Option<usize> {
    let Input::Dataset(d) = &spec.input else {
        return None;
    };
    if !matches!(run.work, Work::Map { .. }) {
        return None;
    }
    d.locate(run.task).map(|(part, _)| part)
}

/// What the locality rule forbids: a node that does not hold a part starting one of its map
/// tasks before the locality wait, while the run has been free of faults and a holder of the
/// part has been up since the job began (so every member counts it as a live candidate).
pub struct StartCheck<'a> {
    pub node: usize,
    pub holders: &'a [usize],
    pub holders_up: bool,
    pub faults_so_far: bool,
    pub since_submit: Millis,
}

impl StartCheck<'_> {
    pub fn violation(&self, run: &TaskRun) -> Option<String> {
        let early = self.since_submit < shoal_protocol::locality::LOCALITY_WAIT_MS;
        (!self.holders.contains(&self.node) && early && self.holders_up && !self.faults_so_far)
            .then(|| {
                format!(
                    "locality: node {} started map task {} of job {} {} ms after its submission, while its part's holders {:?} were up",
                    self.node, run.task, run.job, self.since_submit, self.holders
                )
            })
    }
}

/// Whether a dataset job's failure `error` is one the faults explain: it names a lost part,
/// and every holder of some part went down, or the mesh was partitioned.
pub fn failure_excused(
    error: &str,
    holders: &[Vec<usize>],
    down: &[bool],
    partitioned: bool,
) -> bool {
    error.contains("has no live holder")
        && (partitioned || holders.iter().any(|hs| hs.iter().all(|&n| down[n])))
}
