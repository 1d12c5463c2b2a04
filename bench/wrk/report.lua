-- Shared by every bench script (loaded with require, LUA_PATH set by bench/api.py).
-- setup() numbers the threads (global `tid` in each thread, 0-based); done() prints one machine-readable
-- line: "BENCH_RESULT {json}" with latency percentiles in microseconds and error counts.

threads = {}

function setup(thread)
   thread:set("tid", #threads)
   table.insert(threads, thread)
end

local function counter(name)
   local total = 0
   for _, t in ipairs(threads) do
      total = total + (tonumber(t:get(name)) or 0)
   end
   return total
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"p50_us":%d,"p90_us":%d,"p99_us":%d,"mean_us":%.1f,"max_us":%d,"stdev_us":%.1f,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
      '"non2xx":%d,"refreshes":%d}\n',
      summary.requests, summary.duration, summary.bytes,
      latency:percentile(50.0), latency:percentile(90.0), latency:percentile(99.0),
      latency.mean, latency.max, latency.stdev,
      e.connect, e.read, e.write, e.status, e.timeout,
      counter("non2xx"), counter("refreshes")))
end

-- Headers given with -H on the command line (Authorization) plus `extra`: wrk.format does not merge.
function with_headers(extra)
   local h = {}
   for k, v in pairs(wrk.headers) do h[k] = v end
   for k, v in pairs(extra or {}) do h[k] = v end
   return h
end

-- Response header lookup regardless of the case the server used.
function header(headers, name)
   local v = headers[name]
   if v then return v end
   name = name:lower()
   for k, val in pairs(headers) do
      if k:lower() == name then return val end
   end
   return nil
end

function read_lines(path)
   local lines = {}
   for line in io.lines(path) do
      if line ~= "" then table.insert(lines, line) end
   end
   return lines
end
