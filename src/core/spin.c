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
 */
#include <string.h>

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
