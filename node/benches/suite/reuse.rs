//! 11. Results computed once (#18): a word count over 100 files on a fresh 3-node mesh (cold:
//!     every file hashed, every task computed), then one file changed and the same job again
//!     (every other chunk's result, and the reduces above them, reused), side by side in one
//!     run; over a quarter of the suite's corpus and over the whole of it (the re-run's cost
//!     hardly grows with the input, the cold run's does).

use crate::corpus;
use crate::report::{Figure, Row};
use crate::support::Mesh;
use crate::workloads::{Bench, SLOTS, request, run_job};

const FILES: usize = 100;

impl Bench {
    pub(crate) async fn reuse(&self) -> Vec<Row> {
        let quarter = (self.sizes.corpus_bytes / 4).max(4 << 20);
        let whole = self.sizes.corpus_bytes.max(4 << 20);
        let mut rows = Vec::new();
        for total in [quarter, whole] {
            rows.push(self.reuse_of(total).await);
        }
        rows
    }

    /// Row 11 over 100 files of `total` bytes in all.
    async fn reuse_of(&self, total: u64) -> Row {
        let per_file = total / FILES as u64;
        let words = corpus::vocabulary();
        let (mut first, mut rerun) = (Vec::new(), Vec::new());
        for run in 0..self.sizes.runs as u32 {
            // A fresh mesh and fresh files each run: nothing hashed, nothing kept.
            let mesh = Mesh::start(&[SLOTS; 3]).await;
            let dir = self.data.join(format!("reuse-{FILES}-files"));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("reuse corpus dir");
            let files: Vec<_> = (0..FILES)
                .map(|i| {
                    let path = dir.join(format!("log-{i:03}.txt"));
                    corpus::write_file(&path, per_file, &words, 1000 + i as u64);
                    path
                })
                .collect();
            let arg = dir.display().to_string();
            let wc = || {
                let mut r = request("wordcount", std::slice::from_ref(&arg), 4 + run, None, None);
                r.no_reuse = false;
                r
            };
            let client = mesh.nodes[0].client();
            let (out, took) = run_job(&client, wc()).await;
            assert!(
                out == crate::baseline::wordcount(&files),
                "the first run differs"
            );
            first.push(took.as_secs_f64());
            let changed = &files[FILES / 3];
            let mut text = std::fs::read(changed).expect("reading a log");
            text.extend_from_slice(b"One more line, written after the first run.\n");
            std::fs::write(changed, &text).expect("changing a log");
            let (out, took) = run_job(&client, wc()).await;
            assert!(
                out == crate::baseline::wordcount(&files),
                "the re-run differs"
            );
            rerun.push(took.as_secs_f64());
        }
        let mib = total >> 20;
        let first = Figure::new(first);
        let rerun = Figure::new(rerun);
        Row {
            workload: format!(
                "11. reuse: word count over {FILES} files ({mib} MiB), re-run after one changed file, 3 nodes"
            ),
            unit: "s",
            higher_is_better: false,
            met: 20.0 * rerun.median() <= first.median(),
            shoal: rerun,
            peers: vec![("the first run (cold)".to_string(), Ok(first))],
            target: "≥ 20× faster than the first run".into(),
        }
    }
}
