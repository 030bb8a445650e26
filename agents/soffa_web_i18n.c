/*  soffa_web_i18n: the Swedish table. */
#include "soffa_web_i18n.h"

#include <stdio.h>
#include <string.h>

typedef struct {
    const char *key, *text;
} s_text_t;

/* ---- The pages' words ---- */
static const s_text_t s_sv[] = {
    {"hoppa", "Hoppa till innehållet"},
    {"nav.meny", "Huvudmeny"},
    {"nav.inkorg", "Inkorg"},
    {"nav.skickat", "Skickat"},
    {"nav.ny", "Ny signal"},
    {"nav.sok", "Sök"},
    {"nav.enhet", "Min enhet"},
    {"inloggad", "Inloggad som"},
    {"logga_ut", "Logga ut"},
    {"anv.lead", "arbetsledare"},
    {"anv.caseworker", "handläggare"},
    {"school", "skola"},
    {"kaa", "kommunala aktivitetsansvaret"},
    {"social", "socialtjänsten"},
    {"af", "Arbetsförmedlingen"},
    {"audit", "granskning"},
    {"roll.okand", "okänd roll"},
    {"sidfot", "soffa – signaler och remisser kring unga. Varje visning av uppgifter om en ung person loggas."},
    {"agent.svarar_inte", "Den lokala agenten svarar inte just nu. Försök igen om en stund, eller kontakta driften."},
    {"agent.ej_ansluten", "Förmedlingen kan inte nås just nu. Det du skickar sparas och skickas när den kan nås igen."},
    {"till_inkorgen", "Till inkorgen"},
    {"fel.titel", "Det gick inte"},
    {"fel.for_stor", "Det som skickades var för stort. Korta ner texten och försök igen."},
    {"fel.for_lang", "Adressen är för lång eller felaktig."},
    {"fel.metod", "Den sortens anrop stöds inte här."},
    {"fel.formular", "Formuläret kunde inte läsas. Ladda om sidan och försök igen."},
    {"fel.csrf", "Formuläret saknade en giltig säkerhetskod, så inget gjordes. Ladda om sidan och försök igen."},
    {"fel.csrf_login", "Inloggningssidan var för gammal. Försök igen."},
    {"fel.inloggning", "Du är inte inloggad."},
    {"fel.finns_inte", "Sidan eller meddelandet finns inte här."},
    {"fel.roll", "Det här ingår inte i det din verksamhet gör i soffa."},
    {"fel.lead", "Den här sidan är till för arbetsledare."},
    {"fel.logg", "Visningen kunde inte loggas, och därför visas inget. Försök igen om en stund."},
    {"fel.sso_extern", "Inloggning via proxyhuvud godtas bara från den lokala proxyn. Anropet avvisades."},
    {"fel.sso_okand", "Din inloggning känns inte igen här. Be en administratör lägga upp dig i soffa."},
    {"fel.falt", "Fältet"},
    {"fel.kommun", "Hemkommunen ska vara en av de 290 kommunkoderna, fyra siffror (till exempel 1419 för Tjörn)."},
    {"login.titel", "Logga in"},
    {"login.namn", "Användarnamn"},
    {"login.losen", "Lösenord"},
    {"login.knapp", "Logga in"},
    {"login.tips", "Har du glömt lösenordet? Be din arbetsledare eller driften att sätta ett nytt."},
    {"login.fel", "Fel användarnamn eller lösenord."},
    {"login.vanta", "För många misslyckade försök."},
    {"login.vanta_om", "Försök igen om"},
    {"sekund", "sekund."},
    {"sekunder", "sekunder."},
    {"login.utgangen", "Din session har gått ut. Logga in igen."},
    {"filter.visa", "Visa"},
    {"filter.alla", "Alla"},
    {"filter.olasta", "Olästa"},
    {"filter.ohanterade", "Ej hanterade"},
    {"filter.forsenade", "Försenade"},
    {"filter.typ", "Typ"},
    {"filter.alla_typer", "Alla typer"},
    {"filter.knapp", "Filtrera"},
    {"inkorg.tabell", "Inkomna meddelanden, nyaste först"},
    {"inkorg.tom", "Inkorgen är tom."},
    {"inkorg.inga_traffar", "Inga meddelanden matchar filtret."},
    {"st_meddelanden", "meddelanden visas."},
    {"live.nytt", "Inkorgen har uppdaterats."},
    {"live.andrat", "Listan har uppdaterats."},
    {"kol.mottaget", "Mottaget"},
    {"kol.skickat", "Skickat"},
    {"kol.vad", "Vad"},
    {"kol.ungdom", "Ungdom"},
    {"kol.ungdomar", "Ungdomar"},
    {"kol.fran", "Från"},
    {"kol.markering", "Status"},
    {"kol.utfall", "Utfall"},
    {"kol.svar", "Svar"},
    {"kol.nar", "När"},
    {"kol.vem", "Vem"},
    {"markor.olast", "Oläst"},
    {"markor.ej_kvitterad", "Ej kvitterad"},
    {"markor.ej_besvarad", "Ej besvarad"},
    {"markor.forsenad", "Försenad"},
    {"markor.hanterad", "Hanterad"},
    {"skickat.tabell", "Skickade meddelanden, nyaste först"},
    {"skickat.intro", "Det din verksamhet har skickat, och vad som har kommit tillbaka: kvittenser och svar."},
    {"skickat.tomt", "Inget har skickats härifrån ännu."},
    {"utfall.mottaget", "Mottaget av förmedlingen"},
    {"utfall.avvisat", "Avvisat"},
    {"utfall.vantar", "Väntar på att skickas"},
    {"svar.kvitterad", "Kvitterad"},
    {"svar.besvarad", "Besvarad"},
    {"svar.vantar", "Väntar på svar"},
    {"svar.forsenat", "Svar försenat"},
    {"hemkommun", "Hemkommun"},
    {"skyddad", "Skyddade personuppgifter"},
    {"skyddad.text", "Ja – inga kontaktuppgifter får lämnas."},
    {"rattslig_grund", "Rättslig grund"},
    {"ja", "Ja"},
    {"nej", "Nej"},
    {"frist.rubrik", "Frist:"},
    {"frist.forsenad", "Försenad:"},
    {"frist.kvittera", "signalen ska kvitteras senast"},
    {"frist.svara", "remissen ska besvaras senast"},
    {"trad.rubrik", "Händelser kring den unge här"},
    {"trad.in", "Inkommet:"},
    {"trad.ut", "Skickat:"},
    {"atgarder", "Åtgärder"},
    {"inga_atgarder", "Här finns inget för dig att göra med det här meddelandet."},
    {"form.kvittera", "Kvittera signalen"},
    {"form.resultat", "Resultat"},
    {"form.oppna", "Öppna ärende i aktivitetsansvaret"},
    {"form.skal", "Skäl"},
    {"form.kontakt", "Registrera kontaktförsök"},
    {"form.forsok_nr", "Försök nummer"},
    {"form.kanal", "Kanal"},
    {"form.utfall", "Utfall"},
    {"form.samtycke", "Registrera samtycke"},
    {"form.mottagare", "Samtycket gäller uppgifter till"},
    {"form.lamnat_av", "Samtycket lämnades av"},
    {"form.andamal", "För att"},
    {"form.uppgifter", "Uppgifter som får lämnas"},
    {"form.form", "Hur samtycket lämnades"},
    {"form.giltigt_fran", "Gäller från"},
    {"form.giltigt_till", "Gäller till (högst 12 månader)"},
    {"form.alder", "Den unges ålder när samtycket lämnades"},
    {"form.mognad", "Den unges mognad är bedömd"},
    {"form.remiss_af", "Remiss till Arbetsförmedlingen"},
    {"form.remiss_soc", "Remiss till socialtjänsten"},
    {"form.samtycke_val", "Samtycke som remissen vilar på"},
    {"form.inget_samtycke", "Det finns inget giltigt samtycke för den här mottagaren. Registrera samtycket först."},
    {"form.syfte", "Syfte"},
    {"form.sammanfattning", "Sammanfattning (frivillig)"},
    {"form.sammanfattning_hjalp", "Högst 1000 tecken, och bara om samtycket omfattar sammanfattande text. Skriv inga "
                                  "känsliga uppgifter, till exempel om hälsa."},
    {"form.avsluta", "Avsluta ärendet"},
    {"form.svara", "Svara på remissen"},
    {"form.status", "Status"},
    {"form.aterkoppla", "Återkoppla till anmälaren"},
    {"form.aterkoppling", "Återkoppling"},
    {"form.pnr", "Personnummer eller samordningsnummer"},
    {"form.pnr_hjalp", "Till exempel 080314-2710 eller 200803142710."},
    {"form.kommun_hjalp", "Kommunkod, fyra siffror, för den kommun där eleven är folkbokförd."},
    {"form.skolenhet", "Skolenhetskod (åtta siffror)"},
    {"form.samtycke_id", "Samtyckets id"},
    {"form.samtycke_id_hjalp", "Id för det samtycke eleven har lämnat (från skolans registrering av samtycket)."},
    {"form.not_hjalp", "Högst 300 tecken. Skriv inga känsliga uppgifter."},
    {"knapp.kvittera", "Kvittera"},
    {"knapp.oppna", "Öppna ärende"},
    {"knapp.kontakt", "Registrera kontaktförsök"},
    {"knapp.samtycke", "Registrera samtycke"},
    {"knapp.remiss", "Skicka remiss"},
    {"knapp.avsluta", "Avsluta ärende"},
    {"knapp.svara", "Skicka svar"},
    {"knapp.aterkoppla", "Skicka återkoppling"},
    {"knapp.skicka", "Skicka"},
    {"knapp.sok", "Sök"},
    {"samtycke.kort", "Samtycke"},
    {"mottagare.af", "Arbetsförmedlingen"},
    {"mottagare.soc", "socialtjänsten"},
    {"skicka.mottaget", "skickat och mottaget av förmedlingen."},
    {"skicka.koat", "sparat. Det skickas så snart förmedlingen kan nås."},
    {"skicka.avvisat", "Avvisat:"},
    {"ny.intro", "Här anmäler skolan till elevens hemkommun. Frånvaro och in- och utskrivning följer skollagen (15 kap. 15 §); en risksignal kräver elevens samtycke."},
    {"ny.franvaro", "Betydande ogiltig frånvaro"},
    {"ny.inskrivning", "Elev har börjat eller slutat"},
    {"ny.risk", "Risk för studieavbrott (med samtycke)"},
    {"sok.hjalp", "Sökningen loggas: vem som sökte, när och efter vem."},
    {"sok.resultat", "Det här finns om"},
    {"sok.inget", "Inga meddelanden om den personen finns här."},
    {"sok.loggas", "Den här sökningen har loggats."},
    {"enhet.intro", "Vem som har tittat på vad: varje gång någon här har öppnat ett meddelande, sökt eller sett en lista med personuppgifter. Nyaste först."},
    {"enhet.tabell", "Visningar av uppgifter om unga"},
    {"enhet.borttagen", "borttagen användare"},
    {"enhet.oppna", "öppna"},
    {"enhet.och_fler", "och ytterligare"},
    {"vy.inbox", "Inkorgen"},
    {"vy.message", "Ett meddelande"},
    {"vy.search", "En sökning"},
    {"vy.access-log", "Den här loggen"},
    {"vy.sent-list", "Skickat-listan"},
};

