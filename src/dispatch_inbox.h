/* dispatch_inbox: the one way into the dispatcher thread (private to
 * dispatch*.c; docs/architecture.md#the-inbox-protocol).
 *
 * Other threads never touch the dispatcher's state: they leave messages
 * here, and the dispatcher thread takes everything at once each loop turn.
 * Every field is under mu, and each is written only as the functions below
 * say:
 * - any thread: dispatch_inbox_put (a message, in order, and/or one
 *   submitted op finished), dispatch_inbox_rescan, dispatch_inbox_stop,
 *   dispatch_inbox_stop_now;
 *   the commit thread's done()s are the usual callers;
 * - the sender threads: dispatch_inbox_sent (a chain of finished requests);
 * - the dispatcher thread: dispatch_inbox_op_begin (before it submits an op),
 *   dispatch_inbox_take, dispatch_inbox_wait, dispatch_inbox_wait_ops.
 * One write to the eventfd wakes the dispatcher when the inbox goes from
 * empty to not (messages or finished requests) and for each rescan or
 * stop. */
#ifndef HOOKD_DISPATCH_INBOX_H
#define HOOKD_DISPATCH_INBOX_H

#include <pthread.h>
#include <stdbool.h>

#include "dispatch_send.h"

/* MSG_OWN_GAIN, MSG_OWN_LOSE: the cluster thread only (dispatch_own_gain,
 * dispatch_own_lose), posted with dispatch_inbox_put. */
enum msg_kind { MSG_ENQUEUE, MSG_PAGE, MSG_RECORD, MSG_EP_DELETED,
		MSG_FETCH_REQ, MSG_FETCH /* dispatch_fetch.c */, MSG_OWN_GAIN, MSG_OWN_LOSE };

/* A message, embedded in what it carries (dispatch_internal.h). */
struct msg {
	enum msg_kind kind;
	struct msg *next;
};

struct dispatch_inbox {
	pthread_mutex_t mu;
	pthread_cond_t cv;            /* ops_outstanding went down */
	int wakefd;                   /* eventfd: the inbox has news */
	struct msg *first, **tail;    /* messages, oldest first */
	struct dispatch_send_chain sent; /* requests the senders gave back */
	bool stop_requested;
	bool stop_now_requested;      /* dispatch_stop_now: do not wait for what is in flight */
	bool rescan_requested;
	int ops_outstanding;          /* submitted ops whose done() has not put yet */
};

/* What dispatch_inbox_take hands the dispatcher: everything since the last
 * take. */
struct dispatch_inbox_news {
	struct msg *msgs;             /* oldest first, linked by next */
	struct dispatch_send_chain sent;
	bool rescan;                  /* dispatch_inbox_rescan was called */
	bool stop;                    /* dispatch_inbox_stop has been called */
	bool stop_now;                /* dispatch_inbox_stop_now has been called */
};

/* Returns 0, or -1 with errno set (the eventfd could not be made; nothing
 * to free then). */
int dispatch_inbox_init(struct dispatch_inbox *in);
/* Closes the eventfd and destroys the lock. Messages still queued are the
 * caller's: take them first. */
void dispatch_inbox_free(struct dispatch_inbox *in);

/* Appends m (if not NULL) and wakes the dispatcher; op_done also counts one
 * submitted op as finished. Both in one critical section, the wakeup before
 * the unlock: once the count reaches zero the dispatcher may free
 * everything, the inbox included. Any thread. */
void dispatch_inbox_put(struct dispatch_inbox *in, struct msg *m, bool op_done);
/* Counts one op about to be submitted (its done() must call
 * dispatch_inbox_put with op_done). */
void dispatch_inbox_op_begin(struct dispatch_inbox *in);
/* Takes over the chain back (emptied) and wakes the dispatcher. Sender
 * threads (the dispatch_send_back_fn). */
void dispatch_inbox_sent(struct dispatch_inbox *in, struct dispatch_send_chain *back);
/* Asks for a rescan, the stop, or the stop without waiting for what is in
 * flight, and wakes the dispatcher. Any thread. */
void dispatch_inbox_rescan(struct dispatch_inbox *in);
void dispatch_inbox_stop(struct dispatch_inbox *in);
void dispatch_inbox_stop_now(struct dispatch_inbox *in);

/* Takes every message, finished request and flag into *news (the inbox is
 * left empty; the stops stay requested). Dispatcher thread. */
void dispatch_inbox_take(struct dispatch_inbox *in, struct dispatch_inbox_news *news);
/* Waits up to timeout_ms for a wakeup. Dispatcher thread. */
void dispatch_inbox_wait(struct dispatch_inbox *in, int timeout_ms);
/* Blocks until every counted op has put its done (at the stop). */
void dispatch_inbox_wait_ops(struct dispatch_inbox *in);

#endif
