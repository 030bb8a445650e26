/*  soffa_import: import, sync, pending, approve, reject. */
#include "soffa_import.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "soffa_cli.h"
#include "soffa_id.h"
#include "soffa_sheet.h"
#include "soffa_ss12000.h"
#include "soffa_sync.h"
#include "soffa_time.h"

#define S_FILE_MAX ((size_t) 256 << 20)
#define S_CALL_MS 120000

static bool
s_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            return true;
    return false;
}

static char *
s_read_file(const char *path, size_t *len, char *why, size_t whylen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(why, whylen, "%s kan inte läsas: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || (size_t) st.st_size > S_FILE_MAX) {
        fclose(f);
        snprintf(why, whylen, "%s är ingen vanlig fil på högst %zu MiB", path, S_FILE_MAX >> 20);
        return NULL;
    }
    char *buf = malloc((size_t) st.st_size + 1);
    size_t n = buf ? fread(buf, 1, (size_t) st.st_size, f) : 0;
    fclose(f);
    if (!buf || n != (size_t) st.st_size) {
        free(buf);
        snprintf(why, whylen, "%s kunde inte läsas helt", path);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* ---- Tables for people --------------------------------------------------------- */

static size_t
s_width(const char *s)
{
    size_t w = 0;
    for (const unsigned char *p = (const unsigned char *) s; *p; p++)
        w += (*p & 0xc0) != 0x80;   /* code points, not bytes */
    return w;
}

static void
s_cell(const char *s, size_t width)
{
    fputs(s, stdout);
    for (size_t w = s_width(s); w < width; w++)
        fputc(' ', stdout);
}

typedef struct {
    const char *title;
    const char *key;     /* field of each line; "kommun" prints "Tjörn (1419)" */
} s_col_t;

static void
s_table(json_t *lines, const s_col_t *cols, size_t ncols)
{
    size_t width[8] = {0};
    char buf[300];
    for (size_t c = 0; c < ncols; c++)
        width[c] = s_width(cols[c].title);
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            for (size_t c = 0; c < ncols; c++)
                s_cell(cols[c].title, c + 1 < ncols ? width[c] + 2 : 0);
            fputc('\n', stdout);
        }
        size_t i;
        json_t *l;
        json_array_foreach(lines, i, l) {
            for (size_t c = 0; c < ncols; c++) {
                const char *v = json_string_value(json_object_get(l, cols[c].key));
                if (!strcmp(cols[c].key, "kommun"))
                    snprintf(buf, sizeof buf, "%s (%s)", v ? v : "?",
                             json_string_value(json_object_get(l, "hemkommun")));
                else if (!strcmp(cols[c].key, "id"))   /* the last 8: the first are the date */
                    snprintf(buf, sizeof buf, "%s", v && strlen(v) >= 8 ? v + strlen(v) - 8 : "");
                else
                    snprintf(buf, sizeof buf, "%s", v ? v : "");
                if (pass == 0 && s_width(buf) > width[c])
                    width[c] = s_width(buf);
                else if (pass == 1)
                    s_cell(buf, c + 1 < ncols ? width[c] + 2 : 0);
            }
            if (pass == 1)
                fputc('\n', stdout);
        }
    }
}

static const s_col_t s_signal_cols[] = {
    {"Id", "id"}, {"Elev", "pupil"}, {"Hemkommun", "kommun"}, {"Händelse", "what"}, {"Varför", "why"}};
static const s_col_t s_skip_cols[] = {{"Elev", "pupil"}, {"Hemkommun", "kommun"}, {"Händelse", "what"}, {"Varför ingen signal", "why"}};

static void
s_print_errors(json_t *errors)
{
    size_t i;
    json_t *e;
    json_array_foreach(errors, i, e) fprintf(stderr, "%s: %s\n", json_string_value(json_object_get(e, "where")),
                                             json_string_value(json_object_get(e, "why")));
}

