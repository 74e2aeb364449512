/*
 * thread.c: names for the gateway's own threads.  `top -H`, `perf top
 * --sort comm`, /proc/PID/task/TID/comm and gdb then tell the store writer,
 * the checkpointer and libuv's pool apart from the event loop, which keeps
 * the process's name; unnamed, every thread reads "chela".
 */
#include <pthread.h>

#include "core/core.h"

void ch_thread_set_name(const char *name)
{
    char buf[16]; /* Linux keeps 15 bytes and the NUL */
    size_t i;

    for (i = 0; i < sizeof(buf) - 1 && name[i]; i++)
        buf[i] = name[i];
    buf[i] = '\0';
    (void)pthread_setname_np(pthread_self(), buf); /* cosmetic: never fails a caller */
}
