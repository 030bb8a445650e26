/*  soffa_web_pages: routes, pages, forms, the live stream. */
#include "soffa_web_pages.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "soffa_id.h"
#include "soffa_log.h"
#include "soffa_msg.h"
#include "soffa_time.h"
#include "soffa_uuid.h"

#include "soffa_web_assets.h"
#include "soffa_web_i18n.h"

#define T(k) soffa_web_tr(k)
/* Cookie names carry the listen address: cookies do not tell ports apart,
 * and two sites' inboxes on one host (the demo) must not share a session. */
#define S_COOKIE self->cookie
#define S_PRE_COOKIE self->pre_cookie
#define S_CALL_MS 5000

struct soffa_web_pages {
    char cookie[96], pre_cookie[96];
    const soffa_web_cfg_t *cfg;
    soffa_web_auth_t *auth;
    soffa_web_agent_t *agent;
};

/* One request being answered. */
typedef struct {
    soffa_web_pages_t *self;
    const soffa_web_req_t *req;
    soffa_web_resp_t *resp;
    soffa_web_buf_t *b;
    soffa_web_session_t s;
    char token[SOFFA_WEB_TOKEN_LEN + 1];
    json_t *who;        /* the agent's whoami, or NULL when it does not answer */
    const char *role;   /* the site's role: school, kaa, social, af, audit ("" unknown) */
} s_rq_t;

/* ---- Small helpers ------------------------------------------------------------------ */

static const char *
s_jstr(json_t *o, const char *k)
{
    const char *v = json_string_value(json_object_get(o, k));
    return v ? v : "";
}

static void
s_pnr_text(const char *id, char out[20])
{
    if (id && strlen(id) == 12 && strspn(id, "0123456789") == 12)
        snprintf(out, 20, "%.8s-%.4s", id, id + 8);
    else
        snprintf(out, 20, "%s", id ? id : "");
}

static void
s_kommun_text(const char *code, char *out, size_t len)
{
    const char *name = code && *code ? soffa_kommun_name(code) : NULL;
    if (name)
        snprintf(out, len, "%s (%s)", name, code);
    else
        snprintf(out, len, "%s", code ? code : "");
}

static void
s_when(int64_t us, char out[32])
{
    if (us > 0)
        soffa_time_format_local(us, out);
    else
        snprintf(out, 32, "–");
}

static void
s_redirect(s_rq_t *q, const char *to)
{
    q->resp->status = 303;
    snprintf(q->resp->location, sizeof q->resp->location, "%s", to);
}

static json_t *
s_call(s_rq_t *q, json_t *req, int ms)
{
    return soffa_web_agent_call(q->self->agent, req, ms);
}

static bool
s_ok(json_t *a)
{
    return a && json_is_true(json_object_get(a, "ok"));
}

/* The payload object of a message JSON and its type name. */
static json_t *
s_payload(json_t *msg, const char **type)
{
    const char *k;
    json_t *v;
    json_object_foreach(msg, k, v) {
        if (json_is_object(v) && soffa_msg_type_from_name(k) != SOFFA_MT_NONE) {
            if (type)
                *type = k;
            return v;
        }
    }
    if (type)
        *type = "";
    return NULL;
}

static bool
s_is_signal(const char *type)
{
    return !strcmp(type, "enrolment_changed") || !strcmp(type, "absence_reported") || !strcmp(type, "at_risk_notice")
           || !strcmp(type, "year9_handover") || !strcmp(type, "admission_not_started");
}

/* ---- Page frame --------------------------------------------------------------------- */

static void
s_head(soffa_web_buf_t *b, const char *title)
{
    soffa_web_buf_put(b, "<!DOCTYPE html>\n<html lang=\"sv\"><head><meta charset=\"utf-8\">"
                         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>");
    soffa_web_buf_esc(b, title);
    soffa_web_buf_put(b, " – soffa</title><link rel=\"stylesheet\" href=\"/app.css\">"
                         "<script src=\"/app.js\" defer></script></head>\n<body>");
    soffa_web_buf_printf(b, "<a class=\"hoppa\" href=\"#innehall\">%s</a>", T("hoppa"));
}

static void
s_nav_item(s_rq_t *q, const char *href, const char *key, const char *active)
{
    soffa_web_buf_printf(q->b, "<li><a href=\"%s\"%s>%s</a></li>", href,
                         !strcmp(href, active) ? " aria-current=\"page\"" : "", T(key));
}

static void
s_begin(s_rq_t *q, const char *title, const char *active)
{
    soffa_web_buf_t *b = q->b;
    s_head(b, title);
    const char *site = q->self->cfg->site_name[0] ? q->self->cfg->site_name : s_jstr(q->who, "agent");
    soffa_web_buf_put(b, "<header class=\"topp\"><p class=\"plats\"><span class=\"logga\">soffa</span> ");
    soffa_web_buf_esc(b, site);
    soffa_web_buf_printf(b, " <span class=\"roll\">(%s)</span></p>", T(q->role[0] ? q->role : "roll.okand"));
    soffa_web_buf_printf(b, "<nav aria-label=\"%s\"><ul>", T("nav.meny"));
    s_nav_item(q, "/inkorg", "nav.inkorg", active);
    s_nav_item(q, "/skickat", "nav.skickat", active);
    if (!strcmp(q->role, "school"))
        s_nav_item(q, "/ny", "nav.ny", active);
    s_nav_item(q, "/sok", "nav.sok", active);
    if (q->s.role == SOFFA_USER_LEAD)
        s_nav_item(q, "/min-enhet", "nav.enhet", active);
    soffa_web_buf_put(b, "</ul></nav><form class=\"ut\" method=\"post\" action=\"/utloggning\">");
    soffa_web_buf_printf(b, "<input type=\"hidden\" name=\"csrf\" value=\"%s\"><span>%s ", q->s.csrf, T("inloggad"));
    soffa_web_buf_esc(b, q->s.name);
    soffa_web_buf_printf(b, " (%s)</span> <button type=\"submit\">%s</button></form></header>\n",
                         T(q->s.role == SOFFA_USER_LEAD ? "anv.lead" : "anv.caseworker"), T("logga_ut"));
    soffa_web_buf_put(b, "<main id=\"innehall\" tabindex=\"-1\"><h1>");
    soffa_web_buf_esc(b, title);
    soffa_web_buf_put(b, "</h1>\n");
    if (!q->who)
        soffa_web_buf_printf(b, "<div class=\"notis fel\" role=\"alert\"><p>%s</p></div>", T("agent.svarar_inte"));
    else if (!json_is_true(json_object_get(q->who, "connected")))
        soffa_web_buf_printf(b, "<div class=\"notis\" role=\"status\"><p>%s</p></div>", T("agent.ej_ansluten"));
    char flash[512];
    bool err = false;
    if (soffa_web_auth_take_flash(q->self->auth, q->token, flash, sizeof flash, &err)) {
        soffa_web_buf_printf(b, "<div class=\"notis%s\" role=\"%s\"><p>", err ? " fel" : " ok", err ? "alert" : "status");
        soffa_web_buf_esc(b, flash);
        soffa_web_buf_put(b, "</p></div>\n");
    }
}

static void
s_end(s_rq_t *q)
{
    soffa_web_buf_printf(q->b, "</main><footer><p>%s</p></footer></body></html>\n", T("sidfot"));
}

static void
s_csrf_field(s_rq_t *q)
{
    soffa_web_buf_printf(q->b, "<input type=\"hidden\" name=\"csrf\" value=\"%s\">", q->s.csrf);
}

/* An error page with status. */
static void
s_error_page(soffa_web_resp_t *resp, int status, const char *key)
{
    resp->status = status;
    soffa_web_buf_t *b = &resp->body;
    s_head(b, T("fel.titel"));
    soffa_web_buf_printf(b, "<main id=\"innehall\" tabindex=\"-1\"><h1>%s</h1><p>%s</p><p><a href=\"/inkorg\">%s</a></p>"
                            "</main></body></html>\n",
                         T("fel.titel"), T(key), T("till_inkorgen"));
}

/* ---- The access log ------------------------------------------------------------------- */

/* Records a view before it is shown. Returns false (and an error page) when
 * the agent could not record it: nothing about a youth is shown unrecorded. */
static bool
s_record(s_rq_t *q, const char *what, const char *msg_id, json_t *subjects)
{
    json_t *req = json_pack("{s:s, s:s, s:s, s:s, s:O}", "cmd", "access_put", "actor", q->s.actor, "what", what,
                            "message_id", msg_id ? msg_id : "", "subjects", subjects);
    json_t *a = s_call(q, req, S_CALL_MS);
    bool ok = s_ok(a);
    json_decref(a);
    if (!ok) {
        soffa_web_buf_fini(q->b);
        s_error_page(q->resp, 503, "fel.logg");
    }
    return ok;
}

static void
s_add_subject(json_t *arr, const char *id)
{
    if (!id || !*id)
        return;
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) if (!strcmp(json_string_value(v), id)) return;
    json_array_append_new(arr, json_string(id));
}

/* ---- What the site holds ------------------------------------------------------------- */

typedef struct {
    json_t *list;        /* the agent's list answer */
    json_t *inbox, *sent;
    json_t *acked;       /* signal id -> ack payload, or the KAA's answer to an early warning (with "at_us") */
    json_t *answered;    /* referral id -> newest status payload */
    json_t *fed_back;    /* report id -> 1 */
    json_t *my_acks;     /* signal id -> 1 : signals this site acknowledged */
    json_t *my_answers;  /* referral id -> 1 : referrals this site answered */
    json_t *my_feedback; /* report id -> 1 */
    json_t *read;        /* message id -> 1 : what this person opened */
    int64_t signal_due_ms, referral_due_ms;
} s_site_t;

static void
s_site_fini(s_site_t *st)
{
    json_decref(st->list);
    json_decref(st->acked);
    json_decref(st->answered);
    json_decref(st->fed_back);
    json_decref(st->my_acks);
    json_decref(st->my_answers);
    json_decref(st->my_feedback);
    json_decref(st->read);
    memset(st, 0, sizeof *st);
}

static bool
s_site_load(s_rq_t *q, s_site_t *st, bool with_read)
{
    memset(st, 0, sizeof *st);
    st->list = s_call(q, json_pack("{s:s, s:i}", "cmd", "list", "limit", 2000), S_CALL_MS);
    if (!s_ok(st->list)) {
        json_decref(st->list);
        st->list = NULL;
        return false;
    }
    st->inbox = json_object_get(st->list, "inbox");
    st->sent = json_object_get(st->list, "sent");
    st->acked = json_object();
    st->answered = json_object();
    st->fed_back = json_object();
    st->my_acks = json_object();
    st->my_answers = json_object();
    st->my_feedback = json_object();
    st->read = json_object();
    st->signal_due_ms = json_integer_value(json_object_get(q->who, "signal_ack_due_ms"));
    st->referral_due_ms = json_integer_value(json_object_get(q->who, "referral_receipt_due_ms"));
    size_t i;
    json_t *r;
    json_array_foreach(st->inbox, i, r) {
        const char *type;
        json_t *pl = s_payload(json_object_get(r, "message"), &type);
        json_t *c = json_deep_copy(pl);
        json_object_set_new(c, "at_us", json_integer(json_integer_value(json_object_get(r, "received_at_us"))));
        if (!strcmp(type, "signal_acknowledged"))
            json_object_set(st->acked, s_jstr(pl, "signal_id"), c);
        else if (!strcmp(type, "early_warning_answered"))   /* the KAA's coded answer; the latest stands */
            json_object_set(st->acked, s_jstr(pl, "warning_id"), c);
        else if (!strcmp(type, "referral_status_changed"))
            json_object_set(st->answered, s_jstr(pl, "referral_id"), c);
        else if (!strcmp(type, "concern_report_feedback"))
            json_object_set(st->fed_back, s_jstr(pl, "report_id"), c);
        json_decref(c);
    }
    json_array_foreach(st->sent, i, r) {
        if (!strcmp(s_jstr(r, "outcome"), "refused"))
            continue;
        const char *type;
        json_t *pl = s_payload(json_object_get(r, "message"), &type);
        if (!strcmp(type, "signal_acknowledged"))
            json_object_set_new(st->my_acks, s_jstr(pl, "signal_id"), json_true());
        else if (!strcmp(type, "early_warning_answered"))
            json_object_set_new(st->my_acks, s_jstr(pl, "warning_id"), json_true());
        else if (!strcmp(type, "referral_status_changed"))
            json_object_set_new(st->my_answers, s_jstr(pl, "referral_id"), json_true());
        else if (!strcmp(type, "concern_report_feedback"))
            json_object_set_new(st->my_feedback, s_jstr(pl, "report_id"), json_true());
    }
    if (with_read) {
        json_t *a = s_call(q, json_pack("{s:s, s:s, s:s, s:i, s:b}", "cmd", "access_list", "actor", q->s.actor, "what",
                                        "message", "limit", 5000, "ids_only", 1),
                           S_CALL_MS);
        json_t *e;
        json_array_foreach(json_object_get(a, "entries"), i, e) json_object_set_new(st->read, s_jstr(e, "message_id"),
                                                                                    json_true());
        json_decref(a);
    }
    return true;
}

