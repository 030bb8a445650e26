/*  soffa_stats: key figures from replayed records. */
#include "soffa_stats.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "soffa_csv.h"
#include "soffa_id.h"
#include "soffa_map.h"
#include "soffa_msg.h"

typedef struct {
    long t, w, m, u;  /* total, women, men, unknown (reserve numbers) */
} s_cnt_t;

typedef enum { S_SEX_UNKNOWN, S_SEX_WOMAN, S_SEX_MAN } s_sex_t;

typedef struct {
    s_sex_t sex;
    long first_signal;      /* day number, or -1 */
    long first_reached;     /* day number, or -1 */
    bool signalled, registered, plan, measure;
} s_youth_t;

typedef struct {
    int agency;             /* 0 af, 1 social */
    long sent;              /* day number */
    long first_answer;      /* day number, or -1 */
    char status[40];        /* latest status, "" when none */
    s_sex_t sex;
} s_ref_t;

#define S_MONTHS 120
enum { S_M_SIGNALS, S_M_REGISTERED, S_M_CONTACTED, S_M_REFERRALS, S_M_CLOSURES, S_M_N };
#define S_CLOSE_REASONS 10   /* CloseReason values 0..9 */

static const char *const s_series[S_M_N] = {"signals", "registered", "contacted", "referrals", "closures"};

typedef struct {
    soffa_map_t *youths, *refs;
    soffa_map_t *aliases;   /* replaced identity number -> the number that replaced it */
    s_cnt_t monthly[S_MONTHS][S_M_N];
    int month0_y, month0_m, n_months;
} s_acc_t;

static void
s_add(s_cnt_t *c, s_sex_t sex)
{
    c->t++;
    if (sex == S_SEX_WOMAN)
        c->w++;
    else if (sex == S_SEX_MAN)
        c->m++;
    else
        c->u++;
}

static s_sex_t
s_sex_of(json_t *subject)
{
    const char *type = json_string_value(json_object_get(subject, "id_type"));
    const char *id = json_string_value(json_object_get(subject, "id"));
    if (!id || strlen(id) != 12 || (type && !strcmp(type, "LOCAL_RESERVE")))
        return S_SEX_UNKNOWN;
    /* Legal sex is the parity of the birth number's last digit; read here,
     * for aggregate counts only, never stored. */
    return (id[10] - '0') % 2 ? S_SEX_MAN : S_SEX_WOMAN;
}

/* A count as shown: 1 to 4 suppressed (null), so that no one is recognised. */
static json_t *
s_sup(long v)
{
    return v >= 1 && v <= 4 ? json_null() : json_integer(v);
}

static json_t *
s_cell(const s_cnt_t *c)
{
    return json_pack("{s:o, s:o, s:o}", "total", s_sup(c->t), "women", s_sup(c->w), "men", s_sup(c->m));
}

static json_t *
s_share(long num, long den)
{
    if (den < 5)
        return json_null();
    return json_real((double) ((long) (1000.0 * (double) num / (double) den + 0.5)) / 1000.0);
}

/* The share of a count that is itself shown: a suppressed count (1 to 4)
 * has no share, which would tell it. */
static json_t *
s_share_of(long num, long den)
{
    return num >= 1 && num <= 4 ? json_null() : s_share(num, den);
}

static int
s_cmp_long(const void *a, const void *b)
{
    long x = *(const long *) a, y = *(const long *) b;
    return x < y ? -1 : x > y;
}

static json_t *
s_median(long *v, size_t n)
{
    if (n == 0)
        return json_null();
    qsort(v, n, sizeof *v, s_cmp_long);
    double m = n % 2 ? (double) v[n / 2] : ((double) v[n / 2 - 1] + (double) v[n / 2]) / 2.0;
    return json_real(m);
}

/* The person behind identity number id: the number that replaced it, and
 * so on (SUBJECT_IDENTITY_CHANGED in the records read), so that a young
 * person counts once across a new number (issue 13, rule 10). */
static const char *
s_person(const s_acc_t *a, const char *id)
{
    for (int hop = 0; hop < 16; hop++) {
        const char *next = soffa_map_sget(a->aliases, id);
        if (!next || !strcmp(next, id))
            break;
        id = next;
    }
    return id;
}

static s_youth_t *
s_youth(s_acc_t *a, json_t *subject)
{
    const char *id = json_string_value(json_object_get(subject, "id"));
    if (!id)
        return NULL;
    const char *person = s_person(a, id);
    s_youth_t *y = soffa_map_sget(a->youths, person);
    if (!y) {
        y = calloc(1, sizeof *y);
        if (!y)
            return NULL;
        y->sex = s_sex_of(subject);
        if (person != id) {
            /* Legal sex as the newest number says (a new number can follow a change of it). */
            bool digits = strlen(person) == 12;
            for (size_t i = 0; digits && i < 12; i++)
                digits = person[i] >= '0' && person[i] <= '9';
            y->sex = !digits ? S_SEX_UNKNOWN : (person[10] - '0') % 2 ? S_SEX_MAN : S_SEX_WOMAN;
        }
        id = person;
        y->first_signal = y->first_reached = -1;
        soffa_map_sput(a->youths, id, y);
    }
    return y;
}

static int
s_month_index(const s_acc_t *a, soffa_date_t d)
{
    int i = (d.year - a->month0_y) * 12 + (d.month - a->month0_m);
    return i >= 0 && i < a->n_months ? i : -1;
}

static void
s_month_add(s_acc_t *a, soffa_date_t d, int series, s_sex_t sex)
{
    int i = s_month_index(a, d);
    if (i >= 0)
        s_add(&a->monthly[i][series], sex);
}

typedef struct {
    s_cnt_t signalled, registered, contacted, plan, measure;
    long *days;
    size_t n_days;
} s_youth_sum_t;

static int
s_sum_youth(void *ctx, const void *k, size_t kl, void *v)
{
    (void) k;
    (void) kl;
    s_youth_sum_t *s = ctx;
    s_youth_t *y = v;
    if (y->signalled)
        s_add(&s->signalled, y->sex);
    if (!y->registered)
        return 0;
    s_add(&s->registered, y->sex);
    if (y->first_reached >= 0) {
        s_add(&s->contacted, y->sex);
        if (y->first_signal >= 0 && y->first_reached >= y->first_signal)
            s->days[s->n_days++] = y->first_reached - y->first_signal;
    }
    if (y->plan)
        s_add(&s->plan, y->sex);
    if (y->measure)
        s_add(&s->measure, y->sex);
    return 0;
}

/* Outcomes in the order of the referral lifecycle (DOMAIN.md §5.4). */
static const char *const s_outcomes[] = {"RECEIVED", "ACCEPTED", "DECLINED_BY_AGENCY", "CONTACT_ESTABLISHED",
                                         "YOUTH_DECLINED", "IN_PROGRESS", "COMPLETED", "DISCONTINUED", "EXPIRED",
                                         "NO_ANSWER"};
#define S_OUTCOMES (sizeof s_outcomes / sizeof *s_outcomes)

typedef struct {
    s_cnt_t sent[2];
    s_cnt_t out_cnt[2][S_OUTCOMES];
    long *days[2];
    size_t n_days[2];
} s_ref_sum_t;

static int
s_sum_ref(void *ctx, const void *k, size_t kl, void *v)
{
    (void) k;
    (void) kl;
    s_ref_sum_t *s = ctx;
    s_ref_t *r = v;
    int a = r->agency;
    s_add(&s->sent[a], r->sex);
    const char *st = r->status[0] ? r->status : "NO_ANSWER";
    size_t i;
    for (i = 0; i < S_OUTCOMES && strcmp(s_outcomes[i], st); i++)
        ;
    if (i < S_OUTCOMES)
        s_add(&s->out_cnt[a][i], r->sex);
    if (r->first_answer >= 0 && r->first_answer >= r->sent)
        s->days[a][s->n_days[a]++] = r->first_answer - r->sent;
    return 0;
}

static int
s_free_entry(void *ctx, const void *k, size_t kl, void *v)
{
    (void) ctx;
    (void) k;
    (void) kl;
    free(v);
    return 0;
}

