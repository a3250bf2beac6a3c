/* api_conns: who holds the API's connections (docs/operations.md#connections).
 *
 * Admission: libmicrohttpd asks api_conns_accept before it takes a new
 * connection; a client address (an IPv6 client by its /64) past
 * --api-max-connections-per-address, or any client past the total cap
 * (--api-max-connections, below the open-files limit), is closed at once.
 * The count is reserved in the accept callback and handed to the
 * connection when libmicrohttpd announces it (NOTIFY_STARTED, same thread
 * right after); a reservation never handed over (the library failed to set
 * the connection up) is given back at that thread's next accept.
 *
 * Deadline: libmicrohttpd's connection timeout counts inactivity, so a
 * client sending a byte now and then holds a connection forever. Each
 * connection here has a clock that starts when it opens or when its
 * previous response was sent, and stops when its request's header and body
 * have been read. A sweep thread shuts down (shutdown(2); libmicrohttpd then
 * closes it) every connection whose clock passes --api-request-timeout.
 * The connections being read are kept in one list in clock order, so the
 * sweep only looks at the expired ones.
 *
 * Logging: a refusal or a cut is counted by reason; the first one after a
 * quiet spell is logged at once, the rest at most once every
 * CONNS_LOG_EVERY_MS, with their count. libmicrohttpd's own messages (one
 * per connection a client or the deadline drops mid-request) pass through
 * here too: CONNS_LIB_BURST a window, then only their count. */
#include "api_conns.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "log.h"

#define CONNS_SLOTS 1024
#define CONNS_LOG_EVERY_MS 5000
/* libmicrohttpd messages logged per CONNS_LOG_EVERY_MS; the rest are counted. */
#define CONNS_LIB_BURST 5
/* The sweep runs this often, or 4 times per deadline if that is shorter. */
#define CONNS_TICK_MS 250

/* One client address (IPv4, or an IPv6 /64) and its open connections. */
struct conns_addr {
	unsigned char key[8];
	size_t key_len;
	char text[INET6_ADDRSTRLEN + 4];
	unsigned n;
	struct conns_addr *next;     /* same slot */
};

/* One open connection (libmicrohttpd's socket context). */
struct conns_entry {
	struct conns_addr *addr;     /* NULL if it was not counted */
	int fd;
	int64_t start_ms;            /* when the current request's clock started */
	bool listed;                 /* on the reading list */
	struct conns_entry *prev, *next;
};

struct conns_report {
	uint64_t pending;            /* events not yet logged */
	int64_t last_ms;             /* when the last line was written */
	char addr[INET6_ADDRSTRLEN + 4];
};

struct api_conns {
	struct api_conns_config cfg;
	pthread_mutex_t mu;          /* everything below */
	pthread_cond_t cv;
	bool stop;
	bool thread_started;
	pthread_t thread;
	unsigned total;
	struct conns_addr *slots[CONNS_SLOTS];
	struct conns_entry *head, *tail; /* being read, oldest clock first */
	struct conns_report report[API_CONNS_N_REASONS];
	int64_t lib_window_ms;       /* start of the library messages' window */
	unsigned lib_logged;         /* logged in that window */
	uint64_t lib_dropped;        /* not logged in that window */
	_Atomic uint64_t events[API_CONNS_N_REASONS];
};

/* The accept callback's reservation, until NOTIFY_STARTED on this thread. */
static _Thread_local struct {
	struct api_conns *c;
	struct conns_addr *a;
	bool held;
} tls_pending;

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

unsigned api_conns_auto_total(uint64_t nofile, unsigned reserve)
{
	if (nofile > API_CONNS_MAX_TOTAL + (uint64_t)reserve)
		return API_CONNS_MAX_TOTAL;
	if (nofile >= (uint64_t)reserve + 64)
		return (unsigned)(nofile - reserve);
	/* A limit too low for the reserve: a quarter of it, so the store and
	 * the senders still get most of what there is. */
	return nofile / 4 > 16 ? (unsigned)(nofile / 4) : 16;
}

const char *api_conns_reason_name(enum api_conns_reason r)
{
	static const char *const names[] = {"per_address", "total", "request_timeout"};
	return (size_t)r < API_CONNS_N_REASONS ? names[r] : "unknown";
}

