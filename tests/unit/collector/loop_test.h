/* tests/unit/collector/loop_test.h: running a libuv loop until a condition holds, for
 * the collector's loop tests. A hang fails the test after 10 s times VG_TIMEOUT_MULT:
 * a bug, never a slow machine's fault (no test asserts on how long something took).
 * Static inline: each test file includes it. */
#ifndef VG_TESTS_COLLECTOR_LOOP_TEST_H
#define VG_TESTS_COLLECTOR_LOOP_TEST_H

#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <uv.h>

/* VG_TIMEOUT_MULT, or 1. */
static inline int loop_test_mult(void)
{
    const char *m = getenv("VG_TIMEOUT_MULT");
    int v = m ? atoi(m) : 0;
    return v > 0 ? v : 1;
}

static inline int64_t loop_test_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs (fx)->loop until cond holds. The fixture keeps a repeating timer on the loop so
 * that UV_RUN_ONCE returns while cond is polled. */
#define RUN_UNTIL(fx, cond)                                           \
 do {                                                                 \
  int64_t deadline_ = loop_test_mono_ms() + 10000 * loop_test_mult(); \
  while (!(cond)) {                                                   \
   if (loop_test_mono_ms() > deadline_) {                             \
    fail_msg("timed out waiting for %s", #cond);                      \
   }                                                                  \
   uv_run(&(fx)->loop, UV_RUN_ONCE);                                  \
  }                                                                   \
 } while (0)

#endif
