/* tests/unit/rules/test_match.c: Sigma detection: values, wildcards and escapes, every
 * modifier, keywords and every condition form, with cases from the Sigma specification
 * (sigma-rules-specification "Detection", sigma-appendix-modifiers). Rules use the
 * `vigil` logsource (normalized field names and raw.<path>). */
#include "tests/unit/rules/rules_test_util.h"

#define HDR "title: t\nlogsource: {product: vigil}\ndetection:\n"

/* A one-selection rule: "  sel:\n    <body>\n  condition: sel" */
static struct ruleset *sel1(const char *body)
{
    char y[4096];
    snprintf(y, sizeof(y), HDR "  sel:\n%s\n  condition: sel\n", body);
    return tu_load(y, NULL);
}

static void test_plain_values_case_insensitive(void **state)
{
    (void)state;
    struct ruleset *rs = sel1("    process: 'EVILSERVICE'");
    assert_true(tu_match(rs, "{}", "process=evilservice", NULL));
    assert_true(tu_match(rs, "{}", "process=EvilService", NULL));
    assert_false(tu_match(rs, "{}", "process=evilservice2", NULL));
    assert_false(tu_match(rs, "{}", NULL)); /* absent */
    ruleset_free(rs);

    rs = sel1("    process|cased: 'Evil'");
    assert_true(tu_match(rs, "{}", "process=Evil", NULL));
    assert_false(tu_match(rs, "{}", "process=evil", NULL));
    ruleset_free(rs);
}

static void test_wildcards_and_escapes(void **state)
{
    (void)state;
    /* spec "String Wildcard": prog?.exe, antivirus_V*.exe */
    struct ruleset *rs = sel1("    process: 'prog?.exe'");
    assert_true(tu_match(rs, "{}", "process=progA.exe", NULL));
    assert_true(tu_match(rs, "{}", "process=prog\xe2\x82\xac.exe", NULL)); /* one code point */
    assert_false(tu_match(rs, "{}", "process=progAB.exe", NULL));
    assert_false(tu_match(rs, "{}", "process=prog.exe", NULL));
    ruleset_free(rs);

    rs = sel1("    process: 'antivirus_V*.exe'");
    assert_true(tu_match(rs, "{}", "process=antivirus_V1.exe", NULL));
    assert_true(tu_match(rs, "{}", "process=ANTIVIRUS_V21.2.1.EXE", NULL));
    assert_false(tu_match(rs, "{}", "process=antivirus_V1.exe.bak", NULL));
    ruleset_free(rs);

    /* spec "Escaping": \* is a literal star */
    rs = sel1("    process: 'a\\*b'");
    assert_true(tu_match(rs, "{}", "process=a*b", NULL));
    assert_false(tu_match(rs, "{}", "process=axxb", NULL));
    ruleset_free(rs);
    /* \\* : a backslash, then a wildcard */
    rs = sel1("    process: 'C:\\\\*'");
    assert_true(tu_match(rs, "{}", "process=C:\\Windows", NULL));
    assert_false(tu_match(rs, "{}", "process=C:Windows", NULL));
    ruleset_free(rs);
    /* \\\* : a backslash and a literal star */
    rs = sel1("    process: 'a\\\\\\*'");
    assert_true(tu_match(rs, "{}", "process=a\\*", NULL));
    assert_false(tu_match(rs, "{}", "process=a\\x", NULL));
    ruleset_free(rs);
    /* a plain backslash not before a wildcard is literal (single or double) */
    rs = sel1("    process: 'C:\\Windows\\System32\\whoami.exe'");
    assert_true(tu_match(rs, "{}", "process=c:\\windows\\system32\\WHOAMI.EXE", NULL));
    ruleset_free(rs);
    /* '*' alone: any value, not absence */
    rs = sel1("    process: '*'");
    assert_true(tu_match(rs, "{}", "process=x", NULL));
    assert_false(tu_match(rs, "{}", NULL));
    ruleset_free(rs);
}

