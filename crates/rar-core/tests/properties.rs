//! Property tests: every order is a permutation, `r` is monotone and in [0, 1], schedules hit
//! their end points, target-aware rows are consistent with the order.

use proptest::prelude::*;
use rar_core::scan::validate_permutation;
use rar_core::{
    GuidanceSchedule, OrderSampler, RandomnessSchedule, ScanOrder, SequenceLayout, WarmupCosineLr,
};

fn scan_order() -> impl Strategy<Value = ScanOrder> {
    prop::sample::select(ScanOrder::ALL.to_vec())
}

proptest! {
    #[test]
    fn scan_orders_are_permutations(order in scan_order(), side in 1usize..40) {
        let o = order.positions(side).unwrap();
        prop_assert!(validate_permutation(&o, side * side).is_ok());
    }

    #[test]
    fn sampled_orders_are_permutations(
        seed in any::<u64>(), step in any::<u64>(), key in any::<u64>(),
        n in 1usize..300, ratio in 0.0f64..=1.0,
    ) {
        let s = OrderSampler::raster(seed, n).unwrap();
        let o = s.sample(step, key, ratio);
        prop_assert!(validate_permutation(&o.order, n).is_ok());
        prop_assert_eq!(&o, &s.sample(step, key, ratio));
        if !o.is_random {
            prop_assert_eq!(o.order, (0..n).collect::<Vec<_>>());
        }
    }

    #[test]
    fn ratio_is_monotone_and_bounded(start in 0u64..10_000, len in 0u64..10_000, a in 0u64..30_000, b in 0u64..30_000) {
        let s = RandomnessSchedule::new(start, start + len).unwrap();
        let (lo, hi) = (a.min(b), a.max(b));
        let (r_lo, r_hi) = (s.ratio(lo), s.ratio(hi));
        prop_assert!((0.0..=1.0).contains(&r_lo) && (0.0..=1.0).contains(&r_hi));
        prop_assert!(r_hi <= r_lo);
        prop_assert_eq!(s.ratio(start + len), 0.0);
        if start > 0 {
            prop_assert_eq!(s.ratio(start - 1), 1.0);
        }
        prop_assert_eq!(s.ratio(start), if len == 0 { 0.0 } else { 1.0 });
    }

    #[test]
    fn lr_hits_its_end_points(base in 1e-6f64..1.0, frac in 0.0f64..1.0, warmup in 0u64..1000, extra in 1u64..1000) {
        let end = base * frac;
        let s = WarmupCosineLr::new(base, end, warmup, warmup + extra).unwrap();
        if warmup > 0 {
            prop_assert_eq!(s.lr_at(0), 0.0);
        }
        prop_assert!((s.lr_at(warmup) - base).abs() <= 1e-12 * base);
        prop_assert!((s.lr_at(warmup + extra) - end).abs() <= 1e-12 * base);
        for k in 0..warmup + extra {
            let lr = s.lr_at(k);
            prop_assert!(lr >= 0.0 && lr <= base * (1.0 + 1e-12));
        }
    }

    #[test]
    fn guidance_starts_at_one_and_stays_below_g(g in 1.0f32..30.0, p in 0.1f32..4.0, n in 2usize..512) {
        let s = GuidanceSchedule::power_cosine(g, p).unwrap();
        let scales = s.scales(n);
        prop_assert_eq!(scales[0], 1.0);
        for w in scales.windows(2) {
            prop_assert!(w[1] >= w[0] - 1e-6);
        }
        prop_assert!(*scales.last().unwrap() <= g + 1e-4);
        let constant = GuidanceSchedule::power_cosine(g, 0.0).unwrap();
        prop_assert!(constant.scales(n).iter().all(|&v| (v - g).abs() <= 1e-5 * g));
    }

    #[test]
    fn every_token_is_targeted_exactly_once(seed in any::<u64>(), n in 1usize..100) {
        let o = OrderSampler::raster(seed, n).unwrap().sample(0, 0, 1.0).order;
        let layout = SequenceLayout::new(o.clone()).unwrap();
        let slots = layout.slots();
        prop_assert_eq!(slots.len(), n + 2);
        let mut targets: Vec<usize> = slots.iter().filter_map(|s| s.target_row).map(|r| r - 2).collect();
        // slots 1..=N each predict one distinct token: the next in the order
        prop_assert_eq!(&targets, &o);
        targets.sort_unstable();
        prop_assert_eq!(targets, (0..n).collect::<Vec<_>>());
        let mut positions: Vec<usize> = slots.iter().map(|s| s.position_row).collect();
        positions.sort_unstable();
        prop_assert_eq!(positions, (0..n + 2).collect::<Vec<_>>());
    }
}