/* ---- addresses (c->mu held) ---- */

static size_t key_of(const struct sockaddr *sa, unsigned char key[8])
{
	if (sa != NULL && sa->sa_family == AF_INET) {
		memcpy(key, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		return 4;
	}
	if (sa != NULL && sa->sa_family == AF_INET6) {
		const unsigned char *b = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
		static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
		if (memcmp(b, mapped, 12) == 0) {
			memcpy(key, b + 12, 4);
			return 4;
		}
		memcpy(key, b, 8); /* the /64: one host often holds all of it */
		return 8;
	}
	return 0;
}

static void key_text(const unsigned char *key, size_t len, char *out, size_t outlen)
{
	unsigned char v6[16] = {0};
	if (len == 4) {
		inet_ntop(AF_INET, key, out, (socklen_t)outlen);
	} else if (len == 8) {
		memcpy(v6, key, 8);
		inet_ntop(AF_INET6, v6, out, (socklen_t)outlen);
		strncat(out, "/64", outlen - strlen(out) - 1);
	} else {
		snprintf(out, outlen, "other");
	}
}

static size_t slot_of(const unsigned char *key, size_t len)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < len; i++)
		h = (h ^ key[i]) * 16777619u;
	return h % CONNS_SLOTS;
}

/* The address's record, made (with n = 0) if missing; NULL if out of memory. */
static struct conns_addr *addr_get(struct api_conns *c, const unsigned char *key, size_t len)
{
	size_t s = slot_of(key, len);
	for (struct conns_addr *a = c->slots[s]; a != NULL; a = a->next) {
		if (a->key_len == len && memcmp(a->key, key, len) == 0)
			return a;
	}
	struct conns_addr *a = calloc(1, sizeof *a);
	if (a == NULL)
		return NULL;
	memcpy(a->key, key, len);
	a->key_len = len;
	key_text(key, len, a->text, sizeof a->text);
	a->next = c->slots[s];
	c->slots[s] = a;
	return a;
}

/* Drops the address's record once no connection holds it. */
static void addr_release(struct api_conns *c, struct conns_addr *a)
{
	if (a->n > 0)
		return;
	for (struct conns_addr **p = &c->slots[slot_of(a->key, a->key_len)]; *p; p = &(*p)->next) {
		if (*p == a) {
			*p = a->next;
			free(a);
			return;
		}
	}
}

static void uncount(struct api_conns *c, struct conns_addr *a)
{
	if (a == NULL)
		return;
	a->n--;
	c->total--;
	addr_release(c, a);
}

/* ---- the rate-limited report (c->mu held) ---- */

static void report_line(struct api_conns *c, enum api_conns_reason r, int64_t now)
{
	struct conns_report *rep = &c->report[r];
	unsigned long long n = (unsigned long long)rep->pending;
	if (r == API_CONNS_PER_ADDRESS)
		log_warn("api: connections refused: per-address cap reached limit=%u address=%s "
			 "count=%llu (logged at most every %d s)", c->cfg.max_per_address, rep->addr,
			 n, CONNS_LOG_EVERY_MS / 1000);
	else if (r == API_CONNS_TOTAL)
		log_warn("api: connections refused: total cap reached limit=%u address=%s "
			 "count=%llu (logged at most every %d s)", c->cfg.max_total, rep->addr, n,
			 CONNS_LOG_EVERY_MS / 1000);
	else
		log_warn("api: connections closed: request not read within --api-request-timeout "
			 "timeout_ms=%lld address=%s count=%llu (logged at most every %d s)",
			 (long long)c->cfg.request_timeout_ms, rep->addr, n,
			 CONNS_LOG_EVERY_MS / 1000);
	rep->pending = 0;
	rep->last_ms = now;
}

static void report_event(struct api_conns *c, enum api_conns_reason r, const char *addr,
			 int64_t now)
{
	struct conns_report *rep = &c->report[r];
	atomic_fetch_add_explicit(&c->events[r], 1, memory_order_relaxed);
	rep->pending++;
	snprintf(rep->addr, sizeof rep->addr, "%s", addr);
	if (rep->last_ms == 0 || now - rep->last_ms >= CONNS_LOG_EVERY_MS)
		report_line(c, r, now);
}