/* ---- Codes as words, by schema field ---- */
typedef struct {
    const char *field, *code, *text;
} s_code_t;

static const s_code_t s_codes[] = {
    {"event", "STARTED", "Började"},
    {"event", "LEFT", "Slutade"},
    {"school_form", "GY", "Gymnasieskola"},
    {"school_form", "ANP_GY", "Anpassad gymnasieskola"},
    {"leave_reason", "TRANSFER", "Byte av skola"},
    {"leave_reason", "MOVED", "Flyttat"},
    {"leave_reason", "DISCONTINUED", "Avbrutit studierna"},
    {"leave_reason", "UNKNOWN", "Okänt"},
    {"unexcused_band", "SIGNIFICANT", "Betydande ogiltig frånvaro"},
    {"unexcused_band", "EXTENSIVE", "Omfattande ogiltig frånvaro"},
    {"unexcused_band", "TOTAL", "Total ogiltig frånvaro"},
    {"reported_to_csn", "YES", "Ja"},
    {"reported_to_csn", "NO", "Nej"},
    {"risk_code", "REDUCED_PLAN", "Reducerad studieplan"},
    {"risk_code", "EXAMEN_AT_RISK", "Examen i fara"},
    {"risk_code", "LEFT_WITH_STUDIEBEVIS", "Slutat med studiebevis"},
    {"result", "RECEIVED", "Mottagen"},
    {"result", "REGISTERED", "Registrerad i aktivitetsansvaret"},
    {"result", "NOT_HEMKOMMUN_REROUTED", "Inte hemkommun – skickas vidare"},
    {"result", "OUTSIDE_TARGET_GROUP", "Utanför målgruppen"},
    {"registration_reason", "DROPOUT_NATIONAL", "Avbrutit nationellt program"},
    {"registration_reason", "STUDIEBEVIS", "Har studiebevis"},
    {"registration_reason", "NEVER_STARTED", "Har aldrig börjat gymnasiet"},
    {"registration_reason", "ARRIVED_AFTER_COMPULSORY", "Kom till Sverige efter skolpliktig ålder"},
    {"channel", "LETTER", "Brev"},
    {"channel", "SMS", "Sms"},
    {"channel", "PHONE", "Telefon"},
    {"channel", "EMAIL", "E-post"},
    {"channel", "HOME_VISIT", "Hembesök"},
    {"channel", "MEETING", "Möte"},
    {"channel", "VIA_SCHOOL", "Via skolan"},
    {"channel", "DIGITAL", "Digitalt möte"},
    {"outcome", "REACHED", "Nådd"},
    {"outcome", "NO_ANSWER", "Inget svar"},
    {"outcome", "WRONG_DETAILS", "Fel kontaktuppgifter"},
    {"outcome", "DECLINED_CONTACT", "Avböjde kontakt"},
    {"outcome", "MESSAGE_LEFT", "Meddelande lämnat"},
    {"outcome", "NOT_REACHED", "Ej nådd efter upprepade försök"},
    {"outcome", "COMPLETED", "Genomförd"},
    {"outcome", "DISCONTINUED", "Avbruten"},
    {"occupation", "WORK", "Arbete"},
    {"occupation", "STUDIES_GY", "Studier i gymnasieskola"},
    {"occupation", "STUDIES_KOMVUX", "Studier i komvux"},
    {"occupation", "FOLKHOGSKOLA", "Folkhögskola"},
    {"occupation", "AF_PROGRAMME", "Program hos Arbetsförmedlingen"},
    {"occupation", "OTHER_ACTIVITY", "Annan aktivitet"},
    {"occupation", "NONE", "Ingen sysselsättning"},
    {"occupation", "UNKNOWN", "Okänd"},
    {"goal", "RETURN_TO_STUDIES", "Återgå till studier"},
    {"goal", "WORK", "Arbete"},
    {"goal", "CLARIFY", "Klargöra vad den unge vill"},
    {"measure_type", "STUDIES_IM", "Introduktionsprogram"},
    {"measure_type", "STUDIES_OTHER", "Andra studier"},
    {"measure_type", "SYV", "Studie- och yrkesvägledning"},
    {"measure_type", "PRAKTIK", "Praktik"},
    {"measure_type", "MOTIVATION", "Motiverande insats"},
    {"measure_type", "AF_PROGRAMME", "Program hos Arbetsförmedlingen"},
    {"measure_type", "SOCIAL_SUPPORT", "Stöd från socialtjänsten"},
    {"reason", "TURNED_20", "Fyllt 20 år"},
    {"reason", "STARTED_NATIONAL_PROGRAMME", "Börjat på nationellt program"},
    {"reason", "STARTED_EQUIVALENT", "Börjat motsvarande utbildning"},
    {"reason", "STARTED_INTRODUCTION_PROGRAMME", "Börjat på introduktionsprogram"},
    {"reason", "COMPLETED", "Fullföljt"},
    {"reason", "MOVED_OUT", "Flyttat från kommunen"},
    {"reason", "EMIGRATED", "Utvandrat"},
    {"reason", "DECEASED", "Avliden"},
    {"reason", "CONSENT_WITHDRAWN", "Samtycket återkallat"},
    {"reason", "CASE_CLOSED", "Ärendet avslutat"},
    {"reason", "MOVED", "Flyttat"},
    {"reason", "ERROR", "Skickad av misstag"},
    {"role", "YOUTH", "Den unge"},
    {"role", "GUARDIAN", "Vårdnadshavare"},
    {"role", "GOD_MAN", "God man"},
    {"granted_by", "YOUTH", "Den unge"},
    {"granted_by", "GUARDIAN", "Vårdnadshavare"},
    {"granted_by", "GOD_MAN", "God man (för ensamkommande barn)"},
    {"by", "YOUTH", "Den unge"},
    {"by", "GUARDIAN", "Vårdnadshavare"},
    {"purposes", "REFERRAL", "Remiss"},
    {"purposes", "STATUS_FEEDBACK", "Återkoppling om remissens status"},
    {"purposes", "CASE_SUMMARY", "Sammanfattning av ärendet"},
    {"data_categories", "IDENTITY", "Identitet"},
    {"data_categories", "CONTACT", "Kontaktuppgifter"},
    {"data_categories", "OCCUPATION", "Sysselsättning"},
    {"data_categories", "MEASURES", "Insatser"},
    {"data_categories", "SUMMARY_TEXT", "Sammanfattande text"},
    {"form", "WRITTEN", "Skriftligt"},
    {"form", "DIGITAL_SIGNED", "Digitalt signerat"},
    {"form", "ORAL_DOCUMENTED", "Muntligt, dokumenterat"},
    {"recipients", "SCHOOL_PRINCIPAL", "Skolans huvudman"},
    {"recipients", "KAA", "Kommunala aktivitetsansvaret"},
    {"recipients", "SOCIAL_SERVICES", "Socialtjänsten"},
    {"recipients", "ARBETSFORMEDLINGEN", "Arbetsförmedlingen"},
    {"target_kind", "SOCIAL_SERVICES", "Socialtjänsten"},
    {"target_kind", "ARBETSFORMEDLINGEN", "Arbetsförmedlingen"},
    {"target_kind", "SCHOOL", "Skolan"},
    {"purpose", "AF_JOBSEEKER_REGISTRATION", "Inskrivning som arbetssökande"},
    {"purpose", "AF_YOUTH_PROGRAMME", "Ungdomsinsats hos Arbetsförmedlingen"},
    {"purpose", "AF_PRAKTIK", "Praktik"},
    {"purpose", "SOC_SUPPORT_CONTACT", "Stödkontakt"},
    {"purpose", "SOC_FAMILY_SUPPORT", "Familjestöd"},
    {"purpose", "SOC_OTHER", "Annat stöd"},
    {"purpose", "SCHOOL_RETURN", "Återgång till skolan"},
    {"status", "RECEIVED", "Mottagen"},
    {"status", "ACCEPTED", "Accepterad"},
    {"status", "DECLINED_BY_AGENCY", "Avböjd av mottagaren"},
    {"status", "CONTACT_ESTABLISHED", "Kontakt etablerad"},
    {"status", "YOUTH_DECLINED", "Den unge tackade nej"},
    {"status", "IN_PROGRESS", "Pågår"},
    {"status", "COMPLETED", "Avslutad, genomförd"},
    {"status", "DISCONTINUED", "Avbruten"},
    {"status", "EXPIRED", "Förfallen"},
    {"reporter_role", "SCHOOL_STAFF", "Skolpersonal"},
    {"reporter_role", "KAA_STAFF", "Personal inom aktivitetsansvaret"},
    {"reporter_role", "OTHER_MANDATED", "Annan anmälningsskyldig"},
    {"concern_codes", "NEGLECT", "Försummelse"},
    {"concern_codes", "VIOLENCE", "Våld"},
    {"concern_codes", "OWN_BEHAVIOUR", "Eget beteende"},
    {"concern_codes", "SUBSTANCE", "Missbruk"},
    {"concern_codes", "HONOUR", "Hedersrelaterat"},
    {"concern_codes", "SCHOOL_ABSENCE", "Skolfrånvaro"},
    {"feedback", "INVESTIGATION_OPENED", "Utredning inledd"},
    {"feedback", "NOT_OPENED", "Ingen utredning inledd"},
    {"feedback", "ALREADY_ONGOING", "Utredning pågår redan"},
    {"legal_basis", "SL_15_15_ENROLMENT", "Skollagen 15 kap. 15 § (in- och utskrivning)"},
    {"legal_basis", "SL_15_15_ABSENCE", "Skollagen 15 kap. 15 § (frånvaro)"},
    {"legal_basis", "SOL_REPORT_OF_CONCERN", "Socialtjänstlagen (orosanmälan)"},
    {"legal_basis", "SOL_REPORTER_FEEDBACK", "Socialtjänstlagen (återkoppling till anmälaren)"},
    {"legal_basis", "CONSENT_OSL_12_2", "Den unges samtycke (OSL 12 kap. 2 §)"},
    {"legal_basis", "SL_29_9_INTERNAL", "Skollagen 29 kap. 9 § (aktivitetsansvaret, internt)"},
    {"source", "NAVET", "Folkbokföringen (Navet)"},
    {"source", "MANUAL", "Manuellt"},
    {NULL, "OTHER", "Annat"},
    {NULL, "UNKNOWN", "Okänt"},
};

