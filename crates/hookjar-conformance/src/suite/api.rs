//! Management API cases: S1 list, S2 create, S3 resource, S4 update/delete, S5 auth,
//! S6 validation, S6b samples.

use std::collections::BTreeSet;

use hookjar_core::EventType;
use serde_json::{Value, json};

use super::CaseOutput;
use super::context::Ctx;
use crate::report::CaseResult;

pub(super) async fn s5_auth(ctx: &mut Ctx) -> CaseOutput {
    let url = format!("{}/v1/webhooks", ctx.api.base);
    let c = &ctx.api.client;
    let none = c.get(&url).send().await?;
    let none_code = none.status().as_u16();
    let challenge = none
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let none_body: Value = none.json().await.unwrap_or(Value::Null);
    let wrong = c
        .get(&url)
        .basic_auth("hookjar-wrong-key", Some(""))
        .send()
        .await?
        .status()
        .as_u16();
    let bearer = c
        .get(&url)
        .bearer_auth(&ctx.api.key)
        .send()
        .await?
        .status()
        .as_u16();
    let ok = none_code == 401
        && challenge.to_ascii_lowercase().starts_with("basic")
        && none_body.get("detail").is_some()
        && wrong == 401
        && bearer == 401;
    let auth = CaseResult::check(
        "S5.auth",
        "S5",
        ok,
        "401 {\"detail\"} with WWW-Authenticate: Basic without a key, with a wrong key and with a Bearer token",
        format!(
            "no key → {none_code} (WWW-Authenticate: {challenge:?}, body {none_body}); wrong key → {wrong}; Bearer → {bearer}"
        ),
    );
    let (code, body) = ctx.api.get("/v1/ping").await?;
    let ping = CaseResult::check(
        "S5.ping",
        "S5",
        code == 200 && body.trim().is_empty(),
        "GET /v1/ping with the key → 200 with an empty body",
        format!("{code} {body:?}"),
    );
    Ok(vec![auth, ping])
}

pub(super) async fn s2_create(ctx: &mut Ctx) -> CaseOutput {
    let url = ctx.mock_url("/ok");
    let (code, v) = ctx
        .api
        .json(
            reqwest::Method::POST,
            "/v1/webhooks",
            Some(&json!({"target_url": url, "event_type": "COURSE_ENROLLMENT", "basic_auth_password": "pw"})),
        )
        .await?;
    if let Some(id) = v["id"].as_str() {
        ctx.created.push(id.to_owned());
    }
    let json_ok = code == 201
        && v["target_url"] == url
        && v["active"] == true
        && v["event_type"] == "COURSE_ENROLLMENT"
        && v["deactivate_reason"].is_null();
    let create_json = CaseResult::check(
        "S2.create-json",
        "S2",
        json_ok,
        "201 with the resource: target_url, active true by default, event_type, deactivate_reason null",
        if json_ok {
            format!(
                "{code}: active {}, event_type {}, deactivate_reason {}",
                v["active"], v["event_type"], v["deactivate_reason"]
            )
        } else {
            format!("{code} {v}")
        },
    );
    let resp = ctx
        .api
        .send(
            ctx.api
                .client
                .post(format!("{}/v1/webhooks", ctx.api.base))
                .form(&[
                    ("target_url", url.as_str()),
                    ("active", "false"),
                    (
                        "additional_headers",
                        r#"{"example_client_id":"abdcjkcjdidshdshkn"}"#,
                    ),
                ]),
            true,
        )
        .await?;
    let form: Value = serde_json::from_str(&resp.1).unwrap_or(Value::Null);
    if let Some(id) = form["id"].as_str() {
        ctx.created.push(id.to_owned());
    }
    let form_ok = resp.0 == 201
        && form["active"] == false
        && form["event_type"].is_null()
        && form["additional_headers"]["example_client_id"] == "abdcjkcjdidshdshkn";
    let create_form = CaseResult::check(
        "S2.create-form",
        "S2",
        form_ok,
        "a form-encoded create → 201; additional_headers given as a JSON object string",
        if form_ok {
            format!(
                "{}: active {}, additional_headers {}",
                resp.0, form["active"], form["additional_headers"]
            )
        } else {
            format!("{} {}", resp.0, resp.1)
        },
    );
    let id = v["id"].as_str().unwrap_or("");
    let fields: BTreeSet<&str> = v
        .as_object()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let expected_fields: BTreeSet<&str> = [
        "id",
        "target_url",
        "active",
        "deactivate_reason",
        "event_type",
        "basic_auth_username",
        "basic_auth_password",
        "additional_headers",
    ]
    .into_iter()
    .collect();
    let id_ok = !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase());
    let masked = v["basic_auth_password"] == "********";
    let resource = CaseResult::check(
        "S3.resource",
        "S3",
        id_ok && expected_fields.is_subset(&fields) && masked,
        "id matching ^[0-9a-z]+$, every S3 field, a set password read back as \"********\"",
        format!(
            "id {id:?}, fields {:?}, basic_auth_password {}",
            fields, v["basic_auth_password"]
        ),
    );
    Ok(vec![create_json, create_form, resource])
}

