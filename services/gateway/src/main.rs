//! The gateway binary.

use ticketing_gateway::config::Config;

fn main() -> std::process::ExitCode {
    ticketing_platform::cli::main("gateway", Config::default(), None, |config| async {
        ticketing_gateway::startup::build(config).await?.running.run_until_stopped().await
    })
}
