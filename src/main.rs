//! The `shiftlog` binary: parse flags, call the library, render, exit with the
//! documented code. All behaviour lives in the library (`src/lib.rs`).

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
