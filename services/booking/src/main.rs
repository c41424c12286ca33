//! The booking service binary (skeleton until its issue lands).

fn main() -> std::process::ExitCode {
    let deps = ticketing_platform::skeleton::Dependencies { postgres: true, redis: false };
    ticketing_platform::skeleton::main("booking", 50054, deps)
}
