/*  soffa_agent_metrics: the agent's metrics (see soffa_agent_metrics.h). */
#include "soffa_agent_metrics.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "soffa_log.h"
#include "soffa_prom.h"
#include "soffa_time.h"
#include "soffa_version.h"

soffa_err_t
soffa_agent_metrics_open(soffa_agent_t *self, char *why, size_t whylen)
{
    /* The one count that needs a look at the inbox: at start, then kept
     * where records are parked and retried. */
    uint64_t failed = 0;
    soffa_box_inbox_counts(self->box, NULL, NULL, &failed);
    self->stats.parked = failed;
    self->stats.started_at_us = soffa_now_us();
    if (!self->cfg.metrics_listen[0])
        return SOFFA_OK;
    char what[1100];
    snprintf(what, sizeof what, "%s: [metrics] listen", self->config_path);
    soffa_prom_t *p = NULL;
    soffa_err_t rc = soffa_prom_open(&p, self->cfg.metrics_listen, what, why, whylen);
    if (rc != SOFFA_OK)
        return rc;
    self->stats.prom = p;
    const char *colon = strrchr(self->cfg.metrics_listen, ':');
    soffa_info("metrics on http://%.*s:%d/metrics", (int) (colon - self->cfg.metrics_listen), self->cfg.metrics_listen,
               soffa_prom_port(p));
    return SOFFA_OK;
}

int
soffa_agent_metrics_fd(const soffa_agent_t *self)
{
    return self->stats.prom ? soffa_prom_fd(self->stats.prom) : -1;
}

/* The oldest outbox entry's age: its message id is a UUIDv7, whose first
 * 48 bits are the Unix time in milliseconds it was made. */
static int
s_oldest(void *ctx, uint64_t local_id, const uint8_t msg_id[16], const uint8_t *msg, size_t len)
{
    (void) local_id;
    (void) msg;
    (void) len;
    uint64_t ms = 0;
    for (int i = 0; i < 6; i++)
        ms = ms << 8 | msg_id[i];
    *(int64_t *) ctx = (int64_t) ms * 1000;
    return 1;
}

static double
s_rss(void)
{
    unsigned long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "re");
    if (!f)
        return 0;
    if (fscanf(f, "%lu %lu", &size, &resident) != 2)
        resident = 0;
    fclose(f);
    return (double) resident * (double) sysconf(_SC_PAGESIZE);
}

static void
s_render(void *ctx, soffa_prom_text_t *t)
{
    soffa_agent_t *self = ctx;
    char l[256];
    soffa_prom_family(t, "soffa_agent_info", "gauge", "the agent's name and version (the value is always 1)");
    soffa_prom_label(l, sizeof l, "", "agent", self->cfg.name);
    char v[160];
    soffa_prom_label(v, sizeof v, ",", "version", soffa_version());
    strncat(l, v, sizeof l - strlen(l) - 1);
    soffa_prom_sample(t, "soffa_agent_info", l, 1);
    soffa_prom_family(t, "process_start_time_seconds", "gauge", "when the agent started (Unix time)");
    soffa_prom_sample(t, "process_start_time_seconds", NULL, (double) (self->stats.started_at_us / 1000000));
    soffa_prom_family(t, "process_resident_memory_bytes", "gauge", "the agent's resident memory");
    soffa_prom_sample(t, "process_resident_memory_bytes", NULL, s_rss());

    soffa_prom_family(t, "soffa_agent_connected", "gauge", "1 while the agent has a session with the broker");
    soffa_prom_sample(t, "soffa_agent_connected", NULL, soffa_agent_online(self) ? 1 : 0);
    uint64_t depth = soffa_box_outbox_count(self->box);
    soffa_prom_family(t, "soffa_agent_outbox_depth", "gauge", "messages in the outbox, not yet answered by the broker");
    soffa_prom_sample(t, "soffa_agent_outbox_depth", NULL, (double) depth);
    int64_t oldest = 0;
    if (depth)
        soffa_box_outbox_scan(self->box, 0, s_oldest, &oldest);
    int64_t now = soffa_now_us();
    soffa_prom_family(t, "soffa_agent_outbox_oldest_age_seconds", "gauge",
                      "age of the oldest message waiting in the outbox (0 when it is empty)");
    soffa_prom_sample(t, "soffa_agent_outbox_oldest_age_seconds", NULL,
                      oldest && now > oldest ? (double) (now - oldest) / 1e6 : 0);
    soffa_prom_family(t, "soffa_agent_refusals_total", "counter", "messages the broker refused since the agent started");
    soffa_prom_sample(t, "soffa_agent_refusals_total", NULL, (double) self->outbox.refused);
    soffa_prom_family(t, "soffa_agent_hook_runs_total", "counter", "hook runs finished since the agent started");
    soffa_prom_sample(t, "soffa_agent_hook_runs_total", NULL, (double) self->stats.hook_runs);
    soffa_prom_family(t, "soffa_agent_hook_failures_total", "counter",
                      "hook runs that failed (a non-zero exit, a signal, a timeout) since the agent started");
    soffa_prom_sample(t, "soffa_agent_hook_failures_total", NULL, (double) self->stats.hook_failures);
    soffa_prom_family(t, "soffa_agent_parked", "gauge",
                      "delivered messages the hook gave up on, waiting for 'soffa retry'");
    soffa_prom_sample(t, "soffa_agent_parked", NULL, (double) self->stats.parked);
    soffa_prom_family(t, "soffa_agent_reloads_total", "counter", "configuration reloads (SIGHUP), taken or refused");
    soffa_prom_sample(t, "soffa_agent_reloads_total", "result=\"taken\"", (double) self->stats.reloads);
    soffa_prom_sample(t, "soffa_agent_reloads_total", "result=\"refused\"", (double) self->stats.reload_failures);
}

void
soffa_agent_metrics_answer(soffa_agent_t *self)
{
    if (self->stats.prom)
        soffa_prom_answer(self->stats.prom, s_render, self);
}

void
soffa_agent_metrics_close(soffa_agent_t *self)
{
    soffa_prom_t *p = self->stats.prom;
    soffa_prom_close(&p);
    self->stats.prom = NULL;
}
