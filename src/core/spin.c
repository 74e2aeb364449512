/*
 * spin.c: how long a thread busy-polls before it sleeps.
 *
 * Waking a sleeping thread on another core costs 30-40 us on a VM whose
 * idle vCPUs halt (bench/wakeup.sh: an eventfd round trip between two
 * threads, 63-67 us at p50 sleeping, 2-3 us polling), and one agent turn
 * hands work between the loop and the store writer four times.  A thread that polls for a short
 * while before it sleeps catches the answer without that cost, but polling
 * burns a core, so the budget is learnt the way Linux's cpuidle-haltpoll
 * and KVM's halt polling learn theirs: a wait that ended within the
 * maximum grows the budget, one that outlasted it shrinks the budget, so a
 * thread whose work arrives rarely (an LLM answering in seconds, an idle
 * gateway) stops polling after a few waits.
 *
 * Polling pays only while a core is free.  Under load (an agent benchmark
 * at concurrency 64 on two cores: the loop busy 85% of the time, the
 * writer 40%, the upstream and the load generator the rest) a thread that
 * polls when it runs out of work keeps its core from going idle, so the
 * scheduler does not move the writer, or the upstream the loop waits for,
 * onto it: same binary, alternating, 8,476-8,767 turns/s without polling
 * against 7,585-8,060 with it.  So the loop measures how busy it is over
 * 10 ms windows (its CPU time less its polling: most of its work runs in
 * libuv's poll phase, between any two hooks it has), and above 70% no
 * thread of the process polls; the budget learnt is kept for when the
 * load falls.
 *
 * Polling also pays only while its own core stays free.  Each poll yields
 * (sched_yield) so that a short runner there goes first; but beside a
 * CPU-bound thread, another process's or a second poller's, the yield
 * hands over a whole time slice (milliseconds), and the work the poller
 * waits for, arriving meanwhile, waits for the slice to end, where a
 * sleeping thread would have been woken ahead of it.  So a yield that
 * comes back after more than CH_SPIN_TAKEN_NS ends the poll, and the
 * thread does not poll again for a window (ch_spin_yielded).  That time is
 * not counted as polling either: counted, it made a loop that was busy
 * all the time look idle to the saturation rule (measured: two CPU hogs
 * beside a unit test's loop, 5-10 ms of "polling" in 1-3 polls).
 */
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "core/core.h"

void ch_spin_init(struct ch_spin *sp, uint64_t max_ns)
{
    memset(sp, 0, sizeof(*sp));
    sp->max_ns = max_ns;
}

uint64_t ch_spin_grow_start(const struct ch_spin *sp)
{
    /* haltpoll starts at a quarter of its maximum (50 of 200 us). */
    return sp->max_ns / 4 > 0 ? sp->max_ns / 4 : sp->max_ns;
}

void ch_spin_learn(struct ch_spin *sp, uint64_t waited_ns)
{
    uint64_t start = ch_spin_grow_start(sp);

    if (sp->max_ns == 0)
        return;
    if (waited_ns <= sp->budget_ns) {
        sp->hits++; /* caught while polling: the budget is right */
        return;
    }
    if (waited_ns <= sp->max_ns) {
        /* Slept, but not for long: poll longer next time. */
        sp->budget_ns = sp->budget_ns ? CH_MIN(sp->budget_ns * 2, sp->max_ns) : start;
        sp->grows++;
        return;
    }
    /* Outlasted the maximum: the polling was wasted. */
    sp->budget_ns /= 2;
    if (sp->budget_ns < start)
        sp->budget_ns = 0;
    sp->shrinks++;
}

static atomic_bool process_saturated;

uint64_t ch_spin_thread_cpu_ns(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void ch_spin_note(struct ch_spin *sp, uint64_t now_ns, uint64_t (*cpu_ns)(void))
{
    uint64_t span, cpu, busy;

    if (sp->win_start_ns == 0 || now_ns < sp->win_start_ns) {
        /* The first window; a new publisher starts the process unsaturated. */
        if (sp->publish && sp->win_start_ns == 0)
            atomic_store_explicit(&process_saturated, false, memory_order_relaxed);
        sp->win_start_ns = now_ns;
        sp->win_cpu_ns = cpu_ns();
        sp->win_spin_ns = sp->spin_ns;
        return;
    }
    span = now_ns - sp->win_start_ns;
    if (span < CH_SPIN_WINDOW_NS)
        return;
    /* CPU time (one system call a window), less the time spent polling. */
    cpu = cpu_ns();
    busy = cpu > sp->win_cpu_ns ? cpu - sp->win_cpu_ns : 0;
    busy = busy > sp->spin_ns - sp->win_spin_ns ? busy - (sp->spin_ns - sp->win_spin_ns) : 0;
    sp->saturated = busy * 100u > span * CH_SPIN_SATURATED_PCT;
    if (sp->publish)
        atomic_store_explicit(&process_saturated, sp->saturated, memory_order_relaxed);
    sp->win_start_ns = now_ns;
    sp->win_cpu_ns = cpu;
    sp->win_spin_ns = sp->spin_ns;
}

bool ch_spin_process_saturated(void)
{
    return atomic_load_explicit(&process_saturated, memory_order_relaxed);
}

uint64_t ch_spin_budget(struct ch_spin *sp)
{
    if (!sp->budget_ns)
        return 0;
    if (sp->saturated || ch_spin_process_saturated()) {
        sp->skipped++;
        return 0;
    }
    if (sp->taken_until_ns) {
        if (ch_mono_ns() < sp->taken_until_ns)
            return 0;
        sp->taken_until_ns = 0;
    }
    return sp->budget_ns;
}

bool ch_spin_yielded(struct ch_spin *sp, uint64_t gap_ns)
{
    if (gap_ns <= CH_SPIN_TAKEN_NS)
        return false;
    sp->taken++;
    sp->taken_until_ns = ch_mono_ns() + CH_SPIN_WINDOW_NS;
    return true;
}
