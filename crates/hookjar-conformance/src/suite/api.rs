//! Management API cases: S1 list, S2 create, S3 resource, S4 update/delete, S5 auth,
//! S6 validation, S6b samples.

use std::collections::BTreeSet;
use std::time::Duration;

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
    let with_password = c
        .get(&url)
        .basic_auth(&ctx.api.key, Some("not-empty"))
        .send()
        .await?
        .status()
        .as_u16();
    let as_password = c
        .get(&url)
        .basic_auth("", Some(&ctx.api.key))
        .send()
        .await?
        .status()
        .as_u16();
    let key_only = CaseResult::check(
        "S5.key-only-as-username",
        "S5",
        with_password == 401 && as_password == 401,
        "the key is the username with an empty password: the key with a password, or sent as the password, → 401",
        format!("key + a password → {with_password}; key as the password → {as_password}"),
    );
    // What each refusal says: a wrong key gets the Basic challenge too, a Bearer token
    // is told how to send the key, and /v1/ping checks the key like the rest.
    let wrong_resp = c
        .get(&url)
        .basic_auth("hookjar-wrong-key", Some(""))
        .send()
        .await?;
    let wrong_challenge = wrong_resp
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let bearer_body: Value = c
        .get(&url)
        .bearer_auth(&ctx.api.key)
        .send()
        .await?
        .json()
        .await
        .unwrap_or(Value::Null);
    let bearer_detail = bearer_body["detail"].as_str().unwrap_or("").to_owned();
    let ping_url = format!("{}/v1/ping", ctx.api.base);
    let ping_none = c.get(&ping_url).send().await?.status().as_u16();
    let ping_wrong = c
        .get(&ping_url)
        .basic_auth("hookjar-wrong-key", Some(""))
        .send()
        .await?
        .status()
        .as_u16();
    // The key exactly: not a longer name that starts with it, not in the query, and
    // credentials that are not base64 are a 401 too (not a 500). Every 401 carries a
    // detail and a Basic challenge (RFC 7235: a 401 always names its scheme).
    let mut odd = Vec::new();
    let longer = c
        .get(&url)
        .basic_auth(format!("{}extra", ctx.api.key), Some(""))
        .send()
        .await?
        .status()
        .as_u16();
    if longer != 401 {
        odd.push(format!("the key with a suffix as the username → {longer}"));
    }
    let query = c
        .get(format!("{url}?api_key={}", ctx.api.key))
        .send()
        .await?
        .status()
        .as_u16();
    if query != 401 {
        odd.push(format!("the key in the query, no Authorization → {query}"));
    }
    let garbled = c
        .get(&url)
        .header("authorization", "Basic !!not-base64!!")
        .send()
        .await?
        .status()
        .as_u16();
    if garbled != 401 {
        odd.push(format!("Basic credentials that are not base64 → {garbled}"));
    }
    let wrong_body: Value = wrong_resp.json().await.unwrap_or(Value::Null);
    if wrong_body.get("detail").is_none() {
        odd.push(format!(
            "a wrong key's 401 body is {wrong_body}, not {{\"detail\": …}}"
        ));
    }
    let bearer_challenge = c
        .get(&url)
        .bearer_auth(&ctx.api.key)
        .send()
        .await?
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    if !bearer_challenge.to_ascii_lowercase().starts_with("basic") {
        odd.push(format!(
            "a Bearer token's 401 has WWW-Authenticate {bearer_challenge:?}"
        ));
    }
    let refusals = CaseResult::check(
        "S5.refusals",
        "S5",
        wrong_challenge.to_ascii_lowercase().starts_with("basic")
            && bearer_detail.contains("Basic")
            && ping_none == 401
            && ping_wrong == 401
            && odd.is_empty(),
        "a wrong key → 401 {\"detail\"} with WWW-Authenticate: Basic; a Bearer token → 401 with the challenge and a detail that says how to send the key (HTTP Basic); GET /v1/ping without or with a wrong key → 401; the key with a suffix, the key in the query, credentials that are not base64 → 401",
        format!(
            "wrong key: WWW-Authenticate {wrong_challenge:?}; Bearer: detail {bearer_detail:?}; /v1/ping without a key → {ping_none}, with a wrong one → {ping_wrong}{}",
            if odd.is_empty() {
                "; suffix, query and garbled credentials → 401".to_owned()
            } else {
                format!("; {}", odd.join("; "))
            }
        ),
    );
    Ok(vec![auth, ping, key_only, refusals])
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
    let (form_code, form) = ctx
        .try_create_form(&[
            ("target_url", url.as_str()),
            ("active", "false"),
            (
                "additional_headers",
                r#"{"example_client_id":"abdcjkcjdidshdshkn"}"#,
            ),
        ])
        .await?;
    let form_ok = form_code == 201
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
                form_code, form["active"], form["additional_headers"]
            )
        } else {
            format!("{form_code} {form}")
        },
    );
    let id = v["id"].as_str().unwrap_or("");
    let fields: BTreeSet<&str> = v
        .as_object()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let expected_fields: BTreeSet<&str> = RESOURCE_FIELDS.into_iter().collect();
    let id_ok = !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase());
    // Settled: hookjar masks a set password; Skilljar returns it in clear. Either is
    // right, a wrong value never.
    let masked = v["basic_auth_password"] == "********" || v["basic_auth_password"] == "pw";
    let resource = CaseResult::check(
        "S3.resource",
        "S3",
        id_ok && expected_fields.is_subset(&fields) && masked,
        "id matching ^[0-9a-z]+$, every S3 field, a set password read back as the mask \"********\" (hookjar) or in clear (Skilljar)",
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
    let (pcode, pv) = ctx.patch(&id, json!({"event_type": null})).await?;
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
    let (_, listed_before) = ctx.api.get_json("/v1/webhooks?page_size=100").await?;
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
    let (_, listed_after) = ctx.api.get_json("/v1/webhooks?page_size=100").await?;
    let count = |v: &Value| v["count"].as_u64().unwrap_or(0);
    let still_listed = listed_after["results"]
        .as_array()
        .is_some_and(|r| r.iter().any(|w| w["id"] == id.as_str()));
    let delete = CaseResult::check(
        "S4.delete",
        "S4,S1",
        del.0 == 204
            && del.1.is_empty()
            && after == 404
            && !still_listed
            && count(&listed_after) + 1 == count(&listed_before),
        "DELETE → 204 with no body; the webhook is gone: 404, and out of the list and its count",
        format!(
            "DELETE → {} {:?}; GET after → {after}; list count {} → {}{}",
            del.0,
            del.1,
            count(&listed_before),
            count(&listed_after),
            if still_listed { ", still listed" } else { "" }
        ),
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
    // 21 inactive webhooks (they receive nothing): enough to pass the default page.
    let mut mine = Vec::new();
    for _ in 0..21 {
        let v = ctx
            .create(json!({"target_url": ctx.mock_url("/ok"), "active": false}))
            .await?;
        mine.push(v["id"].as_str().unwrap_or_default().to_owned());
    }
    // An update changes no webhook's place: the order is the order of creation.
    ctx.patch(&mine[0], json!({"event_type": "COURSE_COMPLETION"}))
        .await?;
    let (code, all) = ctx.api.get_json("/v1/webhooks?page_size=100").await?;
    let listed: Vec<String> = all["results"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|w| w["id"].as_str())
                .filter(|id| mine.iter().any(|m| m == id))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let order = CaseResult::check(
        "S1.order",
        "S1",
        listed == mine,
        "settled: oldest first — the suite's 21 webhooks are listed in the order they were created, the first of them updated just before (an update moves nothing)",
        if listed == mine {
            "in creation order".to_owned()
        } else {
            format!(
                "{} of 21 listed; first listed is the webhook created {}",
                listed.len(),
                listed
                    .first()
                    .and_then(|f| mine.iter().position(|m| m == f))
                    .map_or("-".into(), |i| format!("#{}", i + 1))
            )
        },
    );
    let (dcode, default_page) = ctx.api.get_json("/v1/webhooks").await?;
    let dcount = default_page["count"].as_u64().unwrap_or(0);
    let dlen = default_page["results"].as_array().map_or(0, Vec::len) as u64;
    let page_size = CaseResult::check(
        "S1.page-size",
        "S1",
        dcode == 200 && dlen == dcount.min(20) && default_page["next"].is_string(),
        "settled: without page_size a page holds 20 webhooks (of 21 or more), with a next link",
        format!(
            "{dcode}: {dlen} results of {dcount}, next {}",
            default_page["next"]
        ),
    );
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
        && count >= 21
        && p1["results"].as_array().is_some_and(|r| r.len() == 2)
        && p1["previous"].is_null()
        && next.starts_with("http")
        && p2["previous"]
            .as_str()
            .is_some_and(|p| p.starts_with("http"))
        && p2["count"] == count;
    // The links lead where they say: next keeps page_size, previous goes one page
    // back, the last page has no next. Compared by the ids each page holds.
    let ids_of = |v: &Value| -> Vec<String> {
        v["results"]
            .as_array()
            .map(|r| {
                r.iter()
                    .filter_map(|w| w["id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let all_ids = ids_of(&all);
    let follow = |v: &Value, link: &str| v[link].as_str().map(str::to_owned);
    let mut link_faults = Vec::new();
    let window = |from: usize| all_ids.get(from..from + 2).map(<[String]>::to_vec);
    if ids_of(&p2) != window(2).unwrap_or_default() {
        link_faults.push(format!(
            "page 1's next holds {} result(s), not webhooks 3–4",
            ids_of(&p2).len()
        ));
    }
    let get_link = |url: Option<String>| async {
        match url {
            Some(u) if u.starts_with("http") => {
                let (_, text) = ctx.api.send(ctx.api.client.get(&u), true).await?;
                Ok::<Value, super::CaseError>(
                    serde_json::from_str::<Value>(&text).unwrap_or(Value::Null),
                )
            }
            _ => Ok(Value::Null),
        }
    };
    let p3 = get_link(follow(&p2, "next")).await?;
    let back = get_link(follow(&p3, "previous")).await?;
    if ids_of(&back) != window(2).unwrap_or_default() {
        link_faults.push("page 3's previous is not page 2".to_owned());
    }
    let first_again = get_link(follow(&p2, "previous")).await?;
    if ids_of(&first_again) != window(0).unwrap_or_default() {
        link_faults.push("page 2's previous is not page 1".to_owned());
    }
    let last_page = count.div_ceil(2).max(1);
    let (lcode, last) = ctx
        .api
        .get_json(&format!("/v1/webhooks?page_size=2&page={last_page}"))
        .await?;
    if lcode != 200 || !last["next"].is_null() || !last["previous"].is_string() {
        link_faults.push(format!(
            "the last page (page={last_page}) → {lcode}, next {}, previous {}",
            last["next"], last["previous"]
        ));
    }
    let links = CaseResult::check(
        "S1.links",
        "S1",
        link_faults.is_empty() && count >= 21,
        "with page_size=2, next and previous lead to the neighbouring pages of 2 (page_size kept), and the last page's next is null",
        if link_faults.is_empty() {
            format!("followed next, next, previous, previous; last page {last_page}: next null")
        } else {
            link_faults.join("; ")
        },
    );
    let short: Vec<String> = all["results"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|w| {
                    let missing: Vec<&str> = RESOURCE_FIELDS
                        .iter()
                        .copied()
                        .filter(|f| w.get(f).is_none())
                        .collect();
                    (!missing.is_empty())
                        .then(|| format!("{} lacks {}", w["id"], missing.join(", ")))
                })
                .collect()
        })
        .unwrap_or_default();
    let full = CaseResult::check(
        "S1.full-resources",
        "S1",
        code == 200 && !all_ids.is_empty() && short.is_empty(),
        "each listed webhook is the whole resource (S3): id, target_url, active, deactivate_reason, event_type, basic_auth_username, basic_auth_password, additional_headers",
        if short.is_empty() {
            format!("{} listed, each with every field", all_ids.len())
        } else {
            short.into_iter().take(3).collect::<Vec<_>>().join("; ")
        },
    );
    // S1 (settled): page_size is capped at 100. Enough inactive webhooks to pass it.
    let (_, total) = ctx.api.get_json("/v1/webhooks?page_size=1").await?;
    let have = total["count"].as_u64().unwrap_or(0);
    for _ in have..=MAX_PAGE_SIZE {
        ctx.create(json!({"target_url": ctx.mock_url("/ok"), "active": false}))
            .await?;
    }
    let (big_code, big) = ctx.api.get_json("/v1/webhooks?page_size=1000").await?;
    let big_len = big["results"].as_array().map_or(0, Vec::len) as u64;
    let big_count = big["count"].as_u64().unwrap_or(0);
    let max_page_size = CaseResult::check(
        "S1.max-page-size",
        "S1",
        big_code == 200
            && big_count > MAX_PAGE_SIZE
            && big_len == MAX_PAGE_SIZE
            && big["next"].is_string(),
        "settled: page_size=1000 gives a page of at most 100 webhooks (of 101 or more), with a next link",
        format!(
            "{big_code}: {big_len} results of {big_count}, next {}",
            big["next"]
        ),
    );
    Ok(vec![
        CaseResult::check(
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
        ),
        order,
        page_size,
        max_page_size,
        links,
        full,
    ])
}

/// S3: the fields of a webhook resource, in a create's answer, a retrieve and a list.
const RESOURCE_FIELDS: [&str; 8] = [
    "id",
    "target_url",
    "active",
    "deactivate_reason",
    "event_type",
    "basic_auth_username",
    "basic_auth_password",
    "additional_headers",
];

/// S1 (settled): the most webhooks one page holds.
const MAX_PAGE_SIZE: u64 = 100;
/// S2: the longest `target_url` accepted [api].
const MAX_URL_LEN: usize = 1024;

/// A `target_url` on the receiver exactly `len` characters long (a padded query).
fn url_of_len(ctx: &Ctx, len: usize) -> String {
    let mut url = ctx.mock_url("/ok?pad=");
    let pad = len.saturating_sub(url.len());
    url.extend(std::iter::repeat_n('a', pad));
    url
}

/// S2: a blank `event_type` means all types, like null or absent: it reads back null.
pub(super) async fn s2_blank_event_type(ctx: &mut Ctx) -> CaseOutput {
    let v = ctx
        .create(json!({"target_url": ctx.mock_url("/ok"), "event_type": "", "active": false}))
        .await?;
    let id = v["id"].as_str().unwrap_or_default().to_owned();
    let read = ctx.webhook(&id).await?;
    let url = ctx.mock_url("/ok");
    let (fcode, form) = ctx
        .try_create_form(&[
            ("target_url", url.as_str()),
            ("event_type", ""),
            ("active", "false"),
        ])
        .await?;
    Ok(vec![CaseResult::check(
        "S2.blank-event-type",
        "S2",
        v["event_type"].is_null()
            && read["event_type"].is_null()
            && fcode == 201
            && form["event_type"].is_null(),
        "a create with event_type \"\" is a webhook for all types: event_type reads back null (in the 201 and on GET), from JSON and from a form",
        format!(
            "201 event_type {}; GET event_type {}; a form → {fcode}, event_type {}",
            v["event_type"], read["event_type"], form["event_type"]
        ),
    )])
}

/// S6: unknown fields and an over-long `target_url` are refused with 400, nothing
/// created; a URL of exactly 1024 characters is accepted.
pub(super) async fn s6_limits(ctx: &mut Ctx) -> CaseOutput {
    let (_, before) = ctx.api.get_json("/v1/webhooks?page_size=1").await?;
    let unknown = json!({"target_url": ctx.mock_url("/ok"), "active": false, "colour": "blue"});
    let (ucode, uv) = ctx.try_create(&unknown).await?;
    let (_, between) = ctx.api.get_json("/v1/webhooks?page_size=1").await?;
    let long = url_of_len(ctx, MAX_URL_LEN + 1);
    let (lcode, lv) = ctx
        .try_create(&json!({"target_url": long, "active": false}))
        .await?;
    let (_, after) = ctx.api.get_json("/v1/webhooks?page_size=1").await?;
    let fits = url_of_len(ctx, MAX_URL_LEN);
    let (fcode, _) = ctx
        .try_create(&json!({"target_url": fits, "active": false}))
        .await?;
    Ok(vec![
        CaseResult::check(
            "S6.unknown-fields",
            "S6",
            ucode == 400 && before["count"] == between["count"],
            "a create with a field the API does not have (\"colour\") → 400, nothing created",
            format!(
                "{ucode} {uv}; count {} → {}",
                before["count"], between["count"]
            ),
        ),
        url_forms(ctx).await?,
        CaseResult::check(
            "S6.url-length",
            "S6",
            lcode == 400
                && lv["target_url"].is_array()
                && between["count"] == after["count"]
                && fcode == 201,
            "a target_url of 1025 characters → 400 keyed by target_url, nothing created; one of exactly 1024 → 201",
            format!(
                "1025 → {lcode} {}; count {} → {}; 1024 → {fcode}",
                if lcode == 201 {
                    "(created)".to_owned()
                } else {
                    lv.to_string()
                },
                between["count"],
                after["count"]
            ),
        ),
    ])
}

/// S2/S6: the URLs Django's `URLValidator` accepts are accepted, whatever their
/// host: https, a bracketed IPv6 address, a name that does not resolve (the check is
/// of the text, not of the network). Inactive, so nothing is sent to them.
async fn url_forms(ctx: &mut Ctx) -> Result<CaseResult, super::CaseError> {
    let mut refused = Vec::new();
    for url in [
        "https://hooks.example.com/skilljar",
        "http://[::1]:9/skilljar",
        "http://hookjar-conformance.invalid/skilljar",
    ] {
        let (code, v) = ctx
            .try_create(&json!({"target_url": url, "active": false}))
            .await?;
        if code != 201 {
            refused.push(format!("{url} → {code} {v}"));
        } else if v["target_url"] != url {
            refused.push(format!("{url} stored as {}", v["target_url"]));
        }
    }
    Ok(CaseResult::check(
        "S6.url-forms",
        "S6,S2",
        refused.is_empty(),
        "an https URL, a bracketed IPv6 host and a well-formed name that does not resolve are each accepted (201) and stored as sent",
        if refused.is_empty() {
            "all three accepted".to_owned()
        } else {
            refused.join("; ")
        },
    ))
}

/// S3/S4: what an update does to each field. Read-only fields (`id`,
/// `deactivate_reason`) are not written by an update; a PATCH changes only what it
/// names (the password stays when only the username changes); `additional_headers`
/// is replaced, not merged (DRF); an empty password clears it; a blank `event_type`
/// means all types; and a PATCH `active: true` re-activates and clears the reason,
/// as a PUT does.
pub(super) async fn s4_fields(ctx: &mut Ctx) -> CaseOutput {
    // Read-only fields: ignored (DRF) or refused, never applied.
    let id = ctx
        .create_id(json!({"target_url": ctx.mock_url("/ok"), "active": false}))
        .await?;
    let (c1, _) = ctx.patch(&id, json!({"id": "hookjarrenamed1"})).await?;
    let (c2, _) = ctx
        .patch(&id, json!({"deactivate_reason": "ORG_DISABLED"}))
        .await?;
    let (still, read) = ctx.api.get_json(&format!("/v1/webhooks/{id}")).await?;
    let (renamed, _) = ctx.api.get("/v1/webhooks/hookjarrenamed1").await?;
    if renamed == 200 {
        ctx.created.push("hookjarrenamed1".into());
    }
    let read_only = CaseResult::check(
        "S4.read-only",
        "S4,S3",
        matches!(c1, 200 | 400)
            && matches!(c2, 200 | 400)
            && still == 200
            && read["id"] == id.as_str()
            && renamed == 404
            && read["deactivate_reason"].is_null(),
        "a PATCH of id or deactivate_reason (read-only) is ignored or refused: the webhook keeps its id and its null reason",
        format!(
            "PATCH id → {c1}, deactivate_reason → {c2}; GET by the old id → {still}, id {}, deactivate_reason {}; GET by the new id → {renamed}",
            read["id"], read["deactivate_reason"]
        ),
    );

    // Partial updates.
    let id = ctx
        .create_id(json!({
            "target_url": ctx.mock_url("/ok"),
            "active": false,
            "event_type": "COURSE_COMPLETION",
            "basic_auth_username": "u",
            "basic_auth_password": "pw",
            "additional_headers": {"x-a": "1"},
        }))
        .await?;
    let mut wrong = Vec::new();
    let (_, v) = ctx.patch(&id, json!({"basic_auth_username": "u2"})).await?;
    let v = if v.is_object() {
        v
    } else {
        ctx.webhook(&id).await?
    };
    if v["basic_auth_username"] != "u2"
        || v["basic_auth_password"].as_str().unwrap_or("").is_empty()
    {
        wrong.push(format!(
            "PATCH of the username alone left username {}, password {}",
            v["basic_auth_username"], v["basic_auth_password"]
        ));
    }
    ctx.patch(&id, json!({"additional_headers": {"x-b": "2"}}))
        .await?;
    let v = ctx.webhook(&id).await?;
    if v["additional_headers"] != json!({"x-b": "2"}) {
        wrong.push(format!(
            "PATCH additional_headers {{x-b}} left {}",
            v["additional_headers"]
        ));
    }
    ctx.patch(&id, json!({"basic_auth_password": ""})).await?;
    let v = ctx.webhook(&id).await?;
    if v["basic_auth_password"] != "" {
        wrong.push(format!(
            "PATCH basic_auth_password \"\" left {}",
            v["basic_auth_password"]
        ));
    }
    ctx.patch(&id, json!({"event_type": ""})).await?;
    let v = ctx.webhook(&id).await?;
    if !v["event_type"].is_null() {
        wrong.push(format!("PATCH event_type \"\" left {}", v["event_type"]));
    }
    let partial = CaseResult::check(
        "S4.partial-update",
        "S4,S2",
        wrong.is_empty(),
        "a PATCH of the username keeps the password; additional_headers is replaced, not merged; an empty password clears it; a blank event_type is all types (null)",
        if wrong.is_empty() {
            "username alone, headers replaced, password cleared, event_type \"\" → null".to_owned()
        } else {
            wrong.join("; ")
        },
    );

    // Re-activation by PATCH clears the reason as PUT does (S4.reactivate).
    let id = ctx.hook("/s16", Some(EventType::PathEnrollment)).await?;
    ctx.emit(EventType::PathEnrollment, json!({})).await?;
    let off = ctx
        .until_webhook(&id, Duration::from_secs(10), |w| w["active"] == false)
        .await?;
    let (code, on) = ctx.patch(&id, json!({"active": true})).await?;
    let reactivate = CaseResult::check(
        "S4.reactivate-patch",
        "S4",
        off["active"] == false
            && off["deactivate_reason"] == "HTTP_4XX_RESPONSE"
            && code == 200
            && on["active"] == true
            && on["deactivate_reason"].is_null(),
        "a webhook deactivated by a 404, re-activated by PATCH {active: true}: active, deactivate_reason null",
        format!(
            "after the 404: active {}, reason {}; PATCH → {code}: active {}, reason {}",
            off["active"], off["deactivate_reason"], on["active"], on["deactivate_reason"]
        ),
    );
    // Nothing more for it to receive.
    ctx.patch(&id, json!({"active": false})).await?;
    Ok(vec![read_only, partial, reactivate])
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
    let malformed_body: Value = serde_json::from_str(&malformed.1).unwrap_or(Value::Null);
    let ok = code == 400
        && v["target_url"].is_array()
        && v["event_type"].is_array()
        && headers_errors(&v["additional_headers"]) >= 1
        && malformed.0 == 400
        && malformed_body["non_field_errors"].is_array()
        && before["count"] == after["count"];
    Ok(vec![CaseResult::check(
        "S6.validation",
        "S6",
        ok,
        "400 keyed by field (target_url, event_type, additional_headers — as a list of messages or an object keyed by header name, DRF style), 400 for malformed JSON with its message under non_field_errors, nothing created",
        format!(
            "{code} {v}; malformed → {} {malformed_body}; count {} → {}",
            malformed.0, before["count"], after["count"]
        ),
    )])
}

/// S6: additional headers may not replace a header the dispatcher owns — each of them,
/// not only `User-Agent` (a dispatcher that let `Authorization` through would send the
/// integrator's value instead of the Basic credentials, S8).
pub(super) async fn s6_reserved_headers(ctx: &mut Ctx) -> CaseOutput {
    let (_, before) = ctx.api.get_json("/v1/webhooks?page_size=1").await?;
    let mut answers = Vec::new();
    for name in [
        "Authorization",
        "Content-Type",
        "User-Agent",
        "Content-Length",
        "Host",
        "Transfer-Encoding",
        "Connection",
    ] {
        let body = json!({
            "target_url": ctx.mock_url("/s6-reserved"),
            "additional_headers": {name: "conformance"}
        });
        let (code, _) = ctx.try_create(&body).await?;
        answers.push((name, code));
    }
    let (_, after) = ctx.api.get_json("/v1/webhooks?page_size=1").await?;
    let ok = answers.iter().all(|(_, code)| *code == 400) && before["count"] == after["count"];
    Ok(vec![CaseResult::check(
        "S6.reserved-headers",
        "S6",
        ok,
        "400 for additional_headers naming Authorization, Content-Type, User-Agent, Content-Length, Host, Transfer-Encoding or Connection; nothing created",
        format!(
            "{}; count {} → {}",
            answers
                .iter()
                .map(|(n, c)| format!("{n} → {c}"))
                .collect::<Vec<_>>()
                .join(", "),
            before["count"],
            after["count"]
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
        // Fresh: no older than a day before the run (a dispatcher on a fast time
        // scale may stamp its own, later, time), and S11's format.
        let fresh = ev["timestamp"]
            .as_str()
            .and_then(|s| hookjar_core::payload::parse_timestamp(s).ok())
            .is_some_and(|ts| ts > time::OffsetDateTime::now_utc() - time::Duration::days(1));
        // The fixture's objects (user, course, …), as a delivery of the type has them.
        let fixture = hookjar_core::Event::fixture(t, time::OffsetDateTime::now_utc());
        let missing: Vec<&String> = fixture
            .data
            .keys()
            .filter(|k| ev.get(k.as_str()).is_none())
            .collect();
        if !missing.is_empty() {
            bad.push(format!("sample-{} lacks {missing:?}", t.kebab()));
        }
        if code != 200 || ev["event_type"] != t.as_str() || !fresh {
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
        "GET /v1/webhooks/sample-<type> → {\"results\": [event]} for all ten types, each with a fresh timestamp in S11's format and its type's objects (user, course, …)",
        if bad.is_empty() {
            "10 of 10 samples with their event_type, their objects and a fresh ISO 8601 timestamp"
                .to_owned()
        } else {
            bad.join("; ")
        },
    )])
}

pub(super) async fn s3_password(ctx: &mut Ctx) -> CaseOutput {
    let created = ctx
        .create(json!({
            "target_url": ctx.mock_url("/s3"),
            "event_type": "LESSON_COMPLETION",
            "basic_auth_username": "s3-user",
            "basic_auth_password": "s3-secret"
        }))
        .await?;
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    let got = ctx.webhook(&id).await?;
    let (_, list) = ctx.api.get_json("/v1/webhooks?page_size=100").await?;
    let listed = list["results"]
        .as_array()
        .and_then(|r| r.iter().find(|w| w["id"] == id.as_str()))
        .cloned()
        .unwrap_or(Value::Null);
    let ok_value = |v: &Value| v == "********" || v == "s3-secret";
    let read_back = CaseResult::check(
        "S3.password-read-back",
        "S3",
        ok_value(&created["basic_auth_password"])
            && ok_value(&got["basic_auth_password"])
            && got["basic_auth_password"] == listed["basic_auth_password"]
            && got["basic_auth_password"] == created["basic_auth_password"],
        "create, retrieve and list read the password back the same way: the mask \"********\" (hookjar's setting) or in clear (Skilljar), never another value",
        format!(
            "create {}, retrieve {}, list {}",
            created["basic_auth_password"],
            got["basic_auth_password"],
            listed["basic_auth_password"]
        ),
    );
    // Write the resource back as read (a client's GET-modify-PUT): the stored
    // password must survive, whether it read back masked or in clear.
    let mut back = serde_json::Map::new();
    for k in [
        "target_url",
        "active",
        "event_type",
        "basic_auth_username",
        "basic_auth_password",
        "additional_headers",
    ] {
        back.insert(k.to_owned(), got[k].clone());
    }
    let (code, v) = ctx
        .api
        .json(
            reqwest::Method::PUT,
            &format!("/v1/webhooks/{id}"),
            Some(&Value::Object(back)),
        )
        .await?;
    ctx.emit(EventType::LessonCompletion, json!({})).await?;
    let reqs = ctx.wait(1, Duration::from_secs(10)).await;
    let want = hookjar_core::request::basic_auth_header("s3-user", "s3-secret").unwrap_or_default();
    let sent = reqs
        .first()
        .and_then(|r| r.header("authorization"))
        .unwrap_or("");
    let write_back = CaseResult::check(
        "S3.write-back",
        "S3",
        code == 200 && sent == want,
        "PUT of the resource as read keeps the stored password: the next delivery carries the original credentials",
        format!(
            "PUT → {code} (password {}); next delivery Authorization {sent:?}",
            v["basic_auth_password"]
        ),
    );
    Ok(vec![read_back, write_back])
}

/// How many errors a DRF-style `additional_headers` error value holds: a list of
/// messages, or an object keyed by header name (each a message or a list of them).
fn headers_errors(v: &Value) -> usize {
    match v {
        Value::Array(a) => a.iter().filter(|m| m.is_string()).count(),
        Value::Object(m) => m
            .values()
            .filter(|e| e.is_string() || e.as_array().is_some_and(|a| !a.is_empty()))
            .count(),
        _ => 0,
    }
}

/// POSTs a create of a little over 1 MiB and returns the status (0: none) and how it
/// was sent. A server that refuses it closes the connection with the rest of the body
/// unread, and the reset that follows can destroy its answer before a client reads it;
/// so over plain HTTP the headers go first, alone, and the body only if no answer
/// comes within 2 s (a server may read up to its limit before refusing), in pieces,
/// looking for the answer between them.
async fn oversized_create(ctx: &Ctx, url: &str) -> (u16, &'static str) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = format!(
        "{{\"target_url\": \"{url}\", \"active\": false, \"pad\": \"{}\"}}",
        "p".repeat(1024 * 1024 + 16)
    );
    let endpoint = format!("{}/v1/webhooks", ctx.api.base);
    let parsed = reqwest::Url::parse(&endpoint).ok();
    let plain = parsed
        .as_ref()
        .filter(|u| u.scheme() == "http")
        .and_then(|u| {
            Some((
                u.host_str()?.to_owned(),
                u.port_or_known_default()?,
                u.path().to_owned(),
            ))
        });
    let Some((host, port, path)) = plain else {
        let code = ctx
            .api
            .send(
                ctx.api
                    .client
                    .post(&endpoint)
                    .header("content-type", "application/json")
                    .body(body),
                true,
            )
            .await
            .map_or(0, |(code, _)| code);
        return (code, "over TLS, in one piece");
    };
    let Ok(mut stream) = tokio::net::TcpStream::connect((host.as_str(), port)).await else {
        return (0, "cannot connect");
    };
    let auth = hookjar_core::request::basic_auth_header(&ctx.api.key, "").unwrap_or_default();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let status = |buf: &[u8]| -> Option<u16> {
        let line = std::str::from_utf8(buf).ok()?.split("\r\n").next()?;
        line.split(' ').nth(1)?.parse().ok()
    };
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    if stream.write_all(head.as_bytes()).await.is_err() {
        return (0, "the headers could not be sent");
    }
    // The answer to the headers alone.
    if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut chunk)).await {
        got.extend_from_slice(&chunk[..n]);
        if let Some(code) = status(&got) {
            return (code, "answered on the headers");
        }
    }
    for piece in body.as_bytes().chunks(64 * 1024) {
        let write_failed = stream.write_all(piece).await.is_err();
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(5), stream.read(&mut chunk)).await
        {
            got.extend_from_slice(&chunk[..n]);
            if let Some(code) = status(&got) {
                return (code, "answered during the body");
            }
        }
        if write_failed {
            break;
        }
    }
    while let Ok(Ok(n)) =
        tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk)).await
    {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&chunk[..n]);
        if let Some(code) = status(&got) {
            return (code, "answered after the body");
        }
    }
    (0, "no answer")
}

