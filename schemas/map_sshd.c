/* schemas/map_sshd.c: auth lines from sshd, PAM, sudo, su and the shadow tools, the
 * syslog headers they come with, and the mapper for sshd/syslog records shipped as maps
 * (Filebeat-like JSON, Fluent Bit's syslog and tail inputs). FORMATS.md section 3.
 *
 * Parsing is by fixed prefixes and by anchoring at the END of a line: a user name is
 * chosen by the client and may contain " from 6.6.6.6", so the address is taken from
 * the last " from " (sshd appends it after the user), never the first. Outcomes:
 * failure for the lines FORMATS.md lists as failures plus pre-auth disconnects of an
 * authenticating or invalid user (the client gave up or was cut off before success),
 * success for Accepted, session opened, sudo commands run, su; unknown for neutral lines
 * (session closed, connection opened/closed without a user). Pure; any thread. */
#include <string.h>
#include <time.h>

#include "common/mp.h"
#include "common/time.h"
#include "schemas/map_int.h"

/* What one auth line says; spans into the line, or static strings. */
struct auth {
    const char *outcome;
    const char *action;
    struct span action_s; /* an action taken from the line (the sshd method) */
    struct span user;
    struct span ip;
    struct span dst_ip;
    struct span cmdline;
    struct span object;
    int64_t dst_port;
    bool has_dst_port;
};

static bool eat(struct span *s, const char *lit)
{
    size_t n = strlen(lit);

    if (s->n < n || memcmp(s->p, lit, n) != 0) {
        return false;
    }
    span_advance(s, n);
    return true;
}

static bool starts(struct span s, const char *lit)
{
    return eat(&s, lit);
}

static bool ends(struct span s, const char *lit)
{
    size_t n = strlen(lit);

    return s.n >= n && memcmp(s.p + s.n - n, lit, n) == 0;
}

/* Offset of the first (or last) occurrence of lit in s, or -1. */
static long find(struct span s, const char *lit)
{
    size_t n = strlen(lit);

    for (size_t i = 0; n <= s.n && i <= s.n - n; i++) {
        if (memcmp(s.p + i, lit, n) == 0) {
            return (long)i;
        }
    }
    return -1;
}

static long rfind(struct span s, const char *lit)
{
    size_t n = strlen(lit);

    for (size_t i = s.n >= n ? s.n - n + 1 : 0; i-- > 0;) {
        if (memcmp(s.p + i, lit, n) == 0) {
            return (long)i;
        }
    }
    return -1;
}

static struct span trim(struct span s)
{
    while (s.n && (s.p[0] == ' ' || s.p[0] == '\t')) {
        span_advance(&s, 1);
    }
    while (s.n && (s.p[s.n - 1] == ' ' || s.p[s.n - 1] == '\t' || s.p[s.n - 1] == '\r' ||
                   s.p[s.n - 1] == '\n')) {
        s.n--;
    }
    return s;
}

static struct span head(struct span s, size_t n)
{
    return (struct span){ s.p, n < s.n ? n : s.n };
}

static struct span tail(struct span s, size_t off)
{
    return off < s.n ? (struct span){ s.p + off, s.n - off } : (struct span){ s.p + s.n, 0 };
}

/* The token at the front of s, up to a space or one of stop; advances past it. */
static struct span token(struct span *s, const char *stop)
{
    size_t i = 0;

    while (i < s->n && s->p[i] != ' ' && !(stop && strchr(stop, s->p[i]))) {
        i++;
    }
    struct span t = head(*s, i);
    span_advance(s, i);
    return t;
}

/* "USER from ADDR[ ...]": the user (may be empty) and the address after the LAST
 * "from " that starts a word. */
static bool user_from(struct span rest, struct auth *a)
{
    long i = rfind(rest, "from ");

    while (i > 0 && rest.p[i - 1] != ' ') {
        i = rfind(head(rest, (size_t)i), "from ");
    }
    if (i < 0) {
        return false;
    }
    a->user = trim(head(rest, (size_t)(i > 0 ? i - 1 : 0)));
    struct span after = tail(rest, (size_t)i + 5);
    a->ip = token(&after, NULL);
    return true;
}

