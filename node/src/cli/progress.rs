//! What `shoal submit` shows while a job runs: tasks done of all, elapsed time and an ETA,
//! throughput in the job's own unit (MiB/s of input for files, items/s for generated inputs),
//! and the peers working on it.

use crate::cli::rows::JobRow;
use std::time::Duration;

/// A number with three significant digits and an SI prefix: `1.23 M`, `456`, `12.3 k`.
pub fn si(x: f64) -> String {
    let (v, prefix) = if x >= 1e9 {
        (x / 1e9, " G")
    } else if x >= 1e6 {
        (x / 1e6, " M")
    } else if x >= 1e3 {
        (x / 1e3, " k")
    } else {
        (x, " ")
    };
    let digits = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    format!("{v:.digits$}{prefix}").trim_end().to_string()
}

/// A duration as people read it: `850 ms`, `12.3 s`, `4 min 05 s`, `2 h 03 min`.
pub fn duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 1.0 {
        format!("{} ms", d.as_millis())
    } else if s < 60.0 {
        format!("{s:.1} s")
    } else if s < 3600.0 {
        format!("{} min {:02} s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else {
        format!(
            "{} h {:02} min",
            (s / 3600.0) as u64,
            ((s % 3600.0) / 60.0) as u64
        )
    }
}

/// Input throughput so far, in the job's unit: the share of map tasks done times the input.
pub fn throughput(job: &JobRow, elapsed: Duration) -> Option<String> {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 || job.maps == 0 || job.input.size == 0 {
        return None;
    }
    let processed = job.input.size as f64 * f64::from(job.maps_done) / f64::from(job.maps);
    let rate = processed / secs;
    Some(match job.input.unit.as_str() {
        "bytes" => format!("{} MiB/s", si(rate / f64::from(1 << 20))),
        _ => format!("{} items/s", si(rate)),
    })
}

/// The time left at the rate tasks got done so far.
pub fn eta(job: &JobRow, elapsed: Duration) -> Option<Duration> {
    if job.done == 0 || job.done >= job.total {
        return None;
    }
    let per_task = elapsed.as_secs_f64() / f64::from(job.done);
    Some(Duration::from_secs_f64(
        per_task * f64::from(job.total - job.done),
    ))
}

/// The progress line's message after the bar.
pub fn message(job: &JobRow, peers: usize, waiting: bool, elapsed: Duration) -> String {
    if waiting {
        return format!(
            "{} elapsed, waiting for capacity: no node offers a free slot",
            duration(elapsed)
        );
    }
    let mut parts = vec![format!("{} elapsed", duration(elapsed))];
    if let Some(left) = eta(job, elapsed) {
        parts.push(format!("ETA {}", duration(left)));
    }
    if let Some(rate) = throughput(job, elapsed) {
        parts.push(rate);
    }
    parts.push(format!("{} of {peers} peers working", job.workers.max(1)));
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::rows::InputRow;

    fn row(unit: &str, size: u64, maps_done: u32) -> JobRow {
        let mut r = JobRow::ended(shoal_protocol::JobId([0; 32]));
        r.maps = 100;
        r.total = 133;
        r.done = maps_done;
        r.maps_done = maps_done;
        r.workers = 2;
        r.input = InputRow {
            unit: unit.into(),
            size,
        };
        r
    }

    #[test]
    fn figures_are_rounded_to_three_digits_with_units() {
        assert_eq!(si(107.9178), "108");
        assert_eq!(si(1234.5), "1.23 k");
        assert_eq!(si(45_678_900.0), "45.7 M");
        assert_eq!(duration(Duration::from_millis(850)), "850 ms");
        assert_eq!(duration(Duration::from_secs(245)), "4 min 05 s");
        let files = row("bytes", 1 << 30, 50);
        assert_eq!(
            throughput(&files, Duration::from_secs(1)).unwrap(),
            "512 MiB/s"
        );
        let range = row("items", 10_000_000, 25);
        assert_eq!(
            throughput(&range, Duration::from_secs(2)).unwrap(),
            "1.25 M items/s"
        );
        let small = row("items", 100, 50);
        assert_eq!(
            throughput(&small, Duration::from_secs(1)).unwrap(),
            "50.0 items/s"
        );
    }

    #[test]
    fn the_eta_extrapolates_the_rate_so_far() {
        let job = row("items", 1000, 33);
        // 33 of 133 tasks in 10 s: 100 left at the same rate.
        let left = eta(&job, Duration::from_secs(10)).unwrap();
        assert!((left.as_secs_f64() - 30.3).abs() < 0.1, "{left:?}");
        let m = message(&job, 3, false, Duration::from_secs(10));
        assert!(
            m.contains("ETA 30.3 s") && m.contains("2 of 3 peers working"),
            "{m}"
        );
    }
}