static void test_lists_maps_null_empty(void **state)
{
    (void)state;
    /* spec "Maps": EventLog Security and (517 or 1102) */
    struct ruleset *rs =
        sel1("    raw.EventLog: Security\n    raw.EventID:\n      - 517\n      - 1102");
    assert_true(tu_match(rs, "{\"EventLog\":\"Security\",\"EventID\":1102}", NULL));
    assert_true(tu_match(rs, "{\"EventLog\":\"security\",\"EventID\":\"517\"}", NULL));
    assert_false(tu_match(rs, "{\"EventLog\":\"Security\",\"EventID\":4624}", NULL));
    assert_false(tu_match(rs, "{\"EventID\":517}", NULL));
    ruleset_free(rs);

    /* spec "Lists": a list of maps is an OR */
    rs = tu_load(HDR "  sel:\n    - raw.Image|endswith: '\\example.exe'\n"
                     "    - raw.Description|contains: 'Test executable'\n  condition: sel\n",
                 NULL);
    assert_true(tu_match(rs, "{\"Image\":\"C:\\\\x\\\\Example.exe\"}", NULL));
    assert_true(tu_match(rs, "{\"Description\":\"a test executable here\"}", NULL));
    assert_false(tu_match(rs, "{\"Image\":\"C:\\\\x.exe\"}", NULL));
    ruleset_free(rs);

    /* null: absent or null; '' is the empty string */
    rs = sel1("    raw.PasswordLastSet: null");
    assert_true(tu_match(rs, "{}", NULL));
    assert_true(tu_match(rs, "{\"PasswordLastSet\":null}", NULL));
    assert_false(tu_match(rs, "{\"PasswordLastSet\":\"2020\"}", NULL));
    assert_false(tu_match(rs, "{\"PasswordLastSet\":\"\"}", NULL));
    ruleset_free(rs);
    rs = sel1("    raw.x: ''");
    assert_true(tu_match(rs, "{\"x\":\"\"}", NULL));
    assert_false(tu_match(rs, "{\"x\":\"a\"}", NULL));
    assert_false(tu_match(rs, "{}", NULL));
    ruleset_free(rs);

    /* arrays in the event: any element */
    rs = sel1("    raw.tags: b");
    assert_true(tu_match(rs, "{\"tags\":[\"a\",\"B\"]}", NULL));
    assert_false(tu_match(rs, "{\"tags\":[\"a\",\"c\"]}", NULL));
    ruleset_free(rs);

    /* booleans and numbers as values */
    rs = sel1("    raw.privileged: true\n    raw.code: 403");
    assert_true(tu_match(rs, "{\"privileged\":true,\"code\":403}", NULL));
    assert_true(tu_match(rs, "{\"privileged\":\"True\",\"code\":\"403\"}", NULL));
    assert_false(tu_match(rs, "{\"privileged\":false,\"code\":403}", NULL));
    ruleset_free(rs);
}

static void test_contains_startswith_endswith_all(void **state)
{
    (void)state;
    struct ruleset *rs = sel1("    cmdline|contains: ' -i '");
    assert_true(tu_match(rs, "{}", "cmdline=bash -I -c x", NULL));
    assert_false(tu_match(rs, "{}", "cmdline=bash -c x", NULL));
    ruleset_free(rs);
    rs = sel1("    cmdline|startswith:\n      - 'bash -c'\n      - 'sh -c'");
    assert_true(tu_match(rs, "{}", "cmdline=sh -c id", NULL));
    assert_false(tu_match(rs, "{}", "cmdline=/bin/sh -c id", NULL));
    ruleset_free(rs);
    rs = sel1("    process|endswith: '/sshd'");
    assert_true(tu_match(rs, "{}", "process=/usr/sbin/sshd", NULL));
    assert_false(tu_match(rs, "{}", "process=/usr/sbin/sshd2", NULL));
    ruleset_free(rs);
    /* wildcards inside a contains value still work */
    rs = sel1("    cmdline|contains: '/etc/*.conf'");
    assert_true(tu_match(rs, "{}", "cmdline=vi /etc/ssh/sshd.conf", NULL));
    assert_false(tu_match(rs, "{}", "cmdline=vi /etc/hosts", NULL));
    ruleset_free(rs);
    /* all: every value (spec: "all" links list values with AND) */
    rs = sel1("    cmdline|contains|all:\n      - 'hidepid=2'\n      - ' -o '");
    assert_true(tu_match(rs, "{}", "cmdline=mount -o hidepid=2 /proc", NULL));
    assert_false(tu_match(rs, "{}", "cmdline=mount hidepid=2 /proc", NULL));
    ruleset_free(rs);
}

