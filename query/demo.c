/* query/demo.c: `vigil demo`, the one-command tour. Makes a throwaway directory with a
 * development PKI, starts the real vigild on free loopback ports, ships the demo's real
 * events over mutual TLS as two agents, shows that a client without a certificate is
 * refused (and that the refusal is itself recorded), prints what an incident responder
 * looks at first and the alerts the default rule pack (etc/rules) raised live, then
 * stops vigild with SIGTERM and removes the directory.
 *
 * In between, a short fire drill (etc/drills/multi_stage.yaml, query/drill.c) replays an
 * intrusion through the same path and a webhook forwarder pages a receiver the demo runs
 * on loopback (a thread answering 200), so the first command a user runs shows the
 * times to detect and to page.
 *
 * The nodes' auth logs are replayed as of now (their BSD syslog headers rewritten, the
 * spacing kept): vigild's correlation windows follow the wall clock and do not count
 * events dated minutes before they arrive (collector/rules_live.c), and the SSH brute
 * force is a correlation. The audit and Falco events keep their dates: their rules are
 * single-event detections. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/errbuf.h"
#include "common/pki.h"
#include "common/time.h"
#include "common/tls.h"
#include "query/cli.h"
#include "query/drill.h"
#include "query/drill_int.h"
#include "query/filter.h"
#include "query/output.h"
#include "query/scan.h"
#include "query/send.h"

extern char **environ;

struct demo {
    char dir[PATH_MAX];
    char exe_dir[PATH_MAX];
    char data[PATH_MAX];
    char rules[PATH_MAX];  /* the default rule pack; "" when not found */
    char drills[PATH_MAX]; /* the drill scenarios (etc/drills); "" when not found */
    pid_t vigild;
    int forward_port;
    bool keep;
};

static bool is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool is_exec(const char *p)
{
    return access(p, X_OK) == 0;
}

/* A directory the demo ships with (etc/<name>): $<env>; etc/<name> in the source tree
 * the binary was built in (1 to 3 levels above its directory: build/query/,
 * build/release/query/, ...); share/vigil/<name> next to an installed bin/ (any prefix,
 * even one given only at `cmake --install --prefix`); the datadir compiled in
 * (VG_DATADIR: CMAKE_INSTALL_FULL_DATADIR/vigil). Its real path goes to out (PATH_MAX).
 * Returns 0 or -ENOENT. */
static int find_shared(const struct demo *d, const char *env_name, const char *name, char *out)
{
    const char *env = getenv(env_name);
    char p[PATH_MAX + 64];

    if (env && is_dir(env) && realpath(env, out)) {
        return 0;
    }
    const char *ups[] = { "/..", "/../..", "/../../.." };
    for (size_t i = 0; i < VG_ARRAY_LEN(ups); i++) {
        snprintf(p, sizeof(p), "%s%s/etc/%s", d->exe_dir, ups[i], name);
        if (is_dir(p) && realpath(p, out)) {
            return 0;
        }
    }
    snprintf(p, sizeof(p), "%s/../share/vigil/%s", d->exe_dir, name);
    if (is_dir(p) && realpath(p, out)) {
        return 0;
    }
    snprintf(p, sizeof(p), "%s/%s", VG_DATADIR, name);
    if (is_dir(p) && realpath(p, out)) {
        return 0;
    }
    return -ENOENT;
}

static int find_paths(struct demo *d, const char *argv0)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0) {
        snprintf(self, sizeof(self), "%s", argv0);
    } else {
        self[n] = 0;
    }
    char *slash = strrchr(self, '/');
    if (slash) {
        *slash = 0;
    } else {
        snprintf(self, sizeof(self), ".");
    }
    snprintf(d->exe_dir, sizeof(d->exe_dir), "%s", self);

    if (find_shared(d, "VIGIL_DEMO_DATA", "demo", d->data) < 0) {
        fprintf(stderr,
                "vigil demo: cannot find the demo events (etc/demo); set VIGIL_DEMO_DATA\n");
        return -ENOENT;
    }
    return 0;
}

/* The default rule pack, found like the demo's events: $VIGIL_DEMO_RULES, etc/rules next
 * to the build tree, share/vigil/rules of the install. Without one the demo runs without
 * rules and says so. */
