/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "boot.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <inttypes.h>
#include <time.h>

#include "boot-internal.h"

static const char *const slot_state_table[_SLOT_STATE_MAX] = {
        [SLOT_STATE_GOOD] = "good",
        [SLOT_STATE_TRY] = "try",
        [SLOT_STATE_BAD] = "bad",
};

DEFINE_STRING_TABLE(slot_state, SlotState, slot_state_table)

static const BootOps *const ops_table[_BOOT_BACKEND_MAX] = {
        [BOOT_BACKEND_FILE] = &boot_file_ops,
        [BOOT_BACKEND_UBOOT] = &boot_uboot_ops,
        [BOOT_BACKEND_GRUB] = &boot_grub_ops,
        [BOOT_BACKEND_SCRIPT] = &boot_script_ops,
};

bool boot_slot_name_valid(const char *s)
{
        size_t n;

        if (isempty(s))
                return false;
        n = strlen(s);
        if (n > BOOT_SLOT_NAME_MAX)
                return false;
        for (const char *p = s; *p; p++)
                if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
                      *p == '_'))
                        return false;
        return true;
}

int boot_slot_index(char *const *slots, size_t n_slots, const char *name)
{
        for (size_t i = 0; i < n_slots; i++)
                if (streq(slots[i], name))
                        return (int)i;
        return -ENOENT;
}

/* The timeout for programs: 10 s; in a test build UPKEEP_TEST_BOOT_TIMEOUT_MS (1..600000) when set. */
static uint64_t boot_timeout_usec(void)
{
#if HAVE_TEST_HOOKS
        const char *s = secure_getenv("UPKEEP_TEST_BOOT_TIMEOUT_MS");
        uint64_t ms;

        if (s && safe_atou64(s, &ms) >= 0 && ms > 0 && ms <= BOOT_TIMEOUT_MS_MAX)
                return ms * 1000u;
#endif
        return BOOT_TIMEOUT_USEC_DEFAULT;
}

BootBackend *boot_backend_free(BootBackend *b)
{
        if (!b)
                return NULL;
        for (size_t i = 0; i < b->n_slots; i++)
                free(b->slots[i]);
        free(b->slots);
        free(b->path);
        free(b->state_file);
        free(b);
        return NULL;
}

int boot_backend_new(const Config *c, char *const *slots, size_t n_slots, BootBackend **ret, UpkErr *err)
{
        _cleanup_(boot_backend_freep) BootBackend *b = NULL;
        int r;

        if (!c || !ret)
                return upk_err(err, UPK_ERR_CONFIG, -EINVAL, "boot backend: no configuration given");
        if (c->boot_backend < 0 || c->boot_backend >= _BOOT_BACKEND_MAX)
                return upk_err(err, UPK_ERR_CONFIG, -EINVAL, "[boot] backend: unknown backend type %d",
                               (int)c->boot_backend);
        if (n_slots == 0 || n_slots > BOOT_SLOTS_MAX)
                return upk_err(err, UPK_ERR_CONFIG, -EINVAL,
                               "boot backend %s: %zu slots given, between 1 and %d are supported",
                               boot_backend_type_to_string(c->boot_backend), n_slots, BOOT_SLOTS_MAX);
        if (c->boot_attempts > BOOT_ATTEMPTS_MAX)
                return upk_err(err, UPK_ERR_CONFIG, -ERANGE,
                               "[boot] attempts: %u is above the maximum of %d", c->boot_attempts,
                               BOOT_ATTEMPTS_MAX);

        b = calloc(1, sizeof(*b));
        if (!b)
                return upk_err_oom(err);
        b->type = c->boot_backend;
        b->ops = ops_table[c->boot_backend];
        b->attempts = c->boot_attempts > 0 ? c->boot_attempts : BOOT_ATTEMPTS_DEFAULT;
        b->timeout_usec = boot_timeout_usec();
        b->slots = calloc(n_slots, sizeof(char *));
        if (!b->slots)
                return upk_err_oom(err);
        for (size_t i = 0; i < n_slots; i++) {
                if (!slots[i] || !boot_slot_name_valid(slots[i]))
                        return upk_err(
                                err, UPK_ERR_CONFIG, -EINVAL,
                                "slot bootname \"%s\" is not valid: use 1 to %d letters, digits or '_'",
                                format_value(slots[i]), BOOT_SLOT_NAME_MAX);
                if (boot_slot_index(b->slots, b->n_slots, slots[i]) >= 0)
                        return upk_err(err, UPK_ERR_CONFIG, -EINVAL, "slot bootname \"%s\" is given twice",
                                       slots[i]);
                b->slots[i] = strdup(slots[i]);
                if (!b->slots[i])
                        return upk_err_oom(err);
                b->n_slots++;
        }

        r = b->ops->init(b, c, err);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(b);
        return 0;
}