static void test_exists(void **state)
{
    (void)state;
    struct ruleset *rs = sel1("    raw.PasswordLastSet|exists: true");
    assert_true(tu_match(rs, "{\"PasswordLastSet\":\"x\"}", NULL));
    assert_true(tu_match(rs, "{\"PasswordLastSet\":null}", NULL)); /* presence, not value */
    assert_false(tu_match(rs, "{}", NULL));
    ruleset_free(rs);
    rs = sel1("    user|exists: false");
    assert_true(tu_match(rs, "{}", NULL));
    assert_false(tu_match(rs, "{}", "user=root", NULL));
    ruleset_free(rs);
}

static void test_numeric(void **state)
{
    (void)state;
    struct ruleset *rs = sel1("    raw.n|gt: 5");
    assert_true(tu_match(rs, "{\"n\":6}", NULL));
    assert_true(tu_match(rs, "{\"n\":\"6.5\"}", NULL));
    assert_false(tu_match(rs, "{\"n\":5}", NULL));
    assert_false(tu_match(rs, "{\"n\":\"abc\"}", NULL));
    ruleset_free(rs);
    rs = sel1("    raw.n|gte: 5");
    assert_true(tu_match(rs, "{\"n\":5}", NULL));
    assert_false(tu_match(rs, "{\"n\":4.9}", NULL));
    ruleset_free(rs);
    rs = sel1("    raw.n|lt: -1.5");
    assert_true(tu_match(rs, "{\"n\":-2}", NULL));
    assert_false(tu_match(rs, "{\"n\":-1.5}", NULL));
    ruleset_free(rs);
    rs = sel1("    dst_port|lte: 1024");
    struct tu_rec t;
    struct rules_engine *e;
    tu_rec_init(&t, "{}");
    t.r.dst_port = 22;
    t.r.has_dst_port = true;
    assert_int_equal(rules_engine_new(rs, NULL, &e), 0);
    assert_true(rules__detect(e, 0, &t.r, true));
    t.r.dst_port = 8080;
    assert_false(rules__detect(e, 0, &t.r, true));
    rules_engine_free(e);
    tu_rec_release(&t);
    ruleset_free(rs);
}

