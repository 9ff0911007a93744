/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "hawkbit.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "bundle.h"
#include "fileio.h"
#include "hawkbit-ddi.h"
#include "hexdecoct.h"
#include "json-util.h"
#include "log.h"
#include "path-util.h"
#include "state.h"
#include "strv.h"
#include "time-util.h"
#include "version.h"

/* What hawkbit.json remembers of the one action the device works on (beside it: the action the user
 * declined, declined_read()). */
typedef enum Phase {
        PHASE_INSTALLING, /* the install of its bundle started */
        PHASE_INSTALLED,  /* written and activated: the reboot decides */
        PHASE_REPORT,     /* the final result is known and waits for delivery */
        _PHASE_MAX,
        _PHASE_INVALID = -EINVAL,
} Phase;

static const char *const phase_table[_PHASE_MAX] = {
        [PHASE_INSTALLING] = "installing",
        [PHASE_INSTALLED] = "installed",
        [PHASE_REPORT] = "report",
};

static const char *phase_to_string(Phase p)
{
        return string_table_get(phase_table, ELEMENTSOF(phase_table), (int)p);
}

static Phase phase_from_string(const char *s)
{
        return (Phase)string_table_lookup(phase_table, ELEMENTSOF(phase_table), s);
}

typedef struct Pending {
        char *action;   /* the action id */
        char *version;  /* the version its bundle brings */
        char *feedback; /* the feedback URL (the deploymentBase link's path + /feedback) */
        Phase phase;
        bool announced; /* PHASE_INSTALLED: "waiting for the reboot" was sent */
        char *finished; /* PHASE_REPORT: success | failure */
        char *detail;   /* PHASE_REPORT: the reason */
} Pending;

struct Hawkbit {
        const Config *config;
        int cancel_fd;
        char *base; /* {url}{tenant}/controller/v1/{controller-id} */
        char *cid;  /* the controller id */
        /* the last poll answer with its ETag, for If-None-Match */
        char etag[FETCH_ETAG_MAX];
        DdiPoll last;
        bool has_last;
        uint64_t sleep_usec;
        /* loop thread: the one feedback in flight, and when progress was last sent */
        Fetch *inflight;
        uint64_t progress_sent_usec;
        Pending *current;          /* the action being installed (loop thread) */
        char *gone;                /* the action whose artifact answered 404: not offered again */
        uint64_t retry_after_usec; /* the longest Retry-After of a 429 or 503 in this check */
        char *attributes_sent;     /* the last configData body the server took */
        char *config_href;         /* the configData link the server gave last */
        char *downloaded_sent;     /* the action told `downloaded` last */
        bool installing_kept;      /* loop thread: the install reads the kept copy */
        /* loop thread, during an install: the poll for a cancel of its action (the base, then the
         * cancelAction link), its answer so far, when it last ran, and whether the server cancelled */
        Fetch *watch;
        FetchEngine *watch_engine;
        bool watch_order; /* the GET of the cancel order (else of the base) */
        char *watch_buf;
        size_t watch_size;
        uint64_t watch_usec;
        bool cancelled;
        /* consent (confirmationBase): the user's answer for the next check, the action the user
         * confirmed (its deployment's offer is `approved`), the one the user denied (not announced
         * again by this daemon) */
        char *consent_action;
        bool consent_confirm;
        char *consent_reason;
        char *approved;
        char *declined;
        bool declined_loaded;  /* declined read from hawkbit.json */
        int auto_confirm_want; /* updatectl enable (1) or disable (0) to tell the server; -1: nothing */
};

static void pending_free(Pending *p)
{
        if (!p)
                return;
        free(p->action);
        free(p->version);
        free(p->feedback);
        free(p->finished);
        free(p->detail);
        free(p);
}

static void pending_freep(Pending **p)
{
        pending_free(*p);
}

