-- GET <prefix><ref>, cycling through a file of job references (one per line, first field):
-- wrk ... -s get_refs.lua URL -- <refs-file> <prefix>
require("report")

local reqs = {}
local i = 0

function init(args)
   local headers = with_headers()
   for _, line in ipairs(read_lines(args[1])) do
      local ref = line:match("^(%S+)")
      table.insert(reqs, wrk.format("GET", args[2] .. ref, headers))
   end
   i = tid * 7919 -- threads start at different places in the list
end

function request()
   i = i + 1
   return reqs[(i % #reqs) + 1]
end