/* What an inbox record still waits for from this site, if anything:
 * "kvittens" (a signal to acknowledge), "svar" (a referral to answer),
 * "aterkoppling" (a concern report); NULL when nothing. */
static const char *
s_needs(s_rq_t *q, json_t *rec)
{
    const char *type;
    json_t *msg = json_object_get(rec, "message");
    json_t *pl = s_payload(msg, &type);
    if (!strcmp(q->role, "kaa") && s_is_signal(type))
        return "kvittens";
    if ((!strcmp(q->role, "af") || !strcmp(q->role, "social")) && !strcmp(type, "referral_sent"))
        return "svar";
    if (!strcmp(q->role, "social") && !strcmp(type, "concern_report_filed"))
        return "aterkoppling";
    (void) pl;
    return NULL;
}

static bool
s_handled(s_site_t *st, json_t *rec, const char *needs)
{
    json_t *msg = json_object_get(rec, "message");
    json_t *pl = s_payload(msg, NULL);
    if (!strcmp(needs, "kvittens"))
        return json_object_get(st->my_acks, s_jstr(msg, "message_id")) != NULL;
    if (!strcmp(needs, "svar"))
        return json_object_get(st->my_answers, s_jstr(pl, "referral_id")) != NULL;
    return json_object_get(st->my_feedback, s_jstr(pl, "report_id")) != NULL;
}

static int64_t
s_due_us(s_site_t *st, json_t *rec, const char *needs)
{
    int64_t at = json_integer_value(json_object_get(rec, "received_at_us"));
    return at + (strcmp(needs, "kvittens") ? st->referral_due_ms : st->signal_due_ms) * 1000;
}

/* One line of what a message says, in words. */
static void
s_summary(soffa_web_buf_t *b, const char *type, json_t *pl)
{
    static const char *const fields[] = {"unexcused_band", "event", "risk_code", "risk", "result",
                                         "registration_reason", "outcome", "purpose", "status", "feedback",
                                         "reason", "occupation", NULL};
    soffa_web_buf_esc(b, soffa_web_type_name(type));
    for (size_t i = 0; fields[i]; i++) {
        const char *v = json_string_value(json_object_get(pl, fields[i]));
        if (v) {
            soffa_web_buf_put(b, ": ");
            soffa_web_buf_esc(b, soffa_web_code(fields[i], v));
            break;
        }
    }
}

static void
s_youth_cell(soffa_web_buf_t *b, json_t *msg)
{
    json_t *subj = json_object_get(msg, "subject");
    char pnr[20], kom[80];
    s_pnr_text(s_jstr(subj, "id"), pnr);
    s_kommun_text(s_jstr(subj, "hemkommun"), kom, sizeof kom);
    soffa_web_buf_put(b, "<span class=\"pnr\">");
    soffa_web_buf_esc(b, pnr);
    soffa_web_buf_put(b, "</span><br><span class=\"liten\">");
    soffa_web_buf_esc(b, kom);
    soffa_web_buf_put(b, "</span>");
}

static void
s_sender_text(soffa_web_buf_t *b, json_t *sender)
{
    soffa_web_buf_esc(b, soffa_web_role_label(s_jstr(sender, "role")));
    soffa_web_buf_put(b, " <span class=\"liten\">");
    soffa_web_buf_esc(b, s_jstr(sender, "agent"));
    soffa_web_buf_put(b, "</span>");
}

static void
s_badge(soffa_web_buf_t *b, const char *cls, const char *key)
{
    soffa_web_buf_printf(b, "<span class=\"markor %s\">%s</span> ", cls, T(key));
}

/* ---- Inkorg ------------------------------------------------------------------------- */

static void
s_inbox_table(s_rq_t *q, s_site_t *st, const char *show, const char *type_filter, json_t *subjects)
{
    soffa_web_buf_t *b = q->b;
    int64_t now = soffa_now_us();
    size_t n = json_array_size(st->inbox), shown = 0;
    soffa_web_buf_printf(b, "<div class=\"rulla\" role=\"region\" aria-labelledby=\"inkorg-rubrik\" tabindex=\"0\">"
                            "<table class=\"lista\"><caption id=\"inkorg-rubrik\">%s</caption><thead><tr>"
                            "<th scope=\"col\">%s</th><th scope=\"col\">%s</th><th scope=\"col\">%s</th>"
                            "<th scope=\"col\">%s</th><th scope=\"col\">%s</th></tr></thead><tbody>",
                         T("inkorg.tabell"), T("kol.mottaget"), T("kol.vad"), T("kol.ungdom"), T("kol.fran"),
                         T("kol.markering"));
    for (size_t k = n; k > 0; k--) {   /* newest first */
        json_t *rec = json_array_get(st->inbox, k - 1);
        json_t *msg = json_object_get(rec, "message");
        const char *type;
        json_t *pl = s_payload(msg, &type);
        const char *mid = s_jstr(msg, "message_id");
        const char *needs = s_needs(q, rec);
        bool handled = needs && s_handled(st, rec, needs);
        bool overdue = needs && !handled && now > s_due_us(st, rec, needs);
        bool unread = !json_object_get(st->read, mid);
        if ((!strcmp(show, "olasta") && !unread) || (!strcmp(show, "ohanterade") && (!needs || handled))
            || (!strcmp(show, "forsenade") && !overdue) || (type_filter[0] && strcmp(type, type_filter) != 0))
            continue;
        shown++;
        s_add_subject(subjects, s_jstr(json_object_get(msg, "subject"), "id"));
        char when[32];
        s_when(json_integer_value(json_object_get(rec, "received_at_us")), when);
        soffa_web_buf_printf(b, "<tr%s data-id=\"%s\"><td>%s</td><td><a href=\"/meddelande/%s\">", unread ? " class=\"olast\"" : "",
                             mid, when, mid);
        s_summary(b, type, pl);
        soffa_web_buf_put(b, "</a></td><td>");
        s_youth_cell(b, msg);
        soffa_web_buf_put(b, "</td><td>");
        s_sender_text(b, json_object_get(rec, "sender"));
        soffa_web_buf_put(b, "</td><td>");
        if (unread)
            s_badge(b, "olast", "markor.olast");
        if (needs && !handled)
            s_badge(b, "ohanterad", !strcmp(needs, "kvittens") ? "markor.ej_kvitterad" : "markor.ej_besvarad");
        if (overdue)
            s_badge(b, "forsenad", "markor.forsenad");
        if (needs && handled)
            s_badge(b, "klar", "markor.hanterad");
        soffa_web_buf_put(b, "</td></tr>\n");
    }
    soffa_web_buf_put(b, "</tbody></table></div>");
    if (!shown)
        soffa_web_buf_printf(b, "<p class=\"tom\">%s</p>", T(n ? "inkorg.inga_traffar" : "inkorg.tom"));
    else
        soffa_web_buf_printf(b, "<p class=\"liten\">%zu %s</p>", shown, T("st_meddelanden"));
}

static const char *const s_show_values[] = {"alla", "olasta", "ohanterade", "forsenade", NULL};

static void
s_page_inbox(s_rq_t *q)
{
    const char *show = soffa_web_req_query(q->req, "visa");
    const char *type = soffa_web_req_query(q->req, "typ");
    bool known = false;
    for (size_t i = 0; show && s_show_values[i]; i++)
        known |= !strcmp(show, s_show_values[i]);
    if (!known)
        show = "alla";
    if (!type || soffa_msg_type_from_name(type) == SOFFA_MT_NONE)
        type = "";
    bool fragment = soffa_web_req_query(q->req, "del") && !strcmp(soffa_web_req_query(q->req, "del"), "lista");
    s_site_t st;
    if (!q->who || !s_site_load(q, &st, true)) {
        s_error_page(q->resp, 503, "agent.svarar_inte");
        return;
    }
    json_t *subjects = json_array();
    soffa_web_buf_t list = {0};
    soffa_web_buf_t *saved = q->b;
    q->b = &list;
    s_inbox_table(q, &st, show, type, subjects);
    q->b = saved;
    if (!s_record(q, "inbox", NULL, subjects))
        goto out;
    if (fragment) {
        soffa_web_buf_putn(q->b, list.p ? list.p : "", list.len);
        goto out;
    }
    s_begin(q, T("nav.inkorg"), "/inkorg");
    soffa_web_buf_printf(q->b, "<form class=\"filter\" method=\"get\" action=\"/inkorg\"><label for=\"visa\">%s</label> "
                               "<select id=\"visa\" name=\"visa\">",
                         T("filter.visa"));
    for (size_t i = 0; s_show_values[i]; i++) {
        char key[40];
        snprintf(key, sizeof key, "filter.%s", s_show_values[i]);
        soffa_web_buf_printf(q->b, "<option value=\"%s\"%s>%s</option>", s_show_values[i],
                             !strcmp(show, s_show_values[i]) ? " selected" : "", T(key));
    }
    soffa_web_buf_printf(q->b, "</select> <label for=\"typ\">%s</label> <select id=\"typ\" name=\"typ\"><option value=\"\">%s</option>",
                         T("filter.typ"), T("filter.alla_typer"));
    for (int t = SOFFA_MT_FIRST; t <= SOFFA_MT_LAST; t++) {
        const char *tn = soffa_msg_type_name((soffa_msg_type_t) t);
        if (!strcmp(tn, "unknown"))
            continue;   /* a payload number the schema keeps free */
        soffa_web_buf_printf(q->b, "<option value=\"%s\"%s>%s</option>", tn, !strcmp(type, tn) ? " selected" : "",
                             soffa_web_type_name(tn));
    }
    soffa_web_buf_printf(q->b, "</select> <button type=\"submit\">%s</button></form>\n", T("filter.knapp"));
    soffa_web_buf_printf(q->b, "<p id=\"live\" class=\"live\" role=\"status\" aria-live=\"polite\"></p>"
                               "<div id=\"lista\" data-src=\"/inkorg?del=lista&amp;visa=%s&amp;typ=%s\" data-ny=\"%s\">",
                         show, type, T("live.nytt"));
    soffa_web_buf_putn(q->b, list.p ? list.p : "", list.len);
    soffa_web_buf_put(q->b, "</div>");
    s_end(q);
out:
    soffa_web_buf_fini(&list);
    json_decref(subjects);
    s_site_fini(&st);
}

