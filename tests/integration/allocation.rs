//! Scoring allocates nothing per row: a counting allocator watches this thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use cutover_models::Output;

use crate::fixtures::all_cases;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: defers every call to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|a| a.set(a.get() + 1));
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> usize {
    ALLOCATIONS.with(|a| a.get())
}

#[test]
fn scoring_rows_allocates_nothing() {
    for case in all_cases().iter().filter(|c| c.version == "3.2.0") {
        let model = case.load("ubj");
        let rows = case.rows(&model);
        let mut margins = vec![0.0f32; case.rows * model.output_width(Output::Margin)];
        let mut preds = vec![0.0f32; case.rows * model.output_width(Output::Prediction)];
        let before = allocations();
        model.score_batch(&rows, Output::Margin, &mut margins);
        model.score_batch(&rows, Output::Prediction, &mut preds);
        if model.objective().num_outputs() == 1 {
            for (i, row) in rows.chunks(model.num_features()).enumerate() {
                assert_eq!(model.predict_one(row).to_bits(), preds[i].to_bits());
            }
        }
        assert_eq!(allocations(), before, "{}: scoring allocated", case.name);
        assert!(margins.iter().any(|&m| m != 0.0), "{}: nothing was scored", case.name);
    }
}

#[test]
fn both_feature_paths_and_both_answers_allocate_nothing_per_request_once_warm() {
    // Each bundled migration: its traffic through both paths (the online store and the
    // legacy table materializing on their schedules), the row diff and both models' answers.
    // Warm means every entity already has its row in both tables (a new entity's row is an
    // allocation, once): the measured requests are the first ones again, two days later.
    for dir in ["domain/fraud", "domain/eta"] {
        let m =
            cutover_migration::Migration::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir)).unwrap();
        let (legacy, new) = m.start_stacks().unwrap();
        let mut paths =
            cutover_migration::paths::DualPath::new(legacy.pipeline().clone(), new.pipeline().clone(), m.schedule())
                .unwrap();
        let source = m.source(3, 20.0).unwrap();
        let mut requests: Vec<_> = (0..10_000u64)
            .map(|i| {
                let mut r = m.schema().record();
                source.fill(i, source.start_ms() + i as i64 * 500, &mut r);
                r
            })
            .collect();
        let time = m.schema().time_field();
        for day in 1..=2 {
            for i in 0..2000 {
                let mut again = requests[i].clone();
                again.time_ms += day * 86_400_000;
                again.values[time] = cutover_migration::schema::Value::Number(again.time_ms as f64);
                requests.push(again);
            }
        }
        let answer = m.answer();
        let (mut a, mut b) = (vec![0.0f32; answer.width()], vec![0.0f32; answer.width()]);
        // Warm: the tables hold every entity, the log has grown.
        for r in &requests[..12_000] {
            paths.compute(r);
            paths.served(r);
        }
        let before = allocations();
        let mut flips = 0;
        for r in &requests[12_000..] {
            let rows = paths.compute(r);
            answer.score(legacy.model(), rows.legacy, &mut a);
            answer.score(new.model(), rows.new, &mut b);
            flips += usize::from(answer.compare(&a, &b).flipped);
        }
        assert_eq!(allocations(), before, "{dir}: the paths or the answers allocated");
        assert_eq!(flips, 0, "{dir}: clean paths, equal answers");
    }
}