static void test_re(void **state)
{
    (void)state;
    /* from proc_creation_lnx_wget_download_suspicious_directory: case-sensitive */
    struct ruleset *rs = sel1("    cmdline|re: '\\s-O\\s'");
    assert_true(tu_match(rs, "{}", "cmdline=wget -O /tmp/x http://a", NULL));
    assert_false(tu_match(rs, "{}", "cmdline=wget -o /tmp/x http://a", NULL));
    ruleset_free(rs);
    rs = sel1("    cmdline|re|i: '^WGET'");
    assert_true(tu_match(rs, "{}", "cmdline=wget x", NULL));
    ruleset_free(rs);
    rs = sel1("    cmdline|re: '(?i)^WGET'");
    assert_true(tu_match(rs, "{}", "cmdline=wget x", NULL));
    ruleset_free(rs);
    /* \d, classes with escapes, {n,m}, lazy quantifiers, (?:...) */
    rs = sel1("    cmdline|re: '^[\\w.-]+@(?:\\d{1,3}\\.){3}\\d{1,3}.*?$'");
    assert_true(tu_match(rs, "{}", "cmdline=root.x-y@10.0.0.1", NULL));
    assert_false(tu_match(rs, "{}", "cmdline=root@10.0.0", NULL));
    ruleset_free(rs);
    /* '.' does not match a newline unless s; ^ matches at lines with m */
    rs = sel1("    cmdline|re: 'a.b'");
    assert_false(tu_match(rs, "{}", "cmdline=a\nb", NULL));
    assert_true(tu_match(rs, "{}", "cmdline=a-b", NULL));
    ruleset_free(rs);
    rs = sel1("    cmdline|re|s: 'a.b'");
    assert_true(tu_match(rs, "{}", "cmdline=a\nb", NULL));
    ruleset_free(rs);
    rs = sel1("    cmdline|re|m: '^b$'");
    assert_true(tu_match(rs, "{}", "cmdline=a\nb\nc", NULL));
    ruleset_free(rs);
    rs = sel1("    cmdline|re: '^b$'");
    assert_false(tu_match(rs, "{}", "cmdline=a\nb\nc", NULL));
    ruleset_free(rs);
    /* a literal ] first in a class, - last */
    rs = sel1("    cmdline|re: '^[\\]\\-a]+$'");
    assert_true(tu_match(rs, "{}", "cmdline=]-a]", NULL));
    assert_false(tu_match(rs, "{}", "cmdline=]b", NULL));
    ruleset_free(rs);

    char why[600];
    assert_int_equal(
        tu_fail(HDR "  sel:\n    cmdline|re: 'a(?=b)'\n  condition: sel\n", why, sizeof(why)),
        RULES_UNSUPPORTED);
    assert_non_null(strstr(why, "lookaround"));
    assert_int_equal(
        tu_fail(HDR "  sel:\n    cmdline|re: '(a)\\1'\n  condition: sel\n", why, sizeof(why)),
        RULES_UNSUPPORTED);
    assert_non_null(strstr(why, "back-reference"));
    assert_int_equal(
        tu_fail(HDR "  sel:\n    cmdline|re: 'a(b'\n  condition: sel\n", why, sizeof(why)),
        RULES_INVALID);
    assert_non_null(strstr(why, "bad regular expression"));
    assert_int_equal(
        tu_fail(HDR "  sel:\n    cmdline|i: 'a'\n  condition: sel\n", why, sizeof(why)),
        RULES_INVALID);
}

static void test_cidr(void **state)
{
    (void)state;
    /* spec: DestinationIp|cidr: 10.0.0.0/8 */
    struct ruleset *rs = sel1("    src_ip|cidr:\n      - 10.0.0.0/8\n      - 'fd00::/8'");
    assert_true(tu_match(rs, "{}", "src_ip=10.1.2.3", NULL));
    assert_true(tu_match(rs, "{}", "src_ip=fd12::1", NULL));
    assert_false(tu_match(rs, "{}", "src_ip=11.0.0.1", NULL));
    assert_false(tu_match(rs, "{}", "src_ip=not-an-ip", NULL));
    ruleset_free(rs);
    /* Prefixes that do not end on a byte, at both edges (one network written with its
     * host bits set, as rule authors do). */
    rs = sel1("    src_ip|cidr:\n      - 172.20.1.2/12\n      - 10.1.16.0/20\n"
              "      - '2001:db8::/127'");
    static const struct {
        const char *ip;
        bool in;
    } edge[] = {
        { "172.16.0.0", true },   { "172.31.255.255", true }, { "172.15.255.255", false },
        { "172.32.0.0", false },  { "10.1.16.0", true },      { "10.1.31.255", true },
        { "10.1.15.255", false }, { "10.1.32.0", false },     { "2001:db8::1", true },
        { "2001:db8::2", false },
    };
    for (size_t i = 0; i < sizeof(edge) / sizeof(edge[0]); i++) {
        char kv[64];
        snprintf(kv, sizeof(kv), "src_ip=%s", edge[i].ip);
        if (tu_match(rs, "{}", kv, NULL) != edge[i].in) {
            fail_msg("%s: expected %s", edge[i].ip, edge[i].in ? "a match" : "none");
        }
    }
    ruleset_free(rs);
    char why[600];
    assert_int_equal(
        tu_fail(HDR "  sel:\n    src_ip|cidr: 10.0.0.0/33\n  condition: sel\n", why, sizeof(why)),
        RULES_INVALID);
}