static void find_rules(struct demo *d)
{
    if (find_shared(d, "VIGIL_DEMO_RULES", "rules", d->rules) < 0) {
        d->rules[0] = 0;
    }
    if (find_shared(d, "VIGIL_DEMO_DRILLS", "drills", d->drills) < 0) {
        d->drills[0] = 0;
    }
}

/* The demo's pager: a receiver on 127.0.0.1 answering every POST with 200 (the webhook
 * forwarder `oncall` posts to it). Its own thread, blocking; counts the pages. */
struct demo_pager {
    int fd;
    int port;
    pthread_t thread;
    bool running;
    pthread_mutex_t lock;
    int pages;
};

/* Reads one request (head, then Content-Length bytes of body) and answers 200. */
static void pager_serve(struct demo_pager *p, int c)
{
    char req[65536];
    size_t n = 0;
    char *end = NULL;
    struct timeval tv = { 5, 0 };

    req[0] = 0;
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    while (n < sizeof(req) - 1 && !(end = strstr(req, "\r\n\r\n"))) {
        ssize_t r = read(c, req + n, sizeof(req) - 1 - n);
        if (r <= 0) {
            return;
        }
        n += (size_t)r;
        req[n] = 0;
    }
    if (!end) {
        return;
    }
    size_t body = 0;
    for (char *h = req; h < end; h++) {
        if (strncasecmp(h, "\ncontent-length:", 16) == 0) {
            body = strtoul(h + 16, NULL, 10);
        }
    }
    /* libcurl asks before sending a body over 1 KiB */
    *end = 0;
    if (strcasestr(req, "\nexpect: 100-continue")) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        if (write(c, cont, sizeof(cont) - 1) != (ssize_t)sizeof(cont) - 1) {
            return;
        }
    }
    size_t have = n - (size_t)(end + 4 - req);
    while (have < body) {
        char skip[4096];
        ssize_t r = read(c, skip, sizeof(skip));
        if (r <= 0) {
            return;
        }
        have += (size_t)r;
    }
    static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             "Content-Length: 2\r\nConnection: close\r\n\r\n{}";
    if (write(c, ok, sizeof(ok) - 1) == (ssize_t)sizeof(ok) - 1) {
        pthread_mutex_lock(&p->lock);
        p->pages++;
        pthread_mutex_unlock(&p->lock);
    }
}

static void *pager_main(void *arg)
{
    struct demo_pager *p = arg;
    for (;;) {
        int c = accept(p->fd, NULL, NULL);
        if (c < 0 && errno == EINTR) {
            continue;
        }
        if (c < 0) {
            return NULL; /* pager_stop shut the socket down */
        }
        pager_serve(p, c);
        close(c);
    }
}

static int pager_start(struct demo_pager *p)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(a);

    memset(p, 0, sizeof(*p));
    p->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (p->fd < 0) {
        return -errno;
    }
    if (bind(p->fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(p->fd, 16) != 0 ||
        getsockname(p->fd, (struct sockaddr *)&a, &len) != 0) {
        int rc = -errno;
        close(p->fd);
        return rc;
    }
    p->port = ntohs(a.sin_port);
    pthread_mutex_init(&p->lock, NULL);
    int rc = pthread_create(&p->thread, NULL, pager_main, p);
    if (rc != 0) {
        close(p->fd);
        pthread_mutex_destroy(&p->lock);
        return -rc;
    }
    p->running = true;
    return 0;
}

static int pager_stop(struct demo_pager *p)
{
    int pages;
    if (!p->running) {
        return 0;
    }
    shutdown(p->fd, SHUT_RDWR);
    pthread_join(p->thread, NULL);
    close(p->fd);
    pages = p->pages;
    pthread_mutex_destroy(&p->lock);
    p->running = false;
    return pages;
}

/* The short drill: the multi-stage intrusion through the running vigild. Returns 0 when
 * every stage was detected and paged, 1 when not, negative when it could not run. */
