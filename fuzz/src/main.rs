//! `shoal-fuzz [--iterations N] [--seed S] [TARGET...]`: the long run of the fuzz targets.
//! Exits 1 if any input panicked, printing it in hex with the seed and iteration.

use std::process::ExitCode;
use std::time::Instant;

fn main() -> ExitCode {
    let mut iterations = 100_000u64;
    let mut seed = 1u64;
    let mut only = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let value = |args: &mut dyn Iterator<Item = String>, flag: &str| -> u64 {
            args.next()
                .and_then(|v| v.replace('_', "").parse().ok())
                .unwrap_or_else(|| {
                    eprintln!("error: {flag} needs a number");
                    std::process::exit(2)
                })
        };
        match a.as_str() {
            "--iterations" => iterations = value(&mut args, "--iterations"),
            "--seed" => seed = value(&mut args, "--seed"),
            "-h" | "--help" => {
                let names: Vec<&str> = shoal_fuzz::targets::all().iter().map(|t| t.name).collect();
                println!(
                    "usage: shoal-fuzz [--iterations N] [--seed S] [TARGET...]\ntargets: {}",
                    names.join(", ")
                );
                return ExitCode::SUCCESS;
            }
            name => only.push(name.to_string()),
        }
    }
    let mut failed = false;
    for mut target in shoal_fuzz::targets::all() {
        if !only.is_empty() && !only.iter().any(|n| n == target.name) {
            continue;
        }
        let started = Instant::now();
        let outcome = shoal_fuzz::fuzz(&mut target, iterations, seed);
        println!(
            "{:<12} {:>12} inputs, {} crashes, {:.1} s",
            outcome.target,
            outcome.tried,
            outcome.crashes.len(),
            started.elapsed().as_secs_f64()
        );
        for (i, input) in &outcome.crashes {
            failed = true;
            let hex: String = input.iter().map(|b| format!("{b:02x}")).collect();
            println!("  crash at iteration {i} (seed {seed}): {hex}");
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
