/* tests/unit/query/test_filter.c: the FILTER language: every operator on every field
 * type, raw paths, full text, precedence, the canonical form, time bounds, argv
 * joining, and every error with its column. Records go through rec_encode and
 * rec_decode, as the scanner would hand them over. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/buf.h"
#include "common/json.h"
#include "common/time.h"
#include "query/filter.h"
#include "schemas/record.h"

/* 2024-05-01T12:00:00Z */
#define NOW_NS (1714564800LL * VG_NS_PER_SEC)
/* 2024-05-01T11:55:00.123456789Z */
#define FALCO_TS (1714564500LL * VG_NS_PER_SEC + 123456789)

static const char falco_json[] =
    "{\"hostname\":\"node-1\",\"output\":\"11:55:00: Notice A shell was spawned in a container "
    "with an attached terminal (user=root k8s.ns=default k8s.pod=nginx-abc)\","
    "\"priority\":\"Notice\",\"rule\":\"Terminal shell in container\",\"source\":\"syscall\","
    "\"tags\":[\"container\",\"mitre_execution\",\"shell\"],"
    "\"time\":\"2024-05-01T11:55:00.123456789Z\","
    "\"output_fields\":{\"container.id\":\"3f2a\",\"evt.time\":1714564500123456789,"
    "\"k8s.ns.name\":\"default\",\"k8s.pod.name\":\"nginx-abc\",\"proc.cmdline\":\"bash -i\","
    "\"proc.name\":\"bash\",\"user.name\":\"root\",\"fd.rport\":443,\"evt.arg.flags\":null}}";

static const char k8s_json[] =
    "{\"kind\":\"Event\",\"apiVersion\":\"audit.k8s.io/v1\",\"level\":\"RequestResponse\","
    "\"auditID\":\"a1\",\"stage\":\"ResponseComplete\","
    "\"requestURI\":\"/api/v1/namespaces/prod/pods/web-1/exec?command=sh\",\"verb\":\"create\","
    "\"user\":{\"username\":\"alice@example.com\",\"groups\":[\"system:authenticated\","
    "\"devs\"]},\"sourceIPs\":[\"192.168.10.5\",\"fd00::7\"],"
    "\"objectRef\":{\"resource\":\"pods\",\"namespace\":\"prod\",\"name\":\"web-1\","
    "\"subresource\":\"exec\"},\"responseStatus\":{\"metadata\":{},\"code\":403},"
    "\"annotations\":{\"authorization.k8s.io/decision\":\"forbid\"},\"ok\":false,"
    "\"ratio\":0.25}";

/* One record as the scanner sees it: encoded, then decoded with spans into enc. */
struct trec {
    struct buf raw;
    struct buf enc;
    struct rec r;
};

struct fixture {
    struct trec falco;
    struct trec k8s;
    struct trec bare; /* no raw, no ts, a src_ip that is not an address */
    struct trec odd;  /* raw with a key "a.b" beside a map "a" holding "b" */
};

static void trec_finish(struct trec *t, struct rec *in, const char *raw_json)
{
    buf_init(&t->raw, 1 << 20);
    buf_init(&t->enc, 1 << 20);
    if (raw_json) {
        assert_int_equal(json_to_mp(span_str(raw_json), &t->raw, NULL, NULL), 0);
        in->raw = buf_span(&t->raw);
    }
    assert_int_equal(rec_encode(in, &t->enc), 0);
    struct span s = buf_span(&t->enc);
    assert_int_equal(rec_decode(&s, &t->r), 0);
    assert_int_equal(s.n, 0);
}

static void trec_release(struct trec *t)
{
    buf_release(&t->raw);
    buf_release(&t->enc);
}

static void set(struct rec *r, enum vg_field f, const char *s)
{
    rec_set(r, f, span_str(s));
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    struct rec r;

    rec_init(&r);
    r.ts = FALCO_TS;
    r.has_ts = true;
    r.received = FALCO_TS + VG_NS_PER_SEC;
    r.has_received = true;
    r.seq = 42;
    r.has_seq = true;
    r.dst_port = 443;
    r.has_dst_port = true;
    set(&r, VG_F_SOURCE, "falco");
    set(&r, VG_F_KIND, "process");
    set(&r, VG_F_SEVERITY, "notice");
    set(&r, VG_F_HOST, "node-1");
    set(&r, VG_F_NAMESPACE, "default");
    set(&r, VG_F_POD, "nginx-abc");
    set(&r, VG_F_CONTAINER_ID, "3f2a");
    set(&r, VG_F_USER, "root");
    set(&r, VG_F_SRC_IP, "10.1.2.3");
    set(&r, VG_F_DST_IP, "2001:db8::1");
    set(&r, VG_F_PROCESS, "bash");
    set(&r, VG_F_CMDLINE, "bash -i");
    set(&r, VG_F_RULE, "Terminal shell in container");
    set(&r, VG_F_MESSAGE,
        "A shell was spawned in a container with an attached terminal "
        "(user=root) say \"hi\"\\now");
    trec_finish(&fx->falco, &r, falco_json);

    rec_init(&r);
    r.ts = FALCO_TS - 3600 * VG_NS_PER_SEC;
    r.has_ts = true;
    set(&r, VG_F_SOURCE, "k8s-audit");
    set(&r, VG_F_KIND, "audit");
    set(&r, VG_F_SEVERITY, "Warning");
    set(&r, VG_F_NAMESPACE, "prod");
    set(&r, VG_F_POD, "web-1");
    set(&r, VG_F_USER, "alice@example.com");
    set(&r, VG_F_SRC_IP, "192.168.10.5");
    set(&r, VG_F_ACTION, "create");
    set(&r, VG_F_OBJECT, "pods/web-1/exec");
    set(&r, VG_F_OUTCOME, "Denied");
    trec_finish(&fx->k8s, &r, k8s_json);

    rec_init(&r);
    set(&r, VG_F_SOURCE, "vigil");
    set(&r, VG_F_SRC_IP, "not-an-ip");
    set(&r, VG_F_MESSAGE, "refused handshake");
    trec_finish(&fx->bare, &r, NULL);

    rec_init(&r);
    set(&r, VG_F_SOURCE, "test");
    trec_finish(&fx->odd, &r, "{\"a.b\":1,\"a\":{\"b\":2},\"n\":[[1,2],[3,{\"x\":\"deep\"}]]}");

    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;

    trec_release(&fx->falco);
    trec_release(&fx->k8s);
    trec_release(&fx->bare);
    trec_release(&fx->odd);
    free(fx);
    return 0;
}

