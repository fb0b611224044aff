//! Figures, their medians, and the two outputs: JSON (one object per workload) and the
//! markdown table that goes into docs/BENCHMARKS.md between the suite's markers.

use serde_json::json;

/// One measured quantity over several runs.
#[derive(Debug, Clone)]
pub(crate) struct Figure {
    pub values: Vec<f64>,
}

impl Figure {
    pub(crate) fn new(mut values: Vec<f64>) -> Self {
        values.sort_by(f64::total_cmp);
        Self { values }
    }

    pub(crate) fn median(&self) -> f64 {
        self.values[self.values.len() / 2]
    }

    fn json(&self) -> serde_json::Value {
        json!({
            "median": self.median(),
            "min": self.values[0],
            "max": self.values[self.values.len() - 1],
            "runs": self.values.len(),
        })
    }

    fn cell(&self) -> String {
        let (lo, hi) = (self.values[0], self.values[self.values.len() - 1]);
        if self.values.len() == 1 {
            fmt(self.median())
        } else {
            format!("{} ({}–{})", fmt(self.median()), fmt(lo), fmt(hi))
        }
    }
}

/// Three significant digits, thousands separated.
fn fmt(x: f64) -> String {
    if x >= 1000.0 {
        let digits = x.round() as u64;
        let s = digits.to_string();
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        out
    } else if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

/// One workload's figures: Shoal's and its peers', measured in the same run.
#[derive(Debug)]
pub(crate) struct Row {
    pub workload: String,
    pub unit: &'static str,
    /// Whether a larger figure is better (throughput) or worse (time, memory).
    pub higher_is_better: bool,
    pub shoal: Figure,
    pub peers: Vec<(String, Result<Figure, String>)>,
    /// The target, in words, and whether Shoal's median meets it.
    pub target: String,
    pub met: bool,
}

impl Row {
    /// Shoal's median over the peer's: above 1, Shoal's figure is larger.
    fn ratio(&self, peer: &Figure) -> f64 {
        self.shoal.median() / peer.median()
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        let mut peers = serde_json::Map::new();
        let mut ratios = serde_json::Map::new();
        for (name, figure) in &self.peers {
            match figure {
                Ok(f) => {
                    peers.insert(name.clone(), f.json());
                    ratios.insert(name.clone(), json!(self.ratio(f)));
                }
                Err(e) => {
                    peers.insert(name.clone(), json!({ "error": e }));
                }
            }
        }
        json!({
            "workload": self.workload,
            "unit": self.unit,
            "higher_is_better": self.higher_is_better,
            "shoal": self.shoal.json(),
            "peers": peers,
            "ratio": ratios,
            "target": self.target,
            "target_met": self.met,
        })
    }

    pub(crate) fn markdown(&self) -> String {
        let peers: Vec<String> = self
            .peers
            .iter()
            .map(|(name, figure)| match figure {
                Ok(f) => format!("{name}: {} → **{:.2}×**", f.cell(), self.ratio(f)),
                Err(e) => format!("{name}: not measured ({e})"),
            })
            .collect();
        let better = if self.higher_is_better {
            "higher is better"
        } else {
            "lower is better"
        };
        format!(
            "| {} | {} ({better}) | {} | {} | {} {} |",
            self.workload,
            self.unit,
            self.shoal.cell(),
            if peers.is_empty() {
                "—".to_string()
            } else {
                peers.join("<br>")
            },
            if self.met { "met:" } else { "**missed:**" },
            self.target
        )
    }
}

pub(crate) fn markdown_table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| workload | unit | Shoal: median (min–max) | peers: median (min–max) → Shoal ÷ peer | target |\n\
         | --- | --- | --- | --- | --- |\n",
    );
    for row in rows {
        out.push_str(&row.markdown());
        out.push('\n');
    }
    out
}
