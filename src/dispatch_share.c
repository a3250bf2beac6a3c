/* dispatch_share: TLS sessions and DNS answers shared by every sender (see
 * dispatch_share.h). libcurl calls the lock callbacks from whichever sender
 * thread runs a transfer; each kind of data has its own mutex, so a session
 * lookup never waits for a DNS one. */
#include "dispatch_share.h"

#include <pthread.h>
#include <stdlib.h>

#include "log.h"

struct dispatch_share {
	CURLSH *sh;
	/* One per curl_lock_data: the share's own (CURL_LOCK_DATA_SHARE),
	 * SSL_SESSION and DNS are the ones used. */
	pthread_mutex_t mu[CURL_LOCK_DATA_LAST];
};

static pthread_mutex_t *mutex_of(void *ud, curl_lock_data data)
{
	struct dispatch_share *s = ud;
	if ((int)data < 0 || (int)data >= CURL_LOCK_DATA_LAST)
		return NULL;
	return &s->mu[data];
}

static void on_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *ud)
{
	(void)h;
	(void)access; /* one mutex for shared and single access: short sections */
	pthread_mutex_t *mu = mutex_of(ud, data);
	if (mu != NULL)
		pthread_mutex_lock(mu);
}

static void on_unlock(CURL *h, curl_lock_data data, void *ud)
{
	(void)h;
	pthread_mutex_t *mu = mutex_of(ud, data);
	if (mu != NULL)
		pthread_mutex_unlock(mu);
}

struct dispatch_share *dispatch_share_new(void)
{
	struct dispatch_share *s = calloc(1, sizeof *s);
	if (s == NULL)
		return NULL;
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&s->mu[i], NULL);
	s->sh = curl_share_init();
	if (s->sh == NULL ||
	    curl_share_setopt(s->sh, CURLSHOPT_LOCKFUNC, on_lock) != CURLSHE_OK ||
	    curl_share_setopt(s->sh, CURLSHOPT_UNLOCKFUNC, on_unlock) != CURLSHE_OK ||
	    curl_share_setopt(s->sh, CURLSHOPT_USERDATA, s) != CURLSHE_OK ||
	    curl_share_setopt(s->sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) != CURLSHE_OK ||
	    curl_share_setopt(s->sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) != CURLSHE_OK) {
		log_error("dispatch: libcurl refused the shared TLS session and DNS caches");
		dispatch_share_free(s);
		return NULL;
	}
	return s;
}

CURLSH *dispatch_share_handle(const struct dispatch_share *s)
{
	return s->sh;
}

void dispatch_share_free(struct dispatch_share *s)
{
	if (s == NULL)
		return;
	if (s->sh != NULL && curl_share_cleanup(s->sh) != CURLSHE_OK) {
		/* A handle still uses it: its locks must outlive it. */
		log_warn("dispatch: the shared caches were still in use at exit");
		return;
	}
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&s->mu[i]);
	free(s);
}
