//! What every case shares: the management API client, the case context (mock, time,
//! policy, cleanup) and the timing checks.

use std::time::Duration;

use hookjar_core::{EventType, RetryPolicy};
use hookjar_mock::{MockReceiver, RecordedRequest};
use serde_json::{Value, json};

use super::timing::{self, Gap, Timing};
use super::{CaseError, Target, TimeMode};

/// The management API client.
pub(super) struct Api {
    pub(super) client: reqwest::Client,
    pub(super) base: String,
    pub(super) key: String,
}

impl Api {
    pub(super) fn new(target: &Target) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            // Servers close idle keep-alive connections (hookjar's after its 10 s
            // header timeout, Node's after 5 s); a request sent on one as it closes
            // fails. Dropping them sooner avoids that race, in real and virtual time.
            .pool_idle_timeout(Duration::from_secs(2))
            .no_proxy()
            .build()?;
        Ok(Api {
            client,
            base: target.url.trim_end_matches('/').to_owned(),
            key: target.api_key.clone(),
        })
    }

    pub(super) async fn send(
        &self,
        req: reqwest::RequestBuilder,
        auth: bool,
    ) -> Result<(u16, String), CaseError> {
        let req = if auth {
            req.basic_auth(&self.key, Some(""))
        } else {
            req
        };
        let resp = req.send().await?;
        let code = resp.status().as_u16();
        let text = resp.text().await?;
        Ok((code, text))
    }

    pub(super) async fn get(&self, path: &str) -> Result<(u16, String), CaseError> {
        self.send(self.client.get(format!("{}{path}", self.base)), true)
            .await
    }

    /// A POST without a body (ping, redeliver).
    pub(super) async fn post_empty(&self, path: &str) -> Result<(u16, Value), CaseError> {
        self.json(reqwest::Method::POST, path, None).await
    }

    pub(super) async fn get_json(&self, path: &str) -> Result<(u16, Value), CaseError> {
        self.json(reqwest::Method::GET, path, None).await
    }

    pub(super) async fn json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), CaseError> {
        let mut req = self
            .client
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(b);
        }
        let (code, text) = self.send(req, true).await?;
        let value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).map_err(|_| {
                CaseError(format!(
                    "{method} {path} answered {code} with a body that is not JSON: {text:.200}"
                ))
            })?
        };
        Ok((code, value))
    }
}

/// Everything a case needs.
pub(super) struct Ctx {
    pub(super) api: Api,
    pub(super) mock: MockReceiver,
    /// The base URL the dispatcher is told to POST to (`--receiver-url`).
    pub(super) receiver_base: String,
    pub(super) time: TimeMode,
    pub(super) policy: RetryPolicy,
    pub(super) quick: bool,
    pub(super) created: Vec<String>,
    /// The dispatcher's per-attempt overhead (wall time), measured in S7's case.
    pub(super) overhead: Duration,
    /// Every violation the mock recorded in the run, `path: violation`.
    pub(super) violations: Vec<String>,
}

impl Ctx {
    pub(super) fn mock_url(&self, path: &str) -> String {
        format!("{}{path}", self.receiver_base)
    }

    /// Creates a webhook (expects 201) and remembers it for cleanup.
    pub(super) async fn create(&mut self, body: Value) -> Result<Value, CaseError> {
        let (code, v) = self
            .api
            .json(reqwest::Method::POST, "/v1/webhooks", Some(&body))
            .await?;
        if code != 201 {
            return Err(CaseError(format!(
                "POST /v1/webhooks answered {code}, expected 201: {v}"
            )));
        }
        let id = v["id"]
            .as_str()
            .ok_or_else(|| CaseError(format!("created webhook has no id: {v}")))?
            .to_owned();
        self.created.push(id);
        Ok(v)
    }

    /// POSTs a create that may be refused; remembers what it created, for cleanup.
    pub(super) async fn try_create(&mut self, body: &Value) -> Result<(u16, Value), CaseError> {
        let (code, v) = self
            .api
            .json(reqwest::Method::POST, "/v1/webhooks", Some(body))
            .await?;
        if let (201, Some(id)) = (code, v["id"].as_str()) {
            self.created.push(id.to_owned());
        }
        Ok((code, v))
    }

