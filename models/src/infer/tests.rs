use super::*;

fn pairs(v: &[(f64, &str)]) -> Vec<(f64, String, u64)> {
    v.iter().enumerate().map(|(i, (s, d))| (*s, d.to_string(), i as u64 + 2)).collect()
}

#[test]
fn the_threshold_is_the_shortest_decimal_between_the_two_decisions() {
    let p = pairs(&[(0.1, "approve"), (0.3499, "approve"), (0.351, "decline"), (0.9, "decline")]);
    let (t, labels) = threshold(&p, None).unwrap();
    assert_eq!(t, 0.35);
    assert_eq!(labels, ["approve".to_string(), "decline".to_string()]);
    // The higher label is found whichever comes first.
    let p = pairs(&[(0.9, "yes"), (0.2, "no"), (0.61, "yes"), (0.58, "no")]);
    assert_eq!(threshold(&p, None).unwrap(), (0.6, ["no".to_string(), "yes".to_string()]));
    // A score exactly at the threshold takes the higher label.
    let p = pairs(&[(0.49, "no"), (0.5, "yes")]);
    assert_eq!(threshold(&p, None).unwrap().0, 0.5);
}

#[test]
fn decisions_no_threshold_explains_are_refused_naming_two_rows() {
    let p = pairs(&[(0.1, "no"), (0.7, "no"), (0.6, "yes"), (0.9, "yes")]);
    let e = threshold(&p, None).unwrap_err();
    assert!(e.contains("line 3 has score 0.7 and `no`") && e.contains("line 4 has score 0.6 and `yes`"), "{e}");
    let p = pairs(&[(0.1, "no"), (0.9, "yes")]);
    let e = threshold(&p, Some(0.95)).unwrap_err();
    assert!(e.contains("--threshold 0.95 disagrees with line 3"), "{e}");
    assert!(threshold(&pairs(&[(0.1, "no"), (0.2, "no")]), None).unwrap_err().contains("every recorded decision is `no`"));
    assert!(threshold(&pairs(&[(0.1, "a"), (0.2, "b"), (0.3, "c")]), None).unwrap_err().contains("more than two"));
}

#[test]
fn two_significant_digits() {
    assert_eq!(round2(0.012345), 0.012);
    assert_eq!(round2(1234.0), 1200.0);
    assert_eq!(round2(0.0), 0.0);
}
