#!/usr/bin/env python3
"""A small Skilljar-style webhook dispatcher (stdlib only), written from hookjar's
SPEC.md and docs, to exercise `hookjar conformance --server`.

    python3 tests/tools/pydisp.py --port 18800 --api-key k --time-scale 3600 [--mutant NAME]
    python3 tests/tools/pydisp.py --list-mutants

It shares no code with hookjar: an independent check that the conformance suite passes
a correct dispatcher it has never seen and fails broken ones (docs/testing.md).

Everything is in memory. Clause ids (S1.., X1..) refer to SPEC.md.
"""
import argparse
import base64
import hashlib
import heapq
import hmac
import http.client
import itertools
import json
import os
import random
import re
import socket
import ssl
import string
import sys
import threading
import time
from datetime import datetime, timezone, timedelta
from email.parser import BytesParser
from email import policy as email_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit, urlunsplit, parse_qsl, urlencode, urljoin

# ---------------------------------------------------------------- configuration
EVENT_TYPES = ["DOMAIN_ENROLLMENT", "COURSE_ENROLLMENT", "COURSE_COMPLETION",
               "LESSON_COMPLETION", "PATH_ENROLLMENT", "PATH_COMPLETION",
               "QUIZ_COMPLETION", "PURCHASE_FULFILLMENT", "VILT_EVENT_REGISTRATION",
               "DASHBOARD_TASK_CREATED"]
SAMPLE_PATHS = {"sample-" + t.lower().replace("_", "-"): t for t in EVENT_TYPES}
SAMPLE_PATHS["sample-vilt-registration"] = "VILT_EVENT_REGISTRATION"
del SAMPLE_PATHS["sample-vilt-event-registration"]
MASK = "********"
RESERVED = {"content-type", "user-agent", "authorization", "content-length", "host",
            "transfer-encoding", "connection", "upgrade", "te", "keep-alive", "expect"}
