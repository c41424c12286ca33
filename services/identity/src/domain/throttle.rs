//! Login throttling: after a few free failures each further one delays the next
//! allowed attempt exponentially, and enough of them lock the account (or the
//! client address) for a while. Attempts made too early are refused without
//! checking the password, and every attempt counts as a failure until it
//! succeeds, so a burst of parallel guesses gets no further than serial ones.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use ticketing_platform::config::{ConfigIssue, Validate};

/// Throttling thresholds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LoginPolicy {
    /// Failures per account before any delay.
    pub free_failures: u32,
    /// Delay after the first counted failure; doubles with each further one.
    #[serde(with = "humantime_serde")]
    pub delay_base: Duration,
    /// Longest delay.
    #[serde(with = "humantime_serde")]
    pub max_delay: Duration,
    /// Failures per account that lock it.
    pub lockout_failures: u32,
    /// Failures per client address that lock the address.
    pub ip_lockout_failures: u32,
    /// How long a lockout lasts.
    #[serde(with = "humantime_serde")]
    pub lockout_duration: Duration,
    /// How long failures are remembered after the last one.
    #[serde(with = "humantime_serde")]
    pub failure_window: Duration,
}

impl Default for LoginPolicy {
    fn default() -> Self {
        Self {
            free_failures: 3,
            delay_base: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            lockout_failures: 10,
            ip_lockout_failures: 100,
            lockout_duration: Duration::from_secs(15 * 60),
            failure_window: Duration::from_secs(15 * 60),
        }
    }
}

impl Validate for LoginPolicy {
    fn validate(&self, issues: &mut Vec<ConfigIssue>) {
        if self.lockout_failures <= self.free_failures {
            issues
                .push(ConfigIssue::new("identity.login.lockout_failures", "must exceed identity.login.free_failures"));
        }
        if self.ip_lockout_failures < self.lockout_failures {
            issues.push(ConfigIssue::new(
                "identity.login.ip_lockout_failures",
                "must be at least identity.login.lockout_failures",
            ));
        }
        if self.max_delay < self.delay_base {
            issues.push(ConfigIssue::new("identity.login.max_delay", "must be at least identity.login.delay_base"));
        }
        if self.lockout_duration.is_zero() || self.failure_window.is_zero() {
            issues.push(ConfigIssue::new("identity.login.lockout_duration", "durations must be positive"));
        }
    }
}

/// What a run of failures costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Penalty {
    /// The next attempt may come at once.
    None,
    /// The next attempt may come after this delay.
    Delay(Duration),
    /// Locked for this long.
    Lockout(Duration),
}

impl LoginPolicy {
    /// The penalty after `failures` consecutive failures on an account.
    pub fn account_penalty(&self, failures: u32) -> Penalty {
        if failures >= self.lockout_failures {
            return Penalty::Lockout(self.lockout_duration);
        }
        if failures <= self.free_failures {
            return Penalty::None;
        }
        let exponent = (failures - self.free_failures - 1).min(20);
        Penalty::Delay(self.delay_base.saturating_mul(1 << exponent).min(self.max_delay))
    }

    /// [`Self::account_penalty`] for 1..=`lockout_failures` failures, encoded for the Redis
    /// script: 0 for none, a positive delay or a negative lockout, in milliseconds.
    pub fn account_penalty_table(&self) -> Vec<i64> {
        (1..=self.lockout_failures)
            .map(|failures| match self.account_penalty(failures) {
                Penalty::None => 0,
                Penalty::Delay(d) => d.as_millis() as i64,
                Penalty::Lockout(d) => -(d.as_millis() as i64),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_then_lock() {
        let p = LoginPolicy::default();
        assert_eq!(p.account_penalty(3), Penalty::None);
        assert_eq!(p.account_penalty(4), Penalty::Delay(Duration::from_millis(500)));
        assert_eq!(p.account_penalty(5), Penalty::Delay(Duration::from_secs(1)));
        assert_eq!(p.account_penalty(9), Penalty::Delay(Duration::from_secs(16)));
        assert_eq!(p.account_penalty(10), Penalty::Lockout(Duration::from_secs(900)));
    }

    #[test]
    fn the_table_ends_in_a_lockout() {
        let p = LoginPolicy { free_failures: 1, lockout_failures: 4, ..LoginPolicy::default() };
        assert_eq!(p.account_penalty_table(), vec![0, 500, 1000, -900_000]);
    }

    #[test]
    fn delay_is_capped() {
        let p = LoginPolicy { lockout_failures: 1000, ..LoginPolicy::default() };
        assert_eq!(p.account_penalty(900), Penalty::Delay(Duration::from_secs(30)));
    }
}
