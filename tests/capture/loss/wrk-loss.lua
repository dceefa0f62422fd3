-- SPDX-License-Identifier: MIT
-- wrk script for the loss captures (tests/capture/loss/README.md): every
-- request has its own target (/g/N, or /p/N with a body of its own length),
-- so a response paired with the wrong request cannot look right; the run
-- stops after LOSS_REQUESTS responses (default 4000).
local n = 0
local done = 0
local limit = tonumber(os.getenv("LOSS_REQUESTS") or "4000")

request = function()
  n = n + 1
  if n % 5 == 0 then
    return wrk.format("POST", "/p/" .. n, {["Content-Type"] = "text/plain"},
                      string.rep("b", 100 + (n * 37) % 900))
  end
  return wrk.format("GET", "/g/" .. n)
end

response = function(status, headers, body)
  done = done + 1
  if done >= limit then
    wrk.thread:stop()
  end
end