/* ---- Skickat ------------------------------------------------------------------------- */

static void
s_sent_table(s_rq_t *q, s_site_t *st, json_t *sent, json_t *subjects, const char *caption)
{
    soffa_web_buf_t *b = q->b;
    int64_t now = soffa_now_us();
    soffa_web_buf_printf(b, "<div class=\"rulla\" role=\"region\" aria-labelledby=\"skickat-rubrik\" tabindex=\"0\">"
                            "<table class=\"lista\"><caption id=\"skickat-rubrik\">%s</caption><thead><tr>"
                            "<th scope=\"col\">%s</th><th scope=\"col\">%s</th><th scope=\"col\">%s</th>"
                            "<th scope=\"col\">%s</th><th scope=\"col\">%s</th></tr></thead><tbody>",
                         caption, T("kol.skickat"), T("kol.vad"), T("kol.ungdom"), T("kol.utfall"), T("kol.svar"));
    size_t n = json_array_size(sent);
    for (size_t k = n; k > 0; k--) {
        json_t *r = json_array_get(sent, k - 1);
        json_t *msg = json_object_get(r, "message");
        const char *type;
        json_t *pl = s_payload(msg, &type);
        const char *mid = s_jstr(msg, "message_id");
        s_add_subject(subjects, s_jstr(json_object_get(msg, "subject"), "id"));
        char when[32];
        int64_t sent_us = json_integer_value(json_object_get(msg, "sent_at_us"));
        s_when(sent_us, when);
        soffa_web_buf_printf(b, "<tr data-id=\"%s\"><td>%s</td><td><a href=\"/meddelande/%s\">", mid, when, mid);
        s_summary(b, type, pl);
        soffa_web_buf_put(b, "</a></td><td>");
        s_youth_cell(b, msg);
        soffa_web_buf_put(b, "</td><td>");
        const char *outcome = s_jstr(r, "outcome");
        if (!strcmp(outcome, "accepted"))
            s_badge(b, "klar", "utfall.mottaget");
        else if (!strcmp(outcome, "refused")) {
            s_badge(b, "forsenad", "utfall.avvisat");
            soffa_web_buf_put(b, "<span class=\"liten\">");
            soffa_web_buf_esc(b, soffa_web_err_text(s_jstr(r, "code")));
            soffa_web_buf_put(b, "</span>");
        } else
            s_badge(b, "ohanterad", "utfall.vantar");
        soffa_web_buf_put(b, "</td><td>");
        json_t *ans = NULL;
        bool awaits = false;
        int64_t due_ms = 0;
        if (s_is_signal(type)) {
            ans = json_object_get(st->acked, mid);
            awaits = true;
            due_ms = st->signal_due_ms;
        } else if (!strcmp(type, "referral_sent")) {
            ans = json_object_get(st->answered, s_jstr(pl, "referral_id"));
            awaits = true;
            due_ms = st->referral_due_ms;
        } else if (!strcmp(type, "concern_report_filed")) {
            ans = json_object_get(st->fed_back, s_jstr(pl, "report_id"));
        }
        if (ans) {
            char at[32];
            s_when(json_integer_value(json_object_get(ans, "at_us")), at);
            const char *code = json_string_value(json_object_get(ans, "result"));
            const char *field = "result";
            if (!code)
                code = json_string_value(json_object_get(ans, "status")), field = "status";
            if (!code)
                code = json_string_value(json_object_get(ans, "feedback")), field = "feedback";
            soffa_web_buf_printf(b, "<span class=\"markor klar\">%s</span> ",
                                 T(json_object_get(ans, "result") ? "svar.kvitterad" : "svar.besvarad"));
            soffa_web_buf_esc(b, code ? soffa_web_code(field, code) : "");
            soffa_web_buf_printf(b, " <span class=\"liten\">%s</span>", at);
        } else if (awaits && !strcmp(outcome, "accepted")) {
            bool late = sent_us && now > sent_us + due_ms * 1000;
            s_badge(b, late ? "forsenad" : "ohanterad", late ? "svar.forsenat" : "svar.vantar");
        }
        soffa_web_buf_put(b, "</td></tr>\n");
    }
    soffa_web_buf_put(b, "</tbody></table></div>");
    if (!n)
        soffa_web_buf_printf(b, "<p class=\"tom\">%s</p>", T("skickat.tomt"));
}

static void
s_page_sent(s_rq_t *q)
{
    bool fragment = soffa_web_req_query(q->req, "del") && !strcmp(soffa_web_req_query(q->req, "del"), "lista");
    s_site_t st;
    if (!q->who || !s_site_load(q, &st, false)) {
        s_error_page(q->resp, 503, "agent.svarar_inte");
        return;
    }
    /* The site's own case notes are shown with the youth; this list is what left the site. */
    json_t *subjects = json_array();
    soffa_web_buf_t list = {0};
    soffa_web_buf_t *saved = q->b;
    q->b = &list;
    s_sent_table(q, &st, st.sent, subjects, T("skickat.tabell"));
    q->b = saved;
    if (s_record(q, "sent-list", NULL, subjects)) {
        if (fragment) {
            soffa_web_buf_putn(q->b, list.p ? list.p : "", list.len);
        } else {
            s_begin(q, T("nav.skickat"), "/skickat");
            soffa_web_buf_printf(q->b, "<p>%s</p><p id=\"live\" class=\"live\" role=\"status\" aria-live=\"polite\"></p>"
                                       "<div id=\"lista\" data-src=\"/skickat?del=lista\" data-ny=\"%s\">",
                                 T("skickat.intro"), T("live.andrat"));
            soffa_web_buf_putn(q->b, list.p ? list.p : "", list.len);
            soffa_web_buf_put(q->b, "</div>");
            s_end(q);
        }
    }
    soffa_web_buf_fini(&list);
    json_decref(subjects);
    s_site_fini(&st);
}

/* ---- One message ------------------------------------------------------------------------ */

static bool
s_hidden_field(const char *k)
{
    size_t n = strlen(k);
    return (n > 3 && !strcmp(k + n - 3, "_id")) || !strcmp(k, "source_signal_ids") || !strcmp(k, "recorded_by");
}

static void
s_value(soffa_web_buf_t *b, const char *field, json_t *v)
{
    if (json_is_string(v)) {
        soffa_web_buf_esc(b, soffa_web_code(field, json_string_value(v)));
    } else if (json_is_true(v)) {
        soffa_web_buf_put(b, T("ja"));
    } else if (json_is_false(v)) {
        soffa_web_buf_put(b, T("nej"));
    } else if (json_is_integer(v)) {
        if (!strcmp(field, "withdrawn_at_us")) {
            char w[32];
            s_when(json_integer_value(v), w);
            soffa_web_buf_put(b, w);
        } else {
            soffa_web_buf_printf(b, "%lld", (long long) json_integer_value(v));
        }
    } else if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) {
            if (i)
                soffa_web_buf_put(b, ", ");
            if (json_is_object(e))
                soffa_web_buf_esc(b, soffa_web_code("role", s_jstr(e, "role")));
            else
                s_value(b, field, e);
        }
    } else if (json_is_object(v)) {
        const char *k;
        json_t *e;
        bool first = true;
        json_object_foreach(v, k, e) {
            if (s_hidden_field(k))
                continue;
            soffa_web_buf_printf(b, "%s%s: ", first ? "" : "; ", soffa_web_field_label(k));
            s_value(b, k, e);
            first = false;
        }
    }
}

static void
s_fields(soffa_web_buf_t *b, json_t *pl)
{
    const char *k;
    json_t *v;
    json_object_foreach(pl, k, v) {
        if (s_hidden_field(k))
            continue;
        soffa_web_buf_printf(b, "<dt>%s</dt><dd>", soffa_web_field_label(k));
        s_value(b, k, v);
        soffa_web_buf_put(b, "</dd>");
    }
}

typedef struct {
    int64_t at;
    json_t *msg;          /* borrowed */
    const char *dir;      /* "in" or "ut" */
    json_t *sender;       /* inbox: the authenticated sender */
    const char *to;       /* sent: the mailbox */
    const char *outcome;  /* sent */
} s_step_t;

static int
s_step_cmp(const void *a, const void *b)
{
    const s_step_t *x = a, *y = b;
    return x->at < y->at ? -1 : x->at > y->at;
}

/* Open cases, contact attempts and usable consents of one youth at this site. */
typedef struct {
    char case_id[40];
    int attempts;
    json_t *consents;    /* [{id, text, af, soc}] */
} s_youth_t;

static void
s_youth_state(s_site_t *st, const char *subject, s_youth_t *y)
{
    memset(y, 0, sizeof *y);
    y->consents = json_array();
    json_t *closed = json_object(), *withdrawn = json_object();
    size_t i;
    json_t *r;
    json_array_foreach(st->sent, i, r) {
        json_t *msg = json_object_get(r, "message");
        if (strcmp(s_jstr(json_object_get(msg, "subject"), "id"), subject) != 0 || !strcmp(s_jstr(r, "outcome"), "refused"))
            continue;
        const char *type;
        json_t *pl = s_payload(msg, &type);
        if (!strcmp(type, "kaa_case_closed"))
            json_object_set_new(closed, s_jstr(pl, "case_id"), json_true());
        if (!strcmp(type, "consent_withdrawn"))
            json_object_set_new(withdrawn, s_jstr(pl, "consent_id"), json_true());
    }
    char today[11];
    soffa_date_format(soffa_date_today(), today);
    json_array_foreach(st->sent, i, r) {
        json_t *msg = json_object_get(r, "message");
        if (strcmp(s_jstr(json_object_get(msg, "subject"), "id"), subject) != 0 || !strcmp(s_jstr(r, "outcome"), "refused"))
            continue;
        const char *type;
        json_t *pl = s_payload(msg, &type);
        if (!strcmp(type, "kaa_case_opened") && !json_object_get(closed, s_jstr(pl, "case_id"))) {
            snprintf(y->case_id, sizeof y->case_id, "%s", s_jstr(pl, "case_id"));
            y->attempts = 0;
        } else if (!strcmp(type, "contact_attempted") && !strcmp(s_jstr(pl, "case_id"), y->case_id)) {
            y->attempts++;
        } else if (!strcmp(type, "consent_recorded") && !json_object_get(withdrawn, s_jstr(pl, "consent_id"))
                   && strcmp(s_jstr(pl, "valid_to"), today) >= 0) {
            bool af = false, soc = false;
            size_t j;
            json_t *rc;
            json_array_foreach(json_object_get(json_object_get(pl, "scope"), "recipients"), j, rc) {
                af |= !strcmp(json_string_value(rc), "ARBETSFORMEDLINGEN");
                soc |= !strcmp(json_string_value(rc), "SOCIAL_SERVICES");
            }
            char text[200];
            snprintf(text, sizeof text, "%s %s–%s (%s%s%s)", T("samtycke.kort"), s_jstr(pl, "valid_from"),
                     s_jstr(pl, "valid_to"), af ? T("mottagare.af") : "", af && soc ? ", " : "",
                     soc ? T("mottagare.soc") : "");
            json_array_append_new(y->consents, json_pack("{s:s, s:s, s:b, s:b}", "id", s_jstr(pl, "consent_id"), "text",
                                                         text, "af", af, "soc", soc));
        }
    }
    json_decref(closed);
    json_decref(withdrawn);
}

/* <select> of the codes of one enumeration, from the schema's names. */
static void
s_select(soffa_web_buf_t *b, const char *form, const char *field, const char *label, const char *const *codes,
         const char *selected)
{
    soffa_web_buf_printf(b, "<p><label for=\"%s-%s\">%s</label><select id=\"%s-%s\" name=\"%s\">", form, field, label, form,
                         field, field);
    for (size_t i = 0; codes[i]; i++)
        soffa_web_buf_printf(b, "<option value=\"%s\"%s>%s</option>", codes[i],
                             selected && !strcmp(selected, codes[i]) ? " selected" : "", soffa_web_code(field, codes[i]));
    soffa_web_buf_put(b, "</select></p>");
}