static int slot_lookup(BootBackend *b, const char *slot, size_t *ret, UpkErr *err)
{
        int i;

        if (!b)
                return upk_err(err, UPK_ERR_CONFIG, -EINVAL, "no boot backend");
        if (!slot)
                return upk_err(err, UPK_ERR_CONFIG, -EINVAL, "no slot given");
        i = boot_slot_index(b->slots, b->n_slots, slot);
        if (i < 0) {
                _cleanup_free_ char *all = boot_order_format(b->slots, NULL, b->n_slots);
                return upk_err(err, UPK_ERR_CONFIG, -ENOENT, "slot \"%s\" is not one of the boot slots (%s)",
                               format_value(slot), all ? all : "?");
        }
        *ret = (size_t)i;
        return 0;
}

static int slot_name_out(BootBackend *b, size_t i, char **ret)
{
        char *s = strdup(b->slots[i]);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

int boot_mark_bad(BootBackend *b, const char *slot, UpkErr *err)
{
        size_t i;
        int r = slot_lookup(b, slot, &i, err);
        return r < 0 ? r : b->ops->mark_bad(b, i, err);
}

int boot_set_try(BootBackend *b, const char *slot, UpkErr *err)
{
        size_t i;
        int r = slot_lookup(b, slot, &i, err);
        return r < 0 ? r : b->ops->set_try(b, i, err);
}

int boot_mark_good(BootBackend *b, const char *slot, UpkErr *err)
{
        size_t i;
        int r = slot_lookup(b, slot, &i, err);
        return r < 0 ? r : b->ops->mark_good(b, i, err);
}

int boot_get_primary(BootBackend *b, char **ret, UpkErr *err)
{
        size_t i;
        int r;

        if (!b || !ret)
                return upk_err(err, UPK_ERR_CONFIG, -EINVAL, "no boot backend");
        r = b->ops->get_primary(b, &i, err);
        if (r < 0)
                return r;
        return slot_name_out(b, i, ret);
}

int boot_get_state(BootBackend *b, const char *slot, SlotState *ret, UpkErr *err)
{
        SlotState s;
        size_t i;
        int r;

        r = slot_lookup(b, slot, &i, err);
        if (r < 0)
                return r;
        r = b->ops->get_state(b, i, &s, err);
        if (r < 0)
                return r;
        *ret = s;
        return 0;
}

int boot_get_current(BootBackend *b, char **ret, UpkErr *err)
{
        size_t i;
        int r;

        if (!b || !ret)
                return upk_err(err, UPK_ERR_CONFIG, -EINVAL, "no boot backend");
        r = b->ops->get_current(b, &i, err);
        if (r < 0)
                return r;
        return slot_name_out(b, i, ret);
}

/* ---- the operations of the backends that keep BootVars (file, uboot) ---- */

typedef enum VarsOp {
        VARS_OP_BAD,
        VARS_OP_TRY,
        VARS_OP_GOOD,
} VarsOp;

/* The BootVars model: what the bootloader and upkeep do to the variables. */

static void boot_vars_mark_bad(BootVars *v, size_t slot)
{
        v->left[slot] = 0;
        v->trying[slot] = false;
        boot_order_move_back(v->order, &v->n_order, slot);
}

static void boot_vars_set_try(BootVars *v, size_t slot)
{
        v->left[slot] = 1;
        v->trying[slot] = true;
        boot_order_move_front(v->order, &v->n_order, slot);
}

static void boot_vars_mark_good(BootVars *v, size_t slot, unsigned attempts)
{
        v->left[slot] = attempts;
        v->trying[slot] = false;
        boot_order_move_front(v->order, &v->n_order, slot);
}

/* First slot in the order with attempts left, or -ENOENT. */
static ssize_t boot_vars_primary(const BootVars *v)
{
        for (size_t k = 0; k < v->n_order; k++)
                if (v->left[v->order[k]] > 0)
                        return (ssize_t)v->order[k];
        return -ENOENT;
}

static SlotState boot_vars_state(const BootVars *v, size_t slot)
{
        bool in_order = false;

        if (v->trying[slot])
                return SLOT_STATE_TRY;
        for (size_t k = 0; k < v->n_order; k++)
                if (v->order[k] == slot)
                        in_order = true;
        if (!in_order || v->left[slot] == 0)
                return SLOT_STATE_BAD;
        return SLOT_STATE_GOOD;
}

static const char *vars_where(const BootBackend *b)
{
        return b->ops->vars->where ?: b->path;
}

static int vars_update(BootBackend *b, size_t slot, VarsOp op, UpkErr *err)
{
        const BootVarsStore *io = b->ops->vars;
        void *ctx = NULL;
        BootVars v;
        int r;

        r = io->load(b, &ctx, &v, err);
        if (r < 0)
                return r;
        switch (op) {
        case VARS_OP_BAD:
                boot_vars_mark_bad(&v, slot);
                break;
        case VARS_OP_TRY:
                boot_vars_set_try(&v, slot);
                break;
        case VARS_OP_GOOD:
                boot_vars_mark_good(&v, slot, b->attempts);
                break;
        }
        r = io->store(b, ctx, &v, err);
        io->free_ctx(ctx);
        return r;
}

/* Read only: the context goes at once. */
static int vars_read(BootBackend *b, BootVars *v, UpkErr *err)
{
        void *ctx = NULL;
        int r = b->ops->vars->load(b, &ctx, v, err);

        if (r >= 0)
                b->ops->vars->free_ctx(ctx);
        return r;
}

int boot_vars_op_mark_bad(BootBackend *b, size_t slot, UpkErr *err)
{
        return vars_update(b, slot, VARS_OP_BAD, err);
}

int boot_vars_op_set_try(BootBackend *b, size_t slot, UpkErr *err)
{
        return vars_update(b, slot, VARS_OP_TRY, err);
}

int boot_vars_op_mark_good(BootBackend *b, size_t slot, UpkErr *err)
{
        return vars_update(b, slot, VARS_OP_GOOD, err);
}

int boot_vars_op_get_primary(BootBackend *b, size_t *ret, UpkErr *err)
{
        BootVars v;
        ssize_t i;
        int r;

        r = vars_read(b, &v, err);
        if (r < 0)
                return r;
        i = boot_vars_primary(&v);
        if (i < 0)
                return upk_err(err, UPK_ERR_IO, -ENOENT,
                               "%s: no bootable slot: no slot in BOOT_ORDER has attempts left",
                               vars_where(b));
        *ret = (size_t)i;
        return 0;
}

int boot_vars_op_get_state(BootBackend *b, size_t slot, SlotState *ret, UpkErr *err)
{
        BootVars v;
        int r;

        r = vars_read(b, &v, err);
        if (r < 0)
                return r;
        *ret = boot_vars_state(&v, slot);
        return 0;
}

int boot_vars_op_get_current(BootBackend *b, size_t *ret, UpkErr *err)
{
        BootVars v;
        int r;

        r = vars_read(b, &v, err);
        if (r < 0)
                return r;
        if (v.booted < 0)
                return upk_err(err, UPK_ERR_IO, -ENODATA, "%s: %s", vars_where(b), b->ops->vars->no_booted);
        *ret = (size_t)v.booted;
        return 0;
}

/* ---- slot order ---- */

int boot_order_parse(const char *s, char *const *slots, size_t n_slots, size_t *ret_order, size_t *ret_n,
                     const char *where, UpkErr *err)
{
        size_t order[BOOT_SLOTS_MAX], n = 0;
        const char *p = s;

        for (;;) {
                char name[BOOT_SLOT_NAME_MAX + 1];
                size_t len;
                int i;

                p += strspn(p, " \t");
                if (!*p)
                        break;
                len = strcspn(p, " \t");
                if (len > BOOT_SLOT_NAME_MAX)
                        return upk_err(err, UPK_ERR_CONFIG, -EBADMSG,
                                       "%s: a slot name is longer than %d bytes", where, BOOT_SLOT_NAME_MAX);
                memcpy(name, p, len);
                name[len] = 0;
                p += len;
                i = boot_slot_index(slots, n_slots, name);
                if (i < 0)
                        return upk_err(err, UPK_ERR_CONFIG, -EBADMSG,
                                       "%s: \"%s\" is not one of the boot slots", where, format_value(name));
                for (size_t k = 0; k < n; k++)
                        if (order[k] == (size_t)i)
                                return upk_err(err, UPK_ERR_CONFIG, -EBADMSG,
                                               "%s: slot \"%s\" is listed twice", where, format_value(name));
                order[n++] = (size_t)i; /* n < n_slots <= BOOT_SLOTS_MAX: no duplicates */
        }
        memcpy(ret_order, order, n * sizeof(size_t));
        *ret_n = n;
        return 0;
}

char *boot_order_format(char *const *slots, const size_t *order, size_t n)
{
        size_t len = 1;
        char *s, *p;

        for (size_t k = 0; k < n; k++)
                len += strlen(slots[order ? order[k] : k]) + 1;
        s = malloc(len);
        if (!s)
                return NULL;
        p = s;
        for (size_t k = 0; k < n; k++) {
                const char *name = slots[order ? order[k] : k];
                size_t l = strlen(name);
                if (k > 0)
                        *p++ = ' ';
                memcpy(p, name, l);
                p += l;
        }
        *p = 0;
        return s;
}

static void order_remove(size_t *order, size_t *n, size_t slot)
{
        size_t w = 0;

        for (size_t k = 0; k < *n; k++)
                if (order[k] != slot)
                        order[w++] = order[k];
        *n = w;
}

void boot_order_move_front(size_t *order, size_t *n, size_t slot)
{
        order_remove(order, n, slot);
        memmove(order + 1, order, *n * sizeof(size_t));
        order[0] = slot;
        (*n)++;
}

void boot_order_move_back(size_t *order, size_t *n, size_t slot)
{
        order_remove(order, n, slot);
        order[(*n)++] = slot;
}

/* ---- the boot-counting model (file, uboot) ---- */

static int vars_key(char *buf, size_t size, const char *slot, const char *suffix)
{
        int k = snprintf(buf, size, "BOOT_%s_%s", slot, suffix);
        return k < 0 || (size_t)k >= size ? -ENAMETOOLONG : 0;
}

int boot_vars_load(BootVars *v, char *const *slots, size_t n_slots, unsigned attempts,
                   boot_vars_lookup_t lookup, void *userdata, UpkErr *err)
{
        char where[512], key[BOOT_KEY_MAX];
        const char *val;
        bool initialised;
        int r;

        *v = (BootVars){ .slots = slots, .n_slots = n_slots, .booted = -1 };

        val = lookup(userdata, "BOOT_ORDER", where, sizeof(where));
        initialised = val != NULL;
        if (initialised) {
                r = boot_order_parse(val, slots, n_slots, v->order, &v->n_order, where, err);
                if (r < 0)
                        return r;
        } else {
                for (size_t i = 0; i < n_slots; i++)
                        v->order[i] = i;
                v->n_order = n_slots;
        }

        for (size_t i = 0; i < n_slots; i++) {
                uint64_t u;

                r = vars_key(key, sizeof(key), slots[i], "LEFT");
                if (r < 0)
                        return upk_err(err, UPK_ERR_CONFIG, r,
                                       "slot \"%s\": the name is too long for a boot variable", slots[i]);
                val = lookup(userdata, key, where, sizeof(where));
                if (!val)
                        v->left[i] = !initialised && i == 0 ? attempts : 0;
                else if (safe_atou64(val, &u) < 0 || u > BOOT_ATTEMPTS_MAX)
                        return upk_err(err, UPK_ERR_CONFIG, -EBADMSG,
                                       "%s: \"%s\" is not a number of attempts from 0 to %d", where,
                                       format_value(val), BOOT_ATTEMPTS_MAX);
                else
                        v->left[i] = (unsigned)u;

                r = vars_key(key, sizeof(key), slots[i], "TRY");
                if (r < 0)
                        return upk_err(err, UPK_ERR_CONFIG, r,
                                       "slot \"%s\": the name is too long for a boot variable", slots[i]);
                val = lookup(userdata, key, where, sizeof(where));
                if (!val || streq(val, "0"))
                        v->trying[i] = false;
                else if (streq(val, "1"))
                        v->trying[i] = true;
                else
                        return upk_err(err, UPK_ERR_CONFIG, -EBADMSG, "%s: \"%s\" is neither 0 nor 1", where,
                                       format_value(val));
        }

        val = lookup(userdata, "BOOTED", where, sizeof(where));
        if (val) {
                int i = boot_slot_index(slots, n_slots, val);
                if (i < 0)
                        return upk_err(err, UPK_ERR_CONFIG, -EBADMSG,
                                       "%s: \"%s\" is not one of the boot slots", where, format_value(val));
                v->booted = i;
        }
        return 0;
}

ssize_t boot_vars_boot(BootVars *v)
{
        ssize_t i = boot_vars_primary(v);

        if (i >= 0)
                v->left[i]--;
        else {
                /* Nothing has attempts left, but a device always boots something: the first slot in the
                 * order that is not an unconfirmed try, else the first one; the counts stay. */
                for (size_t k = 0; k < v->n_order && i < 0; k++)
                        if (!v->trying[v->order[k]])
                                i = (ssize_t)v->order[k];
                if (i < 0 && v->n_order > 0)
                        i = (ssize_t)v->order[0];
                if (i < 0)
                        return -ENOENT;
        }
        v->booted = i;
        return i;
}

void boot_kv_free(BootKV *kv, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                free(kv[i].key);
                free(kv[i].value);
        }
        free(kv);
}