static bool m(const char *text, const struct trec *t)
{
    struct filter *f = NULL;
    struct errbuf eb;
    int col = -1;

    errbuf_clear(&eb);
    int rc = filter_parse(text, NOW_NS, &f, &col, &eb);
    if (rc != 0) {
        fail_msg("filter '%s' did not parse: %s", text, errbuf_msg(&eb));
    }
    assert_int_equal(col, 0);
    bool ok = filter_match(f, &t->r);
    filter_free(f);
    return ok;
}

#define YES(text, t) assert_true(m(text, t))
#define NO(text, t)  assert_false(m(text, t))

/* Expects text to fail at column col with a message containing what. */
static void check_err(const char *text, int col, const char *what)
{
    struct filter *f = (struct filter *)1;
    struct errbuf eb;
    int got = -1;
    char prefix[64];

    errbuf_clear(&eb);
    int rc = filter_parse(text, NOW_NS, &f, &got, &eb);
    if (rc != VG_EPARSE) {
        fail_msg("filter '%s' parsed (rc %d), expected an error at column %d", text, rc, col);
    }
    assert_null(f);
    if (got != col || !strstr(errbuf_msg(&eb), what)) {
        fail_msg("filter '%s': got column %d '%s', expected column %d and '%s'", text, got,
                 errbuf_msg(&eb), col, what);
    }
    snprintf(prefix, sizeof(prefix), "filter: column %d: ", col);
    assert_true(strncmp(errbuf_msg(&eb), prefix, strlen(prefix)) == 0);
}

static void check_desc(const char *text, const char *want)
{
    struct filter *f = NULL;
    struct errbuf eb;
    struct buf b;

    errbuf_clear(&eb);
    buf_init(&b, 1 << 16);
    if (filter_parse(text, NOW_NS, &f, NULL, &eb) != 0) {
        fail_msg("filter '%s' did not parse: %s", text, errbuf_msg(&eb));
    }
    assert_int_equal(filter_describe(f, &b), 0);
    assert_true(buf_check(&b));
    if (strcmp(buf_cstr(&b), want) != 0) {
        fail_msg("filter '%s': described as\n  %s\nexpected\n  %s", text, buf_cstr(&b), want);
    }
    filter_free(f);
    buf_release(&b);
}

static void test_empty_matches_all(void **state)
{
    struct fixture *fx = *state;
    struct filter *f = NULL;

    YES("", &fx->falco);
    YES("   ", &fx->bare);
    assert_int_equal(filter_parse(NULL, NOW_NS, &f, NULL, NULL), 0);
    assert_true(filter_match(f, &fx->k8s.r));
    filter_free(f);
    filter_free(NULL);
    check_desc("", "(ALL)");
}

static void test_string_eq_ne(void **state)
{
    struct fixture *fx = *state;

    YES("pod=nginx-abc", &fx->falco);
    NO("pod=nginx-abc", &fx->k8s);
    NO("pod=NGINX-abc", &fx->falco); /* case-sensitive */
    NO("pod=nginx", &fx->falco);     /* exact, not substring */
    YES("user=root", &fx->falco);
    YES("user=alice@example.com", &fx->k8s);
    YES("cmdline=\"bash -i\"", &fx->falco);
    YES("host=node-1", &fx->falco);
    /* != is the negation, so absent fields match it */
    NO("user!=root", &fx->falco);
    YES("user!=root", &fx->k8s);
    YES("user!=root", &fx->bare);
    YES("host!=node-1", &fx->k8s);
}

static void test_nocase_fields(void **state)
{
    struct fixture *fx = *state;

    YES("source=FALCO", &fx->falco);
    YES("kind=AUDIT", &fx->k8s);
    YES("outcome=denied", &fx->k8s);
    YES("outcome=DENIED", &fx->k8s);
    NO("outcome!=Denied", &fx->k8s);
    YES("severity=NOTICE", &fx->falco);
    YES("severity=warning", &fx->k8s); /* stored as "Warning" */
    YES("source=k8s*", &fx->k8s);
    YES("source=K8S*", &fx->k8s);
    NO("host=NODE-1", &fx->falco);
}

static void test_contains(void **state)
{
    struct fixture *fx = *state;

    YES("rule~SHELL", &fx->falco);
    YES("rule~\"shell in\"", &fx->falco);
    NO("rule~bash", &fx->falco);
    YES("message~\"attached TERMINAL\"", &fx->falco);
    NO("rule!~shell", &fx->falco);
    YES("rule!~shell", &fx->k8s); /* absent */
    YES("object~EXEC", &fx->k8s);
    YES("src_ip~10.5", &fx->k8s);
    YES("severity~TIC", &fx->falco);
}

static void test_prefix(void **state)
{
    struct fixture *fx = *state;

    YES("pod=nginx*", &fx->falco);
    NO("pod=web*", &fx->falco);
    YES("pod!=web*", &fx->falco);
    NO("pod!=nginx*", &fx->falco);
    YES("rule=\"Terminal sh*\"", &fx->falco);
    /* field=* means present, field!=* absent */
    YES("user=*", &fx->falco);
    NO("user=*", &fx->bare);
    YES("user!=*", &fx->bare);
    /* an escaped star is a literal */
    NO("pod=nginx\\*", &fx->falco);
    NO("pod=\"nginx\\*\"", &fx->falco);
    YES("src_ip=10.1.*", &fx->falco);
    YES("severity=not*", &fx->falco);
    check_desc("pod=nginx\\*", "(EQ pod \"nginx*\")");
    check_desc("pod=nginx*", "(PREFIX pod \"nginx\")");
    check_desc("pod!=nginx*", "(NPREFIX pod \"nginx\")");
}

