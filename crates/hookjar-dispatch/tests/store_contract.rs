//! The store contract: one suite of scenarios, run against SQLite (in memory and a
//! file) and against PostgreSQL (a throw-away cluster; skipped with one line when
//! PostgreSQL is not installed, a failure under `HOOKJAR_REQUIRE_POSTGRES=1`),
//! plus what only a shared store does: leases, `SKIP LOCKED`, `LISTEN`/`NOTIFY`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hookjar_core::timeline::Timeline;
use hookjar_core::{
    DeactivateReason, EventType, NewWebhook, Outcome, Payload, Verdict, WebhookPatch,
};
use hookjar_dispatch::pgtemp::TempCluster;
use hookjar_dispatch::store::{AttemptRecord, Claimed, NewEvent, PgConfig, Store, StoreConfig};

const T0: i64 = 1_000_000;

fn event(n: u64, t: EventType) -> NewEvent {
    NewEvent {
        id: format!("ev{n}"),
        event_type: t,
        body: Payload::from_bytes(format!("{{\"n\":{n}}}").into_bytes()),
    }
}

fn record(c: &Claimed, verdict: Verdict, outcome: Outcome, at: i64) -> AttemptRecord {
    AttemptRecord {
        delivery_seq: c.delivery_seq,
        webhook_seq: c.webhook_seq,
        attempt: c.attempt,
        revision: c.revision,
        started_at: at,
        wall_at: at,
        finished_at: at,
        latency_us: 1000,
        outcome,
        verdict,
        detail: "test".into(),
        unknown: false,
    }
}

async fn claim(store: &Store, now: i64) -> Vec<Claimed> {
    store
        .claim_due(now, now, 100, 100, HashMap::new())
        .await
        .unwrap()
}

