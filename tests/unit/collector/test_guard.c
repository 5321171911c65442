/* tests/unit/collector/test_guard.c: the guard against strangers (collector/guard.c),
 * as the pure function of addresses and times it is.
 *
 * Covered: the per-address and global handshake limits (and guard_done freeing a
 * place), the accept rate with its burst, IPv6 keyed by /64 and IPv4-mapped IPv6 as
 * IPv4, sampling (the first GUARD_SAMPLES refusals of an address one by one, at most
 * GUARD_MAX_IMMEDIATE in all), summaries at a flush (only what was not recorded, the
 * busiest first, GUARD_MAX_SUMMARIES then one for the rest, counts starting over), idle
 * addresses leaving the table while those with a handshake in progress keep their
 * slot, and a full table sending new addresses to the overflow entry. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "collector/guard.h"

#define SEC 1000000000LL

static struct guard_addr v4(uint32_t host_order)
{
    struct sockaddr_in sa = { .sin_family = AF_INET };
    struct guard_addr a;

    sa.sin_addr.s_addr = htonl(host_order);
    guard_addr_from((const struct sockaddr *)&sa, &a);
    return a;
}

static struct guard_addr v6(const char *text)
{
    struct sockaddr_in6 sa = { .sin6_family = AF_INET6 };
    struct guard_addr a;

    assert_int_equal(inet_pton(AF_INET6, text, &sa.sin6_addr), 1);
    guard_addr_from((const struct sockaddr *)&sa, &a);
    return a;
}

static void cfg_init(struct guard *g, uint64_t total, uint64_t per_ip, uint64_t rate,
                     uint64_t burst)
{
    struct guard_cfg cfg = { total, per_ip, rate, burst, 60 * SEC };
    guard_init(g, &cfg);
}

static void test_handshake_limits(void **state)
{
    struct guard g;
    struct guard_addr a = v4(0x0a000001);
    struct guard_addr b = v4(0x0a000002);
    uint32_t s[8];
    uint32_t t;

    (void)state;
    cfg_init(&g, 4, 2, 0, 1);
    assert_int_equal(guard_admit(&g, &a, "10.0.0.1", 0, &s[0]), GUARD_OK);
    assert_int_equal(guard_admit(&g, &a, "10.0.0.1", 0, &s[1]), GUARD_OK);
    assert_int_equal(guard_pending_of(&g, s[0]), 2);
    /* The address has its two: refused, the others still admitted. */
    assert_int_equal(guard_admit(&g, &a, "10.0.0.1", 0, &t), GUARD_PER_IP);
    assert_int_equal(guard_admit(&g, &b, "10.0.0.2", 0, &s[2]), GUARD_OK);
    assert_int_equal(guard_admit(&g, &b, "10.0.0.2", 0, &s[3]), GUARD_OK);
    assert_int_equal(g.pending, 4);
    /* Four in all: the next must wait for one to end (the caller cuts one). */
    struct guard_addr c = v4(0x0a000003);
    assert_int_equal(guard_admit(&g, &c, "10.0.0.3", 0, &t), GUARD_FULL);
    guard_done(&g, s[0]);
    assert_int_equal(guard_pending_of(&g, s[1]), 1);
    assert_int_equal(guard_admit(&g, &c, "10.0.0.3", 0, &s[4]), GUARD_OK);
    assert_int_equal(guard_admit(&g, &a, "10.0.0.1", 0, &t), GUARD_FULL);
    guard_release(&g);
}

static void test_accept_rate(void **state)
{
    struct guard g;
    struct guard_addr a = v4(0x0a000001);
    struct guard_addr b = v4(0x0a000002);
    uint32_t s;

    (void)state;
    cfg_init(&g, 100, 100, 2, 3); /* 2 a second, 3 at once */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(guard_admit(&g, &a, "10.0.0.1", 10 * SEC, &s), GUARD_OK);
        guard_done(&g, s);
    }
    assert_int_equal(guard_admit(&g, &a, "10.0.0.1", 10 * SEC, &s), GUARD_RATE);
    /* Another address has its own budget. */
    assert_int_equal(guard_admit(&g, &b, "10.0.0.2", 10 * SEC, &s), GUARD_OK);
    guard_done(&g, s);
    /* Half a second later one more is due; not two. */
    assert_int_equal(guard_admit(&g, &a, "10.0.0.1", 10 * SEC + SEC / 2, &s), GUARD_OK);
    guard_done(&g, s);
    assert_int_equal(guard_admit(&g, &a, "10.0.0.1", 10 * SEC + SEC / 2, &s), GUARD_RATE);
    /* After a quiet while the whole burst is back. */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(guard_admit(&g, &a, "10.0.0.1", 20 * SEC, &s), GUARD_OK);
        guard_done(&g, s);
    }
    assert_int_equal(guard_admit(&g, &a, "10.0.0.1", 20 * SEC, &s), GUARD_RATE);
    guard_release(&g);
}

