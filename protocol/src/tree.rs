//! The k-ary reduction tree over a job's map tasks.
//!
//! Task indices are laid out level by level: the map tasks are `0..maps`, the first level of
//! reduce tasks follows them, and so on up to the root, which is always the last index. Reduce
//! task `j` of a level combines a contiguous run of at most `fanin` tasks of the level below, in
//! index order, so only associativity of the reduce function is needed.

use std::ops::Range;

/// Shape of a reduction tree. Cheap to build: one entry per level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    fanin: u32,
    /// (first index, count) for each level, leaves first.
    levels: Vec<(u32, u32)>,
}

impl Tree {
    /// Builds the tree for `maps >= 1` leaves and `fanin >= 2`.
    pub fn new(maps: u32, fanin: u32) -> Self {
        assert!(maps >= 1 && fanin >= 2, "validated by JobSpec::validate");
        let mut levels = vec![(0, maps)];
        while let Some(&(start, count)) = levels.last() {
            if count == 1 {
                break;
            }
            levels.push((start + count, count.div_ceil(fanin)));
        }
        Self { fanin, levels }
    }

    /// All tasks: map tasks plus reduce tasks.
    pub fn total(&self) -> u32 {
        let (start, count) = *self.levels.last().expect("at least the leaf level");
        start + count
    }

    /// The root task, whose result is the job's result.
    pub fn root(&self) -> u32 {
        self.total() - 1
    }

    /// Number of map tasks.
    pub fn maps(&self) -> u32 {
        self.levels[0].1
    }

    /// Reduction rounds between the leaves and the root.
    pub fn depth(&self) -> u32 {
        (self.levels.len() - 1) as u32
    }

    /// (first task index, task count) of each level, the map tasks first, the root last.
    pub fn levels(&self) -> &[(u32, u32)] {
        &self.levels
    }

    /// Whether `task` is a map task.
    pub fn is_map(&self, task: u32) -> bool {
        task < self.maps()
    }

    fn level_of(&self, task: u32) -> usize {
        self.levels
            .iter()
            .position(|&(start, count)| task >= start && task < start + count)
            .expect("task index within the tree")
    }

    /// The reduce task that consumes `task`, or `None` for the root.
    pub fn parent(&self, task: u32) -> Option<u32> {
        let level = self.level_of(task);
        let &(start, _) = &self.levels[level];
        let &(up_start, _) = self.levels.get(level + 1)?;
        Some(up_start + (task - start) / self.fanin)
    }

    /// The tasks a reduce task combines, in order; empty for map tasks.
    pub fn children(&self, task: u32) -> Range<u32> {
        let level = self.level_of(task);
        if level == 0 {
            return 0..0;
        }
        let (start, _) = self.levels[level];
        let (down_start, down_count) = self.levels[level - 1];
        let first = down_start + (task - start) * self.fanin;
        first..(first + self.fanin).min(down_start + down_count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_map_task_is_its_own_root() {
        let tree = Tree::new(1, 4);
        assert_eq!(tree.total(), 1);
        assert_eq!(tree.root(), 0);
        assert_eq!(tree.parent(0), None);
        assert_eq!(tree.depth(), 0);
    }

    #[test]
    fn every_task_but_the_root_has_exactly_one_parent_that_lists_it() {
        for maps in 1..200 {
            for fanin in 2..6 {
                let tree = Tree::new(maps, fanin);
                let mut seen = vec![0u32; tree.total() as usize];
                for t in tree.maps()..tree.total() {
                    let kids = tree.children(t);
                    assert!(!kids.is_empty() && kids.len() <= fanin as usize);
                    for k in kids {
                        assert_eq!(tree.parent(k), Some(t));
                        seen[k as usize] += 1;
                    }
                }
                assert_eq!(tree.parent(tree.root()), None);
                for (t, n) in seen.iter().enumerate() {
                    let expect = u32::from(t as u32 != tree.root());
                    assert_eq!(*n, expect, "maps {maps} fanin {fanin} task {t}");
                }
            }
        }
    }

    #[test]
    fn depth_is_ceil_log_fanin_of_maps() {
        assert_eq!(Tree::new(16, 4).depth(), 2);
        assert_eq!(Tree::new(17, 4).depth(), 3);
        assert_eq!(Tree::new(100_000, 4).depth(), 9);
    }
}
