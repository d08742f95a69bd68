-- wrk script: cycles through the header values of a file (one a line), round robin, so each
-- request carries the next distinct session. Used with `wrk -t1` (one thread: exact order).
-- HEADER names the header (default `Cookie`) and VALUES_FILE the file (default COOKIES_FILE):
-- the peer mode of bench/load.sh sends `HEADER=Authorization VALUES_FILE=$TOKENS_FILE`, lines
-- `Bearer <token>`.
local header = os.getenv("HEADER") or "Cookie"
local path = os.getenv("VALUES_FILE") or os.getenv("COOKIES_FILE")
local values = {}
for line in io.lines(path) do
  if #line > 0 then values[#values + 1] = line end
end
local i = 0
request = function()
  i = i % #values + 1
  return wrk.format("GET", "/", { [header] = values[i] })
end
