/*  soffa_ss12000: SS 12000 responses into pupil observations. */
#include "soffa_ss12000.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "soffa_id.h"
#include "soffa_uuid.h"

#define S_MAX_DEPTH 64

struct soffa_ss12000 {
    json_t *persons;       /* [{"where": path, "person": Person}] of GY/GYS pupils */
    json_t *units;         /* organisation id -> schoolUnitCode ("" when it has none) */
    json_t *attendance;    /* student id -> {"YYYY-MM": {"from","to","scheduled","invalid","where"}} */
    size_t n_persons, n_orgs, n_att;
};

soffa_err_t
soffa_ss12000_new(soffa_ss12000_t **out)
{
    soffa_ss12000_t *self = calloc(1, sizeof *self);
    if (!self)
        return SOFFA_ERR_NOMEM;
    self->persons = json_array();
    self->units = json_object();
    self->attendance = json_object();
    if (!self->persons || !self->units || !self->attendance) {
        soffa_ss12000_destroy(&self);
        return SOFFA_ERR_NOMEM;
    }
    *out = self;
    return SOFFA_OK;
}

void
soffa_ss12000_destroy(soffa_ss12000_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    json_decref((*self_p)->persons);
    json_decref((*self_p)->units);
    json_decref((*self_p)->attendance);
    free(*self_p);
    *self_p = NULL;
}

void
soffa_ss12000_counts(const soffa_ss12000_t *self, size_t *persons, size_t *organisations, size_t *attendance)
{
    *persons = self->n_persons;
    *organisations = self->n_orgs;
    *attendance = self->n_att;
}

/* ---- Small readers ---------------------------------------------------------------- */

static bool
s_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char) s[i]))
            return false;
    return true;
}

bool
soffa_ss12000_instant(const char *t, int64_t *out_us)
{
    /* YYYY-MM-DDTHH:MM:SS[.f+](Z|+HH:MM|-HH:MM) */
    size_t len = t ? strlen(t) : 0;
    if (len < 20 || !s_digits(t, 4) || t[4] != '-' || !s_digits(t + 5, 2) || t[7] != '-' || !s_digits(t + 8, 2)
        || (t[10] != 'T' && t[10] != 't' && t[10] != ' ') || !s_digits(t + 11, 2) || t[13] != ':'
        || !s_digits(t + 14, 2) || t[16] != ':' || !s_digits(t + 17, 2))
        return false;
    int y = atoi(t), mo = atoi(t + 5), d = atoi(t + 8), h = atoi(t + 11), mi = atoi(t + 14), s = atoi(t + 17);
    if (!soffa_date_valid(y, mo, d) || h > 23 || mi > 59 || s > 60)
        return false;
    const char *p = t + 19;
    int64_t frac_us = 0;
    if (*p == '.') {
        p++;
        int64_t scale = 100000;
        if (!isdigit((unsigned char) *p))
            return false;
        while (isdigit((unsigned char) *p)) {
            frac_us += (*p - '0') * scale;
            scale /= 10;
            p++;
        }
    }
    int off_s = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if ((*p == '+' || *p == '-') && s_digits(p + 1, 2) && p[3] == ':' && s_digits(p + 4, 2)) {
        int oh = atoi(p + 1), om = atoi(p + 4);
        if (oh > 23 || om > 59)
            return false;
        off_s = (oh * 3600 + om * 60) * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return false;
    }
    if (*p)
        return false;
    soffa_date_t dd = {y, mo, d};
    int64_t secs = soffa_date_to_days(dd) * 86400 + h * 3600 + mi * 60 + (s > 59 ? 59 : s) - off_s;
    *out_us = secs * 1000000 + frac_us;
    return true;
}

/* out = base + suffix (cut short if it must be: it is only for messages). */
static bool
s_cat(char *out, size_t len, const char *base, const char *suffix)
{
    size_t bl = strlen(base), sl = strlen(suffix);
    bool fits = bl + sl < len;
    if (bl >= len)
        bl = len - 1;
    if (bl + sl >= len)
        sl = len - 1 - bl;
    memmove(out, base, bl);
    memcpy(out + bl, suffix, sl);
    out[bl + sl] = '\0';
    return fits;
}