Hawkbit *hawkbit_free(Hawkbit *h)
{
        if (!h)
                return NULL;
        fetch_free(h->inflight);
        fetch_free(h->watch);
        free(h->watch_buf);
        free(h->base);
        free(h->cid);
        free(h->gone);
        free(h->attributes_sent);
        free(h->config_href);
        free(h->downloaded_sent);
        free(h->consent_action);
        free(h->consent_reason);
        free(h->approved);
        free(h->declined);
        ddi_poll_done(&h->last);
        pending_free(h->current);
        free(h);
        return NULL;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(Hawkbit *, hawkbit_free);

static const char *auth_name(HawkbitAuth a)
{
        switch (a) {
        case HAWKBIT_AUTH_TARGET_TOKEN:
                return "target token";
        case HAWKBIT_AUTH_GATEWAY_TOKEN:
                return "gateway token";
        case HAWKBIT_AUTH_NONE:
        case _HAWKBIT_AUTH_MAX:
        case _HAWKBIT_AUTH_INVALID:
                break;
        }
        return "client certificate";
}

int hawkbit_new(const Config *c, int cancel_fd, Hawkbit **ret, UpkErr *err)
{
        _cleanup_(hawkbit_freep) Hawkbit *h = NULL;
        _cleanup_free_ char *tenant = NULL, *v1 = NULL, *machine_id = NULL;

        if (!c->source_url)
                return upk_err(err, UPK_ERR_CONFIG, -EINVAL,
                               "[source] url: required for type = hawkbit (the server's root)");
        if (!c->source_controller_id) {
                /* The default: the machine id (32 hex digits). */
                size_t n = 0;

                if (read_full_file("/etc/machine-id", 64, &machine_id, &n) < 0 || n < 32 ||
                    strspn(machine_id, "0123456789abcdef") != 32)
                        return upk_err(
                                err, UPK_ERR_CONFIG, -EINVAL,
                                "[source] controller-id: required for type = hawkbit (/etc/machine-id "
                                "gives no machine id to use instead)");
                machine_id[32] = 0;
        }
        if (c->source_auth != HAWKBIT_AUTH_NONE && !c->source_token_file)
                return upk_err(err, UPK_ERR_CONFIG, -EINVAL, "[source] token-file: required for auth = %s",
                               hawkbit_auth_to_string(c->source_auth));
        h = calloc(1, sizeof(*h));
        if (!h)
                return upk_err_oom(err);
        h->config = c;
        h->cancel_fd = cancel_fd;
        h->auto_confirm_want = -1;
        tenant = path_join(c->source_url, c->source_tenant ?: "DEFAULT");
        v1 = tenant ? path_join(tenant, "controller/v1") : NULL;
        h->cid = strdup(c->source_controller_id ?: machine_id);
        h->base = v1 && h->cid ? path_join(v1, h->cid) : NULL;
        if (!h->base)
                return upk_err_oom(err);
        *ret = TAKE_PTR(h);
        return 0;
}

uint64_t hawkbit_sleep_usec(const Hawkbit *h)
{
        return h->sleep_usec;
}

uint64_t hawkbit_retry_after_usec(const Hawkbit *h)
{
        return h->retry_after_usec;
}

/* ---- credentials ---- */

/* "Authorization: TargetToken ..." (or GatewayToken) from the token file, its trailing line breaks
 * dropped; NULL for auth = none. The token never appears in a message. */
static int auth_header(const Hawkbit *h, char **ret, UpkErr *err)
{
        const Config *c = h->config;
        _cleanup_free_ char *token = NULL;
        size_t n;
        int r;

        if (c->source_auth == HAWKBIT_AUTH_NONE) {
                *ret = NULL;
                return 0;
        }
        r = read_full_file(c->source_token_file, HAWKBIT_TOKEN_MAX, &token, &n);
        if (r < 0)
                return upk_err(err, UPK_ERR_CONFIG, r, "[source] token-file: cannot read %s: %m",
                               c->source_token_file);
        while (n > 0 && (token[n - 1] == '\n' || token[n - 1] == '\r'))
                token[--n] = 0;
        if (n == 0 || strlen(token) != n)
                return upk_err(err, UPK_ERR_CONFIG, -EINVAL, "[source] token-file: %s holds no token",
                               c->source_token_file);
        for (size_t i = 0; i < n; i++)
                if ((unsigned char)token[i] <= ' ' || token[i] == 0x7f)
                        return upk_err(err, UPK_ERR_CONFIG, -EINVAL,
                                       "[source] token-file: the token in %s has a space or control "
                                       "character",
                                       c->source_token_file);
        *ret = strdup_printf("Authorization: %s %s",
                             c->source_auth == HAWKBIT_AUTH_TARGET_TOKEN ? "TargetToken" : "GatewayToken",
                             token);
        explicit_bzero(token, n);
        return *ret ? 0 : upk_err_oom(err);
}

int hawkbit_download_headers(Hawkbit *h, char ***ret, UpkErr *err)
{
        char *line = NULL, **v;
        int r;

        r = auth_header(h, &line, err);
        if (r < 0)
                return r;
        if (!line) {
                *ret = NULL;
                return 0;
        }
        v = calloc(2, sizeof(char *));
        if (!v) {
                free(line);
                return upk_err_oom(err);
        }
        v[0] = line;
        *ret = v;
        return 0;
}

/* ---- REST ---- */

typedef struct Answer {
        long status;
        char *body;
        size_t size;
        char etag[FETCH_ETAG_MAX];
        unsigned retry_after_sec;
} Answer;

static void answer_done(Answer *a)
{
        free(a->body);
        *a = (Answer){};
}

static void request_options(const Hawkbit *h, FetchOptions *fo, const char *const *headers)
{
        *fo = (FetchOptions){ .no_retry = true,
                              .any_status = true,
                              .cancel_fd = h->cancel_fd,
                              .deadline_msec = HAWKBIT_REQUEST_MSEC,
                              .headers = headers };
        fetch_options_from_config(fo, h->config);
}

/* One call: the answer whatever its status; an error only when no answer came. */
static int rest(Hawkbit *h, const char *method, const char *url, const char *json, const char *etag,
                Answer *ret, UpkErr *err)
{
        _cleanup_free_ char *auth = NULL, *inm = NULL;
        const char *headers[5] = {};
        size_t n = 0;
        FetchOptions fo;
        FetchStats st;
        int r;

        r = auth_header(h, &auth, err);
        if (r < 0)
                return r;
        if (auth)
                headers[n++] = auth;
        headers[n++] = "Accept: application/hal+json, application/json";
        if (json)
                headers[n++] = "Content-Type: application/json";
        if (etag && etag[0]) {
                inm = strdup_printf("If-None-Match: %s", etag);
                if (!inm)
                        return upk_err_oom(err);
                headers[n++] = inm;
        }
        request_options(h, &fo, headers);
        fo.method = method;
        fo.body = json;
        fo.body_size = json ? strlen(json) : 0;
        *ret = (Answer){};
        r = fetch_request(url, DDI_RESPONSE_MAX, &fo, &ret->body, &ret->size, &st, err);
        if (auth)
                explicit_bzero(auth, strlen(auth));
        if (r < 0)
                return upk_err_prefix(err, "hawkBit server");
        ret->status = st.http_status;
        memcpy(ret->etag, st.etag, sizeof(ret->etag));
        ret->retry_after_sec = st.retry_after_sec;
        if ((ret->status == 429 || ret->status == 503) && st.retry_after_sec > 0) {
                uint64_t sec = st.retry_after_sec < HAWKBIT_SLEEP_MAX_SEC ? st.retry_after_sec
                                                                          : HAWKBIT_SLEEP_MAX_SEC;

                if (sec * USEC_PER_SEC > h->retry_after_usec)
                        h->retry_after_usec = sec * USEC_PER_SEC;
        }
        return 0;
}

/* An answer that is not a success, as an error naming the call and what to do. */
static int bad_status(const Hawkbit *h, const char *what, const char *url, const Answer *a, UpkErr *err)
{
        const Config *c = h->config;
        _cleanup_free_ char *reason = NULL;

        switch (a->status) {
        case 401:
        case 403:
                if (c->source_auth == HAWKBIT_AUTH_NONE)
                        return upk_err(err, UPK_ERR_NETWORK, -EACCES,
                                       "hawkBit server refused the %s of controller %s (HTTP %ld): %s", what,
                                       h->cid, a->status,
                                       c->source_client_cert
                                               ? "it did not accept the client certificate ([source] "
                                                 "client-cert)"
                                               : "auth = none and no client certificate: set auth and "
                                                 "token-file");
                return upk_err(
                        err, UPK_ERR_NETWORK, -EACCES,
                        "hawkBit server refused the %s of controller %s (HTTP %ld): it did not accept "
                        "the %s from %s ([source] auth = %s)",
                        what, h->cid, a->status, auth_name(c->source_auth), c->source_token_file,
                        hawkbit_auth_to_string(c->source_auth));
        case 404:
                return upk_err(err, UPK_ERR_NETWORK, -ENOENT,
                               "hawkBit server: %s: not found (HTTP 404): check [source] url, tenant and "
                               "controller-id",
                               url);
        case 429:
                return upk_err(err, UPK_ERR_NETWORK, -EBUSY, "hawkBit server is busy (HTTP 429) on the %s%s",
                               what, a->retry_after_sec ? "; it asks to wait" : "");
        default:
                break;
        }
        /* hawkBit explains most errors in an ExceptionInfo body: repeat its code and message. */
        if (ddi_parse_exception(a->body, a->size, &reason) < 0)
                return upk_err_oom(err);
        return upk_err(err, UPK_ERR_NETWORK, a->status >= 500 ? -EIO : -EPROTO,
                       "hawkBit server answered HTTP %ld to the %s (%s)%s%s", a->status, what, url,
                       reason ? ": " : "", reason ?: "");
}

static bool success(long status)
{
        return status >= 200 && status <= 299;
}

/* The feedback URL of an action link: its path without the query, plus /feedback. */
static char *feedback_url(const char *href)
{
        size_t n = strcspn(href, "?#");

        return strdup_printf("%.*s/feedback", (int)n, href);
}

static int post_feedback(Hawkbit *h, const char *url, const char *action, const char *execution,
                         const char *finished, const char *const *details, long *ret_status, UpkErr *err)
{
        _cleanup_free_ char *body = ddi_feedback_json(action, execution, finished, 0, 0, details);
        Answer a;
        int r;

        if (!body)
                return upk_err_oom(err);
        r = rest(h, "POST", url, body, NULL, &a, err);
        if (r < 0)
                return r;
        *ret_status = a.status;
        answer_done(&a);
        return 0;
}

/* ---- hawkbit.json ---- */

static int pending_load(const Config *c, Pending **ret)
{
        _cleanup_free_ char *path = path_join(c->data_dir, HAWKBIT_STATE_FILE), *data = NULL;
        _cleanup_(json_object_putp) json_object *root = NULL;
        _cleanup_(pending_freep) Pending *p = NULL;
        JsonCtx jc = { .what = HAWKBIT_STATE_FILE, .kind = UPK_ERR_IO };
        const char *phase;
        UpkErr e = {};
        size_t size;
        int r;

        jc.err = &e;
        *ret = NULL;
        if (!path)
                return -ENOMEM;
        r = read_full_file(path, HAWKBIT_STATE_MAX, &data, &size);
        if (r == -ENOENT)
                return 0;
        if (r >= 0)
                r = json_parse_strict(data, size,
                                      &(JsonStrictOptions){ .what = HAWKBIT_STATE_FILE,
                                                            .kind = UPK_ERR_IO,
                                                            .depth_max = 4 },
                                      &root, &e);
        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        if (r >= 0)
                r = json_get_dup_string(&jc, root, "", "action", false, DDI_ID_MAX, &p->action);
        if (r >= 0 && !p->action && json_object_object_get_ex(root, "declined", NULL))
                return 0; /* only the declined action (declined_read()) */
        if (r >= 0 && !p->action)
                r = json_get_dup_string(&jc, root, "", "action", true, DDI_ID_MAX, &p->action);
        if (r >= 0)
                r = json_get_dup_string(&jc, root, "", "version", true, DDI_NAME_MAX, &p->version);
        if (r >= 0)
                r = json_get_dup_string(&jc, root, "", "feedback", true, DDI_HREF_MAX + 16, &p->feedback);
        if (r >= 0)
                r = json_get_string(&jc, root, "", "phase", true, 16, &phase);
        if (r >= 0 && (p->phase = phase_from_string(phase)) < 0)
                r = -EBADMSG;
        if (r >= 0)
                r = json_get_bool(&jc, root, "", "announced", false, &p->announced);
        if (r >= 0)
                r = json_get_dup_string(&jc, root, "", "finished", p->phase == PHASE_REPORT, 16,
                                        &p->finished);
        if (r >= 0)
                r = json_get_dup_string(&jc, root, "", "detail", false, DDI_DETAIL_MAX, &p->detail);
        if (r >= 0 && p->finished && !streq(p->finished, "success") && !streq(p->finished, "failure"))
                r = -EBADMSG;
        if (r < 0) {
                upk_log(LOG_LEVEL_WARNING, "%s: unreadable (%s); the hawkBit action it held is forgotten",
                        path, e.msg[0] ? e.msg : strerror(-r));
                (void)unlink(path);
                return 0;
        }
        *ret = TAKE_PTR(p);
        return 0;
}

/* The action the user denied (updatectl decline), kept in hawkbit.json beside the pending action so that
 * a restart does not announce it again. NULL when there is none (or the file is unreadable). */
static char *declined_read(const Config *c)
{
        _cleanup_free_ char *path = path_join(c->data_dir, HAWKBIT_STATE_FILE), *data = NULL;
        _cleanup_(json_object_putp) json_object *root = NULL;
        JsonCtx jc = { .what = HAWKBIT_STATE_FILE, .kind = UPK_ERR_IO };
        char *id = NULL;
        UpkErr e = {};
        size_t size;

        jc.err = &e;
        if (!path || read_full_file(path, HAWKBIT_STATE_MAX, &data, &size) < 0 ||
            json_parse_strict(
                    data, size,
                    &(JsonStrictOptions){ .what = HAWKBIT_STATE_FILE, .kind = UPK_ERR_IO, .depth_max = 4 },
                    &root, &e) < 0 ||
            json_get_dup_string(&jc, root, "", "declined", false, DDI_ID_MAX, &id) < 0)
                return NULL;
        return id;
}

/* Write hawkbit.json: the pending action `p` and the declined action id, either may be NULL; both NULL
 * removes the file. */
static int state_write(const Config *c, const Pending *p, const char *declined, UpkErr *err)
{
        _cleanup_(json_object_putp) json_object *o = NULL;
        const char *s;
        int r = 0;

        if (!p && !declined) {
                _cleanup_free_ char *path = path_join(c->data_dir, HAWKBIT_STATE_FILE);

                if (!path)
                        return upk_err_oom(err);
                if (unlink(path) < 0 && errno != ENOENT)
                        return upk_err(err, UPK_ERR_IO, -errno, "cannot remove %s: %m", path);
                return 0;
        }
        o = json_object_new_object();
        if (!o)
                return upk_err_oom(err);
        if (p) {
                r = json_object_object_add(o, "action", json_object_new_string(p->action));
                r = r ?: json_object_object_add(o, "version", json_object_new_string(p->version));
                r = r ?: json_object_object_add(o, "feedback", json_object_new_string(p->feedback));
                r = r
                            ?: json_object_object_add(o, "phase",
                                                      json_object_new_string(phase_to_string(p->phase)));
                r = r ?: json_object_object_add(o, "announced", json_object_new_boolean(p->announced));
                if (p->finished)
                        r = r ?: json_object_object_add(o, "finished", json_object_new_string(p->finished));
                if (p->detail)
                        r = r ?: json_object_object_add(o, "detail", json_object_new_string(p->detail));
        }
        if (declined)
                r = r ?: json_object_object_add(o, "declined", json_object_new_string(declined));
        s = r == 0 ? json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN) : NULL;
        if (!s)
                return upk_err_oom(err);
        r = mkdir_p(c->data_dir, 0755);
        if (r >= 0)
                r = write_file_atomic(c->data_dir, HAWKBIT_STATE_FILE, s, strlen(s), 0600);
        if (r < 0)
                return upk_err(err, UPK_ERR_IO, r, "cannot write %s/%s: %m", c->data_dir,
                               HAWKBIT_STATE_FILE);
        return 0;
}