static void
s_checks(soffa_web_buf_t *b, const char *form, const char *field, const char *legend, const char *const *codes,
         const char *checked)
{
    soffa_web_buf_printf(b, "<fieldset><legend>%s</legend>", legend);
    for (size_t i = 0; codes[i]; i++) {
        char want[80];
        snprintf(want, sizeof want, ",%s,", codes[i]);
        char have[300];
        snprintf(have, sizeof have, ",%s,", checked ? checked : "");
        soffa_web_buf_printf(b, "<p class=\"val\"><input type=\"checkbox\" id=\"%s-%s-%zu\" name=\"%s\" value=\"%s\"%s>"
                                "<label for=\"%s-%s-%zu\">%s</label></p>",
                             form, field, i, field, codes[i], strstr(have, want) ? " checked" : "", form, field, i,
                             soffa_web_code(field, codes[i]));
    }
    soffa_web_buf_put(b, "</fieldset>");
}

static void
s_form_open(s_rq_t *q, const char *id, const char *heading, const char *action, const char *re, const char *what)
{
    soffa_web_buf_printf(q->b, "<section class=\"atgard\" aria-labelledby=\"%s-rubrik\"><h3 id=\"%s-rubrik\">%s</h3>"
                               "<form id=\"%s\" method=\"post\" action=\"%s\">",
                         id, id, heading, id, action);
    s_csrf_field(q);
    if (re)
        soffa_web_buf_printf(q->b, "<input type=\"hidden\" name=\"re\" value=\"%s\">", re);
    soffa_web_buf_printf(q->b, "<input type=\"hidden\" name=\"gor\" value=\"%s\">", what);
}

static void
s_form_close(s_rq_t *q, const char *button)
{
    soffa_web_buf_printf(q->b, "<p><button type=\"submit\">%s</button></p></form></section>\n", button);
}

static const char *const s_ack_results[] = {"REGISTERED", "RECEIVED", "OUTSIDE_TARGET_GROUP", "NOT_HEMKOMMUN_REROUTED", NULL};
static const char *const s_reg_reasons[] = {"DROPOUT_NATIONAL", "STUDIEBEVIS", "NEVER_STARTED", "ARRIVED_AFTER_COMPULSORY", "OTHER", NULL};
static const char *const s_channels[] = {"PHONE", "SMS", "LETTER", "EMAIL", "HOME_VISIT", "MEETING", "VIA_SCHOOL", "DIGITAL", NULL};
static const char *const s_contact_outcomes[] = {"REACHED", "NO_ANSWER", "MESSAGE_LEFT", "WRONG_DETAILS", "DECLINED_CONTACT", NULL};
static const char *const s_recipients[] = {"ARBETSFORMEDLINGEN", "SOCIAL_SERVICES", NULL};
static const char *const s_purposes[] = {"REFERRAL", "STATUS_FEEDBACK", NULL};
static const char *const s_grants[] = {"YOUTH", "GUARDIAN", "GOD_MAN", NULL};
static const char *const s_categories[] = {"IDENTITY", "OCCUPATION", "MEASURES", "CONTACT", "SUMMARY_TEXT", NULL};
static const char *const s_consent_forms[] = {"WRITTEN", "DIGITAL_SIGNED", "ORAL_DOCUMENTED", NULL};
static const char *const s_af_purposes[] = {"AF_YOUTH_PROGRAMME", "AF_JOBSEEKER_REGISTRATION", "AF_PRAKTIK", NULL};
static const char *const s_soc_purposes[] = {"SOC_SUPPORT_CONTACT", "SOC_FAMILY_SUPPORT", "SOC_OTHER", NULL};
static const char *const s_close_reasons[] = {"STARTED_NATIONAL_PROGRAMME", "STARTED_EQUIVALENT",
                                              "STARTED_INTRODUCTION_PROGRAMME", "COMPLETED", "TURNED_20",
                                              "MOVED_OUT", "EMIGRATED", "DECEASED", "OTHER", NULL};
static const char *const s_statuses[] = {"RECEIVED", "ACCEPTED", "DECLINED_BY_AGENCY", "CONTACT_ESTABLISHED", "YOUTH_DECLINED",
                                         "IN_PROGRESS", "COMPLETED", "DISCONTINUED", NULL};
static const char *const s_feedbacks[] = {"INVESTIGATION_OPENED", "NOT_OPENED", "ALREADY_ONGOING", NULL};

static void
s_consent_select(s_rq_t *q, const char *form, s_youth_t *y, const char *kind)
{
    soffa_web_buf_printf(q->b, "<p><label for=\"%s-samtycke\">%s</label><select id=\"%s-samtycke\" name=\"consent\">", form,
                         T("form.samtycke_val"), form);
    size_t i;
    json_t *c;
    json_array_foreach(y->consents, i, c) {
        if (!json_is_true(json_object_get(c, kind)))
            continue;
        soffa_web_buf_printf(q->b, "<option value=\"%s\">", s_jstr(c, "id"));
        soffa_web_buf_esc(q->b, s_jstr(c, "text"));
        soffa_web_buf_put(q->b, "</option>");
    }
    soffa_web_buf_put(q->b, "</select></p>");
}

static void
s_actions(s_rq_t *q, s_site_t *st, json_t *rec, const char *where, const char *mid)
{
    soffa_web_buf_t *b = q->b;
    json_t *msg = !strcmp(where, "inbox") ? json_object_get(rec, "message") : json_object_get(rec, "message");
    const char *type;
    json_t *pl = s_payload(msg, &type);
    const char *subject = s_jstr(json_object_get(msg, "subject"), "id");
    soffa_web_buf_printf(b, "<h2>%s</h2>", T("atgarder"));
    if (!strcmp(q->role, "kaa") && strcmp(where, "inbox") != 0) {
        /* A message this site sent: the forms answer the newest delivered
         * message about the same youth (an answer copies its thread). */
        const char *latest = NULL;
        size_t i;
        json_t *r;
        json_array_foreach(st->inbox, i, r) {
            json_t *m = json_object_get(r, "message");
            if (!strcmp(s_jstr(json_object_get(m, "subject"), "id"), subject))
                latest = s_jstr(m, "message_id");
        }
        if (!latest) {
            soffa_web_buf_printf(b, "<p>%s</p>", T("inga_atgarder"));
            return;
        }
        mid = latest;
        where = "thread";
    }
    if (!strcmp(q->role, "kaa")) {
        s_youth_t y;
        s_youth_state(st, subject, &y);
        if (!strcmp(where, "inbox") && s_is_signal(type) && !json_object_get(st->my_acks, mid)) {
            s_form_open(q, "kvittera", T("form.kvittera"), "/atgard", mid, "kvittera");
            s_select(b, "kvittera", "result", T("form.resultat"), s_ack_results, "REGISTERED");
            s_form_close(q, T("knapp.kvittera"));
        }
        if (!y.case_id[0]) {
            s_form_open(q, "oppna", T("form.oppna"), "/atgard", mid, "oppna");
            s_select(b, "oppna", "registration_reason", T("form.skal"), s_reg_reasons, NULL);
            s_form_close(q, T("knapp.oppna"));
        } else {
            s_form_open(q, "kontakt", T("form.kontakt"), "/atgard", mid, "kontakt");
            soffa_web_buf_printf(b, "<input type=\"hidden\" name=\"case_id\" value=\"%s\">", y.case_id);
            soffa_web_buf_printf(b, "<p><label for=\"kontakt-nr\">%s</label><input id=\"kontakt-nr\" name=\"attempt_no\" "
                                    "type=\"number\" min=\"1\" max=\"999\" value=\"%d\" required></p>",
                                 T("form.forsok_nr"), y.attempts + 1);
            s_select(b, "kontakt", "channel", T("form.kanal"), s_channels, NULL);
            s_select(b, "kontakt", "outcome", T("form.utfall"), s_contact_outcomes, NULL);
            s_form_close(q, T("knapp.kontakt"));
        }
        /* Consent: the youth's waiver of secrecy towards the named recipients. */
        char from[11], to[11];
        soffa_date_t d = soffa_date_today();
        soffa_date_format(d, from);
        int64_t six = soffa_date_local_start_us(d) + 182LL * 86400000000LL;
        soffa_date_format(soffa_date_local(six), to);
        soffa_date_t birth;
        int age = soffa_id_birth_date(subject, &birth) == SOFFA_OK ? soffa_date_age(birth, d) : 18;
        s_form_open(q, "samtycke", T("form.samtycke"), "/atgard", mid, "samtycke");
        /* Who may consent follows the young person's age (README, Routing and consent). */
        s_checks(b, "samtycke", "granted_by", T("form.lamnat_av"), s_grants, "YOUTH");
        s_checks(b, "samtycke", "recipients", T("form.mottagare"), s_recipients, "ARBETSFORMEDLINGEN");
        s_checks(b, "samtycke", "purposes", T("form.andamal"), s_purposes, "REFERRAL,STATUS_FEEDBACK");
        s_checks(b, "samtycke", "data_categories", T("form.uppgifter"), s_categories, "IDENTITY,OCCUPATION");
        s_select(b, "samtycke", "form", T("form.form"), s_consent_forms, "WRITTEN");
        soffa_web_buf_printf(b, "<p><label for=\"samtycke-fran\">%s</label><input id=\"samtycke-fran\" name=\"valid_from\" "
                                "type=\"date\" value=\"%s\" required></p><p><label for=\"samtycke-till\">%s</label>"
                                "<input id=\"samtycke-till\" name=\"valid_to\" type=\"date\" value=\"%s\" required></p>"
                                "<p><label for=\"samtycke-alder\">%s</label><input id=\"samtycke-alder\" name=\"youth_age_at_grant\" "
                                "type=\"number\" min=\"0\" max=\"25\" value=\"%d\" required></p>"
                                "<p class=\"val\"><input type=\"checkbox\" id=\"samtycke-mognad\" name=\"maturity_assessed\" value=\"true\" checked>"
                                "<label for=\"samtycke-mognad\">%s</label></p>",
                             T("form.giltigt_fran"), from, T("form.giltigt_till"), to, T("form.alder"), age, T("form.mognad"));
        s_form_close(q, T("knapp.samtycke"));
        bool any_af = false, any_soc = false;
        size_t i;
        json_t *c;
        json_array_foreach(y.consents, i, c) {
            any_af |= json_is_true(json_object_get(c, "af"));
            any_soc |= json_is_true(json_object_get(c, "soc"));
        }
        s_form_open(q, "remiss-af", T("form.remiss_af"), "/atgard", mid, "remiss_af");
        if (any_af)
            s_consent_select(q, "remiss-af", &y, "af");
        else
            soffa_web_buf_printf(b, "<p class=\"tips\">%s</p>", T("form.inget_samtycke"));
        s_select(b, "remiss-af", "purpose", T("form.syfte"), s_af_purposes, NULL);
        soffa_web_buf_printf(b, "<p><label for=\"remiss-af-text\">%s</label><textarea id=\"remiss-af-text\" name=\"summary\" "
                                "maxlength=\"1000\" rows=\"3\" aria-describedby=\"remiss-af-hjalp\"></textarea>"
                                "<span id=\"remiss-af-hjalp\" class=\"tips\">%s</span></p>",
                             T("form.sammanfattning"), T("form.sammanfattning_hjalp"));
        s_form_close(q, T("knapp.remiss"));
        s_form_open(q, "remiss-soc", T("form.remiss_soc"), "/atgard", mid, "remiss_soc");
        if (any_soc)
            s_consent_select(q, "remiss-soc", &y, "soc");
        else
            soffa_web_buf_printf(b, "<p class=\"tips\">%s</p>", T("form.inget_samtycke"));
        s_select(b, "remiss-soc", "purpose", T("form.syfte"), s_soc_purposes, NULL);
        s_form_close(q, T("knapp.remiss"));
        if (y.case_id[0]) {
            s_form_open(q, "avsluta", T("form.avsluta"), "/atgard", mid, "avsluta");
            soffa_web_buf_printf(b, "<input type=\"hidden\" name=\"case_id\" value=\"%s\">", y.case_id);
            s_select(b, "avsluta", "reason", T("form.skal"), s_close_reasons, NULL);
            s_form_close(q, T("knapp.avsluta"));
        }
        json_decref(y.consents);
    } else if ((!strcmp(q->role, "af") || !strcmp(q->role, "social")) && !strcmp(where, "inbox")
               && !strcmp(type, "referral_sent")) {
        s_form_open(q, "svara", T("form.svara"), "/atgard", mid, "status");
        s_select(b, "svara", "status", T("form.status"), s_statuses,
                 json_object_get(st->my_answers, s_jstr(pl, "referral_id")) ? "ACCEPTED" : "RECEIVED");
        s_form_close(q, T("knapp.svara"));
    } else if (!strcmp(q->role, "social") && !strcmp(where, "inbox") && !strcmp(type, "concern_report_filed")) {
        s_form_open(q, "aterkoppla", T("form.aterkoppla"), "/atgard", mid, "aterkoppling");
        s_select(b, "aterkoppla", "feedback", T("form.aterkoppling"), s_feedbacks, NULL);
        s_form_close(q, T("knapp.aterkoppla"));
    } else {
        soffa_web_buf_printf(b, "<p>%s</p>", T("inga_atgarder"));
    }
}

