//! Structured logs on stderr: human text by default, JSON on request. `RUST_LOG` wins over
//! the configured level.
//!
//! The JSON lines are written by [`JsonLines`], not by tracing-subscriber's own JSON
//! formatter, because a log pipeline needs guarantees that one cannot give: every line is one
//! object whose top-level keys are fixed ([`LINE_KEYS`]), the event's own fields sit under
//! `fields` (so an event field named `target` or `message` can never shadow the logger's), no
//! key appears twice, and numbers and booleans stay JSON numbers and booleans.
//!
//! Errors are logged through [`error_chain`] (every cause, URLs' secrets removed) and HTTP
//! failures through [`http_failure`] (status and a bounded excerpt of the body), so each log
//! line and CLI message says why, in the same words.

use std::fmt;
use std::sync::LazyLock;

use serde::Serialize;
use serde_json::{Map, Number, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `debug` raises the level (`CODEX_DEBUG=true`).
pub fn init(json: bool, debug: bool) {
    // The OpenTelemetry crates' internal log (`internal-logs`, which the OTLP exporter needs for
    // partial successes) at warnings only: their info and debug lines are per export.
    let default = if debug {
        "debug,opentelemetry=warn"
    } else {
        "info,opentelemetry=warn"
    };
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => EnvFilter::new(spec),
        _ => EnvFilter::new(default),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.event_format(JsonLines).init();
    } else {
        builder.with_ansi(false).init();
    }
}

/// The top-level keys of a JSON log line, in the order written; nothing else appears there.
pub const LINE_KEYS: &[&str] = &["timestamp", "level", "target", "message", "fields", "spans"];

/// One JSON object per event:
/// `{"timestamp":"2026-01-02T03:04:05.678Z","level":"WARN","target":"codex_sentinel::export",
///   "message":"export failed; will retry","fields":{"exporter":"otlp",...}}`
/// plus `"spans":["name",...]` when the event happened inside spans.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonLines;

#[derive(Serialize)]
struct Line<'a> {
    timestamp: String,
    level: &'a str,
    target: &'a str,
    message: String,
    fields: Map<String, Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    spans: Vec<&'a str>,
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut visitor = JsonFields::default();
        event.record(&mut visitor);
        let meta = event.metadata();
        let spans = ctx
            .event_scope()
            .map(|scope| scope.from_root().map(|span| span.name()).collect())
            .unwrap_or_default();
        let line = Line {
            timestamp: crate::util::time::format_rfc3339(crate::util::now_ms()),
            level: meta.level().as_str(),
            target: meta.target(),
            message: visitor.message.unwrap_or_default(),
            fields: visitor.fields,
            spans,
        };
        let text = serde_json::to_string(&line).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

/// Collects an event's fields as JSON values: integers, floats and booleans as such, errors
/// with their causes, everything else as its text. A field recorded twice keeps the last value.
#[derive(Default)]
struct JsonFields {
    message: Option<String>,
    fields: Map<String, Value>,
}

impl JsonFields {
    fn put(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            self.message = Some(match value {
                Value::String(s) => s,
                other => other.to_string(),
            });
        } else {
            self.fields.insert(field.name().to_string(), value);
        }
    }
}

impl Visit for JsonFields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        // NaN and infinities have no JSON number: null says "no value".
        self.put(
            field,
            Number::from_f64(value).map_or(Value::Null, Value::Number),
        );
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }
    fn record_i128(&mut self, field: &Field, value: i128) {
        let v = i64::try_from(value).map_or_else(|_| Value::String(value.to_string()), Value::from);
        self.put(field, v);
    }
    fn record_u128(&mut self, field: &Field, value: u128) {
        let v = u64::try_from(value).map_or_else(|_| Value::String(value.to_string()), Value::from);
        self.put(field, v);
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::Bool(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::String(value.to_string()));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::String(error_chain(value)));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `%x` fields arrive here too, rendered with Display.
        self.put(field, Value::String(format!("{value:?}")));
    }
}

/// Lets a repeated log line through at most once per `every`; the lines held back in between
/// are counted and reported with the next one that passes (`suppressed = n`), so a flood of
/// bad requests neither fills the log nor disappears from it.
#[derive(Debug)]
pub struct RateLimit {
    every: std::time::Duration,
    last: Option<std::time::Instant>,
    suppressed: u64,
}

