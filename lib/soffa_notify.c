/*  soffa_notify: sd_notify from libsystemd, a no-op without NOTIFY_SOCKET. */
#include "soffa_notify.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "soffa_log.h"
#include "soffa_time.h"

static int s_watchdog = -1;        /* -1 not looked at yet, 0 off, 1 on */
static int64_t s_interval_us;      /* between two WATCHDOG=1 */
static int64_t s_next_us;          /* monotonic time of the next ping */
static bool s_warned;              /* a failed notification was logged */

/* Sends one notification; logs the first failure (systemd would then take
 * the daemon for hung or never ready, and the log says why). */
static void
s_send(const char *state)
{
    int rc = sd_notify(0, state);
    if (rc < 0 && !s_warned) {
        s_warned = true;
        soffa_warn("cannot notify the service manager (%s): %s", state, strerror(-rc));
    }
}

void
soffa_notify_ready(const char *status)
{
    char msg[300];
    if (status)
        snprintf(msg, sizeof msg, "READY=1\nSTATUS=%s", status);
    else
        snprintf(msg, sizeof msg, "READY=1");
    s_send(msg);
}

void
soffa_notify_reloading(void)
{
    /* MONOTONIC_USEC lets systemd 253 and later (Type=notify-reload) tell
     * this reload from an earlier one; older ones ignore it. */
    char msg[80];
    snprintf(msg, sizeof msg, "RELOADING=1\nMONOTONIC_USEC=%lld", (long long) soffa_mono_us());
    s_send(msg);
}

void
soffa_notify_stopping(void)
{
    s_send("STOPPING=1");
}

void
soffa_notify_watchdog(void)
{
    if (s_watchdog < 0) {
        uint64_t usec = 0;
        /* > 0 only when WATCHDOG_USEC is set and WATCHDOG_PID, if set, is us. */
        s_watchdog = sd_watchdog_enabled(0, &usec) > 0 && usec > 0;
        s_interval_us = (int64_t) (usec / 4);
        s_next_us = 0;
    }
    if (!s_watchdog)
        return;
    int64_t now = soffa_mono_us();
    if (now < s_next_us)
        return;
    s_send("WATCHDOG=1");
    s_next_us = now + s_interval_us;
}
