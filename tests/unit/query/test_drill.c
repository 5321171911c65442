/* tests/unit/query/test_drill.c: fire drill scenarios (query/drill_scn.c): the loader's
 * values and defaults, its errors (file:line:col and key, templates checked at load),
 * the templates (each variable, random values kept per name and run, in the documented
 * ranges), the run ids and the kept values' round trip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "query/drill.h"

#define S(x) ((struct span){ (const uint8_t *)(x), sizeof(x) - 1 })

static const char good[] = "name: t\n"
                           "description: d\n"
                           "steps:\n"
                           "  - name: one\n"
                           "    format: syslog\n"
                           "    agent: agent-node-1\n"
                           "    delay: 2s\n"
                           "    events: |\n"
                           "      {{now_syslog}} h sshd[1]: Failed password for root from "
                           "{{ip:a}} port 1 ssh2\n"
                           "    expect:\n"
                           "      - rule: SSH brute force from one address\n"
                           "        group: { src_ip: \"{{ip:a}}\" }\n"
                           "        page: [ oncall, chat ]\n"
                           "  - name: two\n"
                           "    events: '{\"m\": \"{{run}}\"}'\n"
                           "    expect:\n"
                           "      - { tag: attack.t1110, within: 5s, page_within: 7s }\n";

static void test_load_values_and_defaults(void **state)
{
    struct drill_scn *s = NULL;
    struct errbuf eb;
    (void)state;

    errbuf_clear(&eb);
    assert_int_equal(drill_scn_load_mem("t.yaml", S(good), &s, &eb), 0);
    assert_string_equal(s->name, "t");
    assert_int_equal(s->nsteps, 2);
    assert_string_equal(s->steps[0].format, "syslog");
    assert_string_equal(s->steps[0].agent, "agent-node-1");
    assert_string_equal(s->steps[0].listener, "forward");
    assert_int_equal(s->steps[0].delay_ns, 2000000000LL);
    assert_int_equal(s->steps[0].nexpect, 1);
    const struct drill_expect *x = &s->steps[0].expect[0];
    assert_string_equal(x->rule, "SSH brute force from one address");
    assert_null(x->tag);
    assert_int_equal(x->within_ns, 60000000000LL);       /* default 60s */
    assert_int_equal(x->page_within_ns, 120000000000LL); /* default 2m */
    assert_int_equal(x->npage, 2);
    assert_string_equal(x->page[1], "chat");
    assert_int_equal(x->group.n, 1);
    assert_string_equal(x->group.items[0].key, "src_ip");
    assert_string_equal(x->group.items[0].vals[0], "{{ip:a}}");
    assert_string_equal(s->steps[1].format, "ndjson");
    assert_int_equal(s->steps[1].delay_ns, 0);
    assert_string_equal(s->steps[1].expect[0].tag, "attack.t1110");
    assert_int_equal(s->steps[1].expect[0].within_ns, 5000000000LL);
    assert_int_equal(s->steps[1].expect[0].page_within_ns, 7000000000LL);
    assert_string_equal(s->text, good);
    drill_scn_free(s);
}

static void refused(const char *text, const char *msg)
{
    struct drill_scn *s = (struct drill_scn *)1;
    struct errbuf eb;

    errbuf_clear(&eb);
    assert_int_equal(drill_scn_load_mem("b.yaml", span_str(text), &s, &eb), VG_ECONFIG);
    assert_null(s);
    if (strstr(errbuf_msg(&eb), msg) == NULL) {
        fail_msg("expected '%s' in '%s'", msg, errbuf_msg(&eb));
    }
}

static void test_load_errors(void **state)
{
    (void)state;
    refused("steps:\n  - { name: s, events: x }\n", "b.yaml: missing required key 'name'");
    refused("name: x\nsteps: []\n", "b.yaml:2:8: 'steps'");
    refused("name: x\nsteps:\n  - { name: s, events: x, formt: syslog }\n",
            "b.yaml:3:27: unknown key 'steps[0].formt'");
    refused("name: x\nsteps:\n  - { name: s, events: x, format: csv }\n",
            "b.yaml:3:35: 'steps[0].format': expected one of ndjson, falco, k8s-audit, trivy, "
            "syslog, got 'csv'");
    refused("name: x\nsteps:\n  - { name: s, events: x, listener: syslog }\n",
            "'steps[0].listener': expected one of forward, https, got 'syslog'");
    refused("name: x\nsteps:\n  - { name: s, events: x, listener: https, format: syslog }\n",
            "'steps[0].listener': syslog lines are not shipped over HTTPS: listener forward");
    refused("name: x\nsteps:\n  - { name: s, events: '  ' }\n",
            "'steps[0].events': a step needs at least one event");
    refused("name: x\nsteps:\n  - name: s\n    events: |\n      a\n      b {{nwo}}\n",
            "b.yaml:4:13: 'steps[0].events': line 2 of the template: unknown template "
            "variable '{{nwo}}'");
    refused("name: x\nsteps:\n  - { name: s, events: 'a {{run' }\n",
            "line 1 of the template: '{{' without '}}' on its line");
    refused("name: x\nsteps:\n  - { name: s, events: x, expect: [ { within: 1s } ] }\n",
            "'steps[0].expect[0].rule': an expectation needs a rule or a tag");
    refused("name: x\nsteps:\n  - { name: s, events: x, expect: [ { rule: r, group: "
            "{ a: [ b, c ] } } ] }\n",
            "group value 'a' must be one string, not a list");
    refused("name: x\nsteps:\n  - { name: s, events: x, expect: [ { rule: r, group: "
            "{ a: '{{ip:}}' } } ] }\n",
            "unknown template variable '{{ip:}}'");
    refused("name: x\nsteps:\n  - { name: s, events: x, delay: 2h }\n", "'steps[0].delay'");
}

