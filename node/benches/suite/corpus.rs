//! The generated text the data-bound workloads count: ASCII English-like lines over a
//! vocabulary of 30,000 made-up words with a Zipf-like (log-uniform) frequency, capitalised
//! sentence starts and punctuation. Files of 64 MiB are written once under target/bench-data
//! and reused by later runs.

use shoal_ops::SplitMix64;
use std::io::Write as _;
use std::path::{Path, PathBuf};

const FILE_BYTES: u64 = 64 << 20;
const VOCABULARY: usize = 30_000;
/// Bumped whenever the generator changes, so stale corpora are rewritten.
const VERSION: u32 = 1;

/// The corpus of `total` bytes (whole files of 64 MiB, or one smaller file) under `root`;
/// generates it if it is not there yet.
pub(crate) fn ensure(root: &Path, total: u64) -> Vec<PathBuf> {
    let dir = root.join(format!("corpus-v{VERSION}-{}mib", total >> 20));
    let files = (total / FILE_BYTES).max(1);
    let per_file = total.min(FILE_BYTES);
    let paths: Vec<PathBuf> = (0..files)
        .map(|i| dir.join(format!("part-{i:03}.txt")))
        .collect();
    let complete = dir.join("complete");
    if complete.exists() {
        return paths;
    }
    eprintln!("writing a {} MiB corpus to {}", total >> 20, dir.display());
    std::fs::create_dir_all(&dir).expect("corpus dir");
    let words = vocabulary();
    for (i, path) in paths.iter().enumerate() {
        write_file(path, per_file, &words, i as u64);
    }
    std::fs::write(&complete, b"").expect("corpus stamp");
    paths
}

pub(crate) fn vocabulary() -> Vec<String> {
    const SYLLABLES: [&str; 24] = [
        "ka", "lo", "mi", "ne", "ru", "ta", "shi", "po", "en", "dar", "vel", "os", "qu", "ix",
        "ba", "ter", "un", "ly", "fo", "gra", "zen", "al", "wi", "ho",
    ];
    let mut rng = SplitMix64(42);
    (0..VOCABULARY)
        .map(|_| {
            let n = 1 + (rng.next_u64() % 4) as usize;
            (0..n)
                .map(|_| SYLLABLES[(rng.next_u64() % SYLLABLES.len() as u64) as usize])
                .collect()
        })
        .collect()
}

pub(crate) fn write_file(path: &Path, size: u64, words: &[String], seed: u64) {
    let mut rng = SplitMix64(seed + 1);
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    let mut written = 0u64;
    let mut line = String::with_capacity(256);
    while written < size {
        line.clear();
        let len = 6 + rng.next_u64() % 10;
        for k in 0..len {
            // Log-uniform rank: frequent words are very frequent, most are rare.
            let u = rng.next_f64();
            let rank = ((VOCABULARY as f64).powf(u) as usize).min(VOCABULARY) - 1;
            let word = &words[rank];
            if k == 0 {
                let mut chars = word.chars();
                let first = chars.next().expect("non-empty word");
                line.push(first.to_ascii_uppercase());
                line.push_str(chars.as_str());
            } else {
                line.push_str(word);
            }
            match rng.next_u64() % 16 {
                0 => line.push_str(", "),
                1 if k + 1 < len => line.push_str(" 42 "),
                _ => line.push(' '),
            }
        }
        line.pop();
        line.push_str(".\n");
        let take = (size - written).min(line.len() as u64) as usize;
        out.write_all(&line.as_bytes()[..take]).unwrap();
        written += take as u64;
    }
    out.flush().unwrap();
}

/// Syllables of the multilingual corpus: Cyrillic, Greek (with final sigma), accented Latin,
/// German, and CJK characters (a word of them is a run of ideographs or kana).
const SCRIPTS: [&[&str]; 5] = [
    &[
        "ка", "ло", "ми", "не", "ру", "та", "ши", "по", "ен", "дар", "вел", "ос", "Жи", "Ё",
    ],
    &[
        "κα", "λο", "μι", "νε", "ρυ", "τα", "πο", "ος", "ας", "Σο", "Ω", "ευ", "ήμ", "ές",
    ],
    &[
        "é", "è", "ça", "dé", "où", "ñe", "ão", "ça", "lé", "Ré", "vé", "ü", "ø", "å",
    ],
    &[
        "straß", "über", "mädch", "größ", "schö", "Äpf", "Öl", "Übe", "weiß", "fuß",
    ],
    &[
        "日", "本", "語", "中", "文", "字", "東", "京", "の", "か", "な", "カ", "タ", "한", "국",
    ],
];

/// A corpus of `total` bytes of multilingual text (files of up to 64 MiB) under `root`;
/// generates it if it is not there yet.
pub(crate) fn ensure_multilingual(root: &Path, total: u64) -> Vec<PathBuf> {
    let dir = root.join(format!("multilingual-v{VERSION}-{}mib", total >> 20));
    let files = total.div_ceil(FILE_BYTES).max(1);
    let paths: Vec<PathBuf> = (0..files)
        .map(|i| dir.join(format!("part-{i:03}.txt")))
        .collect();
    let complete = dir.join("complete");
    if complete.exists() {
        return paths;
    }
    eprintln!(
        "writing a {} MiB multilingual corpus to {}",
        total >> 20,
        dir.display()
    );
    std::fs::create_dir_all(&dir).expect("corpus dir");
    let mut rng = SplitMix64(7);
    // 20,000 words: each of one script, one to four syllables.
    let words: Vec<String> = (0..20_000)
        .map(|_| {
            let script = SCRIPTS[(rng.next_u64() % SCRIPTS.len() as u64) as usize];
            let n = 1 + (rng.next_u64() % 4) as usize;
            (0..n)
                .map(|_| script[(rng.next_u64() % script.len() as u64) as usize])
                .collect()
        })
        .collect();
    let mut left = total;
    for (i, path) in paths.iter().enumerate() {
        let size = left.min(FILE_BYTES);
        left -= size;
        let mut rng = SplitMix64(100 + i as u64);
        let mut out =
            std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
        let mut written = 0u64;
        let mut line = String::with_capacity(512);
        while written < size {
            line.clear();
            for k in 0..(5 + rng.next_u64() % 10) {
                let u = rng.next_f64();
                let rank = ((words.len() as f64).powf(u) as usize).min(words.len()) - 1;
                line.push_str(&words[rank]);
                line.push_str(match (k, rng.next_u64() % 12) {
                    (_, 0) => "、",
                    (_, 1) => ", ",
                    (_, 2) => " — ",
                    _ => " ",
                });
            }
            line.push_str("。\n");
            // Whole lines only: a file never ends inside a character.
            out.write_all(line.as_bytes()).unwrap();
            written += line.len() as u64;
        }
        out.flush().unwrap();
    }
    std::fs::write(&complete, b"").expect("corpus stamp");
    paths
}
