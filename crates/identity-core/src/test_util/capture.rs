//! [`Capture`]: a `tracing` subscriber that records spans and events into memory.

use std::sync::{Arc, Mutex};

/// One span as captured by [`Capture`]: its name, target and every field value recorded for
/// it, at creation or later.
#[derive(Clone, Debug)]
pub struct CapturedSpan {
    /// The span's name, e.g. `get_token`.
    pub name: &'static str,
    /// The span's target, e.g. `identity_core::trace`.
    pub target: String,
    /// `(field, value)` pairs in recording order; strings are stored without quotes.
    pub fields: Vec<(String, String)>,
}

impl CapturedSpan {
    /// The last value recorded for `field`.
    pub fn field(&self, field: &str) -> Option<&str> {
        self.fields
            .iter()
            .rev()
            .find(|(name, _)| name == field)
            .map(|(_, value)| value.as_str())
    }
}

/// One event as captured by [`Capture`].
#[derive(Clone, Debug)]
pub struct CapturedEvent {
    /// The event's level.
    pub level: tracing::Level,
    /// The event's target.
    pub target: String,
    /// The names of the spans the event happened in, outermost first.
    pub spans: Vec<&'static str>,
    /// `(field, value)` pairs, `message` included.
    pub fields: Vec<(String, String)>,
}

impl CapturedEvent {
    /// The value of `field` (e.g. `message`, `error`).
    pub fn field(&self, field: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(name, _)| name == field)
            .map(|(_, value)| value.as_str())
    }
}

#[derive(Default)]
struct Captured {
    spans: Vec<CapturedSpan>,
    events: Vec<CapturedEvent>,
}

/// A `tracing` subscriber that records every span and event, at every level, into memory.
///
/// Install it for one test only, never globally: [`Capture::run`] for synchronous code, or
/// hold [`Capture::enter`]'s guard in a current-thread async test. Work spawned by the token
/// cache carries the subscriber with it, so loads running on other threads are captured too.
///
/// ```
/// use identity_core::test_util::Capture;
/// let capture = Capture::new();
/// capture.run(|| tracing::debug!(scope = "https://vault.azure.net/.default", "hello"));
/// assert!(capture.text().contains("hello"));
/// capture.assert_absent("a-planted-secret");
/// ```
#[derive(Clone)]
pub struct Capture {
    captured: Arc<Mutex<Captured>>,
    dispatch: tracing::Dispatch,
}

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let captured = self.lock();
        f.debug_struct("Capture")
            .field("spans", &captured.spans.len())
            .field("events", &captured.events.len())
            .finish()
    }
}

impl Default for Capture {
    fn default() -> Self {
        Self::new()
    }
}

impl Capture {
    /// An empty capture.
    pub fn new() -> Self {
        use tracing_subscriber::layer::SubscriberExt;
        let captured: Arc<Mutex<Captured>> = Arc::default();
        let layer = CaptureLayer {
            captured: captured.clone(),
        };
        let subscriber = tracing_subscriber::registry().with(layer);
        Self {
            captured,
            dispatch: tracing::Dispatch::new(subscriber),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Captured> {
        self.captured
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `f` with this capture as the thread's subscriber.
    pub fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        tracing::dispatcher::with_default(&self.dispatch, f)
    }

    /// Makes this capture the thread's subscriber until the guard is dropped.
    #[must_use = "the capture is active only while the guard lives"]
    pub fn enter(&self) -> tracing::dispatcher::DefaultGuard {
        tracing::dispatcher::set_default(&self.dispatch)
    }

    /// The subscriber, e.g. for `tracing::instrument::WithSubscriber::with_subscriber`.
    pub fn dispatch(&self) -> &tracing::Dispatch {
        &self.dispatch
    }

    /// Every span captured so far.
    pub fn spans(&self) -> Vec<CapturedSpan> {
        self.lock().spans.clone()
    }

    /// The spans named `name`, in creation order.
    pub fn spans_named(&self, name: &str) -> Vec<CapturedSpan> {
        self.lock()
            .spans
            .iter()
            .filter(|s| s.name == name)
            .cloned()
            .collect()
    }

    /// Every event captured so far.
    pub fn events(&self) -> Vec<CapturedEvent> {
        self.lock().events.clone()
    }

    /// Everything captured, one span or event per line, for searching and failure messages.
    pub fn text(&self) -> String {
        use std::fmt::Write as _;
        let captured = self.lock();
        let mut out = String::new();
        for span in &captured.spans {
            let _ = write!(out, "span {} {}", span.target, span.name);
            for (name, value) in &span.fields {
                let _ = write!(out, " {name}={value}");
            }
            out.push('\n');
        }
        for event in &captured.events {
            let _ = write!(
                out,
                "event {} {} in {:?}",
                event.level, event.target, event.spans
            );
            for (name, value) in &event.fields {
                let _ = write!(out, " {name}={value}");
            }
            out.push('\n');
        }
        out
    }

    /// Panics when `needle` appears anywhere in the captured spans or events.
    ///
    /// # Panics
    /// When the needle is found, showing the line it is on (the needle itself masked).
    pub fn assert_absent(&self, needle: &str) {
        let text = self.text();
        if let Some(line) = text.lines().find(|line| line.contains(needle)) {
            panic!(
                "a planted secret appeared in the tracing output: {}",
                line.replace(needle, "<PLANTED SECRET>")
            );
        }
    }
}

struct CaptureLayer {
    captured: Arc<Mutex<Captured>>,
}

impl CaptureLayer {
    fn lock(&self) -> std::sync::MutexGuard<'_, Captured> {
        self.captured
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Where a span's record lives in [`Captured::spans`].
struct SpanIndex(usize);

#[derive(Default)]
struct Fields(Vec<(String, String)>);

impl tracing::field::Visit for Fields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.push((field.name().to_owned(), value.to_owned()));
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push((field.name().to_owned(), format!("{value:?}")));
    }
}

impl<S> tracing_subscriber::Layer<S> for CaptureLayer
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        let index = {
            let mut captured = self.lock();
            captured.spans.push(CapturedSpan {
                name: attrs.metadata().name(),
                target: attrs.metadata().target().to_owned(),
                fields: fields.0,
            });
            captured.spans.len() - 1
        };
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanIndex(index));
        }
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let Some(span) = ctx.span(id) else { return };
        let Some(index) = span.extensions().get::<SpanIndex>().map(|i| i.0) else {
            return;
        };
        let mut fields = Fields::default();
        values.record(&mut fields);
        if let Some(record) = self.lock().spans.get_mut(index) {
            record.fields.extend(fields.0);
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: tracing_subscriber::layer::Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let spans = ctx
            .event_scope(event)
            .map(|scope| scope.from_root().map(|s| s.name()).collect())
            .unwrap_or_default();
        self.lock().events.push(CapturedEvent {
            level: *event.metadata().level(),
            target: event.metadata().target().to_owned(),
            spans,
            fields: fields.0,
        });
    }
}