/* Prints what the agent did (or would do); returns the exit status. */
static int
s_report(const char *cmd, json_t *a, json_t *errors, bool json)
{
    if (!json_is_true(json_object_get(a, "ok"))) {
        fprintf(stderr, "soffa %s: vägrades, ingenting har lämnats över: %s [%s]\n", cmd,
                json_string_value(json_object_get(a, "error")), json_string_value(json_object_get(a, "code")));
        return 1;
    }
    size_t bad = json_array_size(errors);
    if (json) {
        json_t *o = json_pack("{s:O, s:O}", "result", a, "errors", errors);
        char *s = json_dumps(o, JSON_COMPACT);
        puts(s);
        free(s);
        json_decref(o);
        return bad ? 1 : 0;
    }
    bool dry = json_is_true(json_object_get(a, "dry_run")), review = json_is_true(json_object_get(a, "review"));
    json_t *sig = json_object_get(a, "signals"), *skip = json_object_get(a, "not_signalled");
    size_t ns = json_array_size(sig), nk = json_array_size(skip);
    long long before = (long long) json_integer_value(json_object_get(a, "unchanged"));
    if (ns) {
        printf("%s\n", dry ? (review ? "Signaler som skulle hållas för godkännande:" : "Signaler som skulle skickas:")
                           : (review ? "Signaler som väntar på godkännande:" : "Signaler som skickas:"));
        s_table(sig, s_signal_cols, 5);
    }
    if (nk) {
        printf("%sÄndringar som inte signaleras:\n", ns ? "\n" : "");
        s_table(skip, s_skip_cols, 4);
    }
    if (ns || nk)
        fputc('\n', stdout);
    if (dry)
        printf("Torrkörning: ingenting har lämnats över. %zu signal(er) skulle %s, %zu ändring(ar) signaleras inte, "
               "%lld hanterade tidigare, %zu fel.\n",
               ns, review ? "hållas för godkännande" : "skickas", nk, before, bad);
    else if (review)
        printf("%zu signal(er) väntar på godkännande (soffa pending visar dem, soffa approve ID|all skickar dem), %zu "
               "ändring(ar) signaleras inte, %lld hanterade tidigare, %zu fel.\n",
               ns, nk, before, bad);
    else
        printf("%zu signal(er) lagda i utkorgen, %zu ändring(ar) signaleras inte, %lld hanterade tidigare, %zu fel.\n",
               ns, nk, before, bad);
    return bad ? 1 : 0;
}

/* ---- Options shared by import and sync -------------------------------------------- */

typedef struct {
    bool dry, skip_bad, attendance;
    const char *since, *today_s, *format, *url, *token_file, *ca_file;
    long timeout_s;
    soffa_date_t today;
    const char *files[64];
    int nfiles;
} s_opts_t;

static int
s_parse(const char *cmd, int argc, char **argv, s_opts_t *o, bool sync)
{
    o->attendance = true;
    o->today = soffa_date_today();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--dry-run"))
            o->dry = true;
        else if (!strcmp(a, "--skip-bad"))
            o->skip_bad = true;
        else if (sync && !strcmp(a, "--no-attendance"))
            o->attendance = false;
        else if (!strncmp(a, "--", 2) && !v)
            return soffa_cli_die(cmd, 2, "%s behöver ett värde (se soffa %s --help)", a, cmd);
        else if (!strcmp(a, "--since"))
            o->since = argv[++i];
        else if (!strcmp(a, "--today"))
            o->today_s = argv[++i];
        else if (!sync && !strcmp(a, "--format"))
            o->format = argv[++i];
        else if (sync && !strcmp(a, "--url"))
            o->url = argv[++i];
        else if (sync && !strcmp(a, "--token-file"))
            o->token_file = argv[++i];
        else if (sync && !strcmp(a, "--ca-file"))
            o->ca_file = argv[++i];
        else if (sync && !strcmp(a, "--timeout"))
            o->timeout_s = atol(argv[++i]);
        else if (!strncmp(a, "--", 2))
            return soffa_cli_die(cmd, 2, "okänt val %s (se soffa %s --help)", a, cmd);
        else if (o->nfiles < 64)
            o->files[o->nfiles++] = a;
        else
            return soffa_cli_die(cmd, 2, "högst 64 filer åt gången");
    }
    soffa_date_t d;
    if (o->since && !soffa_date_parse(o->since, &d))
        return soffa_cli_die(cmd, 2, "--since tar ett datum ÅÅÅÅ-MM-DD");
    if (o->today_s) {
        if (!soffa_date_parse(o->today_s, &d) || soffa_date_cmp(d, o->today) > 0)
            return soffa_cli_die(cmd, 2, "--today tar ett datum ÅÅÅÅ-MM-DD, senast i dag");
        o->today = d;
    }
    return 0;
}