static void test_string_order(void **state)
{
    struct fixture *fx = *state;

    YES("pod>nginx", &fx->falco);
    YES("pod<nginx-abd", &fx->falco);
    YES("pod<=nginx-abc", &fx->falco);
    NO("pod<nginx-abc", &fx->falco);
    NO("pod>=z", &fx->falco);
}

static void test_severity_order(void **state)
{
    struct fixture *fx = *state;

    /* >= means at least as severe; notice is less severe than warning */
    NO("severity>=warning", &fx->falco);
    YES("severity>=warning", &fx->k8s);
    YES("severity>=notice", &fx->falco);
    YES("severity>=notice", &fx->k8s);
    YES("severity>notice", &fx->k8s);
    NO("severity>notice", &fx->falco);
    YES("severity<warning", &fx->falco);
    NO("severity<warning", &fx->k8s);
    YES("severity<=warning", &fx->k8s);
    NO("severity<=info", &fx->falco);
    YES("severity<=notice", &fx->falco);
    YES("severity>=info", &fx->falco);
    YES("severity=warn", &fx->k8s);   /* alias */
    YES("severity=medium", &fx->k8s); /* scanner level */
    NO("severity>=high", &fx->k8s);   /* high = error */
    YES("severity>=4", &fx->k8s);     /* rank 4 = warning */
    NO("severity>=3", &fx->k8s);
    YES("severity!=error", &fx->k8s);
    YES("severity!=error", &fx->bare); /* absent */
    NO("severity>=debug", &fx->bare);
    check_desc("severity>=WARN", "(GE severity \"warning\")");
    check_desc("severity=Informational", "(EQ severity \"info\")");
    check_desc("severity~warn", "(HAS severity \"warn\")");
}

static void test_numbers(void **state)
{
    struct fixture *fx = *state;

    YES("dst_port=443", &fx->falco);
    YES("dst_port>=400", &fx->falco);
    YES("dst_port>442", &fx->falco);
    NO("dst_port>443", &fx->falco);
    YES("dst_port<=443", &fx->falco);
    NO("dst_port<100", &fx->falco);
    NO("dst_port=443", &fx->k8s);
    YES("dst_port!=443", &fx->k8s);
    YES("dst_port>-1", &fx->falco);
    YES("seq=42", &fx->falco);
    YES("seq>41", &fx->falco);
    NO("seq<42", &fx->falco);
    NO("seq>=0", &fx->k8s); /* absent */
    NO("seq=18446744073709551615", &fx->falco);
    check_desc("dst_port<1024", "(LT dst_port 1024)");
    check_desc("seq>=18446744073709551615", "(GE seq 18446744073709551615)");
}

static void test_times(void **state)
{
    struct fixture *fx = *state;

    /* falco is 5 minutes before NOW, k8s an hour before that */
    YES("ts>=15m", &fx->falco);
    NO("ts>=15m", &fx->k8s);
    NO("ts>=1m", &fx->falco);
    YES("ts<1m", &fx->falco);
    YES("ts>=2h", &fx->k8s);
    YES("ts<2024-05-01T12:00:00Z", &fx->falco);
    YES("ts>=2024-05-01T11:55:00.123456789Z", &fx->falco);
    NO("ts>2024-05-01T11:55:00.123456789Z", &fx->falco);
    YES("ts=2024-05-01T11:55:00.123456789Z", &fx->falco);
    YES("ts=\"2024-05-01 13:55:00.123456789+02:00\"", &fx->falco);
    YES("ts<=now", &fx->falco);
    YES("received>=2024-05-01T11:55:01Z", &fx->falco);
    NO("received>=15m", &fx->k8s); /* absent */
    NO("ts>=15m", &fx->bare);
    YES("ts!=15m", &fx->bare);
    check_desc("ts>=15m", "(GE ts \"2024-05-01T11:45:00.000000000Z\")");
    check_desc("ts<2024-05-01", "(LT ts \"2024-05-01T00:00:00.000000000Z\")");
}