static void test_base64(void **state)
{
    (void)state;
    struct ruleset *rs = sel1("    cmdline|base64: 'ping -n 1 127.0.0.1'");
    assert_true(tu_match(rs, "{}", "cmdline=cGluZyAtbiAxIDEyNy4wLjAuMQ==", NULL));
    ruleset_free(rs);
    rs = sel1("    cmdline|base64|contains: '/bin/bash'");
    assert_true(tu_match(rs, "{}", "cmdline=echo L2Jpbi9iYXNo | base64 -d", NULL));
    ruleset_free(rs);
    /* spec example: base64offset of /bin/bash is L2Jpbi9iYXNo, 9iaW4vYmFza, vYmluL2Jhc2 */
    rs = sel1("    cmdline|base64offset|contains: '/bin/bash'");
    assert_true(tu_match(rs, "{}", "cmdline=x L2Jpbi9iYXNo x", NULL));
    assert_true(tu_match(rs, "{}", "cmdline=IHgvYmluL2Jhc2g=", NULL)); /* " x/bin/bash" */
    assert_true(tu_match(rs, "{}", "cmdline=ICB4eC9iaW4vYmFzaCB5eQ==", NULL));
    assert_false(tu_match(rs, "{}", "cmdline=/bin/bash", NULL));
    ruleset_free(rs);
    /* utf16le then base64offset (PowerShell -enc) */
    rs = sel1("    cmdline|wide|base64offset|contains: 'cmd'");
    assert_true(tu_match(rs, "{}", "cmdline=powershell -enc YwBtAGQA", NULL));
    assert_true(tu_match(rs, "{}", "cmdline=powershell -enc xMAbQBkAx", NULL));
    ruleset_free(rs);
    char why[600];
    /* wildcards cannot be encoded: contains must come after */
    assert_int_equal(tu_fail(HDR "  sel:\n    cmdline|contains|base64: 'x'\n  condition: sel\n",
                             why, sizeof(why)),
                     RULES_INVALID);
    assert_non_null(strstr(why, "wildcards"));
}

static void test_windash(void **state)
{
    (void)state;
    struct ruleset *rs = sel1("    cmdline|windash|contains: ' -foo '");
    assert_true(tu_match(rs, "{}", "cmdline=x -foo y", NULL));
    assert_true(tu_match(rs, "{}", "cmdline=x /foo y", NULL));
    assert_true(tu_match(rs, "{}",
                         "cmdline=x \xe2\x80\x93"
                         "foo y",
                         NULL)); /* en dash */
    assert_true(tu_match(rs, "{}",
                         "cmdline=x \xe2\x80\x94"
                         "foo y",
                         NULL)); /* em dash */
    assert_true(tu_match(rs, "{}",
                         "cmdline=x \xe2\x80\x95"
                         "foo y",
                         NULL)); /* bar */
    assert_false(tu_match(rs, "{}", "cmdline=x +foo y", NULL));
    ruleset_free(rs);
    /* a dash inside a word is not a flag: not replaced */
    rs = sel1("    cmdline|windash: 'a-b'");
    assert_true(tu_match(rs, "{}", "cmdline=a-b", NULL));
    assert_false(tu_match(rs, "{}", "cmdline=a/b", NULL));
    ruleset_free(rs);
}

static void test_fieldref(void **state)
{
    (void)state;
    struct ruleset *rs = sel1("    user|fieldref: object");
    assert_true(tu_match(rs, "{}", "user=root", "object=ROOT", NULL));
    assert_false(tu_match(rs, "{}", "user=root", "object=bob", NULL));
    assert_false(tu_match(rs, "{}", "user=root", NULL));
    ruleset_free(rs);
    rs = sel1("    cmdline|fieldref|startswith: process");
    assert_true(tu_match(rs, "{}", "cmdline=bash -i", "process=bash", NULL));
    assert_false(tu_match(rs, "{}", "cmdline=sh -i", "process=bash", NULL));
    ruleset_free(rs);
    rs = sel1("    raw.a|fieldref: raw.b");
    assert_true(tu_match(rs, "{\"a\":\"x\",\"b\":[\"y\",\"X\"]}", NULL));
    ruleset_free(rs);
}

