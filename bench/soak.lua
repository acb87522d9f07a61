-- soak.lua: wrk script for bench/soak. Paced opens from many recipients, clients and addresses.
-- SPDX-License-Identifier: MIT
--
-- Usage: wrk -t1 -s bench/soak.lua URL -- DELAY_MS RECIPIENTS RATE LOAD_SECONDS
-- Each connection waits DELAY_MS between its requests (wrk's delay()), so C connections
-- send at most C * 1000 / DELAY_MS opens a second whatever the server's speed. With RATE,
-- requests go out on one schedule of RATE a second instead, as bench/paced.lua sends
-- them (the thread's connections share one Lua state, and so the schedule). Requests cycle
-- through RECIPIENTS recipients, four user agents (Apple's bare agent, Gmail's proxy, desktop
-- Chrome, Outlook) and 4,096 forwarded addresses (the server trusts loopback's
-- X-Forwarded-For), built once.

local agents = {
    "Mozilla/5.0",
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17029; Pro)",
}

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } soak_timespec;
int clock_gettime(int clk, soak_timespec *ts);
]]
local ts = ffi.new("soak_timespec")
local function now()
    ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
    return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

function init(args)
    pause = tonumber(args[1]) or 5
    local recipients = tonumber(args[2]) or 10000
    local rate = tonumber(args[3]) or 0
    interval = rate > 0 and 1 / rate or nil
    slot = now()
    -- Requests go out for LOAD_SECONDS only, then each connection goes idle once its last
    -- answer is in (wrk's -d a little longer), so that wrk counts every open the server
    -- took: cut in flight at -d, one would be stored and not counted.
    deadline = now() + (tonumber(args[4]) or 1e9)
    reqs = {}
    for i = 0, 4095 do
        local path = wrk.path:gsub("RCPT", "r" .. ((i * 7919) % recipients))
        reqs[i + 1] = wrk.format("GET", path, {
            ["User-Agent"] = agents[(i % 4) + 1],
            ["X-Forwarded-For"] = string.format("%d.%d.%d.%d", 20 + i % 180, (i * 13) % 256, (i * 31) % 256, 1 + i % 250),
        })
    end
    n = 0
end

function delay()
    if not interval or now() >= deadline then
        return pause
    end
    local t = now()
    if slot < t - 0.01 then -- more than 10 ms behind: skip the slots missed, no burst
        slot = t - 0.01
    end
    local wait = slot - t
    slot = slot + interval
    return wait > 0 and math.floor(wait * 1000 + 0.5) or 0
end

function request()
    if now() >= deadline then
        return ""
    end
    n = n + 1
    return reqs[(n % #reqs) + 1]
end