static const s_text_t s_types[] = {
    {"enrolment_changed", "Ändrad inskrivning"},
    {"absence_reported", "Anmäld frånvaro"},
    {"at_risk_notice", "Risk för studieavbrott"},
    {"signal_acknowledged", "Kvittens"},
    {"kaa_case_opened", "Ärende öppnat"},
    {"contact_attempted", "Kontaktförsök"},
    {"occupation_recorded", "Sysselsättning registrerad"},
    {"plan_agreed", "Plan överenskommen"},
    {"measure_started", "Insats påbörjad"},
    {"measure_ended", "Insats avslutad"},
    {"kaa_case_closed", "Ärende avslutat"},
    {"consent_recorded", "Samtycke registrerat"},
    {"consent_withdrawn", "Samtycke återkallat"},
    {"referral_sent", "Remiss"},
    {"referral_status_changed", "Svar på remiss"},
    {"referral_withdrawn", "Remiss återkallad"},
    {"concern_report_filed", "Orosanmälan"},
    {"concern_report_feedback", "Återkoppling på orosanmälan"},
    {"subject_identity_changed", "Ändrat personnummer"},
    {"kaa_case_reopened", "Ärende återöppnat"},
};

static const s_text_t s_fields[] = {
    {"period_from", "Period från"},
    {"period_to", "Period till"},
    {"unexcused_band", "Frånvaro"},
    {"investigation_started", "Skolan har inlett utredning (15 kap. 16 §)"},
    {"reported_to_csn", "Rapporterad till CSN"},
    {"school_unit", "Skolenhet"},
    {"event", "Händelse"},
    {"effective_date", "Datum"},
    {"school_form", "Skolform"},
    {"programme_code", "Program"},
    {"leave_reason", "Orsak"},
    {"risk_code", "Risk"},
    {"note", "Anteckning"},
    {"result", "Resultat"},
    {"registration_reason", "Skäl för registrering"},
    {"attempt_no", "Försök nummer"},
    {"channel", "Kanal"},
    {"outcome", "Utfall"},
    {"as_of", "Per datum"},
    {"occupation", "Sysselsättning"},
    {"goal", "Mål"},
    {"measures", "Insatser"},
    {"review_date", "Uppföljning"},
    {"measure_type", "Insats"},
    {"provider", "Anordnare"},
    {"start", "Start"},
    {"end", "Slut"},
    {"declined_by_youth", "Den unge tackade nej"},
    {"reason", "Skäl"},
    {"new_hemkommun", "Ny hemkommun"},
    {"granted_by", "Lämnat av"},
    {"youth_age_at_grant", "Ålder när samtycket lämnades"},
    {"maturity_assessed", "Mognad bedömd"},
    {"scope", "Omfattning"},
    {"recipients", "Mottagare"},
    {"purposes", "Ändamål"},
    {"data_categories", "Uppgifter"},
    {"form", "Form"},
    {"valid_from", "Gäller från"},
    {"valid_to", "Gäller till"},
    {"withdrawn_at_us", "Återkallat"},
    {"by", "Av"},
    {"target_kind", "Mottagare"},
    {"purpose", "Syfte"},
    {"contact", "Kontaktuppgifter"},
    {"phone", "Telefon"},
    {"email", "E-post"},
    {"summary", "Sammanfattning"},
    {"respond_by", "Svar senast"},
    {"status", "Status"},
    {"reason_code", "Skälkod"},
    {"reporter_role", "Anmälare"},
    {"concern_codes", "Oron gäller"},
    {"description", "Beskrivning"},
    {"urgent", "Brådskande"},
    {"feedback", "Återkoppling"},
    {"old_id", "Tidigare identitet"},
    {"new_id", "Ny identitet"},
    {"source", "Källa"},
};