static void
s_page_message(s_rq_t *q, const char *id)
{
    uint8_t mid[16];
    if (!soffa_uuid_parse(id, mid)) {
        s_error_page(q->resp, 404, "fel.finns_inte");
        return;
    }
    json_t *shown = q->who ? s_call(q, json_pack("{s:s, s:s}", "cmd", "show", "id", id), S_CALL_MS) : NULL;
    if (!s_ok(shown)) {
        json_decref(shown);
        s_error_page(q->resp, shown ? 404 : 503, shown ? "fel.finns_inte" : "agent.svarar_inte");
        return;
    }
    s_site_t st;
    if (!s_site_load(q, &st, false)) {
        json_decref(shown);
        s_error_page(q->resp, 503, "agent.svarar_inte");
        return;
    }
    const char *where = s_jstr(shown, "where");
    bool in = !strcmp(where, "inbox");
    json_t *rec = json_object_get(shown, in ? "record" : "sent");
    json_t *msg = json_object_get(rec, "message");
    const char *type;
    json_t *pl = s_payload(msg, &type);
    json_t *subj = json_object_get(msg, "subject");
    const char *subject = s_jstr(subj, "id");
    json_t *subjects = json_array();
    s_add_subject(subjects, subject);
    if (!s_record(q, "message", id, subjects))
        goto out;
    s_begin(q, soffa_web_type_name(type), "");
    soffa_web_buf_t *b = q->b;
    char when[32], pnr[20], kom[80];
    s_when(in ? json_integer_value(json_object_get(rec, "received_at_us")) : json_integer_value(json_object_get(msg, "sent_at_us")),
           when);
    s_pnr_text(subject, pnr);
    s_kommun_text(s_jstr(subj, "hemkommun"), kom, sizeof kom);
    soffa_web_buf_printf(b, "<dl class=\"fakta\"><dt>%s</dt><dd>%s</dd>", T(in ? "kol.mottaget" : "kol.skickat"), when);
    if (in) {
        soffa_web_buf_printf(b, "<dt>%s</dt><dd>", T("kol.fran"));
        s_sender_text(b, json_object_get(rec, "sender"));
        soffa_web_buf_put(b, "</dd>");
    } else {
        soffa_web_buf_printf(b, "<dt>%s</dt><dd>", T("kol.utfall"));
        const char *o = s_jstr(rec, "outcome");
        soffa_web_buf_put(b, T(!strcmp(o, "accepted") ? "utfall.mottaget" : !strcmp(o, "refused") ? "utfall.avvisat" : "utfall.vantar"));
        if (!strcmp(o, "refused")) {
            soffa_web_buf_put(b, ": ");
            soffa_web_buf_esc(b, soffa_web_err_text(s_jstr(rec, "code")));
        }
        soffa_web_buf_put(b, "</dd>");
    }
    soffa_web_buf_printf(b, "<dt>%s</dt><dd><span class=\"pnr\">", T("kol.ungdom"));
    soffa_web_buf_esc(b, pnr);
    soffa_web_buf_printf(b, "</span></dd><dt>%s</dt><dd>", T("hemkommun"));
    soffa_web_buf_esc(b, kom);
    if (json_is_true(json_object_get(subj, "protected_identity")))
        soffa_web_buf_printf(b, "</dd><dt>%s</dt><dd>%s", T("skyddad"), T("skyddad.text"));
    soffa_web_buf_printf(b, "</dd><dt>%s</dt><dd>", T("rattslig_grund"));
    soffa_web_buf_esc(b, soffa_web_code("legal_basis", s_jstr(msg, "legal_basis")));
    soffa_web_buf_put(b, "</dd>");
    s_fields(b, pl);
    soffa_web_buf_put(b, "</dl>\n");
    /* The deadline, if one runs. */
    if (in) {
        const char *needs = s_needs(q, rec);
        if (needs && !s_handled(&st, rec, needs)) {
            char due[32];
            int64_t due_us = s_due_us(&st, rec, needs);
            s_when(due_us, due);
            bool late = soffa_now_us() > due_us;
            soffa_web_buf_printf(b, "<p class=\"frist%s\"><strong>%s</strong> %s %s</p>", late ? " sen" : "",
                                 T(late ? "frist.forsenad" : "frist.rubrik"),
                                 T(!strcmp(needs, "kvittens") ? "frist.kvittera" : "frist.svara"), due);
        }
    }
    /* The thread: everything this site holds about the young person. */
    size_t cap = json_array_size(st.inbox) + json_array_size(st.sent), n = 0;
    s_step_t *steps = calloc(cap ? cap : 1, sizeof *steps);
    size_t i;
    json_t *r;
    json_array_foreach(st.inbox, i, r) {
        json_t *m = json_object_get(r, "message");
        if (steps && !strcmp(s_jstr(json_object_get(m, "subject"), "id"), subject))
            steps[n++] = (s_step_t) {json_integer_value(json_object_get(r, "received_at_us")), m, "in",
                                     json_object_get(r, "sender"), NULL, NULL};
    }
    json_array_foreach(st.sent, i, r) {
        json_t *m = json_object_get(r, "message");
        if (steps && !strcmp(s_jstr(json_object_get(m, "subject"), "id"), subject))
            steps[n++] = (s_step_t) {json_integer_value(json_object_get(m, "sent_at_us")), m, "ut", NULL,
                                     s_jstr(r, "mailbox"), s_jstr(r, "outcome")};
    }
    if (steps)
        qsort(steps, n, sizeof *steps, s_step_cmp);
    soffa_web_buf_printf(b, "<h2>%s</h2><ol class=\"trad\">", T("trad.rubrik"));
    for (size_t k = 0; k < n; k++) {
        const char *t;
        json_t *p = s_payload(steps[k].msg, &t);
        const char *sid = s_jstr(steps[k].msg, "message_id");
        char at[32];
        s_when(steps[k].at, at);
        bool cur = !strcmp(sid, id);
        soffa_web_buf_printf(b, "<li%s><span class=\"tid\">%s</span> <span class=\"riktning\">%s</span> ",
                             cur ? " aria-current=\"step\" class=\"aktuell\"" : "", at,
                             T(!strcmp(steps[k].dir, "in") ? "trad.in" : "trad.ut"));
        if (!cur)
            soffa_web_buf_printf(b, "<a href=\"/meddelande/%s\">", sid);
        s_summary(b, t, p);
        if (!cur)
            soffa_web_buf_put(b, "</a>");
        if (steps[k].sender) {
            soffa_web_buf_put(b, " – ");
            s_sender_text(b, steps[k].sender);
        } else if (steps[k].outcome && !strcmp(steps[k].outcome, "refused")) {
            soffa_web_buf_printf(b, " – <span class=\"markor forsenad\">%s</span>", T("utfall.avvisat"));
        }
        soffa_web_buf_put(b, "</li>");
    }
    soffa_web_buf_put(b, "</ol>\n");
    free(steps);
    s_actions(q, &st, rec, where, id);
    s_end(q);
out:
    json_decref(subjects);
    json_decref(shown);
    s_site_fini(&st);
}

/* ---- Sending ------------------------------------------------------------------------ */

static const char *
s_basis(const char *type)
{
    if (!strcmp(type, "enrolment_changed"))
        return "SL_15_15_ENROLMENT";
    if (!strcmp(type, "absence_reported"))
        return "SL_15_15_ABSENCE";
    if (!strcmp(type, "concern_report_filed"))
        return "SOL_REPORT_OF_CONCERN";
    if (!strcmp(type, "concern_report_feedback"))
        return "SOL_REPORTER_FEEDBACK";
    if (!strcmp(type, "at_risk_notice") || !strncmp(type, "consent_", 8) || !strncmp(type, "referral_", 9))
        return "CONSENT_OSL_12_2";
    return "SL_29_9_INTERNAL";
}

/* Sets one field with the command line's coercion; false with a Swedish
 * note in the session when the value does not fit the schema. */
static bool
s_set(s_rq_t *q, json_t *obj, const char *part, const char *field, const char *value)
{
    char why[300];
    if (!value || !*value)
        return true;
    if (soffa_msg_json_set(obj, part, field, value, why, sizeof why) == SOFFA_OK)
        return true;
    char note[512];
    snprintf(note, sizeof note, "%s %s (%s)", T("fel.falt"), soffa_web_field_label(field), why);
    soffa_web_auth_flash(q->self->auth, q->token, note, true);
    return false;
}

/* Hands the message to the agent and leaves a note for the next page. */
static void
s_send(s_rq_t *q, json_t *m, const char *re)
{
    const char *type = "";
    s_payload(m, &type);
    json_t *req = json_pack("{s:s, s:O, s:i}", "cmd", "send", "message", m, "wait_ms", 3000);
    if (re)
        json_object_set_new(req, "re", json_string(re));
    json_t *a = s_call(q, req, 9000);
    char note[700];
    bool err = true;
    if (!a) {
        snprintf(note, sizeof note, "%s", T("agent.svarar_inte"));
    } else if (!s_ok(a)) {
        snprintf(note, sizeof note, "%s %s (%s)", T("skicka.avvisat"), soffa_web_err_text(s_jstr(a, "code")),
                 s_jstr(a, "error"));
    } else if (!strcmp(s_jstr(a, "state"), "accepted")) {
        snprintf(note, sizeof note, "%s: %s", soffa_web_type_name(type), T("skicka.mottaget"));
        err = false;
    } else {
        snprintf(note, sizeof note, "%s: %s", soffa_web_type_name(type), T("skicka.koat"));
        err = false;
    }
    soffa_log(err ? SOFFA_LOG_WARN : SOFFA_LOG_INFO, "%s sent %s: %s", q->s.actor, type[0] ? type : "?",
              a ? (s_ok(a) ? s_jstr(a, "state") : s_jstr(a, "code")) : "no answer");
    soffa_web_auth_flash(q->self->auth, q->token, note, err);
    json_decref(a);
}

