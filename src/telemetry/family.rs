//! Metric keys built once per process instead of once per report.
//!
//! Every label the engine reports takes one of a few values known in
//! advance (an API, an operation, an outcome, a store call), so each metric
//! is a [`Family`]: its name, its labels and their possible values. The
//! first report of a family builds the key of every combination of values;
//! later reports pick their key by index. The `metrics` macros would
//! instead build a key (a vector of labels, and its hash) at every report,
//! which cost more than the store call itself when no recorder listens.

use std::sync::OnceLock;

use metrics::{Counter, Histogram, Key, Label, Level, Metadata};

/// Where the engine's metrics come from, as the macros would say it.
static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// One label of a family: its name and every value it takes, in index
/// order.
pub(crate) type Dimension = (&'static str, &'static [&'static str]);

/// A metric name with labels of known values, and its keys once built.
pub(crate) struct Family {
    name: &'static str,
    dimensions: &'static [Dimension],
    keys: OnceLock<Vec<Key>>,
}

impl Family {
    /// The family `name` labelled by `dimensions`.
    pub(crate) const fn new(name: &'static str, dimensions: &'static [Dimension]) -> Family {
        Family {
            name,
            dimensions,
            keys: OnceLock::new(),
        }
    }

    /// The key of the label values at `indices` (one per dimension, in
    /// order); `None` for an index out of its dimension's range or a wrong
    /// number of indices, which the callers' tests rule out.
    pub(crate) fn key(&self, indices: &[usize]) -> Option<&Key> {
        if indices.len() != self.dimensions.len() {
            return None;
        }
        let mut at = 0;
        for (&index, (_, values)) in indices.iter().zip(self.dimensions) {
            if index >= values.len() {
                return None;
            }
            at = at * values.len() + index;
        }
        self.keys.get_or_init(|| self.build()).get(at)
    }

    /// Every key of the family, the last dimension varying fastest.
    fn build(&self) -> Vec<Key> {
        let total = self
            .dimensions
            .iter()
            .map(|(_, values)| values.len())
            .product();
        (0..total)
            .map(|mut at| {
                let mut labels = Vec::with_capacity(self.dimensions.len());
                for (name, values) in self.dimensions.iter().rev() {
                    labels.push(Label::from_static_parts(name, values[at % values.len()]));
                    at /= values.len();
                }
                labels.reverse();
                Key::from_parts(self.name, labels)
            })
            .collect()
    }

    /// The counter of the label values at `indices`, from the recorder in
    /// scope (a no-op without one).
    pub(crate) fn counter(&self, indices: &[usize]) -> Counter {
        match self.key(indices) {
            Some(key) => {
                metrics::with_recorder(|recorder| recorder.register_counter(key, &METADATA))
            }
            None => Counter::noop(),
        }
    }

    /// The histogram of the label values at `indices`, as
    /// [`counter`](Family::counter).
    pub(crate) fn histogram(&self, indices: &[usize]) -> Histogram {
        match self.key(indices) {
            Some(key) => {
                metrics::with_recorder(|recorder| recorder.register_histogram(key, &METADATA))
            }
            None => Histogram::noop(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COLOURS: Dimension = ("colour", &["red", "green", "blue"]);
    const SIZES: Dimension = ("size", &["s", "l"]);

    fn labels(key: &Key) -> Vec<(String, String)> {
        key.labels()
            .map(|label| (label.key().to_owned(), label.value().to_owned()))
            .collect()
    }

    #[test]
    fn every_combination_has_its_own_key_with_its_labels() {
        let family = Family::new("widgets_total", &[COLOURS, SIZES]);
        let key = family.key(&[2, 0]).expect("in range");
        assert_eq!(key.name(), "widgets_total");
        assert_eq!(
            labels(key),
            [
                ("colour".into(), "blue".into()),
                ("size".into(), "s".into())
            ]
        );
        let key = family.key(&[0, 1]).expect("in range");
        assert_eq!(
            labels(key),
            [("colour".into(), "red".into()), ("size".into(), "l".into())]
        );
    }

    #[test]
    fn out_of_range_or_miscounted_indices_have_no_key() {
        let family = Family::new("widgets_total", &[COLOURS, SIZES]);
        assert!(family.key(&[3, 0]).is_none());
        assert!(family.key(&[0, 2]).is_none());
        assert!(family.key(&[0]).is_none());
        assert!(family.key(&[0, 0, 0]).is_none());
    }

    #[test]
    fn a_family_without_labels_has_one_key() {
        let family = Family::new("runs_total", &[]);
        assert!(family.key(&[]).is_some_and(|key| key.labels().count() == 0));
    }
}
