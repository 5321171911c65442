/* forwarders/receiver.c: a forwarder's settings, checked against what its type needs,
 * with its secret read from a file or the environment. Errors point at the key in
 * vigil.yaml (config_error) and never quote a secret. Blocks on reading the secret file;
 * any thread. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"
#include "forwarders/fwd_int.h"

#define SECRET_MAX 4096

const struct fwd_sink *fwd_sink_find(const char *type)
{
    static const struct fwd_sink *const all[] = {
        &fwd_sink_alertmanager, &fwd_sink_pagerduty, &fwd_sink_opsgenie,
        &fwd_sink_slack,        &fwd_sink_webhook,
    };
    for (size_t i = 0; type && i < VG_ARRAY_LEN(all); i++) {
        if (strcmp(all[i]->type, type) == 0) {
            return all[i];
        }
    }
    return NULL;
}

void fwd_rcv_cfg_free(struct fwd_rcv_cfg *rc)
{
    if (!rc) {
        return;
    }
    free(rc->name);
    free(rc->url);
    free(rc->url_shown);
    if (rc->secret) {
        memset(rc->secret, 0, strlen(rc->secret));
        free(rc->secret);
    }
    free(rc->ca_file);
    fwd_match_free(rc->match);
    free(rc);
}

/* http:// or https://, a host (name, IPv4 or [IPv6]), an optional port, an optional
 * path and query; no user:password@ (credentials belong in a secret), no spaces or
 * control bytes. *shown gets "scheme://host[:port]". Returns NULL or what is wrong. */
static const char *url_check(const char *u, char **shown)
{
    const char *p;
    size_t slen;

    if (strncmp(u, "http://", 7) == 0) {
        slen = 7;
    } else if (strncmp(u, "https://", 8) == 0) {
        slen = 8;
    } else {
        return "expected an http:// or https:// URL";
    }
    for (p = u; *p; p++) {
        if ((unsigned char)*p <= ' ' || *p == 0x7f) {
            return "the URL holds a space or a control character";
        }
    }
    const char *auth = u + slen;
    size_t alen = strcspn(auth, "/?#");
    if (alen == 0) {
        return "the URL has no host";
    }
    if (memchr(auth, '@', alen)) {
        return "credentials in the URL are not allowed: put them in secret_file or secret_env";
    }
    const char *port = NULL;
    if (auth[0] == '[') {
        const char *close = memchr(auth, ']', alen);
        if (!close || close == auth + 1) {
            return "the URL's IPv6 address has no closing ']'";
        }
        if (close + 1 < auth + alen) {
            if (close[1] != ':') {
                return "the URL's host is followed by something other than :port";
            }
            port = close + 2;
        }
    } else {
        const char *colon = memchr(auth, ':', alen);
        size_t hlen = colon ? (size_t)(colon - auth) : alen;
        if (hlen == 0) {
            return "the URL has no host";
        }
        for (size_t i = 0; i < hlen; i++) {
            char c = auth[i];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '-' || c == '_')) {
                return "the URL's host has a character that is not allowed in a host name";
            }
        }
        port = colon ? colon + 1 : NULL;
    }
    if (port) {
        uint64_t pv;
        size_t plen = (size_t)(auth + alen - port);
        if (plen == 0 || parse_u64((struct span){ (const uint8_t *)port, plen }, 65535, &pv) < 0 ||
            pv == 0) {
            return "the URL's port is not a number from 1 to 65535";
        }
    }
    size_t n = slen + alen;
    *shown = xstrndup(u, n);
    return NULL;
}

/* The secret: the first line of secret_file, or the value of secret_env. */
static int read_secret(const struct vg_config *cfg, const struct forwarder_cfg *f, char **out,
                       struct errbuf *eb)
{
    *out = NULL;
    if (f->secret_env) {
        const char *v = getenv(f->secret_env);
        if (!v || !*v) {
            return config_error(cfg, &f->secret_env, eb,
                                "environment variable '%s' is not set or empty", f->secret_env);
        }
        if (strlen(v) > SECRET_MAX || strpbrk(v, "\r\n")) {
            return config_error(cfg, &f->secret_env, eb,
                                "environment variable '%s' must hold one line of at most %d "
                                "bytes",
                                f->secret_env, SECRET_MAX);
        }
        *out = xstrdup(v);
        return 0;
    }
    if (!f->secret_file) {
        return 0;
    }
    FILE *fp = fopen(f->secret_file, "r");
    if (!fp) {
        return config_error(cfg, &f->secret_file, eb, "cannot open '%s': %s", f->secret_file,
                            strerror(errno));
    }
    char *line = xmalloc(SECRET_MAX + 2);
    bool ok = fgets(line, SECRET_MAX + 2, fp) != NULL;
    fclose(fp);
    size_t n = ok ? strcspn(line, "\r\n") : 0;
    if (n == 0 || n > SECRET_MAX) {
        memset(line, 0, SECRET_MAX + 2);
        free(line);
        return config_error(cfg, &f->secret_file, eb,
                            "'%s' holds no secret on its first line (at most %d bytes)",
                            f->secret_file, SECRET_MAX);
    }
    line[n] = 0;
    *out = xstrdup(line);
    memset(line, 0, SECRET_MAX + 2);
    free(line);
    return 0;
}

/* The key that a missing secret is reported at: secret_file if given, else the type. */
static int need_secret(const struct vg_config *cfg, const struct forwarder_cfg *f, const char *what,
                       struct errbuf *eb)
{
    return config_error(cfg, &f->type, eb,
                        "type %s needs its %s: set secret_file or secret_env (never inline)",
                        f->type, what);
}