/* "[USER ]ADDR port N...": the address is the last word before the last " port ". */
static bool user_ip_port(struct span rest, struct auth *a)
{
    long p = rfind(rest, " port ");

    if (p <= 0) {
        return false;
    }
    struct span before = head(rest, (size_t)p);
    long sp = rfind(before, " ");
    a->ip = sp < 0 ? before : tail(before, (size_t)sp + 1);
    a->user = sp < 0 ? (struct span){ before.p, 0 } : trim(head(before, (size_t)sp));
    return a->ip.n > 0;
}

/* The value of "key=" up to the next space, in a PAM "k=v k=v" list. */
static struct span kv(struct span s, const char *key)
{
    size_t n = strlen(key);

    for (long i = find(s, key); i >= 0;) {
        if (i == 0 || s.p[i - 1] == ' ' || s.p[i - 1] == ';') {
            struct span v = tail(s, (size_t)i + n);
            return token(&v, NULL);
        }
        struct span rest = tail(s, (size_t)i + 1);
        long j = find(rest, key);
        i = j < 0 ? -1 : i + 1 + j;
    }
    return (struct span){ NULL, 0 };
}

static void fail(struct auth *a, const char *action)
{
    a->outcome = "failure";
    a->action = action;
}

static void ok(struct auth *a, const char *action)
{
    a->outcome = "success";
    a->action = action;
}

static void neutral(struct auth *a, const char *action)
{
    a->outcome = "unknown";
    a->action = action;
}

/* "Failed|Accepted METHOD for [invalid user ]USER from ADDR port N ssh2[: KEY]" */
static bool parse_method(struct span s, struct auth *a)
{
    bool accepted = eat(&s, "Accepted ");

    if (!accepted && !eat(&s, "Failed ")) {
        return false;
    }
    struct span method = token(&s, NULL);
    if (method.n == 0 || !eat(&s, " for ")) {
        return false;
    }
    eat(&s, "invalid user ");
    if (!user_from(s, a)) {
        return false;
    }
    /* keyboard-interactive/pam -> keyboard-interactive */
    const uint8_t *slash = memchr(method.p, '/', method.n);
    a->action_s = slash ? head(method, (size_t)(slash - method.p)) : method;
    a->outcome = accepted ? "success" : "failure";
    return true;
}

/* "Connection closed by|Disconnected from|Connection reset by" + who. */
static bool parse_disconnect(struct span s, struct auth *a)
{
    if (!eat(&s, "Connection closed by ") && !eat(&s, "Disconnected from ") &&
        !eat(&s, "Connection reset by ")) {
        return false;
    }
    if (eat(&s, "authenticating user ")) {
        if (!user_ip_port(s, a)) {
            return false;
        }
        fail(a, "disconnect");
        return true;
    }
    if (eat(&s, "invalid user ")) {
        if (!user_ip_port(s, a)) {
            return false;
        }
        fail(a, "invalid_user");
        return true;
    }
    if (eat(&s, "user ")) {
        if (!user_ip_port(s, a)) {
            return false;
        }
        neutral(a, "disconnect");
        return true;
    }
    /* "ADDR port N": no user */
    struct span ip = token(&s, NULL);
    if (!eat(&s, " port ") || !map__is_ip(ip)) {
        return false;
    }
    a->ip = ip;
    neutral(a, "disconnect");
    return true;
}

