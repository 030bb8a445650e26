/*  soffa_sheet: spreadsheet rows into signals or pupil observations. */
#include "soffa_sheet.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "soffa_csv.h"
#include "soffa_id.h"
#include "soffa_msg.h"
#include "soffa_uuid.h"

/* ---- Columns ----------------------------------------------------------------- */

typedef enum {
    S_C_NONE = 0,
    S_C_TYPE,
    S_C_PUPIL,
    S_C_HEMKOMMUN,
    S_C_CONSENT,
    S_C_PROTECTED,
    S_C_START,
    S_C_END,
    S_C_CANCELLED,
    S_C_SCHEDULED,
    S_C_INVALID,
    S_C_FIELD,        /* a payload field, by its schema name */
} s_col_t;

typedef struct {
    s_col_t col;
    const char *field;   /* S_C_FIELD: the payload field */
    const char *names;   /* lower-case names, '|' between them */
} s_coldef_t;

/* Every column soffa reads, under its schema name and the Swedish names a
 * student information system's export plausibly has. The free-text `note`
 * has no Swedish alias on purpose: a "Kommentar" column of an export must
 * never become the text of a signal. */
static const s_coldef_t s_cols[] = {
    {S_C_TYPE, NULL, "type|typ|signal|signaltyp"},
    {S_C_PUPIL, NULL, "pupil|personnummer|elev|personnr|pnr|samordningsnummer|person- eller samordningsnummer|civicno"},
    {S_C_HEMKOMMUN, NULL, "hemkommun|folkbokföringskommun|kommunkod|hemkommunkod|folkbokföringskommun (kod)"},
    {S_C_CONSENT, NULL, "consent|samtycke|samtyckes-id"},
    {S_C_PROTECTED, NULL, "protected|skyddad identitet|skyddad folkbokföring"},
    {S_C_START, NULL, "start_date|startdatum|inskriven från|inskriven fr.o.m."},
    {S_C_END, NULL, "end_date|slutdatum|inskriven till|inskriven t.o.m."},
    {S_C_CANCELLED, NULL, "cancelled|makulerad|makulerad inskrivning"},
    {S_C_SCHEDULED, NULL, "scheduled_minutes|schemalagd tid (min)|schemalagda minuter|schemalagd tid"},
    {S_C_INVALID, NULL, "invalid_absence_minutes|ogiltig frånvaro (min)|ogiltig frånvaro minuter|ogiltig frånvaro"},
    {S_C_FIELD, "event", "event|händelse"},
    {S_C_FIELD, "effective_date", "effective_date|datum|händelsedatum|gäller från"},
    {S_C_FIELD, "school_unit", "school_unit|skolenhetskod|skolenhet"},
    {S_C_FIELD, "school_form", "school_form|skolform"},
    {S_C_FIELD, "programme_code", "programme_code|programkod|program|studievägskod"},
    {S_C_FIELD, "leave_reason", "leave_reason|avgångsorsak|orsak"},
    {S_C_FIELD, "period_from", "period_from|period från|frånvaro från|från och med|fr.o.m."},
    {S_C_FIELD, "period_to", "period_to|period till|frånvaro till|till och med|t.o.m."},
    {S_C_FIELD, "unexcused_band", "unexcused_band|frånvaronivå|nivå"},
    {S_C_FIELD, "investigation_started", "investigation_started|utredning inledd|frånvaroutredning inledd"},
    {S_C_FIELD, "reported_to_csn", "reported_to_csn|rapporterad till csn"},
    {S_C_FIELD, "risk_code", "risk_code|riskkod"},
    {S_C_FIELD, "note", "note"},
};
#define S_NCOLS (sizeof s_cols / sizeof *s_cols)

/* Lower-cases ASCII and Å Ä Ö É (UTF-8) and trims blanks, into out. */
static void
s_fold(const char *in, char *out, size_t outlen)
{
    while (*in == ' ' || *in == '\t')
        in++;
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *) in; *p && o + 2 < outlen; p++) {
        if (p[0] == 0xc3 && (p[1] == 0x85 || p[1] == 0x84 || p[1] == 0x96 || p[1] == 0x89)) {
            out[o++] = (char) 0xc3;
            out[o++] = (char) (p[1] + 0x20);
            p++;
        } else {
            out[o++] = (char) tolower(*p);
        }
    }
    while (o && (out[o - 1] == ' ' || out[o - 1] == '\t'))
        o--;
    out[o] = '\0';
}

