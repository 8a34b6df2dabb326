//! X4: the OpenAPI document against Skilljar's published facts
//! (`tests/data/skilljar-api-facts.json`), against the running server (every
//! documented operation is routed and answers a documented status; undocumented
//! methods get 405 with an `Allow` header naming the documented ones), and pinned by
//! the snapshot `snapshots/dispatch__openapi.snap`.

use std::collections::BTreeSet;
use std::path::PathBuf;

use hookjar_dispatch::openapi::{EXTENSION_TAG, document};
use hookjar_dispatch::{Config, Dispatcher};
use serde_json::Value;

const KEY: &str = "k";

fn repo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn facts() -> Value {
    let text = std::fs::read_to_string(repo().join("tests/data/skilljar-api-facts.json"))
        .expect("tests/data/skilljar-api-facts.json");
    serde_json::from_str(&text).expect("the facts are JSON")
}

/// Follows a `$ref` within the document.
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => doc
            .pointer(r.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("dangling $ref {r}")),
        None => v,
    }
}

fn ref_to(name: &str) -> Value {
    serde_json::json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// The committed copy is the shared file, when the shared folder is beside the repo.
#[test]
fn the_committed_facts_are_the_shared_facts() {
    let shared = repo().join("../shared/skilljar-api-facts.json");
    let Ok(text) = std::fs::read_to_string(&shared) else {
        eprintln!("skipped: {} is not there to compare with", shared.display());
        return;
    };
    let shared: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        facts(),
        shared,
        "tests/data/skilljar-api-facts.json differs from ../shared/skilljar-api-facts.json: copy it over"
    );
}

/// Checks one property of a schema against its facts entry.
fn check_property(doc: &Value, schema: &str, name: &str, got: &Value, want: &Value) {
    let at = format!("{schema}.{name}");
    let nullable = want["nullable"] == true;
    let alternatives: Vec<&Value> = match got.get("oneOf").and_then(Value::as_array) {
        Some(alts) => alts.iter().collect(),
        None => vec![got],
    };
    assert_eq!(
        alternatives.iter().any(|a| a["type"] == "null"),
        nullable,
        "{at}: nullable should be {nullable}: {got}"
    );
    if let Some(e) = want["enum"].as_str() {
        assert!(
            alternatives.contains(&&ref_to(e)),
            "{at}: should be the enum {e}: {got}"
        );
        return;
    }
    // The typed alternative of a nullable property carries its type and format.
    let typed = alternatives
        .iter()
        .find(|a| a["type"] != "null")
        .copied()
        .unwrap_or(got);
    let key_of = |key: &str| -> Value {
        got.get(key)
            .or_else(|| typed.get(key))
            .cloned()
            .unwrap_or(Value::Null)
    };
    match want["type"].as_str() {
        Some("object of string to string") => {
            assert_eq!(got["type"], "object", "{at}: {got}");
            assert_eq!(got["additionalProperties"]["type"], "string", "{at}: {got}");
        }
        Some(t) => assert_eq!(key_of("type"), t, "{at}: {got}"),
        None => {}
    }
    for key in ["format", "maxLength", "minLength", "default", "readOnly"] {
        if let Some(w) = want.get(key) {
            assert_eq!(&key_of(key), w, "{at}: {key}: {got}");
        }
    }
    let _ = doc;
}

