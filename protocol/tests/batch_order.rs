//! How a member applies a peer's batch: completions before claims, so that a member that
//! completed a reduce's last child and claimed the reduce in the same batch (as the holder of
//! a reduce's inputs does, to combine them where they are) has its claim taken.

mod support;

use shoal_protocol::wire::{Batch, Message};
use shoal_protocol::*;
use support::{announce, files, from_submitter, node, spec, submitter};

#[test]
fn a_claim_of_a_reduce_in_the_batch_that_completes_its_last_child_is_taken() {
    let mut n = node();
    n.handle_timeout(0);
    // Four maps and their root reduce (task 4).
    let job = announce(&mut n, spec(files(4), 1, false), Vec::new(), 1);
    let result = |t: u8| ResultRef::Inline(vec![t; 8].into());
    let batch = Batch {
        job,
        claims: vec![4],
        done: (0..4).map(|t| (t, result(t as u8))).collect(),
        ..Batch::default()
    };
    from_submitter(&mut n, 20, 2, Message::Batch(batch));
    let detail = n.job_detail(&job).expect("a member tracks the job");
    assert_eq!(detail.tasks.done, 4);
    let by_submitter = detail
        .placement
        .iter()
        .find(|p| p.node == submitter())
        .expect("the submitter appears in the placement");
    assert_eq!(
        by_submitter.claimed + by_submitter.running,
        1,
        "the root is the submitter's: {:?}",
        detail.placement
    );
}
