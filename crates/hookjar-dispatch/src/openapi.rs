//! The OpenAPI document of X4, served at `GET /openapi.json` and pinned by a snapshot
//! (`snapshots/dispatch__openapi.snap`).
//!
//! The Skilljar part follows Skilljar's published schema (`skilljar-api-facts.json`,
//! copied to `tests/data/`): its operation ids and paths (`/v1/webhooks/{webhook_id}`,
//! ten explicit `sample-*` paths), its schema names (`WebHook`, `WebHookRequest`,
//! `PatchedWebHookRequest`, `PaginatedWebHookList`), fields, defaults, required lists
//! and enums. hookjar's own operations carry the tag `hookjar extensions` and
//! `x-hookjar-extension: true`.
//!
//! The document is exactly as strict as the server: every status an operation can
//! answer (401 on every authenticated one), `additionalProperties: false` on bodies
//! whose unknown fields are refused, nullable only where `null` is accepted or sent.
//! Operations come from the `#[utoipa::path]` items below; the webhook schemas are
//! built from `hookjar-core`'s own constants (event types, reasons, URL length,
//! reserved headers), so they cannot drift from validation.

use serde_json::{Map, Value, json};
use utoipa::OpenApi;

use hookjar_core::webhook::{MAX_TARGET_URL_LEN, RESERVED_HEADERS};
use hookjar_core::{DeactivateReason, EventType};

use crate::api::{DeliveryPage, Detail, EmitResult, PingResult, RedeliverResult, SampleResult};

/// Skilljar's pattern for webhook ids (S3).
pub const WEBHOOK_ID_PATTERN: &str = "^[0-9a-z]+$";
/// The tag and the extension flag of hookjar's own operations.
pub const EXTENSION_TAG: &str = "hookjar extensions";
/// Operation ids that are hookjar's, not Skilljar's.
pub const EXTENSION_OPERATIONS: [&str; 5] = [
    "webhooks_deactivate_create",
    "webhooks_deliveries_list",
    "deliveries_redeliver_create",
    "events_create",
    "openapi_retrieve",
];

/// The document as served.
pub fn document() -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the document serialises");
    finish(&mut doc);
    doc
}

/// A `{"detail": …}` answer.
const DETAIL: &str = "#/components/schemas/Detail";

#[allow(dead_code)] // The functions only carry their `#[utoipa::path]` items.
mod ops {
    use super::*;

