/* dispatch_inbox: messages come out in order with the finished requests and
 * the flags, one wakeup per batch of news, and the stop waits for every
 * counted op. */
#include <criterion/criterion.h>

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <unistd.h>

#include "dispatch_inbox.h"

/* The eventfd's counter (read and reset): how many wakeups were written. */
static uint64_t wakeups(struct dispatch_inbox *in)
{
	uint64_t n = 0;
	if (read(in->wakefd, &n, sizeof n) < 0)
		cr_assert_eq(errno, EAGAIN);
	return n;
}

Test(inbox, news_come_out_in_order_with_one_wakeup_a_batch)
{
	struct dispatch_inbox in;
	cr_assert_eq(dispatch_inbox_init(&in), 0);
	struct msg m[3] = {{.kind = MSG_ENQUEUE}, {.kind = MSG_PAGE}, {.kind = MSG_RECORD}};
	struct dispatch_send_job j[3] = {{0}};
	for (int i = 0; i < 3; i++)
		dispatch_inbox_put(&in, &m[i], false);
	struct dispatch_send_chain back = {0};
	dispatch_send_chain_add(&back, &j[0]);
	dispatch_send_chain_add(&back, &j[1]);
	dispatch_inbox_sent(&in, &back);
	cr_expect_null(back.first, "the sender's chain was taken over");
	dispatch_send_chain_add(&back, &j[2]);
	dispatch_inbox_sent(&in, &back);
	cr_expect_eq(wakeups(&in), 1, "one wakeup while the inbox was not empty");

	struct dispatch_inbox_news news;
	dispatch_inbox_take(&in, &news);
	struct msg *got = news.msgs;
	for (int i = 0; i < 3; i++, got = got->next)
		cr_assert_eq(got, &m[i], "message %d in order", i);
	cr_expect_null(got);
	for (int i = 0; i < 3; i++)
		cr_expect_eq(dispatch_send_chain_pop(&news.sent), &j[i], "request %d in order", i);
	cr_expect_null(dispatch_send_chain_pop(&news.sent));
	cr_expect_not(news.rescan);
	cr_expect_not(news.stop);

	/* Empty again: the next news wakes it again. */
	dispatch_inbox_take(&in, &news);
	cr_expect_null(news.msgs);
	cr_expect_null(news.sent.first);
	dispatch_inbox_put(&in, &m[0], false);
	cr_expect_eq(wakeups(&in), 1);
	dispatch_inbox_take(&in, &news);
	cr_expect_eq(news.msgs, &m[0]);
	dispatch_inbox_free(&in);
}

Test(inbox, a_rescan_is_taken_once_and_the_stops_stay)
{
	struct dispatch_inbox in;
	cr_assert_eq(dispatch_inbox_init(&in), 0);
	dispatch_inbox_rescan(&in);
	dispatch_inbox_stop(&in);
	cr_expect_eq(wakeups(&in), 2, "each rescan and stop wakes");
	struct dispatch_inbox_news news;
	dispatch_inbox_take(&in, &news);
	cr_expect(news.rescan);
	cr_expect(news.stop);
	cr_expect_not(news.stop_now);
	dispatch_inbox_stop_now(&in);
	cr_expect_eq(wakeups(&in), 1, "the stop now wakes too");
	dispatch_inbox_take(&in, &news);
	cr_expect_not(news.rescan, "a rescan is taken once");
	cr_expect(news.stop, "the stop stays requested");
	cr_expect(news.stop_now, "and so does the stop now");
	dispatch_inbox_free(&in);
}

struct done_ctx {
	struct dispatch_inbox *in;
	struct msg m[2];
	int finished;            /* ops finished before their put */
};

/* The commit thread: two ops finish, the first with no message. */
static void *finish_ops(void *arg)
{
	struct done_ctx *c = arg;
	usleep(20 * 1000); /* the stop is waiting by now, most likely */
	__atomic_add_fetch(&c->finished, 1, __ATOMIC_SEQ_CST);
	dispatch_inbox_put(c->in, NULL, true);
	usleep(20 * 1000);
	__atomic_add_fetch(&c->finished, 1, __ATOMIC_SEQ_CST);
	dispatch_inbox_put(c->in, &c->m[1], true);
	return NULL;
}

Test(inbox, the_stop_waits_for_every_counted_op)
{
	struct dispatch_inbox in;
	cr_assert_eq(dispatch_inbox_init(&in), 0);
	struct done_ctx c = {.in = &in, .m = {{.kind = MSG_PAGE}, {.kind = MSG_RECORD}}};
	dispatch_inbox_op_begin(&in);
	dispatch_inbox_op_begin(&in);
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, finish_ops, &c), 0);
	dispatch_inbox_wait_ops(&in);
	cr_expect_eq(__atomic_load_n(&c.finished, __ATOMIC_SEQ_CST), 2,
		     "returned only after both ops finished");
	pthread_join(t, NULL);
	struct dispatch_inbox_news news;
	dispatch_inbox_take(&in, &news);
	cr_expect_eq(news.msgs, &c.m[1], "the last op's message is in");
	cr_expect_null(news.msgs->next);
	dispatch_inbox_free(&in);
}
