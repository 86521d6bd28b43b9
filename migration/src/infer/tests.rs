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
    assert!(threshold(&pairs(&[(0.1, "no"), (0.2, "no")]), None)
        .unwrap_err()
        .contains("every recorded decision is `no`"));
    assert!(threshold(&pairs(&[(0.1, "a"), (0.2, "b"), (0.3, "c")]), None).unwrap_err().contains("more than two"));
}

#[test]
fn two_significant_digits() {
    assert_eq!(round2(0.012345), 0.012);
    assert_eq!(round2(1234.0), 1200.0);
    assert_eq!(round2(0.0), 0.0);
}

fn profile_of(name: &str, text: &str) -> Profile {
    let path = std::env::temp_dir().join(format!("cutover-infer-{}-{name}", std::process::id()));
    std::fs::write(&path, text).unwrap();
    let format = crate::recorded::Format::of(&path).unwrap();
    let p = Profile::read(&path, format, 1_000_000).unwrap();
    let _ = std::fs::remove_file(&path);
    p
}

#[test]
fn kinds_missing_values_and_sentinels_follow_the_documented_rules() {
    let mut csv = String::from("id,when,count,amount,flag,code,big\n");
    for i in 0..400 {
        let count = if i % 20 == 0 { "-1".to_string() } else { (i % 7).to_string() };
        let amount = if i % 10 == 0 { String::new() } else { format!("{}.5", i % 13) };
        let flag = ["true", "false", "1", "0"][i % 4];
        let big = if i % 25 == 0 { "99999".to_string() } else { (i % 50).to_string() };
        csv += &format!("{},{},{count},{amount},{flag},c{},{big}\n", i + 1, 1_700_000_000 + i * 60, i % 3);
    }
    let p = profile_of("kinds.csv", &csv);
    assert_eq!(p.rows, 400);
    let c = |n: &str| p.column(n).unwrap();
    assert!(c("id").unique && c("id").integral());
    assert_eq!(c("when").epoch_seconds(), Some(true));
    assert!(c("flag").boolean());
    assert_eq!(c("amount").missing, 40);
    assert!(c("amount").numeric() && !c("amount").integral());
    assert!(suspected_sentinel(c("count"), p.rows).unwrap().starts_with("-1 appears in 5.0 % of rows"));
    assert!(suspected_sentinel(c("big"), p.rows).unwrap().starts_with("99999 appears in 4.0 % of rows, far above"));
    assert!(suspected_sentinel(c("id"), p.rows).is_none());
    // The hours of an epoch-seconds column make the time-of-day curve.
    assert_eq!(c("when").hours.iter().sum::<u64>(), 400);
}

#[test]
fn json_lines_keys_seen_late_count_as_missing_before() {
    let p = profile_of("late.jsonl", "{\"a\": 1}\n\n{\"a\": 2, \"b\": \"x\"}\n{\"a\": 3, \"b\": null}\n");
    assert_eq!(p.rows, 3);
    let b = p.column("b").unwrap();
    assert_eq!((b.present, b.missing), (1, 2));
    assert_eq!(p.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
}
