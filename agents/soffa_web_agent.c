/*  soffa_web_agent: REQ calls to the agent and the watcher thread. */
#include "soffa_web_agent.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "soffa_ctl.h"
#include "soffa_log.h"

struct soffa_web_agent {
    void *ctx;
    char path[1100];
    char endpoint[1100];
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t generation;
    volatile bool stop;
};

soffa_err_t
soffa_web_agent_new(soffa_web_agent_t **out, const char *socket_path)
{
    soffa_web_agent_t *self = calloc(1, sizeof *self);
    if (!self)
        return SOFFA_ERR_NOMEM;
    self->ctx = zmq_ctx_new();
    snprintf(self->path, sizeof self->path, "%s", socket_path);
    snprintf(self->endpoint, sizeof self->endpoint, "ipc://%.1090s", socket_path);
    pthread_mutex_init(&self->mu, NULL);
    pthread_cond_init(&self->cv, NULL);
    *out = self;
    return SOFFA_OK;
}

json_t *
soffa_web_agent_call(soffa_web_agent_t *self, json_t *req, int timeout_ms)
{
    if (access(self->path, F_OK) != 0) {   /* no agent: say so at once */
        json_decref(req);
        return NULL;
    }
    return soffa_ctl_call(self->ctx, self->endpoint, req, timeout_ms);
}

static void *
s_watch(void *arg)
{
    soffa_web_agent_t *self = arg;
    json_int_t inbox_last = -1, sent_gen = -1;
    while (!self->stop) {
        json_t *a = soffa_web_agent_call(self,
                                         json_pack("{s:s, s:I, s:I, s:i}", "cmd", "wait", "inbox_after",
                                                   inbox_last < 0 ? (json_int_t) 0 : inbox_last, "sent_after",
                                                   sent_gen < 0 ? (json_int_t) 0 : sent_gen, "wait_ms",
                                                   inbox_last < 0 ? 0 : 1000),
                                         3000);
        if (!a || !json_is_true(json_object_get(a, "ok"))) {
            json_decref(a);
            for (int i = 0; i < 5 && !self->stop; i++)
                usleep(100 * 1000);
            continue;
        }
        json_int_t il = json_integer_value(json_object_get(a, "inbox_last"));
        json_int_t sg = json_integer_value(json_object_get(a, "sent_gen"));
        json_decref(a);
        if (il != inbox_last || sg != sent_gen) {
            pthread_mutex_lock(&self->mu);
            self->generation++;
            pthread_cond_broadcast(&self->cv);
            pthread_mutex_unlock(&self->mu);
            inbox_last = il;
            sent_gen = sg;
        }
    }
    return NULL;
}

soffa_err_t
soffa_web_agent_watch_start(soffa_web_agent_t *self)
{
    if (pthread_create(&self->thread, NULL, s_watch, self) != 0)
        return SOFFA_ERR_NOMEM;
    self->thread_started = true;
    return SOFFA_OK;
}

uint64_t
soffa_web_agent_watch_wait(soffa_web_agent_t *self, uint64_t seen, int timeout_ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long) (timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&self->mu);
    while (self->generation == seen && !self->stop)
        if (pthread_cond_timedwait(&self->cv, &self->mu, &until) != 0)
            break;
    uint64_t g = self->generation;
    pthread_mutex_unlock(&self->mu);
    return g;
}

uint64_t
soffa_web_agent_generation(soffa_web_agent_t *self)
{
    pthread_mutex_lock(&self->mu);
    uint64_t g = self->generation;
    pthread_mutex_unlock(&self->mu);
    return g;
}

bool
soffa_web_agent_stopping(soffa_web_agent_t *self)
{
    return self->stop;
}

void
soffa_web_agent_stop(soffa_web_agent_t *self)
{
    pthread_mutex_lock(&self->mu);
    self->stop = true;
    pthread_cond_broadcast(&self->cv);
    pthread_mutex_unlock(&self->mu);
    if (self->thread_started) {
        pthread_join(self->thread, NULL);
        self->thread_started = false;
    }
}

void
soffa_web_agent_destroy(soffa_web_agent_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    soffa_web_agent_t *self = *self_p;
    soffa_web_agent_stop(self);
    zmq_ctx_term(self->ctx);
    pthread_mutex_destroy(&self->mu);
    pthread_cond_destroy(&self->cv);
    free(self);
    *self_p = NULL;
}