    /// Checks the API key (S5): an empty 200 when it is good.
    #[utoipa::path(get, path = "/v1/ping", operation_id = "ping_retrieve", tag = "auth",
        responses((status = 200, description = "The key is good (empty body)")))]
    fn ping_retrieve() {}

    /// Lists webhooks, oldest first (S1).
    #[utoipa::path(get, path = "/v1/webhooks", operation_id = "webhooks_list", tag = "webhooks",
        params(("page" = Option<i64>, Query, description = "A page number within the paginated result set."),
               ("page_size" = Option<String>, Query, description = "Results per page: a whole number, default 20, at most 100 (larger ones are clamped; anything else is ignored). Not in Skilljar's published schema.")),
        responses((status = 200, body = inline(Object), description = "PaginatedWebHookList"),
                  (status = 404, description = "Invalid page", body = Detail)))]
    fn webhooks_list() {}

    /// Creates a webhook (S2) from a JSON, form-urlencoded or multipart body.
    #[utoipa::path(post, path = "/v1/webhooks", operation_id = "webhooks_create", tag = "webhooks",
        request_body(content(
            (Object = "application/json"),
            (Object = "application/x-www-form-urlencoded"),
            (Object = "multipart/form-data"))),
        responses((status = 201, body = inline(Object), description = "WebHook"),
                  (status = 400, description = "Field-keyed errors (DRF style)", body = inline(Object)),
                  (status = 413, description = "Body over 1 MiB", body = Detail),
                  (status = 408, description = "The client paused longer than the header timeout (--header-timeout, 10 s) in the middle of the body; the connection is closed", body = Detail),
                  (status = 415, description = "Not JSON, form-urlencoded or multipart", body = Detail)))]
    fn webhooks_create() {}

    /// Retrieves a webhook (S4).
    #[utoipa::path(get, path = "/v1/webhooks/{webhook_id}", operation_id = "webhooks_retrieve", tag = "webhooks",
        responses((status = 200, body = inline(Object), description = "WebHook"),
                  (status = 404, description = "No webhook with this id", body = Detail)))]
    fn webhooks_retrieve() {}

    /// Updates a webhook (S4). hookjar also accepts a partial body, as PATCH does
    /// (settled, S4); `active: true` re-activates and clears `deactivate_reason`.
    #[utoipa::path(put, path = "/v1/webhooks/{webhook_id}", operation_id = "webhooks_update", tag = "webhooks",
        request_body(content(
            (Object = "application/json"),
            (Object = "application/x-www-form-urlencoded"),
            (Object = "multipart/form-data"))),
        responses((status = 200, body = inline(Object), description = "WebHook"),
                  (status = 400, description = "Field-keyed errors (DRF style)", body = inline(Object)),
                  (status = 404, description = "No webhook with this id", body = Detail),
                  (status = 413, description = "Body over 1 MiB", body = Detail),
                  (status = 408, description = "The client paused longer than the header timeout (--header-timeout, 10 s) in the middle of the body; the connection is closed", body = Detail),
                  (status = 415, description = "Not JSON, form-urlencoded or multipart", body = Detail)))]
    fn webhooks_update() {}

    /// Updates some fields of a webhook (S4); `active: true` re-activates and clears
    /// `deactivate_reason`.
    #[utoipa::path(patch, path = "/v1/webhooks/{webhook_id}", operation_id = "webhooks_partial_update", tag = "webhooks",
        request_body(content(
            (Object = "application/json"),
            (Object = "application/x-www-form-urlencoded"),
            (Object = "multipart/form-data"))),
        responses((status = 200, body = inline(Object), description = "WebHook"),
                  (status = 400, description = "Field-keyed errors (DRF style)", body = inline(Object)),
                  (status = 404, description = "No webhook with this id", body = Detail),
                  (status = 413, description = "Body over 1 MiB", body = Detail),
                  (status = 408, description = "The client paused longer than the header timeout (--header-timeout, 10 s) in the middle of the body; the connection is closed", body = Detail),
                  (status = 415, description = "Not JSON, form-urlencoded or multipart", body = Detail)))]
    fn webhooks_partial_update() {}

    /// Deletes a webhook with its delivery log (S4).
    #[utoipa::path(delete, path = "/v1/webhooks/{webhook_id}", operation_id = "webhooks_destroy", tag = "webhooks",
        responses((status = 204, description = "Deleted (no body)"),
                  (status = 404, description = "No webhook with this id", body = Detail)))]
    fn webhooks_destroy() {}

    /// Sends a PING to the webhook now (S13). Never retried, never deactivates.
    #[utoipa::path(post, path = "/v1/webhooks/{webhook_id}/ping", operation_id = "webhooks_ping_create", tag = "webhooks",
        responses((status = 200, body = PingResult),
                  (status = 404, description = "No webhook with this id (no body)")))]
    fn webhooks_ping_create() {}

    /// hookjar extension: deactivates a webhook as an organisation-level shut-off
    /// would (`ORG_DISABLED`, S18) and drops its pending deliveries.
    #[utoipa::path(post, path = "/v1/webhooks/{webhook_id}/deactivate", operation_id = "webhooks_deactivate_create", tag = "hookjar extensions",
        responses((status = 200, body = inline(Object), description = "WebHook"),
                  (status = 404, description = "No webhook with this id", body = Detail)))]
    fn webhooks_deactivate_create() {}

    /// hookjar extension (X2): a webhook's deliveries, oldest first, each with every
    /// attempt.
    #[utoipa::path(get, path = "/v1/webhooks/{webhook_id}/deliveries", operation_id = "webhooks_deliveries_list", tag = "hookjar extensions",
        params(("page" = Option<i64>, Query, description = "A page number within the paginated result set."),
               ("page_size" = Option<String>, Query, description = "Results per page: a whole number, default 20, at most 100 (larger ones are clamped; anything else is ignored).")),
        responses((status = 200, body = DeliveryPage),
                  (status = 404, description = "No webhook with this id, or an invalid page", body = Detail)))]
    fn webhooks_deliveries_list() {}

    /// hookjar extension (X2): queues the same bytes to the same webhook again.
    #[utoipa::path(post, path = "/v1/deliveries/{delivery_id}/redeliver", operation_id = "deliveries_redeliver_create", tag = "hookjar extensions",
        params(("delivery_id" = String, Path, description = "A delivery's id, from the delivery log.")),
        responses((status = 202, body = RedeliverResult),
                  (status = 404, description = "No delivery with this id", body = Detail),
                  (status = 409, description = "The webhook is inactive", body = Detail)))]
    fn deliveries_redeliver_create() {}

    /// hookjar extension (X1): emits an event: the type's fixture with a fresh
    /// timestamp, other top-level keys replacing the fixture's. Stored before the
    /// answer (S19).
    #[utoipa::path(post, path = "/v1/events", operation_id = "events_create", tag = "hookjar extensions",
        request_body(content((Object = "application/json"))),
        responses((status = 202, body = EmitResult),
                  (status = 400, description = "Field-keyed errors (DRF style)", body = inline(Object)),
                  (status = 413, description = "Body over 1 MiB", body = Detail),
                  (status = 408, description = "The client paused longer than the header timeout (--header-timeout, 10 s) in the middle of the body; the connection is closed", body = Detail),
                  (status = 415, description = "Not JSON", body = Detail)))]
    fn events_create() {}

    /// hookjar extension (X4): this document. No authentication.
    #[utoipa::path(get, path = "/openapi.json", operation_id = "openapi_retrieve", tag = "hookjar extensions",
        security(()),
        responses((status = 200, description = "This document", content_type = "application/json", body = inline(Object))))]
    fn openapi_retrieve() {}
}