static int run_drill(struct demo *d)
{
    char path[PATH_MAX + 32];
    char pki[PATH_MAX + 8];
    char store[PATH_MAX + 16];
    struct drill_scn *scn = NULL;
    struct drill_run r;
    struct errbuf eb;

    snprintf(path, sizeof(path), "%s/multi_stage.yaml", d->drills);
    snprintf(pki, sizeof(pki), "%s/pki", d->dir);
    snprintf(store, sizeof(store), "%s/store", d->dir);
    errbuf_clear(&eb);
    if (drill_scn_load(path, &scn, &eb) < 0) {
        fprintf(stderr, "vigil demo: %s\n", errbuf_msg(&eb));
        return -EINVAL;
    }
    char ca[PATH_MAX + 16];
    snprintf(ca, sizeof(ca), "%s/ca.pem", pki);
    struct drill_ship sh = {
        .host = "127.0.0.1",
        .port = d->forward_port,
        .ca = ca,
        .pki = pki,
    };
    printf("\nA fire drill (vigil drill run %s): an intrusion replayed through the same\n"
           "path, every alert paged by the webhook forwarder 'oncall' to a receiver on\n"
           "loopback; time to detect and to page, per stage:\n",
           path);
    fflush(stdout);
    int rc = drill_run_scenario(&sh, store, scn, &r, &eb);
    if (rc < 0) {
        fprintf(stderr, "vigil demo: the drill failed: %s\n", errbuf_msg(&eb));
    }
    if (r.scn) {
        drill_print(stdout, &r);
    }
    int out = rc < 0 ? rc : r.passed ? 0 : 1;
    drill_run_release(&r);
    drill_scn_free(scn);
    return out;
}

/* Copies syslog file src to dst with each BSD header ("Mmm dd HH:MM:SS ") moved to the
 * present: the last line at now, the others as far before it as they were (within a
 * day; the demo's files span seconds). Lines without such a header are copied as they
 * are. Returns 0 or -errno. */
static int replay_now(const char *src, const char *dst)
{
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    FILE *in = fopen(src, "r");
    FILE *out = NULL;
    char line[8192];
    long last = -1;
    int rc = 0;

    if (!in) {
        return -errno;
    }
    /* pass 1: the time of day of the last header */
    while (fgets(line, sizeof(line), in)) {
        int h, m, sec;
        char mon[4];
        if (sscanf(line, "%3s %*d %2d:%2d:%2d ", mon, &h, &m, &sec) == 4 && strstr(months, mon)) {
            last = h * 3600L + m * 60L + sec;
        }
    }
    if (!(out = fopen(dst, "w"))) {
        rc = -errno;
        fclose(in);
        return rc;
    }
    rewind(in);
    int64_t now = vg_now_ns() / VG_NS_PER_SEC;
    while (fgets(line, sizeof(line), in)) {
        int h, m, sec;
        int n = 0;
        char mon[4];
        if (last >= 0 && sscanf(line, "%3s %*d %2d:%2d:%2d %n", mon, &h, &m, &sec, &n) == 4 &&
            n > 0 && strstr(months, mon)) {
            long back = (last - (h * 3600L + m * 60L + sec) + 86400) % 86400;
            time_t t = (time_t)(now - back);
            struct tm tm;
            char hdr[32];
            gmtime_r(&t, &tm);
            strftime(hdr, sizeof(hdr), "%b %e %H:%M:%S ", &tm);
            fputs(hdr, out);
            fputs(line + n, out);
        } else {
            fputs(line, out);
        }
    }
    if (ferror(in)) {
        rc = -EIO;
    }
    fclose(in);
    if (fclose(out) != 0 && rc == 0) {
        rc = -errno;
    }
    return rc;
}

static int find_vigild(const struct demo *d, char *out, size_t cap)
{
    const char *cands[] = { "/vigild", "/../collector/vigild" };
    for (size_t i = 0; i < VG_ARRAY_LEN(cands); i++) {
        snprintf(out, cap, "%s%s", d->exe_dir, cands[i]);
        if (is_exec(out)) {
            return 0;
        }
    }
    fprintf(stderr, "vigil demo: cannot find vigild next to vigil (%s)\n", d->exe_dir);
    return -ENOENT;
}

static int write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        return -errno;
    }
    fputs(text, f);
    return fclose(f) == 0 ? 0 : -EIO;
}