/// Webhooks: create, list oldest first, update (partial), deactivate, delete.
async fn webhooks(store: Store) {
    let a = store
        .create_webhook(NewWebhook::to("http://127.0.0.1:9/a"), T0)
        .await
        .unwrap();
    let b = store
        .create_webhook(NewWebhook::to("http://127.0.0.1:9/b"), T0)
        .await
        .unwrap();
    let (n, list) = store.list_webhooks(0, 10).await.unwrap();
    assert_eq!(n, 2);
    assert_eq!(
        list.iter().map(|w| w.id.as_str()).collect::<Vec<_>>(),
        [a.id.as_str(), b.id.as_str()]
    );
    let (_, page) = store.list_webhooks(1, 10).await.unwrap();
    assert_eq!(page[0].id, b.id);
    let updated = store
        .update_webhook(
            a.id.clone(),
            WebhookPatch {
                event_type: Some(Some(EventType::CourseCompletion)),
                ..WebhookPatch::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.event_type, Some(EventType::CourseCompletion));
    assert_eq!(updated.target_url, a.target_url, "a patch is partial");
    assert_eq!(
        store.get_webhook(a.id.clone()).await.unwrap(),
        Some(updated)
    );
    let off = store
        .deactivate_webhook(b.id.clone(), DeactivateReason::OrgDisabled)
        .await
        .unwrap()
        .unwrap();
    assert!(!off.active);
    assert_eq!(off.deactivate_reason, Some(DeactivateReason::OrgDisabled));
    assert!(store.delete_webhook(a.id.clone()).await.unwrap());
    assert!(!store.delete_webhook(a.id.clone()).await.unwrap());
    assert_eq!(store.get_webhook(a.id).await.unwrap(), None);
    assert!(
        store
            .update_webhook("nope".into(), WebhookPatch::default())
            .await
            .unwrap()
            .is_none()
    );
}

/// Fan-out (S12), claims with write-ahead attempts (S19), delivered and retried
/// verdicts, the delivery log (X2) and redelivery.
async fn deliveries(store: Store) {
    let all = store
        .create_webhook(NewWebhook::to("http://127.0.0.1:9/x"), T0)
        .await
        .unwrap();
    // Same URL in another spelling: an older webhook already serves it.
    store
        .create_webhook(NewWebhook::to("HTTP://127.0.0.1:9/x"), T0)
        .await
        .unwrap();
    let mut only = NewWebhook::to("http://127.0.0.1:9/only");
    only.event_type = Some(EventType::CourseCompletion);
    let only = store.create_webhook(only, T0).await.unwrap();

    assert_eq!(
        store
            .emit(event(1, EventType::LessonCompletion), T0)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .emit(event(2, EventType::CourseCompletion), T0 + 1)
            .await
            .unwrap(),
        2
    );
    assert_eq!(store.pending_count().await.unwrap(), 3);
    assert_eq!(store.next_due(vec![]).await.unwrap(), Some(T0));
    assert!(claim(&store, T0 - 1).await.is_empty(), "nothing due yet");

    let claimed = claim(&store, T0 + 1).await;
    assert_eq!(claimed.len(), 3);
    assert!(claimed.iter().all(|c| c.attempt == 0));
    assert_eq!(claimed[0].body.bytes().as_ref(), b"{\"n\":1}");
    assert!(claim(&store, T0 + 1).await.is_empty(), "claimed once");
    assert_eq!(store.next_due(vec![]).await.unwrap(), None);
    // Written ahead: the log shows the attempt in flight.
    let (_, log) = store
        .deliveries_of(all.id.clone(), 0, 10, Timeline::start(0, 1.0))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(log[0].state, "inflight");
    assert_eq!(log[0].attempts[0].verdict, "started");

    let mut batch = Vec::new();
    for c in &claimed {
        batch.push(if c.webhook.id == only.id {
            record(
                c,
                Verdict::RetryAfter {
                    delay: Duration::from_secs(2),
                },
                Outcome::status(503),
                T0 + 10,
            )
        } else {
            record(c, Verdict::Delivered, Outcome::status(200), T0 + 10)
        });
    }
    let effects = store.record(batch).await.unwrap();
    assert!(effects.deactivated.is_empty());
    assert_eq!(store.pending_count().await.unwrap(), 1);
    assert_eq!(
        store.next_due(vec![]).await.unwrap(),
        Some(T0 + 10 + 2_000_000)
    );
    let only_seq = claimed
        .iter()
        .find(|c| c.webhook.id == only.id)
        .unwrap()
        .webhook_seq;
    assert_eq!(
        store.next_due(vec![only_seq]).await.unwrap(),
        None,
        "busy left out"
    );

    let (n, log) = store
        .deliveries_of(all.id.clone(), 0, 10, Timeline::start(0, 1.0))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 2);
    assert!(log.iter().all(|d| d.state == "delivered"));
    assert_eq!(log[0].attempts[0].status, Some(200));
    assert_eq!(log[0].attempts[0].verdict, "delivered");
    let (_, log) = store
        .deliveries_of(only.id.clone(), 0, 10, Timeline::start(0, 1.0))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(log[0].state, "pending");
    assert_eq!(log[0].attempts[0].verdict, "retry");
    assert!(log[0].next_attempt_at.is_some());

    let retry = claim(&store, T0 + 10 + 2_000_000).await;
    assert_eq!(retry.len(), 1);
    assert_eq!(retry[0].attempt, 1, "the retry is attempt 1");

    // Redeliver a delivered one: a new delivery, due now.
    let first = store
        .deliveries_of(all.id.clone(), 0, 1, Timeline::start(0, 1.0))
        .await
        .unwrap()
        .unwrap()
        .1
        .remove(0);
    let hookjar_dispatch::store::Redeliver::Queued(_) =
        store.redeliver(first.id, T0 + 20).await.unwrap()
    else {
        panic!("redeliver queues");
    };
    assert_eq!(
        store.redeliver("nope".into(), T0).await.unwrap(),
        hookjar_dispatch::store::Redeliver::NotFound
    );
    assert_eq!(claim(&store, T0 + 20).await.len(), 1);
}