TCHARS = set(string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~")
FIELDS = ["target_url", "active", "event_type", "basic_auth_username",
          "basic_auth_password", "additional_headers"]
READ_ONLY = {"id", "deactivate_reason"}

MUTANTS = {
    "backoff-plus20": "S14: every back-off 20 % longer (2.4 s, 4.8 s, ...)",
    "backoff-minus20": "S14: every back-off 20 % shorter (1.6 s, 3.2 s, ...)",
    "cap-7200": "S14/S15: back-off capped at 7200 s instead of 3600 s",
    "no-deactivate-404": "S16: a 404 is retried like a 5xx instead of deactivating",
    "no-deactivate-410": "S16: a 410 is retried like a 5xx",
    "deactivate-first-5xx": "S14/S15: the first 5xx deactivates (RETRY_COUNT) with no retry",
    "content-type-charset": "S7: Content-Type: application/json; charset=utf-8",
    "user-agent-python": "S7: User-Agent: Python-urllib/3.11 (the stdlib default)",
    "timestamp-local": "S11: payload timestamp in local time +01:00, no UTC",
    "timestamp-no-micros": "S11: payload timestamp without microseconds (…:55+00:00)",
    "event-type-lower": "S11: event_type sent in lower case (course_enrollment)",
    "wrapped-payload": "S11: payload wrapped as {\"data\": {...}}",
    "event-id-added": "S11/X5: an \"id\" key added to each payload (and a new one on each retry)",
    "headers-override-auth": "S6/S9: additional header Authorization accepted and replaces Basic auth",
    "basic-auth-no-base64": "S8: Authorization: Basic user:pass (not base64)",
    "basic-auth-semicolon": "S8: base64(user;pass) instead of user:pass",
    "send-to-inactive": "S12: inactive webhooks still receive new events",
    "filter-ignored": "S12: a webhook's event_type filter is ignored (gets every type)",
    "all-types-skipped": "S12: webhooks with event_type null get nothing",
    "duplicate-on-success": "S7/S12: a successful delivery is POSTed twice",
    "ping-always-succeeds": "S13: ping answers succeeded=true whatever the receiver said",
    "ping-no-headers": "S9/S13: ping sent without the additional headers",
    "page-off-by-one": "S1: each page skips its first webhook (offset +1)",
    "patch-resets": "S4: PATCH/PUT resets fields not in the body to their defaults",
    "delete-200": "S4: DELETE answers 200 with the resource instead of 204",
    "any-key": "S5: any Basic username is accepted as the API key",
    "retry-after-deactivate": "S15/S16: pending retries continue after the webhook is deactivated",
    "reactivate-keeps-reason": "S4: active:true re-activates but leaves deactivate_reason",
    "retry-limit-30": "S15: gives up after 30 retries (RETRY_COUNT)",
    "no-redirect": "S18: redirects not followed; 3xx retried like 5xx",
    "ping-retries": "S13: a failed ping is retried once after 2 s (a second PING POST)",
    "wrong-reason-4xx": "S16: 4xx deactivates with reason \"HTTP_4XX\" instead of HTTP_4XX_RESPONSE",
    "no-dedupe-normalised": "S12: URLs compared byte for byte, not normalised",
    "timeout-60s": "S18: delivery timeout 60 s instead of the settled 10 s",
    "stale-applied": "S16: a late verdict from before an update is applied anyway",
    "redirect-keeps-auth": "S18: Authorization kept when a redirect leaves the origin",
    "extra-header": "X5: an extra X-Request-Id header (new on each attempt)",
    "ping-no-timestamp": "S11/S13: the PING payload has no timestamp",
    "async-store": "S19: emit answers 202 before its deliveries are stored (stored 300 ms later)",
    "accept-ftp": "S6: ftp:// target URLs accepted",
    "count-page": "S1: count is the number of results on the page, not the total",
    # ---- second round (27 Nov 2026)
    "wait-from-first-attempt": "S14: retry k due at first attempt's start + backoff(k), not after each failure",
    "wait-from-attempt-start": "S14: each wait measured from the failed attempt's start, not its answer",
    "backoff-base-1": 'S14: back-off doubles from 1 s (1, 2, 4, ...)',
    "cap-1800": 'S14: back-off capped at 1800 s instead of 3600 s',
    "retry-limit-61": 'S15: 61 retries (62 POSTs) before RETRY_COUNT',
    "retry-limit-59": 'S15: RETRY_COUNT after the 60th POST (59 retries)',
    "4xx-on-retry-retried": 'S16: a 4xx on a retry (not the first attempt) is retried like a 5xx',
    "429-as-5xx": 'S16: 429 treated as 5xx (retried, no deactivation)',
    "408-as-5xx": 'S16: 408 treated as 5xx (retried, no deactivation)',
    "3xx-no-location-success": 'S18: a 3xx without Location counts as delivered',
    "redirect-limit-11": 'S18: 11 redirect hops followed (limit off by one, too lenient)',
    "redirect-limit-9": 'S18: the 10th redirect hop already deactivates (limit off by one, too strict)',
    "307-to-get": 'S18: a 307 turned into a bodiless GET like 301/302/303',
    "303-keeps-post": 'S18: a 303 keeps the POST and its body',
    "basic-auth-empty-both": 'S8: Authorization: Basic Og== sent when username and password are both empty',
    "basic-auth-user-only-omitted": 'S8: no Authorization when only the username is set',
    "headers-lowercased": 'S9: additional header names sent lower-cased',
    "headers-dropped-on-retry": 'S9/S7: additional headers sent on the first attempt only',
    "ping-event-type-lower": 'S11/S13: PING sent as event_type "ping"',
    "ping-deactivates-4xx": 'S13: a ping answered 4xx deactivates the webhook (HTTP_4XX_RESPONSE)',
    "ping-status-string": 'S13: ping answer\'s http_status_code is a string ("503")',
    "ping-404-json": 'S13: ping of an unknown id answers 404 with {"detail": "Not found."}',
    "dedupe-host-case-sensitive": 'S12: URL normalisation forgets to lower-case the host',
    "reactivate-restores-deliveries": 'S4/S15: re-activation re-queues the deliveries dropped at deactivation',
    "list-newest-first": 'S1: list ordered newest first',
    "page-size-no-max": 'S1: page_size above 100 honoured (no max)',
    "404-not-drf": 'S4: unknown webhook id -> 404 {"error": "webhook not found"}',
    "retry-new-timestamp": 'S11/X5: each retry re-renders the payload with a fresh timestamp',
    "only-200-success": 'S17: only 200 is success; other 2xx retried like 5xx',
    "refused-deactivates": 'S18: connection refused deactivates (RETRY_COUNT) at once',
    "timeout-deactivates": 'S18: a timeout deactivates (RETRY_COUNT) at once',
    "unknown-fields-ignored": 'S6: unknown fields silently ignored (DRF default)',
    "blank-type-nothing": 'S2/S12: event_type "" stored as "" (matches no event) instead of null',
    "bearer-accepted": 'S5: Authorization: Bearer <key> accepted',
    "url-max-2048": 'S2/S6: target_url up to 2048 chars accepted',
    "emit-timestamp-replaced": 'X1: a valid timestamp given to emit is replaced by a fresh one',
    "put-full-only": 'S4: PUT without target_url -> 400 (DRF full update)',
    "form-bool-truthy": 'S2: form value active=false read as true (non-empty string)',
    "password-clear": 'S3: basic_auth_password read back in clear',
    "mask-overwrites": 'S3: a write of "********" stores the mask as the password',
    "ping-inactive-refused": 'S13: ping of an inactive webhook answers 409 without sending',
    "retry-count-reason-null": 'S15: RETRY_COUNT webhook reported with deactivate_reason null',
    # ---- third round (28 Nov 2026)
    "next-drops-page-size": 'S1: next/previous links drop the page_size query parameter',
    "last-page-has-next": 'S1: the last page still has a next link (to a page past the end)',
    "previous-always-first": 'S1: previous always links to page 1',
    "list-summary": 'S1: list results omit additional_headers and deactivate_reason',
    "username-default-null": 'S2/S3: an unset basic_auth_username reads back null, not ""',
    "headers-default-null": 'S2/S3: unset additional_headers read back null, not {}',
    "mask-empty-password": 'S2/S3: an empty password reads back as "********"',
    "multipart-unsupported": 'S2: multipart/form-data bodies answered 415',
    "form-update-unsupported": 'S4: PUT/PATCH with a form body answered 415 (form only on create)',
    "url-stored-normalised": 'S6: target_url stored normalised (scheme/host lower-cased, dot segments resolved), not byte for byte',
    "delete-unknown-204": 'S4: DELETE of an unknown id answers 204',
    "put-unknown-upsert": 'S4: PUT of an unknown id creates the webhook (201)',
    "url-change-reactivates": 'S4: changing target_url of an inactive webhook re-activates it',
    "deactivate-manual-reason": 'S3/S4: PATCH active:false sets deactivate_reason "MANUAL"',
    "update-skips-url-validation": 'S6: PUT/PATCH store any string as target_url (validated on create only)',
    "update-not-atomic": 'S6: an update with one bad field applies its good fields, then answers 400',
    "wrong-key-no-challenge": 'S5: a wrong key answers 401 without WWW-Authenticate',
    "bearer-generic-message": 'S5: Bearer refused with {"detail": "Invalid token."} (no word on how to send the key)',
    "ping-no-auth": 'S5: GET /v1/ping answers 200 without (or with a wrong) key',
    "header-name-not-checked": 'S6: additional header names not checked for HTTP token characters',
    "header-value-crlf": 'S6: additional header values with CR/LF/control bytes accepted',
    "hop-by-hop-accepted": 'S6: hop-by-hop header names (Upgrade, TE, Keep-Alive, Expect, Proxy-*) accepted',
    "reserved-case-sensitive": 'S6: reserved header names compared with their case ("authorization" accepted)',
    "header-value-no-cap": 'S6: additional header values over 8 KiB accepted',
    "event-type-msg-no-choices": 'S6: the unknown event_type message does not list the valid ones',
    "malformed-json-detail": 'S6: malformed JSON answered 400 {"detail": ...} instead of a field-keyed/non_field_errors body',
    "url-scheme-only": 'S6: target_url only checked for an http(s):// prefix (spaces, no host accepted)',
    "no-413": 'S6: bodies over 1 MiB accepted (no 413)',
    "wrong-method-404": 'S6: a wrong method answers 404 instead of 405',
    "header-value-coerced": 'S2/S6: non-string additional header values (numbers, booleans) coerced to strings',
    "event-type-case-insensitive": 'S6: event_type matched without case ("course_completion" accepted)',
    "form-headers-bad-json-ignored": 'S6: malformed additional_headers JSON in a form body taken as {}',
    "emit-deep-merge": 'X1: an object given to emit is merged into the fixture\'s object instead of replacing it',
    "emit-bad-timestamp-kept": 'X1: an invalid timestamp given to emit is kept (no 400)',
    "emit-timestamp-reformatted": 'X1: a valid timestamp given to emit is re-rendered (…Z → …​.000000+00:00), not kept',
    "emit-count-before-dedupe": 'X1/S12: emit\'s "deliveries" counts qualifying webhooks before URL dedupe',
    "lesson-no-lesson-object": 'S11: LESSON_COMPLETION payload without its lesson object',
    "dedupe-before-filter": 'S12: a shared URL is served by its oldest webhook even when that one does not qualify (then nothing is sent)',
    "dedupe-ignores-query": 'S12: URLs compared without their query string',
    "dedupe-path-case": 'S12: URL paths compared without case',
    "ping-refused-status-0": 'S13: a ping that gets no answer reports http_status_code 0, not null',
    "ping-failure-no-message": 'S13: a failed ping answers {"error": ...} instead of "message"',
    "ping-only-200": 'S13: a ping answered 201/204 reports succeeded false',
    "4xx-keeps-pending": 'S16/S12: a 4xx deactivation leaves the webhook\'s other pending retries running',
    "patch-inactive-keeps-pending": 'S12: PATCH active:false leaves the webhook\'s pending retries running',
    "unknown-4xx-retried": 'S16: 4xx codes not in http.HTTPStatus (420, 499) retried like 5xx',
    "308-to-get": 'S18: a 308 turned into a bodiless GET',
    "redirect-drops-headers": 'S8/S9/S18: Authorization and additional headers dropped on every redirect, same origin too',
    "timeout-5s": 'S18: delivery timeout 5 s instead of the settled 10 s',
    "transport-exhaustion-no-deactivate": 'S15/S18: transport failures on every attempt: the delivery gives up after 60 retries but the webhook stays active',
    "only-standard-2xx": 'S17: only 200-206 are success; 207/226/299 retried like 5xx',
    "log-attempt-minimal": 'X2: delivery log attempts show only their time (no status/error, latency, verdict, next attempt)',
    "backoff-jitter-10": 'S14/S15: every back-off jittered uniformly by up to ±10 % (the 50.1 h total moves with it)',
    # ---- fourth round
    "list-order-updated": 'S1: list ordered by last change (a PATCH moves a webhook to the end), not oldest first',
    "delete-soft-listed": 'S1/S4: a DELETEd webhook is gone for GET (404) but still listed and counted',
    "form-blank-type-refused": 'S2/S6: event_type "" in a form body answered 400 (blank means all types)',
    "https-refused": 'S2/S6: https target URLs refused (http only)',
    "ipv6-refused": 'S2/S6: target URLs with a bracketed IPv6 host refused',
    "url-dns-check": 'S2/S6: target_url host must resolve in DNS at create (unresolvable valid domain -> 400)',
    "url-trailing-newline": 'S6: a target_url ending in "\\n" accepted (regex $ instead of \\Z)',
    "url-not-required": 'S2/S6: a create without target_url accepted (201, target_url "")',
    "readonly-reason-writable": 'S3/S4: PUT/PATCH can set deactivate_reason (read-only) to any S18 code',
    "readonly-id-writable": 'S3/S4: PUT/PATCH with "id" renames the webhook (id is read-only)',
    "auth-pair-reset": 'S4: an update of basic_auth_username alone clears the stored password',
    "headers-patch-merge": 'S4: an update of additional_headers merges into the stored ones (a header cannot be removed)',
    "empty-password-ignored": 'S4: an update with basic_auth_password "" is ignored (the password cannot be cleared)',
    "blank-type-update-ignored": 'S2/S4: an update with event_type "" keeps the old type instead of all types',
    "validate-before-lookup": 'S4/S6: PUT/PATCH of an unknown id with a bad field answers 400 instead of 404',
    "patch-reactivate-keeps-reason": 'S4: PATCH active:true re-activates but leaves deactivate_reason (PUT clears it)',
    "key-prefix-match": 'S5: any Basic username that starts with the API key is accepted',
    "wrong-key-no-detail": 'S5: a wrong key answers 401 with an empty body (no "detail")',
    "bearer-no-challenge": 'S5: a Bearer token refused with 401 but no WWW-Authenticate',
    "key-in-query": 'S5: ?api_key=KEY accepted instead of Basic auth',
    "bad-base64-500": 'S5: Basic credentials that are not base64 answer 500 instead of 401',
    "header-name-empty": 'S6: an additional header with an empty name accepted',
    "header-name-unicode": 'S6: header names checked with str.isalnum(): non-ASCII letters ("x-é") accepted',
    "header-value-del": 'S6: header values with DEL (0x7f) accepted (control check stops at 0x1f)',
    "proxy-prefix-case": 'S6: "Proxy-*" refused only with that case ("proxy-authorization" accepted)',
    "json-active-truthy": 'S2/S6: a JSON active that is not a boolean taken by truthiness ("false" -> true)',
    "json-array-500": 'S6: a JSON body that is an array answers 500 instead of 400',
    "ping-any-method": 'S6/S13: GET /v1/webhooks/{id}/ping sends a ping (200) instead of 405',
    "sample-bare": 'S6b: samples hold only event_type and timestamp, not the fixture\'s objects',
    "user-no-email": 'S11: the user object of payloads carries no email',
    "body-latin1": 'S7/S11: non-ASCII characters of a payload sent in Latin-1, not UTF-8',
    "empty-header-value-dropped": 'S9: an additional header whose value is "" is not sent',
    "query-dropped-on-send": 'S7: the POST goes to target_url without its query string',
    "dedupe-default-port": 'S12: URL comparison keeps the default port (http://h:80/x and http://h/x differ)',
    "dedupe-trailing-slash": 'S12: URLs compared without a trailing slash (/x and /x/ taken as one URL)',
    "dedupe-dotdot": 'S12: URL comparison resolves "." segments but not ".."',
    "dedupe-inactive-owner": 'S12: an inactive older webhook on a shared URL takes the event (nothing sent)',
    "emit-counts-inactive": 'X1/S12: emit\'s "deliveries" also counts inactive webhooks of the type',
    "ping-reactivates": 'S13/S4: a successful ping of an inactive webhook re-activates it',
    "emit-override-reorders": 'S11/X1: keys given to emit move to the end of the payload (a given timestamp comes last)',
    "log-all-webhooks": 'X2: a webhook\'s delivery log lists every webhook\'s deliveries',
    "redeliver-no-auth": 'X2/S8/S9: a redelivery is POSTed without Authorization and additional headers',
    "log-leaks-auth": 'S3/X2: the delivery log shows each attempt\'s request headers, Authorization included',
    "log-next-at-wrong": 'X2: an attempt\'s next_attempt_at is at + back-off/N (wall seconds on the dispatcher timeline), not when the retry is due',
    "honour-retry-after": 'S14: a 5xx with Retry-After is retried after Retry-After, not the back-off',
    "429-retry-after-honoured": 'S16: a 429 with Retry-After is retried after it instead of deactivating',
    "4xx-after-redirect-retried": 'S16/S18: a 4xx at the end of a redirect is retried like a 5xx',
    "relative-location-root": 'S18: a relative Location ("next") resolved against the root, not the current path',
    "success-cancels-pending": 'S12/S14: a 2xx drops the webhook\'s other deliveries waiting to retry',
    "redeliver-no-retry": 'X2/S14: a redelivery answered 5xx is not retried',
    "shared-4xx-deactivates-all": 'S12/S16: a 4xx on a shared URL deactivates every webhook on that URL, not only the one that sent',
}

ARGS = None
MUT = set()


def m(name):
    return name in MUT


# ---------------------------------------------------------------- time (X3)
class Clock:
    def __init__(self, scale):
        self.scale = scale
        self.w0 = time.time()
        self.m0 = time.monotonic()

    def wall(self):
        return self.w0 + (time.monotonic() - self.m0)

    def disp(self):  # dispatcher time: D0 + (wall - W0) * N, D0 = W0
        return self.w0 + (time.monotonic() - self.m0) * self.scale

    def disp_to_wall(self, d):
        return self.wall() + (d - self.disp()) / self.scale


def iso(t):
    if t is None:
        return None
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="microseconds")


