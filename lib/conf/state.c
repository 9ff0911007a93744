/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "state.h"

#include <json-c/json.h>
#include <stdio.h>
#include <sys/stat.h>

#include "fileio.h"
#include "json-util.h"
#include "log.h"
#include "version.h"

#define STATE_NAME   "state.json"
#define HISTORY_NAME "history.json"

/* The whole buffer must be one JSON value (whitespace around it allowed), no NUL inside. */
static json_object *parse_strict(const char *data, size_t size)
{
        json_tokener *tok;
        json_object *o;
        size_t end;

        if (strlen(data) != size || size > INT32_MAX)
                return NULL;
        tok = json_tokener_new_ex(16);
        if (!tok)
                return NULL;
        o = json_tokener_parse_ex(tok, data, (int)size);
        if (!o || json_tokener_get_error(tok) != json_tokener_success) {
                json_object_put(o);
                json_tokener_free(tok);
                return NULL;
        }
        end = json_tokener_get_parse_end(tok);
        json_tokener_free(tok);
        for (; end < size; end++)
                if (!strchr(" \t\r\n", data[end])) {
                        json_object_put(o);
                        return NULL;
                }
        return o;
}

static void free_slots(UpkState *s)
{
        for (size_t i = 0; i < s->n_slots; i++) {
                free(s->slots[i].bootname);
                free(s->slots[i].version);
        }
        s->n_slots = 0;
}

void state_clear_pending(UpkState *s)
{
        s->pending = false;
        free(s->pending_version);
        free(s->pending_slot);
        free(s->pending_from_slot);
        s->pending_version = s->pending_slot = s->pending_from_slot = NULL;
        s->pending_since = 0;
        s->boot_attempts = 0;
}

void state_clear_rollback(UpkState *s)
{
        free(s->rollback.version);
        free(s->rollback.slot);
        free(s->rollback.reason);
        s->rollback = (StateRollback){};
}

bool state_rollback_covers(const UpkState *s, const char *version)
{
        int cmp = 0;

        return s && s->rollback.set && s->rollback.version && version &&
               version_compare_strings(version, s->rollback.version, &cmp) >= 0 && cmp <= 0;
}

/* `s` cut to at most `max` bytes, not inside a UTF-8 sequence. */
static char *strdup_cut(const char *s, size_t max)
{
        size_t n = strlen(s);

        if (n > max) {
                n = max;
                while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
                        n--;
        }
        return strndup(s, n);
}

int state_set_rollback(UpkState *s, const char *version, const char *slot, const char *reason, uint64_t time)
{
        StateRollback rb = {
                .set = true,
                .version = version ? strdup(version) : NULL,
                .slot = strdup(slot ?: ""),
                .reason = strdup_cut(reason ?: "", STATE_REASON_MAX),
                .time = time,
        };

        if ((version && !rb.version) || !rb.slot || !rb.reason) {
                free(rb.version);
                free(rb.slot);
                free(rb.reason);
                return -ENOMEM;
        }
        state_clear_rollback(s);
        s->rollback = rb;
        return 0;
}

UpkState *state_free(UpkState *s)
{
        if (!s)
                return NULL;
        free_slots(s);
        state_clear_pending(s);
        state_clear_rollback(s);
        free(s->version_floor);
        free(s->support_end);
        free(s);
        return NULL;
}

const char *state_slot_version(const UpkState *s, const char *bootname)
{
        for (size_t i = 0; i < s->n_slots; i++)
                if (streq(s->slots[i].bootname, bootname))
                        return s->slots[i].version;
        return NULL;
}

int state_set_slot_version(UpkState *s, const char *bootname, const char *version)
{
        char *v = version ? strdup(version) : NULL;
        size_t i;

        if (version && !v)
                return -ENOMEM;
        for (i = 0; i < s->n_slots; i++)
                if (streq(s->slots[i].bootname, bootname))
                        break;
        if (i == s->n_slots) {
                if (s->n_slots >= ELEMENTSOF(s->slots)) {
                        free(v);
                        return -E2BIG;
                }
                s->slots[i].bootname = strdup(bootname);
                if (!s->slots[i].bootname) {
                        free(v);
                        return -ENOMEM;
                }
                s->slots[i].version = NULL;
                s->n_slots++;
        }
        free(s->slots[i].version);
        s->slots[i].version = v;
        return 0;
}

