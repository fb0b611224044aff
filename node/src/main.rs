//! The `shoal` binary. Everything lives in the library; see `shoal --help`.

fn main() -> std::process::ExitCode {
    shoal_node::cli::main()
}
