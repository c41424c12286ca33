//! The notification service binary.

use ticketing_notification::config::Config;

fn main() -> std::process::ExitCode {
    ticketing_platform::cli::main(
        "notification",
        Config::default(),
        Some(&ticketing_notification::MIGRATIONS),
        |config| async { ticketing_notification::startup::build(config).await?.run_until_stopped().await },
    )
}
