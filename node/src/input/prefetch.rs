//! The metadata of the input trees, read on every core before the walk. Reading one `stat` per
//! file is most of a walk over a tree of many small files; the walk itself must stay one
//! ordered pass (which way to a directory or file counts is decided in order), so it runs
//! afterwards over what was read here, and reads from the disk only what is not here: links,
//! entries this pass could not read (the walk then reports the error), and directories reached
//! only through a link. Links are not followed here, so the pass covers each directory of the
//! trees once and cannot loop.

use super::walk::Excludes;
use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::Metadata;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};

/// Threads reading metadata at most (the work is the kernel's path lookups, which scale with
/// cores but not far past them).
const MAX_THREADS: usize = 4;

/// One entry of a directory.
#[derive(Debug)]
pub(super) struct Entry {
    pub name: OsString,
    pub is_link: bool,
    /// Its metadata (not through a link), if it was read.
    pub meta: Option<Metadata>,
}

/// Directories' entries in name order, by the directory's path.
pub(super) type Listings = HashMap<PathBuf, Vec<Entry>>;

/// The entries of `dir` in name order, with the metadata of those `wanted` (by name) that are
/// not links, read relative to the open directory (no lookup of the whole path again).
pub(super) fn read_entries(
    dir: &Path,
    wanted: impl Fn(&OsString) -> bool,
) -> std::io::Result<Vec<Entry>> {
    let mut entries: Vec<std::fs::DirEntry> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    Ok(entries
        .into_iter()
        .map(|e| {
            let name = e.file_name();
            let is_link = e.file_type().is_ok_and(|t| t.is_symlink());
            let meta = (!is_link && wanted(&name))
                .then(|| e.metadata().ok())
                .flatten();
            Entry {
                name,
                is_link,
                meta,
            }
        })
        .collect())
}

/// Directories still to read, and how many are being read.
struct Work {
    dirs: Vec<(PathBuf, PathBuf)>,
    reading: usize,
}

/// Reads the entries of every directory under `roots` (directories, not links to them) on
/// every core. Nothing here fails: what cannot be read is left to the walk.
pub(super) fn prefetch(roots: &[PathBuf], excludes: &Excludes) -> Listings {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_THREADS);
    if threads < 2 {
        // One core: the walk reads as fast alone.
        return Listings::new();
    }
    read_trees(roots, excludes, threads)
}

/// [`prefetch`] on `threads` threads.
fn read_trees(roots: &[PathBuf], excludes: &Excludes, threads: usize) -> Listings {
    let dirs: Vec<(PathBuf, PathBuf)> = roots
        .iter()
        .filter(|r| std::fs::metadata(r).is_ok_and(|m| m.is_dir()))
        .map(|r| (r.clone(), PathBuf::new()))
        .collect();
    if dirs.is_empty() {
        return Listings::new();
    }
    let work = Mutex::new(Work { dirs, reading: 0 });
    let changed = Condvar::new();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| scope.spawn(|| read_some(&work, &changed, excludes)))
            .collect();
        let mut all = Listings::new();
        for worker in workers {
            all.extend(worker.join().unwrap_or_default());
        }
        all
    })
}

/// One thread's share: takes directories until none is left or being read (a directory being
/// read may add more).
fn read_some(work: &Mutex<Work>, changed: &Condvar, excludes: &Excludes) -> Listings {
    let lock = || work.lock().expect("prefetch lock poisoned");
    let mut mine = Listings::new();
    loop {
        let (dir, rel) = {
            let mut w = lock();
            loop {
                if let Some(next) = w.dirs.pop() {
                    w.reading += 1;
                    break next;
                }
                if w.reading == 0 {
                    return mine;
                }
                w = changed.wait(w).expect("prefetch lock poisoned");
            }
        };
        let entries = read_entries(&dir, |name| !excludes.excludes(&rel.join(name)));
        let mut subdirs = Vec::new();
        if let Ok(entries) = entries {
            for e in &entries {
                if e.meta.as_ref().is_some_and(Metadata::is_dir) {
                    subdirs.push((dir.join(&e.name), rel.join(&e.name)));
                }
            }
            mine.insert(dir, entries);
        }
        let mut w = lock();
        w.dirs.extend(subdirs);
        w.reading -= 1;
        changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_real_directory_is_read_once_links_are_not_followed_and_excluded_entries_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("in");
        for f in ["b/x", "a/y", "a/deep/z", "skip/w", "a/skip.log"] {
            let p = root.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, "1\n").unwrap();
        }
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("a/link")).unwrap();
        let excludes = Excludes::new(&["/skip".into(), "*.log".into()]).unwrap();
        let got = read_trees(std::slice::from_ref(&root), &excludes, 2);
        let mut dirs: Vec<_> = got.keys().map(|d| d.strip_prefix(&root).unwrap()).collect();
        dirs.sort();
        let expected: Vec<&Path> = ["", "a", "a/deep", "b"].map(Path::new).to_vec();
        assert_eq!(dirs, expected);
        let a: Vec<_> = got[&root.join("a")]
            .iter()
            .map(|e| (e.name.to_str().unwrap(), e.is_link, e.meta.is_some()))
            .collect();
        assert_eq!(
            a,
            [
                ("deep", false, true),
                ("link", true, false),
                ("skip.log", false, false),
                ("y", false, true)
            ]
        );
        let top: Vec<_> = got[&root]
            .iter()
            .map(|e| (e.name.to_str().unwrap(), e.meta.is_some()))
            .collect();
        assert_eq!(top, [("a", true), ("b", true), ("skip", false)]);
    }
}
