/* dispatch_clock: see dispatch_clock.h. */
#include "dispatch_clock.h"

#include <stdatomic.h>

#include "util.h"

/* 0 = the real clock; set only by tests. */
static _Atomic int64_t set_wall, set_mono;

int64_t dispatch_clock_now_ms(void)
{
	int64_t t = atomic_load_explicit(&set_wall, memory_order_relaxed);
	return t > 0 ? t : now_ms();
}

int64_t dispatch_clock_mono_ms(void)
{
	int64_t t = atomic_load_explicit(&set_mono, memory_order_relaxed);
	return t > 0 ? t : mono_ms();
}

void dispatch_clock_set(int64_t wall, int64_t mono)
{
	atomic_store(&set_wall, wall);
	atomic_store(&set_mono, mono);
}

void dispatch_clock_reset(void)
{
	dispatch_clock_set(0, 0);
}