/* The KAA's inbox kaa/K, or one of its teams' kaa/K/TEAM (issue 19, item 4). */
static bool
s_kaa_inbox(const char *mailbox, const char *kaa)
{
    size_t n = strlen(kaa);
    return !strncmp(mailbox, kaa, n) && (mailbox[n] == '\0' || mailbox[n] == '/');
}

json_t *
soffa_stats_compute(json_t *records, const char *kommun, soffa_date_t from, soffa_date_t to)
{
    s_acc_t *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->youths = soffa_map_new();
    a->refs = soffa_map_new();
    a->aliases = soffa_map_new();
    a->month0_y = from.year;
    a->month0_m = from.month;
    a->n_months = (to.year - from.year) * 12 + (to.month - from.month) + 1;
    if (a->n_months > S_MONTHS)
        a->n_months = S_MONTHS;
    char kaa[16], journal[24], af[16], social[16];
    snprintf(kaa, sizeof kaa, "kaa/%.4s", kommun);
    snprintf(journal, sizeof journal, "kaa-journal/%.4s", kommun);
    snprintf(af, sizeof af, "af/%.4s", kommun);
    snprintf(social, sizeof social, "social/%.4s", kommun);
    long lo = (long) soffa_date_to_days(from), hi = (long) soffa_date_to_days(to);
    s_cnt_t signals[3] = {{0}}, closures[S_CLOSE_REASONS] = {{0}};
    static const char *const sig_names[3] = {"enrolment_changed", "absence_reported", "at_risk_notice"};
    /* CloseReason, by number (proto/soffa_msg.proto). */
    static const char *const close_names[S_CLOSE_REASONS] = {
        "", "TURNED_20", "STARTED_NATIONAL_PROGRAMME", "STARTED_EQUIVALENT", "COMPLETED", "MOVED_OUT", "EMIGRATED",
        "DECEASED", "OTHER", "STARTED_INTRODUCTION_PROGRAMME"};
    size_t read = 0;

    size_t i;
    json_t *rec;
    /* Identity changes first: every record then counts under the person's newest number. */
    json_array_foreach(records, i, rec) {
        json_t *m = json_object_get(rec, "message");
        json_t *chg = json_object_get(m, soffa_msg_type_name(SOFFA_MT_SUBJECT_IDENTITY_CHANGED));
        const char *old_id = json_string_value(json_object_get(json_object_get(chg, "old_id"), "id"));
        const char *new_id = json_string_value(json_object_get(json_object_get(chg, "new_id"), "id"));
        if (!old_id || !new_id || soffa_map_sget(a->aliases, old_id))
            continue;   /* the broker records a change once; a copy of it changes nothing */
        char *copy = strdup(new_id);
        if (copy && soffa_map_sput(a->aliases, old_id, copy) != SOFFA_OK)
            free(copy);
    }
    json_array_foreach(records, i, rec) {
        const char *mb = json_string_value(json_object_get(rec, "mailbox"));
        json_t *m = json_object_get(rec, "message");
        if (!mb || !m || (!s_kaa_inbox(mb, kaa) && strcmp(mb, journal) && strcmp(mb, af) && strcmp(mb, social)))
            continue;
        read++;
        int64_t occ = json_integer_value(json_object_get(m, "occurred_at_us"));
        soffa_date_t d = soffa_date_local(occ);
        long day = (long) soffa_date_to_days(d);
        if (day < lo || day > hi)
            continue;
        json_t *subj = json_object_get(m, "subject");
        s_youth_t *y = s_youth(a, subj);
        if (!y)
            continue;
        soffa_msg_type_t t = soffa_msg_type_from_name(json_string_value(json_object_get(rec, "type")));
        json_t *pl = json_object_get(m, soffa_msg_type_name(t));
        switch (t) {
        case SOFFA_MT_ENROLMENT_CHANGED:
        case SOFFA_MT_ABSENCE_REPORTED:
        case SOFFA_MT_AT_RISK_NOTICE:
            if (!s_kaa_inbox(mb, kaa))
                break;
            s_add(&signals[t - SOFFA_MT_ENROLMENT_CHANGED], y->sex);
            s_month_add(a, d, S_M_SIGNALS, y->sex);
            y->signalled = true;
            if (y->first_signal < 0 || day < y->first_signal)
                y->first_signal = day;
            break;
        case SOFFA_MT_KAA_CASE_OPENED:
            if (!y->registered)
                s_month_add(a, d, S_M_REGISTERED, y->sex);
            y->registered = true;
            break;
        case SOFFA_MT_CONTACT_ATTEMPTED: {
            const char *out = json_string_value(json_object_get(pl, "outcome"));
            if (out && !strcmp(out, "REACHED") && (y->first_reached < 0 || day < y->first_reached)) {
                if (y->first_reached < 0)
                    s_month_add(a, d, S_M_CONTACTED, y->sex);
                y->first_reached = day;
            }
            break;
        }
        case SOFFA_MT_PLAN_AGREED: y->plan = true; break;
        case SOFFA_MT_MEASURE_STARTED: y->measure = true; break;
        case SOFFA_MT_KAA_CASE_CLOSED: {
            const char *r = json_string_value(json_object_get(pl, "reason"));
            for (int k = 1; r && k < S_CLOSE_REASONS; k++)
                if (!strcmp(r, close_names[k]))
                    s_add(&closures[k], y->sex);
            s_month_add(a, d, S_M_CLOSURES, y->sex);
            break;
        }
        case SOFFA_MT_REFERRAL_SENT: {
            /* The KAA's referrals (to af/ and social/); one social services
             * sent to the KAA (in kaa/) is none of them. */
            const char *rid = json_string_value(json_object_get(pl, "referral_id"));
            if (!rid || !strcmp(mb, kaa) || soffa_map_sget(a->refs, rid))
                break;
            s_ref_t *r = calloc(1, sizeof *r);
            if (!r)
                break;
            r->agency = !strcmp(mb, social) ? 1 : 0;
            r->sent = day;
            r->first_answer = -1;
            r->sex = y->sex;
            soffa_map_sput(a->refs, rid, r);
            s_month_add(a, d, S_M_REFERRALS, y->sex);
            break;
        }
        case SOFFA_MT_REFERRAL_STATUS_CHANGED: {
            const char *rid = json_string_value(json_object_get(pl, "referral_id"));
            s_ref_t *r = rid ? soffa_map_sget(a->refs, rid) : NULL;
            if (!r)
                break;
            if (r->first_answer < 0 || day < r->first_answer)
                r->first_answer = day;
            snprintf(r->status, sizeof r->status, "%s", json_string_value(json_object_get(pl, "status")));
            break;
        }
        default: break;
        }
    }

    s_youth_sum_t ys = {0};
    ys.days = calloc(soffa_map_size(a->youths) + 1, sizeof *ys.days);
    soffa_map_each(a->youths, s_sum_youth, &ys);
    s_ref_sum_t rs = {0};
    for (int k = 0; k < 2; k++)
        rs.days[k] = calloc(soffa_map_size(a->refs) + 1, sizeof *rs.days[k]);
    soffa_map_each(a->refs, s_sum_ref, &rs);

    char f[11], t2[11], now[32];
    soffa_date_format(from, f);
    soffa_date_format(to, t2);
    soffa_time_format(soffa_now_us(), now);
    json_t *out = json_pack("{s:s, s:s, s:s, s:s, s:I, s:s}", "municipality", kommun, "from", f, "to", t2,
                            "generated_at", now, "records_read", (json_int_t) read, "suppression",
                            "counts of 1 to 4 are null; a share needs at least 5 in its denominator");
    json_t *sig = json_object();
    for (int k = 0; k < 3; k++)
        json_object_set_new(sig, sig_names[k], s_cell(&signals[k]));
    json_object_set_new(out, "signals", sig);
    json_object_set_new(out, "signalled", s_cell(&ys.signalled));
    json_object_set_new(out, "registered", s_cell(&ys.registered));
    json_t *c = s_cell(&ys.contacted);
    json_object_set_new(c, "share", s_share_of(ys.contacted.t, ys.registered.t));
    json_object_set_new(c, "median_days_to_first_contact", s_median(ys.days, ys.n_days));
    json_object_set_new(out, "contacted", c);
    c = s_cell(&ys.plan);
    json_object_set_new(c, "share", s_share_of(ys.plan.t, ys.registered.t));
    json_object_set_new(out, "with_plan", c);
    c = s_cell(&ys.measure);
    json_object_set_new(c, "share", s_share_of(ys.measure.t, ys.registered.t));
    json_object_set_new(out, "in_measure", c);
    json_t *refs = json_object();
    for (int k = 0; k < 2; k++) {
        json_t *ag = json_object();
        json_object_set_new(ag, "sent", s_cell(&rs.sent[k]));
        json_t *oc = json_object();
        for (size_t o = 0; o < S_OUTCOMES; o++)
            if (rs.out_cnt[k][o].t)
                json_object_set_new(oc, s_outcomes[o], s_cell(&rs.out_cnt[k][o]));
        json_object_set_new(ag, "outcomes", oc);
        json_object_set_new(ag, "median_days_to_first_answer", s_median(rs.days[k], rs.n_days[k]));
        json_object_set_new(refs, k ? "social" : "af", ag);
    }
    json_object_set_new(out, "referrals", refs);
    json_t *cl = json_object();
    for (int k = 1; k < S_CLOSE_REASONS; k++)
        json_object_set_new(cl, close_names[k], s_cell(&closures[k]));
    json_object_set_new(out, "closures", cl);
    json_t *mon = json_array();
    for (int k = 0; k < a->n_months; k++) {
        int y = a->month0_y + (a->month0_m - 1 + k) / 12, mo = (a->month0_m - 1 + k) % 12 + 1;
        char ms[16];
        snprintf(ms, sizeof ms, "%04u-%02u", (unsigned) y % 10000, (unsigned) mo % 100);
        json_t *row = json_pack("{s:s}", "month", ms);
        for (int s2 = 0; s2 < S_M_N; s2++)
            json_object_set_new(row, s_series[s2], s_cell(&a->monthly[k][s2]));
        json_array_append_new(mon, row);
    }
    json_object_set_new(out, "monthly", mon);
    json_t *periods = soffa_stats_periods(records, kommun, from, to);
    json_object_set_new(out, "periods", periods ? periods : json_array());

    free(ys.days);
    for (int k = 0; k < 2; k++)
        free(rs.days[k]);
    soffa_map_each(a->youths, s_free_entry, NULL);
    soffa_map_each(a->refs, s_free_entry, NULL);
    soffa_map_each(a->aliases, s_free_entry, NULL);
    soffa_map_destroy(&a->youths);
    soffa_map_destroy(&a->refs);
    soffa_map_destroy(&a->aliases);
    free(a);
    return out;
}

