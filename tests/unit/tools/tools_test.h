/*
 * tools_test.h: helpers shared by the tools-layer unit tests, on top of
 * test_util.h (case files and directories).  Test scaffolding uses libc
 * malloc so chela's allocator counts only the code under test.
 */
#ifndef CH_TOOLS_TEST_H
#define CH_TOOLS_TEST_H

#include <string.h>

#include "test_util.h"

#include "tools/internal.h"

/* Fail with both texts shown when they differ. */
static inline void texpect_eq(const char *what, const char *got, const char *want)
{
    if (strcmp(got, want) != 0)
        fail_msg("%s:\n--- got ---\n%s\n--- want ---\n%s\n---", what, got, want);
}

#endif
