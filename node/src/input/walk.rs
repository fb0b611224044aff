//! Which files a job reads: the regular files under the given paths, directories recursively,
//! in a stable order. Symbolic links are followed (a directory reached twice, as a link loop
//! would, is walked once; a file reached twice is read once); hidden files are included;
//! special files (FIFOs, sockets, devices) are skipped and listed; `--exclude` globs leave
//! things out. Nothing is read here but metadata.

use super::prefetch::{Listings, prefetch, read_entries};
use globset::{Glob, GlobSet, GlobSetBuilder};
use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What identifies one version of a file without reading it. A write changes the size or the
/// modification time, a `chmod` or a rename over it the change time, a replacement the inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct FileStamp {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
}

impl FileStamp {
    pub fn of(meta: &std::fs::Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
        }
    }

    /// The stamp of the file at `path` now (following links), if it is there.
    pub fn now(path: &Path) -> Option<Self> {
        std::fs::metadata(path).ok().map(|m| Self::of(&m))
    }
}

/// One input file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputFile {
    pub path: PathBuf,
    /// The path below the input it was found in (a file given itself: its name). Chunk
    /// boundaries follow it, so that the same tree chunks the same wherever it lies (two
    /// nodes sharing copies of a dataset part make one part).
    pub rel: PathBuf,
    pub stamp: FileStamp,
}

/// The files a job reads, and what was passed over.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    pub files: Vec<InputFile>,
    /// Special files (FIFOs, sockets, devices), skipped.
    pub skipped: Vec<PathBuf>,
}

/// Why the inputs could not be listed. Nothing was submitted.
#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--exclude '{pattern}' is not a glob: {error}")]
    BadGlob { pattern: String, error: String },
    #[error("no input files found under the given paths (after --exclude)")]
    Empty,
    #[error("more than {MAX_FILES} input files; split the job")]
    TooMany,
}

/// Most files one job may read.
pub const MAX_FILES: usize = 10_000_000;

/// The `--exclude` patterns: a pattern with a `/` matches paths relative to the input root
/// given, one without matches a file or directory name at any depth (as in `.gitignore`).
#[derive(Debug, Clone)]
pub struct Excludes {
    by_path: GlobSet,
    by_name: GlobSet,
}

impl Excludes {
    pub fn new(patterns: &[String]) -> Result<Self, WalkError> {
        let mut by_path = GlobSetBuilder::new();
        let mut by_name = GlobSetBuilder::new();
        for p in patterns {
            let glob = Glob::new(p.trim_start_matches('/')).map_err(|e| WalkError::BadGlob {
                pattern: p.clone(),
                error: e.to_string(),
            })?;
            if p.contains('/') {
                by_path.add(glob);
            } else {
                by_name.add(glob);
            }
        }
        let build = |b: GlobSetBuilder| {
            b.build().map_err(|e| WalkError::BadGlob {
                pattern: patterns.join(" "),
                error: e.to_string(),
            })
        };
        Ok(Self {
            by_path: build(by_path)?,
            by_name: build(by_name)?,
        })
    }

    pub(super) fn excludes(&self, relative: &Path) -> bool {
        self.by_path.is_match(relative)
            || relative
                .file_name()
                .is_some_and(|name| self.by_name.is_match(name))
    }
}

struct Walker<'a> {
    excludes: &'a Excludes,
    /// Directories walked, by (device, inode): a link loop or a second link to one is walked
    /// once.
    dirs: HashSet<(u64, u64)>,
    /// Files taken, likewise.
    seen: HashSet<(u64, u64)>,
    /// Directories' entries read ahead, taken as the walk reaches them.
    prefetched: Listings,
    out: Listing,
}

/// Lists the input files under `paths`.
pub fn list(paths: &[PathBuf], excludes: &Excludes) -> Result<Listing, WalkError> {
    let mut w = Walker {
        excludes,
        dirs: HashSet::new(),
        seen: HashSet::new(),
        prefetched: prefetch(paths, excludes),
        out: Listing::default(),
    };
    for root in paths {
        w.walk(root)?;
    }
    if w.out.files.is_empty() {
        return Err(WalkError::Empty);
    }
    Ok(w.out)
}