/* ---- Output ---------------------------------------------------------------- */
static void s_period_table(json_t *st, FILE *out);
static void s_period_rows(json_t *st, void (*row)(void *ctx, const char *period, const char *key, const char *label,
                                                  json_t *cell), void *ctx);
static void s_period_csv_row(void *ctx, const char *period, const char *key, const char *label, json_t *cell);
static void s_period_html_row(void *ctx, const char *period, const char *key, const char *label, json_t *cell);

static void
s_num(json_t *v, char *buf, size_t len)
{
    if (json_is_null(v) || !v)
        snprintf(buf, len, "<5");
    else if (json_is_real(v))
        snprintf(buf, len, "%.3g", json_real_value(v));
    else
        snprintf(buf, len, "%lld", (long long) json_integer_value(v));
}

/* Visits every (section, item, cell) of the figures in one fixed order, so
 * table, CSV and HTML show the same numbers as the JSON. */
static void
s_rows(json_t *st, void (*row)(void *ctx, const char *section, const char *item, json_t *cell), void *ctx)
{
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(st, "signals"), k, v) row(ctx, "signals", k, v);
    row(ctx, "youths", "signalled", json_object_get(st, "signalled"));
    row(ctx, "youths", "registered", json_object_get(st, "registered"));
    row(ctx, "youths", "contacted", json_object_get(st, "contacted"));
    row(ctx, "youths", "with_plan", json_object_get(st, "with_plan"));
    row(ctx, "youths", "in_measure", json_object_get(st, "in_measure"));
    json_object_foreach(json_object_get(st, "referrals"), k, v) {
        char sec[64];
        snprintf(sec, sizeof sec, "referrals %s", k);
        row(ctx, sec, "sent", json_object_get(v, "sent"));
        const char *o;
        json_t *ov;
        json_object_foreach(json_object_get(v, "outcomes"), o, ov) row(ctx, sec, o, ov);
    }
    json_object_foreach(json_object_get(st, "closures"), k, v) row(ctx, "closures", k, v);
}

static void
s_table_row(void *ctx, const char *section, const char *item, json_t *cell)
{
    FILE *out = ctx;
    char t[16], w[16], m[16];
    s_num(json_object_get(cell, "total"), t, sizeof t);
    s_num(json_object_get(cell, "women"), w, sizeof w);
    s_num(json_object_get(cell, "men"), m, sizeof m);
    fprintf(out, "  %-18s %-28s %7s %7s %7s", section, item, t, w, m);
    json_t *share = json_object_get(cell, "share");
    if (share) {
        char s[16];
        s_num(share, s, sizeof s);
        fprintf(out, "   share %s", json_is_null(share) ? "-" : s);
    }
    fputc('\n', out);
}

void
soffa_stats_table(json_t *st, FILE *out)
{
    fprintf(out, "key figures for municipality %s, %s to %s (business dates)\n",
            json_string_value(json_object_get(st, "municipality")), json_string_value(json_object_get(st, "from")),
            json_string_value(json_object_get(st, "to")));
    fprintf(out, "  %-18s %-28s %7s %7s %7s\n", "", "", "total", "women", "men");
    s_rows(st, s_table_row, out);
    char d[16];
    s_num(json_object_get(json_object_get(st, "contacted"), "median_days_to_first_contact"), d, sizeof d);
    fprintf(out, "  median days from signal to first contact: %s\n", json_is_null(json_object_get(json_object_get(st, "contacted"), "median_days_to_first_contact")) ? "-" : d);
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(st, "referrals"), k, v) {
        json_t *md = json_object_get(v, "median_days_to_first_answer");
        s_num(md, d, sizeof d);
        fprintf(out, "  median days to the first answer from %s: %s\n", k, json_is_null(md) ? "-" : d);
    }
    fprintf(out, "  month     signals  registered  contacted  referrals  closures\n");
    size_t i;
    json_t *row;
    json_array_foreach(json_object_get(st, "monthly"), i, row) {
        char c[5][16];
        for (int s2 = 0; s2 < S_M_N; s2++)
            s_num(json_object_get(json_object_get(row, s_series[s2]), "total"), c[s2], sizeof c[s2]);
        fprintf(out, "  %s %8s %11s %10s %10s %9s\n", json_string_value(json_object_get(row, "month")), c[0], c[1],
                c[2], c[3], c[4]);
    }
    s_period_table(st, out);
    fprintf(out, "  (%s)\n", json_string_value(json_object_get(st, "suppression")));
}

static void
s_csv_row(void *ctx, const char *section, const char *item, json_t *cell)
{
    FILE *out = ctx;
    char t[16], w[16], m[16];
    s_num(json_object_get(cell, "total"), t, sizeof t);
    s_num(json_object_get(cell, "women"), w, sizeof w);
    s_num(json_object_get(cell, "men"), m, sizeof m);
    fprintf(out, "%s,%s,%s,%s,%s\n", section, item, t, w, m);
}

void
soffa_stats_csv(json_t *st, FILE *out)
{
    fprintf(out, "section,item,total,women,men\n");
    s_rows(st, s_csv_row, out);
    size_t i;
    json_t *row;
    json_array_foreach(json_object_get(st, "monthly"), i, row) {
        char sec[32];
        snprintf(sec, sizeof sec, "month %s", json_string_value(json_object_get(row, "month")));
        for (int s2 = 0; s2 < S_M_N; s2++)
            s_csv_row(out, sec, s_series[s2], json_object_get(row, s_series[s2]));
    }
    s_period_rows(st, s_period_csv_row, out);
}

static void
s_html_row(void *ctx, const char *section, const char *item, json_t *cell)
{
    FILE *out = ctx;
    char t[16], w[16], m[16];
    s_num(json_object_get(cell, "total"), t, sizeof t);
    s_num(json_object_get(cell, "women"), w, sizeof w);
    s_num(json_object_get(cell, "men"), m, sizeof m);
    fprintf(out, "<tr><td>%s</td><td>%s</td><td class=\"n\">%s</td><td class=\"n\">%s</td><td class=\"n\">%s</td></tr>\n",
            section, item, !strcmp(t, "<5") ? "&lt;5" : t, !strcmp(w, "<5") ? "&lt;5" : w, !strcmp(m, "<5") ? "&lt;5" : m);
}

