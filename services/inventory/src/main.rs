//! The inventory service binary (skeleton until its issue lands).

fn main() -> std::process::ExitCode {
    let deps = ticketing_platform::skeleton::Dependencies { postgres: true, redis: true };
    ticketing_platform::skeleton::main("inventory", 50053, deps)
}
