/* api_conns: the API's connection caps (per client address and in total)
 * and the deadline for reading a request (slowloris), wired into
 * libmicrohttpd's accept-policy and connection-notify callbacks. */
#ifndef HOOKD_API_CONNS_H
#define HOOKD_API_CONNS_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The total cap never goes above this, whatever the open-files limit. */
#define API_CONNS_MAX_TOTAL 65536

enum api_conns_reason {
	API_CONNS_PER_ADDRESS = 0,   /* refused: the address holds its cap */
	API_CONNS_TOTAL,             /* refused: the total cap is reached */
	API_CONNS_DEADLINE,          /* closed: request not read in time */
	API_CONNS_N_REASONS
};

struct api_conns_config {
	unsigned max_total;          /* connections open at once, all clients (>= 1) */
	unsigned max_per_address;    /* per IPv4 address or IPv6 /64; 0 = no cap */
	int64_t request_timeout_ms;  /* header + body of one request, total time */
};

struct api_conns;

/* The total cap for an open-files limit nofile when reserve descriptors are
 * kept for everything else (store, senders, metrics listener): nofile -
 * reserve, at most API_CONNS_MAX_TOTAL; a quarter of nofile (at least 16)
 * when the limit does not leave 64 above the reserve. Pure. */
unsigned api_conns_auto_total(uint64_t nofile, unsigned reserve);
/* "per_address", "total", "request_timeout" (static). */
const char *api_conns_reason_name(enum api_conns_reason r);

/* Makes the accounting and starts its sweep thread. Returns 0 and *out, or
 * -1 with a reason in err. Free with api_conns_free after the daemon using
 * it has stopped. */
int api_conns_new(const struct api_conns_config *cfg, struct api_conns **out, char *err,
		  size_t errlen);
/* Stops the sweep, logs the counts not yet logged, frees c (NULL is fine). */
void api_conns_free(struct api_conns *c);

/* libmicrohttpd's MHD_AcceptPolicyCallback (cls: the api_conns): MHD_NO
 * refuses the connection (counted and logged, rate-limited). */
enum MHD_Result api_conns_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen);
/* libmicrohttpd's MHD_NotifyConnectionCallback (cls: the api_conns): a
 * connection opens (its clock starts) or closes (its count is given back). */
void api_conns_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
		      enum MHD_ConnectionNotificationCode toe);
/* The request on conn has been read whole (header and body): its clock
 * stops. c NULL is fine. Any server thread. */
void api_conns_request_read(struct api_conns *c, struct MHD_Connection *conn);
/* The request on conn ended: the clock restarts for the next request on the
 * same connection (keep-alive). c NULL is fine. */
void api_conns_request_done(struct api_conns *c, struct MHD_Connection *conn);

/* Logs one of libmicrohttpd's messages (a line, no newline): at most a few
 * every 5 s, then only their count. c NULL: logged as is. Any thread. */
void api_conns_library_log(struct api_conns *c, const char *msg);

/* Connections refused or closed for reason r since start (any thread). */
uint64_t api_conns_events(const struct api_conns *c, enum api_conns_reason r);

#endif