static void test_ip_and_cidr(void **state)
{
    struct fixture *fx = *state;

    YES("src_ip=10.0.0.0/8", &fx->falco);
    YES("src_ip=10.1.2.0/24", &fx->falco);
    YES("src_ip=10.1.2.3/32", &fx->falco);
    NO("src_ip=10.1.3.0/24", &fx->falco); /* an address outside the range */
    NO("src_ip=10.0.0.0/8", &fx->k8s);
    YES("src_ip=192.168.0.0/16", &fx->k8s);
    YES("src_ip=0.0.0.0/0", &fx->k8s);
    YES("src_ip=10.1.2.3", &fx->falco);
    NO("src_ip=10.1.2.4", &fx->falco);
    YES("src_ip=::ffff:10.1.2.3", &fx->falco);     /* v4-mapped is the same address */
    YES("src_ip=::ffff:10.0.0.0/104", &fx->falco); /* and a v6 range over v4 */
    YES("dst_ip=2001:db8::/32", &fx->falco);
    YES("dst_ip=2001:0db8:0:0::1", &fx->falco);
    NO("dst_ip=2001:db9::/32", &fx->falco);
    NO("dst_ip=2001:db8::/128", &fx->falco);
    YES("dst_ip=2001:db8::1/128", &fx->falco);
    NO("dst_ip=10.0.0.0/8", &fx->falco); /* v6 address, v4 range */
    /* Prefixes that do not end on a byte, and the edges next to 10.1.2.3 and
     * 2001:db8::1 (the last address of their /31 and /127, just inside and outside). */
    YES("src_ip=10.0.0.0/12", &fx->falco);
    YES("src_ip=10.15.255.255/12", &fx->falco); /* host bits set: the same network */
    NO("src_ip=10.16.0.0/12", &fx->falco);
    YES("src_ip=10.1.0.0/20", &fx->falco);
    NO("src_ip=10.1.16.0/20", &fx->falco);
    YES("src_ip=10.1.2.2/31", &fx->falco);
    NO("src_ip=10.1.2.4/31", &fx->falco);
    YES("src_ip=10.1.2.0/30", &fx->falco);
    NO("src_ip=10.1.2.4/30", &fx->falco);
    YES("dst_ip=2001:db8::/127", &fx->falco);
    NO("dst_ip=2001:db8::2/127", &fx->falco);
    YES("dst_ip=2001:db8::/125", &fx->falco);
    /* a stored value that is not an address is in no range, equal to no address */
    NO("src_ip=10.0.0.0/8", &fx->bare);
    NO("src_ip=0.0.0.0/0", &fx->bare);
    YES("src_ip!=10.0.0.0/8", &fx->bare);
    YES("src_ip~not-an", &fx->bare);
    YES("src_ip=not*", &fx->bare);
    NO("dst_ip=10.0.0.0/8", &fx->k8s); /* absent */
    YES("dst_ip!=10.0.0.0/8", &fx->k8s);
    check_desc("src_ip=10.1.2.3/8", "(CIDR src_ip \"10.0.0.0/8\")");
    check_desc("dst_ip!=2001:DB8:0::0/32", "(NCIDR dst_ip \"2001:db8::/32\")");
}

static void test_quoting_and_escapes(void **state)
{
    struct fixture *fx = *state;

    YES("rule=\"Terminal shell in container\"", &fx->falco);
    YES("\"Terminal shell in container\"", &fx->falco);
    YES("\"terminal SHELL\"", &fx->falco);
    NO("\"shell terminal\"", &fx->falco);
    YES("cmdline=bash\\ -i", &fx->falco);
    YES("message~\"say \\\"hi\\\"\\\\now\"", &fx->falco);
    YES("message~(user=root)", &fx->falco); /* balanced parentheses stay in the value */
    YES("(message~(user=root))", &fx->falco);
    YES("message~\"(user=root\"", &fx->falco);
    check_desc("\"AND\"", "(TEXT \"AND\")");
    check_desc("\\AND", "(TEXT \"AND\")");
    check_desc("And", "(TEXT \"And\")");
    check_desc("message=\"a\\tb\\nc\\\\d\\\"e\"", "(EQ message \"a\\tb\\nc\\\\d\\\"e\")");
    check_desc("hello!", "(TEXT \"hello!\")");
}

static void test_precedence(void **state)
{
    struct fixture *fx = *state;

    /* NOT > AND > OR */
    YES("pod=web-1 OR pod=nginx-abc AND user=root", &fx->k8s);
    YES("pod=web-1 OR pod=nginx-abc AND user=root", &fx->falco);
    YES("pod=web-1 OR pod=nginx-abc AND user=bob", &fx->k8s);
    NO("pod=web-1 OR pod=nginx-abc AND user=bob", &fx->falco);
    NO("(pod=web-1 OR pod=nginx-abc) AND user=bob", &fx->k8s);
    YES("NOT pod=web-1 AND user=root", &fx->falco);
    NO("NOT (pod=web-1 OR user=root)", &fx->falco);
    YES("NOT NOT user=root", &fx->falco);
    YES("not pod=web-1 and user=root or pod=web-1", &fx->k8s);
    check_desc("a OR b AND c", "(OR (TEXT \"a\") (AND (TEXT \"b\") (TEXT \"c\")))");
    check_desc("a AND b OR c", "(OR (AND (TEXT \"a\") (TEXT \"b\")) (TEXT \"c\"))");
    check_desc("NOT a AND b", "(AND (NOT (TEXT \"a\")) (TEXT \"b\"))");
    check_desc("NOT (a AND b)", "(NOT (AND (TEXT \"a\") (TEXT \"b\")))");
    check_desc("(a OR b) c", "(AND (OR (TEXT \"a\") (TEXT \"b\")) (TEXT \"c\"))");
    check_desc("a AND (b AND c) d", "(AND (TEXT \"a\") (TEXT \"b\") (TEXT \"c\") (TEXT \"d\"))");
    check_desc("a or (b or c)", "(OR (TEXT \"a\") (TEXT \"b\") (TEXT \"c\"))");
    check_desc("NOT(a)", "(NOT (TEXT \"a\"))");
    check_desc("((a))", "(TEXT \"a\")");
}

static void test_adjacent_and(void **state)
{
    struct fixture *fx = *state;

    YES("pod=nginx-abc user=root", &fx->falco);
    NO("pod=nginx-abc user=bob", &fx->falco);
    YES("pod=nginx-abc \"attached terminal\"", &fx->falco);
    check_desc("pod=x \"shell\"", "(AND (EQ pod \"x\") (TEXT \"shell\"))");
    check_desc("pod=x user=bob \"Terminal shell\"",
               "(AND (EQ pod \"x\") (EQ user \"bob\") (TEXT \"Terminal shell\"))");
    check_desc("(a)(b)", "(AND (TEXT \"a\") (TEXT \"b\"))");
}

static void test_full_text(void **state)
{
    struct fixture *fx = *state;

    YES("shell", &fx->falco);
    YES("SHELL", &fx->falco);
    YES("mitre_execution", &fx->falco); /* only in raw tags */
    YES("MITRE", &fx->falco);
    NO("mitre", &fx->k8s);
    YES("FORBID", &fx->k8s); /* a raw value under a dotted key */
    YES("system:authenticated", &fx->k8s);
    YES("403", &fx->k8s); /* raw integers as decimal */
    YES("1714564500123", &fx->falco);
    NO("responseStatus", &fx->k8s); /* keys are not text */
    YES("handshake", &fx->bare);    /* no raw: normalized fields */
    NO("nothing-like-this", &fx->falco);
    YES("deep", &fx->odd);
    check_desc("Shell", "(TEXT \"Shell\")");
}

