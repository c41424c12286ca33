//! The payment service binary.

use ticketing_payment::config::Config;

fn main() -> std::process::ExitCode {
    ticketing_platform::cli::main("payment", Config::default(), Some(&ticketing_payment::MIGRATIONS), |config| async {
        ticketing_payment::startup::build(config).await?.run_until_stopped().await
    })
}
