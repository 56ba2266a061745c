//! Properties of the ordering: sorted by preference, each group of equal
//! preference a permutation of the input's, nothing invented or lost but
//! duplicates.

// Test helpers panic on purpose: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};

use postel_mx::MxRecord;
use postel_mx::route::order;
use proptest::prelude::*;

proptest! {
    #[test]
    fn order_sorts_and_only_removes_duplicates(
        records in prop::collection::vec((0u16..4, "[a-e]\\.example"), 0..12),
        seed in any::<u64>(),
    ) {
        let input: Vec<MxRecord> = records
            .iter()
            .map(|(p, e)| MxRecord { preference: *p, exchange: e.clone() })
            .collect();
        let mut state = seed | 1;
        let mut random = move |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            usize::try_from(state % n as u64).unwrap()
        };
        let out = order(input.clone(), &mut random);
        // Sorted by preference.
        prop_assert!(out.windows(2).all(|w| w[0].preference <= w[1].preference));
        // No exchange twice, and each kept at its best preference.
        let names: BTreeSet<_> = out.iter().map(|r| r.exchange.clone()).collect();
        prop_assert_eq!(names.len(), out.len());
        let mut best: BTreeMap<String, u16> = BTreeMap::new();
        for r in &input {
            let e = best.entry(r.exchange.clone()).or_insert(r.preference);
            *e = (*e).min(r.preference);
        }
        let got: BTreeMap<String, u16> = out.iter().map(|r| (r.exchange.clone(), r.preference)).collect();
        prop_assert_eq!(got, best, "nothing invented or lost");
    }
}