static bool parse_sshd(struct span s, struct auth *a)
{
    long i;

    if (parse_method(s, a) || parse_disconnect(s, a)) {
        return true;
    }
    if (eat(&s, "Invalid user ") || eat(&s, "Illegal user ")) {
        if (!user_from(s, a)) {
            return false;
        }
        fail(a, "invalid_user");
        return true;
    }
    if (eat(&s, "input_userauth_request: invalid user")) {
        a->user = trim(s);
        fail(a, "invalid_user");
        return true;
    }
    if (eat(&s, "maximum authentication attempts exceeded for ")) {
        eat(&s, "invalid user ");
        if (!user_from(s, a)) {
            return false;
        }
        fail(a, "max_auth_tries");
        return true;
    }
    if (starts(s, "Disconnecting") && find(s, "Too many authentication failures") >= 0) {
        struct span who = s;
        if (eat(&who, "Disconnecting authenticating user ") ||
            eat(&who, "Disconnecting invalid user ")) {
            long c = rfind(who, ":");
            user_ip_port(c > 0 ? head(who, (size_t)c) : who, a);
        }
        fail(a, "max_auth_tries");
        return true;
    }
    if (eat(&s, "Too many authentication failures for ")) {
        eat(&s, "invalid user ");
        if (!user_from(s, a)) {
            a->user = token(&s, NULL);
        }
        fail(a, "max_auth_tries");
        return true;
    }
    if (eat(&s, "User ") && (i = find(s, " not allowed because ")) > 0) {
        if (!user_from(head(s, (size_t)i), a)) {
            return false;
        }
        fail(a, "not_allowed");
        return true;
    }
    if (eat(&s, "refused connect from ")) {
        long o = rfind(s, "(");
        if (o >= 0 && ends(s, ")")) {
            a->ip = (struct span){ s.p + o + 1, s.n - (size_t)o - 2 };
        }
        fail(a, "refused_connect");
        return true;
    }
    if (eat(&s, "Unable to negotiate with ")) {
        a->ip = token(&s, NULL);
        fail(a, "negotiation");
        return true;
    }
    if (eat(&s, "banner exchange: Connection from ")) {
        a->ip = token(&s, NULL);
        fail(a, "banner");
        return true;
    }
    if (eat(&s, "Did not receive identification string from ")) {
        a->ip = token(&s, NULL);
        fail(a, "banner");
        return true;
    }
    if (eat(&s, "Bad protocol version identification ")) {
        if (!user_from(s, a)) {
            return false;
        }
        a->user = (struct span){ NULL, 0 }; /* the quoted banner, not a user */
        fail(a, "banner");
        return true;
    }
    if (eat(&s, "Timeout before authentication for ")) {
        a->ip = token(&s, NULL);
        fail(a, "timeout");
        return true;
    }
    if (eat(&s, "ssh_dispatch_run_fatal: Connection from ")) {
        long c = find(s, ": ");
        struct span who = c > 0 ? head(s, (size_t)c) : s;
        if (eat(&who, "authenticating user ") || eat(&who, "invalid user ") || eat(&who, "user ")) {
            user_ip_port(who, a);
        } else {
            a->ip = token(&who, NULL);
        }
        fail(a, "protocol_error");
        return true;
    }
    if (eat(&s, "Connection from ")) {
        /* "ADDR port N on ADDR port M[ rdomain R]" */
        a->ip = token(&s, NULL);
        if (!eat(&s, " port ")) {
            return false;
        }
        token(&s, NULL);
        if (eat(&s, " on ")) {
            a->dst_ip = token(&s, NULL);
            if (eat(&s, " port ")) {
                int64_t port;
                if (parse_i64(token(&s, NULL), 0, 65535, &port) == 0) {
                    a->dst_port = port;
                    a->has_dst_port = true;
                }
            }
        }
        neutral(a, "connect");
        return true;
    }
    if (eat(&s, "Received disconnect from ")) {
        a->ip = token(&s, NULL);
        neutral(a, "disconnect");
        return true;
    }
    if (eat(&s, "PAM: Authentication failure for ")) {
        eat(&s, "illegal user ");
        if (!user_from(s, a)) {
            return false;
        }
        fail(a, "pam");
        return true;
    }
    return false;
}

