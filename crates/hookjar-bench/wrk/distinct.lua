-- wrk script: POST a distinct valid Skilljar payload per request (its timestamp
-- counts up by one microsecond each time). Used by `hookjar-load mock-memory`
-- (docs/performance.md), which stops wrk once the mock has received enough. Run
-- with -t1.
local n = 0
local head = '{"event_type":"COURSE_ENROLLMENT","timestamp":"'
local tail = '","user":{"id":"9k2mxq7tv4b1c","email":"ada.lovelace@example.com","first_name":"Ada","last_name":"Lovelace"},"course":{"id":"4fj8s2k1m9xq0","published_course_id":"7hq3n5w2r8zt1","title":"Webhooks 101","url":"https://academy.example.com/webhooks-101"},"domain":{"id":"2d8c6b4a0e9f1","name":"academy.example.com"},"domain_access_code":"partner-2026"}'
local headers = {["Content-Type"] = "application/json", ["User-Agent"] = "skilljar"}

request = function()
   local us = n % 1000000
   local s = math.floor(n / 1000000) % 60
   local m = math.floor(n / 60000000) % 60
   local h = math.floor(n / 3600000000) % 24
   n = n + 1
   local ts = string.format("2026-11-27T%02d:%02d:%02d.%06d+00:00", h, m, s, us)
   return wrk.format("POST", nil, headers, head .. ts .. tail)
end
