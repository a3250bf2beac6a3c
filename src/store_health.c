/* store_health: the store's conditions and their one-line log (see the
 * header). */
#include "store_health.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

struct store_health {
	pthread_mutex_t mu;
	_Atomic unsigned conds;   /* bit per condition on; written under mu */
	char detail[STORE_COND_COUNT][STORE_HEALTH_REASON_MAX];
	int64_t since[STORE_COND_COUNT];
};

static const char *const names[STORE_COND_COUNT] = {
	[STORE_COND_FULL] = "storage_full",
	[STORE_COND_LOW_SPACE] = "low_space",
	[STORE_COND_WRITE] = "write_failed",
	[STORE_COND_CORRUPT] = "corrupt",
	[STORE_COND_UNREACHABLE] = "unreachable",
};

static const enum store_health_level levels[STORE_COND_COUNT] = {
	[STORE_COND_FULL] = STORE_HEALTH_DEGRADED,
	[STORE_COND_LOW_SPACE] = STORE_HEALTH_DEGRADED,
	[STORE_COND_WRITE] = STORE_HEALTH_DEGRADED,
	[STORE_COND_CORRUPT] = STORE_HEALTH_FAILING,
	[STORE_COND_UNREACHABLE] = STORE_HEALTH_FAILING,
};

struct store_health *store_health_new(void)
{
	struct store_health *h = calloc(1, sizeof *h);
	if (h == NULL)
		return NULL;
	if (pthread_mutex_init(&h->mu, NULL) != 0) {
		free(h);
		return NULL;
	}
	return h;
}

void store_health_free(struct store_health *h)
{
	if (h == NULL)
		return;
	pthread_mutex_destroy(&h->mu);
	free(h);
}

static bool valid(enum store_cond cond)
{
	return (unsigned)cond < STORE_COND_COUNT;
}

void store_health_set(struct store_health *h, enum store_cond cond, const char *detail,
		      int64_t now_ms)
{
	if (h == NULL || !valid(cond))
		return;
	unsigned bit = 1u << cond;
	pthread_mutex_lock(&h->mu);
	unsigned conds = atomic_load_explicit(&h->conds, memory_order_relaxed);
	bool was_on = (conds & bit) != 0;
	snprintf(h->detail[cond], sizeof h->detail[cond], "%s", detail ? detail : "");
	if (!was_on) {
		h->since[cond] = now_ms;
		atomic_store_explicit(&h->conds, conds | bit, memory_order_relaxed);
	}
	pthread_mutex_unlock(&h->mu);
	if (!was_on)
		log_error("store condition on: %s reason=\"%s\"", names[cond], detail ? detail : "");
}

void store_health_unreachable(struct store_health *h, const char *detail, int64_t now_ms)
{
	char why[STORE_HEALTH_REASON_MAX];
	snprintf(why, sizeof why, "the database server cannot be reached (%.150s)",
		 detail ? detail : "");
	store_health_set(h, STORE_COND_UNREACHABLE, why, now_ms);
}

void store_health_clear(struct store_health *h, enum store_cond cond)
{
	if (h == NULL || !valid(cond))
		return;
	unsigned bit = 1u << cond;
	if ((atomic_load_explicit(&h->conds, memory_order_relaxed) & bit) == 0)
		return;
	pthread_mutex_lock(&h->mu);
	unsigned conds = atomic_load_explicit(&h->conds, memory_order_relaxed);
	bool was_on = (conds & bit) != 0;
	atomic_store_explicit(&h->conds, conds & ~bit, memory_order_relaxed);
	h->detail[cond][0] = '\0';
	h->since[cond] = 0;
	pthread_mutex_unlock(&h->mu);
	if (was_on)
		log_info("store condition off: %s", names[cond]);
}

bool store_health_has(const struct store_health *h, enum store_cond cond)
{
	if (h == NULL || !valid(cond))
		return false;
	struct store_health *m = (struct store_health *)h;
	return (atomic_load_explicit(&m->conds, memory_order_relaxed) & (1u << cond)) != 0;
}

void store_health_read(struct store_health *h, struct store_health_view *out)
{
	memset(out, 0, sizeof *out);
	if (h == NULL)
		return;
	pthread_mutex_lock(&h->mu);
	unsigned conds = atomic_load_explicit(&h->conds, memory_order_relaxed);
	out->conds = conds;
	int worst = -1;
	for (int c = 0; c < STORE_COND_COUNT; c++) {
		if ((conds & (1u << c)) == 0)
			continue;
		/* The worst level wins; among equals, the first in the enum. */
		if (worst < 0 || levels[c] > levels[worst])
			worst = c;
	}
	if (worst >= 0) {
		out->level = levels[worst];
		/* "name: detail", the detail cut to fit. */
		size_t k = (size_t)snprintf(out->reason, sizeof out->reason, "%s: ", names[worst]);
		if (k < sizeof out->reason)
			memcpy(out->reason + k, h->detail[worst],
			       strnlen(h->detail[worst], sizeof out->reason - k - 1) + 1);
		out->reason[sizeof out->reason - 1] = '\0';
		out->since_ms = h->since[worst];
	}
	pthread_mutex_unlock(&h->mu);
}

enum store_health_level store_cond_level(enum store_cond cond)
{
	return valid(cond) ? levels[cond] : STORE_HEALTH_FAILING;
}

const char *store_cond_name(enum store_cond cond)
{
	return valid(cond) ? names[cond] : "unknown";
}

const char *store_health_level_name(enum store_health_level level)
{
	switch (level) {
	case STORE_HEALTH_OK:
		return "ok";
	case STORE_HEALTH_DEGRADED:
		return "degraded";
	case STORE_HEALTH_FAILING:
		return "failing";
	}
	return "failing";
}
