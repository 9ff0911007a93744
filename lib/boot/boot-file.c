/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The file backend: the boot-counting variables in a plain KEY=VALUE file, replaced atomically. */
#include <stdio.h>
#include <sys/stat.h>

#include "boot-internal.h"
#include "fileio.h"
#include "path-util.h"

typedef struct KvLine {
        char *key;   /* NULL: a blank or comment line, kept verbatim in `value` */
        char *value; /* unquoted */
        unsigned line;
} KvLine;

typedef struct KvFile {
        const char *path;
        KvLine *lines;
        size_t n, alloc;
} KvFile;

static void kv_file_done(KvFile *f)
{
        for (size_t i = 0; i < f->n; i++) {
                free(f->lines[i].key);
                free(f->lines[i].value);
        }
        free(f->lines);
        f->lines = NULL;
        f->n = f->alloc = 0;
}

static KvLine *kv_find(KvFile *f, const char *key)
{
        for (size_t i = 0; i < f->n; i++)
                if (f->lines[i].key && streq(f->lines[i].key, key))
                        return &f->lines[i];
        return NULL;
}

static int kv_append(KvFile *f, char *key, char *value, unsigned line)
{
        if (f->n >= f->alloc) {
                size_t na = f->alloc ? f->alloc * 2 : 16;
                KvLine *p = realloc(f->lines, na * sizeof(KvLine));
                if (!p)
                        return -ENOMEM;
                f->lines = p;
                f->alloc = na;
        }
        f->lines[f->n++] = (KvLine){ .key = key, .value = value, .line = line };
        return 0;
}

static bool key_char(char c, bool first)
{
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' ||
               (!first && c >= '0' && c <= '9');
}

static int parse_line(KvFile *f, const char *s, size_t len, unsigned line, UpkErr *err)
{
        _cleanup_free_ char *key = NULL, *value = NULL;
        const char *eq, *v;
        size_t klen, vlen;
        KvLine *dup;

        if (len == 0 || s[0] == '#') {
                value = strndup(s, len);
                if (!value)
                        return upk_err_oom(err);
                return kv_append(f, NULL, TAKE_PTR(value), line) < 0 ? -ENOMEM : 0;
        }
        eq = memchr(s, '=', len);
        if (!eq)
                return upk_err(err, UPK_ERR_CONFIG, -EBADMSG, "%s:%u: expected KEY=VALUE", f->path, line);
        klen = (size_t)(eq - s);
        if (klen == 0 || klen >= BOOT_KEY_MAX)
                return upk_err(err, UPK_ERR_CONFIG, -EBADMSG,
                               "%s:%u: the key is empty or longer than %u bytes", f->path, line,
                               BOOT_KEY_MAX - 1);
        for (size_t i = 0; i < klen; i++)
                if (!key_char(s[i], i == 0))
                        return upk_err(err, UPK_ERR_CONFIG, -EBADMSG,
                                       "%s:%u: \"%.*s\" is not a key (letters, digits and '_')", f->path,
                                       line, (int)klen, format_value(s));
        v = eq + 1;
        vlen = len - klen - 1;
        if (vlen > 0 && v[0] == '"') {
                if (vlen < 2 || v[vlen - 1] != '"')
                        return upk_err(err, UPK_ERR_CONFIG, -EBADMSG,
                                       "%s:%u: the value's closing quote is missing", f->path, line);
                v++;
                vlen -= 2;
        }
        if (vlen > BOOT_VALUE_MAX)
                return upk_err(err, UPK_ERR_CONFIG, -EBADMSG, "%s:%u: the value is longer than %u bytes",
                               f->path, line, BOOT_VALUE_MAX);
        for (size_t i = 0; i < vlen; i++)
                if (v[i] == '"' || ((unsigned char)v[i] < 0x20 && v[i] != '\t') || v[i] == 0x7f)
                        return upk_err(err, UPK_ERR_CONFIG, -EBADMSG,
                                       "%s:%u: the value holds a quote or a control character", f->path,
                                       line);
        key = strndup(s, klen);
        value = strndup(v, vlen);
        if (!key || !value)
                return upk_err_oom(err);
        dup = kv_find(f, key);
        if (dup)
                return upk_err(err, UPK_ERR_CONFIG, -EBADMSG, "%s:%u: %s is already set on line %u", f->path,
                               line, key, dup->line);
        if (kv_append(f, key, value, line) < 0)
                return upk_err_oom(err);
        key = value = NULL;
        return 0;
}