/* One bar chart of a monthly series (totals), inline SVG. */
static void
s_svg(FILE *out, json_t *monthly, const char *series, const char *title)
{
    size_t n = json_array_size(monthly), i;
    long max = 1;
    json_t *row;
    json_array_foreach(monthly, i, row) {
        long v = (long) json_integer_value(json_object_get(json_object_get(row, series), "total"));
        if (v > max)
            max = v;
    }
    int w = 40 * (int) (n ? n : 1) + 60, h = 200;
    fprintf(out, "<figure><figcaption>%s per month</figcaption>\n"
                 "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" role=\"img\">\n", title, w, h + 40);
    fprintf(out, "<line x1=\"40\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#444\"/>\n", h, w - 10, h);
    fprintf(out, "<text x=\"4\" y=\"14\" font-size=\"11\">%ld</text>\n", max);
    json_array_foreach(monthly, i, row) {
        json_t *cell = json_object_get(json_object_get(row, series), "total");
        long v = json_is_null(cell) ? 0 : (long) json_integer_value(cell);
        int bh = (int) ((double) v / (double) max * (h - 20));
        int x = 45 + 40 * (int) i;
        fprintf(out, "<rect x=\"%d\" y=\"%d\" width=\"28\" height=\"%d\" fill=\"%s\"><title>%s: %s</title></rect>\n", x,
                h - bh, bh, json_is_null(cell) ? "#ccc" : "#3b6ea5", json_string_value(json_object_get(row, "month")),
                json_is_null(cell) ? "fewer than 5" : "");
        fprintf(out, "<text x=\"%d\" y=\"%d\" font-size=\"10\">%s</text>\n", x, h + 14,
                json_string_value(json_object_get(row, "month")) + 2);
        if (json_is_null(cell))
            fprintf(out, "<text x=\"%d\" y=\"%d\" font-size=\"10\">&lt;5</text>\n", x + 4, h - 4);
        else
            fprintf(out, "<text x=\"%d\" y=\"%d\" font-size=\"10\">%ld</text>\n", x + 6, h - bh - 4, v);
    }
    fprintf(out, "</svg></figure>\n");
}

void
soffa_stats_html(json_t *st, FILE *out)
{
    const char *k = json_string_value(json_object_get(st, "municipality"));
    fprintf(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE html>\n"
                 "<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"sv\">\n<head>\n<meta charset=\"UTF-8\"/>\n"
                 "<title>KAA key figures %s</title>\n<style>body{font-family:sans-serif;margin:2em;max-width:60em}"
                 "table{border-collapse:collapse}td,th{border-bottom:1px solid #ddd;padding:.2em .6em}"
                 ".n{text-align:right}figure{display:inline-block;margin:1em}</style>\n</head>\n<body>\n",
            k);
    fprintf(out, "<h1>KAA key figures for municipality %s</h1>\n<p>Business dates %s to %s; generated %s by soffa "
                 "from %lld records. Counts are split by legal sex; %s.</p>\n",
            k, json_string_value(json_object_get(st, "from")), json_string_value(json_object_get(st, "to")),
            json_string_value(json_object_get(st, "generated_at")),
            (long long) json_integer_value(json_object_get(st, "records_read")),
            json_string_value(json_object_get(st, "suppression")));
    json_t *mon = json_object_get(st, "monthly");
    s_svg(out, mon, "signals", "Signals");
    s_svg(out, mon, "registered", "Youths registered");
    s_svg(out, mon, "contacted", "Youths first reached");
    s_svg(out, mon, "referrals", "Referrals");
    fprintf(out, "<h2>Figures</h2>\n<table>\n<tr><th>section</th><th>item</th><th>total</th><th>women</th><th>men</th></tr>\n");
    s_rows(st, s_html_row, out);
    fprintf(out, "</table>\n<h2>Month by month</h2>\n<table>\n<tr><th>month</th>");
    for (int s2 = 0; s2 < S_M_N; s2++)
        fprintf(out, "<th>%s</th>", s_series[s2]);
    fprintf(out, "</tr>\n");
    size_t i;
    json_t *row;
    json_array_foreach(mon, i, row) {
        fprintf(out, "<tr><td>%s</td>", json_string_value(json_object_get(row, "month")));
        for (int s2 = 0; s2 < S_M_N; s2++) {
            char t[16];
            s_num(json_object_get(json_object_get(row, s_series[s2]), "total"), t, sizeof t);
            fprintf(out, "<td class=\"n\">%s</td>", !strcmp(t, "<5") ? "&lt;5" : t);
        }
        fprintf(out, "</tr>\n");
    }
    fprintf(out, "</table>\n<h2>Nyckeltal per halvår och månad</h2>\n<table>\n<tr><th>period</th><th></th><th>totalt</th>"
                 "<th>kvinnor</th><th>män</th><th>okänt</th></tr>\n");
    s_period_rows(st, s_period_html_row, out);
    fprintf(out, "</table>\n</body>\n</html>\n");
}

/* ---- Period figures and the export (issue 19 item 5) --------------------------- */

#define S_FY_SPANS 16    /* cases and reopenings of one youth */
#define S_FY_EVENTS 32   /* occupations, declines, measures of one youth */
#define S_NEVER 0x7fffffffL

/* One stretch of a case, open from `open` to `close` (S_NEVER: still open). */
typedef struct {
    long open, close;
    char reg[40];        /* registration reason */
    char reason[40];     /* close reason, "" while open */
} s_span_t;

typedef struct {
    long day;
    char code[40];
} s_ev_t;

typedef struct {
    long start, end;     /* end S_NEVER while running */
    char type[40];
    char id[40];
    bool declined;
} s_meas_t;

/* A youth, under their newest identity number. */
typedef struct {
    char id[16];
    s_sex_t sex;
    bool has_birth;
    soffa_date_t birth;
    s_span_t spans[S_FY_SPANS];
    int n_spans;
    long reached, mapped, plan;   /* first day, or S_NEVER */
    s_ev_t occs[S_FY_EVENTS];
    int n_occs;
    long declines[S_FY_EVENTS];
    int n_declines;
    s_meas_t meas[S_FY_EVENTS];
    int n_meas;
} s_fy_t;

/* A case: its youth and the stretch that is its latest. */
typedef struct {
    s_fy_t *y;
    int span;
} s_fcase_t;

typedef struct {
    long day;
    char unit[16];
    bool left;
    s_sex_t sex;
} s_sig_t;

typedef struct {
    soffa_map_t *aliases, *youths, *cases;
    s_sig_t *sigs;
    size_t n_sigs, cap_sigs;
} s_fig_t;

/* The same with the unknown sex (the period figures). */
static json_t *
s_cell4(const s_cnt_t *c)
{
    return json_pack("{s:o, s:o, s:o, s:o}", "total", s_sup(c->t), "women", s_sup(c->w), "men", s_sup(c->m),
                     "unknown", s_sup(c->u));
}

static const char *
s_str(json_t *o, const char *k)
{
    const char *v = json_string_value(json_object_get(o, k));
    return v ? v : "";
}

/* The day of a date field ("2026-11-01"), or `dflt`. */
static long
s_day_of(json_t *o, const char *k, long dflt)
{
    soffa_date_t d;
    const char *v = json_string_value(json_object_get(o, k));
    return v && soffa_date_parse(v, &d) ? (long) soffa_date_to_days(d) : dflt;
}