/// S15/S16: a deactivating verdict fails the delivery, deactivates the webhook once
/// and drops its other pending deliveries; a verdict from before an update is
/// logged as stale and not applied.
async fn deactivation_and_stale(store: Store) {
    let w = store
        .create_webhook(NewWebhook::to("http://127.0.0.1:9/d"), T0)
        .await
        .unwrap();
    for i in 0..3 {
        store
            .emit(event(10 + i, EventType::LessonCompletion), T0)
            .await
            .unwrap();
    }
    let mut claimed = store.claim_due(T0, T0, 1, 1, HashMap::new()).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let c = claimed.remove(0);
    let effects = store
        .record(vec![record(
            &c,
            Verdict::Deactivate {
                reason: DeactivateReason::Http4xxResponse,
            },
            Outcome::status(404),
            T0 + 1,
        )])
        .await
        .unwrap();
    assert_eq!(effects.deactivated.len(), 1);
    assert_eq!(effects.deactivated[0].0, w.id);
    assert_eq!(effects.deactivated[0].2, 2, "two pending dropped");
    assert_eq!(store.pending_count().await.unwrap(), 0);
    assert!(
        !store
            .get_webhook(w.id.clone())
            .await
            .unwrap()
            .unwrap()
            .active
    );

    // Stale: claimed, then the webhook is updated, then a 4xx comes back.
    let v = store
        .create_webhook(NewWebhook::to("http://127.0.0.1:9/s"), T0)
        .await
        .unwrap();
    store
        .emit(event(20, EventType::LessonCompletion), T0)
        .await
        .unwrap();
    let c = claim(&store, T0).await.remove(0);
    store
        .update_webhook(
            v.id.clone(),
            WebhookPatch {
                target_url: Some("http://127.0.0.1:9/s2".into()),
                ..WebhookPatch::default()
            },
        )
        .await
        .unwrap();
    let effects = store
        .record(vec![record(
            &c,
            Verdict::Deactivate {
                reason: DeactivateReason::Http4xxResponse,
            },
            Outcome::status(410),
            T0 + 1,
        )])
        .await
        .unwrap();
    assert_eq!(effects.stale, 1);
    assert!(effects.deactivated.is_empty());
    assert!(
        store
            .get_webhook(v.id.clone())
            .await
            .unwrap()
            .unwrap()
            .active
    );
    let (_, log) = store
        .deliveries_of(v.id, 0, 10, Timeline::start(0, 1.0))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(log[0].state, "failed");
    assert!(log[0].attempts[0].stale);

    // A deleted webhook's in-flight record is skipped, not an error.
    let x = store
        .create_webhook(NewWebhook::to("http://127.0.0.1:9/gone"), T0)
        .await
        .unwrap();
    store
        .emit(event(30, EventType::LessonCompletion), T0)
        .await
        .unwrap();
    let claimed = claim(&store, T0).await;
    let c = claimed.iter().find(|c| c.webhook.id == x.id).unwrap();
    store.delete_webhook(x.id.clone()).await.unwrap();
    let effects = store
        .record(vec![record(
            c,
            Verdict::Delivered,
            Outcome::status(200),
            T0,
        )])
        .await
        .unwrap();
    assert_eq!(effects.skipped, 1);

    // Deactivated and re-activated while an attempt is in flight: its late 503 is
    // logged, but the delivery stays dropped and nothing is due again (S16).
    let y = store
        .create_webhook(NewWebhook::to("http://127.0.0.1:9/again"), T0)
        .await
        .unwrap();
    store
        .emit(event(40, EventType::LessonCompletion), T0)
        .await
        .unwrap();
    let c = claim(&store, T0)
        .await
        .into_iter()
        .find(|c| c.webhook.id == y.id)
        .unwrap();
    for active in [false, true] {
        store
            .update_webhook(
                y.id.clone(),
                WebhookPatch {
                    active: Some(active),
                    ..WebhookPatch::default()
                },
            )
            .await
            .unwrap();
    }
    store
        .record(vec![record(
            &c,
            Verdict::RetryAfter {
                delay: Duration::from_secs(2),
            },
            Outcome::status(503),
            T0 + 1,
        )])
        .await
        .unwrap();
    assert!(
        claim(&store, T0 + 10_000_000)
            .await
            .iter()
            .all(|c| c.webhook.id != y.id),
        "nothing requeued"
    );
    let (_, log) = store
        .deliveries_of(y.id, 0, 10, Timeline::start(0, 1.0))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(log[0].state, "dropped");
    assert_eq!(log[0].attempts[0].status, Some(503));
}

/// X3 and the kept key: the first anchor is stored and read back; the first key
/// kept wins.
async fn meta(store: Store) {
    let t = store.timeline(5_000_000, 60.0).await.unwrap();
    assert_eq!(t.scale, 60.0);
    let again = store.timeline(9_000_000, 60.0).await.unwrap();
    assert_eq!(again, t, "the stored anchor is kept");
    let rescaled = store.timeline(9_000_000, 1.0).await.unwrap();
    assert_eq!(rescaled.scale, 1.0);
    assert_eq!(
        rescaled.dispatcher,
        t.dispatcher_at(9_000_000),
        "continuous"
    );
    assert_eq!(store.kept_api_key("k1".into()).await.unwrap(), "k1");
    assert_eq!(store.kept_api_key("k2".into()).await.unwrap(), "k1");
}