/// S2/S3 defaults, the other body types (S2 create as multipart, S4 update as a form),
/// and S6's "the URL stored is the URL POSTed, byte for byte".
pub(super) async fn s2_defaults(ctx: &mut Ctx) -> CaseOutput {
    let bare = ctx
        .create(json!({"target_url": ctx.mock_url("/ok"), "active": false}))
        .await?;
    let id = bare["id"].as_str().unwrap_or_default().to_owned();
    let read = ctx.webhook(&id).await?;
    let defaults_ok = |v: &Value| {
        v["basic_auth_username"] == ""
            && v["basic_auth_password"] == ""
            && v["additional_headers"] == json!({})
            && v["event_type"].is_null()
            && v["deactivate_reason"].is_null()
    };
    let show = |v: &Value| {
        format!(
            "basic_auth_username {}, basic_auth_password {}, additional_headers {}, event_type {}, deactivate_reason {}",
            v["basic_auth_username"],
            v["basic_auth_password"],
            v["additional_headers"],
            v["event_type"],
            v["deactivate_reason"]
        )
    };
    let defaults = CaseResult::check(
        "S2.defaults",
        "S2,S3",
        defaults_ok(&bare) && defaults_ok(&read),
        "a create with only target_url: basic_auth_username \"\", basic_auth_password \"\" (nothing set, so nothing masked), additional_headers {}, event_type null, deactivate_reason null — in the 201 and on GET",
        format!("201: {}; GET: {}", show(&bare), show(&read)),
    );

    // multipart/form-data, built by hand (one text part per field).
    let boundary = "hookjar-conformance-boundary";
    let mut body = String::new();
    for (name, value) in [
        ("target_url", ctx.mock_url("/ok")),
        ("active", "false".to_owned()),
        ("event_type", "PATH_ENROLLMENT".to_owned()),
        ("additional_headers", r#"{"x-multipart":"yes"}"#.to_owned()),
    ] {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    let (mcode, m) = ctx
        .try_create_with(|post| {
            post.header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body)
        })
        .await?;
    let multipart = CaseResult::check(
        "S2.create-multipart",
        "S2",
        mcode == 201
            && m["active"] == false
            && m["event_type"] == "PATH_ENROLLMENT"
            && m["additional_headers"]["x-multipart"] == "yes",
        "a create as multipart/form-data → 201 with its fields (active false, event_type, additional_headers from a JSON string)",
        format!("{mcode} {m}"),
    );

    // PATCH and PUT with form bodies.
    let (pcode, ptext) = ctx
        .api
        .send(
            ctx.api
                .client
                .patch(format!("{}/v1/webhooks/{id}", ctx.api.base))
                .form(&[("event_type", "COURSE_COMPLETION")]),
            true,
        )
        .await?;
    let patched: Value = serde_json::from_str(&ptext).unwrap_or(Value::Null);
    let moved = ctx.mock_url("/s4-form");
    let (ucode, utext) = ctx
        .api
        .send(
            ctx.api
                .client
                .put(format!("{}/v1/webhooks/{id}", ctx.api.base))
                .form(&[("target_url", moved.as_str())]),
            true,
        )
        .await?;
    let put: Value = serde_json::from_str(&utext).unwrap_or(Value::Null);
    let form_update = CaseResult::check(
        "S4.update-form",
        "S4",
        pcode == 200
            && patched["event_type"] == "COURSE_COMPLETION"
            && ucode == 200
            && put["target_url"] == moved.as_str(),
        "PATCH and PUT take form-urlencoded bodies too: PATCH event_type=COURSE_COMPLETION → 200 with it; PUT target_url=… → 200 with it",
        format!(
            "PATCH → {pcode} event_type {}; PUT → {ucode} target_url {}",
            patched["event_type"], put["target_url"]
        ),
    );

    // The URL stored is the URL POSTed, byte for byte (not normalised).
    let raw = ctx.mock_url("/./s6-as-sent");
    let raw = raw
        .replacen("http://", "HTTP://", 1)
        .replacen("https://", "HTTPS://", 1);
    let (rcode, rv) = ctx
        .try_create(&json!({"target_url": raw, "active": false}))
        .await?;
    let mut stored = rv["target_url"].clone();
    if let Some(rid) = rv["id"].as_str() {
        stored = ctx.webhook(rid).await?["target_url"].clone();
    }
    let as_sent = CaseResult::check(
        "S6.url-as-sent",
        "S6",
        rcode == 201 && rv["target_url"] == raw.as_str() && stored == raw.as_str(),
        format!(
            "settled: the URL stored is the URL POSTed, byte for byte: {raw} reads back unchanged"
        ),
        format!("{rcode}: target_url {} (GET: {stored})", rv["target_url"]),
    );
    Ok(vec![defaults, multipart, form_update, as_sent])
}

/// S4 on unknown ids and on state; S6 on updates: validated as creates are, and all
/// or nothing.
pub(super) async fn s4_more(ctx: &mut Ctx) -> CaseOutput {
    let unknown = "/v1/webhooks/hookjarnone2";
    let mut codes = Vec::new();
    for method in [
        reqwest::Method::PUT,
        reqwest::Method::PATCH,
        reqwest::Method::DELETE,
    ] {
        let body =
            (method != reqwest::Method::DELETE).then(|| json!({"target_url": ctx.mock_url("/ok")}));
        let (code, v) = ctx.api.json(method.clone(), unknown, body.as_ref()).await?;
        if let (201 | 200, Some(id)) = (code, v["id"].as_str()) {
            ctx.created.push(id.to_owned());
        }
        codes.push((method.to_string(), code));
    }
    // The id is looked up first: an unknown one is a 404 even with a bad body.
    for method in [reqwest::Method::PUT, reqwest::Method::PATCH] {
        let (code, _) = ctx
            .api
            .json(
                method.clone(),
                unknown,
                Some(&json!({"event_type": "NOT_A_TYPE"})),
            )
            .await?;
        codes.push((format!("{method} with a bad body"), code));
    }
    let unknown_id = CaseResult::check(
        "S4.unknown-id",
        "S4",
        codes.iter().all(|(_, c)| *c == 404),
        "PUT, PATCH and DELETE of an unknown id → 404 each (nothing is created), a PUT or PATCH with a bad body too",
        codes
            .iter()
            .map(|(m, c)| format!("{m} → {c}"))
            .collect::<Vec<_>>()
            .join(", "),
    );

    // A new URL does not re-activate; switching off sets no reason of its own.
    let off = ctx
        .create_id(json!({"target_url": ctx.mock_url("/ok"), "active": false}))
        .await?;
    let (c1, moved) = ctx
        .patch(&off, json!({"target_url": ctx.mock_url("/s4-elsewhere")}))
        .await?;
    let on = ctx
        .create_id(
            json!({"target_url": ctx.mock_url("/ok"), "event_type": "VILT_EVENT_REGISTRATION"}),
        )
        .await?;
    let (c2, switched) = ctx.patch(&on, json!({"active": false})).await?;
    let state = CaseResult::check(
        "S4.update-keeps-state",
        "S4,S3",
        c1 == 200
            && moved["active"] == false
            && c2 == 200
            && switched["active"] == false
            && switched["deactivate_reason"].is_null(),
        "a new target_url leaves an inactive webhook inactive (only active: true re-activates); PATCH active: false switches off with deactivate_reason null (the reasons are S15/S16/S18's)",
        format!(
            "new URL → {c1}, active {}; active false → {c2}, deactivate_reason {}",
            moved["active"], switched["deactivate_reason"]
        ),
    );

    // Updates are validated like creates, and a bad one changes nothing.
    let (c3, bad_url) = ctx.patch(&on, json!({"target_url": "not a url"})).await?;
    let (c4, mixed) = ctx
        .patch(
            &on,
            json!({"basic_auth_username": "half-applied", "event_type": "NOT_A_TYPE"}),
        )
        .await?;
    let after = ctx.webhook(&on).await?;
    let update_validation = CaseResult::check(
        "S6.update-validation",
        "S6,S4",
        c3 == 400
            && bad_url["target_url"].is_array()
            && c4 == 400
            && after["target_url"] == ctx.mock_url("/ok").as_str()
            && after["basic_auth_username"] == "",
        "PATCH target_url \"not a url\" → 400 keyed by target_url; a PATCH with a good and a bad field → 400 and neither is applied",
        format!(
            "bad URL → {c3} {bad_url}; good + bad field → {c4} {mixed}; after: target_url {}, basic_auth_username {}",
            after["target_url"], after["basic_auth_username"]
        ),
    );
    Ok(vec![unknown_id, state, update_validation])
}

/// S6, one rule at a time: each bad create is refused with 400 and creates nothing;
/// the unknown event_type message lists the valid ones; 413 over 1 MiB; 405 for a
/// wrong method.
pub(super) async fn s6_rules(ctx: &mut Ctx) -> CaseOutput {
    let url = ctx.mock_url("/ok");
    let hdrs = |h: Value| json!({"target_url": url, "active": false, "additional_headers": h});
    let mut cases: Vec<(String, Value)> = vec![
        (
            "a header name with a space".into(),
            hdrs(json!({"bad header": "x"})),
        ),
        (
            "a header value with CR/LF".into(),
            hdrs(json!({"x-a": "a\r\nx-b: b"})),
        ),
        (
            "a header value with a control byte".into(),
            hdrs(json!({"x-a": "a\u{1}b"})),
        ),
        (
            "a header value over 8 KiB".into(),
            hdrs(json!({"x-a": "v".repeat(8 * 1024 + 1)})),
        ),
        ("a number as a header value".into(), hdrs(json!({"x-a": 5}))),
        (
            "a boolean as a header value".into(),
            hdrs(json!({"x-a": true})),
        ),
        (
            "a URL with a space".into(),
            json!({"target_url": ctx.mock_url("/a b"), "active": false}),
        ),
        (
            "a URL without a host".into(),
            json!({"target_url": "http:///s6", "active": false}),
        ),
        (
            "an event_type in lower case".into(),
            json!({"target_url": url, "active": false, "event_type": "course_completion"}),
        ),
        ("an empty header name".into(), hdrs(json!({"": "x"}))),
        (
            "a header name with a non-ASCII letter".into(),
            hdrs(json!({"x-é": "x"})),
        ),
        (
            "a header value with DEL (0x7f)".into(),
            hdrs(json!({"x-a": "a\u{7f}b"})),
        ),
        (
            "a URL ending in a line break".into(),
            json!({"target_url": format!("{url}\n"), "active": false}),
        ),
        (
            "no target_url".into(),
            json!({"active": false, "event_type": "COURSE_COMPLETION"}),
        ),
    ];
    for name in [
        "Upgrade",
        "TE",
        "Keep-Alive",
        "Expect",
        "Proxy-Authorization",
    ] {
        cases.push((format!("hop-by-hop {name}"), hdrs(json!({name: "x"}))));
    }
    for name in [
        "authorization",
        "user-agent",
        "content-type",
        "proxy-authorization",
    ] {
        cases.push((
            format!("reserved {name} in lower case"),
            hdrs(json!({name: "x"})),
        ));
    }
    let (_, before) = ctx.api.get_json("/v1/webhooks?page_size=1").await?;
    let mut accepted = Vec::new();
    for (label, body) in &cases {
        let (code, _) = ctx.try_create(body).await?;
        if code != 400 {
            accepted.push(format!("{label} → {code}"));
        }
    }
    // A form whose additional_headers is not a JSON object.
    let (fcode, _) = ctx
        .try_create_form(&[
            ("target_url", url.as_str()),
            ("active", "false"),
            ("additional_headers", "{not json"),
        ])
        .await?;
    if fcode != 400 {
        accepted.push(format!(
            "a form's additional_headers that is not JSON → {fcode}"
        ));
    }
    // A JSON body that is not an object: 400 under non_field_errors (DRF), not a 500.
    let (acode, av) = ctx
        .api
        .json(reqwest::Method::POST, "/v1/webhooks", Some(&json!([])))
        .await?;
    if acode != 400 || !av["non_field_errors"].is_array() {
        accepted.push(format!("a JSON array as the body → {acode} {av}"));
    }
    let (_, after) = ctx.api.get_json("/v1/webhooks?page_size=1").await?;
    // After the count, since a dispatcher may create it: `active` is a boolean, and
    // "false" is refused (400) or read as false (DRF coerces such strings), never
    // taken as true because the string is not empty.
    let (tcode, tv) = ctx
        .try_create(&json!({"target_url": url, "active": "false"}))
        .await?;
    if !(tcode == 400 || (tcode == 201 && tv["active"] == false)) {
        accepted.push(format!(
            "active \"false\" (a string) → {tcode}, active {}",
            tv["active"]
        ));
    }
    let each = CaseResult::check(
        "S6.each-rule",
        "S6",
        accepted.is_empty() && before["count"] == after["count"],
        format!(
            "each of {} bad creates → 400, nothing created (header names that are not tokens — empty, a space, a non-ASCII letter —, CR/LF, control bytes or DEL, values over 8 KiB or not strings, hop-by-hop and reserved names in any case, URLs with a space, no host or a trailing line break, no target_url, a lower-case event_type, a form's additional_headers that is not JSON, a JSON array as the body (under non_field_errors)); active \"false\" refused or read as false",
            cases.len() + 2
        ),
        if accepted.is_empty() {
            format!(
                "all {} refused with 400; count {} → {}",
                cases.len() + 2,
                before["count"],
                after["count"]
            )
        } else {
            format!(
                "{}; count {} → {}",
                accepted.join("; "),
                before["count"],
                after["count"]
            )
        },
    );

    let (tcode, tv) = ctx
        .api
        .json(
            reqwest::Method::POST,
            "/v1/webhooks",
            Some(&json!({"target_url": url, "event_type": "COURSE_FINISHED"})),
        )
        .await?;
    let message = tv["event_type"].to_string();
    let missing: Vec<&str> = EventType::ALL
        .iter()
        .map(|t| t.as_str())
        .filter(|t| !message.contains(t))
        .collect();
    let type_message = CaseResult::check(
        "S6.event-type-message",
        "S6",
        tcode == 400 && missing.is_empty(),
        "an unknown event_type → 400 whose event_type message lists the ten valid types",
        if missing.is_empty() {
            format!("{tcode}: every type named")
        } else {
            format!("{tcode} {tv}; not named: {}", missing.join(", "))
        },
    );

    let (bcode, how) = oversized_create(ctx, &url).await;
    let too_large = CaseResult::check(
        "S6.too-large",
        "S6",
        bcode == 413,
        "a create whose body is over 1 MiB → 413",
        format!("{bcode} ({how})"),
    );

    let (d, _) = ctx
        .api
        .send(
            ctx.api
                .client
                .delete(format!("{}/v1/webhooks", ctx.api.base)),
            true,
        )
        .await?;
    let (p, _) = ctx
        .api
        .send(
            ctx.api.client.post(format!("{}/v1/ping", ctx.api.base)),
            true,
        )
        .await?;
    // A ping is a POST: a GET of the ping path is refused and sends nothing.
    let path = "/s6-ping-get";
    let id = ctx.hook(path, None).await?;
    let (g, _) = ctx
        .api
        .send(
            ctx.api
                .client
                .get(format!("{}/v1/webhooks/{id}/ping", ctx.api.base)),
            true,
        )
        .await?;
    let sent = ctx.on_path(&ctx.mock.requests(), path).len();
    let wrong_method = CaseResult::check(
        "S6.wrong-method",
        "S6,S13",
        d == 405 && p == 405 && g == 405 && sent == 0,
        "a method a path does not take → 405: DELETE /v1/webhooks, POST /v1/ping, GET /v1/webhooks/{id}/ping (which sends nothing)",
        format!(
            "DELETE /v1/webhooks → {d}; POST /v1/ping → {p}; GET …/ping → {g}, {sent} request(s) sent"
        ),
    );
    Ok(vec![each, type_message, too_large, wrong_method])
}

#[cfg(test)]
mod tests {
    use super::headers_errors;
    use serde_json::json;

    /// Portability (c): hookjar's list of messages and a DRF-style object keyed by
    /// header name are both valid error shapes for `additional_headers`.
    #[test]
    fn additional_headers_errors_in_any_drf_shape() {
        let list = json!([
            "Header \"User-Agent\" is set by the dispatcher.",
            "bad name"
        ]);
        let keyed = json!({"User-Agent": ["reserved"], "bad header": "not a token"});
        assert_eq!(headers_errors(&list), 2);
        assert_eq!(headers_errors(&keyed), 2);
        assert_eq!(headers_errors(&json!({})), 0);
        assert_eq!(headers_errors(&json!(null)), 0);
        assert_eq!(
            headers_errors(&json!({"x": []})),
            0,
            "an empty list is no error"
        );
    }
}