#[test]
fn the_skilljar_part_matches_skilljars_published_facts() {
    let doc = document();
    let facts = facts();

    // Operations: id, method, path, parameters, bodies, responses.
    let mut skilljar_ops = BTreeSet::new();
    let id_param = &facts["path_parameter"];
    for op in facts["operations"].as_array().unwrap() {
        let (id, method, path) = (
            op["id"].as_str().unwrap(),
            op["method"].as_str().unwrap(),
            op["path"].as_str().unwrap(),
        );
        skilljar_ops.insert((path.to_owned(), method.to_owned()));
        let got = doc["paths"][path]
            .get(method)
            .unwrap_or_else(|| panic!("{id}: no {method} {path} in the document"));
        assert_eq!(got["operationId"], id, "{method} {path}");
        assert!(
            got.get("x-hookjar-extension").is_none(),
            "{id} is Skilljar's"
        );
        let params = got["parameters"].as_array().cloned().unwrap_or_default();
        if path.contains("{webhook_id}") {
            let p = params
                .iter()
                .find(|p| p["name"] == id_param["name"] && p["in"] == "path")
                .unwrap_or_else(|| panic!("{id}: no webhook_id parameter"));
            assert_eq!(p["required"], true, "{id}");
            assert_eq!(p["schema"]["type"], id_param["type"], "{id}");
            assert_eq!(p["schema"]["pattern"], id_param["pattern"], "{id}");
        }
        for q in op["query"].as_array().into_iter().flatten() {
            let p = params
                .iter()
                .find(|p| p["name"] == q["name"] && p["in"] == "query")
                .unwrap_or_else(|| panic!("{id}: no query parameter {}", q["name"]));
            assert_eq!(p["schema"]["type"], q["type"], "{id}: {}", q["name"]);
        }
        for p in params.iter().filter(|p| p["in"] == "query") {
            let skilljars = op["query"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|q| q["name"] == p["name"]);
            assert!(
                skilljars
                    || p["description"]
                        .as_str()
                        .is_some_and(|d| d.contains("Not in Skilljar's published schema")),
                "{id}: query parameter {} is not Skilljar's and does not say so",
                p["name"]
            );
        }
        match op.get("body").and_then(Value::as_str) {
            Some(body) => {
                let rb = &got["requestBody"];
                assert_eq!(rb["required"], op["body_required"], "{id}: body required");
                let types: BTreeSet<&str> = rb["content"]
                    .as_object()
                    .unwrap()
                    .keys()
                    .map(String::as_str)
                    .collect();
                let want: BTreeSet<&str> = op["content_types"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap())
                    .collect();
                assert_eq!(types, want, "{id}: content types");
                for ct in want {
                    assert_eq!(rb["content"][ct]["schema"], ref_to(body), "{id}: {ct}");
                }
            }
            None => assert!(got.get("requestBody").is_none(), "{id} takes no body"),
        }
        for (status, want) in op["responses"].as_object().unwrap() {
            let r = resolve(&doc, &got["responses"][status]);
            assert!(r.is_object(), "{id}: no {status} response");
            match want {
                Value::String(s) if s == "no body" => {
                    assert!(r.get("content").is_none(), "{id}: {status} has no body");
                }
                Value::String(name) => assert_eq!(
                    r["content"]["application/json"]["schema"],
                    ref_to(name),
                    "{id}: {status}"
                ),
                Value::Object(fields) => {
                    let schema = resolve(&doc, &r["content"]["application/json"]["schema"]);
                    for (field, ty) in fields {
                        let prop = &schema["properties"][field];
                        let ty = ty.as_str().unwrap();
                        let ty = if ty == "array of object" {
                            assert_eq!(prop["items"]["type"], "object", "{id}: {field}");
                            "array"
                        } else {
                            ty
                        };
                        let types: Vec<&Value> = match &prop["type"] {
                            Value::Array(ts) => ts.iter().collect(),
                            t => vec![t],
                        };
                        assert!(
                            types.iter().any(|t| *t == ty),
                            "{id}: {status}.{field} should be {ty}: {prop}"
                        );
                    }
                }
                other => panic!("unexpected facts entry {other}"),
            }
        }
    }

    // Every other operation is hookjar's and says so (GET /v1/ping is S5's key check,
    // outside Skilljar's webhooks schema).
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if skilljar_ops.contains(&(path.clone(), method.clone())) || path == "/v1/ping" {
                continue;
            }
            assert_eq!(op["x-hookjar-extension"], true, "{method} {path}");
            assert_eq!(
                op["tags"],
                serde_json::json!([EXTENSION_TAG]),
                "{method} {path}"
            );
        }
    }

    // Schemas: names, required lists, fields, types, defaults, enums.
    let schemas = &doc["components"]["schemas"];
    for name in ["WebHook", "WebHookRequest", "PaginatedWebHookList"] {
        let want = &facts["schemas"][name];
        let got = &schemas[name];
        assert_eq!(got["required"], want["required"], "{name}: required");
        let want_props = want["properties"].as_object().unwrap();
        let got_props = got["properties"].as_object().unwrap();
        assert_eq!(
            got_props.keys().collect::<BTreeSet<_>>(),
            want_props.keys().collect::<BTreeSet<_>>(),
            "{name}: fields"
        );
        for (field, w) in want_props {
            if name == "PaginatedWebHookList" && field == "results" {
                assert_eq!(got_props[field]["items"], ref_to("WebHook"));
                continue;
            }
            if name == "WebHookRequest" && field == "event_type" {
                // A blank string means "all types" too (S2), as DRF's BlankEnum.
                assert!(
                    got_props[field]["oneOf"]
                        .as_array()
                        .unwrap()
                        .contains(&ref_to("BlankEnum"))
                );
            }
            check_property(&doc, name, field, &got_props[field], w);
        }
    }
    let patched = &schemas["PatchedWebHookRequest"];
    assert!(
        patched.get("required").is_none(),
        "nothing is required in a PATCH"
    );
    assert_eq!(
        patched["properties"], schemas["WebHookRequest"]["properties"],
        "PatchedWebHookRequest has WebHookRequest's fields"
    );
    for name in ["WebHookRequest", "PatchedWebHookRequest"] {
        assert_eq!(
            schemas[name]["additionalProperties"], false,
            "{name}: the server refuses unknown fields"
        );
    }
    for name in ["EventTypeEnum", "DeactivateReasonEnum"] {
        let got: BTreeSet<&str> = schemas[name]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let want: BTreeSet<&str> = facts["schemas"][name]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(got, want, "{name}");
    }
    let basic = &doc["components"]["securitySchemes"]["OrganizationApiKey"];
    assert_eq!(basic["type"], "http");
    assert_eq!(basic["scheme"], "basic");
}