/* pam_MODULE(SERVICE:TYPE): ..., and "PAM N more authentication failures; ..." */
static bool parse_pam(struct span s, struct auth *a)
{
    if (eat(&s, "PAM ")) {
        struct span n = token(&s, NULL);
        if (n.n == 0 || !eat(&s, " more authentication failure")) {
            return false;
        }
        a->ip = kv(s, "rhost=");
        a->user = kv(s, "user=");
        fail(a, "pam");
        return true;
    }
    if (!starts(s, "pam_")) {
        return false;
    }
    long c = find(s, "): ");
    if (c < 0) {
        return false;
    }
    struct span module = head(s, (size_t)c + 1);
    struct span m = tail(s, (size_t)c + 3);
    if (eat(&m, "authentication failure;")) {
        a->ip = kv(m, "rhost=");
        a->user = kv(m, "user=");
        fail(a, "pam");
        return true;
    }
    if (eat(&m, "session opened for user ")) {
        a->user = token(&m, "(");
        ok(a, "session");
        return true;
    }
    if (eat(&m, "session closed for user ")) {
        a->user = token(&m, "(");
        neutral(a, "session_close");
        return true;
    }
    if (eat(&m, "password changed for ")) {
        a->user = token(&m, NULL);
        ok(a, "passwd");
        return true;
    }
    /* pam_tally2: "user NAME (UID) tally N, deny M"; pam_faillock: "Consecutive login
     * failures for user NAME account temporarily locked". */
    if (starts(module, "pam_tally") && eat(&m, "user ") && find(m, " tally ") > 0) {
        a->user = token(&m, NULL);
        fail(a, "lockout");
        return true;
    }
    if (eat(&m, "Consecutive login failures for user ")) {
        a->user = token(&m, NULL);
        fail(a, "lockout");
        return true;
    }
    return false;
}

/* sudo: "USER : [REASON ; ]TTY=t ; PWD=d ; USER=target ; COMMAND=cmd" (the user is
 * space-padded; COMMAND comes last and may itself contain " ; "). */
static bool parse_sudo(struct span s, struct auth *a)
{
    struct span user = token(&s, NULL);
    long cmd;

    if (user.n == 0 || !eat(&s, " : ") || (cmd = find(s, "COMMAND=")) < 0) {
        return false;
    }
    struct span fields = head(s, (size_t)cmd);
    struct span first = fields;
    long semi = find(fields, " ; ");
    if (semi >= 0) {
        first = head(fields, (size_t)semi);
    }
    a->user = user;
    a->cmdline = trim(tail(s, (size_t)cmd + 8));
    a->object = kv(fields, "USER=");
    if (a->object.n && a->object.p[a->object.n - 1] == ';') {
        a->object.n--;
    }
    if (memchr(first.p, '=', first.n) == NULL && first.n > 0) {
        fail(a, "sudo"); /* "user NOT in sudoers", "3 incorrect password attempts" */
    } else {
        ok(a, "sudo");
    }
    return true;
}

/* shadow su: "Successful su for TARGET by USER", "FAILED su for TARGET by USER";
 * util-linux su: "(to TARGET) USER on TTY", "FAILED SU (to TARGET) USER on TTY". */
static bool parse_su(struct span s, struct auth *a)
{
    bool good = eat(&s, "Successful su for ");

    if (good || eat(&s, "FAILED su for ")) {
        long by = rfind(s, " by ");
        if (by <= 0) {
            return false;
        }
        a->object = head(s, (size_t)by);
        a->user = trim(tail(s, (size_t)by + 4));
        if (good) {
            ok(a, "su");
        } else {
            fail(a, "su");
        }
        return true;
    }
    good = !eat(&s, "FAILED SU ");
    if (!eat(&s, "(to ")) {
        return false;
    }
    a->object = token(&s, ")");
    if (!eat(&s, ") ")) {
        return false;
    }
    a->user = token(&s, NULL);
    if (!eat(&s, " on ")) {
        return false;
    }
    if (good) {
        ok(a, "su");
    } else {
        fail(a, "su");
    }
    return true;
}

/* useradd/groupadd/userdel. */
static bool parse_account(struct span s, struct auth *a)
{
    if (eat(&s, "new user: name=")) {
        a->user = token(&s, ",");
        ok(a, "useradd");
        return true;
    }
    if (eat(&s, "new group: name=")) {
        a->object = token(&s, ",");
        ok(a, "groupadd");
        return true;
    }
    if (eat(&s, "failed adding user '")) {
        a->user = token(&s, "'");
        fail(a, "useradd");
        return true;
    }
    if (eat(&s, "delete user '")) {
        a->user = token(&s, "'");
        ok(a, "userdel");
        return true;
    }
    return false;
}

