//! The pre-scaler binary.

use ticketing_prescaler::config::Config;

fn main() -> std::process::ExitCode {
    ticketing_platform::cli::main("prescaler", Config::default(), None, |config| async {
        ticketing_prescaler::startup::build(config).await?.run_until_stopped().await
    })
}
