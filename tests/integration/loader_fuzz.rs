//! No panic on any input: corrupted model bytes and CSV rows give errors, never a crash.

use std::sync::OnceLock;

use cutover_models::rows::RowReader;
use proptest::prelude::*;

use crate::fixtures::all_cases;

fn seeds() -> &'static Vec<Vec<u8>> {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let cases = all_cases();
        let small: Vec<_> =
            cases.iter().filter(|c| c.version != "2.1.4" && c.name.starts_with("categorical_onehot")).collect();
        small.iter().flat_map(|c| ["json", "ubj"].map(|e| std::fs::read(c.model_path(e)).unwrap())).collect()
    })
}

/// Loads and, if it loads, scores a row: neither may panic.
fn load_and_score(bytes: &[u8]) {
    if let Ok(model) = cutover_models::xgboost::load_bytes(bytes, "fuzz") {
        let row = vec![f32::NAN; model.num_features()];
        let mut out = vec![0.0; model.output_width(cutover_models::Output::Margin)];
        model.score_batch(&row, cutover_models::Output::Margin, &mut out);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: crate::fuzz::cases().max(300), ..ProptestConfig::default() })]

    #[test]
    fn truncated_models_never_panic(which in 0usize..4, cut in 0.0f64..1.0) {
        let bytes = &seeds()[which];
        let end = (bytes.len() as f64 * cut) as usize;
        let result = cutover_models::xgboost::load_bytes(&bytes[..end], "fuzz");
        prop_assert!(result.is_err(), "a truncated model loaded");
    }

    #[test]
    fn corrupted_models_never_panic(which in 0usize..4, flips in proptest::collection::vec((0.0f64..1.0, any::<u8>()), 1..8)) {
        let mut bytes = seeds()[which].clone();
        for (at, b) in flips {
            let i = (bytes.len() as f64 * at) as usize;
            let last = bytes.len() - 1;
            bytes[i.min(last)] = b;
        }
        load_and_score(&bytes);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        load_and_score(&bytes);
        let mut with_brace = b"{".to_vec();
        with_brace.extend_from_slice(&bytes);
        load_and_score(&with_brace);
    }

    #[test]
    fn arbitrary_csv_never_panics(body in proptest::collection::vec(any::<u8>(), 0..400)) {
        let mut text = b"a,b\n".to_vec();
        text.extend_from_slice(&body);
        let features = vec!["a".to_string(), "b".to_string()];
        if let Ok(mut r) = RowReader::new(text.as_slice(), "fuzz.csv", &features) {
            let mut out = Vec::new();
            while let Ok(n) = r.read_batch(&mut out, 7) {
                if n == 0 { break; }
                prop_assert_eq!(out.len(), n * 2);
            }
        }
    }
}