static void test_raw_paths(void **state)
{
    struct fixture *fx = *state;

    YES("raw.priority=Notice", &fx->falco);
    NO("raw.priority=notice", &fx->falco); /* raw strings are exact */
    YES("raw.output_fields.proc.cmdline=\"bash -i\"", &fx->falco);
    YES("raw.output_fields.k8s.pod.name=nginx-abc", &fx->falco);
    YES("raw.output_fields.k8s.ns.name=default", &fx->falco);
    YES("raw.output_fields.proc.name~BAS", &fx->falco);
    NO("raw.output_fields.proc=bash", &fx->falco);
    NO("raw.output_fields.k8s=x", &fx->falco);
    YES("raw.user.username=alice@example.com", &fx->k8s);
    YES("raw.objectRef.subresource=exec", &fx->k8s);
    YES("raw.annotations.authorization.k8s.io/decision=forbid", &fx->k8s);
    /* arrays: an index, or any element */
    YES("raw.sourceIPs.0=192.168.10.5", &fx->k8s);
    NO("raw.sourceIPs.1=192.168.10.5", &fx->k8s);
    YES("raw.sourceIPs.1=fd00::7", &fx->k8s);
    NO("raw.sourceIPs.2=fd00::7", &fx->k8s);
    NO("raw.sourceIPs.99999999999=x", &fx->k8s);
    YES("raw.sourceIPs=fd00::7", &fx->k8s);
    YES("raw.user.groups=devs", &fx->k8s);
    YES("raw.tags~mitre", &fx->falco);
    YES("raw.tags=shell", &fx->falco);
    NO("raw.tags!=shell", &fx->falco);
    /* a dotted key beside a nested map: either may match */
    YES("raw.a.b=1", &fx->odd);
    YES("raw.a.b=2", &fx->odd);
    NO("raw.a.b=3", &fx->odd);
    YES("raw.n.1.1.x=deep", &fx->odd);
    YES("raw.n.x=deep", &fx->odd);
    YES("raw.n=3", &fx->odd); /* nested arrays: any element */
    NO("raw.n.0=3", &fx->odd);
    YES("raw.n.0=2", &fx->odd);
    /* maps are not values */
    NO("raw.objectRef=pods", &fx->k8s);
    NO("raw.objectRef~pods", &fx->k8s);
    /* absent */
    NO("raw.nothere=x", &fx->k8s);
    YES("raw.nothere!=x", &fx->k8s);
    YES("raw.nothere!~x", &fx->bare);
    NO("raw.kind=Event", &fx->bare);
    check_desc("raw.a.b>=4", "(GE raw.a.b \"4\")");
}

static void test_raw_values(void **state)
{
    struct fixture *fx = *state;

    YES("raw.responseStatus.code>=400", &fx->k8s);
    YES("raw.responseStatus.code=403", &fx->k8s);
    YES("raw.responseStatus.code=403.0", &fx->k8s);
    YES("raw.responseStatus.code>402.5", &fx->k8s);
    NO("raw.responseStatus.code<400", &fx->k8s);
    NO("raw.responseStatus.code=abc", &fx->k8s);
    YES("raw.responseStatus.code!=abc", &fx->k8s);
    YES("raw.responseStatus.code~40", &fx->k8s);
    YES("raw.responseStatus.code=40*", &fx->k8s);
    YES("raw.ratio<0.5", &fx->k8s);
    YES("raw.ratio=0.25", &fx->k8s);
    YES("raw.ratio>-1", &fx->k8s);
    YES("raw.ok=false", &fx->k8s);
    YES("raw.ok=FALSE", &fx->k8s);
    NO("raw.ok=true", &fx->k8s);
    YES("raw.ok!=true", &fx->k8s);
    NO("raw.ok>0", &fx->k8s);
    YES("raw.output_fields.evt.arg.flags=null", &fx->falco);
    NO("raw.output_fields.evt.arg.flags=x", &fx->falco);
    YES("raw.output_fields.evt.time>1714564500123456788", &fx->falco);
    NO("raw.output_fields.evt.time>1714564500123456789", &fx->falco);
    YES("raw.output_fields.fd.rport=443", &fx->falco);
    /* strings compare as strings */
    YES("raw.auditID>a0", &fx->k8s);
    YES("raw.level<S", &fx->k8s);
    NO("raw.level>=S", &fx->k8s);
}

static void test_ne_absent(void **state)
{
    struct fixture *fx = *state;

    YES("user!=bob", &fx->bare);
    YES("pod!=x", &fx->bare);
    YES("dst_port!=443", &fx->bare);
    YES("seq!=1", &fx->bare);
    YES("severity!=info", &fx->bare);
    YES("rule!~x", &fx->bare);
    YES("raw.a!=1", &fx->bare);
    YES("NOT user=bob", &fx->bare);
}