/* Starts vigild and waits (10 s at most) for its ready line on a pipe. */
static int start_vigild(struct demo *d)
{
    char vigild[PATH_MAX + 32];
    char cfg[PATH_MAX + 32];
    char log[PATH_MAX + 32];
    int fds[2];
    int rc;

    if ((rc = find_vigild(d, vigild, sizeof(vigild))) < 0) {
        return rc;
    }
    snprintf(cfg, sizeof(cfg), "%s/vigil.yaml", d->dir);
    snprintf(log, sizeof(log), "%s/vigild.log", d->dir);
    if (pipe(fds) != 0) {
        return -errno;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    /* The write end is inherited under its own number; the read end is closed. */
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    char fdarg[16];
    snprintf(fdarg, sizeof(fdarg), "%d", fds[1]);
    /* As root the demo's vigild keeps root (its store is a throwaway directory of ours):
     * vigild refuses root unless told. */
    char *args[] = { vigild, "-c", cfg, "--ready-fd", fdarg, geteuid() == 0 ? "--allow-root" : NULL,
                     NULL };
    fflush(stdout);
    rc = posix_spawn(&d->vigild, vigild, &fa, NULL, args, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (rc != 0) {
        close(fds[0]);
        fprintf(stderr, "vigil demo: cannot start %s: %s\n", vigild, strerror(rc));
        return -rc;
    }
    char line[512];
    size_t n = 0;
    struct pollfd p = { fds[0], POLLIN, 0 };
    while (n < sizeof(line) - 1 && poll(&p, 1, 10000) > 0) {
        ssize_t r = read(fds[0], line + n, sizeof(line) - 1 - n);
        if (r <= 0) {
            break;
        }
        n += (size_t)r;
        if (memchr(line, '\n', n)) {
            break;
        }
    }
    close(fds[0]);
    line[n] = 0;
    const char *fw = strstr(line, "forward=");
    const char *colon = fw ? strchr(fw, ' ') : NULL;
    if (!fw || !colon) {
        fprintf(stderr, "vigil demo: vigild did not start; its log (%s) says:\n", log);
        FILE *f = fopen(log, "r");
        if (f) {
            char buf[512];
            while (fgets(buf, sizeof(buf), f)) {
                fputs(buf, stderr);
            }
            fclose(f);
        }
        return -EIO;
    }
    const char *pc = colon;
    while (pc > fw && *pc != ':') {
        pc--;
    }
    d->forward_port = atoi(pc + 1);
    return 0;
}

static int stop_vigild(struct demo *d)
{
    int status = 0;
    if (d->vigild <= 0) {
        return 0;
    }
    kill(d->vigild, SIGTERM);
    if (waitpid(d->vigild, &status, 0) < 0) {
        return -errno;
    }
    d->vigild = 0;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "vigil demo: vigild did not stop cleanly (status %d)\n", status);
        return -EIO;
    }
    return 0;
}

static int ship(struct demo *d, const char *agent, enum send_format fmt, const char *file,
                uint64_t *events)
{
    char ca[PATH_MAX + 16], cert[PATH_MAX + 32], key[PATH_MAX + 32], path[PATH_MAX + 64];
    struct send_opts o;
    struct send_stats st;
    struct errbuf eb;

    snprintf(ca, sizeof(ca), "%s/pki/ca.pem", d->dir);
    snprintf(cert, sizeof(cert), "%s/pki/%s.pem", d->dir, agent);
    snprintf(key, sizeof(key), "%s/pki/%s-key.pem", d->dir, agent);
    snprintf(path, sizeof(path), "%s/%s", d->data, file);
    if (fmt == SEND_SYSLOG) {
        char now_path[PATH_MAX + 64];
        snprintf(now_path, sizeof(now_path), "%s/%s", d->dir, file);
        int rc = replay_now(path, now_path);
        if (rc < 0) {
            fprintf(stderr, "vigil demo: cannot copy %s: %s\n", file, vg_strerror(rc));
            return rc;
        }
        snprintf(path, sizeof(path), "%s", now_path);
    }
    send_opts_init(&o);
    o.port = d->forward_port;
    o.ca = ca;
    o.cert = cert;
    o.key = key;
    o.format = fmt;
    o.timeout_ms = 10000;
    errbuf_clear(&eb);
    char *files[] = { path };
    int rc = send_files(&o, files, 1, &st, &eb);
    if (rc < 0) {
        fprintf(stderr, "vigil demo: sending %s failed: %s\n", file, errbuf_msg(&eb));
        return rc;
    }
    printf("  %-28s %4" PRIu64 " events  as %-16s all acknowledged%s\n", file, st.events, agent,
           fmt == SEND_SYSLOG ? " (as of now)" : "");
    *events += st.events;
    return 0;
}