impl Walker<'_> {
    /// Walks one input path as given.
    fn walk(&mut self, root: &Path) -> Result<(), WalkError> {
        // Following links: what the path leads to.
        let meta = std::fs::metadata(root).map_err(|source| WalkError::Io {
            path: root.to_path_buf(),
            source,
        })?;
        // A file given itself is known below the input by its name.
        let rel = root
            .file_name()
            .map_or_else(|| root.to_path_buf(), PathBuf::from);
        self.take(root.to_path_buf(), rel, &meta, Path::new(""))
    }

    /// Takes the file or directory at `path` (`rel` below its input), whose metadata (links
    /// followed) is `meta`; `rel_dir` is what a directory's entries are relative to.
    fn take(
        &mut self,
        path: PathBuf,
        rel: PathBuf,
        meta: &std::fs::Metadata,
        rel_dir: &Path,
    ) -> Result<(), WalkError> {
        let kind = meta.file_type();
        if kind.is_dir() {
            if self.dirs.insert((meta.dev(), meta.ino())) {
                self.walk_dir(&path, rel_dir)?;
            }
        } else if kind.is_file() {
            if self.seen.insert((meta.dev(), meta.ino())) {
                if self.out.files.len() >= MAX_FILES {
                    return Err(WalkError::TooMany);
                }
                self.out.files.push(InputFile {
                    path,
                    rel,
                    stamp: FileStamp::of(meta),
                });
            }
        } else {
            self.out.skipped.push(path);
        }
        Ok(())
    }

    /// Walks the entries of directory `dir` (`rel_dir` below its input), in name order, from
    /// what [`prefetch`] read if it read the directory; a link's metadata through the link.
    fn walk_dir(&mut self, dir: &Path, rel_dir: &Path) -> Result<(), WalkError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| WalkError::Io { path, source }
        };
        let entries = match self.prefetched.remove(dir) {
            Some(entries) => entries,
            None => read_entries(dir, |name| !self.excludes.excludes(&rel_dir.join(name)))
                .map_err(io(dir))?,
        };
        for entry in entries {
            let rel = rel_dir.join(&entry.name);
            if self.excludes.excludes(&rel) {
                continue;
            }
            let path = dir.join(&entry.name);
            let meta = match entry.meta {
                Some(meta) => Ok(meta),
                None if entry.is_link => std::fs::metadata(&path),
                None => std::fs::symlink_metadata(&path),
            }
            .map_err(io(&path))?;
            self.take(path, rel.clone(), &meta, &rel)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(l: &Listing, root: &Path) -> Vec<String> {
        l.files
            .iter()
            .map(|f| f.path.strip_prefix(root).unwrap().display().to_string())
            .collect()
    }

    #[test]
    fn links_are_followed_once_loops_end_hidden_files_count_and_specials_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/one.txt"), "1\n").unwrap();
        std::fs::write(root.join("a/.hidden"), "h\n").unwrap();
        std::fs::write(root.join("a/b/two.txt"), "2\n").unwrap();
        // A loop, a second way to a directory, and a second way to a file.
        std::os::unix::fs::symlink(root.join("a"), root.join("a/b/loop")).unwrap();
        std::os::unix::fs::symlink(root.join("a/b"), root.join("a/also-b")).unwrap();
        std::os::unix::fs::symlink(root.join("a/one.txt"), root.join("a/link-to-one")).unwrap();
        let fifo = root.join("a/pipe");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        let listing = list(&[root.join("a")], &Excludes::new(&[]).unwrap()).unwrap();
        let got = names(&listing, &root.join("a"));
        // The first way to each file and directory, in sorted order, is the one kept.
        assert_eq!(
            got,
            vec![".hidden", "also-b/two.txt", "link-to-one"],
            "{got:?}"
        );
        assert_eq!(listing.skipped, vec![fifo]);
    }

    #[test]
    fn excludes_match_names_anywhere_and_paths_from_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for f in [
            "keep.rs",
            "x.log",
            "target/debug/out.rs",
            "src/target/inner.rs",
            "src/lib.rs",
        ] {
            let p = root.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, "x\n").unwrap();
        }
        let excludes = Excludes::new(&["*.log".into(), "/target".into()]).unwrap();
        let listing = list(&[root.to_path_buf()], &excludes).unwrap();
        let got = names(&listing, root);
        assert_eq!(got, vec!["keep.rs", "src/lib.rs", "src/target/inner.rs"]);
        let excludes = Excludes::new(&["target".into()]).unwrap();
        let got = names(&list(&[root.to_path_buf()], &excludes).unwrap(), root);
        assert_eq!(got, vec!["keep.rs", "src/lib.rs", "x.log"]);
        assert!(matches!(
            Excludes::new(&["a[".into()]),
            Err(WalkError::BadGlob { .. })
        ));
        let all = Excludes::new(&["*".into()]).unwrap();
        assert!(matches!(
            list(&[root.to_path_buf()], &all),
            Err(WalkError::Empty)
        ));
    }
}