static void test_hostile_raw(void **state)
{
    /* Stored bytes are not trusted: counts that claim billions of items, values cut
     * short, keys that are not strings, a byte that starts no value. */
    static const uint8_t huge_array[] = { 0xdd, 0xff, 0xff, 0xff, 0xff, 0xa1, 'x' };
    static const uint8_t huge_map[] = { 0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 'a', 0xa1, 'y' };
    static const uint8_t cut_str[] = { 0x81, 0xa1, 'a', 0xa5, 'x' };
    static const uint8_t int_keys[] = { 0x82, 0x01, 0xa1, 'z', 0xa1, 'a', 0xa1, 'w' };
    static const uint8_t bad_byte[] = { 0x91, 0xc1 };
    static const struct span raws[] = {
        { huge_array, sizeof(huge_array) }, { huge_map, sizeof(huge_map) },
        { cut_str, sizeof(cut_str) },       { int_keys, sizeof(int_keys) },
        { bad_byte, sizeof(bad_byte) },
    };
    static const char *const filters[] = {
        "nothing", "raw.b=y", "raw.b!=y", "raw.5=x", "raw.a.b~q", "raw.a<0", "raw.1=z",
    };
    struct trec t;
    (void)state;

    memset(&t, 0, sizeof(t));
    for (size_t i = 0; i < sizeof(raws) / sizeof(raws[0]); i++) {
        rec_init(&t.r);
        t.r.raw = raws[i];
        for (size_t j = 0; j < sizeof(filters) / sizeof(filters[0]); j++) {
            bool neg = strstr(filters[j], "!=") != NULL;
            assert_int_equal(m(filters[j], &t), neg);
        }
    }
    /* what is readable before the damage still matches */
    rec_init(&t.r);
    t.r.raw = raws[1];
    YES("y", &t);
    YES("raw.a=y", &t);
    t.r.raw = raws[0];
    YES("x", &t);
    YES("raw.0=x", &t);
    t.r.raw = raws[3];
    YES("raw.a=w", &t);
}

static void test_errors(void **state)
{
    (void)state;
    check_err("pod=x usr=bob", 7, "unknown field 'usr' (did you mean 'user'?)");
    check_err("Pod=x", 1, "did you mean 'pod'?");
    check_err("proc.cmdline=bash", 1, "fields of the original event are 'raw.proc.cmdline'");
    check_err("bogusfield=1", 1, "unknown field 'bogusfield' (to search for text, quote it)");
    check_err("raw=1", 1, "field 'raw' needs a path");
    check_err("raw.a..b=1", 1, "empty key in path 'raw.a..b'");
    check_err("raw.=1", 1, "empty key");
    check_err("raw.a.=1", 1, "empty key");
    /* CIDR and addresses */
    check_err("src_ip=10.0.0.0/33", 8, "bad CIDR '10.0.0.0/33': prefix length must be 0 to 32");
    check_err("dst_ip=::/129", 8, "bad CIDR");
    check_err("src_ip=10.0.0/8", 8, "bad CIDR '10.0.0/8': '10.0.0' is not an IP address");
    check_err("src_ip=10.0.0.0/x", 8, "bad CIDR");
    check_err("src_ip=10.0.0.0/", 8, "bad CIDR");
    check_err("src_ip=banana", 8, "'banana' is not an IP address or CIDR range");
    check_err("src_ip>1.2.3.4", 7, "operator '>' does not apply to IP field 'src_ip'");
    /* numbers, times, severities */
    check_err("dst_port>=abc", 11, "bad number 'abc' for 'dst_port'");
    check_err("seq=-1", 5, "bad number");
    check_err("dst_port=99999999999999999999", 10, "bad number");
    check_err("dst_port~44", 9, "operator '~' needs a text field; 'dst_port' is a number");
    check_err("seq=4*", 5, "a prefix ('*') needs a text field");
    check_err("severity>=bogus", 11, "unknown severity 'bogus'");
    check_err("severity=8", 10, "unknown severity");
    check_err("ts>=yesterday", 5, "bad time 'yesterday'");
    check_err("ts>=2024-13-01", 5, "bad time");
    check_err("rule~x ts~5m", 10, "operator '~' needs a text field; 'ts' is a time");
    /* parentheses */
    check_err("(pod=x", 1, "unbalanced parenthesis: '(' is never closed");
    check_err("((pod=x)", 1, "'(' is never closed");
    check_err("a (b (c) d", 3, "'(' is never closed");
    check_err("(", 1, "'(' is never closed");
    check_err("ts>100", 4, "bad time '100'");
    check_err("pod=x)", 6, "unbalanced parenthesis: ')' has no matching '('");
    check_err("(pod=x))", 8, "')' has no matching '('");
    check_err(")", 1, "')' has no matching '('");
    check_err("()", 1, "empty parentheses");
    check_err("a ( )", 3, "empty parentheses");
    /* dangling operators */
    check_err("pod=x AND", 7, "dangling operator 'AND': no term after it");
    check_err("pod=x and", 7, "dangling operator 'and'");
    check_err("AND pod=x", 1, "dangling operator 'AND': no term before it");
    check_err("pod=x OR OR user=y", 7, "dangling operator 'OR': no term after it");
    check_err("pod=x OR AND user=y", 7, "dangling operator 'OR'");
    check_err("(a OR) b", 4, "dangling operator 'OR'");
    check_err("NOT", 1, "dangling operator 'NOT': no term after it");
    check_err("a NOT", 3, "dangling operator 'NOT'");
    check_err("NOT OR a", 1, "dangling operator 'NOT'");
    check_err("a OR", 3, "dangling operator 'OR'");
    /* values */
    check_err("pod=", 4, "empty value after 'pod='");
    check_err("pod= user=x", 4, "empty value");
    check_err("pod=\"\"", 4, "empty value");
    check_err("pod!=", 4, "empty value after 'pod!='");
    check_err("a (pod=)", 7, "empty value");
    check_err("\"\"", 1, "empty search text");
    check_err("user=\"bob", 6, "unterminated quote");
    check_err("\"Terminal shell", 1, "unterminated quote");
    check_err("\"a\\\"", 1, "unterminated quote");
    check_err("\"a\"b", 4, "expected a space or ')' after the closing quote");
    check_err("user=\"bob\"x", 11, "after the closing quote");
    check_err("=x", 1, "expected a field name before '='");
    check_err("a !=x", 3, "expected a field name before '!='");
    check_err("foo\\", 4, "a backslash ends the filter");
    /* columns count characters, not bytes */
    check_err("\xc3\xa9t\xc3\xa9 usr=x", 5, "unknown field 'usr'");
    check_err("\xe2\x9c\x93 (", 3, "'(' is never closed");
    /* names in messages are escaped */
    check_err("a\x1b=1", 1, "unknown field 'a\\x1b'");
}