static s_fy_t *
s_fy(s_fig_t *g, json_t *subject)
{
    const char *id = json_string_value(json_object_get(subject, "id"));
    if (!id || strlen(id) > 12)
        return NULL;
    for (int hop = 0; hop < 16; hop++) {
        const char *next = soffa_map_sget(g->aliases, id);
        if (!next || !strcmp(next, id))
            break;
        id = next;
    }
    s_fy_t *y = soffa_map_sget(g->youths, id);
    if (y)
        return y;
    y = calloc(1, sizeof *y);
    if (!y)
        return NULL;
    snprintf(y->id, sizeof y->id, "%s", id);
    bool digits = strlen(id) == 12;
    for (size_t i = 0; digits && i < 12; i++)
        digits = id[i] >= '0' && id[i] <= '9';
    /* Legal sex from the birth number's parity, at counting time only;
     * a reserve number tells none. */
    y->sex = !digits ? S_SEX_UNKNOWN : (id[10] - '0') % 2 ? S_SEX_MAN : S_SEX_WOMAN;
    y->has_birth = soffa_id_birth_date(id, &y->birth) == SOFFA_OK || soffa_reserve_birth_date(id, &y->birth) == SOFFA_OK;
    y->reached = y->mapped = y->plan = S_NEVER;
    if (soffa_map_sput(g->youths, y->id, y) != SOFFA_OK) {
        free(y);
        return NULL;
    }
    return y;
}

static void
s_fig_case_event(s_fig_t *g, s_fy_t *y, soffa_msg_type_t t, json_t *pl, long day)
{
    const char *cid = s_str(pl, "case_id");
    s_fcase_t *c = cid[0] ? soffa_map_sget(g->cases, cid) : NULL;
    switch (t) {
    case SOFFA_MT_KAA_CASE_OPENED:
        if (c || y->n_spans >= S_FY_SPANS || !cid[0])
            break;
        c = calloc(1, sizeof *c);
        if (!c || soffa_map_sput(g->cases, cid, c) != SOFFA_OK) {
            free(c);
            break;
        }
        c->y = y;
        c->span = y->n_spans++;
        y->spans[c->span] = (s_span_t) {.open = day, .close = S_NEVER};
        snprintf(y->spans[c->span].reg, sizeof y->spans[c->span].reg, "%s", s_str(pl, "registration_reason"));
        break;
    case SOFFA_MT_KAA_CASE_REOPENED:
        if (!c || c->y->n_spans >= S_FY_SPANS)
            break;
        y = c->y;
        y->spans[y->n_spans] = (s_span_t) {.open = day, .close = S_NEVER};
        memcpy(y->spans[y->n_spans].reg, y->spans[c->span].reg, sizeof y->spans[0].reg);
        c->span = y->n_spans++;
        break;
    case SOFFA_MT_KAA_CASE_CLOSED:
        if (!c)
            break;
        c->y->spans[c->span].close = day;
        snprintf(c->y->spans[c->span].reason, sizeof c->y->spans[c->span].reason, "%s", s_str(pl, "reason"));
        break;
    case SOFFA_MT_CONTACT_ATTEMPTED: {
        const char *out = s_str(pl, "outcome");
        if (!strcmp(out, "REACHED") && day < y->reached)
            y->reached = day;
        if (!strcmp(out, "DECLINED_CONTACT") && y->n_declines < S_FY_EVENTS)
            y->declines[y->n_declines++] = day;
        break;
    }
    case SOFFA_MT_CASE_MAPPED: {
        long d = s_day_of(pl, "mapped_on", day);
        if (d < y->mapped)
            y->mapped = d;
        break;
    }
    case SOFFA_MT_PLAN_AGREED:
        if (day < y->plan)
            y->plan = day;
        break;
    case SOFFA_MT_OCCUPATION_RECORDED:
        if (y->n_occs < S_FY_EVENTS) {
            y->occs[y->n_occs].day = s_day_of(pl, "as_of", day);
            snprintf(y->occs[y->n_occs].code, sizeof y->occs[0].code, "%s", s_str(pl, "occupation"));
            y->n_occs++;
        }
        break;
    case SOFFA_MT_MEASURE_STARTED:
        if (y->n_meas < S_FY_EVENTS) {
            s_meas_t *m = &y->meas[y->n_meas++];
            m->start = s_day_of(pl, "start", day);
            m->end = S_NEVER;
            m->declined = json_is_true(json_object_get(pl, "declined_by_youth"));
            snprintf(m->type, sizeof m->type, "%s", s_str(pl, "measure_type"));
            snprintf(m->id, sizeof m->id, "%s", s_str(pl, "measure_id"));
            if (m->declined && y->n_declines < S_FY_EVENTS)
                y->declines[y->n_declines++] = day;
        }
        break;
    case SOFFA_MT_MEASURE_ENDED:
        for (int k = 0; k < y->n_meas; k++)
            if (!strcmp(y->meas[k].id, s_str(pl, "measure_id")))
                y->meas[k].end = s_day_of(pl, "end", day);
        break;
    default: break;
    }
}

static void
s_fig_free(s_fig_t *g)
{
    soffa_map_each(g->aliases, s_free_entry, NULL);
    soffa_map_each(g->youths, s_free_entry, NULL);
    soffa_map_each(g->cases, s_free_entry, NULL);
    soffa_map_destroy(&g->aliases);
    soffa_map_destroy(&g->youths);
    soffa_map_destroy(&g->cases);
    free(g->sigs);
}

/* Reads the records of K into g: cases from kaa-journal/K, signals and
 * referral answers from kaa/K. Returns false when out of memory. */
static bool
s_fig_read(s_fig_t *g, json_t *records, const char *kommun)
{
    g->aliases = soffa_map_new();
    g->youths = soffa_map_new();
    g->cases = soffa_map_new();
    if (!g->aliases || !g->youths || !g->cases)
        return false;
    char kaa[16], journal[24];
    snprintf(kaa, sizeof kaa, "kaa/%.4s", kommun);
    snprintf(journal, sizeof journal, "kaa-journal/%.4s", kommun);
    size_t i;
    json_t *rec;
    json_array_foreach(records, i, rec) {
        json_t *m = json_object_get(rec, "message");
        json_t *chg = json_object_get(m, soffa_msg_type_name(SOFFA_MT_SUBJECT_IDENTITY_CHANGED));
        const char *old_id = json_string_value(json_object_get(json_object_get(chg, "old_id"), "id"));
        const char *new_id = json_string_value(json_object_get(json_object_get(chg, "new_id"), "id"));
        if (!old_id || !new_id || soffa_map_sget(g->aliases, old_id))
            continue;
        char *copy = strdup(new_id);
        if (!copy || soffa_map_sput(g->aliases, old_id, copy) != SOFFA_OK)
            free(copy);
    }
    json_array_foreach(records, i, rec) {
        const char *mb = json_string_value(json_object_get(rec, "mailbox"));
        json_t *m = json_object_get(rec, "message");
        if (!mb || !m || (strcmp(mb, kaa) && strcmp(mb, journal)))
            continue;
        long day = (long) soffa_date_to_days(soffa_date_local(json_integer_value(json_object_get(m, "occurred_at_us"))));
        soffa_msg_type_t t = soffa_msg_type_from_name(json_string_value(json_object_get(rec, "type")));
        json_t *pl = json_object_get(m, soffa_msg_type_name(t));
        s_fy_t *y = s_fy(g, json_object_get(m, "subject"));
        if (!y)
            continue;
        if (!strcmp(mb, journal)) {
            s_fig_case_event(g, y, t, pl, day);
            continue;
        }
        if (t == SOFFA_MT_REFERRAL_STATUS_CHANGED && !strcmp(s_str(pl, "status"), "YOUTH_DECLINED")) {
            if (y->n_declines < S_FY_EVENTS)
                y->declines[y->n_declines++] = day;
            continue;
        }
        const char *unit = s_str(pl, "school_unit");
        if (!unit[0] || (t != SOFFA_MT_ENROLMENT_CHANGED && t != SOFFA_MT_ABSENCE_REPORTED && t != SOFFA_MT_AT_RISK_NOTICE
                         && t != SOFFA_MT_YEAR9_HANDOVER && t != SOFFA_MT_ADMISSION_NOT_STARTED))
            continue;
        if (g->n_sigs == g->cap_sigs) {
            size_t cap = g->cap_sigs ? 2 * g->cap_sigs : 64;
            s_sig_t *n = realloc(g->sigs, cap * sizeof *n);
            if (!n)
                return false;
            g->sigs = n;
            g->cap_sigs = cap;
        }
        s_sig_t *s = &g->sigs[g->n_sigs++];
        s->day = day;
        s->sex = y->sex;
        s->left = t == SOFFA_MT_ENROLMENT_CHANGED && !strcmp(s_str(pl, "event"), "LEFT");
        snprintf(s->unit, sizeof s->unit, "%.15s", unit);
    }
    return true;
}

