/*  soffa_stats: key figures from replayed records. */
#include "soffa_stats.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "soffa_map.h"
#include "soffa_msg.h"

typedef struct {
    long t, w, m;     /* total, women, men */
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

static json_t *
s_cell(const s_cnt_t *c)
{
#define S_SUP(v) ((v) >= 1 && (v) <= 4 ? json_null() : json_integer(v))
    return json_pack("{s:o, s:o, s:o}", "total", S_SUP(c->t), "women", S_SUP(c->w), "men", S_SUP(c->m));
#undef S_SUP
}

static json_t *
s_share(long num, long den)
{
    if (den < 5)
        return json_null();
    return json_real((double) ((long) (1000.0 * (double) num / (double) den + 0.5)) / 1000.0);
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
    json_object_set_new(c, "share", s_share(ys.contacted.t, ys.registered.t));
    json_object_set_new(c, "median_days_to_first_contact", s_median(ys.days, ys.n_days));
    json_object_set_new(out, "contacted", c);
    c = s_cell(&ys.plan);
    json_object_set_new(c, "share", s_share(ys.plan.t, ys.registered.t));
    json_object_set_new(out, "with_plan", c);
    c = s_cell(&ys.measure);
    json_object_set_new(c, "share", s_share(ys.measure.t, ys.registered.t));
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
    fprintf(out, "</table>\n</body>\n</html>\n");
}