static void test_keywords(void **state)
{
    (void)state;
    /* a list of strings: keywords over the logsource's text (message), OR, anywhere */
    struct ruleset *rs = tu_load(HDR "  keywords:\n    - 'event::clear'\n    - 'event::drop'\n"
                                     "  condition: keywords\n",
                                 NULL);
    assert_true(tu_match(rs, "{}", "message=mimikatz EVENT::Clear done", NULL));
    assert_false(tu_match(rs, "{}", "message=nothing", NULL));
    ruleset_free(rs);
    /* '|all': every keyword (spec "Keywords search") */
    rs = tu_load(HDR "  keywords_cmdlet:\n    '|all':\n      - 'OabVirtualDirectory'\n"
                     "      - ' -ExternalUrl '\n  condition: keywords_cmdlet\n",
                 NULL);
    assert_true(tu_match(rs, "{}", "message=Set-OabVirtualDirectory -ExternalUrl x", NULL));
    assert_false(tu_match(rs, "{}", "message=Set-OabVirtualDirectory", NULL));
    ruleset_free(rs);
    /* a single scalar selection is one keyword; keywords with wildcards */
    rs = tu_load(HDR "  kw: 'new*user'\n  condition: kw\n", NULL);
    assert_true(tu_match(rs, "{}", "message=useradd: new  user: name=x", NULL));
    ruleset_free(rs);
    /* the Linux builtin rules' keywords read the message of host logs */
    rs = tu_load("title: t\nlogsource: {product: linux}\ndetection:\n"
                 "  keywords:\n    - '() { :;};'\n  condition: keywords\n",
                 NULL);
    assert_true(tu_match(rs, "{}", "source=syslog", "message=GET /cgi-bin/x () { :;}; id", NULL));
    assert_false(tu_match(rs, "{}", "source=falco", "message=GET /cgi-bin/x () { :;}; id", NULL));
    ruleset_free(rs);
}

static void test_conditions(void **state)
{
    (void)state;
    const char *sels = "  sel1:\n    user: a\n  sel2:\n    host: b\n  filter_1:\n    pod: c\n"
                       "  _hidden:\n    namespace: d\n";
    struct {
        const char *cond;
        const char *fields[4];
        bool want;
    } cases[] = {
        { "sel1 and sel2", { "user=a", "host=b" }, true },
        { "sel1 and sel2", { "user=a" }, false },
        { "sel1 or sel2", { "host=b" }, true },
        { "sel1 and not filter_1", { "user=a", "pod=c" }, false },
        { "sel1 and not filter_1", { "user=a" }, true },
        { "not sel1 and sel2", { "host=b" }, true },            /* (not sel1) and sel2 */
        { "sel1 or sel2 and filter_1", { "user=a" }, true },    /* or binds loosest */
        { "(sel1 or sel2) and filter_1", { "user=a" }, false }, /* brackets */
        { "1 of sel*", { "host=b" }, true },
        { "all of sel*", { "host=b" }, false },
        { "all of sel*", { "user=a", "host=b" }, true },
        { "1 of them", { "pod=c" }, true },
        { "1 of them", { "namespace=d" }, false }, /* _hidden is not in them */
        { "all of them", { "user=a", "host=b", "pod=c" }, true },
        { "sel1 and not 1 of filter_*", { "user=a", "pod=c" }, false },
        { "any of sel*", { "user=a" }, true },
        { "2 of them", { "user=a", "pod=c" }, true },
        { "2 of them", { "user=a" }, false },
        { "SEL1 AND NOT sel2", { "user=a" }, false }, /* identifiers are case-sensitive */
        { "sel1 AND NOT sel2", { "user=a" }, true },  /* keywords are not */
        { "_hidden", { "namespace=d" }, true },
    };
    for (size_t i = 0; i < VG_ARRAY_LEN(cases); i++) {
        char y[2048];
        struct rules_report rep;
        snprintf(y, sizeof(y), HDR "%s  condition: %s\n", sels, cases[i].cond);
        struct ruleset *rs = tu_load(y, &rep);
        if (ruleset_count(rs) == 0) {
            assert_false(cases[i].want);
            assert_non_null(strstr(rep.items[0].reason, "SEL1"));
        } else {
            const char *const *f = cases[i].fields;
            bool m = tu_match(rs, "{}", f[0], f[1], f[2], f[3], NULL);
            if (m != cases[i].want) {
                fail_msg("condition '%s' on %s: got %d", cases[i].cond, f[0], m);
            }
        }
        rules_report_release(&rep);
        ruleset_free(rs);
    }
    /* a list of conditions: any of them */
    struct ruleset *rs = tu_load(HDR "  a:\n    user: x\n  b:\n    user: y\n"
                                     "  condition:\n    - a\n    - b\n",
                                 NULL);
    assert_true(tu_match(rs, "{}", "user=y", NULL));
    assert_false(tu_match(rs, "{}", "user=z", NULL));
    ruleset_free(rs);
}

