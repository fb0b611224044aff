//! Results computed once: a task's result is keyed by what determines it, so that a node that
//! computed it before (for any job) can report it again instead of computing it.
//!
//! A map task over an input chunk is determined by its operator (with its parameters, or its
//! module's hash and limits) and the chunk's content hash; a reduce task by its operator and
//! its children's results, in order. Generated inputs (ranges, pi samples) are not keyed:
//! they are cheaper to compute than to look up, and pi's samples depend on the job id.
//!
//! A reused result is evidence like any other: it is its reporter's one vote for the task,
//! exactly as if it had computed the task (the quorum of a replicated job is unchanged).

use crate::ids::{BlobHash, ReuseKey};
use crate::job::{JobSpec, Operator};
use crate::wire::ResultRef;

/// Longest a member holds off claiming a reusable job's tasks while its driver looks up the
/// results it kept (the answer normally comes within milliseconds).
pub const LOOKUP_MAX_MS: crate::ids::Millis = 500;

/// How long a reduce task whose children were all reused waits before any member claims it:
/// the member that computed it for an earlier job most likely kept it and reports it within a
/// gossip round trip; the others would compute it again meanwhile, for nothing. Bounded: a
/// result nobody kept costs this much time, once per such reduce.
pub const REDUCE_LOOKUP_MS: crate::ids::Millis = 30;

/// Separates the two kinds of key (and this scheme from any later one).
const MAP_DOMAIN: &[u8] = b"shoal reuse v1 map";
const REDUCE_DOMAIN: &[u8] = b"shoal reuse v1 reduce";

/// Whether the tasks of `spec` are looked up before they are computed: the job allows it
/// (`--no-reuse` does not) and reads files (a submission's, or a shared dataset's).
pub fn applies(spec: &JobSpec) -> bool {
    spec.reuse && spec.reads_chunks()
}

fn hasher(domain: &[u8], op: &Operator) -> blake3::Hasher {
    let mut h = blake3::Hasher::new();
    h.update(domain);
    let op = crate::codec::encode_message(op);
    h.update(&(op.len() as u64).to_le_bytes());
    h.update(&op);
    h
}

/// The key of a map task of `op` over the chunk whose content hash is `chunk`.
pub fn map_key(op: &Operator, chunk: &BlobHash) -> ReuseKey {
    let mut h = hasher(MAP_DOMAIN, op);
    h.update(&chunk.0);
    ReuseKey(*h.finalize().as_bytes())
}

/// The content hash of a result, however it travels (inline or as a blob): the same bytes
/// give the same hash either way.
pub fn result_hash(result: &ResultRef) -> BlobHash {
    match result {
        ResultRef::Inline(bytes) => BlobHash::of(bytes),
        ResultRef::Blob { hash, .. } => *hash,
    }
}

/// The key of a reduce task of `op` over these children's results, in task order.
pub fn reduce_key<'a>(
    op: &Operator,
    children: impl IntoIterator<Item = &'a ResultRef>,
) -> ReuseKey {
    let mut h = hasher(REDUCE_DOMAIN, op);
    let mut count = 0u64;
    for child in children {
        h.update(&result_hash(child).0);
        count += 1;
    }
    h.update(&count.to_le_bytes());
    ReuseKey(*h.finalize().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn grep(p: &str) -> Operator {
        Operator::Grep {
            pattern: p.to_string(),
        }
    }

    #[test]
    fn keys_follow_what_determines_the_result_and_nothing_else() {
        let chunk = BlobHash::of(b"some lines\n");
        let other = BlobHash::of(b"other lines\n");
        assert_eq!(map_key(&grep("a"), &chunk), map_key(&grep("a"), &chunk));
        assert_ne!(map_key(&grep("a"), &chunk), map_key(&grep("b"), &chunk));
        assert_ne!(map_key(&grep("a"), &chunk), map_key(&grep("a"), &other));
        assert_ne!(
            map_key(&Operator::WordCount, &chunk),
            map_key(&grep("a"), &chunk)
        );
        let module = |fuel| Operator::Wasm {
            module: BlobHash::of(b"module"),
            len: 6,
            limits: crate::job::WasmLimits {
                fuel,
                ..Default::default()
            },
        };
        assert_ne!(map_key(&module(1), &chunk), map_key(&module(2), &chunk));
    }

    #[test]
    fn a_reduce_key_depends_on_the_childrens_results_in_order_not_how_they_travel() {
        let a: Arc<[u8]> = Arc::from(&b"partial a"[..]);
        let b = ResultRef::Inline(Arc::from(&b"partial b"[..]));
        let inline = ResultRef::Inline(a.clone());
        let blob = crate::effects::blob_ref(&a);
        let op = Operator::WordCount;
        assert_eq!(reduce_key(&op, [&inline, &b]), reduce_key(&op, [&blob, &b]));
        assert_ne!(
            reduce_key(&op, [&inline, &b]),
            reduce_key(&op, [&b, &inline])
        );
        assert_ne!(reduce_key(&op, [&inline]), reduce_key(&op, [&inline, &b]));
        // A reduce never shares a key with a map over the same bytes.
        assert_ne!(reduce_key(&op, [&blob]), map_key(&op, &BlobHash::of(&a)));
    }
}
