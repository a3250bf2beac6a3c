/* pending: one pending delivery as the dispatcher holds it (ids and
 * schedule, no payload). The dispatcher's type; the store fills it
 * (store_pending_page_endpoint, store_dlq_retry_one) and ingest hands new ones over. */
#ifndef HOOKD_PENDING_H
#define HOOKD_PENDING_H

#include <stdbool.h>
#include <stdint.h>

#include "model.h"

struct pending {
	int64_t seq;            /* the store's row for it (store.h: may be reused once
				 * deleted): with id, the dispatcher's key (holds), and
				 * updates find the row by both (0: by id) */
	char id[ID_MAX];
	char event_id[ID_MAX];
	char endpoint_id[ID_MAX];
	/* Its row waits for the retry of the batch it last went in (a failed
	 * batch recorded it with a retry time: batch_id set, next_attempt_at
	 * after updated_at): a batched endpoint sends it again with the rest
	 * of that batch, under its id (store_batch_members, docs/api.md#batches). */
	bool batch_wait;
	int attempt_count;
	int schedule_index;
	int64_t next_attempt_at;
};

#endif
