//! What one webhook request costs the mock receiver apart from HTTP and the journal
//! file's `write`: the S7–S11 checks, the digest, the decision and the journal line.
//! Run: `cargo bench -p hookjar-mock` (figures in docs/performance.md).

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use hookjar_core::{Event, EventType};
use hookjar_mock::decide::{Incoming, Inspected, State};
use hookjar_mock::{Expectations, Scripts};
use http::{HeaderMap, HeaderValue, Method};
use time::macros::datetime;
use tokio::time::Instant;

/// A request as hyper hands it over: wrk's headers (`crates/hookjar-bench/wrk/post.lua`)
/// and a valid payload.
fn incoming(body: Bytes) -> Incoming {
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("127.0.0.1:8798"));
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers.insert("user-agent", HeaderValue::from_static("skilljar"));
    headers.insert("content-length", HeaderValue::from(body.len()));
    Incoming {
        method: Method::POST,
        path: "/hook".to_owned(),
        headers,
        body,
        arrived: Instant::now(),
        since_start: Duration::from_micros(1_234_567),
        received_at: datetime!(2026-11-27 09:30:01.5 UTC),
    }
}

fn record(c: &mut Criterion) {
    let at = datetime!(2026-11-27 09:30:00.123456 UTC);
    let body = Event::fixture(EventType::CourseEnrollment, at)
        .to_payload()
        .bytes()
        .clone();
    let expect = Expectations::default();
    c.bench_function("mock: checks + digest (Inspected::new)", |b| {
        b.iter_batched(
            || incoming(body.clone()),
            |inc| black_box(Inspected::new(inc, &expect)),
            BatchSize::SmallInput,
        )
    });
    let mut state = State::new(Scripts::default());
    c.bench_function("mock: one request (checks, decision, journal line)", |b| {
        b.iter_batched(
            || incoming(body.clone()),
            |inc| black_box(state.record_for_bench(Inspected::new(inc, &expect))),
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, record);
criterion_main!(benches);