static bool
s_in(const char *names, const char *word)
{
    size_t wl = strlen(word);
    for (const char *p = names; *p;) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t) (bar - p) : strlen(p);
        if (n == wl && memcmp(p, word, n) == 0)
            return true;
        if (!bar)
            break;
        p = bar + 1;
    }
    return false;
}

static const s_coldef_t *
s_coldef(const char *header)
{
    char f[256];
    s_fold(header, f, sizeof f);
    for (size_t i = 0; i < S_NCOLS; i++)
        if (s_in(s_cols[i].names, f))
            return &s_cols[i];
    return NULL;
}

/* ---- Words for codes ------------------------------------------------------------ */

typedef struct {
    const char *field, *code, *words;
} s_word_t;

static const s_word_t s_words[] = {
    {"type", "enrolment_changed", "enrolment|enrolment_changed|inskrivning"},
    {"type", "absence_reported", "absence|absence_reported|frånvaro"},
    {"type", "at_risk_notice", "at-risk|at_risk|at_risk_notice|risk|risksignal"},
    {"event", "STARTED", "started|började|börjar|inskriven|start"},
    {"event", "LEFT", "left|slutade|slutar|slutat|avslutad|utskriven"},
    {"leave_reason", "TRANSFER", "transfer|byte av skola|skolbyte|bytt skola|byte"},
    {"leave_reason", "MOVED", "moved|flytt|flyttat|flyttade|utflyttad"},
    {"leave_reason", "DISCONTINUED", "discontinued|avbrott|avbrutit|avbrutna studier|avhopp"},
    {"leave_reason", "OTHER", "other|annan|annat|övrigt|övrig"},
    {"leave_reason", "UNKNOWN", "unknown|okänd|okänt"},
    {"unexcused_band", "SIGNIFICANT", "significant|betydande"},
    {"unexcused_band", "EXTENSIVE", "extensive|omfattande"},
    {"unexcused_band", "TOTAL", "total|fullständig"},
    {"school_form", "GY", "gy|gymnasieskola|gymnasiet"},
    {"school_form", "ANP_GY", "anp_gy|anpassad gymnasieskola|gys|gymnasiesärskola"},
};

const char *
soffa_sheet_code(const char *field, const char *word)
{
    char f[128];
    s_fold(word, f, sizeof f);
    for (size_t i = 0; i < sizeof s_words / sizeof *s_words; i++)
        if (!strcmp(s_words[i].field, field) && s_in(s_words[i].words, f))
            return s_words[i].code;
    return NULL;
}

/* -1: not a yes/no word. */
static int
s_bool(const char *word)
{
    char f[32];
    s_fold(word, f, sizeof f);
    if (s_in("ja|yes|true|1|x|sant", f))
        return 1;
    if (s_in("nej|no|false|0|falskt", f) || !f[0])
        return 0;
    return -1;
}

/* A date "YYYY-MM-DD" or "YYYYMMDD", also with Excel's " 00:00" after it. */
static bool
s_date(const char *text, soffa_date_t *d)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%s", text);
    char *sp = strchr(buf, ' ');
    if (sp && (!strcmp(sp, " 00:00") || !strcmp(sp, " 00:00:00")))
        *sp = '\0';
    return soffa_date_parse(buf, d);
}

/* ---- Reading ----------------------------------------------------------------- */

typedef struct {
    const char *name;
    const soffa_date_t *today;
    const s_coldef_t *cols[SOFFA_CSV_MAX_FIELDS];
    size_t nh;
    bool have_header;
    bool signals;             /* a signal list, else a pupil list */
    json_t *out;
    json_t *pupils_by_id;     /* pupil list: id -> pupil */
    char *why;                /* whole-file failure */
    size_t whylen;
    bool fatal;
} s_sheet_t;