static void test_limits(void **state)
{
    struct buf b;
    struct filter *f = NULL;
    (void)state;

    buf_init(&b, 1 << 20);
    /* text */
    for (int i = 0; i < FILTER_MAX_TEXT; i++) {
        assert_int_equal(buf_append_byte(&b, 'a'), 0);
    }
    assert_int_equal(filter_parse(buf_cstr(&b), NOW_NS, &f, NULL, NULL), 0);
    filter_free(f);
    assert_int_equal(buf_append_byte(&b, 'a'), 0);
    check_err(buf_cstr(&b), 1, "filter is 4097 bytes, more than the 4096 allowed");
    /* terms: 256 fit, the 257th is pointed at */
    buf_reset(&b);
    for (int i = 0; i < FILTER_MAX_TERMS; i++) {
        assert_int_equal(buf_append_str(&b, "a "), 0);
    }
    assert_int_equal(filter_parse(buf_cstr(&b), NOW_NS, &f, NULL, NULL), 0);
    filter_free(f);
    assert_int_equal(buf_append_str(&b, "pod=x"), 0);
    check_err(buf_cstr(&b), 2 * FILTER_MAX_TERMS + 1, "more than 256 terms");
    /* depth: 64 parentheses fit */
    buf_reset(&b);
    for (int i = 0; i < FILTER_MAX_DEPTH; i++) {
        assert_int_equal(buf_append_byte(&b, '('), 0);
    }
    assert_int_equal(buf_append_byte(&b, 'a'), 0);
    for (int i = 0; i < FILTER_MAX_DEPTH; i++) {
        assert_int_equal(buf_append_byte(&b, ')'), 0);
    }
    assert_int_equal(filter_parse(buf_cstr(&b), NOW_NS, &f, NULL, NULL), 0);
    filter_free(f);
    buf_reset(&b);
    for (int i = 0; i <= FILTER_MAX_DEPTH; i++) {
        assert_int_equal(buf_append_byte(&b, '('), 0);
    }
    assert_int_equal(buf_append_byte(&b, 'a'), 0);
    check_err(buf_cstr(&b), FILTER_MAX_DEPTH + 1, "nested deeper than 64 levels");
    /* NOT counts as a level */
    buf_reset(&b);
    for (int i = 0; i <= FILTER_MAX_DEPTH; i++) {
        assert_int_equal(buf_append_str(&b, "NOT "), 0);
    }
    assert_int_equal(buf_append_byte(&b, 'a'), 0);
    check_err(buf_cstr(&b), 4 * FILTER_MAX_DEPTH + 1, "nested deeper than 64 levels");
    buf_release(&b);
}

static void test_error_without_outputs(void **state)
{
    struct filter *f = NULL;
    (void)state;

    assert_int_equal(filter_parse("usr=x", NOW_NS, &f, NULL, NULL), VG_EPARSE);
    assert_null(f);
}

static void test_time_bounds(void **state)
{
    static const struct {
        const char *text;
        int64_t since, until;
    } cases[] = {
        { "", INT64_MIN, INT64_MAX },
        { "pod=x", INT64_MIN, INT64_MAX },
        { "ts>=1h", NOW_NS - 3600 * VG_NS_PER_SEC, INT64_MAX },
        { "ts>=1h ts<10m pod=x", NOW_NS - 3600 * VG_NS_PER_SEC, NOW_NS - 600 * VG_NS_PER_SEC },
        { "ts>=2h AND ts>=1h", NOW_NS - 3600 * VG_NS_PER_SEC, INT64_MAX },
        { "ts>2024-05-01T12:00:00Z ts<=2024-05-01T13:00:00Z", NOW_NS + 1,
          NOW_NS + 3600 * VG_NS_PER_SEC + 1 },
        { "ts>2024-05-01T13:00:00Z ts<2024-05-01T12:00:00Z", NOW_NS + 3600 * VG_NS_PER_SEC + 1,
          NOW_NS },
        { "ts=2024-05-01T12:00:00Z", NOW_NS, NOW_NS + 1 },
        { "ts>=1h OR pod=x", INT64_MIN, INT64_MAX },
        { "NOT ts<5m", INT64_MIN, INT64_MAX },
        { "ts!=5m", INT64_MIN, INT64_MAX },
        { "received>=1h", INT64_MIN, INT64_MAX },
        { "(ts>=1h OR pod=y) ts<1m", INT64_MIN, NOW_NS - 60 * VG_NS_PER_SEC },
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct filter *f = NULL;
        int64_t since;
        int64_t until;
        assert_int_equal(filter_parse(cases[i].text, NOW_NS, &f, NULL, NULL), 0);
        filter_time_bounds(f, &since, &until);
        if (since != cases[i].since || until != cases[i].until) {
            fail_msg("'%s': [%lld, %lld), expected [%lld, %lld)", cases[i].text, (long long)since,
                     (long long)until, (long long)cases[i].since, (long long)cases[i].until);
        }
        filter_free(f);
    }
}

/* seq=N..M (issue 13 item 7): both ends included, != outside, errors that name the
 * token; and the seq range the scanner skips segments and blocks by. */
