//! `shoal-netsim`: a deterministic simulator of many Shoal protocol nodes on virtual time.
//!
//! Not built yet (see the open issue); the crate exists so the workspace has its final layout.

fn main() {
    eprintln!("shoal-netsim is not implemented yet");
    std::process::exit(2);
}
