//! A circuit breaker's state machine, pure (time is passed in): closed until too many
//! calls fail (in a row, or as a share of a window), then open, failing calls at once
//! for a cool-down, then half-open, letting one trial call decide whether to close.
//!
//! Hand-written rather than taken from `failsafe`: its half-open state lets every call
//! through at once (a stampede on a backend just coming back) and its clock cannot be
//! driven by tests; `tower-resilience` changes its API every few weeks.

use std::time::{Duration, Instant};

use crate::config::BreakerSettings;

/// What the breaker is doing, as the `gateway_circuit_breaker_state` gauge shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed = 0,
    HalfOpen = 1,
    Open = 2,
}

/// Permission to make one call; hand it back with the call's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Permit {
    /// A normal call while closed.
    Normal,
    /// The one trial call while half-open.
    Trial,
}

#[derive(Debug)]
enum Inner {
    Closed { consecutive: u32, window_start: Instant, calls: u32, failures: u32 },
    Open { until: Instant },
    HalfOpen { trial_started: Instant },
}

/// One backend's breaker.
#[derive(Debug)]
pub struct Breaker {
    settings: BreakerSettings,
    inner: Inner,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(settings: BreakerSettings, now: Instant) -> Self {
        Self { settings, inner: closed(now) }
    }

    /// The current state.
    pub fn state(&self) -> State {
        match self.inner {
            Inner::Closed { .. } => State::Closed,
            Inner::Open { .. } => State::Open,
            Inner::HalfOpen { .. } => State::HalfOpen,
        }
    }

    /// A permit to call, or how long until the breaker may let a call through.
    pub fn acquire(&mut self, now: Instant) -> Result<Permit, Duration> {
        let cool_down = self.settings.cool_down;
        match self.inner {
            Inner::Closed { .. } => Ok(Permit::Normal),
            Inner::Open { until } if now < until => Err(until - now),
            Inner::Open { .. } => {
                self.inner = Inner::HalfOpen { trial_started: now };
                Ok(Permit::Trial)
            }
            // A trial whose outcome never came (its caller went away) must not wedge
            // the breaker half-open: after a cool-down another call tries.
            Inner::HalfOpen { trial_started } if now.duration_since(trial_started) >= cool_down => {
                self.inner = Inner::HalfOpen { trial_started: now };
                Ok(Permit::Trial)
            }
            Inner::HalfOpen { trial_started } => Err(cool_down - now.duration_since(trial_started)),
        }
    }

    /// Records the outcome of a permitted call (`failed`: the backend is down or too
    /// slow, not a business error). Outcomes of calls let through before the state
    /// changed are ignored.
    pub fn record(&mut self, permit: Permit, failed: bool, now: Instant) {
        let s = self.settings;
        match (&mut self.inner, permit) {
            (Inner::HalfOpen { .. }, Permit::Trial) => {
                self.inner = if failed { Inner::Open { until: now + s.cool_down } } else { closed(now) };
            }
            (Inner::Closed { consecutive, window_start, calls, failures }, Permit::Normal) => {
                if now.duration_since(*window_start) >= s.window {
                    (*window_start, *calls, *failures) = (now, 0, 0);
                }
                *calls += 1;
                if failed {
                    *consecutive += 1;
                    *failures += 1;
                } else {
                    *consecutive = 0;
                }
                let ratio_tripped =
                    *calls >= s.min_calls && f64::from(*failures) >= s.failure_ratio * f64::from(*calls);
                if *consecutive >= s.consecutive_failures || ratio_tripped {
                    self.inner = Inner::Open { until: now + s.cool_down };
                }
            }
            _ => {}
        }
    }

    /// Hands back a permit whose call said nothing about the backend (it ran out of time on
    /// work its caller chose): not counted either way; a trial ended so lets the next call
    /// try at once.
    pub fn release(&mut self, permit: Permit, now: Instant) {
        if let (Inner::HalfOpen { .. }, Permit::Trial) = (&self.inner, permit) {
            self.inner = Inner::HalfOpen { trial_started: now.checked_sub(self.settings.cool_down).unwrap_or(now) };
        }
    }
}

