/* dispatch_send: a sender thread running the dispatcher's HTTP transfers
 * (see dispatch_send.h).
 *
 * The loop drives libcurl with curl_multi_socket_action over epoll (libcurl's
 * docs/examples/ephiperfifo.c): curl says which sockets to watch and when its
 * timer fires, so one turn costs what became ready, not a scan of every
 * transfer. Each turn it starts what was posted, runs curl's timer, collects
 * what finished and gives it back as one chain, then waits for sockets, the
 * timer or the eventfd that dispatch_send_post writes. */
#include "dispatch_send.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "hops.h"
#include "log.h"
#include "util.h"

#define SEND_EVENTS 256
#define SEND_POLL_MAX_MS 1000

struct dispatch_send {
	int index;
	CURLM *multi;
	int epfd;                /* curl's sockets and wakefd */
	int wakefd;              /* eventfd: posted requests or stop */
	pthread_t thread;
	bool thread_started;
	dispatch_send_back_fn back;
	void *ctx;

	pthread_mutex_t mu;      /* guards in and stop */
	struct dispatch_send_chain in; /* posted, not yet started */
	bool stop;

	atomic_int *conns_open;  /* counts this sender's sockets; NULL = none */

	/* Idle connections older than this are closed (sweep_idle); 0 = never. */
	_Atomic int64_t idle_close_us;

	/* Sender thread only. */
	unsigned char *fds;      /* FD_* state of each socket number seen, see on_socket */
	int64_t *idle_since;     /* monotonic µs each parked socket was parked */
	int n_fds;
	int64_t next_sweep_us;   /* when sweep_idle next looks */
	struct dispatch_send_job *running; /* in the multi handle (link.prev/next) */
	struct dispatch_send_chain out; /* to give back this turn */
	int64_t curl_due_us;     /* monotonic µs when curl's timer fires; -1 = none */
};

static void wake(struct dispatch_send *s)
{
	uint64_t one = 1;
	/* Only EAGAIN can fail here (the counter is saturated): already awake. */
	if (write(s->wakefd, &one, sizeof one) < 0 && errno != EAGAIN)
		log_warn("dispatch: sender %d wakeup failed errno=%d", s->index, errno);
}

/* ---- chains, the running list and the chain given back ---- */

void dispatch_send_chain_add(struct dispatch_send_chain *c, struct dispatch_send_job *j)
{
	j->link.next = NULL;
	j->link.added_us = mono_us();
	if (c->last != NULL)
		c->last->link.next = j;
	else
		c->first = j;
	c->last = j;
}

void dispatch_send_chain_join(struct dispatch_send_chain *c, struct dispatch_send_chain *more)
{
	if (more->first == NULL)
		return;
	if (c->last != NULL)
		c->last->link.next = more->first;
	else
		c->first = more->first;
	c->last = more->last;
	more->first = more->last = NULL;
}

struct dispatch_send_job *dispatch_send_chain_pop(struct dispatch_send_chain *c)
{
	struct dispatch_send_job *j = c->first;
	if (j == NULL)
		return NULL;
	c->first = j->link.next;
	if (c->first == NULL)
		c->last = NULL;
	j->link.next = NULL;
	return j;
}

static void running_add(struct dispatch_send *s, struct dispatch_send_job *j)
{
	j->link.prev = NULL;
	j->link.next = s->running;
	if (s->running != NULL)
		s->running->link.prev = j;
	s->running = j;
}

static void running_remove(struct dispatch_send *s, struct dispatch_send_job *j)
{
	if (j->link.prev != NULL)
		j->link.prev->link.next = j->link.next;
	else
		s->running = j->link.next;
	if (j->link.next != NULL)
		j->link.next->link.prev = j->link.prev;
	j->link.prev = j->link.next = NULL;
}

static void out_add(struct dispatch_send *s, struct dispatch_send_job *j,
		    enum dispatch_send_fate fate)
{
	j->fate = fate;
	dispatch_send_chain_add(&s->out, j);
}

/* Gives back what finished this turn, as one chain (one lock and at most
 * one wakeup on the dispatcher's side). */
static void give_back(struct dispatch_send *s)
{
	if (s->out.first == NULL)
		return;
	s->back(s->ctx, &s->out);
	s->out.first = s->out.last = NULL; /* the callee took them over */
}

/* ---- libcurl over epoll ---- */

