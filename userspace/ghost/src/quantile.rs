//! Order statistics: the nearest-rank quantile every benchmark figure of
//! ghost-rs is (`ghost-bench`'s summaries and plots, `ghost-exp
//! dispersive`'s request latencies).

/// The `q`-quantile (0..=1) of sorted samples, nearest rank: the smallest
/// sample with at least `q` of the samples at or below it. `None` when
/// there are no samples.
pub fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<f64> = (1..=1000).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), Some(500.0));
        assert_eq!(quantile(&v, 0.99), Some(990.0));
        assert_eq!(quantile(&v, 0.999), Some(999.0));
        assert_eq!(quantile(&v, 1.0), Some(1000.0));
        assert_eq!(quantile(&[7.0], 0.99), Some(7.0));
        assert_eq!(quantile(&[1.0, 2.0], 0.0), Some(1.0));
        assert_eq!(quantile(&[], 0.5), None);
        // Samples that never ended sort last as infinities.
        assert_eq!(
            quantile(&[1.0, 2.0, f64::INFINITY], 0.99),
            Some(f64::INFINITY)
        );
    }
}
