//! The booking service binary.

use ticketing_booking::config::Config;

fn main() -> std::process::ExitCode {
    ticketing_platform::cli::main("booking", Config::default(), Some(&ticketing_booking::MIGRATIONS), |config| async {
        ticketing_booking::startup::build(config).await?.run_until_stopped().await
    })
}