/* The latest of y's stretches open on some day of [lo, hi], or -1. */
static int
s_fy_span_in(const s_fy_t *y, long lo, long hi)
{
    int best = -1;
    for (int k = 0; k < y->n_spans; k++)
        if (y->spans[k].open <= hi && y->spans[k].close >= lo && (best < 0 || y->spans[k].open >= y->spans[best].open))
            best = k;
    return best;
}

/* The occupation in force on day d (the latest recorded on or before it), or "". */
static const char *
s_fy_occ_on(const s_fy_t *y, long d)
{
    int best = -1;
    for (int k = 0; k < y->n_occs; k++)
        if (y->occs[k].day <= d && (best < 0 || y->occs[k].day >= y->occs[best].day))
            best = k;
    return best < 0 ? "" : y->occs[best].code;
}

/* The type of the measure running on day d (the latest started), or "". */
static const char *
s_fy_measure_on(const s_fy_t *y, long d)
{
    int best = -1;
    for (int k = 0; k < y->n_meas; k++)
        if (!y->meas[k].declined && y->meas[k].start <= d && y->meas[k].end >= d
            && (best < 0 || y->meas[k].start >= y->meas[best].start))
            best = k;
    return best < 0 ? "" : y->meas[best].type;
}

/* Where a youth went at a closure (the groups municipalities report):
 * back_in_studies (a national programme, the equivalent, an introduction
 * programme), turned_20, moved (moved out, emigrated), work (any other
 * reason, the occupation then WORK), measure (a measure running then; its
 * type in *mtype), other. */
static const char *
s_close_group(const s_fy_t *y, const s_span_t *sp, const char **mtype)
{
    const char *r = sp->reason;
    *mtype = "";
    if (!strcmp(r, "STARTED_NATIONAL_PROGRAMME") || !strcmp(r, "STARTED_EQUIVALENT")
        || !strcmp(r, "STARTED_INTRODUCTION_PROGRAMME"))
        return "back_in_studies";
    if (!strcmp(r, "TURNED_20"))
        return "turned_20";
    if (!strcmp(r, "MOVED_OUT") || !strcmp(r, "EMIGRATED"))
        return "moved";
    if (!strcmp(s_fy_occ_on(y, sp->close), "WORK"))
        return "work";
    *mtype = s_fy_measure_on(y, sp->close);
    return (*mtype)[0] ? "measure" : "other";
}

/* The date of day number `day` (days since 1970-01-01, as soffa_date_to_days). */
static soffa_date_t
s_date_of(long day)
{
    return soffa_date_from_us((int64_t) day * 86400000000LL);
}

/* The age band on day `day`: 16-17, 18-19, or other (younger, older, or no birth date). */
static const char *
s_age_band(const s_fy_t *y, long day)
{
    int age = y->has_birth ? soffa_date_age(y->birth, s_date_of(day)) : -1;
    return age == 16 || age == 17 ? "16-17" : age == 18 || age == 19 ? "18-19" : "other";
}

static const char *const s_occ_codes[] = {"WORK", "STUDIES_GY", "STUDIES_KOMVUX", "FOLKHOGSKOLA", "AF_PROGRAMME",
                                          "OTHER_ACTIVITY", "NONE", "UNKNOWN", "NOT_RECORDED"};
static const char *const s_meas_codes[] = {"STUDIES_IM", "STUDIES_OTHER", "SYV", "PRAKTIK", "MOTIVATION",
                                           "AF_PROGRAMME", "SOCIAL_SUPPORT", "OTHER"};
static const char *const s_groups[] = {"back_in_studies", "work", "measure", "moved", "turned_20", "other"};
static const char *const s_bands[] = {"16-17", "18-19", "other"};
#define S_N(a) (sizeof a / sizeof *a)

typedef struct {
    long lo, hi;
    s_cnt_t during, at_end, contacted, mapped, plan, declined;
    s_cnt_t occ[S_N(s_occ_codes)], meas[S_N(s_meas_codes)], groups[S_N(s_groups)], by_type[S_N(s_meas_codes)];
    s_cnt_t bands[S_N(s_bands)];
} s_per_t;

static size_t
s_index(const char *const *codes, size_t n, const char *code)
{
    size_t i;
    for (i = 0; i < n && strcmp(codes[i], code); i++)
        ;
    return i;
}

static int
s_per_youth(void *ctx, const void *k, size_t kl, void *v)
{
    (void) k;
    (void) kl;
    s_per_t *p = ctx;
    const s_fy_t *y = v;
    int sp = s_fy_span_in(y, p->lo, p->hi);
    if (sp < 0)
        return 0;
    s_add(&p->during, y->sex);
    for (int k2 = 0; k2 < y->n_spans; k2++)
        if (y->spans[k2].open <= p->hi && y->spans[k2].close > p->hi) {
            s_add(&p->at_end, y->sex);
            break;
        }
    if (y->reached <= p->hi)
        s_add(&p->contacted, y->sex);
    if (y->mapped <= p->hi)
        s_add(&p->mapped, y->sex);
    if (y->plan <= p->hi)
        s_add(&p->plan, y->sex);
    for (int k2 = 0; k2 < y->n_declines; k2++)
        if (y->declines[k2] >= p->lo && y->declines[k2] <= p->hi) {
            s_add(&p->declined, y->sex);
            break;
        }
    const char *occ = s_fy_occ_on(y, p->hi);
    size_t oi = s_index(s_occ_codes, S_N(s_occ_codes), occ[0] ? occ : "NOT_RECORDED");
    if (oi < S_N(s_occ_codes))
        s_add(&p->occ[oi], y->sex);
    bool seen[S_N(s_meas_codes)] = {false};
    for (int k2 = 0; k2 < y->n_meas; k2++) {
        const s_meas_t *m = &y->meas[k2];
        size_t mi = s_index(s_meas_codes, S_N(s_meas_codes), m->type);
        if (!m->declined && m->start <= p->hi && m->end >= p->lo && mi < S_N(s_meas_codes) && !seen[mi]) {
            seen[mi] = true;
            s_add(&p->meas[mi], y->sex);
        }
    }
    for (int k2 = 0; k2 < y->n_spans; k2++) {
        const s_span_t *s = &y->spans[k2];
        if (s->close < p->lo || s->close > p->hi)
            continue;
        const char *mtype;
        size_t gi = s_index(s_groups, S_N(s_groups), s_close_group(y, s, &mtype));
        s_add(&p->groups[gi], y->sex);
        size_t mi = s_index(s_meas_codes, S_N(s_meas_codes), mtype);
        if (mi < S_N(s_meas_codes))
            s_add(&p->by_type[mi], y->sex);
    }
    long first = y->spans[sp].open > p->lo ? y->spans[sp].open : p->lo;
    for (int k2 = 0; k2 < y->n_spans; k2++)
        if (y->spans[k2].open <= p->hi && y->spans[k2].close >= p->lo && y->spans[k2].open < first)
            first = y->spans[k2].open > p->lo ? y->spans[k2].open : p->lo;
    s_add(&p->bands[s_index(s_bands, S_N(s_bands), s_age_band(y, first))], y->sex);
    return 0;
}

static json_t *
s_cell4_share(const s_cnt_t *c, long den)
{
    json_t *j = s_cell4(c);
    json_object_set_new(j, "share", s_share_of(c->t, den));
    return j;
}

