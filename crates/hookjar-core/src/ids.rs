//! Ids derived from a row's sequence number.
//!
//! A store that numbers its rows can give each one an id that is a keyed permutation
//! of its number, written like every other id (13 base-36 characters, S3, see
//! [`crate::webhook::webhook_id`]). The ids look as random as drawn ones — without the
//! key, consecutive rows' ids share nothing — yet they are unique by construction and
//! the number comes back from the id ([`SeqIds::seq`]). So the store needs no index on
//! the id: an index of random ids takes each insert at a random place, and that costs
//! the SQLite store ~11 % of its deliveries per second (docs/performance.md).
//!
//! The permutation is a four-round Feistel network on the 64-bit number (two 32-bit
//! halves), whose round function mixes the right half with a round key (SplitMix64's
//! finaliser). It is not encryption: it hides no secret worth having (the ids were
//! never secret); it only has to be a bijection that scatters.

use crate::webhook::webhook_id;

/// The permutation of one store (its key is kept with the data).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SeqIds {
    rounds: [u64; 4],
}

impl std::fmt::Debug for SeqIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SeqIds([key])")
    }
}

/// SplitMix64's finaliser: every input bit reaches every output bit.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl SeqIds {
    /// The permutation for `key` (any 64 bits; a store draws them once).
    pub fn new(key: u64) -> SeqIds {
        let mut rounds = [0; 4];
        let mut state = key;
        for r in &mut rounds {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            *r = mix(state);
        }
        SeqIds { rounds }
    }

    fn round(half: u32, key: u64) -> u32 {
        mix(u64::from(half) ^ key) as u32
    }

    /// The permuted number.
    pub fn permute(&self, n: u64) -> u64 {
        let (mut l, mut r) = ((n >> 32) as u32, n as u32);
        for &k in &self.rounds {
            (l, r) = (r, l ^ Self::round(r, k));
        }
        (u64::from(l) << 32) | u64::from(r)
    }

    /// The inverse of [`SeqIds::permute`].
    pub fn unpermute(&self, n: u64) -> u64 {
        let (mut l, mut r) = ((n >> 32) as u32, n as u32);
        for &k in self.rounds.iter().rev() {
            (l, r) = (r ^ Self::round(l, k), l);
        }
        (u64::from(l) << 32) | u64::from(r)
    }

    /// The id of row `seq`.
    pub fn id(&self, seq: u64) -> String {
        webhook_id(self.permute(seq))
    }

    /// The row number `id` names, if it is one of this permutation's ids (13
    /// base-36 characters worth at most 2^64 − 1). Any other string gives `None`.
    pub fn seq(&self, id: &str) -> Option<u64> {
        parse_id(id).map(|n| self.unpermute(n))
    }
}

/// The number a 13-character base-36 id spells (the inverse of
/// [`crate::webhook::webhook_id`]), or `None` for any other string.
pub fn parse_id(id: &str) -> Option<u64> {
    if id.len() != 13 {
        return None;
    }
    let mut n: u128 = 0;
    for b in id.bytes() {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'z' => b - b'a' + 10,
            _ => return None,
        };
        n = n * 36 + u128::from(d);
    }
    u64::try_from(n).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::is_valid_id;
    use proptest::prelude::*;

    proptest! {
        /// Every number's id is an S3 id of 13 characters and gives the number back.
        #[test]
        fn an_id_gives_its_seq_back(key: u64, seq: u64) {
            let ids = SeqIds::new(key);
            let id = ids.id(seq);
            prop_assert_eq!(id.len(), 13);
            prop_assert!(is_valid_id(&id));
            prop_assert_eq!(ids.seq(&id), Some(seq));
            prop_assert_eq!(ids.unpermute(ids.permute(seq)), seq);
        }

        /// A 13-character id parses exactly when it is one `webhook_id` writes, and
        /// then names the row whose id it is.
        #[test]
        fn an_id_parses_when_webhook_id_could_have_written_it(
            key: u64,
            id in "[0-9a-z]{13}",
        ) {
            let ids = SeqIds::new(key);
            match ids.seq(&id) {
                Some(seq) => prop_assert_eq!(ids.id(seq), id),
                None => prop_assert!(id.as_str() > "3w5e11264sgsf"),
            }
        }

        /// Other strings never parse.
        #[test]
        fn other_strings_do_not_parse(id in "\\PC{0,20}") {
            prop_assume!(!(id.len() == 13 && is_valid_id(&id)));
            prop_assert_eq!(parse_id(&id), None);
        }

        /// Neighbouring rows get unrelated ids: they agree on characters 4–7 no more
        /// often than random ids would (one time in 1,679,616; the first character of
        /// any 13-character id of 64 bits is 0–3, so it is left out).
        #[test]
        fn neighbours_look_unrelated(key: u64, start in 0u64..1 << 40) {
            let ids = SeqIds::new(key);
            let alike = (start..start + 360)
                .filter(|&s| ids.id(s)[3..7] == ids.id(s + 1)[3..7])
                .count();
            prop_assert!(alike <= 1, "{alike} of 360 neighbours agree on characters 4-7");
        }
    }

    #[test]
    fn the_largest_id_is_u64_max() {
        assert_eq!(webhook_id(u64::MAX), "3w5e11264sgsf");
        assert_eq!(parse_id("3w5e11264sgsf"), Some(u64::MAX));
        assert_eq!(parse_id("3w5e11264sgsg"), None);
        assert_eq!(parse_id("0000000000000"), Some(0));
    }

    #[test]
    fn keys_give_different_permutations() {
        let (a, b) = (SeqIds::new(1), SeqIds::new(2));
        let same = (0..1000).filter(|&s| a.id(s) == b.id(s)).count();
        assert_eq!(same, 0);
        // The first rows' ids do not look like counters.
        assert_ne!(a.id(1)[..6], a.id(2)[..6]);
    }
}