static void
s_row_error(s_sheet_t *s, long line, const char *fmt, const char *a, const char *b)
{
    char where[300], why[600];
    snprintf(where, sizeof where, "%s:%ld", s->name, line);
    snprintf(why, sizeof why, fmt, a ? a : "", b ? b : "");
    json_array_append_new(json_object_get(s->out, "errors"), json_pack("{s:s, s:s}", "where", where, "why", why));
}

static int
s_header(s_sheet_t *s, long line, char **f, size_t n)
{
    bool seen[S_NCOLS] = {false};
    bool type = false, pupil = false, hem = false, start = false;
    for (size_t i = 0; i < n; i++) {
        const s_coldef_t *c = s_coldef(f[i]);
        s->cols[i] = c;
        if (!c) {
            if (f[i][0])
                json_array_append_new(json_object_get(s->out, "ignored_columns"), json_string(f[i]));
            continue;
        }
        size_t k = (size_t) (c - s_cols);
        if (seen[k]) {
            snprintf(s->why, s->whylen, "%s:%ld: två kolumner betyder samma sak (den andra heter \"%s\"); ta bort "
                                        "den ena", s->name, line, f[i]);
            s->fatal = true;
            return 1;
        }
        seen[k] = true;
        type |= c->col == S_C_TYPE;
        pupil |= c->col == S_C_PUPIL;
        hem |= c->col == S_C_HEMKOMMUN;
        start |= c->col == S_C_START;
    }
    s->nh = n;
    s->have_header = true;
    s->signals = type;
    if ((!type && !start) || !pupil || !hem) {
        snprintf(s->why, s->whylen,
                 "%s:%ld: rubrikraden måste ha kolumnerna Personnummer och Hemkommun, och antingen Typ (en lista med "
                 "signaler) eller Startdatum (en elevlista); se README, \"CSV import\"", s->name, line);
        s->fatal = true;
        return 1;
    }
    json_object_set_new(s->out, "kind", json_string(type ? "signals" : "pupils"));
    return 0;
}

/* The subject of a row: identity number and municipality, checked. */
static bool
s_subject(s_sheet_t *s, long line, const char *pnr, const char *hem, char canon[13], soffa_id_kind_t *kind)
{
    soffa_err_t rc = soffa_id_parse_any(pnr, s->today, canon, kind);   /* reserve numbers too */
    if (rc != SOFFA_OK) {
        s_row_error(s, line, "personnumret: %s%s", soffa_strerror(rc), NULL);
        return false;
    }
    if (soffa_kommun_check(hem) != SOFFA_OK) {
        s_row_error(s, line, "hemkommunen '%s' är inte en av de 290 kommunkoderna%s", hem, NULL);
        return false;
    }
    return true;
}