static int pending_save(const Config *c, const Pending *p, UpkErr *err)
{
        _cleanup_free_ char *declined = declined_read(c);

        return state_write(c, p, declined, err);
}

/* Forget the pending action; a declined one stays. */
static void pending_remove(const Config *c)
{
        _cleanup_free_ char *declined = declined_read(c);
        UpkErr e = {};

        if (state_write(c, NULL, declined, &e) < 0)
                upk_log(LOG_LEVEL_WARNING, "%s", e.msg);
}

/* Remember (or with NULL forget) the declined action, in memory and in hawkbit.json. */
static int declined_set(Hawkbit *h, const char *action, UpkErr *err)
{
        _cleanup_(pending_freep) Pending *p = NULL;
        char *copy = NULL;
        int r;

        if (action && !(copy = strdup(action)))
                return upk_err_oom(err);
        free(h->declined);
        h->declined = copy;
        r = pending_load(h->config, &p);
        if (r < 0)
                return upk_err(err, UPK_ERR_IO, r, "cannot read %s/%s: %m", h->config->data_dir,
                               HAWKBIT_STATE_FILE);
        return state_write(h->config, p, action, err);
}

/* What became of `version` after its reboot: the newest history entry about it since its install (the
 * confirmation, good or not), else whether it runs. Sets *ret_ok and *ret_detail. */
static int decide_result(const Config *c, const char *version, const char *current_version, bool *ret_ok,
                         char **ret_detail)
{
        HistoryEntry *hist = NULL;
        const HistoryEntry *found = NULL;
        size_t n = 0;

        if (history_load(c->data_dir, &hist, &n, NULL) >= 0)
                for (size_t i = n; i > 0 && !found; i--) {
                        const HistoryEntry *e = &hist[i - 1];

                        if (!e->version || !streq(e->version, version))
                                continue;
                        if (streq(e->operation, "install"))
                                break;
                        found = e;
                }
        if (found) {
                *ret_ok = found->ok;
                *ret_detail =
                        found->ok ? strdup_printf("version %s runs and passed its health checks", version)
                                  : strdup_printf("version %s did not stay: %s: %s; running %s", version,
                                                  found->operation, found->reason ?: "failed",
                                                  current_version ?: "an unknown version");
        } else {
                *ret_ok = current_version && streq(current_version, version);
                *ret_detail = *ret_ok ? strdup_printf("version %s runs", version)
                                      : strdup_printf("version %s did not stay; running %s", version,
                                                      current_version ?: "an unknown version");
        }
        history_free(hist, n);
        return *ret_detail ? 0 : -ENOMEM;
}

/* Step 1 of a check: what hawkbit.json says is due. Sets *ret_keep to the pending action that still
 * waits (for its reboot), so that the check does not offer it again. */
static int deliver_pending(Hawkbit *h, const char *current_version, Pending **ret_keep, UpkErr *err)
{
        const Config *c = h->config;
        _cleanup_(pending_freep) Pending *p = NULL;
        _cleanup_(state_freep) UpkState *s = NULL;
        long status = 0;
        int r;

        *ret_keep = NULL;
        r = pending_load(c, &p);
        if (r < 0)
                return upk_err_oom(err);
        if (!p)
                return 0;
        if (state_load(c->data_dir, &s, NULL) < 0)
                s = NULL;
        if (p->phase == PHASE_INSTALLING) {
                if (s && s->pending && s->pending_version && streq(s->pending_version, p->version))
                        p->phase = PHASE_INSTALLED; /* the daemon stopped before it heard of the end */
                else {
                        /* Interrupted before anything was activated: the server offers it again. */
                        pending_remove(c);
                        return 0;
                }
        }
        if (p->phase == PHASE_INSTALLED) {
                if (s && s->pending && s->pending_version && streq(s->pending_version, p->version)) {
                        if (!p->announced) {
                                const char *d[] = { "installed; waiting for the reboot into the new version",
                                                    NULL };

                                r = post_feedback(h, p->feedback, p->action, "proceeding", "none", d,
                                                  &status, err);
                                if (r >= 0 && success(status)) {
                                        p->announced = true;
                                        (void)pending_save(c, p, err);
                                        upk_err_clear(err);
                                }
                        }
                        *ret_keep = TAKE_PTR(p);
                        return 0;
                }
                /* The reboot came and the confirmation decided. */
                bool ok = false;

                free(p->finished);
                free(p->detail);
                p->detail = NULL;
                if (decide_result(c, p->version, current_version, &ok, &p->detail) < 0)
                        return upk_err_oom(err);
                p->finished = strdup(ok ? "success" : "failure");
                if (!p->finished || !p->detail)
                        return upk_err_oom(err);
                p->phase = PHASE_REPORT;
                r = pending_save(c, p, err);
                if (r < 0)
                        return r;
        }
        /* PHASE_REPORT */
        const char *d[] = { p->detail, NULL };

        r = post_feedback(h, p->feedback, p->action, "closed", p->finished, d, &status, err);
        if (r < 0)
                return upk_err_prefix(err, "cannot report the result of action %s yet", p->action);
        if (success(status) || status == 404 || status == 410) {
                upk_log(LOG_LEVEL_NOTICE, "hawkBit action %s: reported closed + %s (%s)%s", p->action,
                        p->finished, p->detail,
                        success(status) ? ""
                        : status == 410 ? "; the server had closed it already"
                                        : "; the server no longer knows it");
                pending_remove(c);
                return 0;
        }
        return upk_err(err, UPK_ERR_NETWORK, status >= 500 || status == 429 ? -EIO : -EPROTO,
                       "hawkBit server answered HTTP %ld to the final report of action %s; it is sent "
                       "again at the next check",
                       status, p->action);
}

/* ---- the poll and its links ---- */

static int poll_base(Hawkbit *h, UpkErr *err)
{
        Answer a;
        int r;

        r = rest(h, "GET", h->base, NULL, h->has_last ? h->etag : NULL, &a, err);
        if (r < 0)
                return r;
        if (a.status == 304 && h->has_last) {
                answer_done(&a);
                return 0;
        }
        if (!success(a.status)) {
                r = bad_status(h, "poll", h->base, &a, err);
                answer_done(&a);
                return r;
        }
        ddi_poll_done(&h->last);
        h->has_last = false;
        r = ddi_parse_poll(a.body, a.size, &h->last, err);
        if (r >= 0) {
                h->has_last = true;
                memcpy(h->etag, a.etag, sizeof(h->etag));
                if (h->last.sleep_sec) {
                        uint64_t sec = h->last.sleep_sec;

                        sec = sec < HAWKBIT_SLEEP_MIN_SEC   ? HAWKBIT_SLEEP_MIN_SEC
                              : sec > HAWKBIT_SLEEP_MAX_SEC ? HAWKBIT_SLEEP_MAX_SEC
                                                            : sec;
                        h->sleep_usec = sec * USEC_PER_SEC;
                } else
                        h->sleep_usec = 0;
        }
        answer_done(&a);
        return r < 0 ? upk_err_prefix(err, "%s", h->base) : 0;
}

/* configData: the device's attributes, merged into the server's. A failure is logged, not fatal. */
#define ATTRIBUTE_PAIRS_MAX (2 * (CONFIG_ATTRIBUTES_MAX + 16) + 1)

/* NAME=VALUE or NAME="VALUE" of an os-release file (no escapes beyond the quotes), into `buf`. */
static const char *os_release_field(const char *data, const char *name, char *buf, size_t size)
{
        size_t n = strlen(name);

        for (const char *l = data; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
                size_t len = strcspn(l, "\n");

                if (len <= n + 1 || strncmp(l, name, n) != 0 || l[n] != '=')
                        continue;
                l += n + 1;
                len -= n + 1;
                if (len >= 2 && (l[0] == '"' || l[0] == '\'') && l[len - 1] == l[0]) {
                        l++;
                        len -= 2;
                }
                if (len >= size)
                        len = size - 1;
                memcpy(buf, l, len);
                buf[len] = 0;
                return buf;
        }
        return NULL;
}

