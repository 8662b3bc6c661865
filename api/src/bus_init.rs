//! `aperture bus init`: the nats-server config and keys of a deployment.

use crate::cli::{BusArgs, BusCommand};
use crate::{EXIT_BAD_INPUT, EXIT_FAILED};
use aperture_bus::auth::write_server_config;
use aperture_bus::BusError;
use std::process::ExitCode;

pub fn run(args: BusArgs) -> ExitCode {
    match args.command {
        BusCommand::Init {
            dir,
            workers,
            listen,
            store,
        } => {
            let store = store.unwrap_or_else(|| dir.join("jetstream"));
            match write_server_config(&dir, &listen, &store, &workers) {
                Ok(files) => {
                    println!("nats-server config: {}", files.config.display());
                    println!(
                        "coordinator key:    {} (bus_nkey in the serve config)",
                        files.coordinator_seed.display()
                    );
                    for (name, path) in &files.worker_seeds {
                        println!(
                            "worker {name} key: {} (copy to that host: aperture worker --name {name} --nkey FILE)",
                            path.display()
                        );
                    }
                    println!("start it: nats-server -c {}", files.config.display());
                    ExitCode::SUCCESS
                }
                Err(e @ BusError::Invalid(_)) => {
                    eprintln!("aperture: {e}");
                    ExitCode::from(EXIT_BAD_INPUT)
                }
                Err(e) => {
                    eprintln!("aperture: {e}");
                    ExitCode::from(EXIT_FAILED)
                }
            }
        }
    }
}