static void test_too_many_random_values(void **state)
{
    char text[8192];
    size_t n = (size_t)snprintf(text, sizeof(text), "name: x\nsteps:\n");
    (void)state;

    /* 65 distinct names over two steps: one run makes them all, so the loader counts
     * them across the scenario */
    for (int step = 0; step < 2; step++) {
        n += (size_t)snprintf(text + n, sizeof(text) - n, "  - name: s%d\n    events: '", step);
        for (int i = step * 33; i < step * 33 + 33 && i < 65; i++) {
            n += (size_t)snprintf(text + n, sizeof(text) - n, "{{hex:v%d}} ", i);
        }
        n += (size_t)snprintf(text + n, sizeof(text) - n, "'\n");
    }
    refused(text, "more than 64 random template variables");
}

static void test_render(void **state)
{
    struct drill_vars v = { 0 };
    struct buf out;
    struct errbuf eb;
    const int64_t now = 1796647238457351783LL; /* 2026-12-07T12:40:38.457351783Z */
    unsigned a, b, c, d;
    (void)state;

    buf_init(&out, 1 << 20);
    errbuf_clear(&eb);
    assert_int_equal(
        drill_render("{{run}}|{{now}}|{{now_syslog}}|{{now_ns}}", "drill-x", now, &v, &out, &eb),
        0);
    assert_string_equal(buf_cstr(&out), "drill-x|2026-12-07T12:40:38.457351783Z|Dec  7 12:40:38|"
                                        "1796647238457351783");
    assert_int_equal(v.n, 0);

    buf_reset(&out);
    assert_int_equal(
        drill_render("{{ip:a}} {{ip:a}} {{name:pod}} {{hex:c}}", "r", now, &v, &out, &eb), 0);
    assert_int_equal(v.n, 3);
    char ip1[32], ip2[32], name[64], hex[32];
    assert_int_equal(sscanf(buf_cstr(&out), "%31s %31s %63s %31s", ip1, ip2, name, hex), 4);
    assert_string_equal(ip1, ip2); /* one value per name and run */
    assert_int_equal(sscanf(ip1, "%u.%u.%u.%u", &a, &b, &c, &d), 4);
    assert_true(a == 198 && (b == 18 || b == 19) && c <= 255 && d >= 1 && d <= 254);
    assert_int_equal(strlen(name), 12);
    assert_int_equal(strncmp(name, "pod-", 4), 0);
    assert_int_equal(strspn(name + 4, "0123456789abcdef"), 8);
    assert_int_equal(strlen(hex), 12);
    assert_int_equal(strspn(hex, "0123456789abcdef"), 12);

    /* kept values render the same in another call (drill report) */
    struct buf kept;
    struct drill_vars back = { 0 };
    buf_init(&kept, 1 << 20);
    assert_int_equal(drill_vars_format(&v, &kept), 0);
    assert_int_equal(drill_vars_parse(buf_span(&kept), &back), 0);
    assert_int_equal(back.n, 3);
    buf_reset(&kept);
    assert_int_equal(
        drill_render("{{ip:a}} {{ip:a}} {{name:pod}} {{hex:c}}", "r", now, &back, &kept, &eb), 0);
    assert_string_equal(buf_cstr(&kept), buf_cstr(&out));
    assert_int_equal(drill_vars_parse(S("no equals sign\n"), &back), VG_EPARSE);
    assert_int_equal(back.n, 0);

    buf_reset(&out);
    assert_int_equal(drill_render("x {{bogus}}", "r", now, &v, &out, &eb), VG_EPARSE);
    assert_non_null(strstr(errbuf_msg(&eb), "unknown template variable '{{bogus}}'"));
    buf_release(&kept);
    buf_release(&out);
    drill_vars_release(&back);
    drill_vars_release(&v);
}

static void test_run_ids(void **state)
{
    char run[DRILL_RUN_ID_SIZE];
    char other[DRILL_RUN_ID_SIZE];
    int64_t t = 0;
    const int64_t now = 1796647238457351783LL;
    (void)state;

    drill_run_id(now, run);
    drill_run_id(now, other);
    assert_int_equal(strncmp(run, "drill-20261207T124038Z-", 23), 0);
    assert_int_equal(strlen(run), 31);
    assert_string_not_equal(run, other); /* same second, different runs */
    assert_int_equal(drill_run_id_time(run, &t), 0);
    assert_int_equal(t, now / 1000000000LL * 1000000000LL);
    assert_int_equal(drill_run_id_time("drill-20261207T124038Z-3fa9c1d", &t), VG_EPARSE);
    assert_int_equal(drill_run_id_time("drill-20261307T124038Z-3fa9c1d2", &t), VG_EPARSE);
    assert_int_equal(drill_run_id_time("drill-20261207T124038Z-3fa9c1dX", &t), VG_EPARSE);
    assert_int_equal(drill_run_id_time("bogus", &t), VG_EPARSE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_values_and_defaults),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_too_many_random_values),
        cmocka_unit_test(test_render),
        cmocka_unit_test(test_run_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
