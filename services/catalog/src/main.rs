//! The catalog service binary.

use ticketing_catalog::config::Config;

fn main() -> std::process::ExitCode {
    ticketing_platform::cli::main("catalog", Config::default(), Some(&ticketing_catalog::MIGRATIONS), |config| async {
        ticketing_catalog::startup::build(config).await?.run_until_stopped().await
    })
}
