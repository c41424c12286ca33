//! The identity service binary.

use ticketing_identity::config::Config;

fn main() -> std::process::ExitCode {
    ticketing_platform::cli::main(
        "identity",
        Config::default(),
        Some(&ticketing_identity::MIGRATIONS),
        |config| async { ticketing_identity::startup::build(config).await?.run_until_stopped().await },
    )
}