pub(super) async fn s4_update_delete(ctx: &mut Ctx) -> CaseOutput {
    let id = ctx.hook("/ok", Some(EventType::CourseCompletion)).await?;
    let new_url = ctx.mock_url("/ok?moved=1");
    let (code, v) = ctx
        .api
        .json(
            reqwest::Method::PUT,
            &format!("/v1/webhooks/{id}"),
            Some(&json!({"target_url": new_url})),
        )
        .await?;
    let put_ok =
        code == 200 && v["target_url"] == new_url && v["event_type"] == "COURSE_COMPLETION";
    let (pcode, pv) = ctx
        .api
        .json(
            reqwest::Method::PATCH,
            &format!("/v1/webhooks/{id}"),
            Some(&json!({"event_type": null})),
        )
        .await?;
    let patch_ok = pcode == 200 && pv["event_type"].is_null() && pv["target_url"] == new_url;
    let update = CaseResult::check(
        "S4.update",
        "S4",
        put_ok && patch_ok,
        "PUT with only target_url changes only it; PATCH event_type null = all types",
        if put_ok {
            format!(
                "PUT → {code}: target_url changed, event_type kept ({}); PATCH → {pcode}: event_type {}",
                v["event_type"], pv["event_type"]
            )
        } else {
            format!(
                "PUT → {code} {v}; PATCH → {pcode} event_type {}",
                pv["event_type"]
            )
        },
    );
    let del = ctx
        .api
        .send(
            ctx.api
                .client
                .delete(format!("{}/v1/webhooks/{id}", ctx.api.base)),
            true,
        )
        .await?;
    let (after, _) = ctx.api.get(&format!("/v1/webhooks/{id}")).await?;
    let delete = CaseResult::check(
        "S4.delete",
        "S4",
        del.0 == 204 && del.1.is_empty() && after == 404,
        "DELETE → 204 with no body; the webhook is gone (404)",
        format!("DELETE → {} {:?}; GET after → {after}", del.0, del.1),
    );
    let (code, v) = ctx.api.get_json("/v1/webhooks/doesnotexist0").await?;
    let not_found = CaseResult::check(
        "S4.not-found",
        "S4",
        code == 404 && v["detail"] == "Not found.",
        "unknown id → 404 {\"detail\": \"Not found.\"}",
        format!("{code} {v}"),
    );
    Ok(vec![update, delete, not_found])
}

pub(super) async fn s1_list(ctx: &mut Ctx) -> CaseOutput {
    for _ in 0..3 {
        ctx.hook("/ok", Some(EventType::PathEnrollment)).await?;
    }
    let (code, all) = ctx.api.get_json("/v1/webhooks?page_size=100").await?;
    let count = all["count"].as_u64().unwrap_or(0);
    let (c1, p1) = ctx.api.get_json("/v1/webhooks?page_size=2").await?;
    let next = p1["next"].as_str().unwrap_or("").to_owned();
    let p2 = if next.starts_with("http") {
        let (_, text) = ctx.api.send(ctx.api.client.get(&next), true).await?;
        serde_json::from_str::<Value>(&text).unwrap_or(Value::Null)
    } else {
        Value::Null
    };
    let ok = code == 200
        && c1 == 200
        && count >= 3
        && p1["results"].as_array().is_some_and(|r| r.len() == 2)
        && p1["previous"].is_null()
        && next.starts_with("http")
        && p2["previous"]
            .as_str()
            .is_some_and(|p| p.starts_with("http"))
        && p2["count"] == count;
    Ok(vec![CaseResult::check(
        "S1.list",
        "S1",
        ok,
        "{count, next, previous, results}; page_size=2 gives 2 results, an absolute next URL, and page 2 an absolute previous",
        format!(
            "count {count}; page 1: {} results, next {next:?}, previous {}; page 2 previous {}",
            p1["results"].as_array().map_or(0, Vec::len),
            p1["previous"],
            p2["previous"]
        ),
    )])
}

pub(super) async fn s6_validation(ctx: &mut Ctx) -> CaseOutput {
    let (_, before) = ctx.api.get_json("/v1/webhooks?page_size=1").await?;
    let bad = json!({
        "target_url": "ftp://example.com/hook",
        "event_type": "COURSE_STARTED",
        "additional_headers": {"User-Agent": "mine", "bad header": "x"}
    });
    let (code, v) = ctx
        .api
        .json(reqwest::Method::POST, "/v1/webhooks", Some(&bad))
        .await?;
    let malformed = ctx
        .api
        .send(
            ctx.api
                .client
                .post(format!("{}/v1/webhooks", ctx.api.base))
                .header("content-type", "application/json")
                .body("{\"target_url\": "),
            true,
        )
        .await?;
    let (_, after) = ctx.api.get_json("/v1/webhooks?page_size=1").await?;
    let ok = code == 400
        && v["target_url"].is_array()
        && v["event_type"].is_array()
        && v["additional_headers"]
            .as_array()
            .is_some_and(|a| a.len() == 2)
        && malformed.0 == 400
        && before["count"] == after["count"];
    Ok(vec![CaseResult::check(
        "S6.validation",
        "S6",
        ok,
        "400 keyed by field (target_url, event_type, additional_headers: 2 errors), 400 for malformed JSON, nothing created",
        format!(
            "{code} {v}; malformed → {}; count {} → {}",
            malformed.0, before["count"], after["count"]
        ),
    )])
}

pub(super) async fn s6b_samples(ctx: &mut Ctx) -> CaseOutput {
    let mut bad = Vec::new();
    for t in EventType::ALL {
        let (code, v) = ctx
            .api
            .get_json(&format!("/v1/webhooks/sample-{}", t.kebab()))
            .await?;
        let ev = &v["results"][0];
        if code != 200 || ev["event_type"] != t.as_str() || !ev["timestamp"].is_string() {
            bad.push(format!(
                "sample-{} → {code} {}",
                t.kebab(),
                v.to_string().chars().take(120).collect::<String>()
            ));
        }
    }
    Ok(vec![CaseResult::check(
        "S6b.samples",
        "S6b",
        bad.is_empty(),
        "GET /v1/webhooks/sample-<type> → {\"results\": [event]} for all ten types",
        if bad.is_empty() {
            "10 of 10 samples with their event_type and a timestamp".to_owned()
        } else {
            bad.join("; ")
        },
    )])
}