/* A missing file reads as empty: no BOOT_ORDER, so the defaults of boot_vars_load() apply. */
static int kv_load(KvFile *f, const char *path, UpkErr *err)
{
        _cleanup_free_ char *data = NULL;
        size_t size;
        unsigned line = 0;
        int r;

        *f = (KvFile){ .path = path };
        r = read_full_file(path, BOOT_STATE_FILE_MAX, &data, &size);
        if (r == -ENOENT)
                return 0;
        if (r == -EFBIG)
                return upk_err(err, UPK_ERR_CONFIG, r, "%s: larger than %u bytes", path,
                               BOOT_STATE_FILE_MAX);
        if (r < 0)
                return upk_err(err, UPK_ERR_IO, r, "%s: cannot read: %m", path);
        if (memchr(data, 0, size))
                return upk_err(err, UPK_ERR_CONFIG, -EBADMSG, "%s: holds a NUL byte: not a text file", path);

        for (const char *p = data; p < data + size;) {
                const char *nl = memchr(p, '\n', (size_t)(data + size - p));
                size_t len = nl ? (size_t)(nl - p) : (size_t)(data + size - p);

                r = parse_line(f, p, len, ++line, err);
                if (r < 0) {
                        kv_file_done(f);
                        return r;
                }
                p += len + 1;
        }
        return 0;
}

static int kv_set(KvFile *f, const char *key, const char *value)
{
        KvLine *l = kv_find(f, key);
        char *k, *v;

        if (!value) {
                if (l) {
                        free(l->key);
                        free(l->value);
                        memmove(l, l + 1, (size_t)(f->lines + f->n - l - 1) * sizeof(KvLine));
                        f->n--;
                }
                return 0;
        }
        v = strdup(value);
        if (!v)
                return -ENOMEM;
        if (l) {
                free(l->value);
                l->value = v;
                return 0;
        }
        k = strdup(key);
        if (!k || kv_append(f, k, v, 0) < 0) {
                free(k);
                free(v);
                return -ENOMEM;
        }
        return 0;
}

static int kv_store(KvFile *f, UpkErr *err)
{
        _cleanup_free_ char *buf = NULL, *dir = NULL;
        const char *name = path_basename(f->path);
        size_t size = 0, alloc = 0;
        int r, k;

        for (size_t i = 0; i < f->n; i++) {
                const KvLine *l = &f->lines[i];
                bool quote = l->key && (isempty(l->value) || strpbrk(l->value, " \t#"));
                size_t need = (l->key ? strlen(l->key) + 1 : 0) + strlen(l->value) + 2 * quote + 1;
                char *p;

                if (size + need + 1 > alloc) {
                        alloc = (size + need + 1) * 2;
                        p = realloc(buf, alloc);
                        if (!p)
                                return upk_err_oom(err);
                        buf = p;
                }
                if (l->key)
                        k = snprintf(buf + size, alloc - size, "%s=%s%s%s\n", l->key, quote ? "\"" : "",
                                     l->value, quote ? "\"" : "");
                else
                        k = snprintf(buf + size, alloc - size, "%s\n", l->value);
                if (k < 0 || (size_t)k >= alloc - size)
                        return upk_err_oom(err);
                size += (size_t)k;
        }
        if (size > BOOT_STATE_FILE_MAX)
                return upk_err(err, UPK_ERR_IO, -EFBIG, "%s: would grow beyond %u bytes", f->path,
                               BOOT_STATE_FILE_MAX);

        dir = path_dirname(f->path);
        if (!dir)
                return upk_err_oom(err);
        r = write_file_atomic(dir, name, buf ? buf : "", size, 0644);
        if (r < 0)
                return upk_err(err, UPK_ERR_IO, r, "%s: cannot write: %m", f->path);
        return 0;
}

static const char *kv_lookup(void *userdata, const char *key, char *where, size_t where_size)
{
        KvFile *f = userdata;
        KvLine *l = kv_find(f, key);

        if (!l)
                return NULL;
        snprintf(where, where_size, "%s:%u: %s", f->path, l->line, key);
        return l->value;
}

static int store_vars(KvFile *f, const BootVars *v, bool with_booted, UpkErr *err)
{
        BootKV *kv;
        size_t n;
        int r;

        r = boot_vars_to_kv(v, with_booted, &kv, &n);
        if (r < 0)
                return upk_err_oom(err);
        for (size_t i = 0; i < n && r >= 0; i++)
                r = kv_set(f, kv[i].key, kv[i].value);
        boot_kv_free(kv, n);
        if (r < 0)
                return r;
        return kv_store(f, err);
}

static int file_init(BootBackend *b, const Config *c, UpkErr *err)
{
        _cleanup_free_ char *dir = NULL;
        const char *slash;
        struct stat st;

        if (isempty(c->boot_state_file))
                return upk_err(err, UPK_ERR_CONFIG, -EINVAL,
                               "[boot] state-file: not set (the file backend needs it)");
        slash = strrchr(c->boot_state_file, '/');
        if (slash && !slash[1])
                return upk_err(err, UPK_ERR_CONFIG, -EINVAL,
                               "[boot] state-file: %s names a folder, not a file", c->boot_state_file);
        dir = path_dirname(c->boot_state_file);
        if (!dir)
                return upk_err_oom(err);
        if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
                return upk_err(err, UPK_ERR_CONFIG, -ENOENT,
                               "[boot] state-file: %s: its folder %s does not exist", c->boot_state_file,
                               dir);
        b->path = strdup(c->boot_state_file);
        return b->path ? 0 : -ENOMEM;
}