/* What the epoll set holds for one of curl's sockets. A connection that
 * goes back to curl's cache is "parked": curl asks for it to be removed,
 * but it stays in the set, so the next transfer on it (the common case: the
 * same receiver again) costs no epoll_ctl at all, instead of a DEL and an
 * ADD per delivery. An event on a parked socket (the receiver closed it)
 * removes it then. Only connection sockets are parked, and only while the
 * sender knows they are open: curl opens and closes them through
 * dispatch_send_socket_opened/_closed, on the sender's own thread, so a
 * number reused by a new socket never inherits an old socket's state.
 * Other sockets (the resolver's) are added and removed as curl says. */
enum {
	FD_IN = 1,
	FD_OUT = 2,
	FD_WATCHED = 4, /* in the epoll set, with FD_IN/FD_OUT as its events */
	FD_PARKED = 8,  /* curl said remove; still in the set */
	FD_CONN = 16,   /* a connection socket, open (see dispatch_send_socket_opened) */
};

/* The sender whose loop runs on this thread: curl calls the socket open
 * and close callbacks from inside that loop's curl calls. */
static _Thread_local struct dispatch_send *this_sender;

/* The state slot of fd, growing the table; NULL if out of memory (the
 * socket is then watched without the cache: ADD/MOD and DEL each time). */
static unsigned char *fd_slot(struct dispatch_send *s, curl_socket_t fd)
{
	if (fd < 0)
		return NULL;
	if (fd >= s->n_fds) {
		int n = s->n_fds ? s->n_fds : 64;
		while (n <= fd)
			n *= 2;
		unsigned char *t = realloc(s->fds, (size_t)n);
		if (t == NULL)
			return NULL;
		memset(t + s->n_fds, 0, (size_t)(n - s->n_fds));
		s->fds = t;
		int64_t *since = realloc(s->idle_since, (size_t)n * sizeof *since);
		if (since == NULL)
			return NULL; /* fds grew: harmless, n_fds stays */
		s->idle_since = since;
		s->n_fds = n;
	}
	return &s->fds[fd];
}

void dispatch_send_socket_opened(curl_socket_t fd)
{
	unsigned char *st = this_sender != NULL ? fd_slot(this_sender, fd) : NULL;
	if (st != NULL)
		*st = FD_CONN;
	if (this_sender != NULL && this_sender->conns_open != NULL)
		atomic_fetch_add_explicit(this_sender->conns_open, 1, memory_order_relaxed);
}

void dispatch_send_socket_closed(curl_socket_t fd)
{
	struct dispatch_send *s = this_sender;
	if (s != NULL && fd >= 0 && fd < s->n_fds)
		s->fds[fd] = 0; /* closing took it out of the epoll set */
	/* Outside a sender's loop only at the stop (curl_multi_cleanup). */
	if (s != NULL && s->conns_open != NULL)
		atomic_fetch_sub_explicit(s->conns_open, 1, memory_order_relaxed);
}

/* epoll_ctl op on fd, or the other of ADD/MOD when the set disagrees (a
 * number reused after a close, which left the set). Returns 0 or -1. */
static int watch(struct dispatch_send *s, curl_socket_t fd, int op, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.fd = fd};
	if (epoll_ctl(s->epfd, op, fd, &ev) == 0)
		return 0;
	op = op == EPOLL_CTL_ADD ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
	if (epoll_ctl(s->epfd, op, fd, &ev) == 0)
		return 0;
	/* Unwatched, the transfer ends at its timeout and is retried. */
	log_error("dispatch: epoll_ctl failed fd=%d errno=%d", (int)fd, errno);
	return -1;
}

/* CURLMOPT_SOCKETFUNCTION: watch fd for what curl wants. */
static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	(void)easy;
	(void)socketp;
	struct dispatch_send *s = userp;
	unsigned char *st = fd_slot(s, fd);
	unsigned char conn = st != NULL ? (*st & FD_CONN) : 0;
	if (what == CURL_POLL_REMOVE) {
		if (conn && (*st & FD_WATCHED)) {
			*st |= FD_PARKED;
			s->idle_since[fd] = mono_us();
			return 0;
		}
		/* Fails harmlessly if curl closed fd already (closing leaves the set). */
		epoll_ctl(s->epfd, EPOLL_CTL_DEL, fd, NULL);
		if (st != NULL)
			*st = conn;
		return 0;
	}
	unsigned char want = (unsigned char)(((what & CURL_POLL_IN) ? FD_IN : 0) |
					     ((what & CURL_POLL_OUT) ? FD_OUT : 0));
	if (conn && (*st & FD_WATCHED) && (*st & (FD_IN | FD_OUT)) == want) {
		*st = (unsigned char)(FD_CONN | FD_WATCHED | want); /* unparked as it was */
		return 0;
	}
	uint32_t events = ((want & FD_IN) ? EPOLLIN : 0u) | ((want & FD_OUT) ? EPOLLOUT : 0u);
	int op = st != NULL && (*st & FD_WATCHED) ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
	int rc = watch(s, fd, op, events);
	if (st != NULL)
		*st = (unsigned char)(conn | (rc == 0 ? FD_WATCHED | want : 0));
	return 0;
}

