//! `--needs tag=NAME` and `--needs mem=SIZE`, as typed on the command line (and in pipeline
//! files), turned into the protocol's [`Needs`].

use shoal_protocol::schedule::{self, Needs};

/// Parses the `--needs` values of one job: each `tag=NAME` or `mem=SIZE` (SIZE in bytes, or
/// with a unit: `512MiB`, `4GiB`, `2GB`, ...; memory is counted in whole MiB, rounded up).
pub fn parse(values: &[String]) -> Result<Needs, String> {
    let mut tags = Vec::new();
    let mut mem_mb = 0u64;
    for v in values {
        match v.split_once('=') {
            Some(("tag", name)) => {
                schedule::check_tag(name).map_err(|e| format!("--needs {v}: {e}"))?;
                tags.push(name.to_owned());
            }
            Some(("mem", size)) => {
                let bytes = parse_size(size).map_err(|e| format!("--needs {v}: {e}"))?;
                mem_mb = mem_mb.max(bytes.div_ceil(1 << 20));
            }
            _ => {
                return Err(format!(
                    "--needs {v}: expected tag=NAME or mem=SIZE (for example mem=4GiB)"
                ));
            }
        }
    }
    let tags = schedule::normalize_tags(tags).map_err(|e| format!("--needs: {e}"))?;
    Ok(Needs { tags, mem_mb })
}

/// A size in bytes: digits, optionally followed by a unit (B, KB, MB, GB, TB in powers of
/// 1000; KiB, MiB, GiB, TiB in powers of 1024; K, M, G, T as the binary ones).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("size '{s}' does not start with a number"))?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        other => {
            return Err(format!(
                "unknown size unit '{other}' (use KiB, MiB, GiB, ...)"
            ));
        }
    };
    n.checked_mul(scale)
        .ok_or_else(|| format!("size '{s}' is too large"))
}

/// The needs in the form `--needs` takes them, for display.
pub fn describe(needs: &Needs) -> Vec<String> {
    use shoal_protocol::schedule::Unmet;
    let mut out: Vec<String> = needs
        .tags
        .iter()
        .map(|t| Unmet::Tag(t.clone()).to_string())
        .collect();
    if needs.mem_mb > 0 {
        out.push(Unmet::Mem(needs.mem_mb).to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn needs_parse_into_sorted_tags_and_whole_mebibytes() {
        let needs = parse(&v(&["tag=gpu", "mem=4GiB", "tag=a", "tag=gpu"])).unwrap();
        assert_eq!(needs.tags, v(&["a", "gpu"]));
        assert_eq!(needs.mem_mb, 4096);
        assert_eq!(parse(&v(&["mem=1"])).unwrap().mem_mb, 1);
        assert_eq!(parse(&v(&["mem=2GB"])).unwrap().mem_mb, 1908);
        assert_eq!(describe(&needs), v(&["tag=a", "tag=gpu", "mem=4096MiB"]));
    }

    #[test]
    fn bad_needs_say_what_is_wrong() {
        for (input, says) in [
            ("cpu=4", "expected tag=NAME or mem=SIZE"),
            ("tag=", "tag \"\""),
            ("tag=a b", "tag \"a b\""),
            ("mem=lots", "does not start with a number"),
            ("mem=4XB", "unknown size unit"),
            ("mem=99999999999TiB", "too large"),
        ] {
            let e = parse(&v(&[input])).unwrap_err();
            assert!(e.contains(says), "{input}: {e}");
        }
    }
}
