-- Moves pre-created jobs received -> on_hold -> received ... with If-Match on the current version.
-- wrk ... -s transition.lua URL -- <jobs-file "ref version stage" per line> <threads>
--
-- Each thread owns its share of the jobs, and at most one request per job is in flight: request() takes
-- a free job, response() finds it again by the X-Request-ID that Atelier echoes, reads the new version
-- from the ETag and frees it. A failed move (counted in "non2xx") marks the job stale: its next request
-- is a GET that re-reads version and stage (counted in "refreshes").
require("report")

local jobs = {}
local free = {}
non2xx = 0
refreshes = 0

function init(args)
   local nthreads = tonumber(args[2])
   local n = 0
   for _, line in ipairs(read_lines(args[1])) do
      if n % nthreads == tid then
         local ref, version, stage = line:match("^(%S+)%s+(%d+)%s+(%S+)")
         table.insert(jobs, {ref = ref, version = tonumber(version), stage = stage, stale = false})
         table.insert(free, #jobs)
      end
      n = n + 1
   end
end

function request()
   local slot = table.remove(free)
   if slot == nil then -- more connections than jobs: should not happen (bench/api.py makes enough)
      return wrk.format("GET", "/health/live", with_headers({["X-Request-ID"] = "none"}))
   end
   local job = jobs[slot]
   local headers = with_headers({["X-Request-ID"] = "slot-" .. slot})
   if job.stale then
      refreshes = refreshes + 1
      return wrk.format("GET", "/api/v1/jobs/" .. job.ref, headers)
   end
   local to = (job.stage == "on_hold") and "received" or "on_hold"
   headers["If-Match"] = '"v' .. job.version .. '"'
   headers["Content-Type"] = "application/json"
   return wrk.format("POST", "/api/v1/jobs/" .. job.ref .. "/transitions", headers, '{"to":"' .. to .. '"}')
end

function response(status, headers, body)
   local rid = header(headers, "X-Request-ID") or ""
   local slot = tonumber(rid:match("^slot%-(%d+)$"))
   if status < 200 or status > 299 then
      non2xx = non2xx + 1
   end
   if slot == nil then
      return
   end
   local job = jobs[slot]
   local etag = header(headers, "ETag")
   local stage = body and body:match('"stage":"([%w_]+)"')
   if status == 200 and etag and stage then
      job.version = tonumber(etag:match("(%d+)"))
      job.stage = stage
      job.stale = false
   else
      job.stale = true
   end
   table.insert(free, slot)
end
