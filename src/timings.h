/* timings: an attempt's time in each phase of its request (docs/api.md#attempt), from
 * the marks libcurl keeps for a finished transfer. Pure functions: the
 * sender reads curl's info (dispatch_http.c) and hands the numbers here.
 *
 * curl's marks (CURLINFO_*_TIME_T) are cumulative: each is the µs from the
 * transfer's start to the end of that phase, and 0 when the phase was not
 * reached. The API shows each phase's own duration instead, the difference
 * from the end of the phase before it that happened (or from the start),
 * because that is what a receiver's team asks: which part was slow. */
#ifndef HOOKD_TIMINGS_H
#define HOOKD_TIMINGS_H

#include <stdbool.h>
#include <stdint.h>

#include "model.h"

/* A finished transfer as curl reports it. */
struct timings_marks {
	int64_t namelookup_us;    /* CURLINFO_NAMELOOKUP_TIME_T */
	int64_t connect_us;       /* CURLINFO_CONNECT_TIME_T: TCP connected */
	int64_t appconnect_us;    /* CURLINFO_APPCONNECT_TIME_T: TLS done, 0 for plain http */
	int64_t pretransfer_us;   /* CURLINFO_PRETRANSFER_TIME_T: about to send */
	int64_t starttransfer_us; /* CURLINFO_STARTTRANSFER_TIME_T: first response byte */
	int64_t total_us;         /* CURLINFO_TOTAL_TIME_T */
	long num_connects;        /* CURLINFO_NUM_CONNECTS: new connections made */
	bool host_is_ip;          /* the URL's host is an address: nothing to resolve */
};

/* The phases of m into *out (every field set; ATTEMPT_TIMING_NONE for a
 * phase that did not happen or did not complete). A reused connection has
 * no dns, connect or tls phase; an IP literal has no dns; plain http has no
 * tls; a transfer that failed in a phase has that phase and the later ones
 * none. total is m's total, always set. Returns whether the request went
 * over a reused connection: curl made no new one yet reached the point of
 * sending (a transfer that never connected made none either). */
bool timings_from_marks(const struct timings_marks *m, struct attempt_timings *out);

/* Whether host, as curl's URL parser gives it (CURLUPART_HOST: an IPv6
 * address in brackets, an IPv4 one normalised to dotted decimal), is an
 * address rather than a name. false for NULL. */
bool timings_host_is_ip(const char *host);

#endif
