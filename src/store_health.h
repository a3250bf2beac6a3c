/* store_health: what hookd last saw of its store, for /healthz, GET /v1/stats
 * and the log. The parts that touch the store (the commit thread, the
 * dispatcher's reads, the free-space check, the start-up checks) report what
 * they see; readers get the worst condition in force and its reason. Each
 * condition is set and cleared by whoever sees it come and go; the log gets
 * one line when a condition starts and one when it ends, never one per
 * failed write. Any thread; one small mutex, taken only when a condition is
 * set, cleared or read (not on the delivery path while the store is
 * healthy: a set/clear of a condition already in that state is one relaxed
 * atomic load). */
#ifndef HOOKD_STORE_HEALTH_H
#define HOOKD_STORE_HEALTH_H

#include <stdbool.h>
#include <stdint.h>

/* The conditions, each on or off independently. */
enum store_cond {
	STORE_COND_FULL = 0,   /* a write failed: no space left on the volume (SQLITE_FULL, ENOSPC) */
	STORE_COND_LOW_SPACE,  /* free space below --min-free-space: new events are refused */
	STORE_COND_WRITE,      /* a write failed for another reason (I/O, locked, read-only) */
	STORE_COND_CORRUPT,    /* the database reported corruption (SQLITE_CORRUPT, NOTADB) */
	STORE_COND_UNREACHABLE, /* the database server cannot be reached (PostgreSQL) */
	STORE_COND_COUNT
};

/* How bad it is: ok; degraded (hookd still works in part: e.g. low space
 * refuses new events but delivers); failing (/healthz answers 503). */
enum store_health_level { STORE_HEALTH_OK = 0, STORE_HEALTH_DEGRADED, STORE_HEALTH_FAILING };

#define STORE_HEALTH_REASON_MAX 200

struct store_health_view {
	enum store_health_level level;     /* the worst condition's */
	unsigned conds;                    /* bit (1u << cond) for each condition on */
	char reason[STORE_HEALTH_REASON_MAX]; /* the worst condition's detail; "" when ok */
	int64_t since_ms;                  /* wall ms the worst condition started; 0 when ok */
};

struct store_health;

/* A new tracker with every condition off; NULL if out of memory. */
struct store_health *store_health_new(void);
void store_health_free(struct store_health *h);

/* Turns cond on with a short human detail (no secrets, no payloads), at wall
 * time now_ms. Logs once when it turns on (not when it is already on; the
 * detail is then updated). h may be NULL (does nothing). */
void store_health_set(struct store_health *h, enum store_cond cond, const char *detail,
		      int64_t now_ms);
/* STORE_COND_UNREACHABLE on, its reason "the database server cannot be
 * reached (detail)" (detail: the client library's message). */
void store_health_unreachable(struct store_health *h, const char *detail, int64_t now_ms);
/* Turns cond off; logs once if it was on. h may be NULL. */
void store_health_clear(struct store_health *h, enum store_cond cond);
/* True if cond is on now (one atomic load). h may be NULL (false). */
bool store_health_has(const struct store_health *h, enum store_cond cond);
/* The state now. h may be NULL (ok). */
void store_health_read(struct store_health *h, struct store_health_view *out);

/* The level a condition puts the store in, and its name for the API
 * ("storage_full", "low_space", "write_failed", "corrupt", "unreachable"). */
enum store_health_level store_cond_level(enum store_cond cond);
const char *store_cond_name(enum store_cond cond);
const char *store_health_level_name(enum store_health_level level); /* "ok", "degraded", "failing" */

#endif
