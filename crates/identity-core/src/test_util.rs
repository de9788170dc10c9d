//! Fakes for tests (feature `test-util`): a controllable clock, a sleeper that records instead
//! of waiting, and credentials that return what they are told.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::{AccessToken, BoxFuture, Clock, Error, Sleeper, TokenCredential, TokenRequestOptions};

/// A clock that moves only when told to.
#[derive(Clone, Debug)]
pub struct FakeClock(Arc<Mutex<SystemTime>>);

impl FakeClock {
    /// A clock showing `start`.
    pub fn new(start: SystemTime) -> Self {
        Self(Arc::new(Mutex::new(start)))
    }

    /// A clock showing 2030-01-01T00:00:00Z.
    pub fn at_2030() -> Self {
        Self::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_893_456_000))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut now = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *now += by;
    }

    /// Sets the clock.
    pub fn set(&self, to: SystemTime) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = to;
    }

    /// This clock as a shared [`Clock`].
    pub fn shared(&self) -> Arc<dyn Clock> {
        Arc::new(self.clone())
    }
}

impl Clock for FakeClock {
    fn now(&self) -> SystemTime {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A sleeper that returns at once and records every requested duration; it advances a
/// [`FakeClock`] if given one.
#[derive(Clone, Debug, Default)]
pub struct RecordingSleeper {
    slept: Arc<Mutex<Vec<Duration>>>,
    clock: Option<FakeClock>,
}

impl RecordingSleeper {
    /// A sleeper that records only.
    pub fn new() -> Self {
        Self::default()
    }

    /// A sleeper that also advances `clock`.
    pub fn advancing(clock: FakeClock) -> Self {
        Self {
            slept: Arc::default(),
            clock: Some(clock),
        }
    }

    /// The durations requested so far.
    pub fn slept(&self) -> Vec<Duration> {
        self.slept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// This sleeper as a shared [`Sleeper`].
    pub fn shared(&self) -> Arc<dyn Sleeper> {
        Arc::new(self.clone())
    }
}

impl Sleeper for RecordingSleeper {
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        self.slept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(duration);
        if let Some(clock) = &self.clock {
            clock.advance(duration);
        }
        Box::pin(async {})
    }
}

type Responder = dyn Fn(&[&str], &TokenRequestOptions) -> Result<AccessToken, Error> + Send + Sync;

/// A credential answering from a closure, counting its calls.
pub struct FnCredential {
    name: &'static str,
    respond: Box<Responder>,
    calls: Arc<AtomicUsize>,
    cache: Option<crate::cache::TokenCache>,
}

impl std::fmt::Debug for FnCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FnCredential")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl FnCredential {
    /// How many times `get_token` was called.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// A shared counter of calls, readable after the credential has been moved into a chain.
    pub fn call_counter(&self) -> Arc<AtomicUsize> {
        self.calls.clone()
    }

    /// Puts a token cache reading `clock` in front of the closure (keyed by the credential's
    /// name, the scopes, the tenant and CAE; claims bypass it), and offers its entries through
    /// [`TokenCredential::cache_slot`]. `calls` still counts every `get_token`.
    #[must_use]
    pub fn cached(mut self, clock: Arc<dyn Clock>) -> Self {
        self.cache = Some(crate::cache::TokenCache::with_clock(clock));
        self
    }
}

impl TokenCredential for FnCredential {
    fn get_token<'a>(
        &'a self,
        scopes: &'a [&'a str],
        options: &'a TokenRequestOptions,
    ) -> BoxFuture<'a, Result<AccessToken, Error>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if let Some(cache) = &self.cache {
            return Box::pin(async move {
                let key = crate::cache::KeyRef::new(
                    self.name,
                    scopes,
                    options.tenant(),
                    options.enable_cae,
                );
                let claims = options.claims_challenge().is_some();
                cache
                    .get_or_fetch(key, claims, || {
                        std::future::ready((self.respond)(scopes, options))
                    })
                    .await
            });
        }
        let result = (self.respond)(scopes, options);
        Box::pin(async move { result })
    }

    fn name(&self) -> &'static str {
        self.name
    }

    fn cache_slot(
        &self,
        scopes: &[&str],
        options: &TokenRequestOptions,
    ) -> Option<crate::cache::CacheSlot> {
        if options.claims_challenge().is_some() {
            return None;
        }
        let key =
            crate::cache::KeyRef::new(self.name, scopes, options.tenant(), options.enable_cae);
        Some(self.cache.as_ref()?.slot(key))
    }
}

/// A credential named `name` that answers with `respond`.
pub fn credential_fn(
    name: &'static str,
    respond: impl Fn(&[&str], &TokenRequestOptions) -> Result<AccessToken, Error>
    + Send
    + Sync
    + 'static,
) -> FnCredential {
    FnCredential {
        name,
        respond: Box::new(respond),
        calls: Arc::default(),
        cache: None,
    }
}

/// A credential that always returns `token` (valid until `expires_on`).
pub fn static_credential(name: &'static str, token: &str, expires_on: SystemTime) -> FnCredential {
    let token = AccessToken::new(token, expires_on);
    credential_fn(name, move |_, _| Ok(token.clone()))
}

/// A credential that always fails with `error`.
pub fn failing_credential(name: &'static str, error: Error) -> FnCredential {
    credential_fn(name, move |_, _| Err(error.clone()))
}

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