/* CURLMOPT_TIMERFUNCTION: when curl wants curl_multi_socket_action with
 * CURL_SOCKET_TIMEOUT (-1: never). Only records it; the loop acts. */
static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
	(void)multi;
	struct dispatch_send *s = userp;
	s->curl_due_us = timeout_ms < 0 ? -1 : mono_us() + (int64_t)timeout_ms * 1000;
	return 0;
}

/* Runs curl's timer if it is due: new transfers start, timeouts expire. */
static void curl_timer_run(struct dispatch_send *s)
{
	if (s->curl_due_us < 0 || mono_us() < s->curl_due_us)
		return;
	int running;
	s->curl_due_us = -1; /* curl sets the next one from inside the call */
	curl_multi_socket_action(s->multi, CURL_SOCKET_TIMEOUT, 0, &running);
}

/* Moves every transfer curl reports done to the chain given back. */
static void reap(struct dispatch_send *s)
{
	CURLMsg *m;
	int left;
	while ((m = curl_multi_info_read(s->multi, &left)) != NULL) {
		if (m->msg != CURLMSG_DONE)
			continue;
		char *priv = NULL;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
		CURLcode cc = m->data.result;
		/* m points into the easy handle: read before removing it. */
		curl_multi_remove_handle(s->multi, m->easy_handle);
		if (priv == NULL)
			continue;
		struct dispatch_send_job *j = (struct dispatch_send_job *)(void *)priv;
		running_remove(s, j);
		j->cc = cc;
		dispatch_http_measure(j->http); /* here, off the dispatcher's thread */
		out_add(s, j, DISPATCH_SEND_DONE);
	}
}

/* Adds the posted chain to the multi handle; curl starts each from its
 * timer (at once: it asks for a 0 ms timeout). */
static void start_posted(struct dispatch_send *s, struct dispatch_send_chain *posted)
{
	struct dispatch_send_job *j;
	while ((j = dispatch_send_chain_pop(posted)) != NULL) {
		CURL *easy = j->http->easy;
		hops_since(HOP_SENDER_PICKUP, j->link.added_us);
		if (j->link.ran_in != s) {
			/* libcurl loads CURLOPT_RESOLVE's pins into the DNS cache
			 * of the multi handle that runs an easy handle's first
			 * transfer, and only then: a handle that ran in another
			 * sender brings them again, or its host would be looked
			 * up in DNS here. */
			if (j->link.ran_in != NULL && j->http->pool->resolve != NULL)
				curl_easy_setopt(easy, CURLOPT_RESOLVE, j->http->pool->resolve);
			/* How reap finds j. A job keeps its request for life, so
			 * this holds until it runs in another sender. */
			curl_easy_setopt(easy, CURLOPT_PRIVATE, j);
			j->link.ran_in = s;
		}
		if (curl_multi_add_handle(s->multi, easy) == CURLM_OK) {
			running_add(s, j);
		} else {
			j->cc = CURLE_FAILED_INIT;
			out_add(s, j, DISPATCH_SEND_NOT_STARTED);
		}
	}
}

static int poll_timeout(const struct dispatch_send *s)
{
	if (s->curl_due_us < 0)
		return SEND_POLL_MAX_MS;
	/* Rounded up, so curl's timer has expired when the wait ends. */
	int64_t us = s->curl_due_us - mono_us();
	int64_t ms = us <= 0 ? 0 : (us + 999) / 1000;
	return ms > SEND_POLL_MAX_MS ? SEND_POLL_MAX_MS : (int)ms;
}

