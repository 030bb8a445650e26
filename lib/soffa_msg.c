/*  soffa_msg: the codec, names, flat view and builders of domain messages
 *  (see soffa_msg.h). The JSON form is soffa_msg_json.c, validation
 *  soffa_msg_valid.c.
 */
#include "soffa_msg.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "soffa_msg_int.h"
#include "soffa_time.h"
#include "soffa_uuid.h"

/* The C mirrors must match the generated enumerations. */
_Static_assert((int) SOFFA_LB_CONSENT_OSL_12_2 == (int) SOFFA__LEGAL_BASIS__LB_CONSENT_OSL_12_2, "lb");
_Static_assert((int) SOFFA_LB_SL_29_9_INTERNAL == (int) SOFFA__LEGAL_BASIS__LB_SL_29_9_INTERNAL, "lb");
_Static_assert((int) SOFFA_ROLE_BROKER == (int) SOFFA__ROLE__ROLE_BROKER, "role");
_Static_assert((int) SOFFA_PK_ARBETSFORMEDLINGEN == (int) SOFFA__PARTY_KIND__PK_ARBETSFORMEDLINGEN, "pk");
_Static_assert((int) SOFFA_TK_OTHER == (int) SOFFA__TARGET_KIND__TK_OTHER, "tk");
_Static_assert((int) SOFFA_CP_CASE_SUMMARY == (int) SOFFA__CONSENT_PURPOSE__CP_CASE_SUMMARY, "cp");
_Static_assert((int) SOFFA_RS_RECEIVED == (int) SOFFA__REFERRAL_STATUS__RS_RECEIVED, "rs");
_Static_assert((int) SOFFA_DC_CONTACT == (int) SOFFA__DATA_CATEGORY__DC_CONTACT, "dc");
_Static_assert((int) SOFFA_DC_IDENTITY == (int) SOFFA__DATA_CATEGORY__DC_IDENTITY, "dc");
_Static_assert((int) SOFFA_DC_OCCUPATION == (int) SOFFA__DATA_CATEGORY__DC_OCCUPATION, "dc");
_Static_assert((int) SOFFA_DC_SUMMARY_TEXT == (int) SOFFA__DATA_CATEGORY__DC_SUMMARY_TEXT, "dc");
_Static_assert((int) SOFFA_CGR_GOD_MAN == (int) SOFFA__CONSENT_ROLE__CGR_GOD_MAN, "cgr");
_Static_assert((int) SOFFA_CR_TURNED_20 == (int) SOFFA__CLOSE_REASON__CR_TURNED_20, "cr");
_Static_assert((int) SOFFA_SF_GR == (int) SOFFA__SCHOOL_FORM__SF_GR, "sf");
_Static_assert((int) SOFFA_SF_ANP_GR == (int) SOFFA__SCHOOL_FORM__SF_ANP_GR, "sf");
_Static_assert((int) SOFFA_EWS_ACCEPTED == (int) SOFFA__EARLY_WARNING_STATUS__EWS_ACCEPTED, "ews");
_Static_assert((int) SOFFA_EWS_NOT_IN_TARGET_GROUP
                   == (int) SOFFA__EARLY_WARNING_STATUS__EWS_NOT_IN_TARGET_GROUP, "ews");