use ops::*;

/// The derived part of the document; [`document`] completes it.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "hookjar dispatcher",
        description = "The Skilljar Webhooks API as served by hookjar's reference dispatcher, with Skilljar's operation ids, paths and schema names. Operations tagged `hookjar extensions` (and marked `x-hookjar-extension: true`) are hookjar's own, not Skilljar's."
    ),
    paths(
        ping_retrieve, webhooks_list, webhooks_create, webhooks_retrieve, webhooks_update,
        webhooks_partial_update, webhooks_destroy, webhooks_ping_create,
        webhooks_deactivate_create, webhooks_deliveries_list, deliveries_redeliver_create,
        events_create, openapi_retrieve
    ),
    components(schemas(
        DeliveryPage, PingResult, EmitResult, RedeliverResult, SampleResult, Detail,
        crate::store::DeliveryView, crate::store::AttemptView
    )),
    security(("OrganizationApiKey" = []))
)]
struct ApiDoc;

/// `{"$ref": "#/components/schemas/NAME"}`.
fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// `{"oneOf": [schema, {"type": "null"}]}`.
fn nullable(schema: Value) -> Value {
    json!({ "oneOf": [schema, {"type": "null"}] })
}

/// A header name (an HTTP token) that is not one the dispatcher owns (S6): the
/// `propertyNames` of `additional_headers`.
fn header_name_pattern() -> String {
    let reserved: Vec<String> = RESERVED_HEADERS
        .iter()
        .map(|name| {
            name.chars()
                .map(|c| {
                    if c.is_ascii_alphabetic() {
                        format!("[{}{}]", c.to_ascii_lowercase(), c.to_ascii_uppercase())
                    } else {
                        c.to_string()
                    }
                })
                .collect()
        })
        .collect();
    format!(
        "^(?!(?:{})$)[!#$%&'*+.^_`|~0-9A-Za-z-]+$",
        reserved.join("|")
    )
}