impl RateLimit {
    pub fn new(every: std::time::Duration) -> Self {
        RateLimit {
            every,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(lines suppressed since the last one logged)` when this one may be logged.
    pub fn allow(&mut self) -> Option<u64> {
        self.allow_at(std::time::Instant::now())
    }

    pub fn allow_at(&mut self, now: std::time::Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < self.every => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

/// A list as one log field: comma-separated (`names = %Csv(&cfg.names)`), never a Debug
/// rendering with brackets and quotes.
pub struct Csv<'a, T>(pub &'a [T]);

impl<T: fmt::Display> fmt::Display for Csv<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, item) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{item}")?;
        }
        Ok(())
    }
}

/// An error with all its causes, outermost first, joined by `": "` (a cause whose text the
/// previous ones already contain is left out), with secrets removed from any URL in it
/// ([`redact_urls`]). The one way errors are turned into text for logs and CLI messages.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !text.is_empty() && !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    redact_urls(&out)
}

/// Bytes of a response body kept in an error message.
pub const BODY_EXCERPT: usize = 300;

/// An HTTP answer that was not a success, as `HTTP 400 Bad Request: <body excerpt>`: the body
/// trimmed, on one line, cut at [`BODY_EXCERPT`] bytes, URLs' secrets removed.
pub fn http_failure(status: u16, reason: Option<&str>, body: &[u8]) -> String {
    let mut out = format!("HTTP {status}");
    if let Some(r) = reason {
        out.push(' ');
        out.push_str(r);
    }
    let text = String::from_utf8_lossy(body);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if !text.is_empty() {
        out.push_str(": ");
        out.push_str(&excerpt(&text, BODY_EXCERPT));
    }
    redact_urls(&out)
}

/// At most `max` bytes of `text`, cut at a character boundary, `…` marking the cut.
pub fn excerpt(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// URLs in `text` without what may carry a secret: user info (`user:pass@`), query string and
/// fragment are replaced by `***`. Scheme, host, port and path stay: they say where.
pub fn redact_urls(text: &str) -> String {
    static URL: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(
            r#"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^\s/?#@"'<>()]*@)?(?P<rest>[^\s?#"'<>()]*)(?P<query>[?#][^\s"'<>()]*)?"#,
        )
        .expect("URL pattern")
    });
    URL.replace_all(text, |c: &regex::Captures| {
        let mut out = c["scheme"].to_string();
        if c.name("user").is_some() {
            out.push_str("***@");
        }
        out.push_str(&c["rest"]);
        if let Some(q) = c.name("query") {
            out.push_str(&q.as_str()[..1]);
            out.push_str("***");
        }
        out
    })
    .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);
    impl fmt::Display for Layer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|l| l as _)
        }
    }

    #[test]
    fn chain_lists_every_cause_once_and_redacts_urls() {
        let e = Layer(
            "error sending request for url (https://u:p@hooks.example/x/y?token=s3cret#f)",
            Some(Box::new(Layer(
                "client error (Connect)",
                Some(Box::new(Layer(
                    "Connect",
                    Some(Box::new(Layer("Connection refused (os error 111)", None))),
                ))),
            ))),
        );
        assert_eq!(
            error_chain(&e),
            "error sending request for url (https://***@hooks.example/x/y?***): \
             client error (Connect): Connection refused (os error 111)"
        );
    }

    #[test]
    fn http_failure_keeps_status_and_a_bounded_one_line_excerpt() {
        assert_eq!(
            http_failure(400, Some("Bad Request"), b"  invalid\n  payload "),
            "HTTP 400 Bad Request: invalid payload"
        );
        assert_eq!(http_failure(503, None, b""), "HTTP 503");
        let long = "é".repeat(400);
        let s = http_failure(500, None, long.as_bytes());
        assert!(
            s.len() <= "HTTP 500: ".len() + BODY_EXCERPT + "…".len(),
            "{s}"
        );
        assert!(s.ends_with('…'));
    }

    #[test]
    fn csv_joins_without_debug_quotes() {
        assert_eq!(Csv(&["codex", "node"]).to_string(), "codex,node");
        assert_eq!(Csv::<String>(&[]).to_string(), "");
    }

    /// Formats events through [`JsonLines`] into a buffer.
    fn capture(f: impl FnOnce()) -> Vec<Value> {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let out = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || out.clone())
            .event_format(JsonLines)
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let bytes = buf.0.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn event_fields_cannot_shadow_the_line_keys_and_keep_their_types() {
        let lines = capture(|| {
            let e = Layer("outer", Some(Box::new(Layer("inner", None))));
            let _span = tracing::info_span!("cycle").entered();
            tracing::warn!(
                target = "udp://statsd:8125",
                level = 3u64,
                ok = true,
                ratio = 0.5,
                delta = -2i64,
                error = &e as &(dyn std::error::Error + 'static),
                "sent {}",
                7
            );
        });
        assert_eq!(lines.len(), 1);
        let l = &lines[0];
        let keys: Vec<&str> = l.as_object().unwrap().keys().map(String::as_str).collect();
        assert!(keys.iter().all(|k| LINE_KEYS.contains(k)), "{keys:?}");
        assert_eq!(l["level"], "WARN");
        assert_eq!(l["target"], module_path!());
        assert_eq!(l["message"], "sent 7");
        assert_eq!(l["spans"], serde_json::json!(["cycle"]));
        let f = &l["fields"];
        assert_eq!(f["target"], "udp://statsd:8125");
        assert_eq!(f["level"], 3);
        assert_eq!(f["ok"], true);
        assert_eq!(f["ratio"], 0.5);
        assert_eq!(f["delta"], -2);
        assert_eq!(f["error"], "outer: inner");
        assert!(l["timestamp"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn rate_limit_counts_what_it_holds_back() {
        let t0 = std::time::Instant::now();
        let every = std::time::Duration::from_secs(10);
        let mut r = RateLimit::new(every);
        assert_eq!(r.allow_at(t0), Some(0));
        assert_eq!(r.allow_at(t0 + every / 2), None);
        assert_eq!(r.allow_at(t0 + every / 2), None);
        assert_eq!(r.allow_at(t0 + every), Some(2));
        assert_eq!(r.allow_at(t0 + every), None);
    }
}