static json_t *
s_period(s_fig_t *g, const char *name, long lo, long hi)
{
    s_per_t *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->lo = lo;
    p->hi = hi;
    soffa_map_each(g->youths, s_per_youth, p);
    char f[11], t[11];
    soffa_date_format(s_date_of(lo), f);
    soffa_date_format(s_date_of(hi), t);
    json_t *o = json_pack("{s:s, s:s, s:s}", "period", name, "from", f, "to", t);
    long den = p->during.t;
    json_object_set_new(o, "in_kaa_during", s_cell4(&p->during));
    json_object_set_new(o, "in_kaa_at_end", s_cell4(&p->at_end));
    json_object_set_new(o, "contacted", s_cell4_share(&p->contacted, den));
    json_object_set_new(o, "mapped", s_cell4_share(&p->mapped, den));
    json_object_set_new(o, "with_plan", s_cell4_share(&p->plan, den));
    json_object_set_new(o, "declined", s_cell4(&p->declined));
    json_t *x = json_object();
    for (size_t k = 0; k < S_N(s_occ_codes); k++)
        json_object_set_new(x, s_occ_codes[k], s_cell4(&p->occ[k]));
    json_object_set_new(o, "occupation", x);
    x = json_object();
    for (size_t k = 0; k < S_N(s_meas_codes); k++)
        json_object_set_new(x, s_meas_codes[k], s_cell4(&p->meas[k]));
    json_object_set_new(o, "measures", x);
    x = json_object();
    for (size_t k = 0; k < S_N(s_groups); k++)
        json_object_set_new(x, s_groups[k], s_cell4(&p->groups[k]));
    json_t *bt = json_object();
    for (size_t k = 0; k < S_N(s_meas_codes); k++)
        if (p->by_type[k].t)
            json_object_set_new(bt, s_meas_codes[k], s_cell4(&p->by_type[k]));
    json_object_set_new(x, "measure_by_type", bt);
    json_object_set_new(o, "closures", x);
    x = json_object();
    for (size_t k = 0; k < S_N(s_bands); k++)
        json_object_set_new(x, s_bands[k], s_cell4(&p->bands[k]));
    json_object_set_new(o, "age", x);
    free(p);
    /* Signals and dropouts (LEFT) per school unit, units in order of first
     * appearance; one pass, units found by a hash (a JSON object). */
    json_t *units = json_array(), *index = json_object();
    s_cnt_t(*cnt)[2] = calloc(g->n_sigs + 1, sizeof *cnt);
    const char **names = calloc(g->n_sigs + 1, sizeof *names);
    size_t n_units = 0;
    for (size_t i = 0; cnt && names && i < g->n_sigs; i++) {
        const s_sig_t *sg = &g->sigs[i];
        if (sg->day < lo || sg->day > hi)
            continue;
        json_t *at = json_object_get(index, sg->unit);
        size_t u = at ? (size_t) json_integer_value(at) : n_units;
        if (!at) {
            json_object_set_new(index, sg->unit, json_integer((json_int_t) n_units));
            names[n_units++] = sg->unit;
        }
        s_add(&cnt[u][0], sg->sex);
        if (sg->left)
            s_add(&cnt[u][1], sg->sex);
    }
    for (size_t u = 0; u < n_units; u++)
        json_array_append_new(units, json_pack("{s:s, s:o, s:o}", "school_unit", names[u], "signals",
                                               s_cell4(&cnt[u][0]), "left", s_cell4(&cnt[u][1])));
    free(cnt);
    free(names);
    json_decref(index);
    json_object_set_new(o, "schools", units);
    return o;
}

json_t *
soffa_stats_periods(json_t *records, const char *kommun, soffa_date_t from, soffa_date_t to)
{
    s_fig_t g = {0};
    json_t *out = NULL;
    if (!s_fig_read(&g, records, kommun))
        goto cleanup;
    out = json_array();
    long lo = (long) soffa_date_to_days(from), hi = (long) soffa_date_to_days(to);
    for (int pass = 0; pass < 2; pass++)   /* half-years, then months */
        for (int y = from.year; y <= to.year && y < from.year + 10; y++)
            for (int k = 0; k < (pass ? 12 : 2); k++) {
                soffa_date_t a = pass ? (soffa_date_t) {y, k + 1, 1} : (soffa_date_t) {y, k ? 7 : 1, 1};
                soffa_date_t b = pass ? (soffa_date_t) {y, k + 1, soffa_date_days_in_month(y, k + 1)}
                                      : (soffa_date_t) {y, k ? 12 : 6, k ? 31 : 30};
                long plo = (long) soffa_date_to_days(a), phi = (long) soffa_date_to_days(b);
                if (phi < lo || plo > hi)
                    continue;
                char name[24];
                if (pass)
                    snprintf(name, sizeof name, "%04u-%02u", (unsigned) y % 10000, (unsigned) (k + 1) % 100);
                else
                    snprintf(name, sizeof name, "%04uH%u", (unsigned) y % 10000, (unsigned) (k + 1) % 10);
                json_t *p = s_period(&g, name, plo > lo ? plo : lo, phi < hi ? phi : hi);
                if (p)
                    json_array_append_new(out, p);
            }
cleanup:
    s_fig_free(&g);
    return out;
}

/* Swedish words for the closure groups, as the export writes them. */
static const char *
s_group_sv(const char *g)
{
    return !strcmp(g, "back_in_studies") ? "åter i studier"
           : !strcmp(g, "work")          ? "arbete"
           : !strcmp(g, "measure")       ? "insats"
           : !strcmp(g, "moved")         ? "flyttat"
           : !strcmp(g, "turned_20")     ? "fyllt 20"
                                         : "övrigt";
}

typedef struct {
    const s_fy_t **v;
    size_t n;
} s_list_t;

static int
s_collect_youth(void *ctx, const void *k, size_t kl, void *v)
{
    (void) k;
    (void) kl;
    s_list_t *l = ctx;
    l->v[l->n++] = v;
    return 0;
}

static int
s_cmp_youth(const void *a, const void *b)
{
    return strcmp((*(const s_fy_t *const *) a)->id, (*(const s_fy_t *const *) b)->id);
}

long
soffa_stats_export(json_t *records, const char *kommun, soffa_date_t from, soffa_date_t to, FILE *out)
{
    static const char *const head[] = {"identitetsnummer", "åldersgrupp", "kön", "registreringsorsak", "kontaktad",
                                       "kartlagd", "plan", "avböjt", "sysselsättning", "insatser", "avslutsorsak",
                                       "efter_avslut"};
    s_fig_t g = {0};
    s_list_t l = {0};
    long rows = -1;
    if (!s_fig_read(&g, records, kommun))
        goto cleanup;
    l.v = calloc(soffa_map_size(g.youths) + 1, sizeof *l.v);
    if (!l.v)
        goto cleanup;
    soffa_map_each(g.youths, s_collect_youth, &l);
    qsort(l.v, l.n, sizeof *l.v, s_cmp_youth);
    if (soffa_csv_write_row(out, head, S_N(head)) != SOFFA_OK)
        goto cleanup;
    long lo = (long) soffa_date_to_days(from), hi = (long) soffa_date_to_days(to);
    rows = 0;
    for (size_t i = 0; i < l.n; i++) {
        const s_fy_t *y = l.v[i];
        int sp = s_fy_span_in(y, lo, hi);
        if (sp < 0)
            continue;
        long first = hi;
        for (int k = 0; k < y->n_spans; k++)
            if (y->spans[k].open <= hi && y->spans[k].close >= lo) {
                long f = y->spans[k].open > lo ? y->spans[k].open : lo;
                if (f < first)
                    first = f;
            }
        bool declined = false;
        for (int k = 0; k < y->n_declines; k++)
            declined |= y->declines[k] >= lo && y->declines[k] <= hi;
        /* Occupations in force during the period: the one on its first day
         * and every one recorded in it; measures running on some day of it. */
        char occ[256] = "", meas[256] = "";
        for (size_t c = 0; c < S_N(s_occ_codes) - 1; c++) {
            bool in = !strcmp(s_fy_occ_on(y, lo), s_occ_codes[c]);
            for (int k = 0; k < y->n_occs && !in; k++)
                in = y->occs[k].day >= lo && y->occs[k].day <= hi && !strcmp(y->occs[k].code, s_occ_codes[c]);
            if (in)
                snprintf(occ + strlen(occ), sizeof occ - strlen(occ), "%s%s", occ[0] ? ";" : "", s_occ_codes[c]);
        }
        for (size_t c = 0; c < S_N(s_meas_codes); c++) {
            bool in = false;
            for (int k = 0; k < y->n_meas && !in; k++)
                in = !y->meas[k].declined && y->meas[k].start <= hi && y->meas[k].end >= lo
                     && !strcmp(y->meas[k].type, s_meas_codes[c]);
            if (in)
                snprintf(meas + strlen(meas), sizeof meas - strlen(meas), "%s%s", meas[0] ? ";" : "", s_meas_codes[c]);
        }
        const s_span_t *s = &y->spans[sp];
        bool closed = s->close >= lo && s->close <= hi;
        char where[64] = "";
        if (closed) {
            const char *mtype;
            const char *grp = s_close_group(y, s, &mtype);
            snprintf(where, sizeof where, "%s%s%s", s_group_sv(grp), mtype[0] ? " " : "", mtype);
        }
        const char *row[] = {y->id,
                             s_age_band(y, first),
                             y->sex == S_SEX_WOMAN ? "kvinna" : y->sex == S_SEX_MAN ? "man" : "okänt",
                             s->reg,
                             y->reached <= hi ? "ja" : "nej",
                             y->mapped <= hi ? "ja" : "nej",
                             y->plan <= hi ? "ja" : "nej",
                             declined ? "ja" : "nej",
                             occ,
                             meas,
                             closed ? s->reason : "",
                             where};
        if (soffa_csv_write_row(out, row, S_N(row)) != SOFFA_OK) {
            rows = -1;
            goto cleanup;
        }
        rows++;
    }
cleanup:
    free(l.v);
    s_fig_free(&g);
    return rows;
}