/// An `http`/`https` URL whose host is `localhost` or a domain name, with an optional
/// port, path, query and fragment: Django's `URLValidator` (S6, settled) without its
/// IP and non-ASCII hosts, and with only RFC 3986 characters in the path, query and
/// fragment (the validator takes more). Every string it matches is a `target_url`
/// the server accepts.
pub const TARGET_URL_PATTERN: &str = "^https?://(?:localhost|(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z]{2,63}\\.?)(?::[1-9][0-9]{0,3})?(?:/(?:[A-Za-z0-9._~!$&'()*+,;=:@/-]|%[0-9A-Fa-f]{2})*)?(?:\\?(?:[A-Za-z0-9._~!$&'()*+,;=:@/?-]|%[0-9A-Fa-f]{2})*)?(?:#(?:[A-Za-z0-9._~!$&'()*+,;=:@/?-]|%[0-9A-Fa-f]{2})*)?$";

/// The spellings of a boolean that the server reads, as Django REST framework's
/// `BooleanField` does (S2): JSON `0`/`1` and these strings.
const BOOLEAN_SPELLINGS: [&str; 20] = [
    "t", "T", "true", "True", "TRUE", "on", "On", "ON", "1", "yes", "f", "F", "false", "False",
    "FALSE", "off", "Off", "OFF", "0", "no",
];

/// The writable webhook fields (S2), as Skilljar's `WebHookRequest` names them.
fn request_properties() -> Value {
    json!({
        "target_url": {
            "type": "string", "format": "uri", "minLength": 1,
            "maxLength": MAX_TARGET_URL_LEN, "pattern": TARGET_URL_PATTERN,
            "description": "An absolute http(s) URL (Django's URLValidator rules), at most 1024 characters."
        },
        "active": {
            "oneOf": [
                {"type": "boolean"},
                {"enum": [0, 1]},
                {"type": "string", "enum": BOOLEAN_SPELLINGS},
            ],
            "default": true,
            "description": "true or false; also read as Django REST framework reads a boolean (0, 1, \"yes\", \"off\", …), which is how a form sends it."
        },
        "event_type": {
            "oneOf": [schema_ref("EventTypeEnum"), schema_ref("BlankEnum"), {"type": "null"}],
            "description": "The one event type the webhook receives; null, blank or absent = all types."
        },
        "basic_auth_username": {"type": "string", "default": ""},
        "basic_auth_password": {
            "type": "string", "default": "",
            "description": "On an update, \"********\" keeps the stored password; on create it is refused."
        },
        "additional_headers": {
            "type": "object",
            "additionalProperties": {
                "type": "string",
                "pattern": "^(?:[^\\u0000-\\u001f\\u007f-\\u009f ](?:[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\u0000-\\u001f\\u007f-\\u009f ])?)?$"
            },
            "propertyNames": {"pattern": header_name_pattern()},
            "description": "Sent verbatim on every POST (S9). Names are HTTP tokens, unique without regard to case, and not a header the dispatcher sets; values are one line without surrounding spaces. In a form body: a JSON object string."
        }
    })
}