fn closed(now: Instant) -> Inner {
    Inner::Closed { consecutive: 0, window_start: now, calls: 0, failures: 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn settings() -> BreakerSettings {
        BreakerSettings {
            consecutive_failures: 3,
            failure_ratio: 0.5,
            min_calls: 10,
            window: 1000 * MS,
            cool_down: 100 * MS,
        }
    }

    fn call(b: &mut Breaker, failed: bool, now: Instant) {
        let permit = b.acquire(now).expect("permitted");
        b.record(permit, failed, now);
    }

    #[test]
    fn consecutive_failures_open_it_and_a_success_resets_the_count() {
        let t0 = Instant::now();
        let mut b = Breaker::new(settings(), t0);
        call(&mut b, true, t0);
        call(&mut b, true, t0);
        call(&mut b, false, t0);
        call(&mut b, true, t0);
        call(&mut b, true, t0);
        assert_eq!(b.state(), State::Closed);
        call(&mut b, true, t0 + MS);
        assert_eq!(b.state(), State::Open);
        assert_eq!(b.acquire(t0 + 31 * MS), Err(70 * MS), "fails fast for the rest of the cool-down");
    }

    #[test]
    fn a_failure_ratio_over_the_window_opens_it_once_enough_calls_were_made() {
        let t0 = Instant::now();
        let mut b = Breaker::new(settings(), t0);
        // Never 3 in a row, but a third to a half of them fail.
        for i in 0..9 {
            call(&mut b, i % 2 == 1, t0);
        }
        assert_eq!(b.state(), State::Closed, "9 calls are below min_calls");
        call(&mut b, false, t0);
        call(&mut b, true, t0);
        assert_eq!(b.state(), State::Closed, "5 of 11 failed");
        call(&mut b, true, t0);
        assert_eq!(b.state(), State::Open, "6 of 12 failed");
    }

    #[test]
    fn the_window_forgets_old_failures() {
        let t0 = Instant::now();
        let mut b = Breaker::new(settings(), t0);
        for i in 0..9 {
            call(&mut b, i % 3 != 2, t0);
        }
        let later = t0 + 1000 * MS;
        for i in 0..10 {
            call(&mut b, i % 2 == 1 && i < 8, later);
        }
        assert_eq!(b.state(), State::Closed, "4 of 10 in the new window; 10 of 19 over both");
    }

    #[test]
    fn after_the_cool_down_one_trial_decides() {
        let t0 = Instant::now();
        let mut b = Breaker::new(settings(), t0);
        for _ in 0..3 {
            call(&mut b, true, t0);
        }
        let t1 = t0 + 100 * MS;
        let trial = b.acquire(t1).unwrap();
        assert_eq!((trial, b.state()), (Permit::Trial, State::HalfOpen));
        assert_eq!(b.acquire(t1 + 10 * MS), Err(90 * MS), "only one trial at a time");
        b.record(trial, true, t1 + 20 * MS);
        assert_eq!(b.state(), State::Open, "a failed trial opens it again");
        assert!(b.acquire(t1 + 119 * MS).is_err());

        let trial = b.acquire(t1 + 120 * MS).unwrap();
        b.record(trial, false, t1 + 121 * MS);
        assert_eq!(b.state(), State::Closed);
        assert_eq!(b.acquire(t1 + 122 * MS), Ok(Permit::Normal));
    }

    #[test]
    fn released_calls_count_neither_way() {
        let t0 = Instant::now();
        let mut b = Breaker::new(settings(), t0);
        call(&mut b, true, t0);
        call(&mut b, true, t0);
        for _ in 0..10 {
            let permit = b.acquire(t0).unwrap();
            b.release(permit, t0);
        }
        assert_eq!(b.state(), State::Closed, "no failure counted");
        call(&mut b, true, t0);
        assert_eq!(b.state(), State::Open, "nor a success: the third failure in a row opens it");

        let trial = b.acquire(t0 + 100 * MS).unwrap();
        b.release(trial, t0 + 150 * MS);
        assert_eq!(b.state(), State::HalfOpen);
        assert_eq!(b.acquire(t0 + 150 * MS), Ok(Permit::Trial), "the next call tries at once");
    }

    #[test]
    fn late_outcomes_and_lost_trials_do_not_confuse_it() {
        let t0 = Instant::now();
        let mut b = Breaker::new(settings(), t0);
        let slow = b.acquire(t0).unwrap();
        for _ in 0..3 {
            call(&mut b, true, t0);
        }
        b.record(slow, false, t0 + MS);
        assert_eq!(b.state(), State::Open, "a call let through before it opened does not close it");

        let lost = b.acquire(t0 + 100 * MS).unwrap();
        assert_eq!(lost, Permit::Trial);
        // Its caller went away without an outcome: after another cool-down, a new trial.
        let trial = b.acquire(t0 + 200 * MS).unwrap();
        assert_eq!(trial, Permit::Trial);
        b.record(Permit::Normal, false, t0 + 201 * MS);
        assert_eq!(b.state(), State::HalfOpen, "only the trial's outcome counts");
        b.record(trial, false, t0 + 202 * MS);
        assert_eq!(b.state(), State::Closed);
    }
}
