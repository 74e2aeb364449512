/*
 * bench/wakeup.c: what handing work to a thread on another core costs on
 * this machine, the figure behind gateway.busyPollMicros
 * (docs/architecture.md, "Busy polling before a sleep").  Two threads
 * pinned to CPUs 0 and 1 pass a token back and forth through two eventfds
 * watched with epoll, as the event loop and the store writer do.  The
 * waiting side either sleeps in epoll_wait (timeout -1) or polls
 * (timeout 0, sched_yield between polls).  Prints the round trip's p50
 * and p99 over ROUNDS rounds, for both, with an optional pause between
 * rounds (argv[1], microseconds) so the sleeping core has time to go idle.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define ROUNDS 20000

static int to_peer, to_main;
static int polling;

static uint64_t now_ns(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void pin(int cpu)
{
    cpu_set_t s;

    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    pthread_setaffinity_np(pthread_self(), sizeof(s), &s);
}

static int watch(int fd)
{
    int ep = epoll_create1(0);
    struct epoll_event e = {.events = EPOLLIN};

    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) != 0) {
        perror("epoll");
        exit(1);
    }
    return ep;
}

static void take(int ep, int fd)
{
    struct epoll_event e;
    uint64_t v;

    for (;;) {
        int n = epoll_wait(ep, &e, 1, polling ? 0 : -1);

        if (n == 1 && read(fd, &v, sizeof(v)) == sizeof(v))
            return;
        if (polling)
            sched_yield();
    }
}

static void give(int fd)
{
    uint64_t one = 1;

    if (write(fd, &one, sizeof(one)) != sizeof(one)) {
        perror("write");
        exit(1);
    }
}

static void *peer(void *arg)
{
    int ep = watch(to_peer);

    (void)arg;
    pin(1);
    for (int i = 0; i < ROUNDS; i++) {
        take(ep, to_peer);
        give(to_main);
    }
    close(ep);
    return NULL;
}

static int cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

static void run(int poll_mode, uint64_t pause_us)
{
    static uint64_t lat[ROUNDS];
    pthread_t t;
    int ep;

    polling = poll_mode;
    to_peer = eventfd(0, EFD_NONBLOCK);
    to_main = eventfd(0, EFD_NONBLOCK);
    ep = watch(to_main);
    pthread_create(&t, NULL, peer, NULL);
    pin(0);
    usleep(1000);
    for (int i = 0; i < ROUNDS; i++) {
        uint64_t t0;

        if (pause_us)
            for (t0 = now_ns(); now_ns() - t0 < pause_us * 1000u;)
                ;
        t0 = now_ns();
        give(to_peer);
        take(ep, to_main);
        lat[i] = now_ns() - t0;
    }
    pthread_join(t, NULL);
    close(ep);
    close(to_peer);
    close(to_main);
    qsort(lat, ROUNDS, sizeof(lat[0]), cmp);
    printf("%-8s pause %4llu us: round trip p50 %6.1f us, p99 %6.1f us\n", poll_mode ? "polling" : "sleeping",
           (unsigned long long)pause_us, lat[ROUNDS / 2] / 1e3, lat[ROUNDS * 99 / 100] / 1e3);
}

int main(int argc, char **argv)
{
    uint64_t pause_us = argc > 1 ? strtoull(argv[1], NULL, 10) : 0;

    if (sysconf(_SC_NPROCESSORS_ONLN) < 2) {
        printf("wakeup: needs two CPUs\n");
        return 0;
    }
    run(0, pause_us);
    run(1, pause_us);
    return 0;
}
