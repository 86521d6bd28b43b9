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
