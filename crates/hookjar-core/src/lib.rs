//! `hookjar-core`: the pure model and rules of the Skilljar Webhooks API.
//!
//! Clause ids (S1…, X1…) refer to `SPEC.md` / `docs/spec.md`.
//!
//! # Layout
//! - [`event_type`] — the ten event types of S10, wire and kebab names.
//! - [`webhook`] — webhooks, create/update input and its validation (S2–S6).
//! - [`payload`] — events, payload bytes, timestamps, digests, body checks (S11, S13, X5).
//! - [`fixtures`] — the embedded fixture payloads.
//! - [`request`] — the exact HTTP request of a delivery (S7–S9).
//! - [`retry`] — the back-off schedule (S14–S15).
//! - [`verdict`] — what an outcome means: delivered, retry, deactivate (S15–S18).
//! - [`script`] — the mock receiver's script language.
//! - [`timeline`] — X3's dispatcher time: one anchored timeline, time scales.
//!
//! # Promises
//! No I/O, no async runtime, no clock: every rule that depends on time takes it as an
//! argument (`clippy.toml` forbids reading the clock here). Everything is `Send + Sync`
//! plain data, so the I/O crates (`hookjar-mock`, `hookjar-dispatch`) drive it and the
//! tests exercise it with proptest.

pub mod event_type;
pub mod fixtures;
pub mod ids;
pub mod payload;
pub mod request;
pub mod retry;
pub mod script;
pub mod timeline;
pub mod verdict;
pub mod webhook;

pub use event_type::{EventType, UnknownEventType};
pub use payload::{Digest, Event, Payload};
pub use request::DeliveryRequest;
pub use retry::RetryPolicy;
pub use verdict::{DeactivateReason, Outcome, TransportKind, Verdict};
pub use webhook::{NewWebhook, ValidationErrors, Webhook, WebhookPatch};
