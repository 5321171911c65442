/* tests/unit/query/test_cli.c: the vigil argument parser (query/cli.c) through a test
 * command: shared options only when the command takes them, the command's own options
 * (flags, strings, bounded numbers, aliases), words in order, times and formats read,
 * every usage error (a missing value, an unknown option, a number out of range, a bad
 * time or format) refused with exit 2 before the command runs, --help anywhere; and the
 * command table: every row named, described and runnable, names unique. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/time.h"
#include "query/cli.h"

struct own {
    bool flag;
    const char *str;
    uint64_t num;
    struct cli_list tags;
};

static void own_defaults(void *p)
{
    ((struct own *)p)->num = 7;
}

static const struct cli_opt own_opts[] = {
    { "--flag", "-f", CLI_FLAG, CLI_OFF(struct own, flag), 0, 0 },
    { "--str", NULL, CLI_STR, CLI_OFF(struct own, str), 0, 0 },
    { "--num", NULL, CLI_U64, CLI_OFF(struct own, num), 2, 100 },
    { "--tag", NULL, CLI_LIST, CLI_OFF(struct own, tags), 0, 0 },
    { NULL },
};

static int usages;
static void test_usage(FILE *f)
{
    (void)f;
    usages++;
}

/* What the command's run saw. */
static struct {
    int runs;
    struct cli_args a;
    struct own own;
    char words[8][32];
} seen;

static int test_run_fn(struct cli_args *a)
{
    seen.runs++;
    seen.a = *a;
    if (a->own) {
        seen.own = *(struct own *)a->own;
    }
    for (int i = 0; i < a->nwords && i < 8; i++) {
        snprintf(seen.words[i], sizeof(seen.words[i]), "%s", a->words[i]);
    }
    return 42;
}

static const struct cli_cmd test_cmd = {
    .name = "test",
    .synopsis = "",
    .takes = CLI_STORE | CLI_TIME | CLI_FORMAT | CLI_LIMIT,
    .opts = own_opts,
    .own_size = sizeof(struct own),
    .own_init = own_defaults,
    .usage = test_usage,
    .run = test_run_fn,
};

static const struct cli_cmd bare_cmd = {
    .name = "bare",
    .synopsis = "",
    .usage = test_usage,
    .run = test_run_fn,
};

static int run(const struct cli_cmd *c, int n, ...)
{
    char *argv[32];
    va_list ap;

    memset(&seen, 0, sizeof(seen));
    usages = 0;
    va_start(ap, n);
    for (int i = 0; i < n; i++) {
        argv[i] = va_arg(ap, char *);
    }
    va_end(ap);
    argv[n] = NULL;
    return cli_run(c, n, argv, "vigil");
}

static void test_shared_and_own(void **state)
{
    (void)state;
    assert_int_equal(run(&test_cmd, 14, "test", "pod=a", "--store", "/s", "-f", "--since",
                         "2024-05-01T13:00:00Z", "--format", "ndjson", "--num", "9", "b", "--limit",
                         "5"),
                     42);
    assert_int_equal(seen.runs, 1);
    assert_string_equal(seen.a.store_dir, "/s");
    assert_null(seen.a.config_path);
    assert_int_equal(seen.a.since, 1714568400LL * VG_NS_PER_SEC);
    assert_int_equal(seen.a.until, INT64_MAX);
    assert_int_equal(seen.a.format, OUT_NDJSON);
    assert_true(seen.a.has_limit);
    assert_int_equal(seen.a.limit, 5);
    assert_true(seen.own.flag);
    assert_null(seen.own.str);
    assert_int_equal(seen.own.num, 9);
    assert_int_equal(seen.a.nwords, 2);
    assert_string_equal(seen.words[0], "pod=a");
    assert_string_equal(seen.words[1], "b");
    /* Defaults; a lone "-" and single-dash words are words. */
    assert_int_equal(run(&test_cmd, 3, "test", "-", "-x"), 42);
    assert_int_equal(seen.own.num, 7);
    assert_false(seen.a.has_limit);
    assert_int_equal(seen.a.since, INT64_MIN);
    assert_int_equal(seen.a.format, OUT_TABLE);
    assert_int_equal(seen.a.nwords, 2);
    assert_string_equal(seen.words[0], "-");
}

/* --since/--until as a bare UTC clock time (README "Searching": --until 14:00): on the
 * other bound's date when that one is a date and time or an age, else today; both clock
 * times with until not after since: until on the next day. Bad clock times are usage
 * errors. */