_Static_assert((int) SOFFA_IDT_LOCAL_RESERVE == (int) SOFFA__ID_TYPE__ID_LOCAL_RESERVE, "idt");
_Static_assert(SOFFA_AR_NOT_HEMKOMMUN_REROUTED == (int) SOFFA__ACK_RESULT__AR_NOT_HEMKOMMUN_REROUTED, "ar");
_Static_assert(SOFFA_CR_MOVED_OUT == (int) SOFFA__CLOSE_REASON__CR_MOVED_OUT, "cr");
_Static_assert(SOFFA_CO_REACHED == (int) SOFFA__CONTACT_OUTCOME__CO_REACHED, "co");
_Static_assert(SOFFA_CO_NOT_REACHED == (int) SOFFA__CONTACT_OUTCOME__CO_NOT_REACHED, "co");
_Static_assert(SOFFA_RS_EXPIRED == (int) SOFFA__REFERRAL_STATUS__RS_EXPIRED, "rs");
_Static_assert(SOFFA_DC_OCCUPATION == (int) SOFFA__DATA_CATEGORY__DC_OCCUPATION, "dc");
_Static_assert(SOFFA_DC_MEASURES == (int) SOFFA__DATA_CATEGORY__DC_MEASURES, "dc");
#define SOFFA_MT_CHECK_(NAME, name, num) \
    _Static_assert((int) SOFFA_MT_##NAME == (int) SOFFA__MESSAGE__PAYLOAD_##NAME, #name);
SOFFA_MSG_TYPES(SOFFA_MT_CHECK_)
#undef SOFFA_MT_CHECK_

/* ---- Lifecycle and codec ------------------------------------------------ */

/* protobuf-c's allocator over a message's arena: aligned bumps, then a
 * chunk of its own for what does not fit. Nothing is freed one by one. */
static void *
s_arena_alloc(void *data, size_t size)
{
    soffa_msg_t *self = data;
    size_t need = (size + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    if (need >= size && self->used + need <= sizeof self->arena) {
        void *p = (char *) self->arena + self->used;
        self->used += need;
        return p;
    }
    if (size > SIZE_MAX - sizeof(soffa_msg_chunk_t))
        return NULL;
    soffa_msg_chunk_t *c = malloc(sizeof *c + size);
    if (!c)
        return NULL;
    c->next = self->chunks;
    self->chunks = c;
    return c->data;
}

static void
s_arena_free(void *data, void *p)
{
    (void) data;
    (void) p;   /* freed with the message */
}

static void
s_arena_fini(soffa_msg_t *self)
{
    while (self->chunks) {
        soffa_msg_chunk_t *c = self->chunks;
        self->chunks = c->next;
        free(c);
    }
}

soffa_err_t
soffa_msg_decode(const void *buf, size_t len, soffa_msg_t **out)
{
    if (!out || (!buf && len))
        return SOFFA_ERR_INVALID_ARG;
    *out = NULL;
    if (len > SOFFA_MSG_MAX)
        return SOFFA_ERR_TOO_LARGE;
    soffa_msg_t *self = malloc(sizeof *self);
    if (!self)
        return SOFFA_ERR_NOMEM;
    self->used = 0;
    self->chunks = NULL;
    self->in_arena = true;
    ProtobufCAllocator a = {s_arena_alloc, s_arena_free, self};
    self->pb = soffa__message__unpack(&a, len, buf);
    if (!self->pb) {
        s_arena_fini(self);
        free(self);
        return SOFFA_ERR_MALFORMED;
    }
    *out = self;
    return SOFFA_OK;
}

/* True if m, or any message inside it, carries fields the schema lacks. */
static bool
s_has_unknown(const ProtobufCMessage *m)
{
    if (!m)
        return false;
    if (m->n_unknown_fields)
        return true;
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        const char *base = (const char *) m + f->offset;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *) ((const char *) m + f->quantifier_offset);
            ProtobufCMessage *const *v = *(ProtobufCMessage *const *const *) base;
            for (size_t j = 0; j < n; j++)
                if (s_has_unknown(v[j]))
                    return true;
        } else if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            if (*(const uint32_t *) ((const char *) m + f->quantifier_offset) == f->id
                && s_has_unknown(*(ProtobufCMessage *const *) base))
                return true;
        } else if (s_has_unknown(*(ProtobufCMessage *const *) base)) {
            return true;
        }
    }
    return false;
}

bool
soffa_msg_has_unknown_fields(const soffa_msg_t *msg)
{
    return msg && s_has_unknown(&msg->pb->base);
}

