//! Payments and refunds, their states, and what a provider's answer does to them.

use chrono::{DateTime, Utc};

use super::{Money, PaymentError};

/// A charge's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentStatus {
    /// Recorded, and being submitted to the provider.
    Pending,
    /// Charged.
    Succeeded,
    /// Definitely not charged.
    Failed,
    /// The provider did not answer in time: reconciliation decides.
    Unknown,
    /// Charged, then refunded in full.
    Refunded,
    /// Charged, then refunded in part.
    PartiallyRefunded,
}

impl PaymentStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Unknown => "unknown",
            Self::Refunded => "refunded",
            Self::PartiallyRefunded => "partially_refunded",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Succeeded, Self::Failed, Self::Unknown, Self::Refunded, Self::PartiallyRefunded]
            .into_iter()
            .find(|status| status.as_str() == s)
    }

    /// Whether the outcome is still open (the provider's answer is awaited).
    pub fn is_open(self) -> bool {
        matches!(self, Self::Pending | Self::Unknown)
    }

    /// Whether money was taken and some may be given back.
    pub fn is_refundable(self) -> bool {
        matches!(self, Self::Succeeded | Self::PartiallyRefunded)
    }
}

/// A refund's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundStatus {
    /// Recorded (its amount reserved), submitted or about to be.
    Pending,
    /// Paid back.
    Succeeded,
    /// Refused for good; needs an operator.
    Failed,
}

impl RefundStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Succeeded, Self::Failed].into_iter().find(|status| status.as_str() == s)
    }
}

/// A charge of one booking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    /// Also the provider idempotency key of the charge.
    pub id: uuid::Uuid,
    /// The booking paid for.
    pub booking_id: uuid::Uuid,
    /// The payer.
    pub user_id: uuid::Uuid,
    /// What was charged.
    pub amount: Money,
    /// Sum of succeeded refunds, in the amount's currency.
    pub refunded_minor: i64,
    /// Where the charge stands.
    pub status: PaymentStatus,
    /// The provider adapter's name.
    pub provider: String,
    /// The card token (kept to resubmit a charge the provider never received).
    pub card_token: String,
    /// The provider's id of the charge, once known.
    pub provider_reference: String,
    /// Machine-readable failure reason.
    pub failure_code: String,
    /// Human-readable failure reason.
    pub failure_message: String,
    /// The Charge call's idempotency key.
    pub idempotency_key: String,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// A refund of (part of) a payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    /// Also the provider idempotency key of the refund.
    pub id: uuid::Uuid,
    /// The payment refunded.
    pub payment_id: uuid::Uuid,
    /// The refund request's id (BookingRefundRequested.refund_request_id or the
    /// Refund call's idempotency key); empty for none.
    pub request_id: String,
    /// How much.
    pub amount: Money,
    /// Where it stands.
    pub status: RefundStatus,
    /// Why it was asked for.
    pub reason: String,
    /// The provider adapter's name.
    pub provider: String,
    /// The provider's id of the refund, once known.
    pub provider_reference: String,
    /// Machine-readable failure reason.
    pub failure_code: String,
    /// Human-readable failure reason.
    pub failure_message: String,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// A provider's definite or provisional answer about a charge or a refund.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done.
    Succeeded {
        /// The provider's id.
        reference: String,
    },
    /// Refused: nothing was charged (or refunded).
    Failed {
        /// The provider's id, when it recorded the attempt.
        reference: String,
        /// Machine-readable reason, e.g. `card_declined`.
        code: String,
        /// Human-readable reason.
        message: String,
    },
    /// Accepted but not finished; ask again later.
    Processing {
        /// The provider's id.
        reference: String,
    },
}

/// What an action did to a payment or a refund.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied<S> {
    /// It moved (for a payment refunded in part again, its refunded amount grew while its
    /// status stayed): store it, and announce it if it is now settled.
    Moved {
        /// The status before.
        from: S,
        /// The status after.
        to: S,
    },
    /// Nothing changed: the action repeats or comes after what already happened (a
    /// replayed webhook, a second reconciler, a late answer: the first settlement stands),
    /// or the answer is not final.
    Unchanged,
}

/// Something that happens to a recorded charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeAction {
    /// The provider left the outcome open: no answer in time, retryable errors past the
    /// retries, or "processing". A pending payment becomes UNKNOWN, for reconciliation.
    Unanswered,
    /// The provider's answer, from the call, a lookup or a webhook.
    Answered(Outcome),
    /// A refund of this many minor units succeeded.
    Refunded(i64),
}