/// The events extension requires `event_type` from the enum and keeps other keys.
#[test]
fn emit_requires_an_event_type() {
    let doc = document();
    let body = resolve(
        &doc,
        &doc["paths"]["/v1/events"]["post"]["requestBody"]["content"]["application/json"]["schema"],
    );
    assert_eq!(body["required"], serde_json::json!(["event_type"]));
    assert_eq!(body["properties"]["event_type"], ref_to("EventTypeEnum"));
}

#[test]
fn the_document_is_pinned() {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(repo().join("snapshots"));
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| insta::assert_json_snapshot!("dispatch__openapi", document()));
}

/// A concrete path for a documented one: ids that exist where the operation needs one.
fn concrete(path: &str, webhook: &str) -> String {
    path.replace("{webhook_id}", webhook)
        .replace("{delivery_id}", "0nosuchdelivery")
}

/// Every documented operation is routed and answers one of its documented statuses;
/// an undocumented method answers 405 with `Allow` naming exactly the documented
/// ones (and HEAD with GET); OPTIONS answers 200 with the same `Allow`.
#[tokio::test]
async fn the_server_answers_as_documented() {
    let config = Config {
        api_key: KEY.into(),
        // Nothing the documented calls create may be contacted off this machine.
        loopback_only: true,
        ..Config::default()
    };
    let server = Dispatcher::start(config, "127.0.0.1:0").await.unwrap();
    let c = reqwest::Client::new();
    let served: Value = c
        .get(format!("{}/openapi.json", server.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(served, document(), "GET /openapi.json serves the document");

    let created: Value = c
        .post(format!("{}/v1/webhooks", server.url()))
        .basic_auth(KEY, Some(""))
        .json(&serde_json::json!({"target_url": "http://127.0.0.1:9/hook"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let webhook = created["id"].as_str().unwrap();
    let doc = document();
    let all = ["GET", "PUT", "POST", "PATCH", "DELETE"];
    for (path, item) in doc["paths"].as_object().unwrap() {
        let url = format!("{}{}", server.url(), concrete(path, webhook));
        let documented: BTreeSet<String> = item
            .as_object()
            .unwrap()
            .keys()
            .map(|m| m.to_ascii_uppercase())
            .collect();
        for (method, op) in item.as_object().unwrap() {
            let m = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
            let mut req = c.request(m, &url).basic_auth(KEY, Some(""));
            if op.get("requestBody").is_some() {
                req = req.json(&serde_json::json!({"event_type": "PING"}));
            }
            let res = req.send().await.unwrap();
            let status = res.status().as_u16().to_string();
            assert!(
                op["responses"].get(&status).is_some(),
                "{method} {path} answered {status}, which is not documented"
            );
            // Without the key: 401, documented everywhere but /openapi.json.
            if path != "/openapi.json" {
                let m =
                    reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
                let res = c.request(m, &url).send().await.unwrap();
                assert_eq!(res.status(), 401, "{method} {path} without the key");
                assert!(op["responses"].get("401").is_some(), "{method} {path}: 401");
            }
        }
        let mut allowed: BTreeSet<String> = documented.clone();
        if allowed.contains("GET") {
            allowed.insert("HEAD".into());
        }
        for m in all.iter().filter(|m| !documented.contains(**m)) {
            let res = c
                .request(reqwest::Method::from_bytes(m.as_bytes()).unwrap(), &url)
                .basic_auth(KEY, Some(""))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 405, "{m} {path}");
            let allow: BTreeSet<String> = res.headers()["allow"]
                .to_str()
                .unwrap()
                .split(',')
                .map(|s| s.trim().to_owned())
                .collect();
            assert_eq!(allow, allowed, "Allow of {path}");
        }
        let res = c
            .request(reqwest::Method::OPTIONS, &url)
            .basic_auth(KEY, Some(""))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "OPTIONS {path}");
    }

    // An id Skilljar could not have issued is not found, whatever the method: no
    // Allow header advertises PUT, PATCH or DELETE on sample-x.
    for m in ["GET", "PUT", "PATCH", "DELETE", "OPTIONS"] {
        let res = c
            .request(
                reqwest::Method::from_bytes(m.as_bytes()).unwrap(),
                format!("{}/v1/webhooks/sample-x", server.url()),
            )
            .basic_auth(KEY, Some(""))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404, "{m} sample-x");
        let allow = res
            .headers()
            .get("allow")
            .map(|v| v.to_str().unwrap().to_owned());
        assert!(
            allow.as_deref().is_none_or(str::is_empty),
            "{m} sample-x advertises {allow:?}"
        );
    }
    server.shutdown().await;
}

/// S13: Skilljar answers a ping to an unknown id with a bare 404.
#[tokio::test]
async fn s13_ping_of_an_unknown_id_is_404_without_a_body() {
    let config = Config {
        api_key: KEY.into(),
        // Nothing the documented calls create may be contacted off this machine.
        loopback_only: true,
        ..Config::default()
    };
    let server = Dispatcher::start(config, "127.0.0.1:0").await.unwrap();
    let res = reqwest::Client::new()
        .post(format!("{}/v1/webhooks/0nosuchhook00/ping", server.url()))
        .basic_auth(KEY, Some(""))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(res.text().await.unwrap(), "");
    server.shutdown().await;
}
