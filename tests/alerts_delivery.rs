//! Delivery against an HTTP receiver that records every request and answers 500, 429 with
//! `Retry-After`, 4xx, or stalls: retries, ordering, no duplicates, Slack's payload and pace.

mod alerts_support;
mod common;

use std::sync::Arc;
use std::time::Duration;

use alerts_support::{Answer, Receiver};
use codex_sentinel::alerts::delivery::{self, DeliverySettings};
use codex_sentinel::alerts::notify;
use codex_sentinel::alerts::store::Store;
use codex_sentinel::alerts::{
    engine::EngineState, result, AlertBody, AlertEvent, AlertStatus, Category, Notification,
    NotificationCounters, Severity, SinkKind,
};
use codex_sentinel::config::{Config, Secret};
use tokio_util::sync::CancellationToken;

fn event(key: &str, severity: Severity, status: AlertStatus) -> AlertEvent {
    AlertEvent {
        key: key.into(),
        rule: key.into(),
        status,
        starts_at: 1_000,
        ends_at: (status == AlertStatus::Resolved).then_some(2_000),
        body: AlertBody {
            timestamp: 1_000,
            severity,
            title: format!("Title {key}"),
            message: format!("Message {key}"),
            category: Category::Reliability,
            details: Default::default(),
            recommendations: vec!["Look".into()],
            runbook: "https://runbooks.example/x".into(),
        },
    }
}

fn notification(events: Vec<AlertEvent>) -> Notification {
    Notification {
        id: 0,
        instance: String::new(),
        created: 1_000,
        events,
    }
}

struct Rig {
    store: Arc<Store>,
    counters: Arc<NotificationCounters>,
    shutdown: CancellationToken,
    sink: SinkKind,
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Starts one delivery task for the webhook configured by `f`.
fn rig(url: String, timeout_ms: u64, max_attempts: u32, f: impl FnOnce(&mut Config)) -> Rig {
    let mut cfg = Config::default();
    cfg.alerting.webhook.url = Some(Secret::new(url));
    cfg.alerting.delivery.timeout = timeout_ms;
    f(&mut cfg);
    let notifier = notify::build(&cfg).unwrap().remove(0);
    let sink = notifier.kind();
    let store = Arc::new(Store::in_memory());
    let counters = Arc::new(NotificationCounters::for_sinks(&[sink]));
    let shutdown = CancellationToken::new();
    let settings = DeliverySettings {
        timeout: Duration::from_millis(timeout_ms),
        max_attempts,
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(400),
    };
    tokio::spawn(delivery::run(
        Arc::new(notifier),
        store.clone(),
        counters.clone(),
        settings,
        shutdown.clone(),
    ));
    Rig {
        store,
        counters,
        shutdown,
        sink,
    }
}

impl Rig {
    fn queue(&self, ns: Vec<Notification>) -> Vec<Notification> {
        self.store.commit(&EngineState::default(), ns, &[self.sink])
    }