def payload_timestamp():
    now = datetime.now(timezone.utc)
    if m("timestamp-local"):
        return now.astimezone(timezone(timedelta(hours=1))).isoformat(timespec="microseconds")
    if m("timestamp-no-micros"):
        return now.isoformat(timespec="seconds")
    return now.isoformat(timespec="microseconds")


ISO_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$")


def valid_iso(s):
    if not isinstance(s, str) or not ISO_RE.match(s):
        return False
    try:
        x = s[:-1] + "+00:00" if s.endswith("Z") else s
        frac = re.search(r"\.(\d+)", x)
        if frac and len(frac.group(1)) > 6:
            x = x.replace(frac.group(0), "." + frac.group(1)[:6])
        datetime.fromisoformat(x)
        return True
    except ValueError:
        return False


def new_id():
    return "".join(random.choice(string.ascii_lowercase + string.digits) for _ in range(13))


# ---------------------------------------------------------------- fixtures
FIXTURES = {}


def load_fixtures(d):
    for t in EVENT_TYPES + ["PING"]:
        with open(os.path.join(d, t + ".json"), encoding="utf-8") as f:
            FIXTURES[t] = json.load(f)


def fixture(t):
    ev = json.loads(json.dumps(FIXTURES[t]))
    ev["timestamp"] = payload_timestamp()
    if m("event-type-lower"):
        ev["event_type"] = t.lower()
    if m("lesson-no-lesson-object") and t == "LESSON_COMPLETION":
        del ev["lesson"]
    if m("user-no-email") and isinstance(ev.get("user"), dict):
        ev["user"].pop("email", None)
    return ev


