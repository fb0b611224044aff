//! 7. What closing the mesh costs: one-task latency, tiny tasks and word-count throughput on
//!    a private mesh (a mesh key, admission on every connection) against the same on an open
//!    mesh, side by side in one run.

use crate::corpus;
use crate::report::{Figure, Row};
use crate::support::Mesh;
use crate::workloads::{Bench, SLOTS, request, run_job};

/// A mesh of nodes with these slots, private (on a fresh key in its own directory) or open.
async fn mesh(slots: &[u32], key_dir: Option<&std::path::Path>) -> Mesh {
    match key_dir {
        None => Mesh::start(slots).await,
        Some(dir) => {
            let key = dir.join(format!("mesh-{}.key", slots.len()));
            let _ = std::fs::remove_file(&key);
            shoal_node::mesh_key::MeshKey::write_new(&key).expect("a mesh key");
            let key = key.display().to_string();
            Mesh::start_with(slots, &["--mesh-key", &key]).await
        }
    }
}

impl Bench {
    /// Median one-task latency (ms) of `jobs` jobs on 3 nodes, per run, on the remote path
    /// (submitted to a node with `--slots 0`): a job its submitter runs alone sends nothing,
    /// so only the remote path has anything for a closed mesh to cost.
    async fn latency_on(&self, key_dir: Option<&std::path::Path>) -> Vec<f64> {
        let mesh = mesh(&[0, SLOTS, SLOTS], key_dir).await;
        let base = 5_000_000 + u64::from(key_dir.is_some()) * 1_000_000;
        self.one_task_latencies(&mesh, base).await.0
    }

    /// Tiny tasks a second on 2 nodes, per run.
    async fn tiny_on(&self, key_dir: Option<&std::path::Path>) -> Vec<f64> {
        let mesh = mesh(&[SLOTS; 2], key_dir).await;
        // Past the ranges the open mesh's row and row 1 use.
        let base = (100 + u64::from(key_dir.is_some()) * 100) * self.sizes.tiny_tasks;
        self.tiny_rates(&mesh, base).await
    }

    /// Word count throughput (MiB/s) on 2 nodes, per run.
    async fn wordcount_on(&self, key_dir: Option<&std::path::Path>) -> Vec<f64> {
        let files = corpus::ensure(&self.data, self.sizes.corpus_bytes);
        let dir = files[0].parent().expect("corpus dir").display().to_string();
        let mib = self.sizes.corpus_bytes as f64 / f64::from(1 << 20);
        let mesh = mesh(&[SLOTS; 2], key_dir).await;
        let client = mesh.nodes[0].client();
        let mut values = Vec::new();
        for run in 0..self.sizes.runs as u32 {
            // Another fan-in, another job id: the same work again.
            let fanin = 4 + run + if key_dir.is_some() { 10 } else { 0 };
            let req = request("wordcount", std::slice::from_ref(&dir), fanin, None, None);
            let (_, took) = run_job(&client, req).await;
            values.push(mib / took.as_secs_f64());
        }
        values
    }

    pub(crate) async fn private(&self) -> Vec<Row> {
        let keys = tempfile::tempdir().expect("temp dir");
        let open = Figure::new(self.latency_on(None).await);
        let private = Figure::new(self.latency_on(Some(keys.path())).await);
        let latency_met = private.median() <= open.median() * 1.1;
        let open_tiny = Figure::new(self.tiny_on(None).await);
        let private_tiny = Figure::new(self.tiny_on(Some(keys.path())).await);
        let tiny_met = private_tiny.median() >= open_tiny.median() * 0.9;
        let open_wc = Figure::new(self.wordcount_on(None).await);
        let private_wc = Figure::new(self.wordcount_on(Some(keys.path())).await);
        let wc_met = private_wc.median() >= open_wc.median() * 0.9;
        let jobs = self.sizes.latency_jobs;
        let mib = self.sizes.corpus_bytes >> 20;
        vec![
            Row {
                workload: format!(
                    "7. private mesh: latency p50 of {jobs} one-task jobs, 3 nodes, remote path"
                ),
                unit: "ms",
                higher_is_better: false,
                met: latency_met,
                shoal: private,
                peers: vec![("open mesh".to_string(), Ok(open))],
                target: "within 10% of the open mesh".into(),
            },
            Row {
                workload: format!(
                    "7. private mesh: tiny tasks, {} × sumsq of 1 number, 2 nodes",
                    self.sizes.tiny_tasks
                ),
                unit: "tasks/s",
                higher_is_better: true,
                met: tiny_met,
                shoal: private_tiny,
                peers: vec![("open mesh".to_string(), Ok(open_tiny))],
                target: "within 10% of the open mesh".into(),
            },
            Row {
                workload: format!("7. private mesh: word count over {mib} MiB, 2 nodes"),
                unit: "MiB/s",
                higher_is_better: true,
                met: wc_met,
                shoal: private_wc,
                peers: vec![("open mesh".to_string(), Ok(open_wc))],
                target: "within 10% of the open mesh".into(),
            },
        ]
    }
}