    async fn drained(&self) {
        for _ in 0..400 {
            if self.store.pending(self.sink) == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("queue not drained: {:?}", self.store.outbox());
    }
}

/// Ids are time-ordered (epoch ms × 1000 + sequence): tests compare them to the first one's,
/// numbering the notifications from 1.
fn base_of(all: &[alerts_support::Recorded]) -> u64 {
    all.iter().map(id_of).min().unwrap() - 1
}

fn id_of(r: &alerts_support::Recorded) -> u64 {
    r.header("Idempotency-Key")
        .unwrap()
        .rsplit('-')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_5xx_in_order_without_duplicates() {
    let rx = Receiver::start();
    rx.script(&[Answer::Status(500), Answer::Status(503)]);
    let rig = rig(rx.url("/hook"), 2_000, 5, |_| {});
    rig.queue(vec![
        notification(vec![event("a", Severity::Critical, AlertStatus::Firing)]),
        notification(vec![event("b", Severity::Warning, AlertStatus::Firing)]),
        notification(vec![event("a", Severity::Critical, AlertStatus::Resolved)]),
    ]);
    rig.drained().await;
    let all = rx.all();
    let seen: Vec<(u64, bool)> = all
        .iter()
        .map(|r| (id_of(r) - base_of(&all), r.accepted()))
        .collect();
    assert_eq!(
        seen,
        vec![(1, false), (1, false), (1, true), (2, true), (3, true)],
        "the head is retried before later notifications go out"
    );
    assert_eq!(all[2].header("X-Codex-Sentinel-Status"), Some("firing"));
    assert_eq!(all[4].header("X-Codex-Sentinel-Status"), Some("resolved"));
    assert_eq!(all[4].json()["title"], "Title a");
    assert_eq!(rig.counters.get(SinkKind::Webhook, result::DELIVERED), 3);
    assert_eq!(rig.counters.get(SinkKind::Webhook, result::RETRIED), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honours_retry_after_on_429() {
    let rx = Receiver::start();
    rx.script(&[Answer::TooMany(2)]);
    let rig = rig(rx.url("/hook"), 2_000, 5, |_| {});
    rig.queue(vec![notification(vec![event(
        "a",
        Severity::Critical,
        AlertStatus::Firing,
    )])]);
    rig.drained().await;
    let all = rx.all();
    assert_eq!(all.len(), 2);
    let waited = all[1].at - all[0].at;
    assert!(
        waited >= Duration::from_millis(1_950),
        "retried after {waited:?}, Retry-After was 2 s"
    );
    assert_eq!(rig.counters.get(SinkKind::Webhook, result::DELIVERED), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_errors_are_not_retried() {
    let rx = Receiver::start();
    rx.script(&[Answer::Status(400)]);
    let rig = rig(rx.url("/hook"), 2_000, 5, |_| {});
    rig.queue(vec![
        notification(vec![event("a", Severity::Critical, AlertStatus::Firing)]),
        notification(vec![event("b", Severity::Critical, AlertStatus::Firing)]),
    ]);
    rig.drained().await;
    let all = rx.all();
    let ids: Vec<(u64, bool)> = all
        .iter()
        .map(|r| (id_of(r) - base_of(&all), r.accepted()))
        .collect();
    assert_eq!(ids, vec![(1, false), (2, true)]);
    assert_eq!(rig.counters.get(SinkKind::Webhook, result::REJECTED), 1);
    assert_eq!(rig.counters.get(SinkKind::Webhook, result::RETRIED), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_receiver_times_out_and_is_retried() {
    let rx = Receiver::start();
    rx.script(&[Answer::Stall(Duration::from_secs(5))]);
    let rig = rig(rx.url("/hook"), 1_500, 5, |_| {});
    rig.queue(vec![notification(vec![event(
        "a",
        Severity::Critical,
        AlertStatus::Firing,
    )])]);
    rig.drained().await;
    let all = rx.all();
    assert_eq!(all.len(), 2, "one stalled attempt, one accepted");
    assert!(all[1].accepted());
    assert_eq!(
        id_of(&all[0]),
        id_of(&all[1]),
        "the same notification, not a new one"
    );
    assert_eq!(rig.counters.get(SinkKind::Webhook, result::RETRIED), 1);
    assert_eq!(rig.counters.get(SinkKind::Webhook, result::DELIVERED), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gives_up_after_max_attempts_and_counts_it() {
    let rx = Receiver::start();
    rx.set_default(Answer::Status(502));
    let rig = rig(rx.url("/hook"), 2_000, 3, |_| {});
    rig.queue(vec![notification(vec![event(
        "a",
        Severity::Critical,
        AlertStatus::Firing,
    )])]);
    rig.drained().await;
    assert_eq!(rx.all().len(), 3);
    assert_eq!(rig.counters.get(SinkKind::Webhook, result::UNDELIVERED), 1);
    assert_eq!(rig.counters.get(SinkKind::Webhook, result::RETRIED), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_headers_are_sent() {
    let rx = Receiver::start();
    let rig = rig(rx.url("/hook"), 2_000, 3, |c| {
        c.alerting
            .webhook
            .headers
            .insert("Authorization".into(), Secret::new("Bearer receiver-token"));
    });
    rig.queue(vec![notification(vec![event(
        "a",
        Severity::Info,
        AlertStatus::Firing,
    )])]);
    rig.drained().await;
    let r = &rx.all()[0];
    assert_eq!(r.header("Authorization"), Some("Bearer receiver-token"));
    assert_eq!(r.header("Content-Type"), Some("application/json"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregated_group_keeps_the_specification_shape() {
    let rx = Receiver::start();
    let rig = rig(rx.url("/hook"), 2_000, 3, |_| {});
    rig.queue(vec![notification(vec![
        event("a", Severity::Warning, AlertStatus::Firing),
        event("b", Severity::Critical, AlertStatus::Firing),
        event("c", Severity::Warning, AlertStatus::Resolved),
    ])]);
    rig.drained().await;
    let body = rx.all()[0].json();
    let mut keys: Vec<_> = body.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "category",
            "details",
            "message",
            "recommendations",
            "runbook",
            "severity",
            "timestamp",
            "title"
        ]
    );
    assert_eq!(body["severity"], "critical");
    assert_eq!(
        body["title"],
        "3 Codex alerts: 1 critical, 1 warning, 1 resolved"
    );
    assert_eq!(body["details"]["count"], 3);
    assert_eq!(body["details"]["alerts"][1]["title"], "Title b");
    assert_eq!(body["details"]["alerts"][2]["status"], "resolved");
    assert_eq!(rx.all()[0].header("X-Codex-Sentinel-Status"), Some("mixed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_payload_colour_and_pace() {
    let rx = Receiver::start();
    rx.script(&[Answer::Status(200), Answer::TooMany(1)]);
    let rig = rig(rx.url("/services/T0/B0/x"), 2_000, 5, |c| {
        c.alerting.webhook.format = Some(codex_sentinel::config::WebhookFormat::Slack);
        c.alerting.slack.channel = Some("#alerts".into());
        c.alerting.slack.username = Some("GansAuditor-Codex".into());
    });
    assert_eq!(rig.sink, SinkKind::Slack);
    rig.queue(vec![
        notification(vec![event("a", Severity::Critical, AlertStatus::Firing)]),
        notification(vec![event("b", Severity::Warning, AlertStatus::Firing)]),
        notification(vec![event("a", Severity::Critical, AlertStatus::Resolved)]),
    ]);
    rig.drained().await;
    let all = rx.all();
    assert_eq!(
        all.len(),
        4,
        "three messages, one of them retried after 429"
    );
    let accepted: Vec<_> = all.iter().filter(|r| r.accepted()).collect();
    for pair in all.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= Duration::from_millis(950),
            "two Slack posts {gap:?} apart"
        );
    }
    let first = accepted[0].json();
    assert_eq!(first["text"], "[CRITICAL] Title a: Message a");
    assert_eq!(first["channel"], "#alerts");
    assert_eq!(first["username"], "GansAuditor-Codex");
    assert_eq!(first["attachments"][0]["color"], "#e01e5a");
    assert_eq!(
        first["attachments"][0]["title_link"],
        "https://runbooks.example/x"
    );
    assert_eq!(accepted[1].json()["attachments"][0]["color"], "#ecb22e");
    let resolved = accepted[2].json();
    assert_eq!(resolved["text"], "[RESOLVED] Title a: Message a");
    assert_eq!(resolved["attachments"][0]["color"], "#2eb67d");
    assert!(
        first.get("timestamp").is_none(),
        "Slack gets its own payload, not the generic body"
    );
}

/// A receiver that answers every request with `status` pointing at a thief on another host
/// (127.0.0.2), and the thief.
fn redirecting(status: u16) -> (Receiver, Receiver) {
    let thief = Receiver::start_on(std::net::TcpListener::bind("127.0.0.2:0").unwrap());
    let rx = Receiver::start();
    rx.set_default(Answer::Redirect(status));
    rx.set_location(&thief.url("/steal?token=from-the-redirect"));
    (rx, thief)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_is_never_followed_and_is_a_failed_delivery() {
    for status in [301, 302, 307, 308] {
        let (rx, thief) = redirecting(status);
        let rig = rig(rx.url("/hook?token=s3cret-hook"), 2_000, 3, |c| {
            c.alerting
                .webhook
                .headers
                .insert("X-Api-Key".into(), Secret::new("s3cret-key"));
        });
        rig.queue(vec![notification(vec![event(
            "a",
            Severity::Critical,
            AlertStatus::Firing,
        )])]);
        rig.drained().await;
        assert_eq!(rx.all().len(), 1, "{status}: one attempt, not retried");
        assert_eq!(rig.counters.get(rig.sink, result::DELIVERED), 0, "{status}");
        assert_eq!(rig.counters.get(rig.sink, result::REJECTED), 1, "{status}");
        assert!(
            thief.all().is_empty(),
            "{status}: the other host got {:?}",
            thief.all()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_redirects_are_not_followed_either() {
    let (rx, thief) = redirecting(307);
    let mut cfg = Config::default();
    cfg.alerting.alertmanager.url = Some(Secret::new(rx.url("/")));
    let notifier = notify::build(&cfg).unwrap().remove(0);
    assert_eq!(notifier.kind(), SinkKind::Alertmanager);
    let err = notifier
        .send(&notification(vec![event(
            "a",
            Severity::Critical,
            AlertStatus::Firing,
        )]))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, notify::SendError::Permanent(m) if m.contains("307 redirect to http://127.0.0.2:")),
        "{err:?}"
    );
    assert!(!err.to_string().contains("from-the-redirect"), "{err}");
    assert!(thief.all().is_empty());
}
