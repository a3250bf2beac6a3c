/* dispatch_inbox: the one way into the dispatcher thread (see
 * dispatch_inbox.h). */
#include "dispatch_inbox.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"

int dispatch_inbox_init(struct dispatch_inbox *in)
{
	*in = (struct dispatch_inbox){.wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)};
	if (in->wakefd < 0)
		return -1;
	in->tail = &in->first;
	pthread_mutex_init(&in->mu, NULL);
	pthread_cond_init(&in->cv, NULL);
	return 0;
}

void dispatch_inbox_free(struct dispatch_inbox *in)
{
	close(in->wakefd);
	pthread_mutex_destroy(&in->mu);
	pthread_cond_destroy(&in->cv);
}

/* Wakes the dispatcher out of its wait. Under mu. */
static void wake(struct dispatch_inbox *in)
{
	uint64_t one = 1;
	/* Only EAGAIN can fail here (the counter is saturated): already awake. */
	if (write(in->wakefd, &one, sizeof one) < 0 && errno != EAGAIN)
		log_warn("dispatch: wakeup failed errno=%d", errno);
}

static bool empty(const struct dispatch_inbox *in)
{
	return in->first == NULL && in->sent.first == NULL;
}

void dispatch_inbox_put(struct dispatch_inbox *in, struct msg *m, bool op_done)
{
	pthread_mutex_lock(&in->mu);
	/* One wakeup per batch of news: the loop takes it all. */
	if (m != NULL && empty(in))
		wake(in);
	if (m != NULL) {
		m->next = NULL;
		*in->tail = m;
		in->tail = &m->next;
	}
	if (op_done) {
		in->ops_outstanding--;
		pthread_cond_broadcast(&in->cv);
	}
	pthread_mutex_unlock(&in->mu);
}

void dispatch_inbox_op_begin(struct dispatch_inbox *in)
{
	pthread_mutex_lock(&in->mu);
	in->ops_outstanding++;
	pthread_mutex_unlock(&in->mu);
}

void dispatch_inbox_sent(struct dispatch_inbox *in, struct dispatch_send_chain *back)
{
	pthread_mutex_lock(&in->mu);
	if (empty(in))
		wake(in);
	dispatch_send_chain_join(&in->sent, back);
	pthread_mutex_unlock(&in->mu);
}

void dispatch_inbox_rescan(struct dispatch_inbox *in)
{
	pthread_mutex_lock(&in->mu);
	in->rescan_requested = true;
	wake(in);
	pthread_mutex_unlock(&in->mu);
}

void dispatch_inbox_stop(struct dispatch_inbox *in)
{
	pthread_mutex_lock(&in->mu);
	in->stop_requested = true;
	wake(in);
	pthread_mutex_unlock(&in->mu);
}

void dispatch_inbox_stop_now(struct dispatch_inbox *in)
{
	pthread_mutex_lock(&in->mu);
	in->stop_now_requested = true;
	wake(in);
	pthread_mutex_unlock(&in->mu);
}

void dispatch_inbox_take(struct dispatch_inbox *in, struct dispatch_inbox_news *news)
{
	pthread_mutex_lock(&in->mu);
	news->msgs = in->first;
	in->first = NULL;
	in->tail = &in->first;
	news->sent = in->sent;
	in->sent.first = in->sent.last = NULL;
	news->rescan = in->rescan_requested;
	in->rescan_requested = false;
	news->stop = in->stop_requested;
	news->stop_now = in->stop_now_requested;
	pthread_mutex_unlock(&in->mu);
}

void dispatch_inbox_wait(struct dispatch_inbox *in, int timeout_ms)
{
	struct pollfd p = {.fd = in->wakefd, .events = POLLIN};
	int n = poll(&p, 1, timeout_ms);
	if (n < 0 && errno != EINTR)
		log_warn("dispatch: poll failed errno=%d", errno);
	uint64_t count;
	if (n > 0 && read(in->wakefd, &count, sizeof count) < 0 && errno != EAGAIN)
		log_warn("dispatch: wakeup read failed errno=%d", errno);
}

void dispatch_inbox_wait_ops(struct dispatch_inbox *in)
{
	pthread_mutex_lock(&in->mu);
	while (in->ops_outstanding > 0)
		pthread_cond_wait(&in->cv, &in->mu);
	pthread_mutex_unlock(&in->mu);
}