/* Starts a new window for library messages if the last one is over,
 * logging how many the last one dropped. */
static void lib_window(struct api_conns *c, int64_t now)
{
	if (now - c->lib_window_ms < CONNS_LOG_EVERY_MS)
		return;
	if (c->lib_dropped > 0)
		log_warn("api: libmicrohttpd: %llu more messages in %d s not logged",
			 (unsigned long long)c->lib_dropped, CONNS_LOG_EVERY_MS / 1000);
	c->lib_window_ms = now;
	c->lib_logged = 0;
	c->lib_dropped = 0;
}

void api_conns_library_log(struct api_conns *c, const char *msg)
{
	if (c == NULL) {
		log_warn("api: libmicrohttpd: %s", msg);
		return;
	}
	pthread_mutex_lock(&c->mu);
	lib_window(c, now_ms());
	if (c->lib_logged < CONNS_LIB_BURST) {
		c->lib_logged++;
		log_warn("api: libmicrohttpd: %s", msg);
	} else {
		c->lib_dropped++;
	}
	pthread_mutex_unlock(&c->mu);
}

/* ---- the reading list (c->mu held) ---- */

static void list_remove(struct api_conns *c, struct conns_entry *e)
{
	if (!e->listed)
		return;
	if (e->prev)
		e->prev->next = e->next;
	else
		c->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		c->tail = e->prev;
	e->prev = e->next = NULL;
	e->listed = false;
}

/* Appends e with its clock started now: the list stays in clock order. */
static void list_append(struct api_conns *c, struct conns_entry *e, int64_t now)
{
	list_remove(c, e);
	e->start_ms = now;
	e->prev = c->tail;
	e->next = NULL;
	if (c->tail)
		c->tail->next = e;
	else
		c->head = e;
	c->tail = e;
	e->listed = true;
}

/* ---- libmicrohttpd's callbacks ---- */

/* Gives back a reservation this thread made that no connection took. */
static void drop_pending(struct api_conns *c)
{
	if (tls_pending.held && tls_pending.c == c)
		uncount(c, tls_pending.a);
	tls_pending.held = false;
	tls_pending.a = NULL;
}

enum MHD_Result api_conns_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
	struct api_conns *c = cls;
	unsigned char key[8];
	size_t len = key_of(addrlen > 0 ? addr : NULL, key);
	enum MHD_Result ok = MHD_NO;
	int64_t now = now_ms();
	pthread_mutex_lock(&c->mu);
	drop_pending(c);
	struct conns_addr *a = addr_get(c, key, len);
	if (a == NULL) {
		/* Out of memory: refuse rather than take a connection uncounted. */
	} else if (c->cfg.max_per_address > 0 && a->n >= c->cfg.max_per_address) {
		report_event(c, API_CONNS_PER_ADDRESS, a->text, now);
	} else if (c->total >= c->cfg.max_total) {
		report_event(c, API_CONNS_TOTAL, a->text, now);
	} else {
		a->n++;
		c->total++;
		tls_pending.c = c;
		tls_pending.a = a;
		tls_pending.held = true;
		ok = MHD_YES;
	}
	if (a != NULL && ok == MHD_NO)
		addr_release(c, a);
	pthread_mutex_unlock(&c->mu);
	return ok;
}

static void conn_started(struct api_conns *c, struct MHD_Connection *conn, void **ctx)
{
	struct conns_entry *e = calloc(1, sizeof *e);
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	pthread_mutex_lock(&c->mu);
	struct conns_addr *a = tls_pending.held && tls_pending.c == c ? tls_pending.a : NULL;
	tls_pending.held = false;
	tls_pending.a = NULL;
	if (e == NULL) {
		uncount(c, a); /* unwatched, but not counted against anyone */
	} else {
		e->addr = a;
		e->fd = ci != NULL ? ci->connect_fd : -1;
		list_append(c, e, now_ms());
	}
	pthread_mutex_unlock(&c->mu);
	*ctx = e;
}