/// Skilljar's webhook schemas and enums, built from core's constants.
fn webhook_schemas() -> Map<String, Value> {
    let mut webhook_props = json!({
        "id": {"type": "string", "readOnly": true, "pattern": WEBHOOK_ID_PATTERN},
    });
    let req = request_properties();
    for (k, v) in req.as_object().expect("an object") {
        webhook_props[k] = v.clone();
    }
    // The answer carries what was stored: no blank event type, no pattern checks.
    webhook_props["target_url"] =
        json!({"type": "string", "format": "uri", "maxLength": MAX_TARGET_URL_LEN});
    webhook_props["active"] = json!({"type": "boolean", "default": true});
    webhook_props["event_type"] = nullable(schema_ref("EventTypeEnum"));
    webhook_props["deactivate_reason"] = json!({
        "oneOf": [schema_ref("DeactivateReasonEnum"), {"type": "null"}],
        "readOnly": true,
        "description": "Why the dispatcher deactivated the webhook, or null."
    });
    webhook_props["basic_auth_password"] = json!({
        "type": "string", "default": "",
        "description": "A set password reads back as \"********\" unless the dispatcher runs with --reveal-secrets."
    });
    webhook_props["additional_headers"] = json!({
        "type": "object", "additionalProperties": {"type": "string"}
    });
    let patched = request_properties();
    let mut schemas = Map::new();
    schemas.insert(
        "WebHook".into(),
        json!({"type": "object", "required": ["target_url"], "properties": webhook_props}),
    );
    schemas.insert(
        "WebHookRequest".into(),
        json!({"type": "object", "required": ["target_url"], "properties": req, "additionalProperties": false}),
    );
    schemas.insert(
        "PatchedWebHookRequest".into(),
        json!({"type": "object", "properties": patched, "additionalProperties": false}),
    );
    schemas.insert(
        "PaginatedWebHookList".into(),
        json!({
            "type": "object",
            "required": ["count", "results"],
            "properties": {
                "count": {"type": "integer", "example": 123},
                "next": {"oneOf": [{"type": "string", "format": "uri"}, {"type": "null"}]},
                "previous": {"oneOf": [{"type": "string", "format": "uri"}, {"type": "null"}]},
                "results": {"type": "array", "items": schema_ref("WebHook")}
            }
        }),
    );
    schemas.insert(
        "EventTypeEnum".into(),
        json!({"type": "string", "enum": EventType::ALL.iter().map(|t| t.as_str()).collect::<Vec<_>>()}),
    );
    schemas.insert(
        "DeactivateReasonEnum".into(),
        json!({"type": "string", "enum": DeactivateReason::ALL.iter().map(|r| r.as_str()).collect::<Vec<_>>()}),
    );
    schemas.insert("BlankEnum".into(), json!({"type": "string", "enum": [""]}));
    schemas.insert(
        "EmitRequest".into(),
        json!({
            "type": "object",
            "required": ["event_type"],
            "properties": {
                "event_type": schema_ref("EventTypeEnum")
            },
            "additionalProperties": true,
            "description": "The event type, and top-level keys that replace the fixture's (e.g. \"user\": {…}); a `timestamp` follows X1. An integer beyond 64 bits anywhere in the body is refused (400): it could not be delivered exactly."
        }),
    );
    schemas.insert(
        "ValidationErrors".into(),
        json!({
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
            "description": "DRF style: each field (or non_field_errors) with its messages.",
            "example": {"target_url": ["Enter a valid URL."]}
        }),
    );
    schemas
}

/// The ten sample paths of S6b, in Skilljar's operation-id order.
fn sample_operations() -> Vec<(String, String, EventType)> {
    let mut v: Vec<_> = EventType::ALL
        .iter()
        .map(|&t| {
            let kebab = t.kebab();
            (
                format!("/v1/webhooks/sample-{kebab}"),
                format!("webhooks_sample_{}_retrieve", kebab.replace('-', "_")),
                t,
            )
        })
        .collect();
    v.sort();
    v
}