static void test_condition_errors(void **state)
{
    (void)state;
    char why[600];
    static const struct {
        const char *cond;
        enum rules_status st;
        const char *reason;
    } cases[] = {
        { "sel and nope", RULES_INVALID, "unknown identifier 'nope'" },
        { "1 of filter*", RULES_INVALID, "matches no selection" },
        { "sel*", RULES_INVALID, "needs '1 of'" },
        { "(sel", RULES_INVALID, "unbalanced" },
        { "sel and", RULES_INVALID, "ends" },
        { "sel | count() > 5", RULES_UNSUPPORTED, "aggregation" },
        { "sel sel", RULES_INVALID, "unexpected" },
        { "0 of sel", RULES_INVALID, "positive" },
    };
    for (size_t i = 0; i < VG_ARRAY_LEN(cases); i++) {
        char y[1024];
        snprintf(y, sizeof(y), HDR "  sel:\n    user: a\n  condition: %s\n", cases[i].cond);
        assert_int_equal(tu_fail(y, why, sizeof(why)), cases[i].st);
        if (!strstr(why, cases[i].reason)) {
            fail_msg("'%s': reason '%s' lacks '%s'", cases[i].cond, why, cases[i].reason);
        }
    }
}

static void test_modifier_errors(void **state)
{
    (void)state;
    char why[600];
    static const struct {
        const char *entry;
        enum rules_status st;
        const char *reason;
    } cases[] = {
        { "user|expand: '%Admins%'", RULES_UNSUPPORTED, "placeholders" },
        { "user|neq: x", RULES_UNSUPPORTED, "neq" },
        { "user|bogus: x", RULES_UNSUPPORTED, "unknown modifier 'bogus'" },
        { "user|re|cidr: x", RULES_INVALID, "exclude" },
        { "user|contains|re: x", RULES_INVALID, "do not combine" },
        { "user|exists: maybe", RULES_INVALID, "true or false" },
        { "user|gt: abc", RULES_INVALID, "number" },
        { "user|contains: null", RULES_INVALID, "null" },
        { "user|contains|contains: x", RULES_INVALID, "twice" },
        { "user: {a: b}", RULES_INVALID, "scalar" },
        { "user: []", RULES_INVALID, "empty" },
        { "NoSuchField: x", RULES_UNSUPPORTED, "not mapped" },
    };
    for (size_t i = 0; i < VG_ARRAY_LEN(cases); i++) {
        char y[1024];
        snprintf(y, sizeof(y), HDR "  sel:\n    %s\n  condition: sel\n", cases[i].entry);
        enum rules_status st = tu_fail(y, why, sizeof(why));
        if (st != cases[i].st || !strstr(why, cases[i].reason)) {
            fail_msg("'%s': status %d reason '%s' (want '%s')", cases[i].entry, st, why,
                     cases[i].reason);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_values_case_insensitive),
        cmocka_unit_test(test_wildcards_and_escapes),
        cmocka_unit_test(test_lists_maps_null_empty),
        cmocka_unit_test(test_contains_startswith_endswith_all),
        cmocka_unit_test(test_exists),
        cmocka_unit_test(test_numeric),
        cmocka_unit_test(test_re),
        cmocka_unit_test(test_cidr),
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_windash),
        cmocka_unit_test(test_fieldref),
        cmocka_unit_test(test_keywords),
        cmocka_unit_test(test_conditions),
        cmocka_unit_test(test_condition_errors),
        cmocka_unit_test(test_modifier_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