uint32_t map_repeat_count(struct span line, struct span *inner)
{
    struct span s = line;
    uint64_t n;

    *inner = line;
    if (!eat(&s, "message repeated ")) {
        return 1;
    }
    struct span num = token(&s, NULL);
    if (parse_u64(num, UINT32_MAX, &n) != 0 || n == 0 || !eat(&s, " times: [")) {
        return 1;
    }
    s = trim(s);
    if (s.n && s.p[s.n - 1] == ']') {
        s.n--;
    }
    *inner = trim(s);
    return (uint32_t)n;
}

bool map_auth_line(struct span line, struct rec *r, struct buf *scratch)
{
    struct rec hdr;
    struct span s = trim(line);
    struct span msg;
    struct auth a;
    bool have_hdr;

    (void)scratch;
    rec_init(&hdr);
    have_hdr = map_syslog_bsd(s, 0, &hdr, &msg);
    if (have_hdr) {
        s = trim(msg);
    }
    map_repeat_count(s, &s);
    if (ends(s, "[preauth]")) {
        s = trim(head(s, s.n - 9));
    }
    memset(&a, 0, sizeof(a));
    struct span m = s;
    if (!eat(&m, "error: ")) {
        eat(&m, "fatal: ");
    }
    if (!(parse_sshd(m, &a) || parse_pam(s, &a) || parse_sudo(s, &a) || parse_su(s, &a) ||
          parse_account(s, &a))) {
        return false;
    }
    bool failed = strcmp(a.outcome, "failure") == 0;
    rec_set(r, VG_F_KIND, SPAN_LIT("auth"));
    rec_set(r, VG_F_OUTCOME, span_str(a.outcome));
    rec_set(r, VG_F_ACTION, a.action ? span_str(a.action) : a.action_s);
    map__set_sev(r, failed ? VG_SEV_WARNING : VG_SEV_INFO);
    rec_set(r, VG_F_USER, a.user);
    if (a.ip.n) {
        map__set_ip(r, VG_F_SRC_IP, a.ip);
    }
    if (a.dst_ip.n) {
        map__set_ip(r, VG_F_DST_IP, a.dst_ip);
    }
    if (a.has_dst_port) {
        r->dst_port = a.dst_port;
        r->has_dst_port = true;
    }
    rec_set(r, VG_F_CMDLINE, a.cmdline);
    rec_set(r, VG_F_OBJECT, a.object);
    if (have_hdr) {
        if (!rec_has(r, VG_F_HOST)) {
            rec_set(r, VG_F_HOST, hdr.str[VG_F_HOST]);
        }
        if (!rec_has(r, VG_F_PROCESS)) {
            rec_set(r, VG_F_PROCESS, hdr.str[VG_F_PROCESS]);
        }
    }
    return true;
}

/* ---- syslog headers ---- */

static bool digits(struct span *s, size_t min, size_t max, unsigned *out)
{
    size_t i = 0;
    unsigned v = 0;

    while (i < s->n && i < max && s->p[i] >= '0' && s->p[i] <= '9') {
        v = v * 10 + (unsigned)(s->p[i] - '0');
        i++;
    }
    if (i < min) {
        return false;
    }
    span_advance(s, i);
    *out = v;
    return true;
}

static void skip_spaces(struct span *s)
{
    while (s->n && s->p[0] == ' ') {
        span_advance(s, 1);
    }
}

static int64_t year_of(int64_t ns)
{
    time_t sec = (time_t)(ns / VG_NS_PER_SEC - (ns % VG_NS_PER_SEC < 0));
    struct tm tm;

    if (!gmtime_r(&sec, &tm)) {
        return 1970;
    }
    return (int64_t)tm.tm_year + 1900;
}