/* ---- Period figures: labels and rows --------------------------------------------------- */

static const char *
s_occ_sv(const char *c)
{
    static const char *const sv[] = {"arbete", "gymnasiestudier", "komvux", "folkhögskola", "program hos Arbetsförmedlingen",
                                     "annan aktivitet", "ingen sysselsättning", "okänd", "ej registrerad"};
    size_t i = s_index(s_occ_codes, S_N(s_occ_codes), c);
    return i < S_N(sv) ? sv[i] : c;
}

static const char *
s_meas_sv(const char *c)
{
    static const char *const sv[] = {"introduktionsprogram", "andra studier", "studie- och yrkesvägledning", "praktik",
                                     "motiverande insats", "program hos Arbetsförmedlingen", "socialt stöd", "annan insats"};
    size_t i = s_index(s_meas_codes, S_N(s_meas_codes), c);
    return i < S_N(sv) ? sv[i] : c;
}

/* Visits every figure of every period: (period, machine key, Swedish label, cell). */
static void
s_period_rows(json_t *st, void (*row)(void *ctx, const char *period, const char *key, const char *label, json_t *cell),
              void *ctx)
{
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(st, "periods"), i, p) {
        const char *name = json_string_value(json_object_get(p, "period"));
        char key[96], label[160];
        row(ctx, name, "in_kaa_during", "unga i KAA under perioden", json_object_get(p, "in_kaa_during"));
        row(ctx, name, "in_kaa_at_end", "unga i KAA vid periodens slut", json_object_get(p, "in_kaa_at_end"));
        row(ctx, name, "contacted", "kontaktade", json_object_get(p, "contacted"));
        row(ctx, name, "mapped", "kartlagda", json_object_get(p, "mapped"));
        row(ctx, name, "with_plan", "med plan", json_object_get(p, "with_plan"));
        row(ctx, name, "declined", "avböjt kontakt eller insats", json_object_get(p, "declined"));
        const char *k;
        json_t *v;
        json_object_foreach(json_object_get(p, "occupation"), k, v) {
            snprintf(key, sizeof key, "occupation.%s", k);
            snprintf(label, sizeof label, "sysselsättning: %s", s_occ_sv(k));
            row(ctx, name, key, label, v);
        }
        json_object_foreach(json_object_get(p, "measures"), k, v) {
            snprintf(key, sizeof key, "measures.%s", k);
            snprintf(label, sizeof label, "insats: %s", s_meas_sv(k));
            row(ctx, name, key, label, v);
        }
        json_object_foreach(json_object_get(p, "closures"), k, v) {
            if (!strcmp(k, "measure_by_type"))
                continue;
            snprintf(key, sizeof key, "closures.%s", k);
            snprintf(label, sizeof label, "avslut, vart: %s", s_group_sv(k));
            row(ctx, name, key, label, v);
            if (!strcmp(k, "measure")) {
                const char *t;
                json_t *tv;
                json_object_foreach(json_object_get(json_object_get(p, "closures"), "measure_by_type"), t, tv) {
                    snprintf(key, sizeof key, "closures.measure.%s", t);
                    snprintf(label, sizeof label, "avslut, vart: insats %s", s_meas_sv(t));
                    row(ctx, name, key, label, tv);
                }
            }
        }
        json_object_foreach(json_object_get(p, "age"), k, v) {
            snprintf(key, sizeof key, "age.%s", k);
            snprintf(label, sizeof label, "ålder %s", !strcmp(k, "other") ? "övrig" : !strcmp(k, "16-17") ? "16–17" : "18–19");
            row(ctx, name, key, label, v);
        }
        size_t j;
        json_t *u;
        json_array_foreach(json_object_get(p, "schools"), j, u) {
            const char *unit = json_string_value(json_object_get(u, "school_unit"));
            snprintf(key, sizeof key, "school.%s.signals", unit);
            snprintf(label, sizeof label, "signaler från skolenhet %s", unit);
            row(ctx, name, key, label, json_object_get(u, "signals"));
            snprintf(key, sizeof key, "school.%s.left", unit);
            snprintf(label, sizeof label, "avhopp (LEFT) från skolenhet %s", unit);
            row(ctx, name, key, label, json_object_get(u, "left"));
        }
    }
}

static void
s_period_table_row(void *ctx, const char *period, const char *key, const char *label, json_t *cell)
{
    (void) key;
    FILE *out = ctx;
    char c[4][16];
    static const char *const ks[] = {"total", "women", "men", "unknown"};
    for (int i = 0; i < 4; i++)
        s_num(json_object_get(cell, ks[i]), c[i], sizeof c[i]);
    /* Width by characters, not bytes: pad the label by hand. */
    size_t chars = 0;
    for (const char *q = label; *q; q++)
        chars += ((unsigned char) *q & 0xc0) != 0x80;
    fprintf(out, "  %-8s %s%*s %7s %7s %7s %7s", period, label, chars < 46 ? (int) (46 - chars) : 0, "", c[0], c[1],
            c[2], c[3]);
    json_t *share = json_object_get(cell, "share");
    if (share) {
        char sh[16];
        s_num(share, sh, sizeof sh);
        fprintf(out, "   andel %s", json_is_null(share) ? "-" : sh);
    }
    fputc('\n', out);
}

static void
s_period_table(json_t *st, FILE *out)
{
    if (!json_array_size(json_object_get(st, "periods")))
        return;
    fprintf(out, "nyckeltal per halvår och månad (datum i svensk tid; unga i KAA under hela perioden, inte bara nya)\n");
    fprintf(out, "  %-8s %-46s %7s %7s %7s %7s\n", "period", "", "totalt", "kvinnor", "män", "okänt");
    s_period_rows(st, s_period_table_row, out);
}

static void
s_period_csv_row(void *ctx, const char *period, const char *key, const char *label, json_t *cell)
{
    (void) label;
    FILE *out = ctx;
    char t[16], w[16], m[16];
    s_num(json_object_get(cell, "total"), t, sizeof t);
    s_num(json_object_get(cell, "women"), w, sizeof w);
    s_num(json_object_get(cell, "men"), m, sizeof m);
    fprintf(out, "period %s,%s,%s,%s,%s\n", period, key, t, w, m);
}

/* Text into XHTML: the five characters that could end it escaped. */
static void
s_html_text(FILE *out, const char *t)
{
    for (; *t; t++) {
        switch (*t) {
        case '&': fputs("&amp;", out); break;
        case '<': fputs("&lt;", out); break;
        case '>': fputs("&gt;", out); break;
        case '"': fputs("&quot;", out); break;
        case '\'': fputs("&#39;", out); break;
        default: fputc(*t, out);
        }
    }
}

static void
s_period_html_row(void *ctx, const char *period, const char *key, const char *label, json_t *cell)
{
    (void) key;
    FILE *out = ctx;
    fputs("<tr><td>", out);
    s_html_text(out, period);
    fputs("</td><td>", out);
    s_html_text(out, label);
    fputs("</td>", out);
    static const char *const ks[] = {"total", "women", "men", "unknown"};
    for (int i = 0; i < 4; i++) {
        char c[16];
        s_num(json_object_get(cell, ks[i]), c, sizeof c);
        fprintf(out, "<td class=\"n\">%s</td>", !strcmp(c, "<5") ? "&lt;5" : c);
    }
    fprintf(out, "</tr>\n");
}