static int file_load(BootBackend *b, KvFile *f, BootVars *v, UpkErr *err)
{
        int r = kv_load(f, b->path, err);
        if (r < 0)
                return r;
        r = boot_vars_load(v, b->slots, b->n_slots, b->attempts, kv_lookup, f, err);
        if (r < 0)
                kv_file_done(f);
        return r;
}

static int file_vars_load(BootBackend *b, void **ret_ctx, BootVars *v, UpkErr *err)
{
        KvFile *f = malloc(sizeof(*f));
        int r;

        if (!f)
                return upk_err_oom(err);
        r = file_load(b, f, v, err);
        if (r < 0) {
                free(f);
                return r;
        }
        *ret_ctx = f;
        return 0;
}

static int file_vars_store(BootBackend *b, void *ctx, const BootVars *v, UpkErr *err)
{
        return store_vars(ctx, v, false, err);
}

static void file_vars_free(void *ctx)
{
        kv_file_done(ctx);
        free(ctx);
}

static const BootVarsStore file_vars = {
        .load = file_vars_load,
        .store = file_vars_store,
        .free_ctx = file_vars_free,
        .no_booted = "no BOOTED= entry: nothing has booted through it yet",
};

const BootOps boot_file_ops = {
        .init = file_init,
        .vars = &file_vars,
        .mark_bad = boot_vars_op_mark_bad,
        .set_try = boot_vars_op_set_try,
        .mark_good = boot_vars_op_mark_good,
        .get_primary = boot_vars_op_get_primary,
        .get_state = boot_vars_op_get_state,
        .get_current = boot_vars_op_get_current,
};

int boot_file_simulate_boot(const char *state_file, char **ret_booted, UpkErr *err)
{
        char names[BOOT_SLOTS_MAX][BOOT_SLOT_NAME_MAX + 1];
        char *slots[BOOT_SLOTS_MAX] = { names[0], names[1] };
        size_t n_slots = 2;
        KvFile f;
        KvLine *order, *booted_line;
        BootVars v;
        ssize_t i;
        char *s;
        int r;

        if (isempty(state_file))
                return upk_err(err, UPK_ERR_CONFIG, -EINVAL, "no boot state file given");
        r = kv_load(&f, state_file, err);
        if (r < 0)
                return r;

        /* The slots are the ones BOOT_ORDER lists; without one, the default "A B". */
        memcpy(names[0], "A", 2);
        memcpy(names[1], "B", 2);
        order = kv_find(&f, "BOOT_ORDER");
        if (order) {
                const char *p = order->value;
                n_slots = 0;
                for (;;) {
                        size_t len;
                        p += strspn(p, " \t");
                        if (!*p)
                                break;
                        len = strcspn(p, " \t");
                        if (n_slots >= BOOT_SLOTS_MAX || len > BOOT_SLOT_NAME_MAX) {
                                r = upk_err(err, UPK_ERR_CONFIG, -EBADMSG,
                                            "%s:%u: BOOT_ORDER: more than %d slots or a name longer than %d "
                                            "bytes",
                                            state_file, order->line, BOOT_SLOTS_MAX, BOOT_SLOT_NAME_MAX);
                                goto out;
                        }
                        memcpy(names[n_slots], p, len);
                        names[n_slots][len] = 0;
                        if (!boot_slot_name_valid(names[n_slots])) {
                                r = upk_err(err, UPK_ERR_CONFIG, -EBADMSG,
                                            "%s:%u: BOOT_ORDER: \"%s\" is not a valid slot name", state_file,
                                            order->line, names[n_slots]);
                                goto out;
                        }
                        slots[n_slots] = names[n_slots];
                        n_slots++;
                        p += len;
                }
        }

        /* BOOTED is the bootloader's own record of its last choice, which this boot overwrites: a slot
         * it names that the order no longer lists (marked bad since) is still one of the slots. */
        booted_line = kv_find(&f, "BOOTED");
        if (booted_line && n_slots < BOOT_SLOTS_MAX && strlen(booted_line->value) <= BOOT_SLOT_NAME_MAX &&
            boot_slot_name_valid(booted_line->value) &&
            boot_slot_index(slots, n_slots, booted_line->value) < 0) {
                strcpy(names[n_slots], booted_line->value);
                slots[n_slots] = names[n_slots];
                n_slots++;
        }

        r = boot_vars_load(&v, slots, n_slots, BOOT_ATTEMPTS_DEFAULT, kv_lookup, &f, err);
        if (r < 0)
                goto out;
        i = boot_vars_boot(&v);
        if (i < 0) {
                r = upk_err(err, UPK_ERR_IO, -ENOENT, "%s: BOOT_ORDER is empty: nothing to boot",
                            state_file);
                goto out;
        }
        s = strdup(slots[i]);
        if (!s) {
                r = -ENOMEM;
                goto out;
        }
        r = store_vars(&f, &v, true, err);
        if (r < 0) {
                free(s);
                goto out;
        }
        if (ret_booted)
                *ret_booted = s;
        else
                free(s);
out:
        kv_file_done(&f);
        return r;
}
