//! The engine's tracing spans and events (`docs/metrics.md`): a test
//! subscriber collects every span and event field.
//!
//! A test binary of its own, with one test: tracing caches each callsite's
//! interest globally, so an event first reached on another test's thread
//! while this test's subscriber is being installed could stay disabled for
//! it. Alone in its process, the test is the only one reaching the
//! callsites.

mod common;

use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use atmostonce::fenced::{Claim, FencedCache, FencedOptions};
use atmostonce::{DedupCache, DedupDecision, DedupOptions, MemoryStore};
use common::{AppendFault, run, scripted_store};

/// Every field value of every span and event, as text, with its name.
#[derive(Default, Clone)]
struct Fields(Arc<Mutex<Vec<(String, String)>>>);

struct Visitor<'a>(&'a mut Vec<(String, String)>);

impl tracing::field::Visit for Visitor<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn Debug) {
        self.0.push((field.name().to_owned(), format!("{value:?}")));
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.push((field.name().to_owned(), value.to_owned()));
    }
}

struct Collector {
    fields: Fields,
    next_id: AtomicU64,
}

impl tracing::Subscriber for Collector {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut fields = self.fields.0.lock().unwrap();
        fields.push(("span".into(), span.metadata().name().into()));
        span.record(&mut Visitor(&mut fields));
        tracing::span::Id::from_u64(self.next_id.fetch_add(1, Ordering::SeqCst) + 1)
    }

    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        values.record(&mut Visitor(&mut self.fields.0.lock().unwrap()));
    }

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        event.record(&mut Visitor(&mut self.fields.0.lock().unwrap()));
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

fn traced(work: impl FnOnce()) -> Vec<(String, String)> {
    let fields = Fields::default();
    let collector = Collector {
        fields: fields.clone(),
        next_id: AtomicU64::new(0),
    };
    tracing::subscriber::with_default(collector, work);
    fields.0.lock().unwrap().clone()
}

const PERSONAL_KEY: &str = "customer-4711@example.com";

#[test]
fn spans_name_the_stream_never_the_raw_key_unless_the_options_opt_in() {
    let store = Arc::new(scripted_store(true));
    let seed_cache = DedupCache::new(store.clone(), "orders");
    let fenced_cache =
        FencedCache::new(store.clone(), "payments", FencedOptions::default()).unwrap();
    let fields = traced(|| {
        assert_eq!(
            run(seed_cache.claim_or_get(PERSONAL_KEY, 1)),
            Ok(DedupDecision::Claimed)
        );
        // An indeterminate append too, so that the events are there.
        store.script_appends(&[Some(AppendFault::LostWithError)]);
        assert!(matches!(
            run(fenced_cache.claim(PERSONAL_KEY, 1)),
            Ok(Claim::Granted(_))
        ));
    });
    let spans = fields
        .iter()
        .filter(|(name, value)| name == "span" && value == "atmostonce.operation");
    assert_eq!(spans.count(), 2);
    for stream in [
        seed_cache.stream_key_for(PERSONAL_KEY),
        fenced_cache.stream_key_for(PERSONAL_KEY),
    ] {
        assert!(
            fields.contains(&("stream".into(), stream.clone())),
            "{stream} in {fields:?}"
        );
    }
    assert!(
        fields.contains(&("outcome".into(), "claimed".into())),
        "{fields:?}"
    );
    assert!(
        fields.contains(&("outcome".into(), "granted".into())),
        "{fields:?}"
    );
    assert!(
        fields.iter().any(|(name, _)| name == "resolution"),
        "{fields:?}"
    );
    for (name, value) in &fields {
        assert!(
            !value.contains("4711"),
            "field {name} shows the raw key: {value}"
        );
    }

    let opted_in = DedupCache::with_options(
        Arc::new(MemoryStore::new()),
        "orders",
        DedupOptions::default().with_raw_keys_in_traces(true),
    )
    .unwrap();
    let fields = traced(|| {
        assert_eq!(
            run(opted_in.claim_or_get(PERSONAL_KEY, 1)),
            Ok(DedupDecision::Claimed)
        );
    });
    assert!(
        fields.contains(&("key".into(), PERSONAL_KEY.into())),
        "{fields:?}"
    );
}