/* Hands the pupils (or signals) to the agent and reports. Takes payload. */
static int
s_hand_over(const char *cmd, const s_opts_t *o, const char *agent_cmd, const char *key, json_t *payload,
            json_t *errors, bool json, soffa_import_call_fn call, void *ctx)
{
    size_t bad = json_array_size(errors);
    s_print_errors(errors);
    if (bad && !o->skip_bad) {
        json_decref(payload);
        fprintf(stderr, "soffa %s: ingenting har lämnats över: %zu fel (ovan). Rätta dem och kör igen, eller kör med "
                        "--skip-bad för att lämna över det som är felfritt.\n", cmd, bad);
        return 1;
    }
    json_t *req = json_pack("{s:s, s:o, s:b}", "cmd", agent_cmd, key, payload, "dry_run", o->dry);
    if (o->since)
        json_object_set_new(req, "since", json_string(o->since));
    char t[11];
    soffa_date_format(o->today, t);
    json_object_set_new(req, "today", json_string(t));
    json_t *a = call(ctx, cmd, req, S_CALL_MS);
    if (!a)
        return 1;
    int rc = s_report(cmd, a, errors, json);
    json_decref(a);
    return rc;
}

/* SS 12000 pupils read: hand them over. Takes ss. */
static int
s_ss12000_hand_over(const char *cmd, const s_opts_t *o, soffa_ss12000_t *ss, bool json, soffa_import_call_fn call,
                    void *ctx)
{
    json_t *errors = json_array();
    json_t *pupils = soffa_ss12000_pupils(ss, &o->today, errors);
    size_t np, no, na;
    soffa_ss12000_counts(ss, &np, &no, &na);
    if (!json)
        printf("Läst: %zu personer (%zu elever i gymnasieskola eller anpassad gymnasieskola), %zu organisationer, %zu "
               "närvaroposter.\n",
               np, json_array_size(pupils) + json_array_size(errors), no, na);
    int rc = s_hand_over(cmd, o, "school-observe", "pupils", pupils, errors, json, call, ctx);
    json_decref(errors);
    return rc;
}

/* ---- soffa import ------------------------------------------------------------------ */

int
soffa_import_cmd(int argc, char **argv, bool json, soffa_import_call_fn call, void *ctx)
{
    if (s_help(argc, argv) || argc < 2) {
        puts("usage: soffa import [--format csv|ss12000] [--dry-run] [--skip-bad] [--since DATE] FILE...\n\n"
             "Reads a school's data and hands the signals it calls for to the agent:\n"
             "  FILE.csv      a spreadsheet (Excel's Swedish CSV: ';', UTF-8, a byte-order mark\n"
             "                are all fine): a list of signals (a column Typ/type) or a list of\n"
             "                pupils with their enrolments (a column Startdatum); see the README\n"
             "  FILE.json     saved SS 12000 responses (--format ss12000): /persons pages, and\n"
             "                /organisations and /calendarEvents?expand=attendance pages if you\n"
             "                have them; give every page\n"
             "The agent compares pupils with what it saw last time and signals what changed\n"
             "(enrolment started or left, absence over the threshold); the same change is\n"
             "never signalled twice, so importing a file again sends nothing new.\n\n"
             "  --dry-run     show, in a table, what would be sent and why; hand over nothing\n"
             "  --skip-bad    hand over the good rows of a file that has bad ones (without it:\n"
             "                nothing, and every bad row is listed with its line or JSON path)\n"
             "  --since DATE  signal changes from DATE on (default: the day of the first import)\n"
             "  --today DATE  judge the data as of an earlier day (to replay an old export)\n"
             "Exit status: 0 done, 1 something was wrong (listed on stderr), 2 usage.");
        return argc < 2 ? 2 : 0;
    }
    s_opts_t o = {0};
    int prc = s_parse("import", argc, argv, &o, false);
    if (prc)
        return prc;
    if (!o.nfiles)
        return soffa_cli_die("import", 2, "ange en fil");
    char why[1024];
    size_t len;
    char *text = s_read_file(o.files[0], &len, why, sizeof why);
    if (!text)
        return soffa_cli_die("import", 1, "%s", why);
    const char *fmt = o.format;
    if (!fmt) {   /* JSON begins with { or [ ; a spreadsheet does not */
        size_t k = strspn(text, " \t\r\n");
        fmt = text[k] == '{' || text[k] == '[' ? "ss12000" : "csv";
    }
    if (!strcmp(fmt, "csv")) {
        if (o.nfiles != 1) {
            free(text);
            return soffa_cli_die("import", 2, "en CSV-fil åt gången");
        }
        json_t *sheet = soffa_sheet_read(text, len, o.files[0], &o.today, why, sizeof why);
        free(text);
        if (!sheet)
            return soffa_cli_die("import", 1, "%s; ingenting har lämnats över", why);
        json_t *ign = json_object_get(sheet, "ignored_columns");
        if (json_array_size(ign) && !json) {
            printf("Kolumner som inte läses:");
            size_t i;
            json_t *c;
            json_array_foreach(ign, i, c) printf("%s %s", i ? "," : "", json_string_value(c));
            fputc('\n', stdout);
        }
        bool signals = !strcmp(json_string_value(json_object_get(sheet, "kind")), "signals");
        json_t *errors = json_incref(json_object_get(sheet, "errors"));
        json_t *payload = json_incref(json_object_get(sheet, signals ? "messages" : "pupils"));
        json_decref(sheet);
        int rc = s_hand_over("import", &o, signals ? "school-submit" : "school-observe", signals ? "messages" : "pupils",
                             payload, errors, json, call, ctx);
        json_decref(errors);
        return rc;
    }
    if (strcmp(fmt, "ss12000") != 0) {
        free(text);
        return soffa_cli_die("import", 2, "--format tar csv eller ss12000");
    }
    soffa_ss12000_t *ss = NULL;
    if (soffa_ss12000_new(&ss) != SOFFA_OK) {
        free(text);
        return soffa_cli_die("import", 1, "slut på minne");
    }
    for (int i = 0; i < o.nfiles; i++) {
        if (i > 0 && !(text = s_read_file(o.files[i], &len, why, sizeof why))) {
            soffa_ss12000_destroy(&ss);
            return soffa_cli_die("import", 1, "%s", why);
        }
        soffa_err_t rc = soffa_ss12000_add(ss, text, len, o.files[i], SOFFA_SS12000_DETECT, NULL, why, sizeof why);
        free(text);
        if (rc != SOFFA_OK) {
            soffa_ss12000_destroy(&ss);
            return soffa_cli_die("import", 1, "%s; ingenting har lämnats över", why);
        }
    }
    int rc = s_ss12000_hand_over("import", &o, ss, json, call, ctx);
    soffa_ss12000_destroy(&ss);
    return rc;
}