static void
s_signal_row(s_sheet_t *s, long line, char **f)
{
    const char *tname = NULL, *pnr = "", *hem = "", *consent = NULL;
    int protected = 0;
    for (size_t i = 0; i < s->nh; i++) {
        const s_coldef_t *c = s->cols[i];
        if (!c)
            continue;
        if (c->col == S_C_TYPE) {
            tname = soffa_sheet_code("type", f[i]);
            if (!tname) {
                s_row_error(s, line, "typen '%s' är varken inskrivning (enrolment), frånvaro (absence) eller risk "
                                     "(at-risk)%s", f[i], NULL);
                return;
            }
        } else if (c->col == S_C_PUPIL) {
            pnr = f[i];
        } else if (c->col == S_C_HEMKOMMUN) {
            hem = f[i];
        } else if (c->col == S_C_CONSENT && f[i][0]) {
            consent = f[i];
        } else if (c->col == S_C_PROTECTED) {
            protected = s_bool(f[i]);
            if (protected < 0) {
                s_row_error(s, line, "kolumnen %s tar ja eller nej, inte '%s'", "skyddad identitet", f[i]);
                return;
            }
        }
    }
    char canon[13];
    soffa_id_kind_t kind;
    if (!s_subject(s, line, pnr, hem, canon, &kind))
        return;
    soffa_msg_type_t type = soffa_msg_type_from_name(tname);
    json_t *m = json_pack("{s:{s:s, s:s, s:s, s:b}, s:s}", "subject", "id_type", kind == SOFFA_ID_SAMNR ? "SAMNR" : kind == SOFFA_ID_RESERVE ? "LOCAL_RESERVE" : "PNR",
                          "id", canon, "hemkommun", hem, "protected_identity", protected == 1, "legal_basis",
                          type == SOFFA_MT_ENROLMENT_CHANGED  ? "SL_15_15_ENROLMENT"
                          : type == SOFFA_MT_ABSENCE_REPORTED ? "SL_15_15_ABSENCE"
                                                               : "CONSENT_OSL_12_2");
    json_t *pl = json_object();
    json_object_set_new(m, tname, pl);
    char why[400];
    if (consent && soffa_msg_json_set(m, "message", "consent_id", consent, why, sizeof why) != SOFFA_OK) {
        s_row_error(s, line, "samtycket '%s' är inget id (8-4-4-4-12 hex)%s", consent, NULL);
        json_decref(m);
        return;
    }
    for (size_t i = 0; i < s->nh; i++) {
        const s_coldef_t *c = s->cols[i];
        if (!c || c->col != S_C_FIELD || !f[i][0])
            continue;
        if (!soffa_msg_has_field(tname, c->field)) {
            s_row_error(s, line, "kolumnen %s hör inte till en signal av typen %s", c->field, tname);
            json_decref(m);
            return;
        }
        const char *v = f[i];
        const char *code = soffa_sheet_code(c->field, v);
        if (code)
            v = code;
        int b = (!strcmp(c->field, "investigation_started")) ? s_bool(v) : -1;
        if (b >= 0)
            v = b ? "yes" : "no";
        else if (!strcmp(c->field, "reported_to_csn") && s_bool(v) >= 0)
            v = s_bool(v) ? "YES" : "NO";
        soffa_date_t d;
        char dbuf[11];
        if (strstr(c->field, "date") || strstr(c->field, "period_")) {
            if (s_date(v, &d)) {
                soffa_date_format(d, dbuf);
                v = dbuf;
            }
        }
        if (soffa_msg_json_set(pl, tname, c->field, v, why, sizeof why) != SOFFA_OK) {
            s_row_error(s, line, "%s%s", why[0] == '-' && why[1] == '-' ? why + 2 : why, NULL);
            json_decref(m);
            return;
        }
    }
    /* The whole message is checked now, with stand-in ids and times, so that
     * a bad row is reported before anything is handed over. */
    json_t *probe = json_deep_copy(m);
    uint8_t id[16];
    char ids[SOFFA_UUID_STR];
    soffa_uuid7(id);
    soffa_uuid_format(id, ids);
    json_object_set_new(probe, "message_id", json_string(ids));
    json_object_set_new(probe, "correlation_id", json_string(ids));
    json_object_set_new(probe, "schema_version", json_string("1.0"));
    int64_t now = soffa_now_us();
    json_object_set_new(probe, "occurred_at_us", json_integer(now));
    json_object_set_new(probe, "sent_at_us", json_integer(now));
    char *text = json_dumps(probe, JSON_COMPACT);
    json_decref(probe);
    soffa_msg_t *msg = NULL;
    soffa_err_t rc = text ? soffa_msg_from_json(text, &msg, why, sizeof why) : SOFFA_ERR_NOMEM;
    if (rc == SOFFA_OK)
        rc = soffa_msg_validate(msg, now, why, sizeof why);
    soffa_msg_destroy(&msg);
    free(text);
    if (rc != SOFFA_OK) {
        s_row_error(s, line, "%s%s", why[0] ? why : soffa_strerror(rc), NULL);
        json_decref(m);
        return;
    }
    char where[300];
    snprintf(where, sizeof where, "%s:%ld", s->name, line);
    json_array_append_new(json_object_get(s->out, "messages"), json_pack("{s:s, s:o}", "where", where, "message", m));
}

/* Non-negative whole minutes. */
static bool
s_minutes(const char *text, long *out)
{
    char *end;
    if (!text[0] || !isdigit((unsigned char) text[0]))
        return false;
    long v = strtol(text, &end, 10);
    if (*end || v < 0 || v > 10L * 1000 * 1000)
        return false;
    *out = v;
    return true;
}