static void test_addresses(void **state)
{
    struct guard g;
    uint32_t s1;
    uint32_t s2;
    uint32_t s3;

    (void)state;
    cfg_init(&g, 100, 2, 0, 1);
    /* One /64: the same address for the guard. */
    struct guard_addr x = v6("2001:db8:1:2::1");
    struct guard_addr y = v6("2001:db8:1:2:ffff:1:2:3");
    struct guard_addr z = v6("2001:db8:1:3::1");
    assert_memory_equal(x.b, y.b, 16);
    assert_int_equal(guard_admit(&g, &x, "2001:db8:1:2::1", 0, &s1), GUARD_OK);
    assert_int_equal(guard_admit(&g, &y, "2001:db8:1:2:ffff:1:2:3", 0, &s2), GUARD_OK);
    assert_int_equal(s1, s2);
    assert_int_equal(guard_admit(&g, &y, "2001:db8:1:2:ffff:1:2:3", 0, &s3), GUARD_PER_IP);
    assert_int_equal(guard_admit(&g, &z, "2001:db8:1:3::1", 0, &s3), GUARD_OK);
    /* IPv4 as itself, mapped or not. */
    struct guard_addr m = v6("::ffff:192.0.2.7");
    struct guard_addr p = v4(0xc0000207);
    assert_memory_equal(m.b, p.b, 16);
    struct guard_addr q = v4(0xc0000208);
    assert_memory_not_equal(p.b, q.b, 16);
    guard_release(&g);
}

struct got {
    int n;
    struct guard_summary s[GUARD_MAX_SUMMARIES + 2];
    char ip[GUARD_MAX_SUMMARIES + 2][48];
};

static void on_summary(void *arg, const struct guard_summary *s)
{
    struct got *got = arg;

    assert_true(got->n < GUARD_MAX_SUMMARIES + 2);
    got->s[got->n] = *s;
    snprintf(got->ip[got->n], sizeof(got->ip[0]), "%s", s->ip ? s->ip : "(many)");
    got->n++;
}

static void test_sampling_and_summary(void **state)
{
    struct guard g;
    struct guard_addr a = v4(0x0a000001);
    struct guard_addr b = v4(0x0a000002);
    struct got got = { 0 };

    (void)state;
    cfg_init(&g, 100, 100, 0, 1);
    int now = 0;
    for (int i = 0; i < 10; i++) {
        now += guard_refused(&g, &a, "10.0.0.1", i < 5 ? GUARD_TLS : GUARD_RATE, LST_FORWARD, "why",
                             1000 + i);
    }
    assert_int_equal(now, GUARD_SAMPLES);
    /* b: only as many as are sampled, so nothing to summarize for it. */
    assert_true(guard_refused(&g, &b, "10.0.0.2", GUARD_TIMEOUT, LST_SYSLOG, "slow", 5000));
    assert_int_equal(guard_flush(&g, 0, on_summary, &got), 1);
    assert_string_equal(got.ip[0], "10.0.0.1");
    assert_int_equal(got.s[0].refused, 10);
    assert_int_equal(got.s[0].recorded, GUARD_SAMPLES);
    assert_int_equal(got.s[0].by_reason[GUARD_TLS], 5);
    assert_int_equal(got.s[0].by_reason[GUARD_RATE], 5);
    assert_int_equal(got.s[0].by_listener[LST_FORWARD], 10);
    assert_int_equal(got.s[0].first_ns, 1000);
    assert_int_equal(got.s[0].last_ns, 1009);
    /* The counts and the samples start over; idle addresses left the table. */
    assert_int_equal(guard_addrs(&g), 0);
    assert_true(guard_refused(&g, &a, "10.0.0.1", GUARD_TLS, LST_FORWARD, "again", 9000));
    got.n = 0;
    assert_int_equal(guard_flush(&g, 0, on_summary, &got), 0);
    guard_release(&g);
}

