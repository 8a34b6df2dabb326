-- wrk script: POST one valid Skilljar payload with Skilljar's headers.
-- Used by `just load-mock` (docs/performance.md).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["User-Agent"] = "skilljar"
wrk.body = '{"event_type":"COURSE_ENROLLMENT","timestamp":"2026-11-27T09:30:00.123456+00:00","user":{"id":"9k2mxq7tv4b1c","email":"ada.lovelace@example.com","first_name":"Ada","last_name":"Lovelace"},"course":{"id":"4fj8s2k1m9xq0","published_course_id":"7hq3n5w2r8zt1","title":"Webhooks 101","url":"https://academy.example.com/webhooks-101"},"domain":{"id":"2d8c6b4a0e9f1","name":"academy.example.com"},"domain_access_code":"partner-2026"}'
