-- wrk script: cycles through the Cookie headers of COOKIES_FILE (one a line), round robin, so
-- each request carries the next distinct session. Used with `wrk -t1` (one thread: exact order).
local path = os.getenv("COOKIES_FILE")
local cookies = {}
for line in io.lines(path) do
  if #line > 0 then cookies[#cookies + 1] = line end
end
local i = 0
request = function()
  i = i % #cookies + 1
  return wrk.format("GET", "/", { ["Cookie"] = cookies[i] })
end