/* Optional string member: absent or null → NULL; a string → copy; anything else → -EBADMSG. */
static int get_str(json_object *o, const char *key, char **ret)
{
        json_object *v;

        *ret = NULL;
        if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null))
                return 0;
        if (!json_object_is_type(v, json_type_string))
                return -EBADMSG;
        *ret = strdup(json_object_get_string(v));
        return *ret ? 0 : -ENOMEM;
}

static int get_u64(json_object *o, const char *key, uint64_t *ret)
{
        json_object *v;

        *ret = 0;
        if (!json_object_object_get_ex(o, key, &v))
                return 0;
        if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0)
                return -EBADMSG;
        *ret = json_object_get_uint64(v);
        return 0;
}

static int get_bool(json_object *o, const char *key, bool def, bool *ret)
{
        json_object *v;

        *ret = def;
        if (!json_object_object_get_ex(o, key, &v))
                return 0;
        if (!json_object_is_type(v, json_type_boolean))
                return -EBADMSG;
        *ret = json_object_get_boolean(v);
        return 0;
}

static int version_ok(const char *v)
{
        Version parsed;
        return !v || version_parse(v, &parsed) >= 0 ? 0 : -EBADMSG;
}

static bool slot_name_ok(const char *s)
{
        size_t n = strlen(s);

        if (n == 0 || n > 64)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
                      (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
                        return false;
        return true;
}

_Static_assert(STATE_REASON_MAX == 1024, "the message below names the limit");

/* The rollback record into s->rollback. -ENOMEM; or 0, with *ret_problem naming what is wrong with a
 * damaged record (then nothing of it is kept). */
static int rollback_from_json(json_object *o, UpkState *s, const char **ret_problem)
{
        StateRollback rb = { .set = true };
        const char *problem = NULL;
        int r;

        *ret_problem = NULL;
        if (json_object_is_type(o, json_type_null))
                return 0;
        if (!json_object_is_type(o, json_type_object)) {
                *ret_problem = "not an object";
                return 0;
        }
        if ((r = get_str(o, "version", &rb.version)) < 0 || (r = get_str(o, "slot", &rb.slot)) < 0 ||
            (r = get_str(o, "reason", &rb.reason)) < 0 || (r = get_u64(o, "time", &rb.time)) < 0 ||
            (r = get_bool(o, "acknowledged", false, &rb.acknowledged)) < 0) {
                if (r == -ENOMEM)
                        goto out;
                problem = "a field has the wrong type";
        } else if (!rb.slot || !slot_name_ok(rb.slot))
                problem = "its slot is missing or not a slot name";
        else if (version_ok(rb.version) < 0)
                problem = "its version is not a version";
        else if (!rb.reason)
                problem = "its reason is missing";
        else if (strlen(rb.reason) > STATE_REASON_MAX)
                problem = "its reason is longer than 1024 bytes";
        if (!problem) {
                s->rollback = rb;
                return 0;
        }
        *ret_problem = problem;
        r = 0;
out:
        free(rb.version);
        free(rb.slot);
        free(rb.reason);
        return r;
}

static int state_from_json(json_object *o, UpkState *s, const char **ret_rollback_problem)
{
        json_object *slots, *pending, *rollback;
        uint64_t u;
        int r;

        if (!json_object_is_type(o, json_type_object))
                return -EBADMSG;
        if ((r = get_str(o, "version_floor", &s->version_floor)) < 0 ||
            (r = version_ok(s->version_floor)) < 0 || (r = get_u64(o, "last_check", &s->last_check)) < 0 ||
            (r = get_str(o, "support_end", &s->support_end)) < 0 ||
            (r = get_bool(o, "auto_update", true, &s->auto_update)) < 0 ||
            (r = get_u64(o, "postpone_until", &s->postpone_until)) < 0)
                return r;
        if (json_object_object_get_ex(o, "slots", &slots)) {
                if (!json_object_is_type(slots, json_type_object))
                        return -EBADMSG;
                json_object_object_foreach(slots, key, val)
                {
                        if (!json_object_is_type(val, json_type_string) ||
                            version_ok(json_object_get_string(val)) < 0 || strlen(key) > 64)
                                return -EBADMSG;
                        r = state_set_slot_version(s, key, json_object_get_string(val));
                        if (r < 0)
                                return r;
                }
        }
        if (json_object_object_get_ex(o, "pending", &pending) &&
            !json_object_is_type(pending, json_type_null)) {
                if (!json_object_is_type(pending, json_type_object))
                        return -EBADMSG;
                if ((r = get_str(pending, "version", &s->pending_version)) < 0 ||
                    (r = get_str(pending, "slot", &s->pending_slot)) < 0 ||
                    (r = get_str(pending, "from_slot", &s->pending_from_slot)) < 0 ||
                    (r = get_u64(pending, "since", &s->pending_since)) < 0 ||
                    (r = get_u64(pending, "boot_attempts", &u)) < 0)
                        return r;
                if (!s->pending_version || !s->pending_slot || version_ok(s->pending_version) < 0 ||
                    u > 1000)
                        return -EBADMSG;
                s->boot_attempts = (unsigned)u;
                s->pending = true;
        }
        *ret_rollback_problem = NULL;
        if (json_object_object_get_ex(o, "rollback", &rollback))
                return rollback_from_json(rollback, s, ret_rollback_problem);
        return 0;
}

static UpkState *state_new(void)
{
        UpkState *s = calloc(1, sizeof(*s));
        if (s)
                s->auto_update = true;
        return s;
}

/* Keep a damaged file for a person to look at, out of the way of the next write. */
static void set_aside(const char *data_dir, const char *name)
{
        _cleanup_free_ char *from = strdup_printf("%s/%s", data_dir, name);
        _cleanup_free_ char *to = strdup_printf("%s/%s.corrupt", data_dir, name);
        if (from && to)
                (void)rename(from, to);
}

/* A damaged rollback record: the rest of the state stays; the file as it was is kept as *.corrupt, and
 * the state is written back without the record, so that the warning is given once. */
static int drop_rollback(const char *data_dir, const char *path, const char *data, size_t size,
                         const UpkState *s, const char *problem, char **ret_warning)
{
        UpkErr err = {};
        int r;

        r = write_file_atomic(data_dir, STATE_NAME ".corrupt", data, size, 0644);
        if (r >= 0)
                r = state_save(data_dir, s, &err);
        else
                (void)upk_err(&err, UPK_ERR_IO, r, "cannot write %s.corrupt: %m", path);
        *ret_warning = strdup_printf(
                "%s: the record of the rolled-back update is damaged (%s): dropped, the rest of the state "
                "is kept%s%s%s%s",
                path, problem, r >= 0 ? " (the file as it was is kept as " : "; ", r >= 0 ? path : err.msg,
                r >= 0 ? ".corrupt" : "", r >= 0 ? ")" : "");
        return *ret_warning ? 0 : -ENOMEM;
}

int state_load(const char *data_dir, UpkState **ret, char **ret_warning)
{
        _cleanup_(state_freep) UpkState *s = NULL;
        _cleanup_free_ char *path = strdup_printf("%s/" STATE_NAME, data_dir), *data = NULL, *warning = NULL;
        _cleanup_(json_object_putp) json_object *o = NULL;
        size_t size;
        int r;

        if (ret_warning)
                *ret_warning = NULL;
        if (!path)
                return -ENOMEM;
        s = state_new();
        if (!s)
                return -ENOMEM;
        r = read_full_file(path, STATE_FILE_SIZE_MAX, &data, &size);
        if (r == -ENOENT) {
                *ret = TAKE_PTR(s);
                return 0;
        }
        if (r == -ENOMEM)
                return r;
        if (r >= 0) {
                o = parse_strict(data, size);
                if (o) {
                        const char *problem = NULL;

                        r = state_from_json(o, s, &problem);
                        if (r == -ENOMEM)
                                return r;
                        if (r >= 0 && problem) {
                                r = drop_rollback(data_dir, path, data, size, s, problem, &warning);
                                if (r < 0)
                                        return r;
                                if (ret_warning)
                                        *ret_warning = TAKE_PTR(warning);
                                else
                                        upk_log(LOG_LEVEL_WARNING, "%s", warning);
                        }
                        if (r >= 0) {
                                *ret = TAKE_PTR(s);
                                return 0;
                        }
                }
                r = -EBADMSG;
        }
        /* Unreadable or corrupt: start from defaults, never fail the daemon for it. */
        state_free(s);
        s = state_new();
        if (!s)
                return -ENOMEM;
        set_aside(data_dir, STATE_NAME);
        warning = strdup_printf("%s: %s; starting from an empty state (the old file is kept as %s.corrupt)",
                                path, r == -EBADMSG ? "corrupt" : strerror(-r), path);
        /* Whoever reads it first moves it aside: a caller that does not take the warning must not leave
         * the damage unsaid. */
        if (ret_warning)
                *ret_warning = TAKE_PTR(warning);
        else if (warning)
                upk_log(LOG_LEVEL_WARNING, "%s", warning);
        *ret = TAKE_PTR(s);
        return 1;
}

static json_object *str_or_null(const char *s)
{
        return s ? json_object_new_string(s) : NULL;
}

int state_save(const char *data_dir, const UpkState *s, UpkErr *err)
{
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        json_object *slots = json_object_new_object();
        const char *text;
        int r;

        if (!o || !slots) {
                json_object_put(slots);
                return upk_err_oom(err);
        }
        json_object_object_add(o, "version_floor", str_or_null(s->version_floor));
        for (size_t i = 0; i < s->n_slots; i++)
                if (s->slots[i].version)
                        json_object_object_add(slots, s->slots[i].bootname,
                                               json_object_new_string(s->slots[i].version));
        json_object_object_add(o, "slots", slots);
        if (s->pending) {
                json_object *p = json_object_new_object();
                json_object_object_add(p, "version", str_or_null(s->pending_version));
                json_object_object_add(p, "slot", str_or_null(s->pending_slot));
                json_object_object_add(p, "from_slot", str_or_null(s->pending_from_slot));
                json_object_object_add(p, "since", json_object_new_uint64(s->pending_since));
                json_object_object_add(p, "boot_attempts", json_object_new_uint64(s->boot_attempts));
                json_object_object_add(o, "pending", p);
        } else
                json_object_object_add(o, "pending", NULL);
        json_object_object_add(o, "last_check", json_object_new_uint64(s->last_check));
        json_object_object_add(o, "support_end", str_or_null(s->support_end));
        json_object_object_add(o, "auto_update", json_object_new_boolean(s->auto_update));
        json_object_object_add(o, "postpone_until", json_object_new_uint64(s->postpone_until));
        if (s->rollback.set) {
                json_object *rb = json_object_new_object();
                json_object_object_add(rb, "version", str_or_null(s->rollback.version));
                json_object_object_add(rb, "slot", str_or_null(s->rollback.slot));
                json_object_object_add(rb, "reason", str_or_null(s->rollback.reason));
                json_object_object_add(rb, "time", json_object_new_uint64(s->rollback.time));
                json_object_object_add(rb, "acknowledged",
                                       json_object_new_boolean(s->rollback.acknowledged));
                json_object_object_add(o, "rollback", rb);
        } else
                json_object_object_add(o, "rollback", NULL);

        text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY);
        r = mkdir_p(data_dir, 0755);
        if (r < 0)
                return upk_err(err, UPK_ERR_IO, r, "cannot create %s: %m", data_dir);
        r = write_file_atomic(data_dir, STATE_NAME, text, strlen(text), 0644);
        if (r < 0)
                return upk_err(err, UPK_ERR_IO, r, "cannot write %s/%s: %m", data_dir, STATE_NAME);
        return 0;
}

