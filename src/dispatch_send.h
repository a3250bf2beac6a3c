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
 * Requests travel as jobs (struct dispatch_send_job, embedded by their
 * owner beside the HTTP request) in chains, one lock and at most one wakeup
 * per chain in each direction: dispatch_send_post hands a chain to a
 * sender; the sender gives finished jobs back through the back() callback,
 * a chain per loop turn. A request belongs to exactly one thread at a time
 * (dispatch_http.h). The links that make the chains are this module's
 * alone. */
#ifndef HOOKD_DISPATCH_SEND_H
#define HOOKD_DISPATCH_SEND_H

#include <curl/curl.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "dispatch_http.h"

/* How a job came back (its fate). */
enum dispatch_send_fate {
	DISPATCH_SEND_DONE,        /* the transfer ran to its end: cc is curl's result */
	DISPATCH_SEND_NOT_STARTED, /* libcurl refused the easy handle: nothing was sent */
	DISPATCH_SEND_ABANDONED,   /* dispatch_send_stop ended it (or it never started) */
};

struct dispatch_send;

/* One transfer as the senders see it. Its owner (the dispatcher's struct
 * dispatch_req) embeds it beside the HTTP request and sets http once; a
 * posted job is the sender's until it is given back, then the owner's
 * again. While a sender holds it, it owns the request's easy handle (and
 * sets its CURLOPT_PRIVATE to the job). */
struct dispatch_send_job {
	struct dispatch_http_req *http; /* the owner's, set once: a job keeps its request */
	/* Written by the sender before it gives the job back; the owner
	 * reads them after. */
	enum dispatch_send_fate fate;
	CURLcode cc;             /* curl's result, when the fate is DISPATCH_SEND_DONE */
	/* dispatch_send.c's alone, whoever holds the job: its place in a chain
	 * or a sender's list of running transfers, and where it ran last. The
	 * owner links jobs only through the dispatch_send_chain functions. */
	struct dispatch_send_link {
		struct dispatch_send_job *next, *prev;
		const struct dispatch_send *ran_in;
		int64_t added_us; /* mono_us when last added to a chain (hops.h) */
	} link;
};

/* A chain of jobs, first to last, as they are posted and given back. Zero
 * is empty. A job is in at most one chain (or a sender's running list). */
struct dispatch_send_chain {
	struct dispatch_send_job *first, *last;
};

/* Appends j to c. */
void dispatch_send_chain_add(struct dispatch_send_chain *c, struct dispatch_send_job *j);
/* Appends every job of more to c, in order, and empties more. */
void dispatch_send_chain_join(struct dispatch_send_chain *c, struct dispatch_send_chain *more);
/* Removes c's first job and returns it; NULL if c is empty. */
struct dispatch_send_job *dispatch_send_chain_pop(struct dispatch_send_chain *c);

/* Receives a chain of jobs that a sender gives back, each with its fate
 * set. Called on the sender thread; it must take them over (join them to a
 * chain of its own) and return quickly. */
typedef void (*dispatch_send_back_fn)(void *ctx, struct dispatch_send_chain *back);

/* Starts sender thread number index, whose multi handle keeps at most
 * max_connects connections open, in use and idle (the caller posts at most
 * that many transfers at once); back(ctx, ...) receives what it gives back.
 * Returns 0 and *out, or -1 with a reason in err. */
int dispatch_send_start(int index, long max_connects, dispatch_send_back_fn back, void *ctx,
			struct dispatch_send **out, char *err, size_t errlen);

/* Adds 1 to *counter for each socket s opens to a receiver and takes 1 off
 * as it closes it (several senders may share one counter; NULL: none).
 * Call before the first dispatch_send_post (which orders it before the
 * sender's first connection); counter must outlive s. */
void dispatch_send_count_connections(struct dispatch_send *s, atomic_int *counter);

/* Hands the jobs of c (prepared requests) to s, which starts them as soon
 * as it wakes, and empties c. Any thread; s owns them until it gives them
 * back. */
void dispatch_send_post(struct dispatch_send *s, struct dispatch_send_chain *c);

/* The pool's socket_opened and socket_closed: curl opened or is closing a
 * connection socket (CURLOPT_OPENSOCKETFUNCTION / CLOSESOCKETFUNCTION). On a
 * sender's thread they keep its epoll bookkeeping right (see on_socket in
 * dispatch_send.c); on any other thread they do nothing. */
void dispatch_send_socket_opened(curl_socket_t fd);
void dispatch_send_socket_closed(curl_socket_t fd);

/* Sets how long a connection may sit idle in s's cache before s closes it,
 * whether or not s has transfers to run (default DISPATCH_HTTP_IDLE_CLOSE_S;
 * 0 = never; tests shorten it). Any thread; takes effect within a second. */
void dispatch_send_set_idle_close(struct dispatch_send *s, int64_t ms);

/* Stops s: what it still runs or has not started is given back as
 * DISPATCH_SEND_ABANDONED (through back(), before this returns), then the
 * thread is joined and s freed. The caller decides when (dispatch.c waits
 * for the transfers in flight up to --timeout plus a grace first). s may be
 * NULL. */
void dispatch_send_stop(struct dispatch_send *s);

#endif
