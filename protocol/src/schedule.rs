//! Scheduling fields of a job: its priority and what a node must have to run its tasks.
//!
//! Both are part of the [`crate::job::JobSpec`] (and so of the job id): every member sees the
//! same priority and the same needs, and a peer cannot change them on the way.

use serde::{Deserialize, Serialize};

/// Most tags a node advertises, and most tag needs a job names.
pub const MAX_TAGS: usize = 16;
/// Longest tag.
pub const MAX_TAG_BYTES: usize = 64;

/// How a job is scheduled among the others.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Schedule {
    /// Higher first; 0 by default. A member with a free slot starts the ready tasks of its
    /// highest-priority job first (docs/protocol.md, "Priorities").
    pub priority: i32,
    /// What a node must have to be a member and run the job's tasks.
    pub needs: Needs,
}

/// Resource requirements: every one must be met.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Needs {
    /// Labels the node advertises (`shoal node --tag`), sorted, without repeats.
    pub tags: Vec<String>,
    /// Memory each task needs, in MiB (0: no need): a node runs at most its memory divided by
    /// this many of the job's tasks at once, and none if it has less.
    pub mem_mb: u64,
}

/// A need a node does not meet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unmet {
    #[error("tag={0}")]
    Tag(String),
    #[error("mem={0}MiB")]
    Mem(u64),
}

/// Why a tag or a set of needs is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    #[error("more than {MAX_TAGS} tags")]
    TooMany,
    #[error(
        "tag {0:?} must be 1 to {MAX_TAG_BYTES} characters of letters, digits, '.', '_', ':' or '-'"
    )]
    Invalid(String),
    #[error("tags must be sorted without repeats")]
    Unsorted,
}

/// Checks one tag: short, and of characters that need no quoting anywhere it is shown.
pub fn check_tag(tag: &str) -> Result<(), TagError> {
    let ok = !tag.is_empty()
        && tag.len() <= MAX_TAG_BYTES
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(TagError::Invalid(tag.to_owned()))
    }
}

/// Checks a list of tags as carried on the wire: bounded, each valid, sorted without repeats.
pub fn check_tags(tags: &[String]) -> Result<(), TagError> {
    if tags.len() > MAX_TAGS {
        return Err(TagError::TooMany);
    }
    for t in tags {
        check_tag(t)?;
    }
    if tags.windows(2).any(|w| w[0] >= w[1]) {
        return Err(TagError::Unsorted);
    }
    Ok(())
}

/// Sorts and deduplicates tags, then checks them: the canonical form of a user's list.
pub fn normalize_tags(mut tags: Vec<String>) -> Result<Vec<String>, TagError> {
    tags.sort_unstable();
    tags.dedup();
    check_tags(&tags)?;
    Ok(tags)
}

impl Needs {
    /// Whether the job needs anything at all.
    pub fn is_empty(&self) -> bool {
        self.tags.is_empty() && self.mem_mb == 0
    }

    /// The first need a node with `tags` (sorted) and `mem_mb` of memory does not meet.
    pub fn unmet(&self, tags: &[String], mem_mb: u64) -> Option<Unmet> {
        if let Some(t) = self.tags.iter().find(|t| tags.binary_search(t).is_err()) {
            return Some(Unmet::Tag(t.clone()));
        }
        if mem_mb < self.mem_mb {
            return Some(Unmet::Mem(self.mem_mb));
        }
        None
    }

    /// How many of the job's tasks a node of `slots` slots and `mem_mb` memory runs at once
    /// (0 if it does not meet the needs).
    pub fn slots(&self, tags: &[String], slots: u32, mem_mb: u64) -> u32 {
        if self.unmet(tags, mem_mb).is_some() {
            return 0;
        }
        match mem_mb.checked_div(self.mem_mb) {
            Some(fit) => slots.min(u32::try_from(fit).unwrap_or(u32::MAX)),
            None => slots,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(t: &[&str]) -> Vec<String> {
        t.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_node_meets_needs_only_with_every_tag_and_enough_memory() {
        let needs = Needs {
            tags: tags(&["gpu", "site:a"]),
            mem_mb: 4096,
        };
        assert_eq!(needs.unmet(&tags(&["gpu", "site:a", "x"]), 8192), None);
        assert_eq!(
            needs.unmet(&tags(&["gpu"]), 8192),
            Some(Unmet::Tag("site:a".into()))
        );
        assert_eq!(
            needs.unmet(&tags(&["gpu", "site:a"]), 1024),
            Some(Unmet::Mem(4096))
        );
        // Memory per task bounds how many run at once.
        assert_eq!(needs.slots(&tags(&["gpu", "site:a"]), 8, 10_000), 2);
        assert_eq!(needs.slots(&tags(&["gpu"]), 8, 10_000), 0);
        assert_eq!(Needs::default().slots(&[], 3, 0), 3);
    }

    #[test]
    fn tags_are_checked_and_normalized() {
        assert_eq!(
            normalize_tags(tags(&["b", "a", "b"])).unwrap(),
            tags(&["a", "b"])
        );
        assert!(check_tag("").is_err());
        assert!(check_tag("has space").is_err());
        assert!(check_tag(&"x".repeat(MAX_TAG_BYTES + 1)).is_err());
        assert_eq!(check_tags(&tags(&["b", "a"])), Err(TagError::Unsorted));
        let many: Vec<String> = (0..=MAX_TAGS).map(|i| format!("t{i:02}")).collect();
        assert_eq!(check_tags(&many), Err(TagError::TooMany));
    }
}
