//! Where messages go: the gossip topics of the protocol, and the subscriptions a node asks its
//! driver to hold.
//!
//! Three kinds of topic keep what every node receives bounded however large the mesh grows:
//!
//! - [`Topic::Jobs`]: every node. Carries job announcements, which name the job's members.
//! - [`Topic::Adverts`]: one of [`SHARDS`] shards, chosen by the publisher's id. A node listens
//!   to as many shards as it takes to see a few hundred peers (all of them in a small mesh), so
//!   its view of the mesh, and the adverts it receives, stay bounded.
//! - [`Topic::Job`]: one per job, for its members only: claims, completions, failures and pulses.
//!   A job's control traffic reaches the nodes that work on it and nobody else.

use crate::ids::{JobId, NodeId};
use std::fmt;

/// Number of advert shards. A power of two, so that coverage blocks nest.
pub const SHARDS: u32 = 64;

/// A gossip topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Topic {
    Jobs,
    Adverts(u8),
    Job(JobId),
}

impl Topic {
    /// The topic's name on the wire (the libp2p gossipsub topic string).
    pub fn name(&self) -> String {
        self.to_string()
    }

    /// The topic whose [`Topic::name`] is `name`, if it is one of the protocol's.
    pub fn from_name(name: &str) -> Option<Topic> {
        if name == "shoal/jobs/4" {
            return Some(Topic::Jobs);
        }
        if let Some(shard) = name.strip_prefix("shoal/adverts/4/") {
            let topic = Topic::Adverts(shard.parse().ok()?);
            // Only the canonical two-digit form of a shard that exists.
            return (topic.name() == name && u32::from(shard.parse::<u8>().ok()?) < SHARDS)
                .then_some(topic);
        }
        let hex = name.strip_prefix("shoal/job/4/")?;
        JobId::from_hex(hex).map(Topic::Job)
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Topic::Jobs => f.write_str("shoal/jobs/4"),
            Topic::Adverts(shard) => write!(f, "shoal/adverts/4/{shard:02}"),
            Topic::Job(job) => write!(f, "shoal/job/4/{}", job.to_hex()),
        }
    }
}

/// The advert shard a node publishes its adverts in.
pub fn shard_of(node: &NodeId) -> u8 {
    (u32::from(node.0[0]) % SHARDS) as u8
}

/// The shards covered at coverage `width` (a power of two up to [`SHARDS`]) by a node of shard
/// `home`: the aligned block of `width` shards that holds `home`. Two nodes of one block at the
/// same width see each other.
pub fn covered_shards(home: u8, width: u32) -> impl Iterator<Item = u8> {
    let width = width.clamp(1, SHARDS);
    let first = u32::from(home) & !(width - 1);
    (first..first + width).map(|s| s as u8)
}

/// A change of subscription the driver must carry out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subscription {
    Join(Topic),
    Leave(Topic),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_to_their_topics_and_nothing_else_parses() {
        for topic in [
            Topic::Jobs,
            Topic::Adverts(0),
            Topic::Adverts(63),
            Topic::Job(JobId([7; 32])),
        ] {
            assert_eq!(Topic::from_name(&topic.name()), Some(topic));
        }
        for name in [
            "",
            "shoal/jobs/1",
            "shoal/jobs/2",
            "shoal/jobs/3",
            "shoal/adverts/4/64",
            "shoal/adverts/4/7",
            "shoal/job/4/xyz",
        ] {
            assert_eq!(Topic::from_name(name), None, "{name}");
        }
    }

    #[test]
    fn coverage_blocks_nest_and_hold_the_home_shard() {
        for home in 0..SHARDS as u8 {
            let mut width = 1;
            let mut previous: Vec<u8> = Vec::new();
            while width <= SHARDS {
                let block: Vec<u8> = covered_shards(home, width).collect();
                assert_eq!(block.len() as u32, width);
                assert!(block.contains(&home));
                assert!(previous.iter().all(|s| block.contains(s)));
                previous = block;
                width *= 2;
            }
        }
    }

    #[test]
    fn topic_names_are_distinct() {
        let job = JobId([7; 32]);
        let names = [
            Topic::Jobs.name(),
            Topic::Adverts(3).name(),
            Topic::Adverts(30).name(),
            Topic::Job(job).name(),
        ];
        for (i, a) in names.iter().enumerate() {
            for b in &names[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }
}