/* Formats a JSON path element onto where: "where: data[3]" style. */
static void
s_path(char *out, size_t len, const char *base, const char *fmt, const char *name, size_t idx)
{
    char part[160];
    if (snprintf(part, sizeof part, fmt, name, idx) < 0)
        part[0] = '\0';
    s_cat(out, len, base, part);
}

static void
s_err(json_t *errors, const char *where, const char *why)
{
    json_array_append_new(errors, json_pack("{s:s, s:s}", "where", where, "why", why));
}

/* ---- Documents ----------------------------------------------------------------- */

typedef struct {
    soffa_ss12000_t *self;
    char *why;
    size_t whylen;
} s_add_t;

static soffa_err_t
s_bad(s_add_t *a, const char *where, const char *what)
{
    snprintf(a->why, a->whylen, "%s: %s", where, what);
    return SOFFA_ERR_MALFORMED;
}

static soffa_ss12000_kind_t
s_detect(json_t *o)
{
    if (json_object_get(o, "civicNo") || json_object_get(o, "givenName") || json_object_get(o, "enrolments"))
        return SOFFA_SS12000_PERSONS;
    if (json_object_get(o, "organisationType") || json_object_get(o, "schoolUnitCode"))
        return SOFFA_SS12000_ORGANISATIONS;
    if (json_object_get(o, "startTime") && json_object_get(o, "activity"))
        return SOFFA_SS12000_CALENDAR_EVENTS;
    return SOFFA_SS12000_DETECT;
}

static bool
s_is_uuid(json_t *v)
{
    uint8_t id[16];
    return json_is_string(v) && strlen(json_string_value(v)) == 36 && soffa_uuid_parse(json_string_value(v), id);
}

/* A person: only the shape is checked here; the meaning in s_pupil. */
static soffa_err_t
s_person(s_add_t *a, json_t *p, const char *where)
{
    char w[512];
    json_t *en = json_object_get(p, "enrolments");
    if (en && !json_is_array(en)) {
        s_cat(w, sizeof w, where, ".enrolments");
        return s_bad(a, w, "ska vara en lista av Enrolment");
    }
    bool ours = false;
    size_t j;
    json_t *e;
    json_array_foreach(en, j, e) {
        s_path(w, sizeof w, where, ".%s[%zu]", "enrolments", j);
        if (!json_is_object(e))
            return s_bad(a, w, "ska vara ett objekt (Enrolment)");
        json_t *st = json_object_get(e, "schoolType");
        if (!json_is_string(st)) {
            s_cat(w + strlen(w), sizeof w - strlen(w), "", ".schoolType");
            return s_bad(a, w, "saknas eller är ingen text (skolformens kod, t.ex. GY)");
        }
        ours |= !strcmp(json_string_value(st), "GY") || !strcmp(json_string_value(st), "GYS");
    }
    a->self->n_persons++;
    if (!ours)
        return SOFFA_OK;   /* staff, guardians, other school forms: not read further */
    json_array_append_new(a->self->persons, json_pack("{s:s, s:O}", "where", where, "person", p));
    return SOFFA_OK;
}

static soffa_err_t
s_organisation(s_add_t *a, json_t *o, const char *where)
{
    char w[512];
    json_t *id = json_object_get(o, "id"), *code = json_object_get(o, "schoolUnitCode");
    if (!s_is_uuid(id)) {
        s_cat(w, sizeof w, where, ".id");
        return s_bad(a, w, "saknas eller är inget UUID");
    }
    if (code && !json_is_string(code) && !json_is_null(code)) {
        s_cat(w, sizeof w, where, ".schoolUnitCode");
        return s_bad(a, w, "ska vara text (skolenhetskoden, 8 siffror)");
    }
    json_object_set_new(a->self->units, json_string_value(id), json_string(json_is_string(code) ? json_string_value(code) : ""));
    a->self->n_orgs++;
    return SOFFA_OK;
}

static bool
s_minutes(json_t *v, json_int_t *out)
{
    if (!v || json_is_null(v)) {
        *out = 0;
        return true;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 24 * 60)
        return false;
    *out = json_integer_value(v);
    return true;
}