/* configData: what upkeep knows of the device and the [attributes] of upkeep.conf, merged into the
 * server's. Sent when the server asks (its link) and whenever one of them changed since the last
 * time the server took them. A failure is logged, not fatal. */
static void put_config_data(Hawkbit *h, const char *current_version)
{
        const Config *c = h->config;
        _cleanup_(state_freep) UpkState *s = NULL;
        _cleanup_free_ char *os = NULL, *body = NULL, *href = NULL;
        char name[129], id[129], version_id[129], pretty[129];
        const char *pairs[ATTRIBUTE_PAIRS_MAX] = {};
        struct utsname u;
        size_t n = 0, size;
        UpkErr e = {};
        Answer a;

#define PAIR(k, v)                                        \
        do {                                              \
                if ((v) && n + 2 < ATTRIBUTE_PAIRS_MAX) { \
                        pairs[n++] = (k);                 \
                        pairs[n++] = (v);                 \
                }                                         \
        } while (0)
        if (state_load(c->data_dir, &s, NULL) < 0)
                s = NULL;
        PAIR("compatible", c->compatible);
        PAIR("version", current_version);
        PAIR("upkeep_version", PACKAGE_VERSION);
        PAIR("auto_install", auto_install_to_string(c->auto_install));
        PAIR("auto_update", !s || s->auto_update ? "yes" : "no");
        PAIR("support_end", s && s->support_end ? s->support_end : c->support_end);
        if (uname(&u) >= 0) {
                PAIR("kernel", u.release);
                PAIR("machine", u.machine);
        }
        if (read_full_file(c->version_file ?: "/etc/os-release", 64 * 1024, &os, &size) >= 0) {
                PAIR("os_name", os_release_field(os, "NAME", name, sizeof(name)));
                PAIR("os_id", os_release_field(os, "ID", id, sizeof(id)));
                PAIR("os_version_id", os_release_field(os, "VERSION_ID", version_id, sizeof(version_id)));
                PAIR("os_pretty_name", os_release_field(os, "PRETTY_NAME", pretty, sizeof(pretty)));
        }
        for (size_t i = 0; i < c->n_attributes; i++)
                PAIR(c->attributes[2 * i], c->attributes[2 * i + 1]);
#undef PAIR
        body = ddi_config_data_json(pairs);
        if (!body)
                return;
        if (h->last.config_data_href &&
            (!h->config_href || !streq(h->config_href, h->last.config_data_href))) {
                free(h->config_href);
                h->config_href = strdup(h->last.config_data_href);
        }
        if (!h->last.config_data_href && h->attributes_sent && streq(h->attributes_sent, body))
                return; /* not asked for, and nothing changed */
        href = h->config_href ? strdup(h->config_href) : strdup_printf("%s/configData", h->base);
        if (!href || rest(h, "PUT", href, body, NULL, &a, &e) < 0) {
                upk_log(LOG_LEVEL_WARNING, "cannot send the device's attributes to hawkBit: %s",
                        e.msg[0] ? e.msg : "out of memory");
                return;
        }
        if (success(a.status)) {
                free(h->attributes_sent);
                h->attributes_sent = TAKE_PTR(body);
        } else
                upk_log(LOG_LEVEL_WARNING, "hawkBit server answered HTTP %ld to the device's attributes",
                        a.status);
        answer_done(&a);
        /* The next poll must not reuse an answer that still asks for them. */
        h->etag[0] = 0;
}

/* ---- the kept copy of a bundle downloaded before its install was allowed ---- */

/* What hawkbit-download.json says of hawkbit-download.upk. */
typedef struct Kept {
        char *sha256;
        char *version;
        char *action;
        uint64_t size;
} Kept;

static void kept_done(Kept *k)
{
        free(k->sha256);
        free(k->version);
        free(k->action);
        *k = (Kept){};
}

static void kept_remove(const Config *c)
{
        _cleanup_free_ char *meta = path_join(c->data_dir, HAWKBIT_KEPT_META),
                            *file = path_join(c->data_dir, HAWKBIT_KEPT_FILE),
                            *part = path_join(c->data_dir, HAWKBIT_KEPT_FILE ".part");

        /* The description first: without it the copy is never used. */
        if (meta)
                (void)unlink(meta);
        if (file)
                (void)unlink(file);
        if (part)
                (void)unlink(part);
}

/* 1 with the kept copy's description, 0 when there is none (a copy without a description, or one whose
 * size does not match, is removed). */
static int kept_load(const Config *c, Kept *ret)
{
        _cleanup_free_ char *meta = path_join(c->data_dir, HAWKBIT_KEPT_META),
                            *file = path_join(c->data_dir, HAWKBIT_KEPT_FILE), *data = NULL;
        _cleanup_(json_object_putp) json_object *root = NULL;
        JsonCtx jc = { .what = HAWKBIT_KEPT_META, .kind = UPK_ERR_IO };
        UpkErr e = {};
        struct stat st;
        size_t size;
        uint64_t n = 0;
        int r;

        jc.err = &e;
        *ret = (Kept){};
        if (!meta || !file)
                return -ENOMEM;
        r = read_full_file(meta, 4096, &data, &size);
        if (r == -ENOENT && access(file, F_OK) < 0)
                return 0;
        if (r >= 0)
                r = json_parse_strict(data, size,
                                      &(JsonStrictOptions){ .what = HAWKBIT_KEPT_META,
                                                            .kind = UPK_ERR_IO,
                                                            .depth_max = 2 },
                                      &root, &e);
        if (r >= 0)
                r = json_get_dup_string(&jc, root, "", "sha256", true, 64, &ret->sha256);
        if (r >= 0)
                r = json_get_dup_string(&jc, root, "", "version", true, DDI_NAME_MAX, &ret->version);
        if (r >= 0)
                r = json_get_dup_string(&jc, root, "", "action", true, DDI_ID_MAX, &ret->action);
        if (r >= 0)
                r = json_get_uint(&jc, root, "", "size", true, SOURCE_URL_BUNDLE_MAX, &n);
        if (r >= 0 && (n == 0 || stat(file, &st) < 0 || (uint64_t)st.st_size != n))
                r = -EBADMSG;
        if (r < 0) {
                kept_done(ret);
                kept_remove(c);
                return 0;
        }
        ret->size = n;
        return 1;
}

static int kept_save(const Config *c, const Kept *k, UpkErr *err)
{
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        const char *s;
        int r;

        if (!o)
                return upk_err_oom(err);
        r = json_object_object_add(o, "sha256", json_object_new_string(k->sha256));
        r = r ?: json_object_object_add(o, "version", json_object_new_string(k->version));
        r = r ?: json_object_object_add(o, "action", json_object_new_string(k->action));
        r = r ?: json_object_object_add(o, "size", json_object_new_int64((int64_t)k->size));
        s = r == 0 ? json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN) : NULL;
        if (!s)
                return upk_err_oom(err);
        r = write_file_atomic(c->data_dir, HAWKBIT_KEPT_META, s, strlen(s), 0600);
        if (r < 0)
                return upk_err(err, UPK_ERR_IO, r, "cannot write %s/%s: %m", c->data_dir, HAWKBIT_KEPT_META);
        return 0;
}

/* GET an action resource: 1 with the answer, 0 when it is gone (404: the action moved on between the
 * poll and now), or the error (another status). */
static int get_action(Hawkbit *h, const char *href, const char *what, Answer *ret, UpkErr *err)
{
        int r = rest(h, "GET", href, NULL, NULL, ret, err);

        if (r < 0)
                return r;
        if (ret->status == 404 || !success(ret->status)) {
                r = ret->status == 404 ? 0 : bad_status(h, what, href, ret, err);
                answer_done(ret);
                return r;
        }
        return 1;
}

static int handle_cancel(Hawkbit *h, const Pending *keep, UpkErr *err)
{
        _cleanup_free_ char *stop = NULL, *url = NULL;
        const char *href = h->last.cancel_href;
        long status = 0;
        Answer a;
        int r;

        r = get_action(h, href, "cancel order", &a, err);
        if (r <= 0)
                return r;
        r = ddi_parse_cancel(a.body, a.size, &stop, err);
        answer_done(&a);
        if (r < 0)
                return r;
        url = feedback_url(href);
        if (!url)
                return upk_err_oom(err);
        if (keep && streq(keep->action, stop)) {
                const char *d[] = { "cannot cancel: the update is installed and only waits for the reboot; "
                                    "the result follows after it",
                                    NULL };

                r = post_feedback(h, url, stop, "rejected", "none", d, &status, err);
                if (r >= 0)
                        upk_log(LOG_LEVEL_NOTICE,
                                "hawkBit action %s: cancel refused, the update is installed", stop);
        } else {
                const char *d[] = { "cancelled; nothing of this action was installed", NULL };
                _cleanup_(kept_done) Kept k = {};

                if (kept_load(h->config, &k) > 0 && streq(k.action, stop))
                        kept_remove(h->config);
                r = post_feedback(h, url, stop, "closed", "success", d, &status, err);
                if (r >= 0)
                        upk_log(LOG_LEVEL_NOTICE, "hawkBit action %s: cancelled by the server", stop);
        }
        h->etag[0] = 0;
        return r;
}

static int strv_append(char ***l, char *s)
{
        size_t n = strv_length(*l);
        char **v = reallocarray(*l, n + 2, sizeof(char *));

        if (!v)
                return -ENOMEM;
        v[n] = s;
        v[n + 1] = NULL;
        *l = v;
        return 0;
}