impl Payment {
    /// Applies `action`: the only way a payment's status, outcome or refunded amount
    /// changes. Errors are refunds the payment cannot take; callers reserve refunds with
    /// [`refund_amount`] first, so they only surface a broken invariant.
    pub fn apply(&mut self, action: &ChargeAction) -> Result<Applied<PaymentStatus>, PaymentError> {
        use PaymentStatus::*;
        let from = self.status;
        match action {
            ChargeAction::Unanswered if from == Pending => self.status = Unknown,
            ChargeAction::Answered(outcome) if from.is_open() => match outcome {
                Outcome::Succeeded { reference } => {
                    self.status = Succeeded;
                    self.provider_reference.clone_from(reference);
                }
                Outcome::Failed { reference, code, message } => {
                    self.status = Failed;
                    self.provider_reference.clone_from(reference);
                    self.failure_code.clone_from(code);
                    self.failure_message.clone_from(message);
                }
                Outcome::Processing { .. } => return Ok(Applied::Unchanged),
            },
            ChargeAction::Unanswered | ChargeAction::Answered(_) => return Ok(Applied::Unchanged),
            ChargeAction::Refunded(minor_units) => {
                if !from.is_refundable() {
                    return Err(PaymentError::NotRefundable(format!("the payment is {}", from.as_str())));
                }
                let remaining = self.amount.minor_units - self.refunded_minor;
                if *minor_units < 1 {
                    return Err(PaymentError::invalid("amount.minor_units", "must be positive"));
                }
                if *minor_units > remaining {
                    return Err(PaymentError::ExceedsRemaining { remaining });
                }
                self.refunded_minor += minor_units;
                self.status = if self.refunded_minor == self.amount.minor_units { Refunded } else { PartiallyRefunded };
            }
        }
        Ok(Applied::Moved { from, to: self.status })
    }
}

impl Refund {
    /// Applies the provider's answer: the only way a refund's status changes. Moving it
    /// to SUCCEEDED obliges the caller to apply [`ChargeAction::Refunded`] to its payment
    /// in the same transaction.
    pub fn apply(&mut self, outcome: &Outcome) -> Applied<RefundStatus> {
        let from = self.status;
        if from != RefundStatus::Pending {
            return Applied::Unchanged;
        }
        match outcome {
            Outcome::Succeeded { reference } => {
                self.status = RefundStatus::Succeeded;
                self.provider_reference.clone_from(reference);
            }
            Outcome::Failed { reference, code, message } => {
                self.status = RefundStatus::Failed;
                self.provider_reference.clone_from(reference);
                self.failure_code.clone_from(code);
                self.failure_message.clone_from(message);
            }
            Outcome::Processing { .. } => return Applied::Unchanged,
        }
        Applied::Moved { from, to: self.status }
    }
}