int boot_vars_to_kv(const BootVars *v, bool with_booted, BootKV **ret, size_t *ret_n)
{
        size_t n = 0, max = 2 + 2 * v->n_slots;
        BootKV *kv = calloc(max, sizeof(BootKV));
        char key[BOOT_KEY_MAX];

        if (!kv)
                return -ENOMEM;
        kv[n].key = strdup("BOOT_ORDER");
        kv[n].value = boot_order_format(v->slots, v->order, v->n_order);
        if (!kv[n++].value)
                goto oom;
        for (size_t i = 0; i < v->n_slots; i++) {
                if (vars_key(key, sizeof(key), v->slots[i], "LEFT") < 0 || !(kv[n].key = strdup(key)))
                        goto oom;
                if (!(kv[n++].value = strdup_printf("%u", v->left[i])))
                        goto oom;
                if (vars_key(key, sizeof(key), v->slots[i], "TRY") < 0 || !(kv[n].key = strdup(key)))
                        goto oom;
                if (v->trying[i] && !(kv[n].value = strdup("1")))
                        goto oom;
                n++;
        }
        if (with_booted && v->booted >= 0) {
                kv[n].key = strdup("BOOTED");
                kv[n].value = strdup(v->slots[v->booted]);
                if (!kv[n++].value)
                        goto oom;
        }
        for (size_t i = 0; i < n; i++)
                if (!kv[i].key)
                        goto oom;
        *ret = kv;
        *ret_n = n;
        return 0;
oom:
        boot_kv_free(kv, max);
        return -ENOMEM;
}