static bool is_bundle(const DdiArtifact *a)
{
        size_t n = strlen(a->filename);

        return n > 4 && streq(a->filename + n - 4, ".upk");
}

/* The artifact that is an upkeep bundle (the last one), and how many there are. */
static const DdiArtifact *find_bundle(const DdiDeployment *d, size_t *ret_n)
{
        const DdiArtifact *bundle = NULL;

        *ret_n = 0;
        for (size_t i = 0; i < d->n_artifacts; i++)
                if (is_bundle(&d->artifacts[i])) {
                        (*ret_n)++;
                        bundle = &d->artifacts[i];
                }
        return bundle;
}

/* Closes an action the device cannot carry out, saying why. */
static int refuse(Hawkbit *h, const char *url, const char *action, const char *why, UpkErr *err)
{
        const char *d[] = { why, NULL };
        long status = 0;
        int r;

        upk_log(LOG_LEVEL_WARNING, "hawkBit action %s refused: %s", action, why);
        r = post_feedback(h, url, action, "closed", "failure", d, &status, err);
        h->etag[0] = 0;
        return r < 0 ? r : 0;
}

typedef struct KeepFetch {
        int fd;
        EVP_MD_CTX *sha256;
        uint64_t size;
        const char *path;
} KeepFetch;

static int keep_data(Fetch *f, const void *buf, size_t size, uint64_t offset, void *userdata, UpkErr *err)
{
        KeepFetch *k = userdata;
        int r;

        /* The fetch hands every byte once, in order, also across its resumes. */
        r = loop_write(k->fd, buf, size);
        if (r < 0)
                return upk_err(err, UPK_ERR_IO, r, "cannot write %s: %m", k->path);
        if (EVP_DigestUpdate(k->sha256, buf, size) != 1)
                return upk_err(err, UPK_ERR_IO, -EIO, "cannot compute a SHA-256");
        k->size += size;
        return FETCH_DATA_CONTINUE;
}

/* Download the bundle of `d` into DATA_DIR/hawkbit-download.upk and verify it as an install would (the
 * server's size and sha256, the signature against the keyring, compatible, every payload's hash) without
 * writing any slot. Errors: UPK_ERR_NETWORK (the transfer; -ENOENT for a 404: the action went away),
 * -ENOSPC (no room), others (the bytes are not what they must be). Nothing is kept on an error. */
