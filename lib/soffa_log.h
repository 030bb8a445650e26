/*  soffa_log: levelled log lines on stderr.
 *
 *  One line per event: time, level, component, text. Never put an identity
 *  number in a log line: log a message id, a sequence number or a
 *  pseudonymous subject key instead.
 *
 *  When stderr is the journal (systemd sets JOURNAL_STREAM to the device and
 *  inode of the stream it connected, and they are stderr's), each line
 *  starts with its syslog priority, <3> error, <4> warn, <6> info, <7>
 *  debug, which journald takes as the entry's priority and strips, so that
 *  `journalctl -p err` finds the errors. Elsewhere lines have no prefix.
 */
#ifndef SOFFA_LOG_H
#define SOFFA_LOG_H

typedef enum {
    SOFFA_LOG_DEBUG = 0,
    SOFFA_LOG_INFO = 1,
    SOFFA_LOG_WARN = 2,
    SOFFA_LOG_ERROR = 3,
} soffa_log_level_t;

/*  Sets the lowest level printed (default INFO) and the component name
 *  printed on every line (borrowed; keep it static). */
void soffa_log_setup(const char *component, soffa_log_level_t level);

/*  Parses "debug", "info", "warn", "error"; returns -1 when unknown. */
int soffa_log_level_parse(const char *name);

/*  Prints one line if level is enabled. */
void soffa_log(soffa_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define soffa_debug(...) soffa_log(SOFFA_LOG_DEBUG, __VA_ARGS__)
#define soffa_info(...) soffa_log(SOFFA_LOG_INFO, __VA_ARGS__)
#define soffa_warn(...) soffa_log(SOFFA_LOG_WARN, __VA_ARGS__)
#define soffa_error(...) soffa_log(SOFFA_LOG_ERROR, __VA_ARGS__)

#endif
