//! Login throttling (ADR 0026): progressive delays, never a lock. Three failure counters
//! each set a "not before" for the next attempt they cover, doubling with each failure
//! past a free allowance up to a cap:
//! - per account and client address, small allowance and a long cap: whoever guesses from
//!   one address is slowed long before anybody else;
//! - per account, from any address, a large allowance and a short cap: many addresses
//!   cannot guess fast, and the owner waits at most that cap;
//! - per client address, on any account: spraying many accounts from one address.
//!
//! Attempts made too early are refused without checking the password, and every attempt
//! counts as a failure until it succeeds, so a burst of parallel guesses gets no further
//! than serial ones.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use ticketing_platform::config::{ConfigIssue, Validate};

/// Throttling thresholds (`identity.login`). Unknown keys are refused, so a configuration
/// still setting the lockout keys of ADR 0007 fails at start instead of meaning nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoginPolicy {
    /// Failures per account and client address before any delay.
    pub free_failures: u32,
    /// Delay after the first counted failure of any counter; doubles with each further one.
    #[serde(with = "humantime_serde")]
    pub delay_base: Duration,
    /// Longest delay per account and client address.
    #[serde(with = "humantime_serde")]
    pub max_delay: Duration,
    /// Failures per account, from any address, before the whole account is delayed.
    pub account_free_failures: u32,
    /// Longest delay per account: the most its owner waits, whoever else guesses.
    #[serde(with = "humantime_serde")]
    pub account_max_delay: Duration,
    /// Failures per client address, on any account, before the address is delayed.
    pub ip_free_failures: u32,
    /// Longest delay per client address.
    #[serde(with = "humantime_serde")]
    pub ip_max_delay: Duration,
    /// How long failures are remembered after the last one.
    #[serde(with = "humantime_serde")]
    pub failure_window: Duration,
}

impl Default for LoginPolicy {
    fn default() -> Self {
        Self {
            free_failures: 3,
            delay_base: Duration::from_secs(1),
            max_delay: Duration::from_secs(15 * 60),
            account_free_failures: 20,
            account_max_delay: Duration::from_secs(60),
            ip_free_failures: 50,
            ip_max_delay: Duration::from_secs(60),
            failure_window: Duration::from_secs(3600),
        }
    }
}

/// Most failures any counter may let through for free.
const MAX_FREE_FAILURES: u32 = 100_000;

impl Validate for LoginPolicy {
    fn validate(&self, issues: &mut Vec<ConfigIssue>) {
        for (key, free) in [
            ("identity.login.free_failures", self.free_failures),
            ("identity.login.account_free_failures", self.account_free_failures),
            ("identity.login.ip_free_failures", self.ip_free_failures),
        ] {
            if free > MAX_FREE_FAILURES {
                issues.push(ConfigIssue::new(key, "must be at most 100000"));
            }
        }
        if self.account_free_failures < self.free_failures {
            issues.push(ConfigIssue::new(
                "identity.login.account_free_failures",
                "must be at least identity.login.free_failures: a stranger is slowed before the owner",
            ));
        }
        if self.delay_base < Duration::from_millis(1) {
            issues.push(ConfigIssue::new("identity.login.delay_base", "must be at least 1ms"));
        }
        for (key, max) in [
            ("identity.login.max_delay", self.max_delay),
            ("identity.login.account_max_delay", self.account_max_delay),
            ("identity.login.ip_max_delay", self.ip_max_delay),
        ] {
            if max < self.delay_base || max > self.failure_window {
                issues.push(ConfigIssue::new(
                    key,
                    "must be between identity.login.delay_base and identity.login.failure_window",
                ));
            }
        }
    }
}

/// One counter's schedule: how many failures are free, then the delays of the following
/// ones, the last repeating for good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ramp {
    /// Failures that cost nothing.
    pub free: u32,
    /// The delays after failure `free + 1`, `free + 2`, … up to the first that reaches the cap.
    pub delays: Vec<Duration>,
}

impl Ramp {
    fn new(free: u32, base: Duration, max: Duration) -> Self {
        let mut delays = vec![base.min(max)];
        while let Some(&last) = delays.last().filter(|d| **d < max) {
            delays.push(last.saturating_mul(2).min(max));
        }
        Self { free, delays }
    }
}

impl LoginPolicy {
    /// Per account and client address.
    pub fn pair(&self) -> Ramp {
        Ramp::new(self.free_failures, self.delay_base, self.max_delay)
    }

    /// Per account, from any address.
    pub fn account(&self) -> Ramp {
        Ramp::new(self.account_free_failures, self.delay_base, self.account_max_delay)
    }

    /// Per client address, on any account.
    pub fn address(&self) -> Ramp {
        Ramp::new(self.ip_free_failures, self.delay_base, self.ip_max_delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wait `failures` failures earn, as `adapters::throttle`'s script reads a ramp.
    fn delay(ramp: &Ramp, failures: u32) -> Duration {
        match failures.saturating_sub(ramp.free) {
            0 => Duration::ZERO,
            counted => ramp.delays[(counted as usize - 1).min(ramp.delays.len() - 1)],
        }
    }

    #[test]
    fn delays_double_after_the_free_failures_up_to_the_cap() {
        let pair = LoginPolicy::default().pair();
        assert_eq!(delay(&pair, 3), Duration::ZERO);
        assert_eq!(delay(&pair, 4), Duration::from_secs(1));
        assert_eq!(delay(&pair, 5), Duration::from_secs(2));
        assert_eq!(delay(&pair, 13), Duration::from_secs(512));
        assert_eq!(delay(&pair, 14), Duration::from_secs(900));
        assert_eq!(delay(&pair, u32::MAX), Duration::from_secs(900), "never more than the cap, never a lock");
        assert_eq!(pair.delays.len(), 11);
    }

    #[test]
    fn the_account_waits_less_and_later_than_one_address() {
        let p = LoginPolicy::default();
        let (pair, account) = (p.pair(), p.account());
        for failures in 0..=1000 {
            assert!(delay(&account, failures) <= delay(&pair, failures), "{failures}");
        }
        assert_eq!(delay(&account, 20), Duration::ZERO);
        assert_eq!(delay(&account, 10_000), Duration::from_secs(60));
    }

    #[test]
    fn caps_sit_between_the_base_and_the_window() {
        let mut p = LoginPolicy::default();
        assert!(p.issue_keys().is_empty());
        p.account_max_delay = Duration::from_secs(7200);
        p.account_free_failures = 2;
        assert_eq!(p.issue_keys(), ["identity.login.account_free_failures", "identity.login.account_max_delay"]);
    }
}