/* A parked connection the peer wrote to or closed: what it sent is read
 * and dropped (a few KiB at most), and the socket shut down, so curl's
 * check before reuse (a 1-byte MSG_PEEK) reads end-of-file and closes it.
 * Left alone, a TLS receiver's close_notify waiting there looked like a
 * live connection to libcurl 7.88: the next request was written to a
 * closed connection, and with several such to one host curl gave up
 * ("Connection died, tried 5 times"). An idle HTTP/1.1 connection has
 * nothing to receive, so whatever came makes it unusable. */
static void retire_parked(int fd)
{
	char buf[4096];
	for (int i = 0; i < 4 && recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0; i++)
		;
	shutdown(fd, SHUT_RDWR);
}

/* Waits up to timeout_ms for sockets, the wakeup or curl's timer, and hands
 * every ready socket to curl. */
static void wait_io(struct dispatch_send *s, int timeout_ms)
{
	struct epoll_event evs[SEND_EVENTS];
	int n = epoll_wait(s->epfd, evs, SEND_EVENTS, timeout_ms);
	if (n < 0 && errno != EINTR)
		log_warn("dispatch: sender %d epoll_wait failed errno=%d", s->index, errno);
	for (int i = 0; i < n; i++) {
		int fd = evs[i].data.fd;
		uint32_t e = evs[i].events;
		if (fd == s->wakefd) {
			uint64_t count;
			if (read(fd, &count, sizeof count) < 0 && errno != EAGAIN)
				log_warn("dispatch: sender %d wakeup read failed errno=%d",
					 s->index, errno);
			continue;
		}
		if (fd >= 0 && fd < s->n_fds && (s->fds[fd] & FD_PARKED)) {
			/* Idle in curl's cache and closed or written to by the
			 * peer: out of the set now, and unusable. */
			epoll_ctl(s->epfd, EPOLL_CTL_DEL, fd, NULL);
			s->fds[fd] = FD_CONN;
			if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
				retire_parked(fd);
			continue;
		}
		int flags = ((e & (EPOLLIN | EPOLLHUP | EPOLLERR)) ? CURL_CSELECT_IN : 0) |
			    ((e & EPOLLOUT) ? CURL_CSELECT_OUT : 0) |
			    ((e & EPOLLERR) ? CURL_CSELECT_ERR : 0);
		int running;
		curl_multi_socket_action(s->multi, fd, flags, &running);
	}
	curl_timer_run(s);
}

/* Closes the connections parked in curl's cache for longer than
 * idle_close_us: shut down (the receiver sees the close now) and out of the
 * epoll set; curl finds them dead, and frees them, when it next looks.
 * libcurl applies its own CURLOPT_MAXAGE_CONN only when a transfer starts,
 * so without this a sender with nothing to send would keep them open.
 * Looks at most once a second (or once per idle_close_us if shorter). */
static void sweep_idle(struct dispatch_send *s)
{
	int64_t now = mono_us();
	int64_t max = atomic_load_explicit(&s->idle_close_us, memory_order_relaxed);
	if (max <= 0 || now < s->next_sweep_us)
		return;
	s->next_sweep_us = now + (max < 1000000 ? max : 1000000);
	for (int fd = 0; fd < s->n_fds; fd++) {
		if (!(s->fds[fd] & FD_PARKED) || now - s->idle_since[fd] < max)
			continue;
		shutdown(fd, SHUT_RDWR);
		epoll_ctl(s->epfd, EPOLL_CTL_DEL, fd, NULL);
		s->fds[fd] = FD_CONN;
	}
}

/* On stop: every request still here goes back abandoned, its transfer cut
 * (the dispatcher leaves its delivery pending: at-least-once). */
static void abandon_all(struct dispatch_send *s, struct dispatch_send_chain *posted)
{
	while (s->running != NULL) {
		struct dispatch_send_job *j = s->running;
		curl_multi_remove_handle(s->multi, j->http->easy);
		running_remove(s, j);
		out_add(s, j, DISPATCH_SEND_ABANDONED);
	}
	struct dispatch_send_job *j;
	while ((j = dispatch_send_chain_pop(posted)) != NULL)
		out_add(s, j, DISPATCH_SEND_ABANDONED);
}

static void *run(void *arg)
{
	struct dispatch_send *s = arg;
	this_sender = s;
	for (;;) {
		pthread_mutex_lock(&s->mu);
		struct dispatch_send_chain posted = s->in;
		s->in.first = s->in.last = NULL;
		bool stop = s->stop;
		pthread_mutex_unlock(&s->mu);
		if (stop) {
			/* Finished ones first: they go back with their result. */
			reap(s);
			abandon_all(s, &posted);
			give_back(s);
			break;
		}
		start_posted(s, &posted);
		curl_timer_run(s);
		reap(s);
		give_back(s);
		wait_io(s, poll_timeout(s));
		sweep_idle(s);
	}
	return NULL;
}