static void test_many_addresses(void **state)
{
    struct guard g;
    struct got got = { 0 };
    char ip[48];
    int immediate = 0;

    (void)state;
    cfg_init(&g, 100, 100, 0, 1);
    /* 100 addresses, address i refused 10 + i times: only GUARD_MAX_IMMEDIATE of all
     * refusals are recorded one by one. */
    for (uint32_t i = 0; i < 100; i++) {
        struct guard_addr a = v4(0x0b000000 + i);
        snprintf(ip, sizeof(ip), "11.0.0.%u", i);
        for (uint32_t k = 0; k < 10 + i; k++) {
            immediate += guard_refused(&g, &a, ip, GUARD_TLS, LST_HTTPS, "x", 1);
        }
    }
    assert_int_equal(immediate, GUARD_MAX_IMMEDIATE);
    assert_int_equal(guard_flush(&g, 0, on_summary, &got), GUARD_MAX_SUMMARIES + 1);
    /* The busiest first, one each; the rest in one. */
    assert_string_equal(got.ip[0], "11.0.0.99");
    assert_int_equal(got.s[0].refused, 109);
    for (int i = 1; i < GUARD_MAX_SUMMARIES; i++) {
        assert_true(got.s[i].refused - got.s[i].recorded <=
                    got.s[i - 1].refused - got.s[i - 1].recorded);
    }
    struct guard_summary *rest = &got.s[GUARD_MAX_SUMMARIES];
    assert_int_equal(rest->addrs, 100 - GUARD_MAX_SUMMARIES);
    assert_null(rest->ip);
    uint64_t total = 0;
    for (int i = 0; i <= GUARD_MAX_SUMMARIES; i++) {
        total += got.s[i].refused;
    }
    assert_int_equal(total, 100 * 10 + 99 * 100 / 2);
    guard_release(&g);
}

static void test_table_full(void **state)
{
    struct guard g;
    struct got got = { 0 };
    uint32_t held;
    uint32_t s;

    (void)state;
    cfg_init(&g, 1000000, 1, 0, 1);
    /* One address keeps a handshake going across flushes: its slot must stay. */
    struct guard_addr keep = v4(0x0c000000);
    assert_int_equal(guard_admit(&g, &keep, "12.0.0.0", 0, &held), GUARD_OK);
    for (uint32_t i = 1; i < GUARD_MAX_ADDRS; i++) {
        struct guard_addr a = v4(0x0c000000 + i);
        assert_int_equal(guard_admit(&g, &a, "12.x", 0, &s), GUARD_OK);
        assert_true(s != 0);
        guard_done(&g, s);
    }
    assert_int_equal(guard_addrs(&g), GUARD_MAX_ADDRS);
    /* Past the table: the overflow entry, with no per-address limit. */
    struct guard_addr over = v4(0x0d000000);
    assert_int_equal(guard_admit(&g, &over, "13.0.0.0", 0, &s), GUARD_OK);
    assert_int_equal(s, 0);
    assert_int_equal(guard_admit(&g, &over, "13.0.0.0", 0, &s), GUARD_OK);
    guard_done(&g, 0);
    guard_done(&g, 0);
    assert_false(guard_refused(&g, &over, "13.0.0.0", GUARD_TLS, LST_FORWARD, "x", 1));
    assert_int_equal(guard_flush(&g, 0, on_summary, &got), 1);
    assert_null(got.s[0].ip);
    assert_int_equal(got.s[0].refused, 1);
    /* The idle ones left; the one with a handshake in progress kept its slot. */
    assert_int_equal(guard_addrs(&g), 1);
    assert_int_equal(guard_pending_of(&g, held), 1);
    assert_int_equal(guard_admit(&g, &keep, "12.0.0.0", 0, &s), GUARD_PER_IP);
    guard_done(&g, held);
    assert_int_equal(g.pending, 0);
    /* Room again for new addresses. */
    assert_int_equal(guard_admit(&g, &over, "13.0.0.0", 0, &s), GUARD_OK);
    assert_true(s != 0);
    guard_done(&g, s);
    guard_release(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_limits), cmocka_unit_test(test_accept_rate),
        cmocka_unit_test(test_addresses),        cmocka_unit_test(test_sampling_and_summary),
        cmocka_unit_test(test_many_addresses),   cmocka_unit_test(test_table_full),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
