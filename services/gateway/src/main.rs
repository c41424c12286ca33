//! The gateway service binary (skeleton until its issue lands).

fn main() -> std::process::ExitCode {
    let deps = ticketing_platform::skeleton::Dependencies { postgres: false, redis: true };
    ticketing_platform::skeleton::main("gateway", 50050, deps)
}
