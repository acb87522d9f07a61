-- paced.lua: wrk script for bench/run's latency at a set rate: count.lua's requests, sent on a schedule.
-- SPDX-License-Identifier: MIT
--
-- Usage: wrk -t1 -d TOTAL -s bench/paced.lua URL -- LOAD_SECONDS RECIPIENTS RATE
-- wrk has no pacing of its own, but with a delay() function it asks, before each request
-- of a connection, how many milliseconds to wait. A thread's connections share one Lua
-- state, so delay() hands out send times from one schedule of RATE requests a second:
-- each call takes the next slot, 1/RATE after the one before, and waits until it
-- (rounded to wrk's millisecond). A thread that falls more than 10 ms behind its schedule
-- (every connection waiting for an answer) skips the slots it missed rather than send them
-- in a burst, so the rate achieved, which done() prints, can be below RATE. wrk measures
-- latency from when a request is written, not from its slot.
-- Counting as count.lua does: requests go out for LOAD_SECONDS, then drain.

dofile("bench/count.lua")

local ffi = require("ffi")
local ts = ffi.new("count_timespec")
local function clock()
    ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
    return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

local count_init = init

function init(args)
    count_init(args)
    interval = 1 / (tonumber(args[3]) or 1000)
    slot = clock()
end

function delay()
    local t = clock()
    if t >= deadline then
        return 0 -- request() sends nothing now: let the connection go idle at once
    end
    if slot < t - 0.01 then
        slot = t - 0.01
    end
    local wait = slot - t
    slot = slot + interval
    if wait <= 0 then
        return 0
    end
    return math.floor(wait * 1000 + 0.5)
end