void api_conns_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
		      enum MHD_ConnectionNotificationCode toe)
{
	struct api_conns *c = cls;
	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		conn_started(c, conn, socket_context);
		return;
	}
	struct conns_entry *e = *socket_context;
	if (e == NULL)
		return;
	/* libmicrohttpd closes the socket after this returns: from here on the
	 * sweep cannot see the entry, so it never shuts down a reused fd. */
	pthread_mutex_lock(&c->mu);
	list_remove(c, e);
	uncount(c, e->addr);
	pthread_mutex_unlock(&c->mu);
	free(e);
	*socket_context = NULL;
}

static struct conns_entry *entry_of(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return ci != NULL ? ci->socket_context : NULL;
}

void api_conns_request_read(struct api_conns *c, struct MHD_Connection *conn)
{
	struct conns_entry *e = entry_of(conn);
	if (c == NULL || e == NULL)
		return;
	pthread_mutex_lock(&c->mu);
	list_remove(c, e);
	pthread_mutex_unlock(&c->mu);
}

void api_conns_request_done(struct api_conns *c, struct MHD_Connection *conn)
{
	struct conns_entry *e = entry_of(conn);
	if (c == NULL || e == NULL)
		return;
	pthread_mutex_lock(&c->mu);
	list_append(c, e, now_ms());
	pthread_mutex_unlock(&c->mu);
}

/* ---- the sweep ---- */

static void sweep_once(struct api_conns *c, int64_t now)
{
	while (c->head != NULL && now - c->head->start_ms >= c->cfg.request_timeout_ms) {
		struct conns_entry *e = c->head;
		list_remove(c, e);
		if (e->fd >= 0)
			shutdown(e->fd, SHUT_RDWR);
		report_event(c, API_CONNS_DEADLINE, e->addr ? e->addr->text : "other", now);
	}
	for (size_t r = 0; r < API_CONNS_N_REASONS; r++) {
		if (c->report[r].pending > 0 && now - c->report[r].last_ms >= CONNS_LOG_EVERY_MS)
			report_line(c, (enum api_conns_reason)r, now);
	}
	if (c->lib_dropped > 0)
		lib_window(c, now);
}

static void *sweep_main(void *arg)
{
	struct api_conns *c = arg;
	int64_t tick = c->cfg.request_timeout_ms / 4;
	tick = tick < CONNS_TICK_MS ? (tick > 10 ? tick : 10) : CONNS_TICK_MS;
	pthread_mutex_lock(&c->mu);
	while (!c->stop) {
		sweep_once(c, now_ms());
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += (long)(tick % 1000) * 1000000L;
		ts.tv_sec += tick / 1000 + ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&c->cv, &c->mu, &ts);
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

int api_conns_new(const struct api_conns_config *cfg, struct api_conns **out, char *err,
		  size_t errlen)
{
	struct api_conns *c = calloc(1, sizeof *c);
	pthread_condattr_t ca;
	*out = NULL;
	if (c == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	c->cfg = *cfg;
	pthread_mutex_init(&c->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&c->thread, NULL, sweep_main, c) != 0) {
		snprintf(err, errlen, "cannot start the connection sweep thread");
		api_conns_free(c);
		return -1;
	}
	c->thread_started = true;
	*out = c;
	return 0;
}

void api_conns_free(struct api_conns *c)
{
	if (c == NULL)
		return;
	if (c->thread_started) {
		pthread_mutex_lock(&c->mu);
		c->stop = true;
		pthread_cond_signal(&c->cv);
		pthread_mutex_unlock(&c->mu);
		pthread_join(c->thread, NULL);
	}
	for (size_t r = 0; r < API_CONNS_N_REASONS; r++) {
		if (c->report[r].pending > 0)
			report_line(c, (enum api_conns_reason)r, now_ms());
	}
	for (size_t i = 0; i < CONNS_SLOTS; i++) {
		for (struct conns_addr *a = c->slots[i], *next; a != NULL; a = next) {
			next = a->next;
			free(a);
		}
	}
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

uint64_t api_conns_events(const struct api_conns *c, enum api_conns_reason r)
{
	if (c == NULL || (size_t)r >= API_CONNS_N_REASONS)
		return 0;
	return atomic_load_explicit(&c->events[r], memory_order_relaxed);
}