/* ---- soffa sync ss12000 ------------------------------------------------------------------ */

int
soffa_import_sync_cmd(int argc, char **argv, bool json, soffa_import_call_fn call, void *ctx)
{
    if (s_help(argc, argv) || argc < 2 || strcmp(argv[1], "ss12000") != 0) {
        puts("usage: soffa sync ss12000 [--url URL --token-file FILE] [--ca-file FILE] [--timeout S]\n"
             "                          [--no-attendance] [--dry-run] [--skip-bad] [--since DATE]\n\n"
             "Reads the student information system's SS 12000 API (every page of /organisations,\n"
             "/persons and, unless --no-attendance, /calendarEvents?expand=attendance since the\n"
             "first day of last month) and hands the changes to the agent as `soffa import` does.\n"
             "Without --url and --token-file the agent's [ss12000] settings are used; the agent\n"
             "runs this itself every [ss12000] interval. The token file must be yours and mode\n"
             "0600; TLS certificates are verified; nothing is handed over unless every page\n"
             "arrived whole and made sense.");
        return argc >= 2 && !strcmp(argv[1], "ss12000") ? 0 : 2;
    }
    s_opts_t o = {0};
    int prc = s_parse("sync", argc - 1, argv + 1, &o, true);
    if (prc)
        return prc;
    json_t *cfg = call(ctx, "sync", json_pack("{s:s}", "cmd", "school-config"), 10000);
    if (!cfg)
        return 1;
    if (!json_is_true(json_object_get(cfg, "ok"))) {
        json_decref(cfg);
        return soffa_cli_die("sync", 1, "agenten svarar inte på school-config; är det en skolas agent av den här versionen?");
    }
    json_t *sc = json_object_get(cfg, "ss12000");
    soffa_sync_opts_t so = {
        .url = o.url ? o.url : json_string_value(json_object_get(sc, "url")),
        .token_file = o.token_file ? o.token_file : json_string_value(json_object_get(sc, "token_file")),
        .ca_file = o.ca_file ? o.ca_file : json_string_value(json_object_get(sc, "ca_file")),
        .timeout_ms = o.timeout_s > 0 ? o.timeout_s * 1000 : (long) json_integer_value(json_object_get(sc, "timeout_ms")),
        .page_size = (long) json_integer_value(json_object_get(sc, "page_size")),
        .attendance = o.attendance && (o.url || json_is_true(json_object_get(sc, "attendance"))),
    };
    if (so.timeout_ms <= 0)
        so.timeout_ms = 60000;
    if (so.page_size <= 0)
        so.page_size = 500;
    if (!so.url || !so.url[0] || !so.token_file || !so.token_file[0]) {
        json_decref(cfg);
        return soffa_cli_die("sync", 2, "ange --url och --token-file, eller [ss12000] url och token_file i agentens "
                                "konfiguration");
    }
    soffa_ss12000_t *ss = NULL;
    if (soffa_ss12000_new(&ss) != SOFFA_OK) {
        json_decref(cfg);
        return soffa_cli_die("sync", 1, "slut på minne");
    }
    char why[1200];
    size_t pages = 0;
    int64_t t0 = soffa_mono_us();
    soffa_err_t rc = soffa_sync_fetch(&so, ss, &pages, why, sizeof why);
    json_decref(cfg);
    if (rc != SOFFA_OK) {
        soffa_ss12000_destroy(&ss);
        return soffa_cli_die("sync", 1, "%s [%s]", why, soffa_errname(rc));
    }
    if (!json)
        printf("Hämtade %zu sidor från SS 12000-API:t på %lld ms.\n", pages, (long long) ((soffa_mono_us() - t0) / 1000));
    int ec = s_ss12000_hand_over("sync", &o, ss, json, call, ctx);
    soffa_ss12000_destroy(&ss);
    return ec;
}

