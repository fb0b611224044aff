//! The Python peers: a virtual environment under target/bench-venv with bench/requirements.txt
//! installed (once; again when the file changes), and bench/peers.py run in it.

use crate::report::Figure;
use std::path::{Path, PathBuf};
use std::process::Command;

pub(crate) struct Python {
    interpreter: PathBuf,
    script: PathBuf,
}

impl Python {
    /// Creates or reuses the environment. Errors say what is missing.
    pub(crate) fn setup(root: &Path) -> Result<Self, String> {
        let venv = root.join("target/bench-venv");
        let requirements = root.join("bench/requirements.txt");
        let wanted = std::fs::read_to_string(&requirements)
            .map_err(|e| format!("{}: {e}", requirements.display()))?;
        let stamp = venv.join("installed-requirements.txt");
        let interpreter = venv.join("bin/python");
        if std::fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
            eprintln!(
                "creating {} with {}",
                venv.display(),
                requirements.display()
            );
            run(Command::new("python3").args(["-m", "venv"]).arg(&venv))
                .map_err(|e| format!("python3 -m venv: {e} (install python3 and python3-venv)"))?;
            run(Command::new(&interpreter)
                .args(["-m", "pip", "install", "--quiet", "-r"])
                .arg(&requirements))
            .map_err(|e| format!("pip install -r bench/requirements.txt: {e}"))?;
            std::fs::write(&stamp, &wanted).map_err(|e| e.to_string())?;
        }
        Ok(Self {
            interpreter,
            script: root.join("bench/peers.py"),
        })
    }

    /// Runs one workload on one framework `runs` times; returns the JSON it printed.
    pub(crate) fn run(
        &self,
        workload: &str,
        framework: &str,
        runs: usize,
        args: &[String],
    ) -> Result<serde_json::Value, String> {
        let out = Command::new(&self.interpreter)
            .arg(&self.script)
            .args([workload, framework, &runs.to_string()])
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let last: Vec<&str> = stderr.lines().rev().take(3).collect();
            return Err(format!(
                "{framework} {workload} failed: {}",
                last.into_iter().rev().collect::<Vec<_>>().join(" | ")
            ));
        }
        serde_json::from_slice(&out.stdout).map_err(|e| format!("{framework}: bad output: {e}"))
    }

    /// The per-run figures of a throughput- or time-like result.
    pub(crate) fn figure(
        &self,
        workload: &str,
        framework: &str,
        runs: usize,
        args: &[String],
    ) -> Result<Figure, String> {
        let v = self.run(workload, framework, runs, args)?;
        let values = v["values"]
            .as_array()
            .ok_or("no values")?
            .iter()
            .filter_map(serde_json::Value::as_f64)
            .collect();
        Ok(Figure::new(values))
    }
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let status = cmd.status().map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("exited with {status}"))
    }
}