void history_free(HistoryEntry *h, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                free(h[i].operation);
                free(h[i].version);
                free(h[i].slot);
                free(h[i].reason);
                free(h[i].action);
        }
        free(h);
}

static int entry_from_json(json_object *o, HistoryEntry *e)
{
        int r;

        if (!json_object_is_type(o, json_type_object))
                return -EBADMSG;
        if ((r = get_u64(o, "time", &e->time)) < 0 || (r = get_str(o, "operation", &e->operation)) < 0 ||
            (r = get_str(o, "version", &e->version)) < 0 || (r = get_str(o, "slot", &e->slot)) < 0 ||
            (r = get_bool(o, "ok", false, &e->ok)) < 0 || (r = get_str(o, "reason", &e->reason)) < 0 ||
            (r = get_str(o, "action", &e->action)) < 0)
                return r;
        return e->operation ? 0 : -EBADMSG;
}

int history_load(const char *data_dir, HistoryEntry **ret, size_t *ret_n, char **ret_warning)
{
        _cleanup_free_ char *path = strdup_printf("%s/" HISTORY_NAME, data_dir), *data = NULL;
        _cleanup_(json_object_putp) json_object *o = NULL;
        HistoryEntry *h = NULL;
        size_t size, n = 0;
        int r;

        if (ret_warning)
                *ret_warning = NULL;
        if (!path)
                return -ENOMEM;
        *ret = NULL;
        *ret_n = 0;
        r = read_full_file(path, HISTORY_FILE_SIZE_MAX, &data, &size);
        if (r == -ENOENT)
                return 0;
        if (r >= 0) {
                o = parse_strict(data, size);
                r = -EBADMSG;
                if (o && json_object_is_type(o, json_type_array)) {
                        size_t len = json_object_array_length(o);
                        if (len > HISTORY_MAX)
                                len = HISTORY_MAX;
                        h = calloc(len ?: 1, sizeof(*h));
                        if (!h)
                                return -ENOMEM;
                        r = 0;
                        for (size_t i = json_object_array_length(o) - len; i < json_object_array_length(o);
                             i++) {
                                r = entry_from_json(json_object_array_get_idx(o, i), &h[n]);
                                n++;
                                if (r < 0)
                                        break;
                        }
                }
        }
        if (r < 0) {
                history_free(h, n);
                if (r == -ENOMEM)
                        return r;
                set_aside(data_dir, HISTORY_NAME);
                if (ret_warning)
                        *ret_warning =
                                strdup_printf("%s: %s; the history starts anew (the old file is kept as "
                                              "%s.corrupt)",
                                              path, r == -EBADMSG ? "corrupt" : strerror(-r), path);
                return 1;
        }
        *ret = h;
        *ret_n = n;
        return 0;
}

