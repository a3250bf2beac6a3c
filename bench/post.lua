-- bench/post.lua: wrk POSTs one fixed body over and over (bench/run drives it).
--
--   wrk ... -s bench/post.lua URL -- BODY_FILE [HEADERS_FILE|-] [count]
--
-- BODY_FILE is sent as is with Content-Type: application/json; HEADERS_FILE holds extra
-- "Name: value" lines (an API key, pre-computed signatures). With "count" every response
-- status is tallied (wrk itself only reports "non-2xx or 3xx", and an ingest must be 202
-- exactly); without it wrk skips parsing responses, which keeps the ceiling run cheap.
-- done() prints two machine-readable lines, BENCH_SUMMARY and BENCH_STATUSES (JSON).

local threads = {}

function setup(thread)
	table.insert(threads, thread)
end

local function read_file(path)
	local f = assert(io.open(path, "rb"))
	local s = f:read("*a")
	f:close()
	return s
end

function init(args)
	wrk.method = "POST"
	wrk.body = read_file(args[1])
	wrk.headers["Content-Type"] = "application/json"
	if args[2] ~= nil and args[2] ~= "-" then
		for line in io.lines(args[2]) do
			local name, value = line:match("^([^:]+):%s*(.-)%s*$")
			if name ~= nil then
				wrk.headers[name] = value
			end
		end
	end
	statuses = {}
	if args[3] == "count" then
		response = function(status, headers, body)
			statuses[status] = (statuses[status] or 0) + 1
		end
	end
end

function done(summary, latency, requests)
	local total = {}
	for _, t in ipairs(threads) do
		local s = t:get("statuses")
		if s ~= nil then
			for code, n in pairs(s) do
				total[code] = (total[code] or 0) + n
			end
		end
	end
	local parts = {}
	for code, n in pairs(total) do
		parts[#parts + 1] = string.format('"%d":%d', code, n)
	end
	local e = summary.errors
	io.write(string.format(
		'BENCH_SUMMARY {"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,' ..
		'"read_errors":%d,"write_errors":%d,"status_errors":%d,"timeouts":%d,' ..
		'"latency_p50_us":%d,"latency_p99_us":%d,"latency_max_us":%d}\n',
		summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
		e.status, e.timeout, latency:percentile(50), latency:percentile(99), latency.max))
	io.write("BENCH_STATUSES {" .. table.concat(parts, ",") .. "}\n")
end
