/* dispatch_send: the sender threads that run the dispatcher's HTTP
 * transfers (private to dispatch*.c).
 *
 * Why: per delivery, libcurl and the kernel's loopback send path cost about
 * four times what the scheduling, the event read and the signing cost, and
 * one thread doing all of it was the limit of delivery (docs/performance.md,
 * "Where the time goes"). So the dispatcher keeps every decision (which
 * delivery goes when, caps, rate limits, breaker, results) and prepares each
 * request, and N sender threads only run them: each with its own libcurl
 * multi handle (so its own connection and DNS caches), epoll set, timer and
 * eventfd, as dispatch.c's loop did before (libcurl's
 * docs/examples/ephiperfifo.c).
 *
 * Requests travel in chains linked by next_send, one lock and at most one
 * wakeup per chain in each direction: dispatch_send_post hands a chain to a
 * sender; the sender gives finished requests back through the back()
 * callback, a chain per loop turn. A request belongs to exactly one thread
 * at a time (dispatch_http.h). */
#ifndef HOOKD_DISPATCH_SEND_H
#define HOOKD_DISPATCH_SEND_H

#include <stddef.h>

#include "dispatch_http.h"

/* How a request came back (its fate field). */
enum dispatch_send_fate {
	DISPATCH_SEND_DONE,        /* the transfer ran to its end: cc is curl's result */
	DISPATCH_SEND_NOT_STARTED, /* libcurl refused the easy handle: nothing was sent */
	DISPATCH_SEND_ABANDONED,   /* dispatch_send_stop ended it (or it never started) */
};

/* Receives a chain of requests (first..last, linked by next_send, last's
 * next_send NULL) that a sender gives back, each with its fate set. Called
 * on the sender thread; it must take them over and return quickly. */
typedef void (*dispatch_send_back_fn)(void *ctx, struct dispatch_http_req *first,
				      struct dispatch_http_req *last);

struct dispatch_send;

/* Starts sender thread number index, whose multi handle keeps at most
 * max_connects idle connections; back(ctx, ...) receives what it gives back.
 * Returns 0 and *out, or -1 with a reason in err. */
int dispatch_send_start(int index, long max_connects, dispatch_send_back_fn back, void *ctx,
			struct dispatch_send **out, char *err, size_t errlen);

/* Hands the chain first..last (prepared requests, linked by next_send) to s,
 * which starts them as soon as it wakes. Any thread; s owns them until it
 * gives them back. */
void dispatch_send_post(struct dispatch_send *s, struct dispatch_http_req *first,
			struct dispatch_http_req *last);

/* Stops s: what it still runs or has not started is given back as
 * DISPATCH_SEND_ABANDONED (through back(), before this returns), then the
 * thread is joined and s freed. The caller decides when (dispatch.c waits
 * for the transfers in flight up to --timeout plus a grace first). s may be
 * NULL. */
/* The pool's socket_opened and socket_closed: curl opened or is closing a
 * connection socket (CURLOPT_OPENSOCKETFUNCTION / CLOSESOCKETFUNCTION). On a
 * sender's thread they keep its epoll bookkeeping right (see on_socket in
 * dispatch_send.c); on any other thread they do nothing. */
void dispatch_send_socket_opened(curl_socket_t fd);
void dispatch_send_socket_closed(curl_socket_t fd);

void dispatch_send_stop(struct dispatch_send *s);

#endif