static json_object *entry_to_json(const HistoryEntry *e)
{
        json_object *o = json_object_new_object();
        if (!o)
                return NULL;
        json_object_object_add(o, "time", json_object_new_uint64(e->time));
        json_object_object_add(o, "operation", str_or_null(e->operation));
        json_object_object_add(o, "version", str_or_null(e->version));
        json_object_object_add(o, "slot", str_or_null(e->slot));
        json_object_object_add(o, "ok", json_object_new_boolean(e->ok));
        json_object_object_add(o, "reason", str_or_null(e->reason));
        if (e->action)
                json_object_object_add(o, "action", json_object_new_string(e->action));
        return o;
}

int history_append(const char *data_dir, const HistoryEntry *e, UpkErr *err)
{
        _cleanup_(json_object_putp) json_object *a = json_object_new_array();
        HistoryEntry *old = NULL;
        size_t n = 0, start;
        const char *text;
        int r;

        if (!a)
                return upk_err_oom(err);
        r = history_load(data_dir, &old, &n, NULL);
        if (r < 0)
                return upk_err(err, UPK_ERR_IO, r, "cannot read the history: %m");
        start = n >= HISTORY_MAX ? n - HISTORY_MAX + 1 : 0;
        for (size_t i = start; i < n; i++)
                json_object_array_add(a, entry_to_json(&old[i]));
        history_free(old, n);
        {
                HistoryEntry copy = *e;
                _cleanup_free_ char *reason = NULL;
                if (e->reason && strlen(e->reason) > STATE_REASON_MAX) {
                        reason = strndup(e->reason, STATE_REASON_MAX);
                        copy.reason = reason;
                }
                json_object_array_add(a, entry_to_json(&copy));
        }
        text = json_object_to_json_string_ext(a, JSON_C_TO_STRING_PRETTY);
        r = mkdir_p(data_dir, 0755);
        if (r >= 0)
                r = write_file_atomic(data_dir, HISTORY_NAME, text, strlen(text), 0644);
        if (r < 0)
                return upk_err(err, UPK_ERR_IO, r, "cannot write %s/%s: %m", data_dir, HISTORY_NAME);
        return 0;
}