static void test_clock_times(void **state)
{
    const int64_t s = VG_NS_PER_SEC;
    const int64_t day = 86400 * s;
    (void)state;

    assert_int_equal(
        run(&test_cmd, 5, "test", "--since", "2024-05-01T13:00:00Z", "--until", "14:00"), 42);
    assert_int_equal(seen.a.since, 1714568400LL * s);
    assert_int_equal(seen.a.until, (1714568400LL + 3600) * s);
    assert_int_equal(
        run(&test_cmd, 5, "test", "--since", "09:30:15", "--until", "2024-05-01T23:00:00+02:00"),
        42);
    assert_int_equal(seen.a.since, (1714521600LL + 9 * 3600 + 30 * 60 + 15) * s);
    /* Today: against the clock the command read (a.now). */
    assert_int_equal(run(&test_cmd, 3, "test", "--until", "14:00"), 42);
    int64_t today = seen.a.now - (seen.a.now % day);
    assert_int_equal(seen.a.until, today + 14 * 3600 * s);
    assert_int_equal(seen.a.since, INT64_MIN);
    assert_int_equal(run(&test_cmd, 5, "test", "--since", "13:00", "--until", "14:00"), 42);
    today = seen.a.now - (seen.a.now % day);
    assert_int_equal(seen.a.since, today + 13 * 3600 * s);
    assert_int_equal(seen.a.until, today + 14 * 3600 * s);
    assert_int_equal(run(&test_cmd, 5, "test", "--since", "23:00", "--until", "01:00"), 42);
    today = seen.a.now - (seen.a.now % day);
    assert_int_equal(seen.a.since, today + 23 * 3600 * s);
    assert_int_equal(seen.a.until, today + day + 3600 * s);
    /* An age as the other bound: its date. */
    assert_int_equal(run(&test_cmd, 5, "test", "--since", "1d", "--until", "00:00:01"), 42);
    int64_t then = seen.a.now - day;
    assert_int_equal(seen.a.until, then - (then % day) + s);
    const char *bad[] = {
        "24:00", "14:60", "14:00:60", "1:00", "14:0", "14:00:0", "14-00", "14:00Z"
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(run(&test_cmd, 3, "test", "--until", bad[i]), CLI_USAGE);
        assert_int_equal(seen.runs, 0);
    }
}

static void test_usage_errors(void **state)
{
    (void)state;
    assert_int_equal(run(&test_cmd, 2, "test", "--str"), CLI_USAGE); /* needs a value */
    assert_int_equal(run(&test_cmd, 2, "test", "--since"), CLI_USAGE);
    assert_int_equal(run(&test_cmd, 2, "test", "--nope"), CLI_USAGE);
    assert_int_equal(usages, 1); /* an unknown option shows the usage */
    assert_int_equal(run(&test_cmd, 3, "test", "--num", "1"), CLI_USAGE);   /* below min */
    assert_int_equal(run(&test_cmd, 3, "test", "--num", "101"), CLI_USAGE); /* above max */
    assert_int_equal(run(&test_cmd, 3, "test", "--num", "x"), CLI_USAGE);
    assert_int_equal(run(&test_cmd, 3, "test", "--limit", "-1"), CLI_USAGE);
    assert_int_equal(run(&test_cmd, 3, "test", "--until", "someday"), CLI_USAGE);
    assert_int_equal(run(&test_cmd, 3, "test", "--format", "xml"), CLI_USAGE);
    assert_int_equal(seen.runs, 0);
    /* A command that does not take the shared options refuses them. */
    assert_int_equal(run(&bare_cmd, 3, "bare", "--store", "/s"), CLI_USAGE);
    assert_int_equal(run(&bare_cmd, 2, "bare", "-c"), 42); /* then a word */
}

/* A list option takes every value given, in order, up to CLI_LIST_MAX. */
static void test_list_option(void **state)
{
    char *argv[2 * CLI_LIST_MAX + 4];
    int n = 0;

    (void)state;
    assert_int_equal(run(&test_cmd, 5, "test", "--tag", "a", "--tag", "b"), 42);
    assert_int_equal(seen.own.tags.n, 2);
    assert_string_equal(seen.own.tags.v[0], "a");
    assert_string_equal(seen.own.tags.v[1], "b");
    argv[n++] = "test";
    for (int i = 0; i <= CLI_LIST_MAX; i++) {
        argv[n++] = "--tag";
        argv[n++] = "x";
    }
    argv[n] = NULL;
    seen.runs = 0;
    assert_int_equal(cli_run(&test_cmd, n, argv, "vigil"), CLI_USAGE);
    assert_int_equal(seen.runs, 0);
}

static void test_help_anywhere(void **state)
{
    (void)state;
    assert_int_equal(run(&test_cmd, 4, "test", "--num", "1000", "--help"), CLI_OK);
    assert_int_equal(usages, 1);
    assert_int_equal(seen.runs, 0);
    assert_int_equal(run(&bare_cmd, 2, "bare", "-h"), CLI_OK);
}

static void test_table(void **state)
{
    size_t n = 0;

    (void)state;
    for (size_t i = 0; cli_commands[i]; i++, n++) {
        const struct cli_cmd *c = cli_commands[i];
        assert_non_null(c->name);
        assert_non_null(c->synopsis);
        assert_non_null(c->usage);
        assert_non_null(c->run);
        assert_ptr_equal(cli_find(c->name), c);
        assert_true(!c->opts || c->own_size > 0);
        for (size_t j = 0; j < i; j++) {
            assert_string_not_equal(cli_commands[j]->name, c->name);
        }
    }
    assert_true(n >= 10);
    assert_null(cli_find("nosuch"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shared_and_own), cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_clock_times),    cmocka_unit_test(test_list_option),
        cmocka_unit_test(test_help_anywhere),  cmocka_unit_test(test_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
