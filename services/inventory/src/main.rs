//! The inventory service binary.

use ticketing_inventory::config::Config;

fn main() -> std::process::ExitCode {
    ticketing_platform::cli::main(
        "inventory",
        Config::default(),
        Some(&ticketing_inventory::MIGRATIONS),
        |config| async { ticketing_inventory::startup::build(config).await?.run_until_stopped().await },
    )
}
