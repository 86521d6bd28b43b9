//! Figures over runs, one rule each, used by sweeps (sweep.json, comparison.md, the sweep
//! page, the terminal) and the plan check (docs/contracts.md): the median is the middle
//! value, or the mean of the two middle values for an even count; the p95 is the nearest
//! rank, the ⌈0.95 n⌉-th smallest; the worst is the largest.

/// `values` sorted, smallest first.
pub fn sorted(values: impl IntoIterator<Item = f64>) -> Vec<f64> {
    let mut v: Vec<f64> = values.into_iter().collect();
    v.sort_by(f64::total_cmp);
    v
}

/// The median of sorted values: the middle one, or the mean of the two middle ones.
pub fn median(sorted: &[f64]) -> Option<f64> {
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// The `p`-quantile of sorted values by the nearest rank: the ⌈p n⌉-th smallest (the
/// smallest for p = 0).
pub fn nearest_rank(sorted: &[f64], p: f64) -> Option<f64> {
    let n = sorted.len();
    (n > 0).then(|| sorted[((p * n as f64).ceil() as usize).clamp(1, n) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median(&sorted([4.0, 1.0, 3.0, 2.0])), Some(2.5));
        assert_eq!(median(&[1.0, 2.0, 9.0]), Some(2.0));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn the_p95_is_the_nearest_rank() {
        let v = sorted((1..=100).map(f64::from));
        assert_eq!(nearest_rank(&v, 0.95), Some(95.0));
        let v = sorted((1..=30).map(f64::from));
        // ⌈28.5⌉ = 29: the 29th smallest of 30.
        assert_eq!(nearest_rank(&v, 0.95), Some(29.0));
        assert_eq!(nearest_rank(&[7.0], 0.95), Some(7.0));
        assert_eq!(nearest_rank(&[], 0.95), None);
    }
}