static soffa_err_t
s_event(s_add_t *a, json_t *ev, const char *where)
{
    char w[512];
    int64_t t;
    json_t *st = json_object_get(ev, "startTime");
    if (!json_is_string(st) || !soffa_ss12000_instant(json_string_value(st), &t)) {
        s_cat(w, sizeof w, where, ".startTime");
        return s_bad(a, w, "saknas eller är ingen tidpunkt enligt RFC 3339 (2026-09-14T08:00:00+02:00)");
    }
    json_t *c = json_object_get(ev, "cancelled");
    if (c && !json_is_boolean(c)) {
        s_cat(w, sizeof w, where, ".cancelled");
        return s_bad(a, w, "ska vara true eller false");
    }
    json_t *att = json_object_get(json_object_get(ev, "_embedded"), "attendance");
    if (att && !json_is_array(att)) {
        s_cat(w, sizeof w, where, "._embedded.attendance");
        return s_bad(a, w, "ska vara en lista av Attendance");
    }
    if (json_is_true(c))
        return SOFFA_OK;   /* an event that was cancelled was not scheduled time */
    soffa_date_t day = soffa_date_local(t);
    char month[8], date[11];
    snprintf(month, sizeof month, "%04d-%02d", day.year, day.month);
    soffa_date_format(day, date);
    size_t k;
    json_t *r;
    json_array_foreach(att, k, r) {
        s_path(w, sizeof w, where, "._embedded.%s[%zu]", "attendance", k);
        json_t *sid = json_object_get(json_object_get(r, "student"), "id");
        json_t *rep = json_object_get(r, "isReported");
        json_int_t m[4];
        static const char *const fields[] = {"attendanceMinutes", "validAbsenceMinutes", "invalidAbsenceMinutes",
                                             "otherAttendanceMinutes"};
        if (!json_is_object(r) || !s_is_uuid(sid))
            return s_bad(a, w, "ska vara ett Attendance-objekt med student.id (ett UUID)");
        if (!json_is_boolean(rep)) {
            s_cat(w + strlen(w), sizeof w - strlen(w), "", ".isReported");
            return s_bad(a, w, "saknas eller är inte true/false");
        }
        for (int f = 0; f < 4; f++) {
            if (!s_minutes(json_object_get(r, fields[f]), &m[f])) {
                s_cat(w + strlen(w), sizeof w - strlen(w), ".", fields[f]);
                return s_bad(a, w, "ska vara hela minuter, 0 till 1440");
            }
        }
        if (!json_is_true(rep))
            continue;   /* not reported yet: says nothing */
        json_t *per = json_object_get(a->self->attendance, json_string_value(sid));
        if (!per) {
            per = json_object();
            json_object_set_new(a->self->attendance, json_string_value(sid), per);
        }
        json_t *mo = json_object_get(per, month);
        if (!mo) {
            char first[11];
            snprintf(first, sizeof first, "%s-01", month);
            mo = json_pack("{s:s, s:s, s:I, s:I, s:s}", "from", first, "to", date, "scheduled", (json_int_t) 0,
                           "invalid", (json_int_t) 0, "where", where);
            json_object_set_new(per, month, mo);
        }
        if (strcmp(json_string_value(json_object_get(mo, "to")), date) < 0)
            json_object_set_new(mo, "to", json_string(date));
        json_object_set_new(mo, "scheduled", json_integer(json_integer_value(json_object_get(mo, "scheduled")) + m[0]
                                                          + m[1] + m[2] + m[3]));
        json_object_set_new(mo, "invalid", json_integer(json_integer_value(json_object_get(mo, "invalid")) + m[2]));
        a->self->n_att++;
    }
    return SOFFA_OK;
}