/* A client with no certificate: the handshake must be refused. */
static void try_without_certificate(struct demo *d)
{
    char ca[PATH_MAX + 16];
    struct tls_ctx *ctx = NULL;
    struct tls_conn *c = NULL;
    struct errbuf eb;

    snprintf(ca, sizeof(ca), "%s/pki/ca.pem", d->dir);
    errbuf_clear(&eb);
    if (tls_client_ctx_new(ca, NULL, NULL, &ctx, &eb) < 0) {
        return;
    }
    int rc = tls_conn_open(ctx, "127.0.0.1", d->forward_port, 5000, &c, &eb);
    if (rc == 0) {
        /* TLS 1.3: the server's verdict arrives after our side finished. */
        uint8_t b[64];
        ssize_t n = tls_conn_read(c, b, sizeof(b), 5000);
        rc = n < 0 ? (int)n : 0;
    }
    printf("  a client without a certificate: %s\n",
           rc < 0 ? "refused during the TLS handshake" : "ACCEPTED (this is a bug)");
    tls_conn_close(c);
    tls_ctx_free(ctx);
}

static int print_section(const char *store, const char *title, const char *ftext, uint64_t limit)
{
    struct filter *f = NULL;
    struct errbuf eb;
    struct scan_result res;
    int col;

    errbuf_clear(&eb);
    if (filter_parse(ftext, vg_now_ns(), &f, &col, &eb) < 0) {
        fprintf(stderr, "vigil demo: filter '%s': %s\n", ftext, errbuf_msg(&eb));
        return VG_EPARSE;
    }
    int rc = scan_run(store, INT64_MIN, INT64_MAX, f, limit, 0, &res, &eb);
    if (rc == 0) {
        printf("\n%s   (vigil search %s)\n", title, ftext);
        struct out *o = out_new(OUT_TABLE, stdout, 120);
        for (size_t i = 0; i < res.n; i++) { /* the who and where at the width they need */
            struct span cur = { res.hits[i].bytes, res.hits[i].len };
            struct rec r;
            if (rec_decode(&cur, &r) == 0) {
                out_measure(o, &r);
            }
        }
        for (size_t i = 0; i < res.n; i++) {
            struct span cur = { res.hits[i].bytes, res.hits[i].len };
            struct rec r;
            if (rec_decode(&cur, &r) == 0 && out_event(o, &r) < 0) {
                break;
            }
        }
        if (out_finish(o) < 0) {
            rc = -EIO;
        }
        out_free(o);
        if (res.matched > res.n) {
            printf("  ... %" PRIu64 " more\n", res.matched - res.n);
        }
    } else {
        fprintf(stderr, "vigil demo: %s\n", errbuf_msg(&eb));
    }
    scan_result_release(&res);
    filter_free(f);
    return rc;
}

static int count_sources(const char *store)
{
    struct errbuf eb;
    struct scan_result res;
    const char *names[16];
    uint64_t counts[16];
    int nn = 0;

    errbuf_clear(&eb);
    int rc = scan_run(store, INT64_MIN, INT64_MAX, NULL, 0, 0, &res, &eb);
    if (rc < 0) {
        fprintf(stderr, "vigil demo: %s\n", errbuf_msg(&eb));
        scan_result_release(&res);
        return rc;
    }
    static char keep[16][32];
    for (size_t i = 0; i < res.n; i++) {
        struct span cur = { res.hits[i].bytes, res.hits[i].len };
        struct rec r;
        if (rec_decode(&cur, &r) < 0) {
            continue;
        }
        struct span s = r.str[VG_F_SOURCE];
        int k = 0;
        while (k < nn && !span_eq_str(s, names[k])) {
            k++;
        }
        if (k == nn && nn < 16) {
            snprintf(keep[nn], sizeof(keep[nn]), "%.*s", (int)s.n, s.p ? (const char *)s.p : "");
            names[nn] = keep[nn];
            counts[nn++] = 0;
        }
        if (k < 16) {
            counts[k]++;
        }
    }
    printf("\nEvents stored, by source (%zu in all):\n", res.n);
    for (int k = 0; k < nn; k++) {
        printf("  %-12s %6" PRIu64 "\n", names[k], counts[k]);
    }
    scan_result_release(&res);
    return 0;
}

