/*
 * store/writer_wait.c: how the writer thread waits for its next batch
 * (store/writer.c runs it): asleep on the condvar, which the loop signals
 * only for a sleeping writer, after polling the queue for a while when
 * busy polling is on (gateway.busyPollMicros, core/spin.c;
 * docs/architecture.md "Busy polling before a sleep").
 */
#include <sched.h>

#include "store/internal.h"

/* Sleep on `cond`, flagged so the loop signals only a sleeping writer. */
static void wait_cond(struct ch_store *s, uint64_t timeout_ns)
{
    s->writer_waiting = true;
    if (timeout_ns)
        (void)uv_cond_timedwait(&s->cond, &s->mu, timeout_ns);
    else
        uv_cond_wait(&s->cond, &s->mu);
    s->writer_waiting = false;
}

/* The writer's only peer is the loop thread, which runs on the same CPUs:
 * confined to one, a polling writer would only keep the loop off it. */
int ch_writer_cpus(void)
{
    cpu_set_t set;

    if (sched_getaffinity(0, sizeof(set), &set) != 0)
        return 1;
    return CPU_COUNT(&set);
}

/* With mu held: poll the queue (mu released) for up to the learnt budget,
 * as a thread whose next job is usually an answer away (gateway.busyPollMicros,
 * core/spin.c).  The loop does not signal a writer that is not asleep. */
static void poll_queue(struct ch_store *s, uint64_t start)
{
    uint64_t budget = s->spin.budget_ns; /* ch_spin_budget: nonzero */
    uint64_t prev = start, now = start, lost = 0;

    uv_mutex_unlock(&s->mu);
    while (atomic_load_explicit(&s->q_urgent_hint, memory_order_acquire) == 0 &&
           !atomic_load_explicit(&s->stop_hint, memory_order_relaxed) && now - start < budget) {
        sched_yield(); /* anything runnable here goes first */
        now = uv_hrtime();
        if (now - prev > CH_SPIN_TAKEN_NS) {
            lost = now - prev; /* another thread's time slice (ch_spin_yielded) */
            break;
        }
        prev = now;
    }
    uv_mutex_lock(&s->mu);
    /* With mu held: ch_store_stats reads these. */
    if (lost)
        (void)ch_spin_yielded(&s->spin, lost);
    s->spin.spin_ns += now - start - lost;
}

/* With mu held: wait until there is a batch to run (true) or the store is
 * stopping with an empty queue (false).  Only lazy jobs queued: sleep
 * until their deadline unless an urgent one arrives first.  With busy
 * polling, the wait for an urgent job is timed so the policy learns. */
bool ch_writer_wait_for_work(struct ch_store *s)
{
    uint64_t now, start = 0, deadline;
    bool timing = s->spin.max_ns > 0; /* this wait is still to be learnt from */

    for (;;) {
        if (s->q_urgent > 0 || (s->q_head && s->stopping)) {
            if (timing && start)
                ch_spin_learn(&s->spin, uv_hrtime() - start);
            return true;
        }
        if (s->stopping)
            return false;
        now = uv_hrtime();
        if (timing && !start) {
            start = now;
            if (ch_spin_budget(&s->spin)) {
                poll_queue(s, start);
                continue;
            }
        }
        deadline = 0;
        if (s->q_head) {
            if (now >= s->lazy_due_ns)
                return true;
            deadline = s->lazy_due_ns;
        }
        if (timing && now - start >= s->spin.max_ns) {
            ch_spin_learn(&s->spin, UINT64_MAX); /* outlasted the maximum */
            timing = false;
        } else if (timing && (!deadline || start + s->spin.max_ns < deadline)) {
            deadline = start + s->spin.max_ns; /* wake to learn, then sleep on */
        }
        wait_cond(s, deadline ? deadline - now : 0);
    }
}