static soffa_err_t
s_items(s_add_t *a, json_t *items, const char *where, soffa_ss12000_kind_t kind)
{
    size_t i;
    json_t *o;
    json_array_foreach(items, i, o) {
        char w[512];
        s_path(w, sizeof w, where, "%s[%zu]", "", i);
        if (!json_is_object(o))
            return s_bad(a, w, "ska vara ett objekt");
        soffa_ss12000_kind_t k = kind ? kind : s_detect(o);
        soffa_err_t rc = SOFFA_OK;
        if (k == SOFFA_SS12000_PERSONS)
            rc = s_person(a, o, w);
        else if (k == SOFFA_SS12000_ORGANISATIONS)
            rc = s_organisation(a, o, w);
        else if (k == SOFFA_SS12000_CALENDAR_EVENTS)
            rc = s_event(a, o, w);
        else
            rc = s_bad(a, w, "är varken en Person, en Organisation eller en CalendarEvent (svar från /persons, "
                             "/organisations eller /calendarEvents?expand=attendance)");
        if (rc != SOFFA_OK)
            return rc;
        kind = k;   /* one page, one endpoint */
    }
    return SOFFA_OK;
}

static soffa_err_t
s_page(s_add_t *a, json_t *page, const char *where, soffa_ss12000_kind_t kind, char **next)
{
    char w[512];
    json_t *data = json_object_get(page, "data");
    if (!json_is_array(data)) {
        snprintf(w, sizeof w, "%s%sdata", where, where[strlen(where) - 1] == ' ' ? "" : ".");
        return s_bad(a, w, "saknas eller är ingen lista (ett svar från SS 12000-API:t har formen "
                           "{\"data\": [...], \"pageToken\": ...})");
    }
    json_t *tok = json_object_get(page, "pageToken");
    if (tok && !json_is_string(tok) && !json_is_null(tok)) {
        snprintf(w, sizeof w, "%s%spageToken", where, where[strlen(where) - 1] == ' ' ? "" : ".");
        return s_bad(a, w, "ska vara text eller null");
    }
    if (next) {
        free(*next);
        *next = json_is_string(tok) && json_string_length(tok) ? strdup(json_string_value(tok)) : NULL;
    }
    snprintf(w, sizeof w, "%s%sdata", where, where[strlen(where) - 1] == ' ' ? "" : ".");
    return s_items(a, data, w, kind);
}

soffa_err_t
soffa_ss12000_add(soffa_ss12000_t *self, const char *text, size_t len, const char *where, soffa_ss12000_kind_t kind,
                  char **next_token, char *why, size_t whylen)
{
    s_add_t a = {self, why, whylen};
    if (next_token)
        *next_token = NULL;
    json_error_t je;
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!doc) {
        snprintf(why, whylen, "%s: rad %d, tecken %d: ingen giltig JSON: %s", where, je.line, je.column, je.text);
        return SOFFA_ERR_MALFORMED;
    }
    char w[512];
    snprintf(w, sizeof w, "%s: ", where);
    soffa_err_t rc;
    if (json_is_object(doc)) {
        rc = s_page(&a, doc, w, kind, next_token);
    } else if (json_is_array(doc) && json_array_size(doc) && json_is_object(json_array_get(doc, 0))
               && json_object_get(json_array_get(doc, 0), "data")) {
        rc = SOFFA_OK;   /* several saved pages in one file */
        size_t i;
        json_t *pg;
        json_array_foreach(doc, i, pg) {
            char pw[512];
            s_path(pw, sizeof pw, w, "%s[%zu]", "", i);
            if (!json_is_object(pg))
                rc = s_bad(&a, pw, "ska vara ett svar {\"data\": [...]}");
            else
                rc = s_page(&a, pg, pw, kind, NULL);
            if (rc != SOFFA_OK)
                break;
        }
    } else if (json_is_array(doc)) {
        rc = s_items(&a, doc, w, kind);   /* a bare list, as the lookup endpoints answer */
    } else {
        rc = s_bad(&a, where, "ska vara ett JSON-objekt (ett svar från SS 12000-API:t) eller en lista");
    }
    json_decref(doc);
    return rc;
}

/* ---- Pupils ----------------------------------------------------------------- */

/* The home municipality: the Folkbokföring address's municipalityCode
 * (an integer in SS 12000 2.1; 4-digit text accepted), as 4 digits. */
