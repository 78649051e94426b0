-- wrk script for the echo benchmark: POST the 1 KiB JSON document in $WRK_BODY_FILE
-- (bench/echo-1k.json) with Content-Type: application/json.
local path = os.getenv("WRK_BODY_FILE") or "bench/echo-1k.json"
local f = assert(io.open(path, "rb"), "cannot open " .. path)
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