static void
s_pupil_row(s_sheet_t *s, long line, char **f)
{
    const char *pnr = "", *hem = "", *unit = "", *form = "GY", *prog = "", *reason = "", *start = "", *end = "";
    const char *afrom = "", *ato = "", *sched = "", *inval = "";
    int protected = 0, cancelled = 0;
    for (size_t i = 0; i < s->nh; i++) {
        const s_coldef_t *c = s->cols[i];
        if (!c)
            continue;
        const char *v = f[i];
        switch (c->col) {
        case S_C_PUPIL: pnr = v; break;
        case S_C_HEMKOMMUN: hem = v; break;
        case S_C_START: start = v; break;
        case S_C_END: end = v; break;
        case S_C_SCHEDULED: sched = v; break;
        case S_C_INVALID: inval = v; break;
        case S_C_PROTECTED:
        case S_C_CANCELLED: {
            int b = s_bool(v);
            if (b < 0) {
                s_row_error(s, line, "kolumnen %s tar ja eller nej, inte '%s'",
                            c->col == S_C_CANCELLED ? "Makulerad" : "Skyddad identitet", v);
                return;
            }
            *(c->col == S_C_CANCELLED ? &cancelled : &protected) = b;
            break;
        }
        case S_C_FIELD:
            if (!strcmp(c->field, "school_unit"))
                unit = v;
            else if (!strcmp(c->field, "school_form") && v[0])
                form = v;
            else if (!strcmp(c->field, "programme_code"))
                prog = v;
            else if (!strcmp(c->field, "leave_reason"))
                reason = v;
            else if (!strcmp(c->field, "period_from"))
                afrom = v;
            else if (!strcmp(c->field, "period_to"))
                ato = v;
            else if (v[0]) {
                s_row_error(s, line, "kolumnen %s hör till en signallista (med kolumnen Typ), inte till en elevlista%s",
                            c->field, NULL);
                return;
            }
            break;
        default:
            if (v[0]) {
                s_row_error(s, line, "en elevlista har ingen kolumn för %s%s", c->col == S_C_TYPE ? "typ" : "samtycke",
                            NULL);
                return;
            }
        }
    }
    char canon[13];
    soffa_id_kind_t kind;
    if (!s_subject(s, line, pnr, hem, canon, &kind))
        return;
    if (unit[0] && soffa_skolenhet_check(unit) != SOFFA_OK) {
        s_row_error(s, line, "skolenhetskoden '%s' har inte 8 siffror%s", unit, NULL);
        return;
    }
    const char *fcode = soffa_sheet_code("school_form", form);
    if (!fcode) {
        s_row_error(s, line, "skolformen '%s' är varken gymnasieskola (GY) eller anpassad gymnasieskola (ANP_GY)%s",
                    form, NULL);
        return;
    }
    if (strlen(prog) > 16 || strspn(prog, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") != strlen(prog)) {
        s_row_error(s, line, "programkoden '%s' ska vara högst 16 bokstäver och siffror (t.ex. NA eller NANAT)%s",
                    prog, NULL);
        return;
    }
    const char *rcode = reason[0] ? soffa_sheet_code("leave_reason", reason) : "";
    if (!rcode) {
        s_row_error(s, line, "avgångsorsaken '%s' är inte en av: byte av skola, flytt, avbrott, annan, okänd%s", reason,
                    NULL);
        return;
    }
    soffa_date_t ds, de;
    char sb[11], eb[11] = "";
    if (!s_date(start, &ds)) {
        s_row_error(s, line, "startdatumet '%s' är inget datum ÅÅÅÅ-MM-DD%s", start, NULL);
        return;
    }
    soffa_date_format(ds, sb);
    if (end[0]) {
        if (!s_date(end, &de)) {
            s_row_error(s, line, "slutdatumet '%s' är inget datum ÅÅÅÅ-MM-DD%s", end, NULL);
            return;
        }
        if (soffa_date_cmp(de, ds) < 0) {
            s_row_error(s, line, "slutdatumet %s ligger före startdatumet %s", end, start);
            return;
        }
        soffa_date_format(de, eb);
    }
    json_t *absence = NULL;
    if (afrom[0] || ato[0] || sched[0] || inval[0]) {
        soffa_date_t af, at;
        long sm, im;
        if (!s_date(afrom, &af) || !s_date(ato, &at) || soffa_date_cmp(af, at) > 0) {
            s_row_error(s, line, "frånvaron behöver en period: Frånvaro från och Frånvaro till, två datum i ordning "
                                 "(fick '%s' och '%s')", afrom, ato);
            return;
        }
        if (!s_minutes(sched, &sm) || !s_minutes(inval, &im) || im > sm) {
            s_row_error(s, line, "frånvaron behöver Schemalagd tid (min) och Ogiltig frånvaro (min), hela minuter, "
                                 "den ogiltiga högst den schemalagda (fick '%s' och '%s')", sched, inval);
            return;
        }
        char fb[11], tb[11];
        soffa_date_format(af, fb);
        soffa_date_format(at, tb);
        char where[300];
        snprintf(where, sizeof where, "%s:%ld", s->name, line);
        absence = json_pack("{s:s, s:s, s:s, s:I, s:I}", "where", where, "from", fb, "to", tb, "scheduled",
                            (json_int_t) sm, "invalid", (json_int_t) im);
    }
    json_t *p = json_object_get(s->pupils_by_id, canon);
    char where[300];
    snprintf(where, sizeof where, "%s:%ld", s->name, line);
    if (!p) {
        p = json_pack("{s:s, s:s, s:s, s:s, s:b, s:s, s:[], s:[]}", "where", where, "id", canon, "id_type",
                      kind == SOFFA_ID_SAMNR ? "SAMNR" : kind == SOFFA_ID_RESERVE ? "LOCAL_RESERVE" : "PNR", "hemkommun", hem, "protected", protected == 1, "status",
                      "", "enrolments", "absence");
        json_object_set_new(s->pupils_by_id, canon, p);
        json_array_append(json_object_get(s->out, "pupils"), p);
    } else if (strcmp(json_string_value(json_object_get(p, "hemkommun")), hem) != 0) {
        s_row_error(s, line, "samma elev står med en annan hemkommun (%s) på en tidigare rad%s",
                    json_string_value(json_object_get(p, "hemkommun")), NULL);
        json_decref(absence);
        return;
    }
    json_array_append_new(json_object_get(p, "enrolments"),
                          json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:s}", "where", where, "unit", unit, "form",
                                    fcode, "programme", prog, "start", sb, "end", eb, "cancelled", cancelled == 1,
                                    "reason", rcode));
    if (absence)
        json_array_append_new(json_object_get(p, "absence"), absence);
}