static const s_text_t s_roles[] = {
    {"school", "Skola"},
    {"kaa", "Aktivitetsansvaret"},
    {"social", "Socialtjänsten"},
    {"af", "Arbetsförmedlingen"},
    {"audit", "Granskare"},
    {"broker", "Förmedlingen"},
};

static const s_text_t s_errs[] = {
    {"POLICY", "den här verksamheten får inte skicka det här meddelandet dit"},
    {"CONSENT", "inget giltigt samtycke täcker det som skulle lämnas ut"},
    {"AGE", "den unges ålder ligger utanför det lagen medger"},
    {"SENSITIVE_TEXT", "texten innehåller känsliga personuppgifter (till exempel om hälsa, missbruk eller kontakt med "
                       "socialtjänsten) som inte får lämnas hit; skriv om den utan dem och skicka igen"},
    {"SOCIAL_SECRECY", "det socialtjänsten vet, även att den unge har kontakt med socialtjänsten, får inte lämnas till "
                       "Arbetsförmedlingen; skicka remissen som ett eget ärende, inte som svar på socialtjänstens besked"},
    {"PROTECTED", "kontaktuppgifter får inte lämnas för en person med skyddade personuppgifter"},
    {"ID_FORMAT", "personnumret har fel form; skriv till exempel 080314-2710"},
    {"ID_CHECKSUM", "personnumret har fel kontrollsiffra; kontrollera sista siffran"},
    {"ID_DATE", "personnumret innehåller ett datum som inte finns"},
    {"KOMMUN", "okänd kommunkod"},
    {"SKOLENHET", "skolenhetskoden ska vara åtta siffror"},
    {"MISSING_FIELD", "en uppgift saknas"},
    {"BAD_FIELD", "en uppgift har ett otillåtet värde"},
    {"LEGAL_BASIS", "fel rättslig grund för meddelandet"},
    {"NOT_FOUND", "det meddelande som svaret gäller finns inte här"},
    {"NOT_AUTHORISED", "inte behörig"},
    {"UNAVAILABLE", "tjänsten är inte tillgänglig just nu"},
    {"TIMEOUT", "inget svar i tid"},
    {"STORE_FULL", "förmedlingens lagring är full; driften behöver utöka den"},
    {"DISK_FULL", "förmedlingens disk är full; driften behöver frigöra utrymme"},
};