/* ---- Review -------------------------------------------------------------------------- */

int
soffa_import_pending_cmd(int argc, char **argv, bool json, soffa_import_call_fn call, void *ctx)
{
    if (s_help(argc, argv) || argc != 1) {
        puts("usage: soffa pending [--json]\n\n"
             "Lists the signals the agent derived and holds for a person's approval ([school]\n"
             "review = yes). Send one with soffa approve ID (its last 8 characters are\n"
             "enough), all with soffa approve all; drop one with soffa reject ID.");
        return argc == 1 ? 0 : 2;
    }
    json_t *a = call(ctx, "pending", json_pack("{s:s}", "cmd", "school-pending"), 10000);
    if (!a)
        return 1;
    int rc = 0;
    if (!json_is_true(json_object_get(a, "ok"))) {
        rc = soffa_cli_die("pending", 1, "%s", json_string_value(json_object_get(a, "error")));
    } else if (json) {
        char *s = json_dumps(json_object_get(a, "signals"), JSON_COMPACT);
        puts(s);
        free(s);
    } else if (!json_array_size(json_object_get(a, "signals"))) {
        puts("Inga signaler väntar på godkännande.");
    } else {
        static const s_col_t cols[] = {{"Id", "id"},          {"Härledd", "derived_at"}, {"Elev", "pupil"},
                                       {"Hemkommun", "kommun"}, {"Händelse", "what"},      {"Varför", "why"}};
        s_table(json_object_get(a, "signals"), cols, 6);
        printf("\n%zu signal(er) väntar. Godkänn: soffa approve ID|all. Avvisa: soffa reject ID.\n",
               json_array_size(json_object_get(a, "signals")));
    }
    json_decref(a);
    return rc;
}

int
soffa_import_review_cmd(int argc, char **argv, bool json, soffa_import_call_fn call, void *ctx)
{
    bool approve = !strcmp(argv[0], "approve");
    if (s_help(argc, argv) || argc != 2) {
        printf("usage: soffa %s ID|all\n\n%s", argv[0],
               approve ? "Sends a signal held for approval (or all of them): it goes to the outbox and on to\n"
                         "the pupil's home municipality. ID is from soffa pending; its last 8 characters suffice.\n"
                       : "Drops a signal held for approval (or all): it is never sent, and the same change\n"
                         "is not derived again.\n");
        return argc == 2 ? 0 : 2;
    }
    json_t *a = call(ctx, argv[0], json_pack("{s:s, s:s}", "cmd", approve ? "school-approve" : "school-reject", "id",
                                             argv[1]), 10000);
    if (!a)
        return 1;
    int rc = 0;
    if (!json_is_true(json_object_get(a, "ok"))) {
        rc = soffa_cli_die(argv[0], 1, "%s", json_string_value(json_object_get(a, "error")));
    } else if (json) {
        char *s = json_dumps(json_object_get(a, "signals"), JSON_COMPACT);
        puts(s);
        free(s);
    } else {
        size_t i;
        json_t *l;
        json_array_foreach(json_object_get(a, "signals"), i, l) {
            const char *id = json_string_value(json_object_get(l, "id"));
            printf("%s: %s Elev %s, hemkommun %s: %s\n", approve ? "Godkänd och lagd i utkorgen" : "Avvisad",
                   id && strlen(id) >= 8 ? id + strlen(id) - 8 : "", json_string_value(json_object_get(l, "pupil")),
                   json_string_value(json_object_get(l, "kommun")), json_string_value(json_object_get(l, "what")));
        }
    }
    json_decref(a);
    return rc;
}