static void remove_tree(const char *path)
{
    DIR *dir = opendir(path);
    if (dir) {
        struct dirent *e;
        while ((e = readdir(dir)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
                continue;
            }
            char p[PATH_MAX + 256];
            snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
            struct stat st;
            if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
                remove_tree(p);
            } else {
                unlink(p);
            }
        }
        closedir(dir);
    }
    rmdir(path);
}

struct demo_opts {
    bool keep;
};

static const struct cli_opt demo_opts[] = {
    { "--keep", NULL, CLI_FLAG, CLI_OFF(struct demo_opts, keep), 0, 0 },
    { NULL },
};

static void demo_usage(FILE *f)
{
    fprintf(f, "usage: vigil demo [--keep]   (--keep leaves the directory for exploring)\n");
}

static int demo_run(struct cli_args *a)
{
    const struct demo_opts *o = a->own;
    struct demo d = { .keep = o->keep };
    struct demo_pager pager = { .running = false };
    bool drill_failed = false;
    struct errbuf eb;
    uint64_t events = 0;
    int rc;

    if (a->nwords > 0) {
        fprintf(stderr, "vigil demo: unknown argument '%s'\n", a->words[0]);
        return CLI_USAGE;
    }
    if (find_paths(&d, a->argv0) < 0) {
        return CLI_FAIL;
    }
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(d.dir, sizeof(d.dir), "%s/vigil-demo-XXXXXX", tmp);
    if (!mkdtemp(d.dir)) {
        fprintf(stderr, "vigil demo: cannot make a directory in %s: %s\n", tmp, strerror(errno));
        return CLI_FAIL;
    }
    char pki[PATH_MAX + 8], cfgpath[PATH_MAX + 16], cfgtext[2 * PATH_MAX + 1024];
    snprintf(pki, sizeof(pki), "%s/pki", d.dir);
    errbuf_clear(&eb);
    printf("vigil demo: a collector on loopback with a throwaway CA in %s\n\n", d.dir);
    if ((rc = pki_init(pki, false, &eb)) < 0) {
        fprintf(stderr, "vigil demo: %s\n", errbuf_msg(&eb));
        goto out;
    }
    snprintf(cfgpath, sizeof(cfgpath), "%s/vigil.yaml", d.dir);
    find_rules(&d);
    char pager_line[256] = "";
    if (d.rules[0] && d.drills[0]) {
        if ((rc = pager_start(&pager)) < 0) {
            fprintf(stderr, "vigil demo: cannot listen on loopback: %s\n", vg_strerror(rc));
            goto out;
        }
        snprintf(pager_line, sizeof(pager_line),
                 "forwarders:\n  - { name: oncall, type: webhook, url: 'http://127.0.0.1:%d/page',"
                 " retry: { min: 200ms, max: 1s } }\n",
                 pager.port);
    }
    char rules_line[PATH_MAX + 64] = "";
    if (d.rules[0]) {
        snprintf(rules_line, sizeof(rules_line), "rules:  { paths: [ \"%s\" ] }\n", d.rules);
    }
    snprintf(cfgtext, sizeof(cfgtext),
             "# written by vigil demo\n"
             "store:  { path: %s/store, partition: 1h }\n"
             "tls:    { ca: pki/ca.pem, cert: pki/server.pem, key: pki/server-key.pem }\n"
             "listen: { forward: 127.0.0.1:0, syslog: null, https: null, admin: 127.0.0.1:0 }\n"
             "%s%s",
             d.dir, rules_line, pager_line);
    if ((rc = write_file(cfgpath, cfgtext)) < 0 || (rc = start_vigild(&d)) < 0) {
        goto out;
    }
    printf("vigild is up (pid %d): Forward over mutual TLS on 127.0.0.1:%d\n", (int)d.vigild,
           d.forward_port);
    if (d.rules[0]) {
        printf("rules: the default pack, %s\n\n", d.rules);
    } else {
        printf("rules: none (the default pack etc/rules was not found; set VIGIL_DEMO_RULES)\n\n");
    }
    printf("Agents ship real events (each agent proves who it is with its certificate):\n");
    static const struct {
        const char *agent;
        enum send_format fmt;
        const char *file;
    } files[] = {
        { "agent-sidecar-1", SEND_K8S_AUDIT, "k8s-audit-priv-pod.log" },
        { "agent-sidecar-1", SEND_K8S_AUDIT, "k8s-audit-pod-exec.log" },
        { "agent-node-1", SEND_FALCO, "falco-alerts.ndjson" },
        { "agent-node-1", SEND_SYSLOG, "sshd-invalid-bf.log" },
        { "agent-node-1", SEND_SYSLOG, "sshd-bad-keyexchange-bf.log" },
        { "agent-node-1", SEND_SYSLOG, "ssh-generic-test.log" },
        { "agent-node-1", SEND_SYSLOG, "sshd-success-logs.log" },
    };
    for (size_t i = 0; i < VG_ARRAY_LEN(files); i++) {
        if ((rc = ship(&d, files[i].agent, files[i].fmt, files[i].file, &events)) < 0) {
            goto out;
        }
    }
    try_without_certificate(&d);
    if (pager.running) {
        int dr = run_drill(&d);
        if (dr < 0) {
            rc = dr;
            goto out;
        }
        drill_failed = dr != 0;
        printf("  the demo's receiver answered %d page%s (the drill's and the sample events' "
               "alerts, firing and updates)\n",
               pager.pages, pager.pages == 1 ? "" : "s");
    } else {
        printf("\n(no fire drill: %s not found; set VIGIL_DEMO_DRILLS)\n",
               d.rules[0] ? "etc/drills" : "the rule pack");
    }

    /* Stop vigild first: everything acknowledged is durable, and the refusal event
     * recorded after the last ack is flushed by the clean stop. */
    if ((rc = stop_vigild(&d)) < 0) {
        goto out;
    }
    printf("vigild stopped cleanly (SIGTERM: flushed, exit 0)\n");
    char store[PATH_MAX + 16];
    snprintf(store, sizeof(store), "%s/store", d.dir);
    if ((rc = count_sources(store)) < 0) {
        goto out;
    }
    print_section(store,
                  "The affected pod, in time order: privileged pod created, then a shell "
                  "opened in it",
                  "pod=test-pod-1", 50);
    print_section(store, "Who was working on that cluster, from where", "user=minikube-user", 50);
    print_section(store, "SSH authentication failures on the nodes",
                  "kind=auth outcome=failure NOT raw.vigil_drill=*", 8);
    print_section(store, "Shells in containers (Falco)", "source=falco NOT raw.vigil_drill=*", 10);
    print_section(store, "The collector's own evidence (refused connections, rejected input)",
                  "source=vigil", 10);
    if (d.rules[0]) {
        print_section(store, "Alerts raised live by the rule pack (the drill's left out)",
                      "kind=alert NOT raw.drill=*", 12);
    }
    printf("\nExplore it yourself%s:\n"
           "  vigil search --store %s/store pod=test-pod-1 --format json\n"
           "  vigil search --store %s/store src_ip=179.43.183.0/24\n"
           "  vigil hunt %s --store %s/store\n"
           "  vigil drill list --store %s/store\n",
           d.keep ? "" : " (run vigil demo --keep to keep the store)", d.dir, d.dir,
           d.rules[0] ? d.rules : "etc/rules", d.dir, d.dir);
    rc = 0;
out:
    if (stop_vigild(&d) < 0 && rc == 0) {
        rc = -EIO;
    }
    pager_stop(&pager);
    if (!d.keep) {
        remove_tree(d.dir);
    } else {
        printf("\nkept: %s\n", d.dir);
    }
    if (drill_failed) {
        fprintf(stderr, "vigil demo: the fire drill failed: an alert was not raised or not "
                        "paged (see its report above)\n");
    }
    return rc < 0 || drill_failed ? CLI_FAIL : CLI_OK;
}

const struct cli_cmd cmd_demo = {
    .name = "demo",
    .synopsis = "              the one-command tour: collector, mTLS agents, a timeline",
    .opts = demo_opts,
    .own_size = sizeof(struct demo_opts),
    .usage = demo_usage,
    .run = demo_run,
};