static const char *
s_find(const s_text_t *t, size_t n, const char *key)
{
    for (size_t i = 0; key && i < n; i++)
        if (!strcmp(t[i].key, key))
            return t[i].text;
    return NULL;
}

#define S_N(a) (sizeof a / sizeof *a)

const char *
soffa_web_tr(const char *key)
{
    const char *t = s_find(s_sv, S_N(s_sv), key);
    if (t)
        return t;
    /* A missing text shows as [key]: visible on the page and caught by tests. */
    static __thread char missing[96];
    snprintf(missing, sizeof missing, "[%s]", key ? key : "?");
    return missing;
}

const char *
soffa_web_tr_key(size_t i)
{
    return i < S_N(s_sv) ? s_sv[i].key : NULL;
}

const char *
soffa_web_code(const char *field, const char *code)
{
    if (!code)
        return "";
    for (size_t i = 0; i < S_N(s_codes); i++)
        if (s_codes[i].field && field && !strcmp(s_codes[i].field, field) && !strcmp(s_codes[i].code, code))
            return s_codes[i].text;
    for (size_t i = 0; i < S_N(s_codes); i++)
        if (!s_codes[i].field && !strcmp(s_codes[i].code, code))
            return s_codes[i].text;
    return code;
}

const char *
soffa_web_type_name(const char *type)
{
    const char *t = s_find(s_types, S_N(s_types), type);
    return t ? t : type ? type : "";
}

const char *
soffa_web_field_label(const char *field)
{
    const char *t = s_find(s_fields, S_N(s_fields), field);
    return t ? t : field ? field : "";
}

const char *
soffa_web_role_label(const char *role)
{
    const char *t = s_find(s_roles, S_N(s_roles), role);
    return t ? t : role ? role : "";
}

const char *
soffa_web_err_text(const char *code)
{
    const char *t = s_find(s_errs, S_N(s_errs), code);
    return t ? t : "meddelandet kunde inte tas emot";
}
