//! `demo-seed`: fills a running local platform with demo data (see `scripts/run-local.sh`).
//! Idempotent: when the demo organizers already own venues it creates nothing, except new
//! PENDING_PAYMENT bookings once the earlier ones have expired.

use std::io::Write as _;

use clap::Parser;
use ticketing_demo::api::Api;
use ticketing_demo::plan::{self, Target};
use ticketing_demo::printed::{self, PrintOptions};
use ticketing_demo::seed::{self, Options};
use ticketing_proto::identity::v1::Role;

#[derive(Parser)]
#[command(about = "Creates the demo accounts, venues, events and bookings through the services' gRPC APIs")]
struct Cli {
    /// Only print the demo logins.
    #[arg(long)]
    logins: bool,
    #[command(flatten)]
    options: Options,
    #[command(flatten)]
    print: PrintOptions,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if cli.logins {
        return logins(&mut std::io::stdout().lock());
    }
    let started = std::time::Instant::now();
    let report = seed::run(&cli.options).await?;
    let mut out = std::io::stdout().lock();
    if report.skipped {
        match report.reached.get(&Target::PendingPayment) {
            Some(n) => {
                writeln!(out, "demo data already present; {n} new PENDING_PAYMENT bookings (the others expired)")?
            }
            None => writeln!(out, "demo data already present; nothing created")?,
        }
    } else {
        writeln!(out, "created {} events and, in {:.0?}, these bookings:", report.events, started.elapsed())?;
        for target in Target::ALL {
            let reached = report.reached.get(&target).copied().unwrap_or(0);
            let name = target.status().as_str_name().trim_start_matches("BOOKING_STATUS_");
            writeln!(out, "  {name:<16} {reached}")?;
        }
        if cli.options.short_hold_inventory_url.is_none() {
            writeln!(out, "  (no --short-hold-inventory-url: no EXPIRED bookings)")?;
        }
        writeln!(out, "  PENDING_PAYMENT bookings expire with their holds (inventory.hold_ttl, 10m by default)")?;
    }
    logins(&mut out)?;
    if let Some(dir) = &cli.print.tickets_dir {
        let api = Api::connect(&cli.options.urls)?;
        // The demo data stands without them: a failure is reported, not fatal.
        match printed::print(&api, &cli.print.notification_url, dir).await {
            Ok(printed) => {
                writeln!(out, "  printed tickets, as GET /v1/bookings/{{id}}/tickets.pdf serves them to their buyer:")?;
                for p in &printed {
                    writeln!(out, "    {} ({}, booking {})", p.file.display(), p.email, p.booking)?;
                }
            }
            Err(e) => writeln!(out, "  printing demo tickets failed: {e:#}")?,
        }
    }
    for f in &report.failures {
        writeln!(out, "  failed: {f}")?;
    }
    if report.failed > 0 {
        anyhow::bail!("{} demo bookings failed", report.failed);
    }
    Ok(())
}

/// One line per role: the first accounts, the last, and the role's password.
fn logins(out: &mut impl std::io::Write) -> anyhow::Result<()> {
    let people = plan::people();
    for (role, label) in [(Role::Admin, "admins"), (Role::Organizer, "organizers"), (Role::User, "users")] {
        let of_role: Vec<_> = people.iter().filter(|p| p.role == role).collect();
        let (first, last) = (of_role[0], of_role[of_role.len() - 1]);
        writeln!(
            out,
            "  {label:<11} {} … {} ({}), password {}",
            first.email,
            last.email,
            of_role.len(),
            first.password
        )?;
    }
    Ok(())
}