/// How much of a payment a refund request gets.
///
/// `reserved` is what succeeded and pending refunds already take: pending ones count,
/// so two concurrent refunds can never together exceed the amount.
pub fn refund_amount(payment: &Payment, reserved: i64, asked: Option<&Money>) -> Result<Money, PaymentError> {
    if !payment.status.is_refundable() {
        return Err(PaymentError::NotRefundable(format!("the payment is {}", payment.status.as_str())));
    }
    let remaining = payment.amount.minor_units - reserved;
    match asked {
        Some(asked) if asked.currency != payment.amount.currency => Err(PaymentError::invalid(
            "amount.currency",
            format!("must be the payment's currency, {}", payment.amount.currency),
        )),
        Some(asked) if asked.minor_units > remaining => Err(PaymentError::ExceedsRemaining { remaining }),
        Some(asked) => Ok(*asked),
        None if remaining <= 0 => Err(PaymentError::ExceedsRemaining { remaining: 0 }),
        None => Ok(payment.amount.with_minor_units(remaining)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn payment(status: PaymentStatus) -> Payment {
        Payment {
            id: uuid::Uuid::new_v4(),
            booking_id: uuid::Uuid::new_v4(),
            user_id: uuid::Uuid::new_v4(),
            amount: Money::parse("EUR", 10_000).unwrap(),
            refunded_minor: 0,
            status,
            provider: "simulated".into(),
            card_token: "tok_visa".into(),
            provider_reference: String::new(),
            failure_code: String::new(),
            failure_message: String::new(),
            idempotency_key: String::new(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn refunds_never_exceed_what_remains() {
        let p = payment(PaymentStatus::Succeeded);
        let eur = |n| Money::parse("EUR", n).unwrap();
        assert_eq!(refund_amount(&p, 0, None).unwrap(), eur(10_000), "absent means everything");
        assert_eq!(refund_amount(&p, 2_500, None).unwrap(), eur(7_500), "everything that remains");
        assert_eq!(refund_amount(&p, 2_500, Some(&eur(7_500))).unwrap(), eur(7_500));
        assert!(matches!(
            refund_amount(&p, 2_500, Some(&eur(7_501))),
            Err(PaymentError::ExceedsRemaining { remaining: 7_500 })
        ));
        assert!(matches!(refund_amount(&p, 10_000, None), Err(PaymentError::ExceedsRemaining { remaining: 0 })));
        let usd = Money::parse("USD", 1).unwrap();
        assert!(matches!(refund_amount(&p, 0, Some(&usd)), Err(PaymentError::Invalid(_))));
    }

    #[test]
    fn only_charged_payments_are_refunded() {
        for status in [PaymentStatus::Pending, PaymentStatus::Unknown, PaymentStatus::Failed, PaymentStatus::Refunded] {
            assert!(matches!(refund_amount(&payment(status), 0, None), Err(PaymentError::NotRefundable(_))));
        }
        assert!(refund_amount(&payment(PaymentStatus::PartiallyRefunded), 10, None).is_ok());
        for s in ["pending", "succeeded", "failed", "unknown", "refunded", "partially_refunded"] {
            assert_eq!(PaymentStatus::parse(s).unwrap().as_str(), s);
        }
    }
}

/// The charge and refund state machines under every order of events: the provider's
/// answers, webhooks out of order and replayed, refunds asked for and settled, and
/// reconciliation (which is the same answers, looked up later).
#[cfg(test)]
mod machine {
    use std::collections::{BTreeSet, VecDeque};

    use proptest::prelude::*;

    use super::tests::payment;
    use super::*;

    use PaymentStatus as P;
    use RefundStatus as R;

    /// Every move a charge may make, and nothing else.
    const CHARGE_MOVES: [(P, P); 9] = [
        (P::Pending, P::Unknown),
        (P::Pending, P::Succeeded),
        (P::Pending, P::Failed),
        (P::Unknown, P::Succeeded),
        (P::Unknown, P::Failed),
        (P::Succeeded, P::PartiallyRefunded),
        (P::Succeeded, P::Refunded),
        (P::PartiallyRefunded, P::PartiallyRefunded),
        (P::PartiallyRefunded, P::Refunded),
    ];
    /// Every move a refund may make.
    const REFUND_MOVES: [(R, R); 2] = [(R::Pending, R::Succeeded), (R::Pending, R::Failed)];

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Answer {
        Succeeded,
        Failed,
        Processing,
    }

    impl Answer {
        fn outcome(self) -> Outcome {
            match self {
                Self::Succeeded => Outcome::Succeeded { reference: "ch_1".into() },
                Self::Failed => {
                    Outcome::Failed { reference: "ch_1".into(), code: "card_declined".into(), message: "no".into() }
                }
                Self::Processing => Outcome::Processing { reference: "ch_1".into() },
            }
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// The provider answers about the charge (the call, a lookup or a webhook).
        Charge(Answer),
        /// The provider leaves the charge open (timeout, retries exhausted).
        Unanswered,
        /// A refund is asked for; `None` for everything that remains.
        AskRefund(Option<i64>),
        /// The provider answers about refund `n % refunds`.
        Refund(usize, Answer),
        /// Message `n % delivered` arrives again.
        Replay(usize),
    }

    /// A message that reached the state machines, and can arrive again.
    #[derive(Debug, Clone)]
    enum Delivered {
        Charge(ChargeAction),
        Refund(usize, Outcome),
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Move {
        Charge(P, P),
        Refund(R, R),
    }

    /// One payment and its refunds, driven the way `service/` drives them.
    #[derive(Debug, Clone)]
    struct Ledger {
        payment: Payment,
        refunds: Vec<Refund>,
        delivered: Vec<Delivered>,
        charged: usize,
    }

    impl Ledger {
        fn new() -> Self {
            Self { payment: payment(P::Pending), refunds: Vec::new(), delivered: Vec::new(), charged: 0 }
        }

        fn reserved(&self) -> i64 {
            let live = |r: &&Refund| r.status != R::Failed;
            self.refunds.iter().filter(live).map(|r| r.amount.minor_units).sum()
        }

        /// Delivers `message`; returns the moves it made.
        fn deliver(&mut self, message: Delivered) -> Result<Vec<Move>, TestCaseError> {
            let mut moves = Vec::new();
            match &message {
                Delivered::Charge(action) => {
                    let before = self.payment.clone();
                    match self.payment.apply(action).map_err(|e| TestCaseError::fail(e.to_string()))? {
                        Applied::Moved { from, to } => moves.push(Move::Charge(from, to)),
                        Applied::Unchanged => prop_assert_eq!(&self.payment, &before, "unchanged means unchanged"),
                    }
                }
                Delivered::Refund(index, outcome) => {
                    let refund = &mut self.refunds[*index];
                    let before = refund.clone();
                    match refund.apply(outcome) {
                        Applied::Moved { from, to } => {
                            moves.push(Move::Refund(from, to));
                            if to == R::Succeeded {
                                // As settle_refund_in does, in the same transaction.
                                let refunded = ChargeAction::Refunded(refund.amount.minor_units);
                                match self.payment.apply(&refunded) {
                                    Ok(Applied::Moved { from, to }) => moves.push(Move::Charge(from, to)),
                                    other => prop_assert!(false, "a reserved refund was refused: {other:?}"),
                                }
                            }
                        }
                        Applied::Unchanged => prop_assert_eq!(refund, &before, "unchanged means unchanged"),
                    }
                }
            }
            self.charged += moves.iter().filter(|m| matches!(m, Move::Charge(_, P::Succeeded))).count();
            self.delivered.push(message);
            Ok(moves)
        }

        fn step(&mut self, op: &Op) -> Result<Vec<Move>, TestCaseError> {
            let before = self.clone();
            let moves = match *op {
                Op::Charge(answer) => self.deliver(Delivered::Charge(ChargeAction::Answered(answer.outcome())))?,
                Op::Unanswered => self.deliver(Delivered::Charge(ChargeAction::Unanswered))?,
                Op::AskRefund(asked) => {
                    let asked = asked.map(|n| self.payment.amount.with_minor_units(n));
                    if let Ok(amount) = refund_amount(&self.payment, self.reserved(), asked.as_ref()) {
                        self.refunds.push(refund(self.payment.id, amount));
                    }
                    Vec::new()
                }
                Op::Refund(_, _) if self.refunds.is_empty() => Vec::new(),
                Op::Refund(n, answer) => self.deliver(Delivered::Refund(n % self.refunds.len(), answer.outcome()))?,
                Op::Replay(_) if self.delivered.is_empty() => Vec::new(),
                Op::Replay(n) => {
                    let moves = self.deliver(self.delivered[n % self.delivered.len()].clone())?;
                    prop_assert!(moves.is_empty(), "a replay moved {moves:?}");
                    moves
                }
            };
            self.check(&before, &moves)?;
            Ok(moves)
        }

        /// The invariants, after a step from `before` that made `moves`.
        fn check(&self, before: &Self, moves: &[Move]) -> Result<(), TestCaseError> {
            let p = &self.payment;
            for m in moves {
                let legal = match *m {
                    Move::Charge(from, to) => CHARGE_MOVES.contains(&(from, to)),
                    Move::Refund(from, to) => REFUND_MOVES.contains(&(from, to)),
                };
                prop_assert!(legal, "illegal move {m:?}");
            }
            prop_assert!(self.charged <= 1, "charged {} times", self.charged);
            let succeeded: i64 =
                self.refunds.iter().filter(|r| r.status == R::Succeeded).map(|r| r.amount.minor_units).sum();
            prop_assert_eq!(p.refunded_minor, succeeded, "the refunded amount is the succeeded refunds");
            prop_assert!(self.reserved() <= p.amount.minor_units, "refunds reserve more than was charged");
            let expected = match p.refunded_minor {
                0 => p.status,
                n if n < p.amount.minor_units => P::PartiallyRefunded,
                _ => P::Refunded,
            };
            prop_assert_eq!(p.status, expected, "the status matches the refunded amount");
            prop_assert!(self.refunds.is_empty() || self.charged == 1, "a refund of a charge never made");
            // Settled stays settled, final stays final.
            let was = before.payment.status;
            prop_assert!(was.is_open() || !p.status.is_open(), "{was:?} reopened as {:?}", p.status);
            prop_assert!(!matches!(was, P::Failed | P::Refunded) || p.status == was, "{was:?} left for {:?}", p.status);
            for (old, new) in before.refunds.iter().zip(&self.refunds) {
                prop_assert!(old.status == R::Pending || old == new, "a settled refund changed: {old:?} -> {new:?}");
            }
            Ok(())
        }
    }

    fn refund(payment_id: uuid::Uuid, amount: Money) -> Refund {
        Refund {
            id: uuid::Uuid::new_v4(),
            payment_id,
            request_id: String::new(),
            amount,
            status: R::Pending,
            reason: String::new(),
            provider: "simulated".into(),
            provider_reference: String::new(),
            failure_code: String::new(),
            failure_message: String::new(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn answer() -> impl Strategy<Value = Answer> {
        prop_oneof![Just(Answer::Succeeded), Just(Answer::Failed), Just(Answer::Processing)]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            answer().prop_map(Op::Charge),
            Just(Op::Unanswered),
            // Small parts, and amounts around the whole (10,000) and beyond it.
            proptest::option::of(prop_oneof![1..=3_000i64, 1..=12_000i64]).prop_map(Op::AskRefund),
            (any::<usize>(), answer()).prop_map(|(n, a)| Op::Refund(n, a)),
            any::<usize>().prop_map(Op::Replay),
        ]
    }

    proptest! {
        #[test]
        fn no_order_of_events_breaks_the_invariants(ops in proptest::collection::vec(op(), 1..80)) {
            let mut ledger = Ledger::new();
            for op in &ops {
                ledger.step(op)?;
            }
        }
    }

    /// Every legal move is reachable: a breadth-first walk over the operations from a
    /// new charge meets each of them (and, through `check`, nothing else).
    #[test]
    fn every_legal_move_is_reachable() {
        let ops = [
            Op::Charge(Answer::Succeeded),
            Op::Charge(Answer::Failed),
            Op::Unanswered,
            Op::AskRefund(Some(4_000)),
            Op::AskRefund(None),
            Op::Refund(0, Answer::Succeeded),
            Op::Refund(1, Answer::Succeeded),
            Op::Refund(1, Answer::Failed),
        ];
        let key = |l: &Ledger| {
            let refunds: Vec<_> = l.refunds.iter().map(|r| (r.status.as_str(), r.amount.minor_units)).collect();
            (l.payment.status.as_str(), l.payment.refunded_minor, refunds)
        };
        let mut seen = Vec::new();
        let mut visited = BTreeSet::new();
        let mut queue = VecDeque::from([Ledger::new()]);
        while let Some(ledger) = queue.pop_front() {
            // Failed refunds free their reservation for new ones: three are enough.
            if !visited.insert(key(&ledger)) || ledger.refunds.len() > 3 {
                continue;
            }
            for op in &ops {
                let mut next = ledger.clone();
                seen.extend(next.step(op).unwrap_or_else(|e| panic!("{op:?} after {ledger:?}: {e}")));
                seen.dedup();
                queue.push_back(next);
            }
        }
        let unreached: Vec<Move> = CHARGE_MOVES
            .iter()
            .map(|&(f, t)| Move::Charge(f, t))
            .chain(REFUND_MOVES.iter().map(|&(f, t)| Move::Refund(f, t)))
            .filter(|m| !seen.contains(m))
            .collect();
        assert!(unreached.is_empty(), "never reached: {unreached:?}");
    }

    #[test]
    fn a_payment_takes_no_refund_it_cannot_give() {
        let mut p = payment(P::Succeeded);
        assert!(matches!(p.apply(&ChargeAction::Refunded(10_001)), Err(PaymentError::ExceedsRemaining { .. })));
        assert!(matches!(p.apply(&ChargeAction::Refunded(0)), Err(PaymentError::Invalid(_))));
        for status in [P::Pending, P::Unknown, P::Failed, P::Refunded] {
            let mut p = payment(status);
            assert!(matches!(p.apply(&ChargeAction::Refunded(1)), Err(PaymentError::NotRefundable(_))), "{status:?}");
        }
        assert_eq!(p.status, P::Succeeded, "a refused action changes nothing");
    }
}
