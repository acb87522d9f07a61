-- count.lua: wrk script for bench/run. Sends for a fixed load window, then lets every
-- request in flight come back before wrk stops, so that "answered" is exact.
-- SPDX-License-Identifier: MIT
--
-- Usage: wrk -d TOTAL -s bench/count.lua URL -- LOAD_SECONDS [RECIPIENTS [MIX]]
-- With RECIPIENTS, the word RCPT in URL becomes r0 ... r(RECIPIENTS-1) in turn, so that
-- the opens come from many recipients as a mailing's do (the requests are built once).
-- With MIX 1, realistic opens instead: a request for each of the RECIPIENTS, each of
-- campaign=bench-0 ... bench-19 in place of campaign=bench, of one of four clients (Apple's
-- proxy's bare agent, Gmail's image proxy, desktop Chrome, Outlook) and of one of 4,096 public
-- addresses in X-Forwarded-For (the server must trust the client's address as a proxy).
-- wrk cuts whatever is in flight when -d runs out, and the server may have recorded
-- those requests although wrk never counts their answers. So requests go out only for
-- LOAD_SECONDS; after that request() returns nothing, each connection goes idle once
-- its last answer is in, and TOTAL - LOAD_SECONDS (a few seconds) drains the rest.
-- Only request() runs per request (one Lua call); there is no response() hook, whose
-- header parsing would slow wrk down. The status counts come from wrk's own summary.

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } count_timespec;
int clock_gettime(int clk, count_timespec *ts);
]]
local ts = ffi.new("count_timespec")
local function now()
    ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
    return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

local threads = {}

local agents = {
    "Mozilla/5.0",
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17029; Pro)",
}

function setup(thread)
    table.insert(threads, thread)
    thread:set("first", #threads == 1)
end

function init(args)
    load = tonumber(args[1]) or 10
    local recipients = tonumber(args[2]) or 0
    -- wrk calls the first thread's request() once before the run, to check the script.
    sent = first and -1 or 0
    reqs = {}
    if tonumber(args[3]) == 1 then
        for i = 0, math.max(recipients, 1) - 1 do
            local path = wrk.path:gsub("campaign=bench", "campaign=bench-" .. (i % 20))
            path = path:gsub("RCPT", "r" .. ((i * 7919) % math.max(recipients, 1)))
            local a = i % 4096
            reqs[i + 1] = wrk.format("GET", path, {
                ["User-Agent"] = agents[(i % 4) + 1],
                ["X-Forwarded-For"] = string.format("%d.%d.%d.%d", 20 + a % 180, (a * 13) % 256,
                    (a * 31) % 256, 1 + a % 250),
            })
        end
    elseif recipients > 0 then
        for i = 0, recipients - 1 do
            local path = wrk.path:gsub("RCPT", "r" .. i)
            reqs[i + 1] = wrk.format(nil, path)
        end
    else
        reqs[1] = wrk.format()
    end
    nreqs, at = #reqs, 0
    deadline = now() + load -- from here: building 100,000 realistic requests takes a while
end

function request()
    if now() < deadline then
        sent = sent + 1
        at = at % nreqs + 1
        return reqs[at]
    end
    return "" -- nothing to write: the connection waits for its last answer, then idles
end

function done(summary, latency, requests)
    local sent_total, load_s = 0, 0
    for _, t in ipairs(threads) do
        sent_total = sent_total + t:get("sent")
        load_s = t:get("load")
    end
    local e = summary.errors
    -- wrk counts every complete response in summary.requests and those with a status
    -- of 400 or more in errors.status.
    local ok = summary.requests - e.status
    io.write(string.format("count: sent=%d answered=%d ok=%d bad_status=%d " ..
        "connect_errors=%d read_errors=%d write_errors=%d timeouts=%d\n",
        sent_total, summary.requests, ok, e.status, e.connect, e.read, e.write, e.timeout))
    io.write(string.format("rate: rps=%.0f load_s=%.3f\n", summary.requests / load_s, load_s))
    io.write(string.format("latency_us: p50=%d p90=%d p99=%d p999=%d max=%d\n",
        latency:percentile(50), latency:percentile(90), latency:percentile(99),
        latency:percentile(99.9), latency.max))
end
