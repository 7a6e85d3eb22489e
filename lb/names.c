/* names: a config's backend host names, resolved on the loop (names.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "config/config.h"
#include "lb/io/resolver.h"
#include "lb/names.h"

struct names_task {
    struct names_job *job;
    struct lb_backend_conf *b;
    int status; /* ARES_SUCCESS once answered; -1 while pending */
    int found;  /* an address was taken */
};

struct names_job {
    struct resolver *res;
    struct names_task *tasks;
    size_t ntasks, pending;
    struct event *done_ev; /* done runs from here, outside c-ares' callback */
    names_done_fn done;
    void *arg;
};

size_t names_count(const struct lb_config *cfg)
{
    size_t n = 0;
    for (size_t i = 0; i < cfg->npools; i++)
        for (size_t j = 0; j < cfg->pools[i].nbackends; j++)
            n += cfg->pools[i].backends[j].host != NULL;
    return n;
}

/* Takes the first IPv4 address of the answer, else its first IPv6 one. */
static int names_take(struct lb_backend_conf *b, const struct ares_addrinfo *ai)
{
    const struct ares_addrinfo_node *pick = NULL;
    for (const struct ares_addrinfo_node *n = ai ? ai->nodes : NULL; n; n = n->ai_next) {
        if (n->ai_family == AF_INET) {
            pick = n;
            break;
        }
        if (n->ai_family == AF_INET6 && !pick)
            pick = n;
    }
    if (!pick || pick->ai_addrlen > sizeof(b->addr))
        return 0;
    memset(&b->addr, 0, sizeof(b->addr));
    memcpy(&b->addr, pick->ai_addr, pick->ai_addrlen);
    b->addrlen = pick->ai_addrlen;
    config_address_set_port(&b->addr, b->port);
    return 1;
}

static void on_answer(void *arg, int status, int timeouts, struct ares_addrinfo *ai)
{
    (void)timeouts;
    struct names_task *t = arg;
    if (status == ARES_EDESTRUCTION) { /* names_cancel(), or the job ended */
        ares_freeaddrinfo(ai);
        return;
    }
    t->status = status;
    t->found = status == ARES_SUCCESS && names_take(t->b, ai);
    ares_freeaddrinfo(ai);
    if (--t->job->pending == 0)
        event_active(t->job->done_ev, EV_TIMEOUT, 0);
}

static void job_free(struct names_job *job)
{
    resolver_free(job->res); /* before the tasks: its callbacks see them */
    if (job->done_ev)
        event_free(job->done_ev);
    free(job->tasks);
    free(job);
}

static void on_done(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct names_job *job = arg;
    char err[2048], q[CONFIG_HOST_MAX * 4 + 4];
    const char *result = NULL;
    for (size_t i = 0; i < job->ntasks && !result; i++) {
        const struct names_task *t = &job->tasks[i];
        if (t->found)
            continue;
        config_text_escape(q, sizeof(q), t->b->host, CONFIG_HOST_MAX);
        snprintf(err, sizeof(err), "%s: cannot resolve \"%s\": %s", t->b->where, q,
                 t->status == ARES_SUCCESS ? "no IPv4 or IPv6 address" : ares_strerror(t->status));
        result = err;
    }
    names_done_fn done = job->done;
    void *darg = job->arg;
    job_free(job);
    done(darg, result);
}

int names_start(struct event_base *base, struct lb_config *cfg, names_done_fn done, void *arg,
                struct names_job **out, char *err, size_t errlen)
{
    size_t n = names_count(cfg), k = 0;
    *out = NULL;
    if (n == 0)
        return 0;
    struct names_job *job = calloc(1, sizeof(*job));
    if (!job || !(job->tasks = calloc(n, sizeof(*job->tasks))) ||
        !(job->done_ev = event_new(base, -1, 0, on_done, job))) {
        if (job)
            job_free(job);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (!(job->res = resolver_new(base, cfg->resolvers, err, errlen))) {
        job_free(job);
        return -1;
    }
    job->done = done;
    job->arg = arg;
    job->ntasks = n;
    job->pending = n;
    for (size_t i = 0; i < cfg->npools; i++)
        for (size_t j = 0; j < cfg->pools[i].nbackends; j++)
            if (cfg->pools[i].backends[j].host)
                job->tasks[k++] = (struct names_task){job, &cfg->pools[i].backends[j], -1, 0};
    struct ares_addrinfo_hints hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    /* An answer can come inside the call (/etc/hosts): the last one only
     * activates done_ev, which runs after this returns. */
    for (k = 0; k < n; k++)
        ares_getaddrinfo(resolver_channel(job->res), job->tasks[k].b->host, NULL, &hints, on_answer,
                         &job->tasks[k]);
    resolver_kick(job->res);
    *out = job;
    return 1;
}

void names_cancel(struct names_job *job)
{
    if (job)
        job_free(job);
}

struct names_wait {
    struct event_base *base;
    int finished;
    char *err;
    size_t errlen;
    int failed;
};

static void on_wait_done(void *arg, const char *err)
{
    struct names_wait *w = arg;
    w->finished = 1;
    if (err) {
        w->failed = 1;
        snprintf(w->err, w->errlen, "%s", err);
    }
    event_base_loopbreak(w->base);
}

int names_resolve_now(struct lb_config *cfg, char *err, size_t errlen)
{
    struct names_job *job;
    struct event_base *base = event_base_new();
    if (!base) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    struct names_wait w = {base, 0, err, errlen, 0};
    int rc = names_start(base, cfg, on_wait_done, &w, &job, err, errlen);
    if (rc == 1) {
        while (!w.finished) /* every query ends by its timeout at worst */
            event_base_dispatch(base);
        rc = w.failed ? -1 : 0;
    }
    event_base_free(base);
    return rc;
}