static void test_seq_range(void **state)
{
    struct fixture *fx = *state;

    YES("seq=42..42", &fx->falco);
    YES("seq=1..42", &fx->falco);
    YES("seq=42..100", &fx->falco);
    NO("seq=43..100", &fx->falco);
    NO("seq=1..41", &fx->falco);
    NO("seq=1..100", &fx->k8s); /* absent */
    YES("seq!=43..100", &fx->falco);
    NO("seq!=40..50", &fx->falco);
    YES("seq!=1..2", &fx->k8s);
    YES("seq=0..18446744073709551615", &fx->falco);
    check_desc("seq=5..9", "(EQ seq 5..9)");
    check_desc("NOT seq!=5..9", "(NOT (NE seq 5..9))");
    check_err("seq=9..5", 5, "empty range '9..5'");
    check_err("seq>=1..5", 4, "a range N..M goes with '=' or '!='");
    check_err("seq=1..", 5, "bad range '1..'");
    check_err("seq=..5", 5, "bad range '..5'");
    check_err("seq=a..b", 5, "bad range");
    check_err("seq=1..2..3", 5, "bad range");
    check_err("dst_port=1..2", 10, "bad number");

    static const struct {
        const char *text;
        uint64_t lo, hi;
    } cases[] = {
        { "", 0, UINT64_MAX },
        { "pod=x", 0, UINT64_MAX },
        { "seq=42", 42, 42 },
        { "seq=5..9", 5, 9 },
        { "seq=5..9 seq=7..20", 7, 9 },
        { "seq>=5 seq<9", 5, 8 },
        { "seq>5 seq<=9 pod=x", 6, 9 },
        { "seq<0", UINT64_MAX, 0 },
        { "seq>18446744073709551615", UINT64_MAX, 0 },
        { "seq=5..9 OR pod=x", 0, UINT64_MAX },
        { "seq!=5..9", 0, UINT64_MAX },
        { "NOT seq=5", 0, UINT64_MAX },
        { "(seq=1 OR seq=2) seq<=10", 0, 10 },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct filter *f = NULL;
        uint64_t lo;
        uint64_t hi;
        assert_int_equal(filter_parse(cases[i].text, NOW_NS, &f, NULL, NULL), 0);
        filter_seq_bounds(f, &lo, &hi);
        if (lo != cases[i].lo || hi != cases[i].hi) {
            fail_msg("'%s': [%llu, %llu], expected [%llu, %llu]", cases[i].text,
                     (unsigned long long)lo, (unsigned long long)hi,
                     (unsigned long long)cases[i].lo, (unsigned long long)cases[i].hi);
        }
        filter_free(f);
    }
}

static void check_join(int argc, char **argv, const char *want)
{
    char *got = filter_join_args(argc, argv);
    struct filter *f = NULL;
    struct errbuf eb;

    if (strcmp(got, want) != 0) {
        fail_msg("joined as '%s', expected '%s'", got, want);
    }
    errbuf_clear(&eb);
    if (filter_parse(got, NOW_NS, &f, NULL, &eb) != 0) {
        fail_msg("'%s' does not parse: %s", got, errbuf_msg(&eb));
    }
    filter_free(f);
    free(got);
}

static void test_join_args(void **state)
{
    char *a1[] = { "pod=x", "user=bob", "Terminal shell" };
    char *a2[] = { "message=Terminal shell in container" };
    char *a3[] = { "pod=x AND user=bob" };
    char *a4[] = { "(", "a", "OR", "b", ")", "" };
    char *a5[] = { "back\\slash and \"quote\" here" };
    char *a6[] = { "a\\b c" };
    char *a7[] = { "rm -rf /", "severity>=warning" };
    char *a8[] = { "raw.user.username=alice smith" };
    char *a9[] = { "shell and bash" };
    (void)state;

    check_join(3, a1, "pod=x user=bob \"Terminal shell\"");
    check_join(1, a2, "message=\"Terminal shell in container\"");
    check_join(1, a3, "pod=x AND user=bob");
    check_join(6, a4, "( a OR b )");
    check_join(1, a6, "\"a\\\\b c\"");
    check_join(2, a7, "\"rm -rf /\" severity>=warning");
    check_join(1, a8, "raw.user.username=\"alice smith\"");
    check_join(1, a9, "\"shell and bash\"");
    check_join(0, NULL, "");
    /* a word with quotes already reads as syntax and passes through */
    char *got = filter_join_args(1, a5);
    assert_string_equal(got, "back\\slash and \"quote\" here");
    free(got);
    check_desc("message=\"Terminal shell in container\"",
               "(EQ message \"Terminal shell in container\")");
}

static char *caret(const char *text, int col)
{
    char *out = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&out, &n);

    assert_non_null(f);
    filter_error_caret(text, col, f);
    fclose(f);
    return out;
}

static void test_error_caret(void **state)
{
    char *s;
    (void)state;

    s = caret("pod=x usr=bob", 7);
    assert_string_equal(s, "pod=x usr=bob\n      ^\n");
    free(s);
    s = caret("\xc3\xa9 usr", 3);
    assert_string_equal(s, "\xc3\xa9 usr\n  ^\n");
    free(s);
    s = caret("a\tb\x1b", 3);
    assert_string_equal(s, "a b \n  ^\n");
    free(s);
    s = caret("a\xff", 3);
    assert_string_equal(s, "a?\n  ^\n");
    free(s);
    s = caret("ab", 99); /* clamped just past the end */
    assert_string_equal(s, "ab\n  ^\n");
    free(s);
    s = caret("ab", 0);
    assert_string_equal(s, "ab\n^\n");
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_matches_all),
        cmocka_unit_test(test_string_eq_ne),
        cmocka_unit_test(test_nocase_fields),
        cmocka_unit_test(test_contains),
        cmocka_unit_test(test_prefix),
        cmocka_unit_test(test_string_order),
        cmocka_unit_test(test_severity_order),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_times),
        cmocka_unit_test(test_ip_and_cidr),
        cmocka_unit_test(test_quoting_and_escapes),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_adjacent_and),
        cmocka_unit_test(test_full_text),
        cmocka_unit_test(test_raw_paths),
        cmocka_unit_test(test_raw_values),
        cmocka_unit_test(test_ne_absent),
        cmocka_unit_test(test_hostile_raw),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_error_without_outputs),
        cmocka_unit_test(test_time_bounds),
        cmocka_unit_test(test_seq_range),
        cmocka_unit_test(test_join_args),
        cmocka_unit_test(test_error_caret),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
