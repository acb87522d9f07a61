-- soak.lua: wrk script for bench/soak. Paced opens from many recipients, clients and addresses.
-- SPDX-License-Identifier: MIT
--
-- Usage: wrk -s bench/soak.lua URL -- DELAY_MS RECIPIENTS
-- Each connection waits DELAY_MS between its requests (wrk's delay()), so C connections
-- send about C * 1000 / DELAY_MS opens a second whatever the server's speed. Requests cycle
-- through RECIPIENTS recipients, four user agents (Apple's bare agent, Gmail's proxy, desktop
-- Chrome, Outlook) and 4,096 forwarded addresses (the server trusts loopback's
-- X-Forwarded-For), built once.

local agents = {
    "Mozilla/5.0",
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17029; Pro)",
}

function init(args)
    pause = tonumber(args[1]) or 5
    local recipients = tonumber(args[2]) or 10000
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
    return pause
end

function request()
    n = n + 1
    return reqs[(n % #reqs) + 1]
end
