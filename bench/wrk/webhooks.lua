-- Pre-signed Standard Webhooks pushes, each sent once, in file order within each thread:
-- wrk ... -s webhooks.lua URL -- <deliveries-prefix> <path> <log-prefix>
--
-- bench/webhooks.py writes one file per thread, <deliveries-prefix>-<tid>.tsv, one delivery a line,
-- tab-separated: index, webhook-id, webhook-timestamp, webhook-signature, body. Each thread reads its file
-- a line per request (lazily: wrk starts a thread's clock before the next thread's init() has run, so an
-- init() that loaded tens of thousands of requests would let the first thread run unmeasured), so
-- bench/webhooks.py knows what thread t sent: the first `sent[t]` lines of its file. Every response is
-- logged to <log-prefix>-<tid>.log as "index status outcome second" (the index comes back in
-- X-Request-ID, which Atelier echoes; the outcome is read from the body; the second, the Unix time it
-- arrived, gives the per-second timeline). A delivery sent but never answered (in flight when wrk stops)
-- is redelivered by bench/webhooks.py.
--
-- The first request() of thread 0 is wrk's dry run (it checks the script's request before the threads
-- start): it gets a filler GET /health/live so that no delivery is counted as sent without being sent.
-- If a thread runs out of deliveries it stops and reports `exhausted` (the run is then too short on
-- deliveries: raise --max-rate).
require("report")

local path
local input
local filler
local dry_run_pending = false
local log
sent = 0
exhausted = 0

function init(args)
   path = args[2]
   input = assert(io.open(args[1] .. "-" .. tid .. ".tsv", "r"))
   filler = wrk.format("GET", "/health/live", with_headers({["X-Request-ID"] = "filler"}))
   dry_run_pending = (tid == 0)
   log = assert(io.open(args[3] .. "-" .. tid .. ".log", "w"))
   log:setvbuf("full") -- flushed when wrk exits (C exit flushes every open stream)
end

function request()
   if dry_run_pending then
      dry_run_pending = false
      return filler
   end
   local line = exhausted == 0 and input:read("*l")
   if not line or line == "" then
      if exhausted == 0 then
         exhausted = 1
         wrk.thread:stop()
      end
      return filler
   end
   local idx, id, ts, sig, body = line:match("^(%d+)\t([^\t]+)\t(%d+)\t([^\t]+)\t(.*)$")
   assert(idx, "malformed delivery line after " .. sent)
   sent = sent + 1
   return wrk.format("POST", path, with_headers({
      ["Content-Type"] = "application/json",
      ["webhook-id"] = id,
      ["webhook-timestamp"] = ts,
      ["webhook-signature"] = sig,
      ["X-Request-ID"] = "wh-" .. idx,
   }), body)
end

function response(status, headers, body)
   local rid = header(headers, "X-Request-ID") or ""
   local idx = rid:match("^wh%-(%d+)$")
   if idx == nil then
      return
   end
   local outcome = body and body:match('"outcome":"([%w_]+)"') or "-"
   log:write(idx, " ", status, " ", outcome, " ", os.time(), "\n")
end

function done(summary, latency, requests)
   local e = summary.errors
   local sents, ex = {}, 0
   for _, t in ipairs(threads) do
      table.insert(sents, tostring(tonumber(t:get("sent")) or 0))
      ex = ex + (tonumber(t:get("exhausted")) or 0)
   end
   io.write(string.format(
      'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"p50_us":%d,"p90_us":%d,"p99_us":%d,"mean_us":%.1f,"max_us":%d,"stdev_us":%.1f,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
      '"sent":[%s],"exhausted":%d}\n',
      summary.requests, summary.duration, summary.bytes,
      latency:percentile(50.0), latency:percentile(90.0), latency:percentile(99.0),
      latency.mean, latency.max, latency.stdev,
      e.connect, e.read, e.write, e.status, e.timeout,
      table.concat(sents, ","), ex))
end