/// S19: an attempt left in flight by a claimer that is gone is found as
/// interrupted (with its revision and start), exactly once.
async fn interrupted(store: Store, gone: Store) {
    store
        .create_webhook(NewWebhook::to("http://127.0.0.1:9/i"), T0)
        .await
        .unwrap();
    store
        .emit(event(40, EventType::LessonCompletion), T0)
        .await
        .unwrap();
    let c = claim(&gone, T0 + 5).await.remove(0);
    drop(gone);
    let found = store.interrupted().await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].delivery_seq, c.delivery_seq);
    assert_eq!(found[0].attempt, 0);
    assert_eq!(found[0].revision, c.revision);
    assert_eq!(found[0].started_at, T0 + 5);
}

async fn contract(open: impl Fn() -> Store) {
    webhooks(open()).await;
    deliveries(open()).await;
    deactivation_and_stale(open()).await;
    meta(open()).await;
}

#[tokio::test]
async fn sqlite_in_memory_keeps_the_contract() {
    contract(|| Store::open(&StoreConfig::InMemory).unwrap()).await;
    let s = Store::open(&StoreConfig::InMemory).unwrap();
    interrupted(s.clone(), s).await;
}

#[tokio::test]
async fn sqlite_file_keeps_the_contract() {
    let dir = std::env::temp_dir().join(format!("hookjar-contract-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let n = std::sync::atomic::AtomicUsize::new(0);
    let open = || {
        let file = dir.join(format!(
            "{}.db",
            n.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        Store::open(&StoreConfig::File(file)).unwrap()
    };
    contract(&open).await;
    let s = open();
    assert_eq!(s.backend(), "sqlite");
    interrupted(s.clone(), s).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Group commit (SQLite): concurrent emits are each answered with their own count,
/// a duplicate id among them is refused alone, and every accepted event and its
/// deliveries are committed — still there after the file is reopened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_concurrent_emits_are_each_answered_and_committed() {
    let dir = std::env::temp_dir().join(format!("hookjar-group-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = StoreConfig::File(dir.join("hookjar.db"));
    let store = Store::open(&config).unwrap();
    let all = store
        .create_webhook(NewWebhook::to("http://127.0.0.1:9/all"), T0)
        .await
        .unwrap();
    let mut only = NewWebhook::to("http://127.0.0.1:9/only");
    only.event_type = Some(EventType::CourseCompletion);
    store.create_webhook(only, T0).await.unwrap();
    assert_eq!(
        store
            .emit(event(0, EventType::PathCompletion), T0)
            .await
            .unwrap(),
        1
    );

    // Every 16th emit reuses ev0's id and must fail; the others go to `all`, and
    // COURSE_COMPLETION to `only` as well.
    let emits: Vec<_> = (1..=64u64)
        .map(|n| {
            let t = if n % 2 == 0 {
                EventType::CourseCompletion
            } else {
                EventType::PathCompletion
            };
            let mut e = event(n, t);
            if n % 16 == 0 {
                e.id = "ev0".into();
            }
            let store = store.clone();
            (
                n,
                t,
                tokio::spawn(async move { store.emit(e, T0 + 1).await }),
            )
        })
        .collect();
    let (mut accepted, mut deliveries) = (0, 1);
    for (n, t, answer) in emits {
        match answer.await.unwrap() {
            Ok(count) => {
                assert_ne!(n % 16, 0, "emit {n} reused ev0's id and was accepted");
                let want = if t == EventType::CourseCompletion {
                    2
                } else {
                    1
                };
                assert_eq!(count, want, "emit {n} ({t})");
                accepted += 1;
                deliveries += count as u64;
            }
            Err(e) => assert_eq!(n % 16, 0, "emit {n} failed: {e}"),
        }
    }
    assert_eq!(accepted, 60);
    drop(store);

    let reopened = Store::open(&config).unwrap();
    assert_eq!(reopened.pending_count().await.unwrap(), deliveries);
    let timeline = Timeline {
        wall: 0,
        dispatcher: 0,
        scale: 1.0,
    };
    let (to_all, _) = reopened
        .deliveries_of(all.id, 0, 1000, timeline)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        to_all,
        1 + accepted,
        "one delivery to `all` per accepted event"
    );
    drop(reopened);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Opens a fresh database on `cluster` with `lease`.
async fn pg(cluster: &TempCluster, lease: Duration) -> (PgConfig, Store) {
    let config = PgConfig {
        url: cluster.database().unwrap(),
        lease,
    };
    let store = Store::connect(&StoreConfig::Postgres(config.clone()))
        .await
        .unwrap();
    (config, store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_keeps_the_contract() {
    let Some(cluster) = TempCluster::start_or_skip("postgres_keeps_the_contract") else {
        return;
    };
    for scenario in 0..4 {
        let (_, store) = pg(&cluster, Duration::from_secs(60)).await;
        assert_eq!(store.backend(), "postgres");
        match scenario {
            0 => webhooks(store).await,
            1 => deliveries(store).await,
            2 => deactivation_and_stale(store).await,
            _ => meta(store).await,
        }
    }
    // Interrupted: another process's attempt is taken over only once its lease
    // has run out (a lease of zero has).
    let (config, store) = pg(&cluster, Duration::ZERO).await;
    let gone = Store::connect(&StoreConfig::Postgres(config))
        .await
        .unwrap();
    interrupted(store, gone).await;
}

/// A live process's claims are not taken over: its lease holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_live_lease_is_not_taken_over() {
    let Some(cluster) = TempCluster::start_or_skip("postgres_a_live_lease_is_not_taken_over")
    else {
        return;
    };
    let (config, a) = pg(&cluster, Duration::from_secs(60)).await;
    let b = Store::connect(&StoreConfig::Postgres(config))
        .await
        .unwrap();
    a.create_webhook(NewWebhook::to("http://127.0.0.1:9/l"), T0)
        .await
        .unwrap();
    a.emit(event(1, EventType::LessonCompletion), T0)
        .await
        .unwrap();
    assert_eq!(claim(&a, T0).await.len(), 1);
    assert!(b.interrupted().await.unwrap().is_empty());
    assert!(claim(&b, T0).await.is_empty());
}

/// Two processes claiming at once never claim the same delivery (SKIP LOCKED),
/// and between them claim every one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_concurrent_claims_are_disjoint() {
    let Some(cluster) = TempCluster::start_or_skip("postgres_concurrent_claims_are_disjoint")
    else {
        return;
    };
    let (config, a) = pg(&cluster, Duration::from_secs(60)).await;
    let b = Store::connect(&StoreConfig::Postgres(config))
        .await
        .unwrap();
    for u in 0..4 {
        a.create_webhook(NewWebhook::to(format!("http://127.0.0.1:9/{u}")), T0)
            .await
            .unwrap();
    }
    for i in 0..250 {
        a.emit(event(i, EventType::LessonCompletion), T0)
            .await
            .unwrap();
    }
    let grab = |s: Store| {
        tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let c = s.claim_due(T0, T0, 7, 7, HashMap::new()).await.unwrap();
                if c.is_empty() {
                    return got;
                }
                got.extend(c.into_iter().map(|c| c.delivery_seq));
            }
        })
    };
    let (x, y) = (grab(a.clone()), grab(b.clone()));
    let (x, y) = (x.await.unwrap(), y.await.unwrap());
    let mut all: Vec<i64> = x.iter().chain(&y).copied().collect();
    all.sort_unstable();
    let n = all.len();
    all.dedup();
    assert_eq!(all.len(), n, "a delivery was claimed twice");
    assert_eq!(
        n,
        1000,
        "every delivery claimed (a: {}, b: {})",
        x.len(),
        y.len()
    );
}

/// An emit in one process wakes the engine of another (LISTEN/NOTIFY).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_emit_wakes_other_processes() {
    let Some(cluster) = TempCluster::start_or_skip("postgres_emit_wakes_other_processes") else {
        return;
    };
    let (config, a) = pg(&cluster, Duration::from_secs(60)).await;
    let b = Store::connect(&StoreConfig::Postgres(config))
        .await
        .unwrap();
    let wake = Arc::new(tokio::sync::Notify::new());
    b.subscribe(Arc::clone(&wake));
    a.create_webhook(NewWebhook::to("http://127.0.0.1:9/n"), T0)
        .await
        .unwrap();
    // The LISTEN may not be in place yet: emit until a wake arrives.
    let woke = tokio::time::timeout(Duration::from_secs(20), async {
        for i in 0.. {
            a.emit(event(i, EventType::LessonCompletion), T0)
                .await
                .unwrap();
            if tokio::time::timeout(Duration::from_millis(200), wake.notified())
                .await
                .is_ok()
            {
                return;
            }
        }
    })
    .await;
    assert!(woke.is_ok(), "no NOTIFY reached the other process");
}

/// Migrations run once, also when several processes connect; a newer schema is
/// refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_migrations_are_versioned() {
    let Some(cluster) = TempCluster::start_or_skip("postgres_migrations_are_versioned") else {
        return;
    };
    let config = StoreConfig::Postgres(PgConfig::new(cluster.database().unwrap()));
    let (a, b) = tokio::join!(Store::connect(&config), Store::connect(&config));
    a.unwrap();
    b.unwrap();
    let StoreConfig::Postgres(pg) = &config else {
        unreachable!()
    };
    let (client, conn) = tokio_postgres::connect(&pg.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let v: i64 = client
        .query_one("SELECT version FROM hookjar_schema", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(v, hookjar_dispatch::store::postgres::SCHEMA_VERSION);
    client
        .execute("UPDATE hookjar_schema SET version = version + 1", &[])
        .await
        .unwrap();
    let err = Store::connect(&config).await.unwrap_err();
    assert!(err.to_string().contains("newer than this hookjar"), "{err}");
}

/// Two processes A and B on one fresh database (60 s leases), a plain SQL client on
/// it, and one delivery due for A to claim.
async fn two_processes(cluster: &TempCluster) -> (Store, Store, tokio_postgres::Client) {
    let (config, a) = pg(cluster, Duration::from_secs(60)).await;
    let (sql, conn) = tokio_postgres::connect(&config.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let b = Store::connect(&StoreConfig::Postgres(config.clone()))
        .await
        .unwrap();
    a.create_webhook(NewWebhook::to("http://127.0.0.1:9/r"), T0)
        .await
        .unwrap();
    a.emit(event(1, EventType::LessonCompletion), T0)
        .await
        .unwrap();
    (a, b, sql)
}

/// Makes every lease in flight run out, as if its process had stopped renewing it.
async fn expire_leases(sql: &tokio_postgres::Client) -> u64 {
    sql.execute(
        "UPDATE deliveries SET lease_until = now() - interval '1 hour' WHERE state = 'inflight'",
        &[],
    )
    .await
    .unwrap()
}

/// A live process keeps its leases however long its attempts take to be recorded:
/// its own look for expired leases renews its claims instead of taking them over
/// (found in the kill -9 load run: a 5 s lease ran out while results waited to be
/// written under load, and live attempts were retried as duplicates). Leases run
/// on the database's clock, so "the lease ran out" is written into the row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_live_process_renews_its_own_leases() {
    let Some(cluster) = TempCluster::start_or_skip("postgres_a_live_process_renews_its_own_leases")
    else {
        return;
    };
    let (a, b, sql) = two_processes(&cluster).await;
    assert_eq!(claim(&a, T0).await.len(), 1);
    assert_eq!(expire_leases(&sql).await, 1);
    // A is alive: its own check renews the lease, never takes its attempt over…
    assert!(
        a.interrupted().await.unwrap().is_empty(),
        "A took over its own live attempt"
    );
    // …and the renewed lease holds against B.
    assert!(
        b.interrupted().await.unwrap().is_empty(),
        "B took over a renewed lease"
    );
    // A stops renewing (dies) and the lease runs out: B takes over.
    drop(a);
    assert_eq!(expire_leases(&sql).await, 1);
    assert_eq!(b.interrupted().await.unwrap().len(), 1);
}

/// A process that froze past its lease (SIGSTOP, a VM pause, a stalled link to the
/// database) must not write its late result over the delivery another process took
/// over: the taker counted the attempt (`unknown`) and carries on, and a rewind
/// would restart the back-off and allow more than 61 POSTs (S19; found by a review
/// that froze a dispatcher: 64 POSTs for one delivery).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_late_result_from_a_lost_claim_is_not_applied() {
    let Some(cluster) =
        TempCluster::start_or_skip("postgres_a_late_result_from_a_lost_claim_is_not_applied")
    else {
        return;
    };
    let (a, b, sql) = two_processes(&cluster).await;
    let claimed = claim(&a, T0).await;
    assert_eq!(claimed.len(), 1);
    // A freezes: its lease runs out and B takes the attempt over, counting it.
    expire_leases(&sql).await;
    let taken = b.interrupted().await.unwrap();
    assert_eq!(taken.len(), 1);
    let unknown = AttemptRecord {
        verdict: Verdict::RetryAfter {
            delay: Duration::from_secs(2),
        },
        unknown: true,
        ..record(
            &claimed[0],
            Verdict::Delivered,
            Outcome::transport(hookjar_core::TransportKind::Other, "outcome unknown"),
            T0 + 1_000_000,
        )
    };
    b.record(vec![unknown]).await.unwrap();
    // B claims the retry and its POST is in flight.
    let retry = claim(&b, T0 + 10_000_000).await;
    assert_eq!(retry.len(), 1);
    assert_eq!(retry[0].attempt, 1);
    // A wakes up and records its first attempt's late 503.
    let late = record(
        &claimed[0],
        Verdict::RetryAfter {
            delay: Duration::from_secs(2),
        },
        Outcome::status(503),
        T0 + 20_000_000,
    );
    a.record(vec![late]).await.unwrap();
    let row = sql
        .query_one(
            "SELECT state, attempts, claimed_by IS NOT NULL FROM deliveries",
            &[],
        )
        .await
        .unwrap();
    let (state, attempts, claimed): (String, i32, bool) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(
        (state.as_str(), attempts, claimed),
        ("inflight", 2, true),
        "B's attempt in flight is left as it is"
    );
    let unknown_kept: i64 = sql
        .query_one(
            "SELECT COUNT(*) FROM attempts WHERE n = 0 AND error IS NOT NULL AND status IS NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(unknown_kept, 1, "B's record of attempt 0 stands");
}

/// An emit reads the active webhooks and inserts a delivery for each; a webhook
/// deleted by another process in between must not fail the emit (it failed with a
/// foreign-key violation, a 500, for ~15 % of emits in a review's race), and a
/// redeliver racing a delete answers found or not found, never an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_emits_and_redelivers_race_deletes_without_errors() {
    let Some(cluster) =
        TempCluster::start_or_skip("postgres_emits_and_redelivers_race_deletes_without_errors")
    else {
        return;
    };
    let (config, a) = pg(&cluster, Duration::from_secs(60)).await;
    let b = Store::connect(&StoreConfig::Postgres(config.clone()))
        .await
        .unwrap();
    a.create_webhook(NewWebhook::to("http://127.0.0.1:9/kept"), T0)
        .await
        .unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let churn = {
        let (b, stop) = (b.clone(), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let w = b
                    .create_webhook(NewWebhook::to(format!("http://127.0.0.1:9/s{n}")), T0)
                    .await
                    .unwrap();
                b.delete_webhook(w.id).await.unwrap();
            }
            n
        })
    };
    let mut errors = Vec::new();
    for i in 0..400 {
        if let Err(e) = a
            .emit(event(1000 + i, EventType::LessonCompletion), T0)
            .await
        {
            errors.push(e.to_string());
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let churned = churn.await.unwrap();
    assert!(
        churned > 10,
        "the race ran ({churned} webhooks created and deleted)"
    );
    assert!(
        errors.is_empty(),
        "{} of 400 emits failed: {:?}",
        errors.len(),
        errors.first()
    );

    // Redeliver against a delete of the same webhook, from another process.
    for round in 0..20u64 {
        let w = a
            .create_webhook(NewWebhook::to(format!("http://127.0.0.1:9/r{round}")), T0)
            .await
            .unwrap();
        a.emit(event(5000 + round, EventType::LessonCompletion), T0)
            .await
            .unwrap();
        let (_, log) = a
            .deliveries_of(w.id.clone(), 0, 1, Timeline::start(0, 1.0))
            .await
            .unwrap()
            .unwrap();
        let delivery = log[0].id.clone();
        let (b2, id) = (b.clone(), w.id.clone());
        let delete = tokio::spawn(async move { b2.delete_webhook(id).await });
        let redelivered = a.redeliver(delivery, T0).await;
        delete.await.unwrap().unwrap();
        assert!(redelivered.is_ok(), "round {round}: {redelivered:?}");
    }
}
