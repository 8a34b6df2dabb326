"""Schemathesis hooks for .ci/schemathesis: where the OpenAPI document is right but
schemathesis 4 cannot act on it, and nowhere else.

1. Form bodies. The document says (an OpenAPI `encoding`, as Skilljar's schema
   does) that in a form body `additional_headers` is a JSON object *string*.
   Schemathesis applies only `style`/`explode` of an encoding, not its
   `contentType`, so it explodes the object into top-level form fields, which the
   server rightly refuses as unknown fields. And a form has no null: schemathesis
   sends `null` as the text "null" in a multipart part. Such cases are left out;
   every other form case, and every JSON case, runs.
2. Settled choices the document states in words, because one schema serves
   create and update as in Skilljar's own (WebHookRequest): `PUT` also accepts a
   body without `target_url`, or none (S4, settled: PUT is partial like PATCH), and on
   create the password mask "********" is refused (it only means "keep the stored
   password" on an update). Failures that come from exactly these are dropped.
3. `format: uri`. Skilljar's schema declares `target_url` a `uri`, and hookjar's
   document says so too; but Skilljar's validator (Django's URLValidator, S6) also
   accepts path characters RFC 3986 does not (`^`, `{`, …), and hookjar follows the
   validator. A failure about exactly that (such a URL accepted, or read back) is
   dropped.
4. Unknown query parameters. Like Django REST framework (and so Skilljar), the
   server ignores query parameters it does not know; OpenAPI cannot declare
   "other query parameters are ignored", so schemathesis counts them as invalid
   input that should be refused. Only a failure whose request carries such a
   parameter is dropped.
6. Negative data that never reached the server. In the stateful phase schemathesis
   can report a request as "schema-violating" (no `Authorization`, a body of random
   bytes) while the request it actually sent carried the `--auth` credentials and
   the JSON body a link filled in; the server rightly accepted that request. Such a
   failure is dropped only when every invalid component it names is contradicted by
   the request as sent (`response.request`): the credentials are there, the body is
   a JSON object, the body said to carry extra properties is empty, or a field said
   to have "become" an invalid value holds another value in the body as sent.
7. Integers beyond 64 bits in an emit (X1). `POST /v1/events` takes any top-level
   keys (`additionalProperties: true`), and refuses an integer literal beyond 64 bits
   anywhere in the body, which serde_json would read as the nearest float and deliver
   altered; the document says so in words (a JSON Schema cannot bound every nested
   integer). A schema-valid emit refused with exactly that one message is dropped; any
   other refusal still fails.
5. `format: uri` the other way. Django's URLValidator is also *stricter* than RFC
   3986 in places a JSON Schema cannot say: a host name of at most 253 characters,
   labels of at most 63, a TLD of letters (S6, settled). A schema-valid
   `target_url` refused with exactly `{"target_url": ["Enter a valid URL."]}` and
   nothing else is dropped; any other refusal of a schema-valid body still fails.
8. Header names unique without regard to case. The document says in words that the
   names of `additional_headers` are "unique without regard to case" (S6: a receiver
   would get only one of `b` and `B`); a JSON Schema cannot say it. A schema-valid
   body refused with exactly that — every message under `additional_headers` a
   "given twice" one, and the body holding two such names — is dropped.
"""

import json
import re

import schemathesis

FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


@schemathesis.hook
def filter_case(context, case):
    if case.media_type not in FORMS or not isinstance(case.body, dict):
        return True
    headers = case.body.get("additional_headers")
    if isinstance(headers, dict) and headers:
        return False
    if any(v is None for v in case.body.values()):
        return False
    return True


MISSING_AUTH = "violates `required` (was Authorization)"
BAD_SYNTAX = "Invalid syntax"
BODY_EXTRA = "- body: violates `additionalProperties`"
BODY_FIELD = re.compile(r"^- body: violates `\w+` at \S*/properties/(\w+) \(was .*, became (.*)\)$")


def negation_never_sent(message, response):
    """Whether each invalid component `message` names (a missing Authorization, a
    body that is not JSON) is absent from the request as sent (point 6)."""
    if response is None or getattr(response, "request", None) is None:
        return False
    _, _, listed = message.partition("Invalid component:")
    items = [line.strip() for line in listed.splitlines() if line.strip()]
    if not items:
        return False
    sent = response.request
    for item in items:
        if MISSING_AUTH in item:
            if "Authorization" not in sent.headers:
                return False
        elif BAD_SYNTAX in item:
            try:
                parsed = json.loads(sent.body)
            except (TypeError, ValueError):
                return False
            if not isinstance(parsed, dict):
                return False
        elif item.startswith(BODY_EXTRA):
            # An empty body has no properties, extra or not.
            if sent.body not in (None, b"", ""):
                return False
        elif (m := BODY_FIELD.match(item)) is not None:
            # "`target_url` became ''": not in the body as sent.
            field, became = m.group(1), m.group(2)
            try:
                parsed = json.loads(sent.body)
                became = json.loads(became)
            except (TypeError, ValueError):
                return False
            if not isinstance(parsed, dict) or parsed.get(field, became) == became:
                return False
        else:
            return False
    return True


TWICE = re.compile(r'^Header ".*" is given twice \(header names are case-insensitive\)\.$')


def given_twice(refused, body):
    """Whether a refusal is only about header names given twice without regard to
    case, and the body holds such a pair (point 8)."""
    if not isinstance(refused, dict) or list(refused) != ["additional_headers"]:
        return False
    messages = refused["additional_headers"]
    if not isinstance(messages, list) or not messages:
        return False
    if not all(isinstance(m, str) and TWICE.match(m) for m in messages):
        return False
    headers = body.get("additional_headers") if body is not None else None
    if not isinstance(headers, dict):
        return False
    lowered = [name.lower() for name in headers]
    return len(set(lowered)) < len(lowered)


@schemathesis.hook
def filter_failure(context, failure, case, response):
    kind = type(failure).__name__
    body = case.body if isinstance(case.body, dict) else None
    label = f"{case.operation.method.upper()} {case.operation.path}"
    if (
        kind == "AcceptedNegativeData"
        and label == "PUT /v1/webhooks/{webhook_id}"
        and (body is None or "target_url" not in body)
    ):
        return False
    if (
        kind == "RejectedPositiveData"
        and label == "POST /v1/webhooks"
        and body is not None
        and body.get("basic_auth_password") == "********"
    ):
        return False
    if kind == "RejectedPositiveData" and response is not None and response.status_code == 400:
        try:
            refused = response.json()
        except Exception:
            refused = None
        if refused == {"target_url": ["Enter a valid URL."]}:
            return False
        if given_twice(refused, body):
            return False
        if (
            label == "POST /v1/events"
            and isinstance(refused, dict)
            and list(refused) == ["non_field_errors"]
            and len(refused["non_field_errors"]) == 1
            and "is an integer beyond 64 bits" in refused["non_field_errors"][0]
        ):
            return False
    message = str(getattr(failure, "message", ""))
    if kind == "AcceptedNegativeData" and "target_url: Value not matching the 'uri' format" in message:
        return False
    if kind == "AcceptedNegativeData" and negation_never_sent(message, response):
        return False
    if (
        kind == "JsonSchemaError"
        and 'is not a "uri"' in message
        and "/properties/target_url" in message
    ):
        return False
    if kind != "AcceptedNegativeData":
        return True
    declared = {p.name for p in case.operation.query}
    unknown = set((case.query or {}).keys()) - declared
    return not unknown
