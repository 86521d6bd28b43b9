//! The world's feature step: both feature paths over one event log, and the rows they give
//! one request. Legacy computes from the request as sent; the new path from the request as
//! the new stack gets it (a shadow call that lost its context) and reads it (the request
//! faults), with the spec a `spec_switch` fault makes it use; the feature faults then act
//! on the new row alone.

use cutover_migration::paths::DualPath;
use cutover_migration::schema::Record;

use crate::core::pairing::strip_context;
use crate::faults::{Kind, Touch};

/// Both paths and one request's rows.
#[derive(Clone)]
pub struct Rows {
    /// Both feature paths and the store between them.
    pub paths: DualPath,
    /// The request as the new stack got and read it.
    pub new_record: Record,
    /// Legacy's model row.
    pub legacy: Vec<f32>,
    /// The new stack's model row.
    pub new: Vec<f32>,
    /// The fields a shadow call can lose.
    context: Vec<usize>,
    /// The path's slots of the specs of `spec_switch` faults, by the fault's position.
    spec_slots: Vec<Option<usize>>,
}

impl Rows {
    /// The step over `paths`, for requests like `record`, a shadow call losing the fields
    /// `context`, and the faults' specs in `spec_slots`.
    pub fn new(paths: DualPath, record: Record, context: Vec<usize>, spec_slots: Vec<Option<usize>>) -> Rows {
        let n = paths.kinds().len();
        Rows { paths, new_record: record, legacy: vec![0.0; n], new: vec![0.0; n], context, spec_slots }
    }

    /// Both rows for `record` as `touch` says, with `hitting` the kinds of the faults that
    /// touch this request (in the scenario's order: request faults apply in it, then
    /// feature faults).
    pub fn both<'k>(&mut self, record: &Record, touch: &Touch, hitting: impl Iterator<Item = &'k Kind> + Clone) {
        self.new_record.copy_from(record);
        if touch.context_lost {
            strip_context(&mut self.new_record, &self.context);
        }
        if touch.request_faults {
            for kind in hitting.clone() {
                kind.apply_to_request(&mut self.new_record);
            }
        }
        let spec = touch.spec.and_then(|k| self.spec_slots[k]);
        let rows = self.paths.compute_switched(record, &self.new_record, spec);
        self.legacy.copy_from_slice(rows.legacy);
        self.new.copy_from_slice(rows.new);
        if touch.feature_faults {
            for kind in hitting {
                kind.apply_to_row(&mut self.new);
            }
        }
    }

    /// Legacy's row alone (the new stack is out of the path after a rollback).
    pub fn legacy_only(&mut self, record: &Record) -> &[f32] {
        let row = self.paths.compute_legacy(record);
        self.legacy.copy_from_slice(row);
        &self.legacy
    }

    /// The request was served: its event goes into the log both paths' aggregates read.
    pub fn served(&mut self, record: &Record) {
        self.paths.served(record);
    }
}

#[cfg(test)]
mod tests {
    use cutover_migration::schema::Value;
    use cutover_migration::Migration;

    use super::*;

    struct Fixture {
        rows: Rows,
        record: Record,
        schema: std::sync::Arc<cutover_migration::schema::Schema>,
        features: Vec<String>,
    }

    /// The bundled fraud migration's two paths, and its first generated request.
    fn fixture() -> Fixture {
        let m = Migration::bundled_fraud().unwrap();
        let (legacy, new) = m.start_stacks().unwrap();
        let paths = DualPath::new(legacy.pipeline().clone(), new.pipeline().clone(), m.schedule()).unwrap();
        let mut record = m.schema().record();
        let source = m.source(1, 10.0).unwrap();
        source.fill(0, source.start_ms(), &mut record);
        let context = m.shadow_context().to_vec();
        assert!(!context.is_empty(), "the fraud migration names a shadow context");
        Fixture {
            rows: Rows::new(paths, m.schema().record(), context, Vec::new()),
            record,
            schema: m.schema().clone(),
            features: legacy.pipeline().output_names().to_vec(),
        }
    }

    fn field(f: &Fixture, name: &str) -> usize {
        f.schema.index(name).unwrap()
    }

    fn feature(f: &Fixture, name: &str) -> usize {
        f.features.iter().position(|n| n == name).unwrap()
    }

    #[test]
    fn untouched_both_rows_are_equal_and_the_new_request_is_the_sent_one() {
        let mut f = fixture();
        f.rows.both(&f.record, &Touch::default(), std::iter::empty());
        assert_eq!(f.rows.new_record, f.record);
        let bits = |r: &[f32]| r.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&f.rows.legacy), bits(&f.rows.new));
    }

    #[test]
    fn a_request_fault_changes_what_the_new_path_reads_and_every_feature_derived_from_it() {
        let mut f = fixture();
        let amount = field(&f, "amount");
        let skew = Kind::FieldSkew { field: amount, scale: 100.0, offset: 0.0 };
        let touch = Touch { request_faults: true, ..Touch::default() };
        f.rows.both(&f.record.clone(), &touch, std::iter::once(&skew));
        let Value::Number(sent) = f.record.values[amount] else { panic!("{:?}", f.record.values[amount]) };
        assert_eq!(f.rows.new_record.values[amount], Value::Number(sent * 100.0));
        let (eur, band) = (feature(&f, "amount_eur"), feature(&f, "amount_band"));
        assert_ne!(f.rows.legacy[eur].to_bits(), f.rows.new[eur].to_bits());
        assert_ne!(f.rows.legacy[band].to_bits(), f.rows.new[band].to_bits(), "a derived feature follows its field");
        let hour = feature(&f, "hour_local");
        assert_eq!(f.rows.legacy[hour].to_bits(), f.rows.new[hour].to_bits(), "nothing else moves");
    }

    #[test]
    fn a_feature_fault_acts_on_the_new_row_after_the_comparison_of_the_paths() {
        let mut f = fixture();
        let eur = feature(&f, "amount_eur");
        let skew = Kind::FeatureSkew { feature: eur, scale: 2.0, offset: 0.0 };
        let touch = Touch { feature_faults: true, ..Touch::default() };
        f.rows.both(&f.record.clone(), &touch, std::iter::once(&skew));
        assert_eq!(f.rows.new_record, f.record, "the request is as sent");
        assert_eq!(f.rows.new[eur], f.rows.legacy[eur] * 2.0);
        let others = (0..f.features.len()).filter(|&i| i != eur);
        assert!(others.clone().all(|i| f.rows.legacy[i].to_bits() == f.rows.new[i].to_bits()), "nothing else moves");
        // A request fault among the hitting ones is not applied without its flag.
        let amount = field(&f, "amount");
        let field_skew = Kind::FieldSkew { field: amount, scale: 100.0, offset: 0.0 };
        f.rows.both(&f.record.clone(), &touch, [&skew, &field_skew].into_iter());
        assert_eq!(f.rows.new_record, f.record);
    }

    #[test]
    fn a_shadow_call_that_lost_its_context_computes_without_those_fields() {
        let mut f = fixture();
        let touch = Touch { context_lost: true, ..Touch::default() };
        f.rows.both(&f.record.clone(), &touch, std::iter::empty());
        for &i in &f.rows.context {
            assert_eq!(f.rows.new_record.values[i], Value::Missing);
        }
        assert_ne!(f.rows.new_record, f.record);
        let legacy = f.rows.legacy.clone();
        let bits = |r: &[f32]| r.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(f.rows.legacy_only(&f.record)), bits(&legacy), "legacy computes from the request as sent");
    }
}