static bool
s_hemkommun(json_t *person, char out[5], char *why, size_t whylen)
{
    json_t *addrs = json_object_get(person, "addresses");
    if (addrs && !json_is_array(addrs)) {
        snprintf(why, whylen, "addresses ska vara en lista");
        return false;
    }
    size_t i;
    json_t *ad;
    json_array_foreach(addrs, i, ad) {
        if (!json_is_object(ad) || !json_is_string(json_object_get(ad, "type"))
            || strcmp(json_string_value(json_object_get(ad, "type")), "Folkbokföring") != 0)
            continue;
        json_t *mc = json_object_get(ad, "municipalityCode");
        if (json_is_integer(mc) && json_integer_value(mc) >= 0 && json_integer_value(mc) <= 9999) {
            snprintf(out, 5, "%04d", (int) json_integer_value(mc));
        } else if (json_is_string(mc) && strlen(json_string_value(mc)) == 4 && s_digits(json_string_value(mc), 4)) {
            memcpy(out, json_string_value(mc), 5);
        } else {
            snprintf(why, whylen, "addresses[%zu].municipalityCode: %s", i,
                     mc ? "ska vara kommunkoden (fyra siffror, t.ex. 1419)" : "saknas: hemkommunen är okänd");
            return false;
        }
        if (soffa_kommun_check(out) != SOFFA_OK) {
            snprintf(why, whylen, "addresses[%zu].municipalityCode: %s är inte en av de 290 kommunkoderna", i, out);
            return false;
        }
        json_t *cc = json_object_get(ad, "countyCode");
        if (cc && !json_is_null(cc)) {
            char c2[8] = "";
            if (json_is_integer(cc))
                snprintf(c2, sizeof c2, "%02d", (int) (json_integer_value(cc) % 100));
            else if (json_is_string(cc))
                snprintf(c2, sizeof c2, "%s", json_string_value(cc));
            if (strncmp(c2, out, 2) != 0 || strlen(c2) != 2) {
                snprintf(why, whylen, "addresses[%zu].countyCode: länskoden stämmer inte med kommunkoden %s", i, out);
                return false;
            }
        }
        return true;
    }
    snprintf(why, whylen, "addresses: ingen adress av typen Folkbokföring med municipalityCode: hemkommunen är okänd; "
                          "signalera eleven för hand (soffa signal ...) eller rätta uppgiften i elevregistret");
    return false;
}

static bool
s_date_field(json_t *e, const char *name, bool required, char out[11], char *why, size_t whylen, const char *ew)
{
    json_t *v = json_object_get(e, name);
    soffa_date_t d;
    out[0] = '\0';
    if (!v || json_is_null(v)) {
        if (required)
            snprintf(why, whylen, "%s.%s: saknas", ew, name);
        return !required;
    }
    if (!json_is_string(v) || strlen(json_string_value(v)) != 10 || !soffa_date_parse(json_string_value(v), &d)) {
        snprintf(why, whylen, "%s.%s: ska vara ett datum ÅÅÅÅ-MM-DD", ew, name);
        return false;
    }
    soffa_date_format(d, out);
    return true;
}