static json_t *
s_new_message(s_rq_t *q, const char *type, json_t **pl)
{
    json_t *m = json_pack("{s:s, s:{s:s}}", "legal_basis", s_basis(type), "sender", "actor_ref", q->s.actor);
    *pl = json_object();
    json_object_set(m, type, *pl);
    return m;
}

static void
s_post_action(s_rq_t *q, const soffa_web_form_t *f)
{
    const char *re = soffa_web_form_get(f, "re"), *what = soffa_web_form_get(f, "gor");
    uint8_t mid[16];
    if (!re || !soffa_uuid_parse(re, mid) || !what) {
        s_error_page(q->resp, 400, "fel.formular");
        return;
    }
    char back[128];
    snprintf(back, sizeof back, "/meddelande/%s", re);
    json_t *pl = NULL, *m = NULL;
    bool ok = true;
    bool kaa = !strcmp(q->role, "kaa"), answerer = !strcmp(q->role, "af") || !strcmp(q->role, "social");
    char list[300];
    if (kaa && !strcmp(what, "kvittera")) {
        m = s_new_message(q, "signal_acknowledged", &pl);
        ok = s_set(q, pl, "signal_acknowledged", "result", soffa_web_form_get(f, "result"));
    } else if (kaa && !strcmp(what, "oppna")) {
        m = s_new_message(q, "kaa_case_opened", &pl);
        ok = s_set(q, pl, "kaa_case_opened", "case_id", "new")
             && s_set(q, pl, "kaa_case_opened", "registration_reason", soffa_web_form_get(f, "registration_reason"));
    } else if (kaa && !strcmp(what, "kontakt")) {
        m = s_new_message(q, "contact_attempted", &pl);
        ok = s_set(q, pl, "contact_attempted", "case_id", soffa_web_form_get(f, "case_id"))
             && s_set(q, pl, "contact_attempted", "attempt_no", soffa_web_form_get(f, "attempt_no"))
             && s_set(q, pl, "contact_attempted", "channel", soffa_web_form_get(f, "channel"))
             && s_set(q, pl, "contact_attempted", "outcome", soffa_web_form_get(f, "outcome"));
    } else if (kaa && !strcmp(what, "samtycke")) {
        m = s_new_message(q, "consent_recorded", &pl);
        soffa_web_form_join(f, "granted_by", list, sizeof list);
        ok = s_set(q, pl, "consent_recorded", "consent_id", "new")
             && s_set(q, pl, "consent_recorded", "granted_by", list);
        soffa_web_form_join(f, "recipients", list, sizeof list);
        ok = ok && s_set(q, pl, "consent_recorded", "scope.recipients", list);
        soffa_web_form_join(f, "purposes", list, sizeof list);
        ok = ok && s_set(q, pl, "consent_recorded", "scope.purposes", list);
        soffa_web_form_join(f, "data_categories", list, sizeof list);
        ok = ok && s_set(q, pl, "consent_recorded", "scope.data_categories", list)
             && s_set(q, pl, "consent_recorded", "form", soffa_web_form_get(f, "form"))
             && s_set(q, pl, "consent_recorded", "valid_from", soffa_web_form_get(f, "valid_from"))
             && s_set(q, pl, "consent_recorded", "valid_to", soffa_web_form_get(f, "valid_to"))
             && s_set(q, pl, "consent_recorded", "youth_age_at_grant", soffa_web_form_get(f, "youth_age_at_grant"))
             && s_set(q, pl, "consent_recorded", "maturity_assessed",
                      soffa_web_form_get(f, "maturity_assessed") ? "true" : "false")
             && s_set(q, pl, "consent_recorded", "recorded_by", q->s.actor);
        if (ok)
            json_object_set(m, "consent_id", json_object_get(pl, "consent_id"));
    } else if (kaa && (!strcmp(what, "remiss_af") || !strcmp(what, "remiss_soc"))) {
        bool af = !strcmp(what, "remiss_af");
        m = s_new_message(q, "referral_sent", &pl);
        const char *consent = soffa_web_form_get(f, "consent");
        if (!consent || !*consent) {
            soffa_web_auth_flash(q->self->auth, q->token, T("form.inget_samtycke"), true);
            ok = false;
        }
        ok = ok && s_set(q, pl, "referral_sent", "referral_id", "new")
             && s_set(q, pl, "referral_sent", "target_kind", af ? "ARBETSFORMEDLINGEN" : "SOCIAL_SERVICES")
             && s_set(q, pl, "referral_sent", "purpose", soffa_web_form_get(f, "purpose"))
             && s_set(q, pl, "referral_sent", "summary", soffa_web_form_get(f, "summary"))
             && s_set(q, m, "message", "consent_id", consent);
    } else if (kaa && !strcmp(what, "avsluta")) {
        m = s_new_message(q, "kaa_case_closed", &pl);
        ok = s_set(q, pl, "kaa_case_closed", "case_id", soffa_web_form_get(f, "case_id"))
             && s_set(q, pl, "kaa_case_closed", "reason", soffa_web_form_get(f, "reason"));
    } else if (answerer && !strcmp(what, "status")) {
        m = s_new_message(q, "referral_status_changed", &pl);
        ok = s_set(q, pl, "referral_status_changed", "status", soffa_web_form_get(f, "status"));
    } else if (!strcmp(q->role, "social") && !strcmp(what, "aterkoppling")) {
        m = s_new_message(q, "concern_report_feedback", &pl);
        ok = s_set(q, pl, "concern_report_feedback", "feedback", soffa_web_form_get(f, "feedback"));
    } else {
        s_error_page(q->resp, 403, "fel.roll");
        return;
    }
    if (ok)
        s_send(q, m, re);
    json_decref(pl);
    json_decref(m);
    s_redirect(q, back);
}

/* ---- Ny signal (schools) -------------------------------------------------------------- */

static const char *const s_bands[] = {"SIGNIFICANT", "EXTENSIVE", "TOTAL", NULL};
static const char *const s_events[] = {"LEFT", "STARTED", NULL};
static const char *const s_forms[] = {"GY", "ANP_GY", NULL};
static const char *const s_leave[] = {"DISCONTINUED", "TRANSFER", "MOVED", "OTHER", "UNKNOWN", NULL};
static const char *const s_risks[] = {"EXAMEN_AT_RISK", "REDUCED_PLAN", "LEFT_WITH_STUDIEBEVIS", "OTHER", NULL};

static void
s_youth_inputs(s_rq_t *q, const char *form)
{
    soffa_web_buf_printf(q->b,
                         "<p><label for=\"%s-pnr\">%s</label><input id=\"%s-pnr\" name=\"pupil\" autocomplete=\"off\" "
                         "inputmode=\"numeric\" required aria-describedby=\"%s-pnr-hjalp\"><span id=\"%s-pnr-hjalp\" "
                         "class=\"tips\">%s</span></p><p><label for=\"%s-kommun\">%s</label><input id=\"%s-kommun\" "
                         "name=\"hemkommun\" inputmode=\"numeric\" pattern=\"[0-9]{4}\" required aria-describedby=\"%s-kommun-hjalp\">"
                         "<span id=\"%s-kommun-hjalp\" class=\"tips\">%s</span></p><p><label for=\"%s-enhet\">%s</label>"
                         "<input id=\"%s-enhet\" name=\"school_unit\" inputmode=\"numeric\" pattern=\"[0-9]{8}\" required></p>",
                         form, T("form.pnr"), form, form, form, T("form.pnr_hjalp"), form, T("hemkommun"), form, form, form,
                         T("form.kommun_hjalp"), form, T("form.skolenhet"), form);
}

static void
s_page_new(s_rq_t *q)
{
    if (strcmp(q->role, "school") != 0) {
        s_error_page(q->resp, 403, "fel.roll");
        return;
    }
    s_begin(q, T("nav.ny"), "/ny");
    soffa_web_buf_t *b = q->b;
    char today[11];
    soffa_date_format(soffa_date_today(), today);
    soffa_web_buf_printf(b, "<p>%s</p>", T("ny.intro"));
    s_form_open(q, "franvaro", T("ny.franvaro"), "/ny", NULL, "absence_reported");
    s_youth_inputs(q, "franvaro");
    soffa_web_buf_printf(b, "<p><label for=\"franvaro-fran\">%s</label><input id=\"franvaro-fran\" name=\"period_from\" type=\"date\" required></p>"
                            "<p><label for=\"franvaro-till\">%s</label><input id=\"franvaro-till\" name=\"period_to\" type=\"date\" value=\"%s\" required></p>",
                         soffa_web_field_label("period_from"), soffa_web_field_label("period_to"), today);
    s_select(b, "franvaro", "unexcused_band", soffa_web_field_label("unexcused_band"), s_bands, NULL);
    soffa_web_buf_printf(b, "<p class=\"val\"><input type=\"checkbox\" id=\"franvaro-utredning\" name=\"investigation_started\" value=\"true\">"
                            "<label for=\"franvaro-utredning\">%s</label></p>",
                         soffa_web_field_label("investigation_started"));
    s_form_close(q, T("knapp.skicka"));
    s_form_open(q, "inskrivning", T("ny.inskrivning"), "/ny", NULL, "enrolment_changed");
    s_youth_inputs(q, "inskrivning");
    s_select(b, "inskrivning", "event", soffa_web_field_label("event"), s_events, NULL);
    soffa_web_buf_printf(b, "<p><label for=\"inskrivning-datum\">%s</label><input id=\"inskrivning-datum\" name=\"effective_date\" "
                            "type=\"date\" value=\"%s\" required></p>",
                         soffa_web_field_label("effective_date"), today);
    s_select(b, "inskrivning", "school_form", soffa_web_field_label("school_form"), s_forms, NULL);
    s_select(b, "inskrivning", "leave_reason", soffa_web_field_label("leave_reason"), s_leave, NULL);
    s_form_close(q, T("knapp.skicka"));
    s_form_open(q, "risk", T("ny.risk"), "/ny", NULL, "at_risk_notice");
    s_youth_inputs(q, "risk");
    soffa_web_buf_printf(b, "<p><label for=\"risk-samtycke\">%s</label><input id=\"risk-samtycke\" name=\"consent\" required "
                            "aria-describedby=\"risk-samtycke-hjalp\"><span id=\"risk-samtycke-hjalp\" class=\"tips\">%s</span></p>",
                         T("form.samtycke_id"), T("form.samtycke_id_hjalp"));
    s_select(b, "risk", "risk_code", soffa_web_field_label("risk_code"), s_risks, NULL);
    soffa_web_buf_printf(b, "<p><label for=\"risk-not\">%s</label><textarea id=\"risk-not\" name=\"note\" maxlength=\"300\" rows=\"2\" "
                            "aria-describedby=\"risk-not-hjalp\"></textarea><span id=\"risk-not-hjalp\" class=\"tips\">%s</span></p>",
                         soffa_web_field_label("note"), T("form.not_hjalp"));
    s_form_close(q, T("knapp.skicka"));
    s_end(q);
}

