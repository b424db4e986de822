//! What opentelemetry-otlp 0.33 tells only its internal log (feature `internal-logs`, events
//! through `tracing`), caught for the one export that caused it:
//!
//! * a receiver's **partial success** (`rejected_data_points`, `error_message`), which the SDK
//!   treats as success on both protocols — for the agent it is an export failure: data points
//!   were lost;
//! * a failed gRPC call's **status message** (`grpc_message`), which the SDK's error value
//!   leaves out (it keeps the code only), so the log can say *why* `InvalidArgument`.
//!
//! [`SdkReports::capture`] runs one export future under a `tracing` dispatcher of its own
//! (`WithSubscriber`): these events reach this exporter only — not the agent's log, where they
//! would be a second line about the same failure, and not another agent in the same process.

use std::future::Future;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::instrument::WithSubscriber;
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// What the SDK reported during one export.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reported {
    /// A partial success: data points the receiver rejected, and its message.
    pub rejected: Option<(i64, String)>,
    /// The gRPC status of a failed call, as `Code: message`.
    pub grpc_status: Option<String>,
}

/// Catches the SDK's reports for the exports run through [`capture`](SdkReports::capture).
#[derive(Clone)]
pub struct SdkReports {
    seen: Arc<Mutex<Reported>>,
    dispatch: tracing::Dispatch,
}

impl std::fmt::Debug for SdkReports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SdkReports").finish_non_exhaustive()
    }
}

impl Default for SdkReports {
    fn default() -> Self {
        let seen = Arc::new(Mutex::new(Reported::default()));
        let subscriber = tracing_subscriber::registry().with(Catch { seen: seen.clone() });
        SdkReports {
            seen,
            dispatch: tracing::Dispatch::new(subscriber),
        }
    }
}

impl SdkReports {
    /// Runs `export` and returns its output with what the SDK reported while it ran.
    pub async fn capture<F: Future>(&self, export: F) -> (F::Output, Reported) {
        self.take();
        let out = export.with_subscriber(self.dispatch.clone()).await;
        (out, self.take())
    }

    fn take(&self) -> Reported {
        std::mem::take(&mut *self.seen.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// The SDK's event names end in these (`TonicMetricsClient.PartialSuccess`,
/// `HttpMetricsClient.PartialSuccess`, `TonicMetricsClient.ExportFailed`).
const PARTIAL_SUCCESS: &str = ".PartialSuccess";
const EXPORT_FAILED: &str = ".ExportFailed";

struct Catch {
    seen: Arc<Mutex<Reported>>,
}

impl<S: Subscriber> Layer<S> for Catch {
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        // opentelemetry-otlp's events only (its target is the package name).
        if meta.target().starts_with("opentelemetry") {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let name = event.metadata().name();
        if !(name.ends_with(PARTIAL_SUCCESS) || name.ends_with(EXPORT_FAILED)) {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if name.ends_with(PARTIAL_SUCCESS) {
            seen.rejected = Some((fields.rejected_data_points, fields.error_message));
        } else if !fields.grpc_code.is_empty() {
            seen.grpc_status = Some(if fields.grpc_message.is_empty() {
                fields.grpc_code
            } else {
                format!("{}: {}", fields.grpc_code, fields.grpc_message)
            });
        }
    }
}

#[derive(Default)]
struct Fields {
    rejected_data_points: i64,
    error_message: String,
    grpc_code: String,
    grpc_message: String,
}

impl Visit for Fields {
    fn record_i64(&mut self, field: &Field, value: i64) {
        if field.name() == "rejected_data_points" {
            self.rejected_data_points = value;
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.record_i64(field, i64::try_from(value).unwrap_or(i64::MAX));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "error_message" => self.error_message = value.to_string(),
            "grpc_code" => self.grpc_code = value.to_string(),
            "grpc_message" => self.grpc_message = value.to_string(),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The event as opentelemetry-otlp's `otel_warn!` emits it with `internal-logs` (the macro
    /// itself checks the calling crate's features): caught inside `capture`, and only there.
    #[tokio::test]
    async fn a_partial_success_inside_the_export_is_caught_and_nothing_outside() {
        let reports = SdkReports::default();
        let emit = || {
            tracing::warn!(
                name: "HttpMetricsClient.PartialSuccess",
                target: "opentelemetry-otlp",
                name = "HttpMetricsClient.PartialSuccess",
                rejected_data_points = 3i64,
                error_message = "metric name too long",
            )
        };
        // Inside first: with no global subscriber in a unit test, this dispatcher is the only
        // one, and tracing caches a callsite's interest from the default dispatcher at its first
        // use (the agent always has its global one as well).
        let ((), seen) = reports.capture(async { emit() }).await;
        assert_eq!(seen.rejected, Some((3, "metric name too long".to_string())));
        assert_eq!(seen.grpc_status, None);
        let ((), seen) = reports.capture(async {}).await;
        assert_eq!(
            seen,
            Reported::default(),
            "reports do not outlive their export"
        );
        emit();
        assert_eq!(reports.take(), Reported::default());
    }

    #[tokio::test]
    async fn a_grpc_failure_keeps_its_status_message() {
        let reports = SdkReports::default();
        let ((), seen) = reports
            .capture(async {
                tracing::debug!(
                    name: "TonicMetricsClient.ExportFailed",
                    target: "opentelemetry-otlp",
                    name = "TonicMetricsClient.ExportFailed",
                    grpc_code = "InvalidArgument".to_string(),
                    grpc_message = "attribute value too long",
                );
            })
            .await;
        assert_eq!(
            seen.grpc_status.as_deref(),
            Some("InvalidArgument: attribute value too long")
        );
    }
}
