//! Who listens to which topic, in the in-memory network of the harness.

use crate::topic::{Subscription, Topic};
use std::collections::HashMap;

/// A fixed-key hasher: the same table layout in every run (no ambient randomness).
type FixedState = std::hash::BuildHasherDefault<std::collections::hash_map::DefaultHasher>;

/// Who listens to which topic: the in-memory network's subscription table.
#[derive(Debug, Default)]
pub struct Topics {
    /// Listeners per topic, in the order they joined.
    listeners: HashMap<Topic, Vec<u32>, FixedState>,
    /// Topics per node, to unsubscribe a node that crashes.
    of_node: Vec<Vec<Topic>>,
}

impl Topics {
    pub fn new(nodes: usize) -> Self {
        Self {
            listeners: HashMap::default(),
            of_node: vec![Vec::new(); nodes],
        }
    }

    /// Carries out a node's change of subscription.
    pub fn apply(&mut self, node: usize, change: Subscription) {
        match change {
            Subscription::Join(topic) => {
                if !self.of_node[node].contains(&topic) {
                    self.of_node[node].push(topic);
                    self.listeners.entry(topic).or_default().push(node as u32);
                }
            }
            Subscription::Leave(topic) => self.leave(node, topic),
        }
    }

    fn leave(&mut self, node: usize, topic: Topic) {
        let Some(at) = self.of_node[node].iter().position(|t| *t == topic) else {
            return;
        };
        self.of_node[node].swap_remove(at);
        if let Some(list) = self.listeners.get_mut(&topic) {
            if let Some(i) = list.iter().position(|&n| n as usize == node) {
                list.remove(i);
            }
            if list.is_empty() {
                self.listeners.remove(&topic);
            }
        }
    }

    /// Drops every subscription of a node that crashed.
    pub fn forget(&mut self, node: usize) {
        while let Some(&topic) = self.of_node[node].last() {
            self.leave(node, topic);
        }
    }

    /// The nodes listening to `topic`, in the order they joined.
    pub fn listeners(&self, topic: &Topic) -> &[u32] {
        self.listeners.get(topic).map_or(&[], Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crashed_node_leaves_every_topic() {
        let mut t = Topics::new(3);
        t.apply(0, Subscription::Join(Topic::Jobs));
        t.apply(1, Subscription::Join(Topic::Jobs));
        t.apply(1, Subscription::Join(Topic::Adverts(4)));
        t.apply(1, Subscription::Join(Topic::Jobs));
        assert_eq!(t.listeners(&Topic::Jobs), &[0, 1]);
        t.forget(1);
        assert_eq!(t.listeners(&Topic::Jobs), &[0]);
        assert!(t.listeners(&Topic::Adverts(4)).is_empty());
    }
}