int fwd_rcv_cfg_new(const struct vg_config *cfg, size_t i, struct fwd_rcv_cfg **out,
                    struct errbuf *eb)
{
    const struct forwarder_cfg *f = &cfg->forwarders[i];
    const struct fwd_sink *sink = fwd_sink_find(f->type);
    struct fwd_rcv_cfg *rc = xcalloc(1, sizeof(*rc));
    const char *why;
    int err;

    *out = NULL;
    rc->name = xstrdup(f->name);
    if (!sink) {
        /* the option table's enum and the sinks disagree: a bug, still no crash */
        err = config_error(cfg, &f->type, eb, "unknown forwarder type '%s'", f->type);
        goto fail;
    }
    rc->sink = sink;
    if (strcmp(f->type, "alertmanager") != 0) {
        const void *ams[] = { &f->resend_every_ns, &f->expire_after_ns };
        const char *names[] = { "resend_every", "expire_after" };
        for (size_t k = 0; k < 2; k++) {
            if (config_has(cfg, ams[k])) {
                err = config_error(cfg, ams[k], eb, "'%s' is for type alertmanager, not %s",
                                   names[k], f->type);
                goto fail;
            }
        }
    } else if (f->expire_after_ns <= f->resend_every_ns) {
        err = config_error(cfg,
                           config_has(cfg, &f->expire_after_ns) ? (const void *)&f->expire_after_ns
                                                                : (const void *)&f->resend_every_ns,
                           eb,
                           "expire_after must be longer than resend_every, or Alertmanager "
                           "resolves firing alerts between two re-sends");
        goto fail;
    }
    if (f->retry.max_ns < f->retry.min_ns) {
        err = config_error(cfg, &f->retry.max_ns, eb, "retry.max is shorter than retry.min");
        goto fail;
    }
    if ((err = read_secret(cfg, f, &rc->secret, eb)) < 0) {
        goto fail;
    }
    if (f->url) {
        if ((why = url_check(f->url, &rc->url_shown)) != NULL) {
            err = config_error(cfg, &f->url, eb, "%s", why);
            goto fail;
        }
        rc->url = xstrdup(f->url);
    } else if (strcmp(f->type, "slack") == 0 && rc->secret) {
        /* Slack's incoming webhook URL carries its token: it may be the secret. */
        if ((why = url_check(rc->secret, &rc->url_shown)) != NULL) {
            err = config_error(
                cfg, f->secret_file ? (const void *)&f->secret_file : (const void *)&f->secret_env,
                eb, "the secret is used as the webhook URL, but %s", why);
            goto fail;
        }
        rc->url = xstrdup(rc->secret);
    } else {
        err = config_error(cfg, &f->name, eb,
                           strcmp(f->type, "slack") == 0
                               ? "missing url (or the webhook URL as secret_file/secret_env)"
                               : "missing required key 'url'");
        goto fail;
    }
    if (sink->secret_required && !rc->secret) {
        err = need_secret(cfg, f,
                          strcmp(f->type, "pagerduty") == 0 ? "routing key (Events API v2 "
                                                              "integration key)"
                                                            : "API key (GenieKey)",
                          eb);
        goto fail;
    }
    if (strcmp(f->type, "pagerduty") == 0 && strlen(rc->secret) != 32) {
        /* developer-docs events-API-v2 02-Trigger-Events: "routing_key ... This is the
         * 32 character Integration Key". */
        err = config_error(
            cfg, f->secret_file ? (const void *)&f->secret_file : (const void *)&f->secret_env, eb,
            "a PagerDuty routing key is 32 characters; this one has %zu", strlen(rc->secret));
        goto fail;
    }
    if ((err = fwd_match_compile(cfg, &f->match, &rc->match, eb)) < 0) {
        goto fail;
    }
    rc->ca_file = f->ca_file ? xstrdup(f->ca_file) : NULL;
    rc->connect_timeout_ns = f->connect_timeout_ns;
    rc->timeout_ns = f->timeout_ns;
    rc->rate_per_min = f->rate_limit ? f->rate_limit : sink->default_rate;
    rc->retry_min_ns = f->retry.min_ns;
    rc->retry_max_ns = f->retry.max_ns;
    rc->give_up_after_ns = f->retry.give_up_after_ns;
    rc->resend_every_ns = f->resend_every_ns;
    rc->expire_after_ns = f->expire_after_ns;
    *out = rc;
    return 0;
fail:
    fwd_rcv_cfg_free(rc);
    return err;
}

static void redact_one(char *s, const char *what)
{
    size_t wn = what ? strlen(what) : 0;
    char *p;

    if (wn < 4) {
        return; /* too short to be a secret, and would blank ordinary words */
    }
    while ((p = strstr(s, what)) != NULL) {
        memcpy(p, "***", 3);
        memmove(p + 3, p + wn, strlen(p + wn) + 1);
    }
}

void fwd_redact(const struct fwd_rcv_cfg *rc, char *s)
{
    redact_one(s, rc->secret);
    /* The path and query of a Slack or webhook URL may be a token too. */
    if ((rc->sink == &fwd_sink_slack || rc->sink == &fwd_sink_webhook) && rc->url &&
        rc->url_shown && strlen(rc->url) > strlen(rc->url_shown)) {
        redact_one(s, rc->url + strlen(rc->url_shown));
    }
}

int fwd_config_check(const struct vg_config *cfg, struct errbuf *eb)
{
    for (size_t i = 0; i < cfg->nforwarders; i++) {
        struct fwd_rcv_cfg *rc = NULL;
        int err = fwd_rcv_cfg_new(cfg, i, &rc, eb);
        if (err < 0) {
            return err;
        }
        fwd_rcv_cfg_free(rc);
    }
    return 0;
}
