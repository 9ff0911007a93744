/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "bus.h"
#include "logging.h"
#include "polkit.h"

/* How long an interactive authorization may take (a person typing a password), and a plain check. */
#define POLKIT_TIMEOUT_INTERACTIVE_USEC (5 * 60 * 1000000ULL)
#define POLKIT_TIMEOUT_USEC             (25 * 1000000ULL)

struct AuthQuery {
        AuthQuery *next, **prevp;
        Manager *mgr;
        sd_bus_message *call; /* the caller's method call, answered when polkit has */
        sd_bus_slot *slot;
        AuthorizedFunc func;
};

static AuthQuery *auth_query_free(AuthQuery *q)
{
        if (!q)
                return NULL;
        if (q->prevp) {
                *q->prevp = q->next;
                if (q->next)
                        q->next->prevp = q->prevp;
        }
        sd_bus_slot_unref(q->slot);
        sd_bus_message_unref(q->call);
        free(q);
        return NULL;
}

void polkit_cancel_all(Manager *mgr)
{
        while (mgr->auth_queries)
                auth_query_free(mgr->auth_queries);
}

static int deny(sd_bus_message *call, sd_bus_error *error)
{
        return sd_bus_error_set(error, SD_BUS_ERROR_ACCESS_DENIED, BUS_ACCESS_DENIED_MESSAGE);
}

static int on_check_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error)
{
        AuthQuery *q = userdata;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        int authorized = false, challenge = false, r;

        if (e) {
                /* No polkit on the bus is the ordinary case on a small gateway: no log. */
                if (!sd_bus_error_has_names(e, SD_BUS_ERROR_SERVICE_UNKNOWN, SD_BUS_ERROR_NAME_HAS_NO_OWNER))
                        log_msg(LOG_LEVEL_WARNING, "polkit could not check %s for %s: %s", POLKIT_ACTION,
                                sd_bus_message_get_sender(q->call) ?: "(unknown)", e->message ?: e->name);
        } else {
                r = sd_bus_message_enter_container(reply, 'r', "bba{ss}");
                if (r >= 0)
                        r = sd_bus_message_read(reply, "bb", &authorized, &challenge);
                if (r < 0) {
                        log_errno(LOG_LEVEL_WARNING, r, "polkit sent a malformed reply: %m");
                        authorized = false;
                }
        }

        if (authorized) {
                r = q->func(q->call, q->mgr, &error);
                if (r < 0 || sd_bus_error_is_set(&error))
                        (void)sd_bus_reply_method_errno(q->call, r, &error);
        } else {
                if (challenge)
                        (void)sd_bus_error_set(&error, SD_BUS_ERROR_INTERACTIVE_AUTHORIZATION_REQUIRED,
                                               "authentication is required to manage updates "
                                               "(polkit action " POLKIT_ACTION ")");
                else
                        (void)deny(q->call, &error);
                (void)sd_bus_reply_method_error(q->call, &error);
        }
        sd_bus_error_free(&error);
        auth_query_free(q);
        return 0;
}

bool polkit_caller_is_root(sd_bus_message *m)
{
        sd_bus_creds *creds = NULL;
        uid_t uid = (uid_t)-1;
        int r;

        r = sd_bus_query_sender_creds(m, SD_BUS_CREDS_EUID | SD_BUS_CREDS_UID | SD_BUS_CREDS_PID, &creds);
        if (r >= 0) {
                r = sd_bus_creds_get_euid(creds, &uid);
                if (r < 0)
                        r = sd_bus_creds_get_uid(creds, &uid);
        }
        sd_bus_creds_unref(creds);
        return r >= 0 && uid == 0;
}

int polkit_authorize(sd_bus_message *m, Manager *mgr, AuthorizedFunc func, sd_bus_error *error)
{
        sd_bus_message *check = NULL;
        AuthQuery *q;
        const char *sender = sd_bus_message_get_sender(m);
        bool interactive = sd_bus_message_get_allow_interactive_authorization(m) > 0;
        int r;

        if (polkit_caller_is_root(m))
                return func(m, mgr, error);
        if (!sender)
                return deny(m, error);

        q = calloc(1, sizeof(*q));
        if (!q)
                return -ENOMEM;
        r = sd_bus_message_new_method_call(sd_bus_message_get_bus(m), &check, "org.freedesktop.PolicyKit1",
                                           "/org/freedesktop/PolicyKit1/Authority",
                                           "org.freedesktop.PolicyKit1.Authority", "CheckAuthorization");
        if (r >= 0)
                /* subject ("system-bus-name", {"name": sender}), action, details, flags, cancellation id */
                r = sd_bus_message_append(check, "(sa{sv})sa{ss}us", "system-bus-name", 1, "name", "s",
                                          sender, POLKIT_ACTION, 0, (uint32_t)(interactive ? 1 : 0), "");
        if (r >= 0)
                r = sd_bus_call_async(sd_bus_message_get_bus(m), &q->slot, check, on_check_reply, q,
                                      interactive ? POLKIT_TIMEOUT_INTERACTIVE_USEC : POLKIT_TIMEOUT_USEC);
        sd_bus_message_unref(check);
        if (r < 0) {
                auth_query_free(q);
                return r;
        }
        q->mgr = mgr;
        q->func = func;
        q->call = sd_bus_message_ref(m);
        q->next = mgr->auth_queries;
        if (q->next)
                q->next->prevp = &q->next;
        q->prevp = &mgr->auth_queries;
        mgr->auth_queries = q;
        return 1; /* the reply follows polkit's answer */
}