soffa_err_t
soffa_msg_encode(const soffa_msg_t *msg, uint8_t **buf, size_t *len)
{
    if (!msg || !buf || !len)
        return SOFFA_ERR_INVALID_ARG;
    size_t n = soffa__message__get_packed_size(msg->pb);
    if (n > SOFFA_MSG_MAX)
        return SOFFA_ERR_TOO_LARGE;
    uint8_t *b = malloc(n ? n : 1);
    if (!b)
        return SOFFA_ERR_NOMEM;
    soffa__message__pack(msg->pb, b);
    *buf = b;
    *len = n;
    return SOFFA_OK;
}

void
soffa_msg_destroy(soffa_msg_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    if ((*self_p)->in_arena)
        s_arena_fini(*self_p);
    else
        soffa__message__free_unpacked((*self_p)->pb, NULL);
    free(*self_p);
    *self_p = NULL;
}

/* ---- Names ------------------------------------------------------------- */

const char *
soffa_msg_type_name(soffa_msg_type_t type)
{
    switch (type) {
#define SOFFA_MT_NAME_(NAME, name, num) case SOFFA_MT_##NAME: return #name;
    SOFFA_MSG_TYPES(SOFFA_MT_NAME_)
#undef SOFFA_MT_NAME_
    case SOFFA_MT_NONE: break;
    }
    return "unknown";
}

