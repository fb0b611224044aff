//! 10. What durable jobs cost (#17): the word count with `--copies 2` against the same job with
//!     one copy, side by side in one run on the same 3-node mesh; and the time a detached
//!     submission of the corpus takes to return (every chunk held by two live peers), against
//!     the whole job with one copy.

use crate::corpus;
use crate::report::{Figure, Row};
use crate::support::Mesh;
use crate::workloads::{Bench, SLOTS, request, run_job};
use std::time::{Duration, Instant};

impl Bench {
    pub(crate) async fn durable(&self) -> Vec<Row> {
        let mesh = Mesh::start(&[SLOTS; 3]).await;
        let files = corpus::ensure(&self.data, self.sizes.corpus_bytes);
        let dir = files[0].parent().expect("corpus dir").display().to_string();
        let expected = crate::baseline::wordcount(&files);
        let client = mesh.nodes[0].client();
        let wc = |run: u32, copies: u8| {
            request("wordcount", std::slice::from_ref(&dir), 4 + run, None, None)
                .with_copies(copies)
                .expect("valid copies")
        };
        let (mut one, mut two, mut detach) = (Vec::new(), Vec::new(), Vec::new());
        for run in 0..self.sizes.runs as u32 {
            for copies in [1u8, 2] {
                let (out, took) = run_job(&client, wc(run, copies)).await;
                assert!(out == expected, "a durable job's result differs");
                if copies == 1 { &mut one } else { &mut two }.push(took.as_secs_f64());
            }
            // Detached, on a mesh of its own: the copies the timed runs kept (shared by hash)
            // must not count. From the submission to every chunk held twice; then let it finish.
            let fresh = Mesh::start(&[SLOTS; 3]).await;
            let client = fresh.nodes[0].client();
            let start = Instant::now();
            // Another fan-in than the timed runs': another job.
            let other = run + self.sizes.runs as u32;
            let mut detached = wc(other, 2);
            detached.detach = true;
            let accepted = client.start(detached).await.expect("accepted");
            loop {
                let row = client.job(&accepted.job).await.map(|d| d.job);
                if row
                    .as_ref()
                    .is_ok_and(|r| r.copies_held >= 2 || r.status == "complete")
                    || row.is_err()
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            detach.push(start.elapsed().as_secs_f64());
            let deadline = Instant::now() + Duration::from_secs(600);
            loop {
                let answer = client.lookup(&accepted.job).await.expect("lookup");
                if answer.status == "done" {
                    break;
                }
                assert!(Instant::now() < deadline, "the detached job never ended");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let mib = self.sizes.corpus_bytes >> 20;
        let base = Figure::new(one);
        let copies = Figure::new(two);
        let detached = Figure::new(detach);
        vec![
            Row {
                workload: format!(
                    "10. durable jobs: word count over {mib} MiB with --copies 2, 3 nodes"
                ),
                unit: "s",
                higher_is_better: false,
                met: copies.median() <= 1.25 * base.median(),
                shoal: copies,
                peers: vec![("one copy".to_string(), Ok(base.clone()))],
                target: "≤ 1.25× the time of one copy".into(),
            },
            Row {
                workload: format!(
                    "10. durable jobs: --detach to exit over {mib} MiB (every chunk held by 2 peers), 3 nodes"
                ),
                unit: "s",
                higher_is_better: false,
                met: true,
                shoal: detached,
                peers: vec![("the whole job, one copy".to_string(), Ok(base))],
                target: "reported (no target): against the time of the whole job".into(),
            },
        ]
    }
}