static void
s_post_new(s_rq_t *q, const soffa_web_form_t *f)
{
    if (strcmp(q->role, "school") != 0) {
        s_error_page(q->resp, 403, "fel.roll");
        return;
    }
    const char *type = soffa_web_form_get(f, "gor");
    if (!type || (strcmp(type, "absence_reported") && strcmp(type, "enrolment_changed") && strcmp(type, "at_risk_notice"))) {
        s_error_page(q->resp, 400, "fel.formular");
        return;
    }
    s_redirect(q, "/ny");
    char canon[13];
    soffa_id_kind_t kind;
    const char *pupil = soffa_web_form_get(f, "pupil");
    soffa_err_t rc = pupil ? soffa_id_parse(pupil, NULL, canon, &kind) : SOFFA_ERR_ID_FORMAT;
    if (rc != SOFFA_OK) {
        /* The number itself is not repeated. */
        soffa_web_auth_flash(q->self->auth, q->token, soffa_web_err_text(soffa_errname(rc)), true);
        return;
    }
    const char *hem = soffa_web_form_get(f, "hemkommun");
    if (!hem || soffa_kommun_check(hem) != SOFFA_OK) {
        soffa_web_auth_flash(q->self->auth, q->token, T("fel.kommun"), true);
        return;
    }
    json_t *pl, *m = s_new_message(q, type, &pl);
    json_object_set_new(m, "subject", json_pack("{s:s, s:s, s:s}", "id", canon, "id_type", kind == SOFFA_ID_SAMNR ? "SAMNR" : "PNR",
                                                "hemkommun", hem));
    bool ok = s_set(q, pl, type, "school_unit", soffa_web_form_get(f, "school_unit"));
    if (!strcmp(type, "absence_reported"))
        ok = ok && s_set(q, pl, type, "period_from", soffa_web_form_get(f, "period_from"))
             && s_set(q, pl, type, "period_to", soffa_web_form_get(f, "period_to"))
             && s_set(q, pl, type, "unexcused_band", soffa_web_form_get(f, "unexcused_band"))
             && s_set(q, pl, type, "investigation_started", soffa_web_form_get(f, "investigation_started") ? "true" : "false");
    else if (!strcmp(type, "enrolment_changed"))
        ok = ok && s_set(q, pl, type, "event", soffa_web_form_get(f, "event"))
             && s_set(q, pl, type, "effective_date", soffa_web_form_get(f, "effective_date"))
             && s_set(q, pl, type, "school_form", soffa_web_form_get(f, "school_form"))
             && (strcmp(soffa_web_form_get(f, "event") ? soffa_web_form_get(f, "event") : "", "LEFT") != 0
                 || s_set(q, pl, type, "leave_reason", soffa_web_form_get(f, "leave_reason")));
    else
        ok = ok && s_set(q, pl, type, "risk_code", soffa_web_form_get(f, "risk_code"))
             && s_set(q, pl, type, "note", soffa_web_form_get(f, "note"))
             && s_set(q, m, "message", "consent_id", soffa_web_form_get(f, "consent"));
    if (ok) {
        s_send(q, m, NULL);
        s_redirect(q, "/skickat");
    }
    json_decref(pl);
    json_decref(m);
}

/* ---- Sök --------------------------------------------------------------------------------- */

static void
s_search_form(s_rq_t *q, const char *value)
{
    soffa_web_buf_printf(q->b, "<form class=\"sok\" method=\"post\" action=\"/sok\">");
    s_csrf_field(q);
    soffa_web_buf_printf(q->b, "<p><label for=\"sok-pnr\">%s</label><input id=\"sok-pnr\" name=\"pupil\" autocomplete=\"off\" "
                               "inputmode=\"numeric\" required aria-describedby=\"sok-hjalp\" value=\"",
                         T("form.pnr"));
    soffa_web_buf_esc(q->b, value);
    soffa_web_buf_printf(q->b, "\"><span id=\"sok-hjalp\" class=\"tips\">%s</span></p><p><button type=\"submit\">%s</button></p></form>",
                         T("sok.hjalp"), T("knapp.sok"));
}

static void
s_page_search(s_rq_t *q, const soffa_web_form_t *f)
{
    const char *pupil = f ? soffa_web_form_get(f, "pupil") : NULL;
    if (!pupil) {
        s_begin(q, T("nav.sok"), "/sok");
        s_search_form(q, "");
        s_end(q);
        return;
    }
    char canon[13];
    soffa_err_t rc = soffa_id_parse(pupil, NULL, canon, NULL);
    if (rc != SOFFA_OK) {
        s_begin(q, T("nav.sok"), "/sok");
        soffa_web_buf_printf(q->b, "<div class=\"notis fel\" role=\"alert\"><p>%s</p></div>",
                             soffa_web_err_text(soffa_errname(rc)));
        s_search_form(q, "");
        s_end(q);
        return;
    }
    s_site_t st;
    if (!q->who || !s_site_load(q, &st, false)) {
        s_error_page(q->resp, 503, "agent.svarar_inte");
        return;
    }
    json_t *subjects = json_array();
    s_add_subject(subjects, canon);
    if (!s_record(q, "search", NULL, subjects))
        goto out;
    s_begin(q, T("nav.sok"), "/sok");
    soffa_web_buf_t *b = q->b;
    s_search_form(q, pupil);
    char pnr[20];
    s_pnr_text(canon, pnr);
    soffa_web_buf_printf(b, "<h2>%s %s</h2><ul class=\"traffar\">", T("sok.resultat"), pnr);
    size_t hits = 0, i;
    json_t *r;
    json_array_foreach(st.inbox, i, r) {
        json_t *m = json_object_get(r, "message");
        if (strcmp(s_jstr(json_object_get(m, "subject"), "id"), canon) != 0)
            continue;
        const char *t;
        json_t *p = s_payload(m, &t);
        char at[32];
        s_when(json_integer_value(json_object_get(r, "received_at_us")), at);
        soffa_web_buf_printf(b, "<li>%s %s <a href=\"/meddelande/%s\">", at, T("trad.in"), s_jstr(m, "message_id"));
        s_summary(b, t, p);
        soffa_web_buf_put(b, "</a></li>");
        hits++;
    }
    json_array_foreach(st.sent, i, r) {
        json_t *m = json_object_get(r, "message");
        if (strcmp(s_jstr(json_object_get(m, "subject"), "id"), canon) != 0)
            continue;
        const char *t;
        json_t *p = s_payload(m, &t);
        char at[32];
        s_when(json_integer_value(json_object_get(m, "sent_at_us")), at);
        soffa_web_buf_printf(b, "<li>%s %s <a href=\"/meddelande/%s\">", at, T("trad.ut"), s_jstr(m, "message_id"));
        s_summary(b, t, p);
        soffa_web_buf_put(b, "</a></li>");
        hits++;
    }
    soffa_web_buf_put(b, "</ul>");
    if (!hits)
        soffa_web_buf_printf(b, "<p class=\"tom\">%s</p>", T("sok.inget"));
    soffa_web_buf_printf(b, "<p class=\"tips\">%s</p>", T("sok.loggas"));
    s_end(q);
out:
    json_decref(subjects);
    s_site_fini(&st);
}

/* ---- Min enhet (leads) ------------------------------------------------------------------- */

static void
s_page_unit(s_rq_t *q)
{
    if (q->s.role != SOFFA_USER_LEAD) {
        s_error_page(q->resp, 403, "fel.lead");
        return;
    }
    json_t *a = q->who ? s_call(q, json_pack("{s:s, s:i}", "cmd", "access_list", "limit", 300), S_CALL_MS) : NULL;
    if (!s_ok(a)) {
        json_decref(a);
        s_error_page(q->resp, 503, "agent.svarar_inte");
        return;
    }
    json_t *subjects = json_array();
    size_t i, j;
    json_t *e, *sj;
    json_array_foreach(json_object_get(a, "entries"), i, e)
        json_array_foreach(json_object_get(e, "subjects"), j, sj) if (json_string_value(sj)[0] != '#')
            s_add_subject(subjects, json_string_value(sj));
    if (!s_record(q, "access-log", NULL, subjects)) {
        json_decref(a);
        json_decref(subjects);
        return;
    }
    s_begin(q, T("nav.enhet"), "/min-enhet");
    soffa_web_buf_t *b = q->b;
    soffa_web_buf_printf(b, "<p>%s</p>", T("enhet.intro"));
    soffa_web_buf_printf(b, "<div class=\"rulla\" role=\"region\" aria-labelledby=\"enhet-rubrik\" tabindex=\"0\">"
                            "<table class=\"lista\"><caption id=\"enhet-rubrik\">%s</caption><thead><tr><th scope=\"col\">%s</th>"
                            "<th scope=\"col\">%s</th><th scope=\"col\">%s</th><th scope=\"col\">%s</th></tr></thead><tbody>",
                         T("enhet.tabell"), T("kol.nar"), T("kol.vem"), T("kol.vad"), T("kol.ungdomar"));
    json_array_foreach(json_object_get(a, "entries"), i, e) {
        char at[32], name[80];
        s_when(json_integer_value(json_object_get(e, "at_us")), at);
        const char *actor = s_jstr(e, "actor");
        if (!soffa_web_auth_actor_name(q->self->auth, actor, name, sizeof name))
            snprintf(name, sizeof name, "%s (%s)", T("enhet.borttagen"), actor);
        char what[48];
        snprintf(what, sizeof what, "vy.%s", s_jstr(e, "what"));
        soffa_web_buf_printf(b, "<tr><td>%s</td><td>", at);
        soffa_web_buf_esc(b, name);
        soffa_web_buf_printf(b, "</td><td>%s", T(what));
        const char *mid = s_jstr(e, "message_id");
        if (*mid)
            soffa_web_buf_printf(b, " (<a href=\"/meddelande/%s\">%s</a>)", mid, T("enhet.oppna"));
        soffa_web_buf_put(b, "</td><td>");
        size_t n = json_array_size(json_object_get(e, "subjects"));
        json_array_foreach(json_object_get(e, "subjects"), j, sj) {
            if (j == 5) {
                soffa_web_buf_printf(b, " %s %zu", T("enhet.och_fler"), n - 5);
                break;
            }
            char pnr[20];
            s_pnr_text(json_string_value(sj), pnr);
            soffa_web_buf_printf(b, "%s<span class=\"pnr\">", j ? ", " : "");
            soffa_web_buf_esc(b, pnr);
            soffa_web_buf_put(b, "</span>");
        }
        if (!n)
            soffa_web_buf_put(b, "–");
        soffa_web_buf_put(b, "</td></tr>\n");
    }
    soffa_web_buf_put(b, "</tbody></table></div>");
    s_end(q);
    json_decref(a);
    json_decref(subjects);
}

/* ---- Login ------------------------------------------------------------------------------- */

static void
s_page_login(soffa_web_pages_t *self, const soffa_web_req_t *req, soffa_web_resp_t *resp, const char *note_key,
             bool error, int status)
{
    /* The login form's CSRF token is a cookie of its own (double submit); a
     * second tab or a reload keeps the one the browser already has. */
    char pre[SOFFA_WEB_TOKEN_LEN + 1];
    const char *have = soffa_web_req_cookie(req, S_PRE_COOKIE);
    if (have && strlen(have) == SOFFA_WEB_TOKEN_LEN && strspn(have, "0123456789abcdef") == SOFFA_WEB_TOKEN_LEN)
        snprintf(pre, sizeof pre, "%s", have);
    else
        soffa_web_auth_random_hex(pre, 32);
    soffa_web_resp_cookie(resp, S_PRE_COOKIE, pre, -1);
    resp->status = status;
    soffa_web_buf_t *b = &resp->body;
    s_head(b, T("login.titel"));
    const char *expired = soffa_web_req_query(req, "utgangen");
    if (!note_key && expired)
        note_key = "login.utgangen", error = false;
    soffa_web_buf_printf(b, "<main id=\"innehall\" tabindex=\"-1\" class=\"login\"><h1>%s</h1>", T("login.titel"));
    if (self->cfg->site_name[0]) {
        soffa_web_buf_put(b, "<p class=\"plats-login\">");
        soffa_web_buf_esc(b, self->cfg->site_name);
        soffa_web_buf_put(b, "</p>");
    }
    if (note_key)
        soffa_web_buf_printf(b, "<div class=\"notis%s\" role=\"%s\"><p>%s</p></div>", error ? " fel" : "",
                             error ? "alert" : "status", T(note_key));
    soffa_web_buf_printf(b, "<form method=\"post\" action=\"/inloggning\"><input type=\"hidden\" name=\"csrf\" value=\"%s\">"
                            "<p><label for=\"namn\">%s</label><input id=\"namn\" name=\"namn\" autocomplete=\"username\" required "
                            "autocapitalize=\"none\" spellcheck=\"false\"></p><p><label for=\"losen\">%s</label>"
                            "<input id=\"losen\" name=\"losenord\" type=\"password\" autocomplete=\"current-password\" required></p>"
                            "<p><button type=\"submit\">%s</button></p></form><p class=\"tips\">%s</p></main></body></html>\n",
                         pre, T("login.namn"), T("login.losen"), T("login.knapp"), T("login.tips"));
}

