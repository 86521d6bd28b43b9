//! What one request leaves in a history: the six words every lane folds into its hash,
//! written in one place for a paired request and for one legacy answered alone.

/// One request's outcome as the history records it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RequestLine {
    /// Scenario time, µs.
    pub t: u64,
    /// The request's number.
    pub index: u64,
    /// Its entity key.
    pub entity: u64,
    /// Routed to the new stack.
    pub routed_new: bool,
    /// The user got the new stack's answer.
    pub served_new: bool,
    /// A stack failed: the new stack's call for a paired request; legacy's after a
    /// rollback, when legacy answers alone.
    pub error: bool,
    /// The new stack's call timed out.
    pub timeout: bool,
    /// The user got no answer.
    pub user_failed: bool,
    /// Legacy's decision (0 where the answer has none); 7 bits.
    pub legacy_decision: u32,
    /// The new stack's decision as it stated it (0 where none or after a rollback).
    pub new_decision: u32,
    /// Legacy's headline score.
    pub legacy_score: f32,
    /// The new stack's headline score (0 after a rollback).
    pub new_score: f32,
    /// The user's time, ms: end to end for a paired request, legacy's alone after a rollback.
    pub user_ms: f64,
}

impl RequestLine {
    /// The six words: time, number, entity, flags (bit 0 routed new, 1 served new, 2
    /// error, 3 timeout, 4 user failed, 5-11 legacy's decision, 12 up the new one's),
    /// both scores' bits (legacy's high), the user's time's bits.
    pub fn words(&self) -> [u64; 6] {
        let flags = u64::from(self.routed_new)
            | u64::from(self.served_new) << 1
            | u64::from(self.error) << 2
            | u64::from(self.timeout) << 3
            | u64::from(self.user_failed) << 4
            | u64::from(self.legacy_decision) << 5
            | u64::from(self.new_decision) << 12;
        let scores = u64::from(self.legacy_score.to_bits()) << 32 | u64::from(self.new_score.to_bits());
        [self.t, self.index, self.entity, flags, scores, self.user_ms.to_bits()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_part_has_its_own_bits() {
        let line = RequestLine {
            t: 7,
            index: 3,
            entity: 99,
            routed_new: true,
            served_new: true,
            error: false,
            timeout: true,
            user_failed: false,
            legacy_decision: 127,
            new_decision: 5,
            legacy_score: 0.25,
            new_score: -1.5,
            user_ms: 12.5,
        };
        let [t, index, entity, flags, scores, ms] = line.words();
        assert_eq!((t, index, entity), (7, 3, 99));
        assert_eq!(flags & 0b11111, 0b01011);
        assert_eq!((flags >> 5) & 127, 127, "legacy's decision in its seven bits");
        assert_eq!(flags >> 12, 5, "the new decision above, untouched by legacy's");
        assert_eq!((f32::from_bits((scores >> 32) as u32), f32::from_bits(scores as u32)), (0.25, -1.5));
        assert_eq!(f64::from_bits(ms), 12.5);
        // Each flag alone moves its own bit.
        let alone = |l: RequestLine| l.words()[3];
        let none = RequestLine::default();
        assert_eq!(alone(RequestLine { error: true, ..none }), 1 << 2);
        assert_eq!(alone(RequestLine { user_failed: true, ..none }), 1 << 4);
        assert_eq!(alone(RequestLine { served_new: true, ..none }), 1 << 1);
    }

    #[test]
    fn a_legacy_answer_alone_leaves_the_new_half_empty() {
        let alone = RequestLine { legacy_decision: 1, legacy_score: 0.75, user_ms: 3.0, ..RequestLine::default() };
        let [_, _, _, flags, scores, _] = alone.words();
        assert_eq!(flags, 1 << 5);
        assert_eq!(scores as u32, 0, "no new score");
        assert_eq!(scores >> 32, u64::from(0.75f32.to_bits()));
    }
}
