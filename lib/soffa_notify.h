/*  soffa_notify: tells systemd how a daemon is doing (the sd_notify protocol).
 *
 *  Under a unit of Type=notify, systemd passes NOTIFY_SOCKET (and, with
 *  WatchdogSec=, WATCHDOG_USEC and WATCHDOG_PID); libsystemd's sd_notify
 *  sends datagrams there. Without NOTIFY_SOCKET every call does nothing, so
 *  the daemons run the same in a terminal, under `soffa up` and in tests.
 *  State is per process (the environment is), so the module keeps it in
 *  statics; call it from the main thread only.
 */
#ifndef SOFFA_NOTIFY_H
#define SOFFA_NOTIFY_H

/*  READY=1 with STATUS=status (borrowed; NULL for none). Call it once the
 *  daemon serves: the broker listens and its store is open; the agent's
 *  control socket answers. A notification that cannot be sent is logged
 *  once as a warning; the daemon goes on. */
void soffa_notify_ready(const char *status);

/*  RELOADING=1: the daemon re-reads its configuration; it says READY=1
 *  again (soffa_notify_ready) when it is done, whether the new
 *  configuration was taken or refused. */
void soffa_notify_reloading(void);

/*  STOPPING=1: the daemon has begun a clean stop. */
void soffa_notify_stopping(void);

/*  Call it on every turn of the main loop. When the service manager asked
 *  for a watchdog (WATCHDOG_USEC set, and WATCHDOG_PID unset or this
 *  process), sends WATCHDOG=1 once every quarter of that interval;
 *  otherwise, and between pings, it costs a clock read. */
void soffa_notify_watchdog(void);

#endif