static void
s_post_login(soffa_web_pages_t *self, const soffa_web_req_t *req, soffa_web_resp_t *resp)
{
    size_t len;
    const char *body = soffa_web_req_body(req, &len);
    soffa_web_form_t f;
    if (!soffa_web_form_parse(body, len, &f)) {
        s_error_page(resp, 400, "fel.formular");
        return;
    }
    const char *pre = soffa_web_req_cookie(req, S_PRE_COOKIE), *given = soffa_web_form_get(&f, "csrf");
    soffa_web_session_t fake;
    memset(&fake, 0, sizeof fake);
    snprintf(fake.csrf, sizeof fake.csrf, "%s", pre ? pre : "");
    if (!pre || !soffa_web_auth_csrf_ok(&fake, given)) {
        soffa_web_form_fini(&f);
        s_page_login(self, req, resp, "fel.csrf_login", true, 403);
        return;
    }
    char token[SOFFA_WEB_TOKEN_LEN + 1];
    int wait_s = 0;
    soffa_err_t rc = soffa_web_auth_login(self->auth, soffa_web_form_get(&f, "namn"), soffa_web_form_get(&f, "losenord"),
                                          soffa_web_req_local(req) ? NULL : soffa_web_req_peer(req), token, &wait_s);
    soffa_web_form_fini(&f);
    if (rc == SOFFA_OK) {
        soffa_web_resp_cookie(resp, S_COOKIE, token, -1);
        soffa_web_resp_cookie(resp, S_PRE_COOKIE, "", 0);
        resp->status = 303;
        snprintf(resp->location, sizeof resp->location, "/inkorg");
        memset(token, 0, sizeof token);
    } else if (rc == SOFFA_ERR_UNAVAILABLE) {
        s_page_login(self, req, resp, "login.vanta", true, 429);
        soffa_web_buf_t *b = &resp->body;
        /* "... försök igen om N sekunder" inside the notice. */
        char *at = b->p ? strstr(b->p, T("login.vanta")) : NULL;
        if (at) {
            char *tail = strdup(at + strlen(T("login.vanta")));
            b->len = (size_t) (at - b->p) + strlen(T("login.vanta"));
            b->p[b->len] = '\0';
            soffa_web_buf_printf(b, " %s %d %s", T("login.vanta_om"), wait_s, T(wait_s == 1 ? "sekund" : "sekunder"));
            soffa_web_buf_put(b, tail);
            free(tail);
        }
    } else {
        s_page_login(self, req, resp, "login.fel", true, 401);
    }
}

/* ---- The live stream ----------------------------------------------------------------------- */

typedef struct {
    soffa_web_pages_t *self;
    char token[SOFFA_WEB_TOKEN_LEN + 1];
    uint64_t gen;
    int state;   /* 0: greeting not sent yet */
} s_stream_t;

static ssize_t
s_stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void) pos;
    s_stream_t *st = cls;
    if (max < 64)
        return 0;
    if (st->state == 0) {
        st->state = 1;
        return snprintf(buf, max, "retry: 3000\n: ansluten\n\n");
    }
    if (soffa_web_agent_stopping(st->self->agent) || !soffa_web_auth_alive(st->self->auth, st->token))
        return SOFFA_WEB_STREAM_END;
    uint64_t g = soffa_web_agent_watch_wait(st->self->agent, st->gen, 15000);
    if (soffa_web_agent_stopping(st->self->agent) || !soffa_web_auth_alive(st->self->auth, st->token))
        return SOFFA_WEB_STREAM_END;
    if (g != st->gen) {
        st->gen = g;
        return snprintf(buf, max, "event: andring\ndata: %llu\n\n", (unsigned long long) g);
    }
    return snprintf(buf, max, ": ping\n\n");
}

static void
s_page_events(s_rq_t *q)
{
    s_stream_t *st = calloc(1, sizeof *st);
    if (!st) {
        s_error_page(q->resp, 503, "fel.titel");
        return;
    }
    st->self = q->self;
    snprintf(st->token, sizeof st->token, "%s", q->token);
    st->gen = soffa_web_agent_generation(q->self->agent);
    q->resp->ctype = "text/event-stream; charset=utf-8";
    q->resp->stream = s_stream_read;
    q->resp->stream_cls = st;
    q->resp->stream_free = free;
}

/* ---- Routing -------------------------------------------------------------------------------- */


static bool
s_cross_site(const soffa_web_req_t *req)
{
    const char *sfs = soffa_web_req_header(req, "Sec-Fetch-Site");
    return sfs && strcmp(sfs, "same-origin") != 0 && strcmp(sfs, "none") != 0;
}

void
soffa_web_pages_handle(void *ctx, const soffa_web_req_t *req, soffa_web_resp_t *resp)
{
    soffa_web_pages_t *self = ctx;
    const char *path = soffa_web_req_path(req), *method = soffa_web_req_method(req);
    bool post = !strcmp(method, "POST");
    if (!strcmp(path, "/app.css") || !strcmp(path, "/app.js")) {
        bool css = !strcmp(path, "/app.css");
        resp->ctype = css ? "text/css; charset=utf-8" : "text/javascript; charset=utf-8";
        resp->cacheable = true;
        soffa_web_buf_put(&resp->body, css ? soffa_web_app_css : soffa_web_app_js);
        return;
    }
    if (!strcmp(path, "/favicon.ico")) {
        resp->status = 404;   /* no icon: nothing but the two files above is served without a session */
        resp->ctype = "text/plain; charset=utf-8";
        return;
    }
    /* Single sign-on: the header counts only from this host. */
    const char *hname = self->cfg->trusted_header[0] ? self->cfg->trusted_header : NULL;
    const char *hval = hname ? soffa_web_req_header(req, hname) : NULL;
    if (hval && !soffa_web_req_local(req)) {
        soffa_warn("refused a request from %s carrying the single sign-on header %s: it is trusted only from this host",
                   soffa_web_req_peer(req), hname);
        s_error_page(resp, 403, "fel.sso_extern");
        return;
    }
    if (!strcmp(path, "/inloggning")) {
        if (post) {
            if (s_cross_site(req))
                s_error_page(resp, 403, "fel.csrf");
            else
                s_post_login(self, req, resp);
        } else {
            s_page_login(self, req, resp, NULL, false, 200);
        }
        return;
    }
    s_rq_t q;
    memset(&q, 0, sizeof q);
    q.self = self;
    q.req = req;
    q.resp = resp;
    q.b = &resp->body;
    q.role = "";
    const char *cookie = soffa_web_req_cookie(req, S_COOKIE);
    snprintf(q.token, sizeof q.token, "%s", cookie && strlen(cookie) == SOFFA_WEB_TOKEN_LEN ? cookie : "");
    bool expired = false;
    bool have = q.token[0] && soffa_web_auth_session(self->auth, q.token, &q.s, &expired);
    if (hval && (!have || !q.s.sso || strcmp(q.s.name, hval) != 0)) {
        if (soffa_web_auth_sso(self->auth, hval, q.token) != SOFFA_OK
            || !soffa_web_auth_session(self->auth, q.token, &q.s, &expired)) {
            s_error_page(resp, 403, "fel.sso_okand");
            return;
        }
        soffa_web_resp_cookie(resp, S_COOKIE, q.token, -1);
        have = true;
    }
    if (!have) {
        if (!strcmp(path, "/handelser") || (soffa_web_req_query(req, "del") && !post)) {
            s_error_page(resp, 401, expired ? "login.utgangen" : "fel.inloggning");
        } else {
            resp->status = 303;
            snprintf(resp->location, sizeof resp->location, "/inloggning%s", expired ? "?utgangen=1" : "");
            if (post)
                soffa_warn("a form was sent without a live session (%s)", expired ? "it had expired" : "none");
        }
        return;
    }
    soffa_web_form_t f;
    memset(&f, 0, sizeof f);
    if (post) {
        size_t len;
        const char *body = soffa_web_req_body(req, &len);
        if (!soffa_web_form_parse(body, len, &f)) {
            s_error_page(resp, 400, "fel.formular");
            return;
        }
        if (s_cross_site(req) || !soffa_web_auth_csrf_ok(&q.s, soffa_web_form_get(&f, "csrf"))) {
            soffa_warn("refused a form from %s without the right CSRF token (%s)", q.s.actor, path);
            soffa_web_form_fini(&f);
            s_error_page(resp, 403, "fel.csrf");
            return;
        }
    }
    if (post && !strcmp(path, "/utloggning")) {
        soffa_web_auth_logout(self->auth, q.token);
        soffa_web_resp_cookie(resp, S_COOKIE, "", 0);
        resp->status = 303;
        snprintf(resp->location, sizeof resp->location, "/inloggning");
        soffa_web_form_fini(&f);
        return;
    }
    q.who = soffa_web_agent_call(self->agent, json_pack("{s:s}", "cmd", "whoami"), S_CALL_MS);
    if (!s_ok(q.who)) {
        json_decref(q.who);
        q.who = NULL;
    }
    q.role = q.who ? s_jstr(q.who, "role") : "";
    if (!strcmp(path, "/") && !post)
        s_redirect(&q, "/inkorg");
    else if (!strcmp(path, "/inkorg") && !post)
        s_page_inbox(&q);
    else if (!strcmp(path, "/skickat") && !post)
        s_page_sent(&q);
    else if (!strcmp(path, "/handelser") && !post)
        s_page_events(&q);
    else if (!strncmp(path, "/meddelande/", 12) && !post)
        s_page_message(&q, path + 12);
    else if (!strcmp(path, "/atgard") && post)
        s_post_action(&q, &f);
    else if (!strcmp(path, "/ny"))
        post ? s_post_new(&q, &f) : s_page_new(&q);
    else if (!strcmp(path, "/sok"))
        s_page_search(&q, post ? &f : NULL);
    else if (!strcmp(path, "/min-enhet") && !post)
        s_page_unit(&q);
    else
        s_error_page(resp, 404, "fel.finns_inte");
    soffa_web_form_fini(&f);
    json_decref(q.who);
}

soffa_err_t
soffa_web_pages_new(soffa_web_pages_t **out, const soffa_web_cfg_t *cfg, soffa_web_auth_t *auth, soffa_web_agent_t *agent)
{
    soffa_web_pages_t *self = calloc(1, sizeof *self);
    if (!self)
        return SOFFA_ERR_NOMEM;
    self->cfg = cfg;
    self->auth = auth;
    self->agent = agent;
    char tag[64];
    size_t k = 0;
    for (const char *p = cfg->listen; *p && k < sizeof tag - 1; p++)
        if ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z'))
            tag[k++] = *p;
    tag[k] = '\0';
    snprintf(self->cookie, sizeof self->cookie, "soffa_%s", tag);
    snprintf(self->pre_cookie, sizeof self->pre_cookie, "soffa_pre_%s", tag);
    *out = self;
    return SOFFA_OK;
}

void
soffa_web_pages_destroy(soffa_web_pages_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free(*self_p);
    *self_p = NULL;
}
