//! 9. What checking results costs: the word count and pi with `--replicas 2` and with
//!    `--verify-fraction 0.1`, against the same jobs with one replica, side by side in one run
//!    on the same 2-node mesh (on these 2 cores there is no spare capacity: two replicas are
//!    twice the work on the same CPUs).

use crate::corpus;
use crate::report::{Figure, Row};
use crate::support::Mesh;
use crate::workloads::{Bench, SLOTS, request, run_job};
use shoal_node::job_request::JobRequest;

/// The trust settings compared: (label, replicas, verify fraction).
const SETTINGS: [(&str, u8, f64); 3] = [
    ("one replica", 1, 0.0),
    ("--replicas 2", 2, 0.0),
    ("--verify-fraction 0.1", 1, 0.1),
];

impl Bench {
    /// Seconds per run of `make(run)` under each setting, runs interleaved so that a slow
    /// spell of the machine hits every setting alike.
    async fn times(
        &self,
        mesh: &Mesh,
        make: impl Fn(u32) -> JobRequest,
        expected: Option<&[u8]>,
    ) -> Vec<Vec<f64>> {
        let client = mesh.nodes[0].client();
        let mut times = vec![Vec::new(); SETTINGS.len()];
        for run in 0..self.sizes.runs as u32 {
            for (i, (_, replicas, fraction)) in SETTINGS.iter().enumerate() {
                let req = make(run)
                    .with_trust(*replicas, *fraction)
                    .expect("valid trust settings");
                let (out, took) = run_job(&client, req).await;
                if let Some(expected) = expected {
                    assert!(out == expected, "a checked job's result differs");
                }
                times[i].push(took.as_secs_f64());
            }
        }
        times
    }

    pub(crate) async fn trust(&self) -> Vec<Row> {
        let mesh = Mesh::start(&[SLOTS; 2]).await;
        let bytes = (self.sizes.corpus_bytes / 4).max(8 << 20);
        let files = corpus::ensure(&self.data, bytes);
        let dir = files[0].parent().expect("corpus dir").display().to_string();
        let expected = crate::baseline::wordcount(&files);
        let wc = self
            .times(
                &mesh,
                |run| request("wordcount", std::slice::from_ref(&dir), 4 + run, None, None),
                Some(&expected),
            )
            .await;
        let samples = self.sizes.pi_samples / 4;
        let pi = self
            .times(
                &mesh,
                |run| request("pi", &[samples.to_string()], 4 + run, None, None),
                None,
            )
            .await;
        let mib = bytes >> 20;
        let mut rows = Vec::new();
        for (name, times) in [
            (format!("word count over {mib} MiB"), wc),
            (format!("pi over {samples} samples"), pi),
        ] {
            let base = Figure::new(times[0].clone());
            for (i, bound) in [(1, 2.1), (2, 1.15)] {
                let shoal = Figure::new(times[i].clone());
                rows.push(Row {
                    workload: format!("9. checked results: {name} with {}, 2 nodes", SETTINGS[i].0),
                    unit: "s",
                    higher_is_better: false,
                    met: shoal.median() <= bound * base.median(),
                    shoal,
                    peers: vec![(SETTINGS[0].0.to_string(), Ok(base.clone()))],
                    target: format!("≤ {bound}× the time of one replica"),
                });
            }
        }
        rows
    }
}