/* ---- public ---- */

static void send_free(struct dispatch_send *s)
{
	/* Before the epoll set: cleanup may still report sockets to remove. */
	if (s->multi != NULL)
		curl_multi_cleanup(s->multi);
	if (s->epfd >= 0)
		close(s->epfd);
	if (s->wakefd >= 0)
		close(s->wakefd);
	pthread_mutex_destroy(&s->mu);
	free(s->fds);
	free(s->idle_since);
	free(s);
}

int dispatch_send_start(int index, long max_connects, dispatch_send_back_fn back, void *ctx,
			struct dispatch_send **out, char *err, size_t errlen)
{
	struct dispatch_send *s = calloc(1, sizeof *s);
	if (s == NULL) {
		snprintf(err, errlen, "dispatch: out of memory");
		return -1;
	}
	s->index = index;
	s->back = back;
	s->ctx = ctx;
	s->curl_due_us = -1;
	atomic_init(&s->idle_close_us, (int64_t)DISPATCH_HTTP_IDLE_CLOSE_S * 1000000);
	pthread_mutex_init(&s->mu, NULL);
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	s->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	struct epoll_event wev = {.events = EPOLLIN, .data.fd = s->wakefd};
	if (s->epfd < 0 || s->wakefd < 0 ||
	    epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->wakefd, &wev) != 0) {
		snprintf(err, errlen, "dispatch: epoll or eventfd failed: %s", strerror(errno));
		goto fail;
	}
	s->multi = curl_multi_init();
	if (s->multi == NULL) {
		snprintf(err, errlen, "dispatch: curl_multi_init failed");
		goto fail;
	}
	curl_multi_setopt(s->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
	curl_multi_setopt(s->multi, CURLMOPT_SOCKETDATA, s);
	curl_multi_setopt(s->multi, CURLMOPT_TIMERFUNCTION, on_timer);
	curl_multi_setopt(s->multi, CURLMOPT_TIMERDATA, s);
	/* At most max_connects connections, in use and idle: at the cap
	 * curl closes the longest idle one before it opens another
	 * (CURLMOPT_MAXCONNECTS alone trims the cache only as transfers end,
	 * so a burst of new hosts opened up to twice it). The dispatcher
	 * posts at most max_connects transfers here, so one is always idle
	 * when the cap is reached and no transfer waits in curl's pending
	 * queue (where its timeout would run; in 7.88 some sat there until
	 * it expired). No MAX_HOST_CONNECTIONS: the per-endpoint cap belongs
	 * to the dispatcher's own scheduling. */
	curl_multi_setopt(s->multi, CURLMOPT_MAXCONNECTS, max_connects);
	curl_multi_setopt(s->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, max_connects);
	if (pthread_create(&s->thread, NULL, run, s) != 0) {
		snprintf(err, errlen, "dispatch: cannot start a sender thread");
		goto fail;
	}
	s->thread_started = true;
	char name[16];
	snprintf(name, sizeof name, "hookd-send%d", index);
	pthread_setname_np(s->thread, name); /* for top -H and perf */
	*out = s;
	return 0;
fail:
	send_free(s);
	return -1;
}

void dispatch_send_post(struct dispatch_send *s, struct dispatch_send_chain *c)
{
	pthread_mutex_lock(&s->mu);
	bool was_empty = s->in.first == NULL;
	dispatch_send_chain_join(&s->in, c);
	/* One wakeup per batch: the loop takes the whole list. */
	if (was_empty)
		wake(s);
	pthread_mutex_unlock(&s->mu);
}

void dispatch_send_count_connections(struct dispatch_send *s, atomic_int *counter)
{
	s->conns_open = counter;
}

void dispatch_send_set_idle_close(struct dispatch_send *s, int64_t ms)
{
	atomic_store_explicit(&s->idle_close_us, ms > 0 ? ms * 1000 : 0, memory_order_relaxed);
}

void dispatch_send_stop(struct dispatch_send *s)
{
	if (s == NULL)
		return;
	if (s->thread_started) {
		pthread_mutex_lock(&s->mu);
		s->stop = true;
		wake(s);
		pthread_mutex_unlock(&s->mu);
		pthread_join(s->thread, NULL);
	}
	send_free(s);
}