    /// POSTs a form-encoded create that may be refused; remembers what it created.
    pub(super) async fn try_create_form(
        &mut self,
        fields: &[(&str, &str)],
    ) -> Result<(u16, Value), CaseError> {
        self.try_create_with(|post| post.form(fields)).await
    }

    /// POSTs a create whose body `body` sets on the request (a form, multipart); it
    /// may be refused; remembers what it created.
    pub(super) async fn try_create_with(
        &mut self,
        body: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<(u16, Value), CaseError> {
        let (code, text) = self
            .api
            .send(
                body(
                    self.api
                        .client
                        .post(format!("{}/v1/webhooks", self.api.base)),
                ),
                true,
            )
            .await?;
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if let (201, Some(id)) = (code, v["id"].as_str()) {
            self.created.push(id.to_owned());
        }
        Ok((code, v))
    }

    /// Creates a webhook (expects 201) and returns its id.
    pub(super) async fn create_id(&mut self, body: Value) -> Result<String, CaseError> {
        Ok(self.create(body).await?["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    /// PATCHes webhook `id` with `body`: the status and the answer's JSON.
    pub(super) async fn patch(&self, id: &str, body: Value) -> Result<(u16, Value), CaseError> {
        self.api
            .json(
                reqwest::Method::PATCH,
                &format!("/v1/webhooks/{id}"),
                Some(&body),
            )
            .await
    }

    /// Pings webhook `id` (S13): the status and the answer's JSON.
    pub(super) async fn ping(&self, id: &str) -> Result<(u16, Value), CaseError> {
        self.api
            .post_empty(&format!("/v1/webhooks/{id}/ping"))
            .await
    }

    /// Makes the mock answer each listed event type with its script, whatever the
    /// path (`&[]`: no such scripts; each case that sets them clears them after).
    pub(super) fn scripts_by_type(&self, scripts: &[(EventType, &str)]) -> Result<(), CaseError> {
        let mut for_type = std::collections::BTreeMap::new();
        for (t, text) in scripts {
            let script = hookjar_mock::Script::parse(text)
                .map_err(|e| CaseError(format!("the script {text}: {e}")))?;
            for_type.insert(*t, script);
        }
        self.mock.update_scripts(hookjar_mock::ScriptUpdate {
            for_type: Some(for_type),
            ..hookjar_mock::ScriptUpdate::default()
        });
        Ok(())
    }

    /// A webhook for `event_type` (None = all) at the mock's `path`.
    pub(super) async fn hook(
        &mut self,
        path: &str,
        event_type: Option<EventType>,
    ) -> Result<String, CaseError> {
        let v = self
            .create(json!({"target_url": self.mock_url(path), "event_type": event_type}))
            .await?;
        Ok(v["id"].as_str().unwrap_or_default().to_owned())
    }

    pub(super) async fn webhook(&self, id: &str) -> Result<Value, CaseError> {
        let (code, v) = self.api.get_json(&format!("/v1/webhooks/{id}")).await?;
        if code != 200 {
            return Err(CaseError(format!(
                "GET /v1/webhooks/{id} answered {code}: {v}"
            )));
        }
        Ok(v)
    }

    /// A webhook's delivery log (X2): the status and the deliveries of its first page.
    pub(super) async fn deliveries(&self, id: &str) -> Result<(u16, Vec<Value>), CaseError> {
        let (code, v) = self
            .api
            .get_json(&format!("/v1/webhooks/{id}/deliveries"))
            .await?;
        Ok((code, v["results"].as_array().cloned().unwrap_or_default()))
    }

    /// Emits an event (X1), expecting 202.
    pub(super) async fn emit(
        &self,
        event_type: EventType,
        extra: Value,
    ) -> Result<Value, CaseError> {
        let mut body = json!({"event_type": event_type});
        if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
            b.extend(e);
        }
        let (code, v) = self
            .api
            .json(reqwest::Method::POST, "/v1/events", Some(&body))
            .await?;
        if code != 202 {
            return Err(CaseError(format!(
                "POST /v1/events answered {code}, expected 202: {v}"
            )));
        }
        Ok(v)
    }

    /// Waits until the mock has seen `n` requests in all, or `budget` of dispatcher time.
    pub(super) async fn wait(&self, n: usize, budget: Duration) -> Vec<RecordedRequest> {
        let timeout = self.time.wait(budget) + Duration::from_secs(2);
        match self.mock.wait_for_requests(n, timeout).await {
            Ok(reqs) => reqs,
            Err(_) => self.mock.requests(),
        }
    }

    /// Lets `d` of dispatcher time pass (so that a POST that should not come, would).
    pub(super) async fn settle(&self, d: Duration) {
        tokio::time::sleep(self.time.wait(d) + Duration::from_millis(200)).await;
    }

    /// Polls a webhook until `done` holds or `budget` of dispatcher time passes.
    pub(super) async fn until_webhook(
        &self,
        id: &str,
        budget: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Result<Value, CaseError> {
        let deadline =
            tokio::time::Instant::now() + self.time.wait(budget) + Duration::from_secs(2);
        loop {
            let v = self.webhook(id).await?;
            if done(&v) || tokio::time::Instant::now() >= deadline {
                return Ok(v);
            }
            tokio::time::sleep(
                (self.time.wait(budget) / 200)
                    .clamp(Duration::from_millis(20), Duration::from_secs(1)),
            )
            .await;
        }
    }

    pub(super) fn on_path(&self, reqs: &[RecordedRequest], path: &str) -> Vec<RecordedRequest> {
        reqs.iter()
            .filter(|r| r.path_only() == path)
            .cloned()
            .collect()
    }

    /// Adds the violations the mock recorded in this case to the run's (S7.every-request).
    pub(super) fn collect_violations(&mut self) {
        let reqs = self.mock.requests();
        for r in reqs {
            for v in &r.violations {
                self.violations
                    .push(format!("{} {}: {v}", r.method, r.path));
            }
        }
    }

    /// Polls the delivery log of `id` until its first delivery shows `attempts`
    /// attempts, or `budget` of dispatcher time (plus 2 s) passes: a dispatcher may log
    /// an attempt only once it completes, after the receiver journaled the request.
    pub(super) async fn until_attempts(
        &self,
        id: &str,
        attempts: usize,
        budget: Duration,
    ) -> Result<(u16, Vec<Value>), CaseError> {
        let deadline =
            tokio::time::Instant::now() + self.time.wait(budget) + Duration::from_secs(2);
        loop {
            let (code, deliveries) = self.deliveries(id).await?;
            let n = deliveries
                .first()
                .and_then(|d| d["attempts"].as_array())
                .map_or(0, Vec::len);
            if (code == 200 && n >= attempts) || tokio::time::Instant::now() >= deadline {
                return Ok((code, deliveries));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Checks one delivery's arrivals against the policy's gaps before retries
    /// `1..=arrivals-1` (see [`super::timing`]).
    pub(super) fn timing(&self, reqs: &[RecordedRequest], gaps: &[Gap]) -> Timing {
        let arrivals: Vec<tokio::time::Instant> = reqs.iter().map(|r| r.arrived).collect();
        timing::check(self.time, &arrivals, gaps, self.overhead)
    }

    /// Deletes what the case created.
    pub(super) async fn cleanup(&mut self) {
        for id in std::mem::take(&mut self.created) {
            let _ = self
                .api
                .json(reqwest::Method::DELETE, &format!("/v1/webhooks/{id}"), None)
                .await;
        }
    }
}

pub(super) fn header<'a>(r: &'a RecordedRequest, name: &str) -> Option<&'a str> {
    r.header(name)
}

pub(super) fn fmt_secs(gaps: &[Duration]) -> String {
    let parts: Vec<String> = gaps
        .iter()
        .map(|g| {
            let s = g.as_secs_f64();
            if (s - s.round()).abs() < 0.001 {
                format!("{}", s.round() as u64)
            } else {
                format!("{s:.2}")
            }
        })
        .collect();
    parts.join(",")
}
