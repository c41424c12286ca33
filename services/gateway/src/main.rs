//! The gateway binary.

use ticketing_gateway::config::Config;

// Every request allocates and frees across worker threads; glibc's malloc took 30 % of the
// gateway's CPU at 1,000 clients, mimalloc's thread-local free lists a fraction of that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    ticketing_platform::cli::main("gateway", Config::default(), None, |config| async {
        ticketing_gateway::startup::build(config).await?.running.run_until_stopped().await
    })
}