static bool leap_year(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* "Mmm dd HH:MM:SS " with the year inferred from ref_ts (map.h: the latest year that
 * does not put the line more than MAP_SYSLOG_SKEW_NS after ref_ts). */
static bool bsd_time(struct span *s, int64_t ref_ts, int64_t *ns)
{
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    unsigned mo = 0;
    unsigned d;
    unsigned h;
    unsigned mi;
    unsigned sec;

    if (s->n < 15) {
        return false;
    }
    for (unsigned i = 0; i < 12; i++) {
        if (memcmp(s->p, months + 3 * i, 3) == 0) {
            mo = i + 1;
        }
    }
    if (mo == 0 || s->p[3] != ' ') {
        return false;
    }
    span_advance(s, 3);
    skip_spaces(s);
    if (!digits(s, 1, 2, &d) || !eat(s, " ") || !digits(s, 2, 2, &h) || !eat(s, ":") ||
        !digits(s, 2, 2, &mi) || !eat(s, ":") || !digits(s, 2, 2, &sec) || d < 1 || d > 31 ||
        h > 23 || mi > 59 || sec > 60) {
        return false;
    }
    /* Candidates from the year after ref_ts's back to four years before it (Feb 29 needs
     * a leap year), kept inside the years int64 ns can hold (1678..2261); the first that
     * is not past ref_ts + skew is the latest such. December lines received in early
     * January are last year's, early January lines received on December 31 from a zone
     * ahead of UTC next year's. Without one (ref_ts at the start of the range), the
     * earliest candidate. */
    int64_t day_s = (int64_t)h * 3600 + mi * 60 + sec;
    int64_t y0 = year_of(ref_ts);
    bool no_limit = ref_ts > INT64_MAX - MAP_SYSLOG_SKEW_NS;
    bool have = false;
    int64_t t = 0;
    for (int64_t y = y0 + 1; y >= y0 - 4; y--) {
        int64_t yc = y < 1678 ? 1678 : y > 2261 ? 2261 : y;
        if (mo == 2 && d == 29 && !leap_year(yc)) {
            continue;
        }
        t = (vg_days_from_civil(yc, mo, d) * 86400 + day_s) * VG_NS_PER_SEC;
        if (no_limit || t <= ref_ts + MAP_SYSLOG_SKEW_NS) {
            have = true;
            break;
        }
    }
    if (!have) {
        int64_t yc = y0 - 4 < 1678 ? 1678 : y0 - 4 > 2261 ? 2261 : y0 - 4;
        t = (vg_days_from_civil(yc, mo, d) * 86400 + day_s) * VG_NS_PER_SEC;
    }
    *ns = t;
    return true;
}

/* "prog[pid]:" or "prog:" at the front of s; advances past it and one space. */
static bool tag(struct span *s, struct span *prog)
{
    size_t i = 0;

    while (i < s->n && i < 64 && s->p[i] != ' ' && s->p[i] != '[' && s->p[i] != ':') {
        i++;
    }
    if (i == 0 || i == s->n) {
        return false;
    }
    struct span t = *s;
    *prog = head(t, i);
    span_advance(&t, i);
    if (t.p[0] == '[') {
        const uint8_t *close = memchr(t.p, ']', t.n < 24 ? t.n : 24);
        if (!close) {
            return false;
        }
        span_advance(&t, (size_t)(close - t.p) + 1);
    }
    if (!eat(&t, ":")) {
        return false;
    }
    eat(&t, " ");
    *s = t;
    return true;
}

/* RFC 5424 after "<PRI>1 ": TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD [MSG]. */
static bool rfc5424(struct span s, struct rec *out, struct span *msg)
{
    struct span ts = token(&s, NULL);
    int64_t ns;

    if (!eat(&s, " ")) {
        return false;
    }
    struct span host = token(&s, NULL);
    if (!eat(&s, " ")) {
        return false;
    }
    struct span app = token(&s, NULL);
    if (!eat(&s, " ")) {
        return false;
    }
    token(&s, NULL); /* procid */
    if (!eat(&s, " ")) {
        return false;
    }
    token(&s, NULL); /* msgid */
    if (!eat(&s, " ") || s.n == 0) {
        return false;
    }
    if (!span_eq_str(ts, "-")) {
        if (!map__rfc3339(ts, &ns)) {
            return false;
        }
        map__set_ts(out, ns);
    }
    if (s.p[0] == '-') {
        span_advance(&s, 1);
    } else {
        /* SD-ELEMENTs: [id k="v" ...]...; in a value, \" \\ and \] are escaped */
        while (s.n && s.p[0] == '[') {
            bool quoted = false;
            size_t i = 1;
            for (; i < s.n; i++) {
                if (quoted && s.p[i] == '\\') {
                    i++;
                } else if (s.p[i] == '"') {
                    quoted = !quoted;
                } else if (!quoted && s.p[i] == ']') {
                    break;
                }
            }
            if (i >= s.n) {
                return false;
            }
            span_advance(&s, i + 1);
        }
        if (s.n && s.p[0] != ' ') {
            return false;
        }
    }
    eat(&s, " ");
    eat(&s, "\xef\xbb\xbf"); /* BOM */
    if (!span_eq_str(host, "-")) {
        rec_set(out, VG_F_HOST, host);
    }
    if (!span_eq_str(app, "-")) {
        rec_set(out, VG_F_PROCESS, app);
    }
    *msg = s;
    return true;
}

bool map_syslog_bsd(struct span line, int64_t ref_ts, struct rec *r, struct span *msg)
{
    struct span s = line;
    struct rec out;
    int64_t ns;
    unsigned pri;

    rec_init(&out);
    while (s.n && (s.p[s.n - 1] == '\n' || s.p[s.n - 1] == '\r')) {
        s.n--;
    }
    if (eat(&s, "<")) {
        if (!digits(&s, 1, 3, &pri) || pri > 191 || !eat(&s, ">")) {
            return false;
        }
        if (eat(&s, "1 ")) {
            if (!rfc5424(s, &out, msg)) {
                return false;
            }
            goto done;
        }
    }
    if (s.n >= 5 && s.p[0] >= '0' && s.p[0] <= '9' && s.p[4] == '-') {
        struct span ts = token(&s, NULL);
        if (!map__rfc3339(ts, &ns)) {
            return false;
        }
    } else if (!bsd_time(&s, ref_ts, &ns)) {
        return false;
    }
    map__set_ts(&out, ns);
    if (!eat(&s, " ")) {
        return false;
    }
    skip_spaces(&s);
    struct span host = token(&s, NULL);
    if (host.n == 0) {
        return false;
    }
    rec_set(&out, VG_F_HOST, host);
    eat(&s, " ");
    struct span prog;
    if (tag(&s, &prog)) {
        rec_set(&out, VG_F_PROCESS, prog);
    }
    *msg = s;
done:
    if (out.has_ts) {
        map__set_ts(r, out.ts);
    }
    rec_set(r, VG_F_HOST, out.str[VG_F_HOST]);
    rec_set(r, VG_F_PROCESS, out.str[VG_F_PROCESS]);
    return true;
}

/* ---- sshd / syslog records shipped as maps ---- */

int map__syslog(const struct map__top *t, enum map_source src, int64_t fallback_ts, struct rec *r,
                struct buf *scratch, struct errbuf *eb)
{
    static const enum map__top_key text_keys[] = { MT_MESSAGE, MT_MSG, MT_LOG, MT_MESSAGE_UC,
                                                   MT_SYSLOG_LINE };
    struct span text = { 0 };
    struct span s;
    int64_t ns;

    for (size_t i = 0; i < VG_ARRAY_LEN(text_keys) && text.n == 0; i++) {
        map__str(t->v[text_keys[i]], &text);
    }
    if (text.n == 0) {
        errbuf_set(eb, "%s record without a message", src == MAP_SSHD ? "sshd" : "syslog");
        return VG_EFORMAT;
    }
    rec_set(r, VG_F_SOURCE, span_str(map_source_name(src)));

    /* Structured fields first (Filebeat/ECS, Fluent Bit syslog parser, journald). */
    static const enum map__top_key ts_keys[] = { MT_AT_TIMESTAMP, MT_TIMESTAMP, MT_TIME };
    for (size_t i = 0; i < VG_ARRAY_LEN(ts_keys) && !r->has_ts; i++) {
        if (map__time(t->v[ts_keys[i]], &ns)) {
            map__set_ts(r, ns);
        }
    }
    if (map__str(t->v[MT_HOST], &s) || map__get_str(t->v[MT_HOST], "name", &s) ||
        map__get_str(t->v[MT_HOST], "hostname", &s) || map__str(t->v[MT_HOSTNAME], &s) ||
        map__str(t->v[MT_HOSTNAME_UC], &s)) {
        rec_set(r, VG_F_HOST, s);
    }
    if (map__str(t->v[MT_PROCESS], &s) || map__get_str(t->v[MT_PROCESS], "name", &s) ||
        map__str(t->v[MT_IDENT], &s) || map__str(t->v[MT_SYSLOG_IDENTIFIER], &s)) {
        rec_set(r, VG_F_PROCESS, s);
    }

    /* The text may be a whole line with its header (a tailed auth.log, or the shipper's
     * syslog_line): what the structure did not say comes from the header. */
    struct rec hdr;
    struct span msg = text;
    rec_init(&hdr);
    if (map_syslog_bsd(text, r->has_ts ? r->ts : fallback_ts, &hdr, &msg)) {
        msg = trim(msg);
    } else if (map__str(t->v[MT_SYSLOG_LINE], &s) &&
               !map_syslog_bsd(s, r->has_ts ? r->ts : fallback_ts, &hdr, &(struct span){ 0 })) {
        rec_init(&hdr);
    }
    if (!r->has_ts && hdr.has_ts) {
        map__set_ts(r, hdr.ts);
    }
    if (!rec_has(r, VG_F_HOST)) {
        rec_set(r, VG_F_HOST, hdr.str[VG_F_HOST]);
    }
    if (!rec_has(r, VG_F_PROCESS)) {
        rec_set(r, VG_F_PROCESS, hdr.str[VG_F_PROCESS]);
    }
    rec_set(r, VG_F_MESSAGE, msg);

    bool auth = map_auth_line(msg, r, scratch);
    struct span prog = r->str[VG_F_PROCESS];
    if (auth && src == MAP_SYSLOG &&
        (span_eq_str(prog, "sshd") || span_eq_str(prog, "sshd-session"))) {
        /* As the syslog listener does: an sshd line is sshd evidence, whatever carried it. */
        rec_set(r, VG_F_SOURCE, SPAN_LIT("sshd"));
    }
    if (!auth) {
        rec_set(r, VG_F_KIND, src == MAP_SSHD ? SPAN_LIT("auth") : SPAN_LIT("log"));
        /* ECS: event.outcome, user.name, source.ip */
        struct span ev = t->v[MT_EVENT];
        if (map__get_str(ev, "outcome", &s) &&
            (span_eq_str(s, "success") || span_eq_str(s, "failure"))) {
            rec_set(r, VG_F_OUTCOME, s);
        }
        int sev = -1;
        int64_t pri;
        if (map__str(t->v[MT_SEVERITY], &s) || map__str(t->v[MT_LEVEL], &s)) {
            sev = vg_severity_parse(s);
        } else if (mp_get_i64(t->v[MT_PRI], &pri) && pri >= 0 && pri <= 191) {
            sev = (int)(pri & 7);
        } else if (map__str(t->v[MT_PRI], &s) && parse_i64(s, 0, 191, &pri) == 0) {
            sev = (int)(pri & 7);
        }
        if (sev < 0) {
            bool failed = rec_has(r, VG_F_OUTCOME) && span_eq_str(r->str[VG_F_OUTCOME], "failure");
            sev = failed ? VG_SEV_WARNING : VG_SEV_INFO;
        }
        map__set_sev(r, sev);
    }
    if (!rec_has(r, VG_F_USER) && map__get_str(t->v[MT_USER], "name", &s)) {
        rec_set(r, VG_F_USER, s);
    }
    if (!rec_has(r, VG_F_SRC_IP) && map__get_str(t->v[MT_SOURCE], "ip", &s)) {
        map__set_ip(r, VG_F_SRC_IP, s);
    }
    return 0;
}
