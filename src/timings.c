/* timings: curl's cumulative marks to an attempt's phases (see timings.h). */
#include "timings.h"

#include <arpa/inet.h>
#include <string.h>

/* end - start, or none when the phase did not complete (end not reached).
 * Clamped at 0: curl's marks come from one clock and never go backwards,
 * but a bad mark must not make a negative duration. */
static int64_t phase(int64_t end, int64_t start)
{
	if (end <= 0)
		return ATTEMPT_TIMING_NONE;
	return end > start ? end - start : 0;
}

bool timings_from_marks(const struct timings_marks *m, struct attempt_timings *out)
{
	bool reused = m->num_connects == 0 && m->pretransfer_us > 0;
	int64_t mark = 0; /* the end of the last phase that happened */
	out->dns_us = out->connect_us = out->tls_us = ATTEMPT_TIMING_NONE;
	out->total_us = m->total_us > 0 ? m->total_us : 0;
	if (!reused) {
		/* curl marks the lookup of a literal too (its own set-up, a few
		 * µs): not a DNS phase. */
		if (!m->host_is_ip) {
			out->dns_us = phase(m->namelookup_us, mark);
			if (out->dns_us >= 0)
				mark = m->namelookup_us;
		}
		out->connect_us = phase(m->connect_us, mark);
		if (out->connect_us >= 0) {
			mark = m->connect_us;
			out->tls_us = phase(m->appconnect_us, mark);
			if (out->tls_us >= 0)
				mark = m->appconnect_us;
		}
	}
	/* Without a connection there was no request to answer. */
	bool connected = reused || out->connect_us >= 0;
	out->ttfb_us = connected ? phase(m->starttransfer_us, mark) : ATTEMPT_TIMING_NONE;
	return reused;
}

bool timings_host_is_ip(const char *host)
{
	if (host == NULL)
		return false;
	if (host[0] == '[')
		return true; /* only an IPv6 address (or IPvFuture) is bracketed */
	struct in_addr a;
	return inet_pton(AF_INET, host, &a) == 1;
}
