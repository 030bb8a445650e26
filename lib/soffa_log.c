/*  soffa_log: one formatted line per call, written with a single write. */
#include "soffa_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "soffa_time.h"

static const char *s_component = "soffa";
static soffa_log_level_t s_level = SOFFA_LOG_INFO;
static const char *const s_names[] = {"debug", "info", "warn", "error"};
static const char s_priority[] = {'7', '6', '4', '3'};   /* syslog priority of each level */
static int s_journal = -1;   /* stderr is the journal: -1 not looked at yet, 0 no, 1 yes */

/* Is stderr the stream systemd connected to the journal? JOURNAL_STREAM is
 * "DEV:INODE" of that stream; a child that inherited the variable but had
 * its stderr redirected elsewhere must not prefix. */
static int
s_is_journal(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    char tail;
    struct stat st;
    if (!js || sscanf(js, "%llu:%llu%c", &dev, &ino, &tail) != 2 || fstat(STDERR_FILENO, &st) != 0)
        return 0;
    return (unsigned long long) st.st_dev == dev && (unsigned long long) st.st_ino == ino;
}

void
soffa_log_setup(const char *component, soffa_log_level_t level)
{
    if (component)
        s_component = component;
    s_level = level;
    s_journal = s_is_journal();
}

int
soffa_log_level_parse(const char *name)
{
    for (int i = 0; name && i < 4; i++)
        if (strcmp(name, s_names[i]) == 0)
            return i;
    return -1;
}

void
soffa_log(soffa_log_level_t level, const char *fmt, ...)
{
    if (level < s_level || level > SOFFA_LOG_ERROR)
        return;
    if (s_journal < 0)
        s_journal = s_is_journal();
    char line[1024], ts[32], prio[4] = "";
    if (s_journal)
        snprintf(prio, sizeof prio, "<%c>", s_priority[level]);
    soffa_time_format(soffa_now_us(), ts);
    int n = snprintf(line, sizeof line, "%s%s %-5s %s: ", prio, ts, s_names[level], s_component);
    if (n < 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t) n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t) n + (m < 0 ? 0 : (size_t) m);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    /* Client-supplied text (a HELLO's client name, a mailbox, a key) must
     * not forge a line of its own: every control character is written as
     * \xNN, so one call is always exactly one line. */
    char out[4 * sizeof line];
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) line[i];
        if (c < 0x20 || c == 0x7f || c == '\\') {
            o += (size_t) snprintf(out + o, sizeof out - o, c == '\\' ? "\\\\" : "\\x%02x", c);
        } else {
            out[o++] = (char) c;
        }
    }
    out[o++] = '\n';
    ssize_t w = write(STDERR_FILENO, out, o);
    (void) w;   /* nothing sensible to do when stderr is gone */
}