/// Completes the derived document: the webhook schemas, the ten sample paths, the
/// `webhook_id` parameter, 401 on every authenticated operation, bodies and
/// extension tags.
fn finish(doc: &mut Value) {
    doc["openapi"] = json!("3.1.0");
    let schemas = doc["components"]["schemas"]
        .as_object_mut()
        .expect("components.schemas");
    schemas.extend(webhook_schemas());
    doc["components"]["securitySchemes"] = json!({
        "OrganizationApiKey": {
            "type": "http",
            "scheme": "basic",
            "description": "HTTP Basic: the API key as the username, an empty password."
        }
    });
    doc["components"]["responses"] = json!({
        "Unauthorized": {
            "description": "Missing or wrong API key (S5)",
            "headers": {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "Basic realm=\"api\""}},
            "content": {"application/json": {"schema": {"$ref": DETAIL}}}
        }
    });

    // The ten sample paths (S6b), each GET only.
    let paths = doc["paths"].as_object_mut().expect("paths");
    for (path, id, t) in sample_operations() {
        paths.insert(
            path,
            json!({"get": {
                "tags": ["webhooks"],
                "operationId": id,
                "summary": format!("A sample {} event, with a fresh timestamp (S6b).", t.as_str()),
                "responses": {"200": {
                    "description": "One sample event",
                    "content": {"application/json": {"schema": schema_ref("SampleResult")}}
                }}
            }}),
        );
    }

    let webhook_id = json!({
        "name": "webhook_id", "in": "path", "required": true,
        "schema": {"type": "string", "pattern": WEBHOOK_ID_PATTERN},
        "description": "The webhook's id."
    });
    for (path, item) in paths.iter_mut() {
        for (method, op) in item.as_object_mut().expect("a path item") {
            let id = op["operationId"].as_str().unwrap_or_default().to_owned();
            // Query parameters as the server reads them: `page` is a whole number
            // (anything else is 404 "Invalid page."); `page_size` takes any text and
            // ignores what is not a whole number, as Django REST framework does.
            if let Some(ps) = op.get_mut("parameters").and_then(Value::as_array_mut) {
                for p in ps.iter_mut().filter(|p| p["in"] == "query") {
                    p["schema"] = if p["name"] == "page" {
                        json!({"type": "integer"})
                    } else {
                        json!({"type": "string"})
                    };
                }
            }
            if path.contains("{webhook_id}") {
                op["parameters"] = match op.get("parameters").and_then(Value::as_array) {
                    Some(ps) => {
                        let mut all = vec![webhook_id.clone()];
                        all.extend(ps.iter().cloned());
                        Value::Array(all)
                    }
                    None => json!([webhook_id.clone()]),
                };
            }
            // WebHook bodies and answers by Skilljar's names.
            let responses = op["responses"].as_object_mut().expect("responses");
            for (status, r) in responses.iter_mut() {
                let described = r["description"].as_str().unwrap_or_default().to_owned();
                let name = match (status.as_str(), described.as_str()) {
                    (_, "WebHook") => Some(("WebHook", "A webhook")),
                    (_, "PaginatedWebHookList") => {
                        Some(("PaginatedWebHookList", "A page of webhooks"))
                    }
                    ("400", _) => Some(("ValidationErrors", "Field-keyed errors (DRF style)")),
                    _ => None,
                };
                if let Some((schema, description)) = name {
                    r["description"] = json!(description);
                    r["content"] = json!({"application/json": {"schema": schema_ref(schema)}});
                }
            }
            if id == "openapi_retrieve" {
                responses.insert(
                    "200".into(),
                    json!({"description": "This document", "content": {"application/json": {"schema": {"type": "object"}}}}),
                );
            } else {
                responses.insert(
                    "401".into(),
                    json!({"$ref": "#/components/responses/Unauthorized"}),
                );
            }
            let body = match id.as_str() {
                "webhooks_create" | "webhooks_update" => Some(("WebHookRequest", true)),
                "webhooks_partial_update" => Some(("PatchedWebHookRequest", false)),
                "events_create" => Some(("EmitRequest", true)),
                _ => None,
            };
            if let Some((schema, required)) = body {
                let mut content = Map::new();
                content.insert(
                    "application/json".into(),
                    json!({"schema": schema_ref(schema)}),
                );
                if schema != "EmitRequest" {
                    for form in ["application/x-www-form-urlencoded", "multipart/form-data"] {
                        content.insert(
                            form.into(),
                            json!({
                                "schema": schema_ref(schema),
                                "encoding": {"additional_headers": {"contentType": "application/json"}}
                            }),
                        );
                    }
                }
                op["requestBody"] = json!({"content": content, "required": required});
            }
            if EXTENSION_OPERATIONS.contains(&id.as_str()) {
                op["tags"] = json!([EXTENSION_TAG]);
                op["x-hookjar-extension"] = json!(true);
            }
            let _ = method;
        }
    }
    doc["tags"] = json!([
        {"name": "webhooks", "description": "Skilljar's Webhooks API (its published schema)."},
        {"name": "auth", "description": "Checking the API key (S5)."},
        {"name": EXTENSION_TAG, "description": "hookjar's own operations; not part of Skilljar's API."}
    ]);
    doc["servers"] = json!([{"url": "/", "description": "This dispatcher"}]);
}
