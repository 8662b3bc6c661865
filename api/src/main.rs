//! `aperture`: one binary, subcommands: `scan`, `domains`, `serve`, `admin`, `worker`,
//! `bus`.

mod admin;
mod bus_init;
mod cli;
mod domains;
mod output;
mod output_xml;
mod portal;
mod scan;
mod serve;
mod status;
mod worker;

use clap::Parser;

// sled's copy-on-write pages make the allocator the hot spot of ingest: mimalloc took
// bench-store's unchanged rescan from 21k to 39k observations/s (100k run).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::process::ExitCode;

/// Exit codes, documented in the README.
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_BAD_INPUT: u8 = 2;
pub const EXIT_INTERRUPTED: u8 = 130;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse_from(cli::normalise_args(std::env::args_os())) {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            // One line, like our own input errors; full usage is one --help away.
            let text = e.render().to_string();
            let mut lines = text.lines().filter(|l| !l.trim().is_empty());
            let mut first = lines.next().unwrap_or("invalid arguments").to_owned();
            // "required arguments were not provided:" names them on the next line.
            if first.ends_with(':') {
                if let Some(next) = lines.next() {
                    first = format!("{first} {}", next.trim());
                }
            }
            eprintln!(
                "aperture: {} (see 'aperture --help')",
                first.trim_start_matches("error: ")
            );
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    match cli.command {
        cli::Command::Scan(args) => scan::run(*args),
        cli::Command::Domains(args) => domains::run(*args),
        cli::Command::Serve(args) => serve::run(args),
        cli::Command::Admin(args) => admin::run(args),
        cli::Command::Worker(args) => worker::run(*args),
        cli::Command::Bus(args) => bus_init::run(args),
    }
}
