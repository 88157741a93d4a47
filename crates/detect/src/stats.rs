//! Small statistics: Jensen-Shannon divergence of histograms, Shannon entropy of labels,
//! mean and standard deviation.

/// Jensen-Shannon divergence (base 2, so in [0, 1]) of two count histograms of equal length.
/// JSD needs no smoothing (the mixture is positive wherever either is); an empty histogram
/// carries no information and diverges by 0.
pub fn jsd(a: &[u64], b: &[u64]) -> f64 {
    let n = a.len().min(b.len());
    let sa: f64 = a[..n].iter().map(|&x| x as f64).sum();
    let sb: f64 = b[..n].iter().map(|&x| x as f64).sum();
    if sa == 0.0 || sb == 0.0 {
        return 0.0;
    }
    let term = |p: f64, m: f64| if p > 0.0 { p * (p / m).log2() } else { 0.0 };
    let mut d = 0.0;
    for i in 0..n {
        let p = a[i] as f64 / sa;
        let q = b[i] as f64 / sb;
        let m = (p + q) / 2.0;
        d += 0.5 * term(p, m) + 0.5 * term(q, m);
    }
    d.clamp(0.0, 1.0)
}

/// Shannon entropy in bits per byte.
pub fn entropy(s: &[u8]) -> f64 {
    if s.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in s {
        counts[b as usize] += 1;
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

/// Mean and population standard deviation.
pub fn mean_sd(xs: &[f64]) -> (f64, f64) {
    if xs.is_empty() {
        return (0.0, 0.0);
    }
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsd_is_zero_for_equal_shapes_and_near_one_for_disjoint() {
        let a = [0, 100, 200, 0];
        let b = [0, 10, 20, 0];
        assert!(jsd(&a, &b) < 1e-3, "{}", jsd(&a, &b));
        let c = [1000, 0, 0, 0];
        let d = [0, 0, 0, 1000];
        assert!(jsd(&c, &d) > 0.99, "{}", jsd(&c, &d));
        assert!((jsd(&c, &d) - jsd(&d, &c)).abs() < 1e-12, "symmetric");
        assert_eq!(jsd(&[0; 4], &c), 0.0, "empty carries no information");
    }

    #[test]
    fn entropy_separates_words_from_random_labels() {
        assert!(entropy(b"github") < 3.0);
        assert!(entropy(b"mzxw6ytboi4dsnzqgi3tkmbsgq2dkmrvhe4tsnzr") > 3.5);
        assert_eq!(entropy(b"aaaa"), 0.0);
    }

    #[test]
    fn mean_sd_of_constant_is_zero_spread() {
        assert_eq!(mean_sd(&[2.0, 2.0, 2.0]), (2.0, 0.0));
        assert_eq!(mean_sd(&[]), (0.0, 0.0));
        let (m, s) = mean_sd(&[0.0, 2.0]);
        assert_eq!((m, s), (1.0, 1.0));
    }
}
