//! A small latency sketch for rollups: counts in geometric buckets (each 25 % wider
//! than the last, from 1 ms to about 20 minutes), so p50 and p95 come out within one
//! bucket's width (±12 %) and two sketches merge by adding counts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

const FACTOR: f64 = 1.25;
pub const BUCKETS: usize = 64;

/// One character per bucket, for the target list's compact latency history.
pub const BUCKET_CHARS: &[u8; BUCKETS] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Bucket index → count, sparse.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sketch(BTreeMap<u8, u64>);

/// The bucket a duration falls in.
pub fn bucket_of(ms: f64) -> u8 {
    if ms <= 1.0 {
        return 0;
    }
    ((ms.ln() / FACTOR.ln()).ceil() as usize).min(BUCKETS - 1) as u8
}

/// The middle of a bucket, geometrically.
pub fn value_of(bucket: u8) -> f64 {
    if bucket == 0 {
        return 1.0;
    }
    FACTOR.powf(bucket as f64 - 0.5)
}

impl Sketch {
    pub fn add(&mut self, ms: f64) {
        if ms.is_finite() && ms >= 0.0 {
            *self.0.entry(bucket_of(ms)).or_default() += 1;
        }
    }

    pub fn merge(&mut self, other: &Sketch) {
        for (b, n) in &other.0 {
            *self.0.entry(*b).or_default() += n;
        }
    }

    pub fn count(&self) -> u64 {
        self.0.values().sum()
    }

    /// The value at quantile `q` (0–1), in milliseconds.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (b, n) in &self.0 {
            seen += n;
            if seen >= rank {
                return Some((value_of(*b) * 10.0).round() / 10.0);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_characters_round_trip_within_twelve_percent() {
        for ms in [1.5, 80.0, 105.0, 950.0, 4321.0, 60_000.0] {
            let c = BUCKET_CHARS[bucket_of(ms) as usize];
            let back = value_of(BUCKET_CHARS.iter().position(|x| *x == c).unwrap() as u8);
            assert!((back / ms - 1.0).abs() < 0.125, "{ms} -> {back}");
        }
    }

    #[test]
    fn quantiles_are_within_a_bucket_of_the_truth() {
        let mut s = Sketch::default();
        for ms in 1..=1000 {
            s.add(ms as f64);
        }
        let p50 = s.quantile(0.5).unwrap();
        let p95 = s.quantile(0.95).unwrap();
        assert!((p50 / 500.0 - 1.0).abs() < 0.13, "{p50}");
        assert!((p95 / 950.0 - 1.0).abs() < 0.13, "{p95}");
        assert_eq!(Sketch::default().quantile(0.5), None);
    }

    #[test]
    fn sketches_merge_and_serialise_compactly() {
        let mut a = Sketch::default();
        a.add(100.0);
        let mut b = Sketch::default();
        b.add(100.0);
        b.add(5000.0);
        a.merge(&b);
        assert_eq!(a.count(), 3);
        let json = serde_json::to_string(&a).unwrap();
        assert!(json.len() < 30, "{json}");
        let back: Sketch = serde_json::from_str(&json).unwrap();
        assert_eq!(back, a);
    }
}
