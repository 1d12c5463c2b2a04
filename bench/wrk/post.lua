-- POST one JSON body to one path: wrk ... -s post.lua URL -- <body-file> <path>
require("report")

local req

function init(args)
   local f = assert(io.open(args[1], "rb"))
   local body = f:read("*a")
   f:close()
   req = wrk.format("POST", args[2], with_headers({["Content-Type"] = "application/json"}), body)
end

function request()
   return req
end