/* One person into one pupil observation, or false with why. */
static json_t *
s_pupil(soffa_ss12000_t *self, json_t *p, const soffa_date_t *today, char *why, size_t whylen)
{
    json_t *cn = json_object_get(json_object_get(p, "civicNo"), "value");
    if (!json_is_string(cn)) {
        snprintf(why, whylen, "civicNo.value: saknas; utan personnummer eller samordningsnummer kan ingen signal skickas");
        return NULL;
    }
    char canon[13];
    soffa_id_kind_t kind;
    soffa_err_t rc = soffa_id_parse(json_string_value(cn), today, canon, &kind);
    if (rc != SOFFA_OK) {
        snprintf(why, whylen, "civicNo.value: %s", soffa_strerror(rc));
        return NULL;
    }
    char hem[5], hwhy[300];
    if (!s_hemkommun(p, hem, hwhy, sizeof hwhy)) {
        snprintf(why, whylen, "%s", hwhy);
        return NULL;
    }
    json_t *sm = json_object_get(p, "securityMarking"), *ps = json_object_get(p, "personStatus");
    bool protected = json_is_string(sm) && strcmp(json_string_value(sm), "Ingen") != 0;
    const char *status = json_is_string(ps) ? json_string_value(ps) : "";
    if (strcmp(status, "") && strcmp(status, "Aktiv") && strcmp(status, "Utvandrad") && strcmp(status, "Avliden")) {
        snprintf(why, whylen, "personStatus: '%s' är inte Aktiv, Utvandrad eller Avliden", status);
        return NULL;
    }
    json_t *out = json_pack("{s:s, s:s, s:s, s:b, s:s, s:[], s:[]}", "id", canon, "id_type",
                            kind == SOFFA_ID_SAMNR ? "SAMNR" : "PNR", "hemkommun", hem, "protected", protected,
                            "status", status, "enrolments", "absence");
    size_t j;
    json_t *e;
    json_array_foreach(json_object_get(p, "enrolments"), j, e) {
        const char *st = json_string_value(json_object_get(e, "schoolType"));
        if (strcmp(st, "GY") != 0 && strcmp(st, "GYS") != 0)
            continue;
        char ew[64], start[11], end[11];
        snprintf(ew, sizeof ew, "enrolments[%zu]", j);
        json_t *at = json_object_get(json_object_get(e, "enroledAt"), "id");
        if (!s_is_uuid(at)) {
            snprintf(why, whylen, "%s.enroledAt.id: saknas eller är inget UUID", ew);
            goto fail;
        }
        if (!s_date_field(e, "startDate", true, start, why, whylen, ew) || !s_date_field(e, "endDate", false, end, why, whylen, ew))
            goto fail;
        if (end[0] && strcmp(end, start) < 0) {
            snprintf(why, whylen, "%s.endDate: %s ligger före startDate %s", ew, end, start);
            goto fail;
        }
        json_t *c = json_object_get(e, "cancelled");
        if (c && !json_is_boolean(c)) {
            snprintf(why, whylen, "%s.cancelled: ska vara true eller false", ew);
            goto fail;
        }
        json_t *ec = json_object_get(e, "educationCode");
        const char *prog = json_is_string(ec) ? json_string_value(ec) : "";
        if (strlen(prog) > 16
            || strspn(prog, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") != strlen(prog)) {
            snprintf(why, whylen, "%s.educationCode: ska vara högst 16 bokstäver och siffror", ew);
            goto fail;
        }
        /* The unit: known when organisations were read; "" = not told. */
        const char *unit = "";
        if (json_object_size(self->units)) {
            json_t *u = json_object_get(self->units, json_string_value(at));
            unit = u ? json_string_value(u) : "-";
            if (!unit[0])
                unit = "-";
        }
        json_array_append_new(json_object_get(out, "enrolments"),
                              json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:s}", "where", ew, "unit", unit, "form",
                                        strcmp(st, "GY") ? "ANP_GY" : "GY", "programme", prog, "start", start, "end",
                                        end, "cancelled", json_is_true(c), "reason", ""));
    }
    json_t *pid = json_object_get(p, "id");
    json_t *per = json_is_string(pid) ? json_object_get(self->attendance, json_string_value(pid)) : NULL;
    const char *month;
    json_t *mo;
    json_object_foreach(per, month, mo) json_array_append(json_object_get(out, "absence"), mo);
    return out;
fail:
    json_decref(out);
    return NULL;
}

json_t *
soffa_ss12000_pupils(soffa_ss12000_t *self, const soffa_date_t *today, json_t *errors)
{
    json_t *out = json_array();
    json_t *seen = json_object();
    size_t i;
    json_t *rec;
    json_array_foreach(self->persons, i, rec) {
        const char *where = json_string_value(json_object_get(rec, "where"));
        char why[600];
        json_t *pu = s_pupil(self, json_object_get(rec, "person"), today, why, sizeof why);
        if (!pu) {
            s_err(errors, where, why);
            continue;
        }
        const char *id = json_string_value(json_object_get(pu, "id"));
        if (json_object_get(seen, id)) {
            s_err(errors, where, "samma personnummer står redan på en annan Person; rätta elevregistret");
            json_decref(pu);
            continue;
        }
        json_object_set_new(seen, id, json_true());
        json_object_set_new(pu, "where", json_string(where));
        json_array_append_new(out, pu);
    }
    json_decref(seen);
    return out;
}