soffa_msg_type_t
soffa_msg_type_from_name(const char *name)
{
    if (!name)
        return SOFFA_MT_NONE;
#define SOFFA_MT_FROM_(NAME, name_, num) \
    if (strcmp(name, #name_) == 0)       \
        return SOFFA_MT_##NAME;
    SOFFA_MSG_TYPES(SOFFA_MT_FROM_)
#undef SOFFA_MT_FROM_
    return SOFFA_MT_NONE;
}

static const char *const s_role_names[] = {"none", "school", "kaa", "social", "af", "audit", "broker", "provider"};

static const char *const s_provider_kinds[][2] = {
    {"none", "ingen"},
    {"komvux", "Komvux"},
    {"labour_market_unit", "arbetsmarknadsenheten"},
    {"guidance_centre", "vägledningscentrum"},
    {"folkhogskola", "folkhögskola"},
    {"navigator_centre", "Navigatorcentrum"},
    {"samordningsforbund", "samordningsförbund"},
    {"school_programme", "annan skolas program"},
};

const char *
soffa_provider_kind_name(soffa_provider_kind_t kind)
{
    return (unsigned) kind < SOFFA_PVK_COUNT_ ? s_provider_kinds[kind][0] : "unknown";
}

const char *
soffa_provider_kind_sv(soffa_provider_kind_t kind)
{
    return (unsigned) kind < SOFFA_PVK_COUNT_ ? s_provider_kinds[kind][1] : "okänd";
}

soffa_provider_kind_t
soffa_provider_kind_from_name(const char *name)
{
    for (size_t i = 1; name && i < SOFFA_PVK_COUNT_; i++)
        if (strcmp(name, s_provider_kinds[i][0]) == 0)
            return (soffa_provider_kind_t) i;
    return SOFFA_PVK_NONE;
}

const char *
soffa_role_name(soffa_role_t role)
{
    if ((unsigned) role < sizeof s_role_names / sizeof *s_role_names)
        return s_role_names[role];
    return "unknown";
}

soffa_role_t
soffa_role_from_name(const char *name)
{
    for (size_t i = 1; name && i < sizeof s_role_names / sizeof *s_role_names; i++)
        if (strcmp(name, s_role_names[i]) == 0)
            return (soffa_role_t) i;
    return SOFFA_ROLE_NONE;
}

const char *
soffa_legal_basis_name(soffa_legal_basis_t basis)
{
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(&soffa__legal_basis__descriptor, (int) basis);
    if (!v || basis == SOFFA_LB_NONE)
        return basis == SOFFA_LB_NONE ? "none" : "unknown";
    return strncmp(v->name, "LB_", 3) == 0 ? v->name + 3 : v->name;
}

soffa_msg_type_t
soffa_msg_type(const soffa_msg_t *msg)
{
    return msg ? (soffa_msg_type_t) msg->pb->payload_case : SOFFA_MT_NONE;
}

/* ---- View ------------------------------------------------------------- */

static const uint8_t *
s_id16(ProtobufCBinaryData b)
{
    return b.len == SOFFA_UUID_LEN ? b.data : NULL;
}

/* Support codes as bits (1 << code) of the codes 1 to 31. */
static uint32_t
s_support_bits(const Soffa__SupportTried *values, size_t n)
{
    uint32_t bits = 0;
    for (size_t i = 0; values && i < n; i++)
        if ((int) values[i] > 0 && (int) values[i] < 32)
            bits |= 1u << (int) values[i];
    return bits;
}

void
soffa_msg_view(const soffa_msg_t *msg, soffa_msg_view_t *v)
{
    memset(v, 0, sizeof *v);
    v->new_hemkommun = "";
    v->old_id = "";
    v->new_id = "";
    v->subject_id = "";
    v->hemkommun = "";
    v->claimed_kommun = "";
    v->claimed_unit = "";
    v->claimed_orgnr = "";
    v->school_unit = "";
    v->district = "";
    v->owner_ref = "";
    v->previous_ref = "";
    v->to_team = "";
    v->provider = "";
    if (!msg)
        return;
    const Soffa__Message *m = msg->pb;
    v->type = (soffa_msg_type_t) m->payload_case;
    v->message_id = s_id16(m->message_id);
    v->correlation_id = s_id16(m->correlation_id);
    v->causation_id = s_id16(m->causation_id);
    v->consent_id = s_id16(m->consent_id);
    v->occurred_at_us = m->occurred_at_us;
    v->legal_basis = (soffa_legal_basis_t) m->legal_basis;
    if (m->subject) {
        v->id_type = (soffa_id_type_t) m->subject->id_type;
        v->subject_id = m->subject->id;
        v->hemkommun = m->subject->hemkommun;
        v->protected_identity = m->subject->protected_identity;
        v->protection_lifted = m->subject->protection_lifted;
        v->district = m->subject->district ? m->subject->district : "";
    }
    if (m->occurred_at_us > 0)
        v->event_date = soffa_date_to_int(soffa_date_local(m->occurred_at_us));
    if (m->sender) {
        v->claimed_kind = m->sender->kind;
        v->claimed_kommun = m->sender->kommunkod ? m->sender->kommunkod : "";
        v->claimed_unit = m->sender->unit_id ? m->sender->unit_id : "";
        v->claimed_orgnr = m->sender->org_nr ? m->sender->org_nr : "";
        v->claimed_provider_kind = m->sender->provider_kind;
    }

    switch (m->payload_case) {
    case SOFFA__MESSAGE__PAYLOAD_ENROLMENT_CHANGED:
        v->event_date = m->enrolment_changed->effective_date;
        v->school_unit = m->enrolment_changed->school_unit ? m->enrolment_changed->school_unit : "";
        break;
    case SOFFA__MESSAGE__PAYLOAD_ABSENCE_REPORTED:
        v->event_date = m->absence_reported->period_from;
        v->school_unit = m->absence_reported->school_unit ? m->absence_reported->school_unit : "";
        break;
    case SOFFA__MESSAGE__PAYLOAD_AT_RISK_NOTICE:
        v->school_unit = m->at_risk_notice->school_unit ? m->at_risk_notice->school_unit : "";
        v->support_tried = s_support_bits(m->at_risk_notice->support_tried, m->at_risk_notice->n_support_tried);
        break;
    case SOFFA__MESSAGE__PAYLOAD_EARLY_WARNING_ANSWERED:
        v->ref_id = s_id16(m->early_warning_answered->warning_id);
        v->warning_status = m->early_warning_answered->status;
        break;
    case SOFFA__MESSAGE__PAYLOAD_YEAR9_HANDOVER: {
        const Soffa__Year9Handover *h = m->year9_handover;
        v->school_unit = h->school_unit ? h->school_unit : "";
        v->school_form = h->school_form;
        v->support_tried = s_support_bits(h->support_tried, h->n_support_tried);
        v->event_date = h->leaves_on;
        break;
    }
    case SOFFA__MESSAGE__PAYLOAD_ADMISSION_NOT_STARTED: {
        const Soffa__AdmissionNotStarted *a = m->admission_not_started;
        v->school_unit = a->school_unit ? a->school_unit : "";
        v->school_form = a->school_form;
        v->event_date = a->term_start;
        break;
    }
    case SOFFA__MESSAGE__PAYLOAD_SIGNAL_ACKNOWLEDGED:
        v->ref_id = s_id16(m->signal_acknowledged->signal_id);
        v->ack_result = m->signal_acknowledged->result;
        v->new_hemkommun = m->signal_acknowledged->new_hemkommun ? m->signal_acknowledged->new_hemkommun : "";
        break;
    case SOFFA__MESSAGE__PAYLOAD_KAA_CASE_OPENED:
        v->ref_id = s_id16(m->kaa_case_opened->case_id);
        break;
    case SOFFA__MESSAGE__PAYLOAD_CONTACT_ATTEMPTED:
        v->ref_id = s_id16(m->contact_attempted->case_id);
        v->contact_channel = m->contact_attempted->channel;
        v->contact_outcome = m->contact_attempted->outcome;
        break;
    case SOFFA__MESSAGE__PAYLOAD_OCCUPATION_RECORDED:
        v->ref_id = s_id16(m->occupation_recorded->case_id);
        break;
    case SOFFA__MESSAGE__PAYLOAD_PLAN_AGREED:
        v->ref_id = s_id16(m->plan_agreed->case_id);
        break;
    case SOFFA__MESSAGE__PAYLOAD_MEASURE_STARTED:
        v->ref_id = s_id16(m->measure_started->case_id);
        v->measure_referral = s_id16(m->measure_started->referral_id);
        if (m->measure_started->provider) {
            v->measure_provider = m->measure_started->provider->kind;
            v->provider_kind = m->measure_started->provider->provider_kind;
        }
        break;
    case SOFFA__MESSAGE__PAYLOAD_MEASURE_ENDED:
        v->ref_id = s_id16(m->measure_ended->case_id);
        break;
    case SOFFA__MESSAGE__PAYLOAD_KAA_CASE_CLOSED:
        v->ref_id = s_id16(m->kaa_case_closed->case_id);
        v->new_hemkommun = m->kaa_case_closed->new_hemkommun;
        v->close_reason = m->kaa_case_closed->reason;
        break;
    case SOFFA__MESSAGE__PAYLOAD_CASE_OWNER_CHANGED:
        v->ref_id = s_id16(m->case_owner_changed->case_id);
        v->owner_ref = m->case_owner_changed->owner_ref ? m->case_owner_changed->owner_ref : "";
        v->previous_ref = m->case_owner_changed->previous_ref ? m->case_owner_changed->previous_ref : "";
        v->owner_reason = m->case_owner_changed->reason;
        break;
    case SOFFA__MESSAGE__PAYLOAD_CASE_TRANSFERRED:
        v->ref_id = s_id16(m->case_transferred->case_id);
        v->to_team = m->case_transferred->to_team ? m->case_transferred->to_team : "";
        break;
    case SOFFA__MESSAGE__PAYLOAD_CASE_MAPPED:
        v->ref_id = s_id16(m->case_mapped->case_id);
        break;
    case SOFFA__MESSAGE__PAYLOAD_KAA_CASE_REOPENED:
        v->ref_id = s_id16(m->kaa_case_reopened->case_id);
        v->signal_id = s_id16(m->kaa_case_reopened->signal_id);
        break;
    case SOFFA__MESSAGE__PAYLOAD_SUBJECT_IDENTITY_CHANGED: {
        const Soffa__SubjectIdentityChanged *c = m->subject_identity_changed;
        if (c->old_id) {
            v->old_id = c->old_id->id;
            v->old_id_type = c->old_id->id_type;
        }
        if (c->new_id) {
            v->new_id = c->new_id->id;
            v->new_id_type = c->new_id->id_type;
        }
        break;
    }
    case SOFFA__MESSAGE__PAYLOAD_CONSENT_RECORDED: {
        const Soffa__ConsentRecorded *c = m->consent_recorded;
        v->ref_id = s_id16(c->consent_id);
        v->consent_valid_from = c->valid_from;
        v->consent_valid_to = c->valid_to;
        v->consent_youth_age = c->youth_age_at_grant;
        v->consent_maturity = c->maturity_assessed;
        for (size_t i = 0; i < c->n_granted_by; i++)
            if (c->granted_by[i] && c->granted_by[i]->role > 0 && c->granted_by[i]->role < 32)
                v->consent_grants |= 1u << c->granted_by[i]->role;
        if (c->scope) {
            for (size_t i = 0; i < c->scope->n_recipients; i++)
                if (c->scope->recipients[i] > 0 && c->scope->recipients[i] < 32)
                    v->consent_recipients |= 1u << c->scope->recipients[i];
            for (size_t i = 0; i < c->scope->n_purposes; i++)
                if (c->scope->purposes[i] > 0 && c->scope->purposes[i] < 32)
                    v->consent_purposes |= 1u << c->scope->purposes[i];
            for (size_t i = 0; i < c->scope->n_data_categories; i++)
                if (c->scope->data_categories[i] > 0 && c->scope->data_categories[i] < 32)
                    v->consent_categories |= 1u << c->scope->data_categories[i];
            for (size_t i = 0; i < c->scope->n_provider_kinds; i++)
                if (c->scope->provider_kinds[i] > 0 && c->scope->provider_kinds[i] < 32)
                    v->consent_provider_kinds |= 1u << c->scope->provider_kinds[i];
        }
        break;
    }
    case SOFFA__MESSAGE__PAYLOAD_CONSENT_WITHDRAWN:
        v->ref_id = s_id16(m->consent_withdrawn->consent_id);
        break;
    case SOFFA__MESSAGE__PAYLOAD_REFERRAL_SENT: {
        const Soffa__ReferralSent *r = m->referral_sent;
        v->ref_id = s_id16(r->referral_id);
        v->target_kind = (soffa_target_kind_t) r->target_kind;
        v->purpose = r->purpose;
        v->provider_kind = r->target_kind == SOFFA__TARGET_KIND__TK_SCHOOL ? SOFFA_PVK_SCHOOL_PROGRAMME
                                                                          : (int) r->provider_kind;
        v->provider = r->provider ? r->provider : "";
        v->has_contact = r->contact && ((r->contact->phone && *r->contact->phone)
                                        || (r->contact->email && *r->contact->email));
        break;
    }
    case SOFFA__MESSAGE__PAYLOAD_REFERRAL_STATUS_CHANGED:
        v->ref_id = s_id16(m->referral_status_changed->referral_id);
        v->referral_status = m->referral_status_changed->status;
        break;
    case SOFFA__MESSAGE__PAYLOAD_REFERRAL_WITHDRAWN:
        v->ref_id = s_id16(m->referral_withdrawn->referral_id);
        break;
    case SOFFA__MESSAGE__PAYLOAD_CONCERN_REPORT_FILED:
        v->ref_id = s_id16(m->concern_report_filed->report_id);
        break;
    case SOFFA__MESSAGE__PAYLOAD_CONCERN_REPORT_FEEDBACK:
        v->ref_id = s_id16(m->concern_report_feedback->report_id);
        break;
    default:
        break;
    }
}

/* ---- Messages the broker writes itself ---- */

soffa_err_t
soffa_msg_referral_withdrawn(const soffa_msg_t *referral, const uint8_t consent_id[16], const uint8_t cause[16],
                             const uint8_t message_id[16], int64_t now_us, uint8_t **buf, size_t *len)
{
    if (!referral || !consent_id || !cause || !message_id || !buf || !len)
        return SOFFA_ERR_INVALID_ARG;
    const Soffa__Message *r = referral->pb;
    if (r->payload_case != SOFFA__MESSAGE__PAYLOAD_REFERRAL_SENT || !r->subject
        || r->referral_sent->referral_id.len != SOFFA_UUID_LEN)
        return SOFFA_ERR_INVALID_ARG;
    Soffa__PersonRef subject = SOFFA__PERSON_REF__INIT;
    subject.id_type = r->subject->id_type;
    subject.id = r->subject->id;
    subject.protected_identity = r->subject->protected_identity;
    subject.hemkommun = r->subject->hemkommun;
    Soffa__ReferralWithdrawn w = SOFFA__REFERRAL_WITHDRAWN__INIT;
    w.referral_id = r->referral_sent->referral_id;
    w.reason = SOFFA__WITHDRAW_REASON__WR_CONSENT_WITHDRAWN;
    Soffa__Message m = SOFFA__MESSAGE__INIT;
    m.message_id = (ProtobufCBinaryData) {SOFFA_UUID_LEN, (uint8_t *) message_id};
    m.schema_version = "1.0";
    m.occurred_at_us = now_us;
    m.sent_at_us = now_us;
    m.subject = &subject;
    m.legal_basis = SOFFA__LEGAL_BASIS__LB_CONSENT_OSL_12_2;
    m.consent_id = (ProtobufCBinaryData) {SOFFA_UUID_LEN, (uint8_t *) consent_id};
    m.correlation_id = r->correlation_id.len == SOFFA_UUID_LEN ? r->correlation_id : w.referral_id;
    m.causation_id = (ProtobufCBinaryData) {SOFFA_UUID_LEN, (uint8_t *) cause};
    m.payload_case = SOFFA__MESSAGE__PAYLOAD_REFERRAL_WITHDRAWN;
    m.referral_withdrawn = &w;
    size_t n = soffa__message__get_packed_size(&m);
    uint8_t *b = malloc(n ? n : 1);
    if (!b)
        return SOFFA_ERR_NOMEM;
    soffa__message__pack(&m, b);
    *buf = b;
    *len = n;
    return SOFFA_OK;
}

/* ---- Free text ---------------------------------------------------------------- */

const char *
soffa_msg_free_text(const soffa_msg_t *msg, const char **field)
{
    const char *text = NULL, *name = NULL;
    const Soffa__Message *m = msg ? msg->pb : NULL;
    switch (m ? m->payload_case : SOFFA__MESSAGE__PAYLOAD__NOT_SET) {
    case SOFFA__MESSAGE__PAYLOAD_AT_RISK_NOTICE:
        text = m->at_risk_notice->note;
        name = "at_risk_notice.note";
        break;
    case SOFFA__MESSAGE__PAYLOAD_REFERRAL_SENT:
        text = m->referral_sent->summary;
        name = "referral_sent.summary";
        break;
    case SOFFA__MESSAGE__PAYLOAD_CONCERN_REPORT_FILED:
        text = m->concern_report_filed->description;
        name = "concern_report_filed.description";
        break;
    default: break;
    }
    if (!text || !*text)
        text = NULL, name = NULL;
    if (field)
        *field = name;
    return text;
}