static int
s_row(void *ctx, long line, char **f, size_t n)
{
    s_sheet_t *s = ctx;
    if (!s->have_header)
        return s_header(s, line, f, n);
    json_object_set_new(s->out, "rows", json_integer(json_integer_value(json_object_get(s->out, "rows")) + 1));
    if (n != s->nh) {
        char a[32], b[32];
        snprintf(a, sizeof a, "%zu", n);
        snprintf(b, sizeof b, "%zu", s->nh);
        s_row_error(s, line, "raden har %s kolumner men rubrikraden %s", a, b);
        return 0;
    }
    if (s->signals)
        s_signal_row(s, line, f);
    else
        s_pupil_row(s, line, f);
    return 0;
}

json_t *
soffa_sheet_read(const char *text, size_t len, const char *name, const soffa_date_t *today, char *why, size_t whylen)
{
    s_sheet_t s = {.name = name, .today = today, .why = why, .whylen = whylen};
    s.out = json_pack("{s:s, s:i, s:[], s:[], s:[], s:[]}", "kind", "", "rows", 0, "errors", "ignored_columns",
                      "messages", "pupils");
    s.pupils_by_id = json_object();
    char cwhy[600];
    soffa_err_t rc = soffa_csv_read(text, len, s_row, &s, NULL, cwhy, sizeof cwhy);
    if (rc == SOFFA_OK && !s.fatal && !s.have_header) {
        snprintf(why, whylen, "%s: filen är tom (ingen rubrikrad)", name);
        s.fatal = true;
    } else if (rc != SOFFA_OK && !s.fatal) {
        snprintf(why, whylen, "%s: %s", name, rc == SOFFA_ERR_NOMEM ? "slut på minne" : cwhy);
        s.fatal = true;
    }
    json_decref(s.pupils_by_id);
    if (s.fatal) {
        json_decref(s.out);
        return NULL;
    }
    return s.out;
}
