//! A bounded run of every fuzz target (`SHOAL_FUZZ_ITERATIONS` inputs each, 3000 by default;
//! the wasm targets a tenth of that, each input instantiating a module): no input may panic.

fn iterations() -> u64 {
    std::env::var("SHOAL_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3_000)
}

#[test]
fn no_decoder_panics_on_mutated_or_random_input() {
    let mut report = Vec::new();
    for mut target in shoal_fuzz::targets::all() {
        let n = if target.name.starts_with("wasm") {
            iterations() / 10
        } else {
            iterations()
        };
        let outcome = shoal_fuzz::fuzz(&mut target, n, 7);
        assert!(outcome.tried > n / 2, "{}: too few inputs", outcome.target);
        if !outcome.crashes.is_empty() {
            report.push(format!("{}: {:?}", outcome.target, outcome.crashes));
        }
    }
    assert!(report.is_empty(), "crashes: {report:#?}");
}

#[test]
fn the_mutator_makes_inputs_that_differ_from_their_seeds() {
    let seeds = vec![b"0123456789abcdef".to_vec()];
    let mut m = shoal_fuzz::mutate::Mutator::new(1);
    let distinct: std::collections::HashSet<Vec<u8>> = (0..200).map(|_| m.next(&seeds)).collect();
    assert!(distinct.len() > 150, "{} distinct of 200", distinct.len());
    assert!(!distinct.contains(&seeds[0]) || distinct.len() > 150);
}