def dumps(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# ---------------------------------------------------------------- validation (S2, S6)
UL = "\u00a1-\uffff"
IPV4 = r"(?:0|25[0-5]|2[0-4][0-9]|1[0-9]?[0-9]?|[1-9][0-9]?)(?:\.(?:0|25[0-5]|2[0-4][0-9]|1[0-9]?[0-9]?|[1-9][0-9]?)){3}"
IPV6 = r"\[[0-9a-f:.]+\]"
HOSTNAME = r"[a-z" + UL + r"0-9](?:[a-z" + UL + r"0-9-]{0,61}[a-z" + UL + r"0-9])?"
DOMAIN = r"(?:\.(?!-)[a-z" + UL + r"0-9-]{1,63}(?<!-))*"
TLD = r"\.(?!-)(?:[a-z" + UL + "-]{2,63}|xn--[a-z0-9]{1,59})(?<!-)\.?"
HOST = "(?:" + HOSTNAME + DOMAIN + TLD + "|localhost)"
URL_RE = re.compile(r"^(?:[a-z0-9.+-]*)://(?:[^\s:@/]+(?::[^\s:@/]*)?@)?(?:" + IPV4 + "|" + IPV6 + "|" + HOST +
                    r")(?::([0-9]{1,5}))?(?:[/?#][^\s]*)?\Z", re.IGNORECASE)


def valid_url(u):
    if not isinstance(u, str) or len(u) > (2048 if m("url-max-2048") else 1024):
        return False
    if m("url-scheme-only"):
        return u.lower().startswith(("http://", "https://"))
    if m("url-trailing-newline") and u.endswith("\n"):
        u = u[:-1]
    if any(ord(c) < 0x21 or ord(c) == 0x7f for c in u):
        return False
    scheme = u.split("://", 1)[0].lower() if "://" in u else ""
    if scheme not in ("http", "https") and not (m("accept-ftp") and scheme == "ftp"):
        return False
    if m("https-refused") and scheme == "https":
        return False
    if m("ipv6-refused") and "[" in u.split("/")[2]:
        return False
    mt = URL_RE.match(u)
    if not mt:
        return False
    if mt.group(1) and int(mt.group(1)) > 65535:
        return False
    if IPV6 and "[" in u.split("/")[2]:
        import ipaddress
        try:
            ipaddress.IPv6Address(u.split("/")[2].split("[", 1)[1].split("]", 1)[0])
        except ValueError:
            return False
    rest = u.split("://", 1)[1]
    path = rest[rest.find("/"):] if "/" in rest else ""
    if any(c in path for c in '\\"{}<>^`|'):
        return False
    q = urlsplit(u).query
    if "'" in q:
        return False
    return True


def normalise_url(u):
    s = urlsplit(u)
    scheme = s.scheme.lower()
    host = (s.hostname or "").lower()
    if m("dedupe-host-case-sensitive"):
        host = s.netloc.rsplit("@", 1)[-1].rsplit(":", 1)[0] if not s.netloc.endswith("]") else host
    port = s.port
    if (scheme, port) in (("http", 80), ("https", 443)) and not m("dedupe-default-port"):
        port = None
    netloc = host if ":" not in host else "[" + host + "]"
    if port is not None:
        netloc += ":%d" % port
    if s.username is not None:
        netloc = s.username + (":" + s.password if s.password is not None else "") + "@" + netloc
    segs = []
    for seg in (s.path or "/").split("/")[1:]:
        if seg == ".":
            continue
        if seg == ".." and not m("dedupe-dotdot"):
            if segs:
                segs.pop()
            continue
        segs.append(seg)
    last = (s.path or "/").split("/")[-1]
    path = "/" + "/".join(segs) + ("/" if last in (".", "..") and segs else "")
    if m("dedupe-path-case"):
        path = path.lower()
    if m("dedupe-trailing-slash") and len(path) > 1:
        path = path.rstrip("/")
    return urlunsplit((scheme, netloc, path, "" if m("dedupe-ignores-query") else s.query, ""))


OWNED_CANON = {"Content-Type", "User-Agent", "Authorization", "Content-Length", "Host",
               "Transfer-Encoding", "Connection", "Upgrade", "TE", "Keep-Alive", "Expect"}
HOP_BY_HOP = {"upgrade", "te", "keep-alive", "expect"}


def check_header(name, value, errs):
    if m("header-name-unicode"):
        bad_name = any(not (c.isalnum() or c in "!#$%&'*+-.^_`|~") for c in name) if isinstance(name, str) else True
    else:
        bad_name = isinstance(name, str) and any(c not in TCHARS for c in name)
    if not isinstance(name, str) or (not name and not m("header-name-empty")) or (bad_name and not m("header-name-not-checked")):
        errs.append('"%s" is not a valid HTTP header name.' % name)
        return
    lname = name.lower()
    if m("reserved-case-sensitive"):
        owned = name in OWNED_CANON or name.startswith("Proxy-")
    elif m("hop-by-hop-accepted"):
        owned = lname in RESERVED and lname not in HOP_BY_HOP
    elif m("proxy-prefix-case"):
        owned = lname in RESERVED or name.startswith("Proxy-")
    else:
        owned = lname in RESERVED or lname.startswith("proxy-")
    if owned:
        if not (m("headers-override-auth") and lname == "authorization"):
            errs.append('Header "%s" is set by the dispatcher and cannot be replaced.' % name)
            return
    if not isinstance(value, str):
        if m("header-value-coerced") and isinstance(value, (int, float, bool)):
            return
        errs.append('The value of header "%s" must be a string.' % name)
        return
    if any(ord(c) < 0x20 and c != "\t" or (ord(c) == 0x7f and not m("header-value-del")) for c in value) and not m("header-value-crlf"):
        errs.append('The value of header "%s" contains a control character.' % name)
    elif value != value.strip(" \t") and not m("header-value-crlf"):
        errs.append('The value of header "%s" has leading or trailing whitespace.' % name)
    elif len(value.encode("utf-8")) > 8192 and not m("header-value-no-cap"):
        errs.append('The value of header "%s" is longer than 8 KiB.' % name)


def parse_bool(v, form):
    if isinstance(v, bool):
        return v
    if not form and m("json-active-truthy"):
        return bool(v)
    if form and isinstance(v, str) and m("form-bool-truthy"):
        return v != ""
    if form and isinstance(v, str):
        lv = v.strip().lower()
        if lv in ("true", "1", "on", "yes"):
            return True
        if lv in ("false", "0", "off", "no", ""):
            return False
    raise ValueError


def resolves(u):
    try:
        socket.getaddrinfo(urlsplit(u).hostname, None)
        return True
    except (OSError, UnicodeError):
        return False


def validate(data, form, creating, existing=None):
    """Returns (changes, errors)."""
    errors = {}
    out = {}
    unknown = [k for k in data if k not in FIELDS and k not in READ_ONLY]
    if unknown and not m("unknown-fields-ignored"):
        errors["non_field_errors"] = ["Unknown field(s): %s." % ", ".join(sorted(unknown))]
    if "target_url" in data:
        u = data["target_url"]
        if not isinstance(u, str) or u == "":
            errors["target_url"] = ["This field may not be blank." if u == "" else
                                    "This field may not be null." if u is None else "Not a valid string."]
        elif len(u) > (2048 if m("url-max-2048") else 1024):
            errors["target_url"] = ["Ensure this field has no more than 1024 characters."]
        elif m("update-skips-url-validation") and not creating:
            out["target_url"] = u
        elif not valid_url(u):
            errors["target_url"] = ["Enter a valid URL."]
        elif m("url-dns-check") and not resolves(u):
            errors["target_url"] = ["The host of this URL does not resolve."]
        else:
            out["target_url"] = normalise_url(u) if m("url-stored-normalised") else u
    elif creating and m("url-not-required"):
        out["target_url"] = ""
    elif creating:
        errors["target_url"] = ["This field is required."]
    if "active" in data:
        try:
            out["active"] = parse_bool(data["active"], form)
        except ValueError:
            errors["active"] = ["Must be a valid boolean."]
    if "event_type" in data:
        t = data["event_type"]
        if t == "" and form and m("form-blank-type-refused"):
            errors["event_type"] = ['"" is not a valid choice. Valid choices: %s.' % ", ".join(EVENT_TYPES)]
        elif t is None or t == "":
            out["event_type"] = "" if (t == "" and m("blank-type-nothing")) else None
        elif isinstance(t, str) and t in EVENT_TYPES:
            out["event_type"] = t
        elif m("event-type-case-insensitive") and isinstance(t, str) and t.upper() in EVENT_TYPES:
            out["event_type"] = t.upper()
        elif m("event-type-msg-no-choices"):
            errors["event_type"] = ['"%s" is not a valid choice.' % t]
        else:
            errors["event_type"] = ['"%s" is not a valid choice. Valid choices: %s.' % (t, ", ".join(EVENT_TYPES))]
    for f in ("basic_auth_username", "basic_auth_password"):
        if f in data:
            v = data[f]
            if v is None:
                errors[f] = ["This field may not be null."]
            elif not isinstance(v, str):
                errors[f] = ["Not a valid string."]
            elif f == "basic_auth_password" and v == MASK and not m("mask-overwrites"):
                if existing is None:
                    errors[f] = ["The mask \"********\" cannot be stored as a password."]
                # else: keep the stored one (S3)
            else:
                out[f] = v
    if "additional_headers" in data:
        h = data["additional_headers"]
        if form and isinstance(h, str):
            try:
                h = json.loads(h) if h.strip() else {}
            except ValueError:
                h = None
                if not m("form-headers-bad-json-ignored"):
                    errors["additional_headers"] = ["Value must be valid JSON."]
        if h is None and "additional_headers" not in errors:
            h = {}
        if "additional_headers" not in errors:
            if not isinstance(h, dict):
                errors["additional_headers"] = ["Expected an object of header names to string values."]
            else:
                herrs = []
                if len(h) > 50:
                    herrs.append("At most 50 additional headers.")
                seen = set()
                for k, v in h.items():
                    check_header(k, v, herrs)
                    if isinstance(k, str) and k.lower() in seen:
                        herrs.append('Header "%s" is given twice.' % k)
                    seen.add(k.lower() if isinstance(k, str) else k)
                if herrs:
                    errors["additional_headers"] = herrs
                else:
                    out["additional_headers"] = ({k: (json.dumps(v) if isinstance(v, bool) else str(v)) for k, v in h.items()}
                                                 if m("header-value-coerced") else dict(h))
    return out, errors


# ---------------------------------------------------------------- state
LOCK = threading.RLock()
WAKE = threading.Condition(LOCK)
WEBHOOKS = {}        # id -> webhook dict (insertion order = oldest first)
GRAVE = {}           # deleted webhooks (mutant delete-soft-listed only)
DELIVERIES = {}      # id -> delivery dict
HEAP = []            # (due dispatcher time, seq, delivery id)
SEQ = itertools.count()
CLOCK = None


def view(w):
    pw = w["basic_auth_password"]
    return {"id": w["id"], "target_url": w["target_url"], "active": w["active"],
            "deactivate_reason": None if (m("retry-count-reason-null") and w["deactivate_reason"] == "RETRY_COUNT") else w["deactivate_reason"],
            "event_type": w["event_type"],
            "basic_auth_username": None if (m("username-default-null") and not w["basic_auth_username"]) else w["basic_auth_username"],
            "basic_auth_password": pw if m("password-clear") else (MASK if (pw or m("mask-empty-password")) else ""),
            "additional_headers": None if (m("headers-default-null") and not w["additional_headers"]) else dict(w["additional_headers"])}


def drop_pending(wid, note):
    for d in DELIVERIES.values():
        if d["webhook"] == wid and d["state"] == "pending":
            d["state"] = "dropped"
            d["note"] = note
            d["due"] = None


def deactivate(w, reason):
    w["active"] = False
    w["deactivate_reason"] = reason
    w["revision"] += 1
    if not m("retry-after-deactivate") and not (m("4xx-keeps-pending") and reason == "HTTP_4XX_RESPONSE"):
        drop_pending(w["id"], "webhook deactivated (%s)" % reason)


def schedule(d, due):
    d["state"] = "pending"
    d["due"] = due
    heapq.heappush(HEAP, (due, next(SEQ), d["id"]))
    WAKE.notify_all()


def new_delivery(w, event_id, event_type, body):
    d = {"id": new_id(), "event": event_id, "event_type": event_type, "body": body,
         "digest": hashlib.sha256(body).hexdigest()[:16], "webhook": w["id"],
         "state": "pending", "created_at": CLOCK.disp(), "due": None, "note": None,
         "attempts": []}
    DELIVERIES[d["id"]] = d
    schedule(d, CLOCK.disp())
    return d


def backoff(k):
    """Wait before retry k (1-based), dispatcher seconds (S14)."""
    base, cap = ARGS.base_delay, ARGS.max_delay
    if m("cap-7200"):
        cap = 7200.0
    if m("cap-1800"):
        cap = 1800.0
    if m("backoff-base-1"):
        base = 1.0
    delay = min(base * (2 ** (k - 1)) if k < 64 else cap, cap)
    if m("backoff-plus20"):
        delay *= 1.2
    if m("backoff-minus20"):
        delay *= 0.8
    if m("backoff-jitter-10"):
        delay *= random.uniform(0.9, 1.1)
    return delay


def retry_limit():
    if m("retry-limit-61"):
        return 61
    if m("retry-limit-59"):
        return 59
    return 30 if m("retry-limit-30") else ARGS.retry_limit


# ---------------------------------------------------------------- outgoing HTTP (S7-S9, S18)
def request_headers(w, attempt=0):
    h = [("Content-Type", "application/json; charset=utf-8" if m("content-type-charset") else "application/json"),
         ("User-Agent", "Python-urllib/3.11" if m("user-agent-python") else "skilljar")]
    u, p = w["basic_auth_username"], w["basic_auth_password"]
    send_auth = bool(u or p)
    if m("basic-auth-empty-both"):
        send_auth = True
    if m("basic-auth-user-only-omitted") and not p:
        send_auth = False
    if send_auth:
        if m("basic-auth-no-base64"):
            h.append(("Authorization", "Basic %s:%s" % (u, p)))
        else:
            sep = ";" if m("basic-auth-semicolon") else ":"
            h.append(("Authorization", "Basic " + base64.b64encode((u + sep + p).encode("utf-8")).decode()))
    if m("extra-header"):
        h.append(("X-Request-Id", new_id()))
    for k, v in w["additional_headers"].items():
        if m("headers-dropped-on-retry") and attempt > 0:
            break
        if m("empty-header-value-dropped") and v == "":
            continue
        if m("headers-override-auth") and k.lower() == "authorization":
            h = [x for x in h if x[0].lower() != "authorization"]
        h.append((k.lower() if m("headers-lowercased") else k, v))
    return h


def origin(u):
    s = urlsplit(u)
    return (s.scheme.lower(), (s.hostname or "").lower(), s.port or (443 if s.scheme.lower() == "https" else 80))


def send(url, headers, body, timeout):
    """POST body; follow redirects. Returns dict(status|error|too_many, note)."""
    deadline = time.monotonic() + timeout
    method = "POST"
    hops = 0
    note = None
    while True:
        s = urlsplit(url)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return {"error": "timeout", "detail": "timeout after %gs" % timeout, "note": note}
        try:
            port = s.port
            if s.scheme.lower() == "https":
                conn = http.client.HTTPSConnection(s.hostname, port, timeout=remaining,
                                                   context=ssl.create_default_context())
            else:
                conn = http.client.HTTPConnection(s.hostname, port, timeout=remaining)
            path = s.path or "/"
            if s.query and not m("query-dropped-on-send"):
                path += "?" + s.query
            conn.putrequest(method, path, skip_accept_encoding=True)
            for k, v in headers:
                conn.putheader(k, v.encode("utf-8"))
            if body is not None:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            resp = conn.getresponse()
            status = resp.status
            loc = resp.getheader("Location")
            retry_after = resp.getheader("Retry-After")
            resp.read()
            conn.close()
        except socket.timeout:
            return {"error": "timeout", "detail": "timeout after %gs" % timeout, "note": note}
        except ConnectionRefusedError:
            return {"error": "connect", "detail": "connect: connection refused", "note": note}
        except ssl.SSLError as e:
            return {"error": "tls", "detail": "tls: %s" % e, "note": note}
        except ConnectionResetError:
            return {"error": "reset", "detail": "connection reset", "note": note}
        except (OSError, http.client.HTTPException) as e:
            return {"error": "protocol", "detail": "%s: %s" % (type(e).__name__, e), "note": note}
        if status in (301, 302, 303, 307, 308) and loc and not m("no-redirect"):
            hops += 1
            if hops > (11 if m("redirect-limit-11") else 9 if m("redirect-limit-9") else 10):
                return {"too_many": True, "detail": "more than 10 redirects", "note": note}
            new = urljoin(url, loc)
            if m("relative-location-root") and not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:|^/", loc):
                new = urljoin(url, "/" + loc)
            if origin(new) != origin(url) and not m("redirect-keeps-auth"):
                headers = [x for x in headers if x[0].lower() != "authorization"]
            if m("redirect-drops-headers"):
                headers = [x for x in headers if x[0].lower() in ("content-type", "user-agent")]
            to_get = (301, 302) + (() if m("303-keeps-post") else (303,)) + ((307,) if m("307-to-get") else ()) + ((308,) if m("308-to-get") else ())
            if status in to_get and method == "POST":
                method = "GET"
                body = None
                headers = [x for x in headers if x[0].lower() != "content-type"]
                note = "a %d redirect turned the POST into a GET without the body, so the receiver never got the event" % status
            url = new
            continue
        res = {"status": status, "detail": "HTTP %d" % status, "note": note, "hops": hops}
        try:
            res["retry_after"] = float(retry_after) if retry_after is not None else None
        except ValueError:
            res["retry_after"] = None
        return res


# ---------------------------------------------------------------- engine
def classify(res, attempt):
    """-> (verdict, reason or delay)"""
    st = res.get("status")
    if res.get("too_many"):
        return "deactivate", "TOO_MANY_REDIRECTS"
    if st is not None and 200 <= st < 300 and not (m("only-200-success") and st != 200) and not (m("only-standard-2xx") and st > 206):
        return "delivered", None
    if st is not None and 300 <= st < 400 and m("3xx-no-location-success"):
        return "delivered", None
    if res.get("error") == "connect" and m("refused-deactivates"):
        return "deactivate", "RETRY_COUNT"
    if res.get("error") == "timeout" and m("timeout-deactivates"):
        return "deactivate", "RETRY_COUNT"
    if st is not None and 400 <= st < 500 and m("4xx-after-redirect-retried") and res.get("hops") and attempt < retry_limit():
        return "retry", backoff(attempt + 1)
    if st == 429 and m("429-retry-after-honoured") and res.get("retry_after") is not None and attempt < retry_limit():
        return "retry", res["retry_after"]
    if st is not None and 400 <= st < 500:
        if not ((st == 404 and m("no-deactivate-404")) or (st == 410 and m("no-deactivate-410"))
                or (st == 429 and m("429-as-5xx")) or (st == 408 and m("408-as-5xx"))
                or (attempt > 0 and m("4xx-on-retry-retried"))
                or (m("unknown-4xx-retried") and st not in {int(s) for s in __import__("http").HTTPStatus})):
            return "deactivate", "HTTP_4XX" if m("wrong-reason-4xx") else "HTTP_4XX_RESPONSE"
    if m("deactivate-first-5xx"):
        return "deactivate", "RETRY_COUNT"
    if attempt >= retry_limit() and m("transport-exhaustion-no-deactivate") and res.get("error"):
        return "giveup", None
    if attempt >= retry_limit():
        return "deactivate", "RETRY_COUNT"
    if m("honour-retry-after") and st is not None and 500 <= st < 600 and res.get("retry_after") is not None:
        return "retry", res["retry_after"]
    return "retry", backoff(attempt + 1)


def attempt_name(i):
    return "first attempt" if i == 0 else "retry %d" % i


def run_attempt(d, w_snapshot, revision, rec):
    body = d["body"]
    if m("event-id-added"):
        obj = json.loads(body)
        body = dumps(dict(id=new_id(), **obj))
    if m("wrapped-payload"):
        body = b'{"data":' + body + b"}"
    if m("retry-new-timestamp") and rec["attempt"] > 0:
        obj = json.loads(body)
        obj["timestamp"] = payload_timestamp()
        body = dumps(obj)
    if m("body-latin1"):
        body = body.decode("utf-8").encode("latin-1", "replace")
    headers = request_headers(w_snapshot, rec["attempt"])
    if m("redeliver-no-auth") and d.get("redelivery"):
        headers = [x for x in headers if x[0].lower() in ("content-type", "user-agent")]
    if m("log-leaks-auth"):
        rec["request_headers"] = dict(headers)
    t0 = time.monotonic()
    res = send(w_snapshot["target_url"], headers, body, ARGS.timeout)
    latency = (time.monotonic() - t0) * 1000
    if m("duplicate-on-success") and res.get("status") and 200 <= res["status"] < 300:
        send(w_snapshot["target_url"], request_headers(w_snapshot), body, ARGS.timeout)
    if ARGS.verbose:
        sys.stderr.write("%.3f attempt %s #%d -> %s (%.1f ms)\n" % (time.time(), w_snapshot["target_url"], rec["attempt"], res, latency))
    with LOCK:
        verdict, arg = classify(res, rec["attempt"])
        rec["status"] = res.get("status")
        rec["error"] = res.get("error") or ("too_many_redirects" if res.get("too_many") else None)
        rec["latency_ms"] = round(latency, 1)
        rec["verdict"] = verdict
        detail = "%s on %s" % (res["detail"], attempt_name(rec["attempt"]))
        w = WEBHOOKS.get(d["webhook"])
        now = CLOCK.disp()
        if w is None:
            d["state"] = "dropped"
            d["note"] = "webhook deleted"
            rec["detail"] = detail + "; webhook deleted"
            return
        stale = w["revision"] != revision and not m("stale-applied")
        rec["stale"] = stale
        if verdict == "giveup":
            d["state"] = "failed"
            rec["detail"] = detail + "; retries exhausted, delivery failed"
        elif verdict == "delivered":
            d["state"] = "delivered"
            rec["detail"] = detail + "; delivered"
            if m("success-cancels-pending"):
                for o in DELIVERIES.values():
                    if o is not d and o["webhook"] == w["id"] and o["state"] == "pending":
                        o["state"] = "dropped"
                        o["note"] = "cancelled: the webhook answered 2xx"
                        o["due"] = None
        elif verdict == "deactivate":
            d["state"] = "failed"
            rec["detail"] = detail + "; webhook deactivated (%s)" % arg
            if stale:
                d["note"] = "stale answer: the webhook was updated during the attempt; not applied"
            else:
                deactivate(w, arg)
                if m("shared-4xx-deactivates-all") and arg == "HTTP_4XX_RESPONSE":
                    key = normalise_url(w["target_url"])
                    for o in WEBHOOKS.values():
                        if o is not w and o["active"] and normalise_url(o["target_url"]) == key:
                            deactivate(o, arg)
        elif m("redeliver-no-retry") and d.get("redelivery"):
            d["state"] = "failed"
            rec["detail"] = detail + "; a redelivery is not retried"
        else:
            if w["active"] or m("retry-after-deactivate") or m("send-to-inactive") or m("4xx-keeps-pending") or m("patch-inactive-keeps-pending"):
                due = now + arg
                if m("wait-from-first-attempt"):
                    due = d["attempts"][0]["at"] + arg
                if m("wait-from-attempt-start"):
                    due = rec["at"] + arg
                rec["next_attempt_at"] = due
                if m("log-next-at-wrong"):
                    rec["next_attempt_at"] = rec["at"] + arg / CLOCK.scale
                rec["detail"] = detail + "; retry %d in %gs" % (rec["attempt"] + 1, arg)
                schedule(d, due)
            else:
                d["state"] = "dropped"
                d["note"] = "webhook inactive"
                rec["detail"] = detail + "; webhook inactive, dropped"
        if res.get("note"):
            rec["detail"] += "; " + res["note"]


def scheduler():
    while True:
        claimed = []
        with LOCK:
            while True:
                now = CLOCK.disp()
                while HEAP and HEAP[0][0] <= now:
                    due, _, did = heapq.heappop(HEAP)
                    d = DELIVERIES.get(did)
                    if d is None or d["state"] != "pending" or d["due"] != due:
                        continue
                    w = WEBHOOKS.get(d["webhook"])
                    if w is None or (not w["active"] and not (m("retry-after-deactivate") or m("send-to-inactive") or m("4xx-keeps-pending") or m("patch-inactive-keeps-pending"))):
                        d["state"] = "dropped"
                        continue
                    d["state"] = "inflight"
                    d["due"] = None
                    rec = {"attempt": len(d["attempts"]), "at": now, "wall_at": CLOCK.wall(),
                           "status": None, "error": None, "latency_ms": None,
                           "verdict": "started", "stale": False, "detail": None,
                           "next_attempt_at": None}
                    d["attempts"].append(rec)
                    snap = {k: (dict(v) if isinstance(v, dict) else v) for k, v in w.items()}
                    claimed.append((d, snap, w["revision"], rec))
                if claimed:
                    break
                timeout = (HEAP[0][0] - now) / CLOCK.scale if HEAP else None
                WAKE.wait(timeout)
        for c in claimed:
            threading.Thread(target=run_attempt, args=c, daemon=True).start()


# ---------------------------------------------------------------- API
class ApiError(Exception):
    def __init__(self, status, body=None, headers=None):
        self.status, self.body, self.headers = status, body, headers or {}


def paginate(items, query, host, path):
    try:
        page = int(query.get("page", "1"))
        if page < 1:
            raise ValueError
    except ValueError:
        raise ApiError(404, {"detail": "Invalid page."})
    try:
        size = int(query.get("page_size", "20"))
        if size < 1:
            size = 20
    except ValueError:
        size = 20
    if not m("page-size-no-max"):
        size = min(size, 100)
    count = len(items)
    pages = max(1, (count + size - 1) // size)
    if page > pages:
        raise ApiError(404, {"detail": "Invalid page."})
    off = (page - 1) * size
    if m("page-off-by-one"):
        off += 1
    results = items[off:off + size]

    def link(p):
        q = dict(query)
        if m("next-drops-page-size"):
            q.pop("page_size", None)
        if p == 1:
            q.pop("page", None)
        else:
            q["page"] = str(p)
        qs = urlencode(q)
        return "http://%s%s%s" % (host, path, "?" + qs if qs else "")
    if m("count-page"):
        count = len(results)
    return {"count": count, "next": link(page + 1) if (page < pages or m("last-page-has-next")) else None,
            "previous": (link(1) if m("previous-always-first") else link(page - 1)) if page > 1 else None, "results": results}


def delivery_view(d):
    due = d["due"] if d["state"] == "pending" else None
    return {"id": d["id"], "event": d["event"], "event_type": d["event_type"], "digest": d["digest"],
            "state": d["state"], "created_at": iso(d["created_at"]),
            "next_attempt_at": iso(due),
            "next_attempt_wall_at": iso(CLOCK.disp_to_wall(due)) if due is not None else None,
            "note": d["note"],
            "attempts": [({"attempt": a["attempt"], "at": iso(a["at"])} if m("log-attempt-minimal") else
                          dict(a, at=iso(a["at"]), wall_at=iso(a["wall_at"]),
                               next_attempt_at=iso(a["next_attempt_at"]))) for a in d["attempts"]]}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "pydisp"
    sys_version = ""

    def log_message(self, fmt, *a):
        if ARGS.verbose:
            sys.stderr.write("%s\n" % (fmt % a))

    # -- plumbing
    def respond(self, status, body=None, headers=None):
        data = b"" if body is None else dumps(body)
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        if status != 204:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if status != 204 and data:
            self.wfile.write(data)

    def read_body(self):
        self._body_read = True
        te = self.headers.get("Transfer-Encoding", "")
        if "chunked" in te.lower():
            chunks, total = [], 0
            while True:
                line = self.rfile.readline()
                n = int(line.split(b";")[0].strip() or b"0", 16)
                if n == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += n
                if total > 1 << 20 and not m("no-413"):
                    self.close_connection = True
                    raise ApiError(413, {"detail": "Request body too large (over 1 MiB)."})
                chunks.append(self.rfile.read(n))
                self.rfile.readline()
            return b"".join(chunks)
        n = int(self.headers.get("Content-Length") or 0)
        if n > 1 << 20 and not m("no-413"):
            self.close_connection = True
            raise ApiError(413, {"detail": "Request body too large (over 1 MiB)."})
        return self.rfile.read(n) if n else b""

    def parse_body(self, raw):
        """-> (dict, is_form)"""
        ctype = self.headers.get("Content-Type", "")
        main = ctype.split(";")[0].strip().lower()
        if not raw.strip() and main in ("", "application/json"):
            return {}, False
        if main in ("application/json", "") or main.endswith("+json"):
            try:
                data = json.loads(raw.decode("utf-8"))
            except (ValueError, UnicodeDecodeError) as e:
                if m("malformed-json-detail"):
                    raise ApiError(400, {"detail": "JSON parse error - %s" % e})
                raise ApiError(400, {"non_field_errors": ["JSON parse error - %s" % e]})
            if not isinstance(data, dict) and m("json-array-500"):
                raise RuntimeError("'%s' object has no attribute 'get'" % type(data).__name__)
            if not isinstance(data, dict):
                raise ApiError(400, {"non_field_errors": ["Invalid data. Expected a dictionary, but got %s." % type(data).__name__]})
            return data, False
        if main == "application/x-www-form-urlencoded":
            try:
                pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(raw))
            except (ValueError, UnicodeDecodeError):
                raise ApiError(400, {"non_field_errors": ["Malformed form body."]})
            return dict(pairs), True
        if main == "multipart/form-data" and m("multipart-unsupported"):
            raise ApiError(415, {"detail": 'Unsupported media type "%s" in request.' % ctype})
        if main == "multipart/form-data":
            try:
                msg = BytesParser(policy=email_policy.HTTP).parsebytes(
                    b"Content-Type: " + ctype.encode("latin-1") + b"\r\n\r\n" + raw)
                if not msg.is_multipart():
                    raise ValueError
                data = {}
                for part in msg.iter_parts():
                    name = part.get_param("name", header="content-disposition")
                    if name is None:
                        raise ValueError
                    data[name] = part.get_payload(decode=True).decode("utf-8")
            except (ValueError, UnicodeDecodeError, LookupError):
                raise ApiError(400, {"non_field_errors": ["Malformed multipart body."]})
            return data, True
        raise ApiError(415, {"detail": 'Unsupported media type "%s" in request.' % ctype})

    def auth(self, query=None):
        h = self.headers.get("Authorization")
        www = {"WWW-Authenticate": 'Basic realm="api"'}
        if not h and m("key-in-query") and query and query.get("api_key") == ARGS.api_key:
            return
        if not h:
            raise ApiError(401, {"detail": "Authentication credentials were not provided."}, www)
        scheme, _, cred = h.partition(" ")
        if scheme.lower() == "bearer" and m("bearer-accepted") and hmac.compare_digest(cred.strip().encode(), ARGS.api_key.encode()):
            return
        if scheme.lower() == "bearer" and m("bearer-generic-message"):
            raise ApiError(401, {"detail": "Invalid token."}, www)
        if scheme.lower() == "bearer":
            raise ApiError(401, {"detail": "Bearer authentication is not accepted. Send the API key with HTTP Basic auth: the key as the username and an empty password."}, {} if m("bearer-no-challenge") else www)
        if scheme.lower() != "basic":
            raise ApiError(401, {"detail": "Authentication credentials were not provided."}, www)
        try:
            user, sep, pw = base64.b64decode(cred.strip(), validate=True).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            if m("bad-base64-500"):
                raise RuntimeError("cannot decode the credentials")
            raise ApiError(401, {"detail": "Invalid basic header. Credentials not correctly base64 encoded."}, www)
        ok = hmac.compare_digest(user.encode(), ARGS.api_key.encode()) and sep == ":" and pw == ""
        if m("key-prefix-match"):
            ok = hmac.compare_digest(user[:len(ARGS.api_key)].encode(), ARGS.api_key.encode()) and sep == ":" and pw == ""
        if m("any-key"):
            ok = sep == ":" and pw == "" and user != ""
        if not ok:
            raise ApiError(401, None if m("wrong-key-no-detail") else {"detail": "Invalid username/password."}, {} if m("wrong-key-no-challenge") else www)

    def handle_any(self, method):
        self._body_read = False
        try:
            s = urlsplit(self.path)
            path = s.path.rstrip("/") if s.path != "/" else s.path
            query = dict(parse_qsl(s.query, keep_blank_values=True))
            parts = path.strip("/").split("/")
            if parts[0] != "v1":
                raise ApiError(404, {"detail": "Not found."})
            if not (m("ping-no-auth") and parts[1:] == ["ping"]):
                self.auth(query)
            allowed, fn, argv = self.route(parts[1:])
            if method == "OPTIONS":
                self.read_body()
                return self.respond(200, None, {"Allow": ", ".join(allowed + ["OPTIONS"])})
            if method not in allowed:
                self.read_body()
                if m("wrong-method-404"):
                    raise ApiError(404, {"detail": "Not found."})
                raise ApiError(405, {"detail": 'Method "%s" not allowed.' % method},
                               {"Allow": ", ".join(allowed)})
            status, body, *rest = fn(method, query, *argv)
            self.respond(status, body, rest[0] if rest else None)
        except ApiError as e:
            # An answer given before the body was read (an unknown id, a refused
            # key) must still consume it, or the rest of the body is taken for the
            # next request on this keep-alive connection.
            if not self._body_read and not self.close_connection:
                try:
                    self.read_body()
                except ApiError:
                    self.close_connection = True
            self.respond(e.status, e.body, e.headers)
        except Exception as e:  # pragma: no cover
            import traceback
            traceback.print_exc()
            self.respond(500, {"detail": "internal error: %s" % e})

    def route(self, p):
        if p == ["ping"]:
            return ["GET"], self.api_ping, []
        if p == ["events"]:
            return ["POST"], self.api_emit, []
        if len(p) == 3 and p[0] == "deliveries" and p[2] == "redeliver":
            return ["POST"], self.api_redeliver, [p[1]]
        if p and p[0] == "webhooks":
            if len(p) == 1:
                return ["GET", "POST"], self.api_webhooks, []
            if len(p) == 2 and p[1] in SAMPLE_PATHS:
                return ["GET"], self.api_sample, [SAMPLE_PATHS[p[1]]]
            if len(p) == 2:
                return ["GET", "PUT", "PATCH", "DELETE"], self.api_webhook, [p[1]]
            if len(p) == 3 and p[2] == "ping":
                return (["GET", "POST"] if m("ping-any-method") else ["POST"]), self.api_hook_ping, [p[1]]
            if len(p) == 3 and p[2] == "deliveries":
                return ["GET"], self.api_deliveries, [p[1]]
            if len(p) == 3 and p[2] == "deactivate":
                return ["POST"], self.api_deactivate, [p[1]]
        raise ApiError(404, {"detail": "Not found."})

    # -- endpoints
    def api_ping(self, method, q):
        return 200, None

    def api_webhooks(self, method, q):
        host = self.headers.get("Host", "%s:%d" % self.server.server_address[:2])
        if method == "GET":
            with LOCK:
                ws = list(WEBHOOKS.values())
                if m("delete-soft-listed"):
                    ws = sorted(ws + list(GRAVE.values()), key=lambda w: w["seq"])
                if m("list-order-updated"):
                    ws = sorted(ws, key=lambda w: w["touched"])
                items = [view(w) for w in ws]
                if m("list-summary"):
                    items = [{k: v for k, v in i.items() if k not in ("additional_headers", "deactivate_reason")} for i in items]
                if m("list-newest-first"):
                    items.reverse()
            return 200, paginate(items, q, host, "/v1/webhooks")
        data, form = self.parse_body(self.read_body())
        out, errors = validate(data, form, True)
        if errors:
            raise ApiError(400, errors)
        w = {"id": new_id(), "target_url": out["target_url"], "active": out.get("active", True),
             "deactivate_reason": None, "event_type": out.get("event_type"),
             "basic_auth_username": out.get("basic_auth_username", ""),
             "basic_auth_password": out.get("basic_auth_password", ""),
             "additional_headers": out.get("additional_headers", {}), "revision": 0}
        with LOCK:
            w["seq"] = w["touched"] = next(SEQ)
            WEBHOOKS[w["id"]] = w
            return 201, view(w)

    def find(self, wid):
        w = WEBHOOKS.get(wid)
        if w is None:
            if m("404-not-drf"):
                raise ApiError(404, {"error": "webhook not found"})
            raise ApiError(404, {"detail": "Not found."})
        return w

    def api_webhook(self, method, q, wid):
        with LOCK:
            if method == "DELETE" and m("delete-unknown-204") and wid not in WEBHOOKS:
                return 204, None
            if method == "PUT" and m("put-unknown-upsert") and wid not in WEBHOOKS and re.match(r"^[0-9a-z]+$", wid):
                data, form = self.parse_body(self.read_body())
                out, errors = validate(data, form, True)
                if errors:
                    raise ApiError(400, errors)
                w = {"id": wid, "target_url": out["target_url"], "active": out.get("active", True),
                     "deactivate_reason": None, "event_type": out.get("event_type"),
                     "basic_auth_username": out.get("basic_auth_username", ""),
                     "basic_auth_password": out.get("basic_auth_password", ""),
                     "additional_headers": out.get("additional_headers", {}), "revision": 0}
                w["seq"] = w["touched"] = next(SEQ)
                WEBHOOKS[wid] = w
                return 201, view(w)
            if m("validate-before-lookup") and method in ("PUT", "PATCH") and wid not in WEBHOOKS:
                data, form = self.parse_body(self.read_body())
                _, errors = validate(data, form, False, {})
                if errors:
                    raise ApiError(400, errors)
            w = self.find(wid)
            if method == "GET":
                return 200, view(w)
            if method == "DELETE":
                del WEBHOOKS[wid]
                if m("delete-soft-listed"):
                    GRAVE[wid] = w
                for did in [k for k, d in DELIVERIES.items() if d["webhook"] == wid]:
                    del DELIVERIES[did]
                if m("delete-200"):
                    return 200, view(w)
                return 204, None
        data, form = self.parse_body(self.read_body())
        if form and m("form-update-unsupported"):
            raise ApiError(415, {"detail": 'Unsupported media type "%s" in request.' % self.headers.get("Content-Type", "")})
        if m("put-full-only") and method == "PUT" and "target_url" not in data:
            raise ApiError(400, {"target_url": ["This field is required."]})
        with LOCK:
            w = self.find(wid)
            out, errors = validate(data, form, False, w)
            if m("readonly-reason-writable") and data.get("deactivate_reason") in (None, "HTTP_4XX_RESPONSE", "RETRY_COUNT", "TOO_MANY_REDIRECTS", "ORG_DISABLED") and "deactivate_reason" in data:
                out["deactivate_reason"] = data["deactivate_reason"]
            if m("auth-pair-reset") and "basic_auth_username" in out and "basic_auth_password" not in data:
                out["basic_auth_password"] = ""
            if m("headers-patch-merge") and "additional_headers" in out:
                out["additional_headers"] = dict(w["additional_headers"], **out["additional_headers"])
            if m("empty-password-ignored") and out.get("basic_auth_password") == "":
                del out["basic_auth_password"]
            if m("blank-type-update-ignored") and data.get("event_type") == "":
                out.pop("event_type", None)
            if errors and m("update-not-atomic"):
                for k, v in out.items():
                    w[k] = v
                w["revision"] += 1
            if errors:
                raise ApiError(400, errors)
            if m("patch-resets"):
                defaults = {"active": True, "event_type": None, "basic_auth_username": "",
                            "basic_auth_password": "", "additional_headers": {}}
                for k, v in defaults.items():
                    if k not in data:
                        out[k] = v
            was_active = w["active"]
            for k, v in out.items():
                w[k] = v
            keeps = m("reactivate-keeps-reason") or (m("patch-reactivate-keeps-reason") and method == "PATCH")
            if out.get("active") is True and not was_active:
                if not keeps:
                    w["deactivate_reason"] = None
                if m("reactivate-restores-deliveries"):
                    for d in list(DELIVERIES.values()):
                        if d["webhook"] == wid and d["state"] == "dropped":
                            d["note"] = None
                            schedule(d, CLOCK.disp())
            elif out.get("active") is True and not keeps:
                w["deactivate_reason"] = None
            if m("url-change-reactivates") and "target_url" in out and not was_active and "active" not in out:
                w["active"] = True
                w["deactivate_reason"] = None
            if out.get("active") is False and was_active:
                if m("deactivate-manual-reason"):
                    w["deactivate_reason"] = "MANUAL"
                if not m("patch-inactive-keeps-pending"):
                    drop_pending(wid, "webhook deactivated by an update")
            w["revision"] += 1
            w["touched"] = next(SEQ)
            if m("readonly-id-writable") and isinstance(data.get("id"), str) and re.match(r"^[0-9a-z]+$", data["id"]) and data["id"] not in WEBHOOKS:
                new = data["id"]
                items = [(new if k == wid else k, v) for k, v in WEBHOOKS.items()]
                WEBHOOKS.clear()
                WEBHOOKS.update(items)
                w["id"] = new
                for dd in DELIVERIES.values():
                    if dd["webhook"] == wid:
                        dd["webhook"] = new
            return 200, view(w)

    def api_sample(self, method, q, t):
        ev = fixture(t)
        if m("sample-bare"):
            ev = {"event_type": ev["event_type"], "timestamp": ev["timestamp"]}
        return 200, {"results": [ev]}

    def api_hook_ping(self, method, q, wid):
        self.read_body()
        with LOCK:
            w = WEBHOOKS.get(wid)
            if w is None:
                raise ApiError(404, {"detail": "Not found."} if m("ping-404-json") else None)
            if m("ping-inactive-refused") and not w["active"]:
                raise ApiError(409, {"detail": "The webhook is inactive."})
            snap = {k: (dict(v) if isinstance(v, dict) else v) for k, v in w.items()}
        ping = fixture("PING")
        ping["event_type"] = "ping" if m("ping-event-type-lower") else "PING"
        if m("ping-no-timestamp"):
            del ping["timestamp"]
        body = dumps(ping)
        headers = request_headers(snap)
        if m("ping-no-headers"):
            hk = {k.lower() for k in snap["additional_headers"]}
            headers = [x for x in headers if x[0].lower() not in hk]
        res = send(snap["target_url"], headers, body, ARGS.timeout)
        st = res.get("status")
        ok = st is not None and 200 <= st < 300
        if m("ping-retries") and not ok:
            time.sleep(2.0 / CLOCK.scale)
            res = send(snap["target_url"], headers, body, ARGS.timeout)
        if m("ping-always-succeeds"):
            ok = True
        if m("ping-deactivates-4xx") and st is not None and 400 <= st < 500:
            with LOCK:
                w = WEBHOOKS.get(wid)
                if w is not None and w["active"]:
                    deactivate(w, "HTTP_4XX_RESPONSE")
        if m("ping-only-200"):
            ok = st == 200
        if m("ping-reactivates") and ok:
            with LOCK:
                w = WEBHOOKS.get(wid)
                if w is not None and not w["active"]:
                    w["active"] = True
                    w["deactivate_reason"] = None
                    w["revision"] += 1
        if m("ping-refused-status-0") and st is None:
            st = 0
        if m("ping-failure-no-message") and not ok:
            return 200, {"succeeded": ok, "http_status_code": st, "error": "Ping failed: %s." % res["detail"]}
        if m("ping-status-string") and st is not None:
            return 200, {"succeeded": ok, "http_status_code": str(st), "message": ("Ping succeeded: HTTP %d." % st) if ok else ("Ping failed: %s." % res["detail"])}
        msg = ("Ping succeeded: HTTP %d." % st) if ok and st else \
              ("Ping failed: %s. A ping is never retried and never deactivates the webhook." % res["detail"])
        return 200, {"succeeded": ok, "http_status_code": st, "message": msg}

    def api_emit(self, method, q):
        data, form = self.parse_body(self.read_body())
        if form:
            raise ApiError(415, {"detail": "Send the event as JSON."})
        t = data.get("event_type")
        if t not in EVENT_TYPES:
            raise ApiError(400, {"event_type": ['"%s" is not a valid choice. Valid choices: %s.' % (t, ", ".join(EVENT_TYPES))]})
        ev = fixture(t)
        for k, v in data.items():
            if k == "event_type":
                continue
            if k == "timestamp" and not valid_iso(v) and not m("emit-bad-timestamp-kept"):
                raise ApiError(400, {"timestamp": ["Enter a valid ISO 8601 date and time with an offset, e.g. 2015-02-13T18:57:55.066475+00:00."]})
            if k == "timestamp" and m("emit-timestamp-replaced"):
                continue
            if k == "timestamp" and m("emit-timestamp-reformatted") and valid_iso(v):
                x = v[:-1] + "+00:00" if v.endswith("Z") else v
                frac = re.search(r"\.(\d+)", x)
                if frac and len(frac.group(1)) > 6:
                    x = x.replace(frac.group(0), "." + frac.group(1)[:6])
                try:
                    v = datetime.fromisoformat(x).astimezone(timezone.utc).isoformat(timespec="microseconds")
                except ValueError:
                    pass
            if m("emit-deep-merge") and isinstance(v, dict) and isinstance(ev.get(k), dict):
                ev[k].update(v)
                continue
            if m("emit-override-reorders"):
                ev.pop(k, None)
            ev[k] = v
        body = dumps(ev)
        eid = new_id()
        targets = []
        with LOCK:
            seen = set()
            n = 0
            for w in list(WEBHOOKS.values()):
                if m("dedupe-before-filter"):
                    key = normalise_url(w["target_url"])
                    if key in seen:
                        continue
                    seen.add(key)
                if m("dedupe-inactive-owner") and w["event_type"] in (None, t):
                    key = normalise_url(w["target_url"])
                    if key in seen:
                        continue
                    seen.add(key)
                    if w["active"]:
                        targets.append(w)
                        n += 1
                    continue
                if not w["active"] and not m("send-to-inactive"):
                    if m("emit-counts-inactive") and w["event_type"] in (None, t):
                        n += 1
                    continue
                if w["event_type"] is None and m("all-types-skipped"):
                    continue
                if w["event_type"] not in (None, t) and not m("filter-ignored"):
                    continue
                if m("dedupe-before-filter"):
                    targets.append(w)
                    n += 1
                    continue
                key = w["target_url"] if m("no-dedupe-normalised") else normalise_url(w["target_url"])
                if m("emit-count-before-dedupe"):
                    n += 1
                if key in seen:
                    continue
                seen.add(key)
                targets.append(w)
                if not m("emit-count-before-dedupe"):
                    n += 1

            def store():
                with LOCK:
                    for w in targets:
                        new_delivery(w, eid, t, body)
            if m("async-store"):
                threading.Timer(0.3, store).start()
            else:
                store()
        return 202, {"event": eid, "deliveries": n}

    def api_deliveries(self, method, q, wid):
        host = self.headers.get("Host", "localhost")
        with LOCK:
            self.find(wid)
            items = [delivery_view(d) for d in reversed(list(DELIVERIES.values())) if d["webhook"] == wid or m("log-all-webhooks")]
        return 200, paginate(items, q, host, "/v1/webhooks/%s/deliveries" % wid)

    def api_redeliver(self, method, q, did):
        self.read_body()
        with LOCK:
            d = DELIVERIES.get(did)
            if d is None:
                raise ApiError(404, {"detail": "Not found."})
            w = WEBHOOKS.get(d["webhook"])
            if w is None:
                raise ApiError(404, {"detail": "Not found."})
            if not w["active"]:
                raise ApiError(409, {"detail": "The webhook is inactive; re-activate it first."})
            nd = new_delivery(w, d["event"], d["event_type"], d["body"])
            nd["redelivery"] = True
            return 202, {"delivery": nd["id"]}

    def api_deactivate(self, method, q, wid):
        self.read_body()
        with LOCK:
            w = self.find(wid)
            deactivate(w, "ORG_DISABLED")
            if m("retry-after-deactivate"):
                drop_pending(wid, "admin deactivation")
            return 200, view(w)

    def do_GET(self): self.handle_any("GET")
    def do_POST(self): self.handle_any("POST")
    def do_PUT(self): self.handle_any("PUT")
    def do_PATCH(self): self.handle_any("PATCH")
    def do_DELETE(self): self.handle_any("DELETE")
    def do_HEAD(self): self.handle_any("HEAD")
    def do_OPTIONS(self): self.handle_any("OPTIONS")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


def main():
    global ARGS, CLOCK
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8750)
    ap.add_argument("--api-key", default=os.environ.get("HOOKJAR_API_KEY", "k"))
    ap.add_argument("--time-scale", type=float, default=1.0)
    ap.add_argument("--timeout", type=float, default=10.0, help="delivery timeout, wall seconds")
    ap.add_argument("--base-delay", type=float, default=2.0)
    ap.add_argument("--max-delay", type=float, default=3600.0)
    ap.add_argument("--retry-limit", type=int, default=60)
    ap.add_argument("--fixtures", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "fixtures", "events"))
    ap.add_argument("--mutant", action="append", default=[], help="one of: " + ", ".join(MUTANTS))
    ap.add_argument("--list-mutants", action="store_true")
    ap.add_argument("-v", "--verbose", action="store_true")
    ARGS = ap.parse_args()
    if ARGS.list_mutants:
        for k, v in MUTANTS.items():
            print("%-30s %s" % (k, v))
        return
    for name in ARGS.mutant:
        if name not in MUTANTS:
            ap.error("unknown mutant %r" % name)
        MUT.add(name)
    if ":" in ARGS.api_key or not ARGS.api_key:
        ap.error("the API key must be non-empty and contain no ':'")
    if not (0 < ARGS.time_scale <= 1_000_000):
        ap.error("--time-scale must be in (0, 1000000]")
    if m("timeout-60s"):
        ARGS.timeout = 60.0
    if m("timeout-5s"):
        ARGS.timeout = 5.0
    load_fixtures(ARGS.fixtures)
    CLOCK = Clock(ARGS.time_scale)
    threading.Thread(target=scheduler, daemon=True).start()
    srv = Server((ARGS.host, ARGS.port), Handler)
    sys.stderr.write("pydisp on http://%s:%d scale=%g mutants=%s\n" % (ARGS.host, ARGS.port, ARGS.time_scale, sorted(MUT)))
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