static int keep_bundle(Hawkbit *h, const DdiDeployment *d, const DdiArtifact *a, UpkErr *err)
{
        const Config *c = h->config;
        _cleanup_free_ char *part = path_join(c->data_dir, HAWKBIT_KEPT_FILE ".part"),
                            *file = path_join(c->data_dir, HAWKBIT_KEPT_FILE);
        _cleanup_strv_free_erase_ char **headers = NULL;
        _cleanup_(bundle_freep) Bundle *b = NULL;
        _cleanup_close_ int fd = -EBADF;
        KeepFetch k = {};
        uint8_t digest[32];
        unsigned len = 0;
        char hex[65];
        struct statvfs sv;
        uint64_t avail, max;
        FetchOptions fo;
        Kept kept = {};
        int r;

        if (!part || !file)
                return upk_err_oom(err);
        kept_remove(c);
        r = mkdir_p(c->data_dir, 0755);
        if (r < 0 || statvfs(c->data_dir, &sv) < 0)
                return upk_err(err, UPK_ERR_IO, r < 0 ? r : -errno, "%s: %m", c->data_dir);
        avail = (uint64_t)sv.f_bavail * sv.f_frsize;
        avail = avail > HAWKBIT_KEPT_RESERVE ? avail - HAWKBIT_KEPT_RESERVE : 0;
        if (avail == 0 || (a->has_size && a->size > avail))
                return upk_err(err, UPK_ERR_IO, -ENOSPC,
                               "no room in %s to keep %s (%" PRIu64 " bytes; %" PRIu64
                               " free beside the %u MiB "
                               "left free)",
                               c->data_dir, a->filename, a->has_size ? a->size : 0, avail,
                               (unsigned)(HAWKBIT_KEPT_RESERVE >> 20));
        max = a->has_size ? (a->size ?: 1) : avail;
        r = hawkbit_download_headers(h, &headers, err);
        if (r < 0)
                return r;
        fd = open(part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return upk_err(err, UPK_ERR_IO, -errno, "cannot create %s: %m", part);
        k = (KeepFetch){ .fd = fd, .sha256 = EVP_MD_CTX_new(), .path = part };
        if (!k.sha256 || EVP_DigestInit_ex(k.sha256, EVP_sha256(), NULL) != 1) {
                EVP_MD_CTX_free(k.sha256);
                (void)unlink(part);
                return upk_err(err, UPK_ERR_IO, -EIO, "cannot set up SHA-256");
        }
        fo = (FetchOptions){ .headers = (const char *const *)headers, .cancel_fd = h->cancel_fd };
        fetch_options_from_config(&fo, c);
        upk_log(LOG_LEVEL_NOTICE,
                "hawkBit action %s: downloading %s to keep it until its install is allowed", d->id,
                a->filename);
        r = fetch_sync(a->href, max, &fo, keep_data, &k, NULL, err);
        if (r >= 0 && (EVP_DigestFinal_ex(k.sha256, digest, &len) != 1 || len != sizeof(digest)))
                r = upk_err(err, UPK_ERR_IO, -EIO, "cannot compute a SHA-256");
        EVP_MD_CTX_free(k.sha256);
        if (r >= 0) {
                hex_encode(digest, sizeof(digest), hex);
                if (a->has_size && k.size != a->size)
                        r = upk_err(err, UPK_ERR_PAYLOAD, -EBADMSG,
                                    "%s: %" PRIu64 " bytes, but the hawkBit server announced %" PRIu64,
                                    a->filename, k.size, a->size);
                else if (a->sha256 && !streq(hex, a->sha256))
                        r = upk_err(err, UPK_ERR_PAYLOAD, -EBADMSG,
                                    "%s: its sha256 is %s, but the hawkBit server announced %s", a->filename,
                                    hex, a->sha256);
        }
        if (r >= 0 && fsync(fd) < 0)
                r = upk_err(err, UPK_ERR_IO, -errno, "cannot write %s: %m", part);
        fd = safe_close(fd);
        /* The whole bundle, checked as an install would before it writes a slot. */
        if (r >= 0)
                r = bundle_open_path(part,
                                     &(BundleOpenOptions){ .keyring = c->keyring,
                                                           .crl = c->crl,
                                                           .allow_any_eku = c->allow_any_eku },
                                     &b, err);
        if (r >= 0 && c->compatible && !streq(bundle_get_manifest(b)->compatible, c->compatible))
                r = upk_err(err, UPK_ERR_PAYLOAD, -EMEDIUMTYPE,
                            "%s: the bundle is for \"%s\", this device is \"%s\"", a->filename,
                            bundle_get_manifest(b)->compatible, c->compatible);
        if (r >= 0) {
                bundle_set_content_check(b, false); /* as the installer */
                r = bundle_verify_rest(b, err);
        }
        if (r >= 0) {
                kept = (Kept){ .sha256 = hex,
                               .version = bundle_get_manifest(b)->version_str,
                               .action = d->id,
                               .size = k.size };
                if (rename(part, file) < 0)
                        r = upk_err(err, UPK_ERR_IO, -errno, "cannot rename %s: %m", part);
                else
                        r = kept_save(c, &kept, err);
        }
        if (r < 0) {
                kept_remove(c);
                return r;
        }
        upk_log(LOG_LEVEL_NOTICE, "hawkBit action %s: %s (version %s) downloaded, verified and kept in %s",
                d->id, a->filename, kept.version, file);
        return 0;
}

/* A kept copy that is not newer than the running version is of no more use. */
static void kept_expire(const Config *c, const char *current_version)
{
        _cleanup_(kept_done) Kept k = {};
        int cmp = 0;

        if (current_version && kept_load(c, &k) > 0 &&
            version_compare_strings(k.version, current_version, &cmp) >= 0 && cmp <= 0) {
                upk_log(LOG_LEVEL_INFO, "hawkBit: the kept download of version %s is removed: %s runs",
                        k.version, current_version);
                kept_remove(c);
        }
}

/* download forced, update skip: a download-only deployment, or the server's maintenance window is
 * closed. The bundle is downloaded, verified and kept; `downloaded` tells the server (which closes a
 * download-only action); the install comes when a deployment of the same artifact allows it. */
static int handle_download_only(Hawkbit *h, const DdiDeployment *d, const DdiArtifact *a, const char *url,
                                UpkErr *err)
{
        const Config *c = h->config;
        _cleanup_(kept_done) Kept k = {};
        _cleanup_free_ char *what = NULL;
        long status = 0;
        UpkErr e = {};
        int r;

        r = kept_load(c, &k);
        if (r < 0)
                return upk_err_oom(err);
        if (r == 0 || !a->sha256 || !streq(k.sha256, a->sha256)) {
                r = keep_bundle(h, d, a, &e);
                if (r < 0 && e.kind == UPK_ERR_NETWORK && e.code == -ENOENT) {
                        upk_log(LOG_LEVEL_NOTICE, "hawkBit action %s: its artifact is gone (404); stopped",
                                d->id);
                        free(h->gone);
                        h->gone = strdup(d->id);
                        return 0;
                }
                if (r < 0 && (e.kind == UPK_ERR_NETWORK || e.code == -ECANCELED)) {
                        *err = e;
                        return r;
                }
                if (r == -ENOSPC && d->window == DDI_WINDOW_UNAVAILABLE) {
                        /* The install streams it when the window opens. */
                        upk_log(LOG_LEVEL_NOTICE,
                                "hawkBit action %s: %s; waiting for the maintenance window", d->id, e.msg);
                        return 0;
                }
                if (r < 0) {
                        _cleanup_free_ char *why = strdup_printf("the download was not kept: %s", e.msg);

                        return refuse(h, url, d->id, why ?: e.msg, err);
                }
                kept_done(&k);
                if (kept_load(c, &k) <= 0)
                        return upk_err(err, UPK_ERR_IO, -EIO, "%s/%s: lost", c->data_dir, HAWKBIT_KEPT_FILE);
        }
        if (h->downloaded_sent && streq(h->downloaded_sent, d->id))
                return 0;
        what = strdup_printf(
                "downloaded and verified version %s; it is installed once the update is allowed%s",
                k.version, d->window == DDI_WINDOW_UNAVAILABLE ? " (the maintenance window opens)" : "");
        const char *dl[] = { what ?: "downloaded and verified", NULL };
        r = post_feedback(h, url, d->id, "downloaded", "success", dl, &status, err);
        if (r < 0)
                return r;
        h->etag[0] = 0;
        if (success(status) || status == 410) {
                free(h->downloaded_sent);
                h->downloaded_sent = strdup(d->id);
        }
        return 0;
}

/* GET and parse a deploymentBase or confirmationBase (`key`) action, with its feedback URL: 1, or 0 when
 * it is gone (404), or the error. */
static int get_deployment(Hawkbit *h, const char *href, const char *key, DdiDeployment *ret, char **ret_url,
                          UpkErr *err)
{
        Answer a;
        int r;

        r = get_action(h, href, key, &a, err);
        if (r <= 0)
                return r;
        r = ddi_parse_deployment(a.body, a.size, key, ret, err);
        answer_done(&a);
        if (r < 0)
                return upk_err_prefix(err, "%s", href);
        *ret_url = feedback_url(href);
        if (!*ret_url) {
                ddi_deployment_done(ret);
                return upk_err_oom(err);
        }
        return 1;
}

/* Automatic installs leave out the version rolled back here and older ones (state_rollback_covers()):
 * the server would offer such a deployment forever, so it is closed as a failure saying why. NULL when
 * the rule does not apply. */
static char *rollback_refusal(const Config *c, const char *version)
{
        _cleanup_(state_freep) UpkState *s = NULL;

        if (!version || state_load(c->data_dir, &s, NULL) < 0 || !state_rollback_covers(s, version))
                return NULL;
        return strdup_printf("version %s is not newer than version %s, which was rolled back on this device "
                             "(%s); it is not installed again: assign a newer version",
                             version, s->rollback.version, s->rollback.reason ?: "no reason recorded");
}

static int handle_deployment(Hawkbit *h, const char *current_version, const Pending *keep, Offer **ret,
                             UpkErr *err)
{
        _cleanup_free_ char *url = NULL, *why_rb = NULL;
        _cleanup_(offer_freep) Offer *o = NULL;
        const char *href = h->last.deployment_href;
        DdiDeployment d = {};
        const DdiArtifact *bundle = NULL;
        size_t n_bundles = 0;
        int r;

        r = get_deployment(h, href, "deployment", &d, &url, err);
        if (r <= 0)
                return r;
        if ((keep && streq(keep->action, d.id)) || (h->gone && streq(h->gone, d.id))) {
                /* Installed and waiting for its reboot, or its artifact went away (404): the server
                 * says next what became of it. */
                ddi_deployment_done(&d);
                return 0;
        }
        bundle = find_bundle(&d, &n_bundles);
        if (n_bundles != 1) {
                _cleanup_free_ char *why =
                        strdup_printf("%s upkeep bundle (*.upk) among the %zu artifacts of the deployment",
                                      n_bundles == 0 ? "no" : "more than one", d.n_artifacts);

                r = refuse(h, url, d.id, why ?: "no single upkeep bundle", err);
        } else if (!bundle->href) {
                _cleanup_free_ char *why =
                        strdup_printf("artifact %s has neither a \"download\" nor a \"download-http\" link",
                                      bundle->filename);

                r = refuse(h, url, d.id, why ?: "no download link", err);
        } else if (bundle->encrypted) {
                _cleanup_free_ char *why = strdup_printf(
                        "artifact %s is encrypted by the server (hawkBit artifact encryption), which upkeep "
                        "does not decrypt: its bundle is signed; assign it without encryption",
                        bundle->filename);

                r = refuse(h, url, d.id, why ?: "the artifact is encrypted", err);
        } else if ((why_rb = rollback_refusal(h->config, bundle->chunk_version))) {
                r = refuse(h, url, d.id, why_rb, err);
        } else if (d.download == DDI_SKIP) {
                r = 0; /* nothing to do for this device */
        } else if (d.update == DDI_SKIP) {
                r = handle_download_only(h, &d, bundle, url, err);
        } else if (bundle->chunk_version && current_version &&
                   streq(bundle->chunk_version, current_version)) {
                const char *dl[] = { "this version already runs", NULL };
                long status = 0;

                r = post_feedback(h, url, d.id, "closed", "success", dl, &status, err);
                h->etag[0] = 0;
        } else {
                o = calloc(1, sizeof(*o));
                if (!o) {
                        ddi_deployment_done(&d);
                        return upk_err_oom(err);
                }
                _cleanup_(kept_done) Kept k = {};

                o->version = strdup(bundle->chunk_version ?: bundle->filename);
                o->name = strdup(bundle->filename);
                if (bundle->sha256 && kept_load(h->config, &k) > 0 && streq(k.sha256, bundle->sha256)) {
                        /* Downloaded and verified while its install was not allowed yet. */
                        o->location = path_join(h->config->data_dir, HAWKBIT_KEPT_FILE);
                        o->kept = true;
                } else
                        o->location = strdup(bundle->href);
                o->action_id = strdup(d.id);
                o->feedback_url = TAKE_PTR(url);
                o->sha256 = bundle->sha256 ? strdup(bundle->sha256) : NULL;
                o->length = bundle->has_size ? bundle->size : 0;
                o->forced = d.update == DDI_FORCED;
                o->approved = h->approved && streq(h->approved, d.id);
                for (size_t i = 0; i < d.n_artifacts && o->version; i++) {
                        const DdiArtifact *x = &d.artifacts[i];
                        _cleanup_free_ char *line = NULL;

                        if (x == bundle || strv_length(o->ignored) >= DDI_DETAILS_MAX - 2)
                                continue;
                        line = strdup_printf("ignored artifact %s: not an upkeep bundle", x->filename);
                        if (!line || strv_append(&o->ignored, line) < 0) {
                                ddi_deployment_done(&d);
                                return upk_err_oom(err);
                        }
                        line = NULL;
                }
                if (!o->version || !o->name || !o->location || !o->action_id ||
                    (bundle->sha256 && !o->sha256)) {
                        ddi_deployment_done(&d);
                        return upk_err_oom(err);
                }
                r = 0;
        }
        ddi_deployment_done(&d);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(o);
        return 0;
}

void hawkbit_set_auto_confirm(Hawkbit *h, bool enable)
{
        h->auto_confirm_want = enable;
}

/* updatectl enable|disable: the server's auto-confirm follows (on: it confirms deployments by itself;
 * off: they wait for the user's consent). Told at the next check; a server without the confirmation
 * flow (404) is left alone; another failure is tried again at the following check. */
static bool sync_auto_confirm(Hawkbit *h)
{
        _cleanup_free_ char *url = strdup_printf("%s/confirmationBase", h->base), *switch_url = NULL;
        bool want = h->auto_confirm_want > 0;
        DdiAutoConfirm ac = {};
        bool active;
        UpkErr e = {};
        Answer a = {};
        int r;

        if (!url || rest(h, "GET", url, NULL, NULL, &a, &e) < 0) {
                upk_log(LOG_LEVEL_WARNING, "hawkBit: cannot read the server's auto-confirm: %s",
                        e.msg[0] ? e.msg : "out of memory");
                return false;
        }
        if (a.status == 404) {
                upk_log(LOG_LEVEL_NOTICE, "hawkBit: the server has no consent flow (confirmationBase: 404); "
                                          "its auto-confirm is left alone");
                h->auto_confirm_want = -1;
                answer_done(&a);
                return false;
        }
        r = success(a.status) ? ddi_parse_auto_confirm(a.body, a.size, &ac, &e) : -EPROTO;
        answer_done(&a);
        if (r < 0) {
                upk_log(LOG_LEVEL_WARNING, "hawkBit: cannot read the server's auto-confirm: %s",
                        e.msg[0] ? e.msg : "unexpected HTTP status");
                return false;
        }
        switch_url = (want ? ac.activate_href : ac.deactivate_href)
                             ? strdup(want ? ac.activate_href : ac.deactivate_href)
                             : NULL;
        active = ac.active;
        ddi_auto_confirm_done(&ac);
        if (active == want || !switch_url) {
                h->auto_confirm_want = -1; /* already so */
                return false;
        }
        r = rest(h, "POST", switch_url,
                 want ? "{\"remark\":\"automatic updates enabled on the device (updatectl enable)\"}" : NULL,
                 NULL, &a, &e);
        if (r < 0 || (!success(a.status) && a.status != 409)) {
                upk_log(LOG_LEVEL_WARNING, "hawkBit: cannot switch the server's auto-confirm %s: %s",
                        want ? "on" : "off", r < 0 ? e.msg : "unexpected HTTP status");
                answer_done(&a);
                return false;
        }
        answer_done(&a);
        h->auto_confirm_want = -1;
        h->etag[0] = 0;
        upk_log(LOG_LEVEL_NOTICE, "hawkBit: the server's auto-confirm is %s (updatectl %s)",
                want ? "on" : "off", want ? "enable" : "disable");
        return true;
}

/* The user's answer is for one check. */
static void consent_done(Hawkbit *h)
{
        free(h->consent_action);
        free(h->consent_reason);
        h->consent_action = h->consent_reason = NULL;
}

int hawkbit_set_consent(Hawkbit *h, const char *action, bool confirm, const char *reason)
{
        free(h->consent_action);
        free(h->consent_reason);
        h->consent_action = strdup(action);
        h->consent_reason = reason && reason[0] ? strdup(reason) : NULL;
        h->consent_confirm = confirm;
        return h->consent_action && (!reason || !reason[0] || h->consent_reason) ? 0 : -ENOMEM;
}

/* The user's answer to the action that waits for it, to its confirmationBase feedback. 1: confirmed
 * (the deployment follows), 0: denied or no longer waiting. */
static int send_consent(Hawkbit *h, const char *url, const char *action, UpkErr *err)
{
        _cleanup_free_ char *line = NULL, *body = NULL;
        const char *d[] = { NULL, NULL };
        bool confirm = h->consent_confirm;
        Answer a;
        int r;

        line = confirm ? strdup("the user confirmed the update on the device (updatectl install)")
                       : strdup_printf("the user denied the update on the device (updatectl decline)%s%s",
                                       h->consent_reason ? ": " : "", h->consent_reason ?: "");
        d[0] = line;
        body = line ? ddi_confirmation_json(confirm, d) : NULL;
        if (!body)
                return upk_err_oom(err);
        r = rest(h, "POST", url, body, NULL, &a, err);
        if (r < 0)
                return r;
        if (!success(a.status) && a.status != 404 && a.status != 410) {
                r = bad_status(h, "consent", url, &a, err);
                answer_done(&a);
                return r;
        }
        answer_done(&a);
        h->etag[0] = 0;
        if (a.status == 404 || a.status == 410) {
                upk_log(LOG_LEVEL_NOTICE, "hawkBit action %s no longer waits for consent (HTTP %ld)", action,
                        a.status);
                return 0;
        }
        upk_log(LOG_LEVEL_NOTICE, "hawkBit action %s: %s", action, line);
        if (confirm) {
                free(h->approved);
                h->approved = strdup(action);
                return 1;
        }
        /* Kept across restarts: the server keeps offering it, the device does not announce it again. */
        UpkErr e = {};

        if (declined_set(h, action, &e) < 0)
                upk_log(LOG_LEVEL_WARNING, "hawkBit action %s: the denial is not kept across a restart: %s",
                        action, e.msg);
        return 0;
}

/* confirmationBase: a deployment that waits for the user's consent. Offered with needs_consent (never
 * installed by itself); the user's answer (hawkbit_set_consent()) goes out with the next check: confirmed,
 * the same check polls again and the deployment's offer is `approved`; denied, the server keeps offering
 * it (hawkBit's rule) but this daemon does not announce it again. 1: confirmed now. */
static int handle_confirmation(Hawkbit *h, Offer **ret, UpkErr *err)
{
        _cleanup_(offer_freep) Offer *o = NULL;
        _cleanup_free_ char *url = NULL;
        const char *href = h->last.confirmation_href;
        const DdiArtifact *bundle = NULL;
        DdiDeployment d = {};
        size_t n_bundles = 0;
        int r;

        r = get_deployment(h, href, "confirmation", &d, &url, err);
        if (r <= 0)
                return r;
        if (h->consent_action && streq(h->consent_action, d.id)) {
                r = send_consent(h, url, d.id, err);
                ddi_deployment_done(&d);
                return r;
        }
        if (h->declined && streq(h->declined, d.id)) {
                ddi_deployment_done(&d);
                return 0;
        }
        bundle = find_bundle(&d, &n_bundles);
        if (n_bundles != 1) {
                upk_log(LOG_LEVEL_WARNING,
                        "hawkBit action %s waits for consent, but has %s upkeep bundle (*.upk); not offered",
                        d.id, n_bundles == 0 ? "no" : "more than one");
                ddi_deployment_done(&d);
                return 0;
        }
        o = calloc(1, sizeof(*o));
        if (o) {
                o->version = strdup(bundle->chunk_version ?: bundle->filename);
                o->name = strdup(bundle->filename);
                o->location = strdup(href);
                o->action_id = strdup(d.id);
                o->length = bundle->has_size ? bundle->size : 0;
                o->needs_consent = true;
        }
        ddi_deployment_done(&d);
        if (!o || !o->version || !o->name || !o->location || !o->action_id)
                return upk_err_oom(err);
        upk_log(LOG_LEVEL_NOTICE,
                "hawkBit action %s (version %s) waits for consent: \"updatectl install\" confirms it, "
                "\"updatectl decline\" denies it",
                o->action_id, o->version);
        *ret = TAKE_PTR(o);
        return 0;
}

static int check_once(Hawkbit *h, const char *current_version, Offer **ret, UpkErr *err)
{
        _cleanup_(pending_freep) Pending *keep = NULL;
        int r;

        *ret = NULL;
        h->retry_after_usec = 0;
        r = deliver_pending(h, current_version, &keep, err);
        if (r < 0)
                return r;
        kept_expire(h->config, current_version);
        r = poll_base(h, err);
        if (r < 0)
                return r;
        if (!h->declined_loaded) {
                h->declined = declined_read(h->config);
                h->declined_loaded = true;
        }
        if (h->declined && !h->last.confirmation_href) {
                /* The denied action waits no longer (confirmed elsewhere, cancelled or gone). */
                UpkErr e = {};

                if (declined_set(h, NULL, &e) < 0)
                        upk_log(LOG_LEVEL_WARNING, "%s", e.msg);
        }
        put_config_data(h, current_version);
        if (h->auto_confirm_want >= 0) {
                if (sync_auto_confirm(h)) {
                        /* Switched on, the server may have confirmed what waited: look again. */
                        r = poll_base(h, err);
                        if (r < 0)
                                return r;
                }
        }
        if (h->last.cancel_href)
                return handle_cancel(h, keep, err);
        if (h->last.confirmation_href) {
                r = handle_confirmation(h, ret, err);
                if (r <= 0)
                        return r;
                /* Confirmed: the deployment is there now. */
                r = poll_base(h, err);
                if (r < 0 || !h->last.deployment_href)
                        return r < 0 ? r : 0;
        }
        if (h->last.deployment_href)
                return handle_deployment(h, current_version, keep, ret, err);
        return 0;
}

int hawkbit_check(Hawkbit *h, const char *current_version, Offer **ret, UpkErr *err)
{
        int r = check_once(h, current_version, ret, err);

        consent_done(h); /* the user's answer was for this check */
        return r;
}

/* ---- the install, reported from the loop thread ---- */

static int discard_data(Fetch *f, const void *buf, size_t size, uint64_t offset, void *userdata, UpkErr *err)
{
        return FETCH_DATA_CONTINUE;
}

static void inflight_done(Fetch *f, int r, const UpkErr *err, void *userdata)
{
        Hawkbit *h = userdata;
        const FetchStats *st = fetch_get_stats(f);

        if (r < 0 || !success(st->http_status))
                upk_log(LOG_LEVEL_WARNING, "hawkBit: a progress report was not taken (%s)",
                        r < 0 && err ? err->msg : "HTTP status");
        h->inflight = fetch_free(f);
}

/* A `proceeding` feedback without waiting for it: skipped while another is on its way. */
static void send_async(Hawkbit *h, FetchEngine *e, uint64_t cnt, uint64_t of, const char *const *details)
{
        _cleanup_free_ char *body = NULL, *auth = NULL;
        const char *headers[3] = {};
        FetchOptions fo;
        UpkErr err = {};
        size_t n = 0;

        if (h->inflight || !h->current || !e)
                return;
        body = ddi_feedback_json(h->current->action, "proceeding", "none", cnt, of, details);
        if (!body || auth_header(h, &auth, &err) < 0)
                return;
        if (auth)
                headers[n++] = auth;
        headers[n++] = "Content-Type: application/json";
        request_options(h, &fo, headers);
        fo.cancel_fd = 0;
        fo.method = "POST";
        fo.body = body;
        fo.body_size = strlen(body);
        if (fetch_new(e, h->current->feedback, DDI_RESPONSE_MAX, &fo, discard_data, inflight_done, h,
                      &h->inflight, &err) < 0)
                upk_log(LOG_LEVEL_WARNING, "hawkBit: cannot send a progress report: %s", err.msg);
        if (auth)
                explicit_bzero(auth, strlen(auth));
}

void hawkbit_install_started(Hawkbit *h, FetchEngine *e, const Offer *o)
{
        _cleanup_(pending_freep) Pending *p = calloc(1, sizeof(Pending));
        const char *details[DDI_DETAILS_MAX + 1] = {};
        _cleanup_free_ char *first = NULL;
        UpkErr err = {};
        size_t n = 0;

        if (!p || !o->action_id)
                return;
        p->action = strdup(o->action_id);
        p->version = strdup(o->version);
        p->feedback = strdup(o->feedback_url);
        p->phase = PHASE_INSTALLING;
        if (!p->action || !p->version || !p->feedback)
                return;
        if (pending_save(h->config, p, &err) < 0)
                upk_log(LOG_LEVEL_ERROR, "hawkBit action %s: %s", o->action_id, err.msg);
        pending_free(h->current);
        h->current = TAKE_PTR(p);
        h->installing_kept = o->kept;
        h->progress_sent_usec = h->watch_usec = now_usec();
        h->cancelled = false;
        first = strdup_printf("downloading and installing %s (version %s)", o->name, o->version);
        details[n++] = first ?: "downloading and installing";
        for (size_t i = 0; o->ignored && o->ignored[i] && n < DDI_DETAILS_MAX; i++)
                details[n++] = o->ignored[i];
        send_async(h, e, 0, 0, details);
}

/* ---- a cancel while the action installs (loop thread) ---- */

static int watch_data(Fetch *f, const void *buf, size_t size, uint64_t offset, void *userdata, UpkErr *err)
{
        Hawkbit *h = userdata;
        char *n;

        if (h->watch_size + size > DDI_RESPONSE_MAX)
                return upk_err(err, UPK_ERR_NETWORK, -EFBIG, "the answer is too long");
        n = realloc(h->watch_buf, h->watch_size + size + 1);
        if (!n)
                return upk_err_oom(err);
        memcpy(n + h->watch_size, buf, size);
        h->watch_buf = n;
        h->watch_size += size;
        h->watch_buf[h->watch_size] = 0;
        return FETCH_DATA_CONTINUE;
}

static void watch_done(Fetch *f, int r, const UpkErr *err, void *userdata);

/* Whether a deploymentBase link (".../deploymentBase/ID?c=...") is the one of `action`. */
static bool href_names_action(const char *href, const char *action)
{
        const char *p = href ? strstr(href, "/deploymentBase/") : NULL;
        size_t n;

        if (!p)
                return false;
        p += strlen("/deploymentBase/");
        n = strcspn(p, "?/#");
        return n == strlen(action) && strncmp(p, action, n) == 0;
}

/* GET `url` for the watch: the base, or (`order`) the cancel order. */
static void watch_get(Hawkbit *h, FetchEngine *e, const char *url, bool order)
{
        _cleanup_free_ char *auth = NULL;
        const char *headers[3] = {};
        FetchOptions fo;
        UpkErr err = {};
        size_t n = 0;

        free(h->watch_buf);
        h->watch_buf = NULL;
        h->watch_size = 0;
        if (auth_header(h, &auth, &err) < 0)
                return;
        if (auth)
                headers[n++] = auth;
        headers[n++] = "Accept: application/hal+json, application/json";
        request_options(h, &fo, headers);
        fo.cancel_fd = 0;
        h->watch_engine = e;
        h->watch_order = order;
        if (fetch_new(e, url, DDI_RESPONSE_MAX, &fo, watch_data, watch_done, h, &h->watch, &err) < 0)
                upk_log(LOG_LEVEL_WARNING, "hawkBit: cannot look for a cancel: %s", err.msg);
        if (auth)
                explicit_bzero(auth, strlen(auth));
}

static void watch_done(Fetch *f, int r, const UpkErr *err, void *userdata)
{
        Hawkbit *h = userdata;
        bool order = h->watch_order;
        const FetchStats *st = fetch_get_stats(f);
        FetchEngine *e = h->watch_engine;
        _cleanup_free_ char *stop = NULL;
        DdiPoll poll = {};
        UpkErr e2 = {};

        h->watch = NULL;
        if (r < 0 || !success(st->http_status) || !h->current) {
                fetch_free(f);
                return; /* the next progress tries again */
        }
        fetch_free(f);
        if (!order) {
                if (ddi_parse_poll(h->watch_buf, h->watch_size, &poll, &e2) < 0) {
                        ddi_poll_done(&poll);
                        return;
                }
                if (poll.cancel_href)
                        watch_get(h, e, poll.cancel_href, true);
                else if (!href_names_action(poll.deployment_href, h->current->action)) {
                        /* Neither a cancel nor the action any more: closed on the server without the
                         * device (an operator's force-quit), or replaced. Nothing is activated. */
                        upk_log(LOG_LEVEL_NOTICE,
                                "hawkBit action %s: no longer offered by the server (closed there, or "
                                "replaced); stopping the install",
                                h->current->action);
                        h->cancelled = true;
                }
                ddi_poll_done(&poll);
                return;
        }
        if (ddi_parse_cancel(h->watch_buf, h->watch_size, &stop, &e2) >= 0 &&
            streq(stop, h->current->action)) {
                upk_log(LOG_LEVEL_NOTICE,
                        "hawkBit action %s: cancelled by the server while it installs; "
                        "stopping the install",
                        stop);
                h->cancelled = true;
        }
}

static uint64_t watch_interval_usec(const Hawkbit *h)
{
#if HAVE_TEST_HOOKS
        const char *v = secure_getenv("UPKEEP_TEST_HAWKBIT_CANCEL_POLL_SEC");
        uint64_t sec;

        if (v && safe_atou64(v, &sec) >= 0 && sec > 0 && sec <= 3600)
                return sec * USEC_PER_SEC;
#endif
        /* The server's sleep, within HAWKBIT_CANCEL_POLL_MIN_SEC and HAWKBIT_CANCEL_POLL_MAX_SEC. */
        uint64_t sleep = h->sleep_usec ?: HAWKBIT_CANCEL_POLL_MAX_SEC * USEC_PER_SEC;

        return sleep < HAWKBIT_CANCEL_POLL_MIN_SEC * USEC_PER_SEC
                       ? HAWKBIT_CANCEL_POLL_MIN_SEC * USEC_PER_SEC
               : sleep > HAWKBIT_CANCEL_POLL_MAX_SEC * USEC_PER_SEC
                       ? HAWKBIT_CANCEL_POLL_MAX_SEC * USEC_PER_SEC
                       : sleep;
}

bool hawkbit_install_progress(Hawkbit *h, FetchEngine *e, uint64_t done, uint64_t total)
{
        uint64_t now = now_usec();
        const char *details[] = { "installing", NULL };

        if (!h->current || !e)
                return false;
        if (h->cancelled)
                return true;
        if (!h->watch && now - h->watch_usec >= watch_interval_usec(h)) {
                h->watch_usec = now;
                watch_get(h, e, h->base, false);
        }
        if (total == 0 || now - h->progress_sent_usec < HAWKBIT_PROGRESS_USEC)
                return false;
        h->progress_sent_usec = now;
        send_async(h, e, done, total, details);
        return false;
}

bool hawkbit_install_finished(Hawkbit *h, FetchEngine *e, bool ok, const UpkErr *err)
{
        _cleanup_(pending_freep) Pending *p = TAKE_PTR(h->current);
        UpkErr e2 = {};

        h->watch = fetch_free(h->watch);
        if (!p)
                return false;
        if (h->cancelled && !ok) {
                /* Stopped for the server's cancel: the next check (soon) accepts it, as nothing of
                 * the action was activated. */
                h->cancelled = false;
                pending_remove(h->config);
                return true;
        }
        h->cancelled = false;
        /* The kept copy served its install (a cancelled one may be tried again). */
        if (h->installing_kept && !(err && err->code == -ECANCELED))
                kept_remove(h->config);
        h->installing_kept = false;
        if (ok) {
                p->phase = PHASE_INSTALLED;
                if (pending_save(h->config, p, &e2) < 0)
                        upk_log(LOG_LEVEL_ERROR, "hawkBit action %s: %s", p->action, e2.msg);
                return true; /* the next check says "installed, waiting for the reboot" */
        }
        if (err && err->kind == UPK_ERR_NETWORK && err->code == -ENOENT) {
                /* 404 on the download: the action went away (cancelled). Nothing to report: the next
                 * poll shows what became of it. */
                upk_log(LOG_LEVEL_NOTICE, "hawkBit action %s: its artifact is gone (404); stopped",
                        p->action);
                pending_remove(h->config);
                free(h->gone);
                h->gone = TAKE_PTR(p->action);
                return true;
        }
        if (err && err->kind == UPK_ERR_NETWORK && err->code == -ESTALE) {
                /* The artifact was replaced on the server while it downloaded (If-Range, or its
                 * size): nothing of it was activated, and the action stays open. The next check reads
                 * the deployment again (its new hashes) and downloads the new artifact from the start. */
                upk_log(LOG_LEVEL_NOTICE, "hawkBit action %s: %s; downloading it again", p->action,
                        err->msg);
                pending_remove(h->config);
                return true;
        }
        if (err && err->code == -ECANCELED) {
                /* Cancelled on the device: the action stays open; the server offers it again. */
                pending_remove(h->config);
                return false;
        }
        p->phase = PHASE_REPORT;
        free(p->finished);
        free(p->detail);
        p->finished = strdup("failure");
        p->detail = strdup_printf("the install failed; nothing was activated: %s",
                                  err && err->msg[0] ? err->msg : "unknown error");
        if (!p->finished || !p->detail || pending_save(h->config, p, &e2) < 0)
                upk_log(LOG_LEVEL_ERROR, "hawkBit action %s: cannot record the failed install: %s",
                        p->action, e2.msg[0] ? e2.msg : "out of memory");
        return true;
}
