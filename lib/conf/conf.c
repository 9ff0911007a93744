/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "conf.h"

#include <dirent.h>
#include <fcntl.h>
#include <ini.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>

#include "fileio.h"
#include "parse-util.h"
#include "path-util.h"
#include "time-util.h"

/* How the text reaches libinih. libinih's behaviour depends on how it was built (inline comment
 * characters, multi-line values, the line length, whether the handler gets the line number), and
 * Debian's build strips inline ";" comments only, not "#". So every line goes through our own reader
 * first, which makes the syntax the same whatever the build:
 *   - leading blanks are dropped, so an indented line is never a continuation of the previous value;
 *   - a line starting with "#" or ";" is a comment;
 *   - " #..." and " ;..." (a blank, then "#" or ";") end the line: inline comments;
 *   - a UTF-8 byte order mark at the start of the file is skipped;
 *   - a NUL byte, or a line longer than libinih's buffer, is an error naming the line (libinih would
 *     otherwise split a long line into two and parse the tail as a line of its own).
 * The reader also counts lines, so errors can name the line whatever INI_HANDLER_LINENO is. */

#define SLOT_CLASS_MAX    64
#define SLOT_BOOTNAME_MAX 64
#define CONFIG_KEYS_MAX   64 /* entries of config_keys[] */
#define SLOT_KEYS_MAX     8  /* entries of slot_keys[] */
#define SLOT_FSTYPE_MAX   16
#define COMPATIBLE_MAX    128
#define GOT_MAX           160 /* bytes of a bad value quoted in a message */

/* ------------------------------------------------------------------------------------------------ */
/* String tables */

static const char *const boot_backend_table[_BOOT_BACKEND_MAX] = {
        [BOOT_BACKEND_FILE] = "file",
        [BOOT_BACKEND_UBOOT] = "uboot",
        [BOOT_BACKEND_GRUB] = "grub",
        [BOOT_BACKEND_SCRIPT] = "script",
};

static const char *const source_type_table[_SOURCE_MAX] = {
        [SOURCE_NONE] = "none",
        [SOURCE_TUF] = "tuf",
        [SOURCE_HAWKBIT] = "hawkbit",
        [SOURCE_LOCAL] = "local",
};

static const char *const hawkbit_auth_table[_HAWKBIT_AUTH_MAX] = {
        [HAWKBIT_AUTH_TARGET_TOKEN] = "target-token",
        [HAWKBIT_AUTH_GATEWAY_TOKEN] = "gateway-token",
        [HAWKBIT_AUTH_NONE] = "none",
};

static const char *const auto_install_table[_AUTO_INSTALL_MAX] = {
        [AUTO_INSTALL_ALL] = "all",
        [AUTO_INSTALL_SECURITY] = "security",
        [AUTO_INSTALL_NONE] = "none",
};

static const char *const reboot_policy_table[_REBOOT_MAX] = {
        [REBOOT_AUTO] = "auto",
        [REBOOT_MANUAL] = "manual",
};

DEFINE_STRING_TABLE(boot_backend_type, BootBackendType, boot_backend_table)
DEFINE_STRING_TABLE(source_type, SourceType, source_type_table)
DEFINE_STRING_TABLE(hawkbit_auth, HawkbitAuth, hawkbit_auth_table)
DEFINE_STRING_TABLE(auto_install, AutoInstall, auto_install_table)
DEFINE_STRING_TABLE(reboot_policy, RebootPolicy, reboot_policy_table)

/* ------------------------------------------------------------------------------------------------ */
/* Value checks. Each returns 0, or -EINVAL with *reason set to a static sentence. */

static bool char_in(char c, const char *extra)
{
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c && strchr(extra, c));
}

static bool is_word(const char *s, size_t max, bool upper, const char *extra)
{
        size_t n = 0;

        for (const char *p = s; *p; p++, n++)
                if (!char_in(*p, extra) && !(upper && *p >= 'A' && *p <= 'Z'))
                        return false;
        return n >= 1 && n <= max;
}

static bool is_url(const char *s)
{
        const char *rest;

        if (strneq(s, "https://", 8))
                rest = s + 8;
        else if (strneq(s, "http://", 7))
                rest = s + 7;
        else
                return false;
        if (*rest == 0 || *rest == '/')
                return false;
        for (const char *p = s; *p; p++)
                if (*p == ' ' || *p == '\t')
                        return false;
        return true;
}

static bool is_proxy(const char *s)
{
        static const char *const schemes[] = { "http://",    "https://",  "socks4://",
                                               "socks4a://", "socks5://", "socks5h://" };
        const char *colon;
        uint64_t port;

        for (const char *p = s; *p; p++)
                if (*p == ' ' || *p == '\t')
                        return false;
        if (strstr(s, "://")) {
                for (size_t i = 0; i < ELEMENTSOF(schemes); i++) {
                        size_t n = strlen(schemes[i]);
                        if (strneq(s, schemes[i], n))
                                return s[n] != 0 && s[n] != '/';
                }
                return false;
        }
        colon = strrchr(s, ':');
        if (!colon || colon == s)
                return false;
        if (safe_atou64(colon + 1, &port) < 0 || port < 1 || port > 65535)
                return false;
        return true;
}

/* ------------------------------------------------------------------------------------------------ */
/* Key tables */

typedef struct Loc {
        const char *file; /* owned by LoadCtx.files */
        unsigned line;
} Loc;

typedef struct SlotExtra {
        Loc first;  /* where the section first appeared */
        Loc device; /* where device= was last set */
} SlotExtra;

typedef struct LoadCtx {
        Config *c;
        SlotExtra slot_extra[CONFIG_SLOTS_MAX];
        char *files[1 + CONFIG_FILES_MAX];
        size_t n_files;
        const char *file; /* the file being read */
        unsigned line;    /* the line being handled */
        bool jitter_set;
        Loc jitter_loc, backend_loc;
        size_t dropped_warnings, dropped_repeats;
        /* The line where each key was set in the current file (0: not yet), so that a key set twice in
         * one file is a warning. A later file setting it again is how conf.d overrides: no warning. */
        unsigned key_line[CONFIG_KEYS_MAX];
        unsigned slot_key_line[CONFIG_SLOTS_MAX][SLOT_KEYS_MAX];
        /* the first error of the current file */
        UpkErr err;
        unsigned err_line;
} LoadCtx;

/* A parser stores `v` (never empty) in `dst`, or fails with -EINVAL and a reason. An empty value restores
 * the key's default: the parser is called with KeyDesc.def, or, for keys without a default, the string
 * keys are unset and the others get "" (only the maintenance window has no default). */
typedef int (*parse_fn)(const char *v, void *dst, const char **reason);

typedef struct KeyDesc {
        const char *section;
        const char *key;
        parse_fn parse;
        size_t offset;
        const char *def;
        bool is_string; /* dst is a char* slot */
} KeyDesc;

static int set_string(void *dst, const char *v)
{
        char **p = dst;
        char *s = strdup(v);

        if (!s)
                return -ENOMEM;
        free(*p);
        *p = s;
        return 0;
}

static int parse_abs_path(const char *v, void *dst, const char **reason)
{
        if (v[0] != '/') {
                *reason = "must be an absolute path";
                return -EINVAL;
        }
        return set_string(dst, v);
}

/* One or more absolute paths, separated by spaces. */
static int parse_abs_paths(const char *v, void *dst, const char **reason)
{
        const char *p = v + strspn(v, " \t");

        if (!*p) {
                *reason = "must be absolute paths separated by spaces";
                return -EINVAL;
        }
        for (; *p; p += strcspn(p, " \t"), p += strspn(p, " \t"))
                if (p[0] != '/') {
                        *reason = "must be absolute paths separated by spaces";
                        return -EINVAL;
                }
        return set_string(dst, v);
}

static int parse_url(const char *v, void *dst, const char **reason)
{
        if (!is_url(v)) {
                *reason = "must be a URL starting with http:// or https://";
                return -EINVAL;
        }
        return set_string(dst, v);
}

static int parse_proxy(const char *v, void *dst, const char **reason)
{
        if (streq(v, "none")) /* "": no proxy, also none from the environment (libcurl's convention) */
                return set_string(dst, "");
        if (!is_proxy(v)) {
                *reason = "must be none, a proxy URL (http, https, socks4, socks4a, socks5, socks5h) or "
                          "HOST:PORT";
                return -EINVAL;
        }
        return set_string(dst, v);
}

static int parse_compatible(const char *v, void *dst, const char **reason)
{
        if (!is_word(v, COMPATIBLE_MAX, true, "._+-")) {
                *reason = "must be 1 to 128 characters A-Z, a-z, 0-9, '.', '_', '+' or '-'";
                return -EINVAL;
        }
        return set_string(dst, v);
}

static int parse_slot_name(const char *v, void *dst, const char **reason)
{
        if (!streq(v, "A") && !streq(v, "B")) {
                *reason = "must be a slot name, A or B";
                return -EINVAL;
        }
        return set_string(dst, v);
}

static int parse_bootname(const char *v, void *dst, const char **reason)
{
        if (!is_word(v, SLOT_BOOTNAME_MAX, true, "_-")) {
                *reason = "must be 1 to 64 characters A-Z, a-z, 0-9, '_' or '-'";
                return -EINVAL;
        }
        return set_string(dst, v);
}

static int parse_fstype(const char *v, void *dst, const char **reason)
{
        if (!is_word(v, SLOT_FSTYPE_MAX, false, "")) {
                *reason = "must be 1 to 16 characters a-z or 0-9";
                return -EINVAL;
        }
        return set_string(dst, v);
}

static int parse_date(const char *v, void *dst, const char **reason)
{
        int64_t days;

        if (date_parse_days(v, &days) < 0) {
                *reason = "must be a valid date YYYY-MM-DD";
                return -EINVAL;
        }
        return set_string(dst, v);
}

/* An enum key: its names are the string table's. The fields are enums with -EINVAL among their values,
 * so int-sized and signed. */
static int parse_enum(const char *const *table, size_t n, const char *choices, const char *v, void *dst,
                      const char **reason)
{
        int i = string_table_lookup(table, n, v);

        if (i < 0) {
                *reason = choices;
                return -EINVAL;
        }
        *(int *)dst = i;
        return 0;
}

#define DEFINE_ENUM_PARSER(fn, type, table, choices)                                  \
        _Static_assert(sizeof(type) == sizeof(int), #type " must be int-sized");      \
        static int fn(const char *v, void *dst, const char **reason)                  \
        {                                                                             \
                return parse_enum(table, ELEMENTSOF(table), choices, v, dst, reason); \
        }

DEFINE_ENUM_PARSER(parse_backend, BootBackendType, boot_backend_table, "must be file, uboot, grub or script")
DEFINE_ENUM_PARSER(parse_source_type, SourceType, source_type_table, "must be none, tuf, hawkbit or local")
DEFINE_ENUM_PARSER(parse_hawkbit_auth, HawkbitAuth, hawkbit_auth_table,
                   "must be target-token, gateway-token or none")
DEFINE_ENUM_PARSER(parse_auto_install, AutoInstall, auto_install_table, "must be all, security or none")
DEFINE_ENUM_PARSER(parse_reboot, RebootPolicy, reboot_policy_table, "must be auto or manual")

/* A hawkBit tenant or controller id: 1-256 printable ASCII characters without white space or '/',
 * '?', '#' and '%' (they end up in the URL's path). */
static int parse_hawkbit_name(const char *v, void *dst, const char **reason)
{
        size_t n = strlen(v);

        if (n == 0 || n > 256) {
                *reason = "must have 1 to 256 characters";
                return -EINVAL;
        }
        for (size_t i = 0; i < n; i++)
                if ((unsigned char)v[i] <= ' ' || (unsigned char)v[i] >= 0x7f || strchr("/?#%\\", v[i])) {
                        *reason = "must be printable ASCII without white space, /, ?, #, % or \\";
                        return -EINVAL;
                }
        return set_string(dst, v);
}

static int parse_attempts(const char *v, void *dst, const char **reason)
{
        uint64_t n;

        if (safe_atou64(v, &n) < 0 || n < 1 || n > BOOT_ATTEMPTS_MAX) {
                *reason = "must be a number from 1 to 16";
                return -EINVAL;
        }
        *(unsigned *)dst = (unsigned)n;
        return 0;
}

static int parse_bool(const char *v, void *dst, const char **reason)
{
        int b = parse_boolean(v);

        if (b < 0) {
                *reason = "must be yes, no, true, false, 1 or 0";
                return -EINVAL;
        }
        *(bool *)dst = b;
        return 0;
}

static int parse_duration_range(const char *v, uint64_t *dst, uint64_t min, uint64_t max, const char *what,
                                const char **reason)
{
        uint64_t u;
        int r = parse_duration_usec(v, &u);

        if (r < 0) {
                *reason = "must be a duration such as 45s, 30m, 6h, 1d or 1h30m";
                return -EINVAL;
        }
        if (u < min || u > max) {
                *reason = what;
                return -EINVAL;
        }
        *dst = u;
        return 0;
}

static int parse_poll_interval(const char *v, void *dst, const char **reason)
{
        return parse_duration_range(v, dst, USEC_PER_MIN, 30 * USEC_PER_DAY, "must be from 1m to 30d",
                                    reason);
}

static int parse_jitter(const char *v, void *dst, const char **reason)
{
        return parse_duration_range(v, dst, 0, 30 * USEC_PER_DAY, "must be from 0 to 30d", reason);
}

static int parse_health_timeout(const char *v, void *dst, const char **reason)
{
        return parse_duration_range(v, dst, USEC_PER_SEC, USEC_PER_HOUR, "must be from 1s to 1h", reason);
}

static int parse_window(const char *v, void *dst, const char **reason)
{
        Config *c = dst;
        unsigned start, end;

        if (*v == 0) {
                c->has_maintenance_window = false;
                c->window_start_min = c->window_end_min = 0;
                return 0;
        }
        if (strlen(v) != 11 || v[5] != '-' || clock_parse_minutes(v, &start) < 0 ||
            clock_parse_minutes(v + 6, &end) < 0) {
                *reason = "must be HH:MM-HH:MM (24-hour clock)";
                return -EINVAL;
        }
        if (start == end) {
                *reason = "start and end must differ";
                return -EINVAL;
        }
        c->has_maintenance_window = true;
        c->window_start_min = start;
        c->window_end_min = end;
        return 0;
}

#define CFG(field) offsetof(Config, field)
#define WHOLE      0 /* the parser gets the Config itself */

static const KeyDesc config_keys[] = {
        { "device", "compatible", parse_compatible, CFG(compatible), NULL, true },
        { "device", "version-file", parse_abs_path, CFG(version_file), "/etc/os-release", true },
        { "device", "data-dir", parse_abs_path, CFG(data_dir), CONFIG_DEFAULT_DATA_DIR, true },
        { "keyring", "path", parse_abs_path, CFG(keyring), CONFIG_DEFAULT_KEYRING, true },
        { "keyring", "crl", parse_abs_path, CFG(crl), NULL, true },
        { "keyring", "allow-any-eku", parse_bool, CFG(allow_any_eku), "no", false },
        { "boot", "backend", parse_backend, CFG(boot_backend), "file", false },
        { "boot", "state-file", parse_abs_path, CFG(boot_state_file), NULL, true },
        { "boot", "booted", parse_slot_name, CFG(boot_booted), NULL, true },
        { "boot", "script", parse_abs_path, CFG(boot_script), NULL, true },
        { "boot", "grubenv", parse_abs_path, CFG(boot_grubenv), "/boot/grub/grubenv", true },
        { "boot", "uboot-config", parse_abs_path, CFG(boot_uboot_config), NULL, true },
        { "boot", "attempts", parse_attempts, CFG(boot_attempts), "3", false },
        { "source", "type", parse_source_type, CFG(source_type), "none", false },
        { "source", "url", parse_url, CFG(source_url), NULL, true },
        { "source", "metadata-url", parse_url, CFG(source_metadata_url), NULL, true },
        { "source", "targets-url", parse_url, CFG(source_targets_url), NULL, true },
        { "source", "root", parse_abs_path, CFG(source_root), NULL, true },
        { "source", "ca", parse_abs_path, CFG(source_ca), NULL, true },
        { "source", "client-cert", parse_abs_path, CFG(source_client_cert), NULL, true },
        { "source", "client-key", parse_abs_path, CFG(source_client_key), NULL, true },
        { "source", "proxy", parse_proxy, CFG(source_proxy), NULL, true },
        { "source", "dir", parse_abs_path, CFG(source_dir), NULL, true },
        { "source", "tenant", parse_hawkbit_name, CFG(source_tenant), "DEFAULT", true },
        { "source", "controller-id", parse_hawkbit_name, CFG(source_controller_id), NULL, true },
        { "source", "auth", parse_hawkbit_auth, CFG(source_auth), "target-token", false },
        { "source", "token-file", parse_abs_path, CFG(source_token_file), NULL, true },
        { "source", "poll-interval", parse_poll_interval, CFG(poll_interval_usec), "6h", false },
        { "source", "jitter", parse_jitter, CFG(jitter_usec), "30m", false },
        { "policy", "auto-install", parse_auto_install, CFG(auto_install), "all", false },
        { "policy", "reboot", parse_reboot, CFG(reboot), "auto", false },
        { "policy", "maintenance-window", parse_window, WHOLE, NULL, false },
        { "policy", "allow-downgrade", parse_bool, CFG(allow_downgrade), "no", false },
        { "policy", "support-end", parse_date, CFG(support_end), NULL, true },
        { "health", "dir", parse_abs_path, CFG(health_dir), CONFIG_DEFAULT_HEALTH_DIR, true },
        { "health", "timeout", parse_health_timeout, CFG(health_timeout_usec), "60s", false },
        { "install", "handlers-dir", parse_abs_path, CFG(handlers_dir), CONFIG_DEFAULT_HANDLERS_DIR, true },
        { "install", "allowed-targets", parse_abs_paths, CFG(allowed_targets), NULL, true },
        { "install", "delta", parse_bool, CFG(delta), "yes", false },
};

#define SLOT(field) offsetof(SlotConfig, field)

static int parse_slot_size(const char *v, void *dst, const char **reason)
{
        uint64_t n;

        if (*v == 0) {
                *(uint64_t *)dst = 0;
                return 0;
        }
        if (parse_size(v, &n) < 0 || n == 0) {
                *reason = "must be a size in bytes above 0, with an optional K, M, G or T (binary) suffix";
                return -EINVAL;
        }
        *(uint64_t *)dst = n;
        return 0;
}

static const KeyDesc slot_keys[] = {
        { "slot", "device", parse_abs_path, SLOT(device), NULL, true },
        { "slot", "bootname", parse_bootname, SLOT(bootname), NULL, true },
        { "slot", "size", parse_slot_size, SLOT(size), NULL, false },
        { "slot", "fstype", parse_fstype, SLOT(fstype), "ext4", true },
};

_Static_assert(ELEMENTSOF(config_keys) <= CONFIG_KEYS_MAX, "LoadCtx.key_line is too small");
_Static_assert(ELEMENTSOF(slot_keys) <= SLOT_KEYS_MAX, "LoadCtx.slot_key_line is too small");

/* Apply `v` (may be empty: back to the default) to the key `k` of the object at `base`. */
static int key_apply(const KeyDesc *k, void *base, const char *v, const char **reason)
{
        void *dst = (uint8_t *)base + k->offset;

        if (*v == 0) {
                if (k->def)
                        v = k->def;
                else if (k->is_string) {
                        char **p = dst;
                        free(*p);
                        *p = NULL;
                        return 0;
                }
        }
        return k->parse(v, dst, reason);
}

static int keys_set_defaults(const KeyDesc *keys, size_t n, void *base)
{
        for (size_t i = 0; i < n; i++) {
                const char *reason = NULL;
                int r = key_apply(&keys[i], base, "", &reason);
                if (r < 0)
                        return r;
        }
        return 0;
}

static const KeyDesc *key_find(const KeyDesc *keys, size_t n, const char *section, const char *key)
{
        for (size_t i = 0; i < n; i++)
                if ((!section || streq(keys[i].section, section)) && streq(keys[i].key, key))
                        return &keys[i];
        return NULL;
}

/* ------------------------------------------------------------------------------------------------ */
/* Config object */

static void slot_config_done(SlotConfig *s)
{
        free(s->class);
        free(s->name);
        free(s->device);
        free(s->bootname);
        free(s->fstype);
}

Config *config_free(Config *c)
{
        if (!c)
                return NULL;
        for (size_t i = 0; i < ELEMENTSOF(config_keys); i++)
                if (config_keys[i].is_string)
                        free(*(char **)((uint8_t *)c + config_keys[i].offset));
        for (size_t i = 0; i < c->n_slots; i++)
                slot_config_done(&c->slots[i]);
        free(c->slots);
        for (size_t i = 0; i < c->n_warnings; i++)
                free(c->warnings[i]);
        free(c->warnings);
        for (size_t i = 0; i < 2 * c->n_attributes; i++)
                free(c->attributes[i]);
        free(c->attributes);
        free(c->config_path);
        free(c);
        return NULL;
}

const SlotConfig *config_find_slot(const Config *c, const char *class, const char *name)
{
        if (!c || !class || !name)
                return NULL;
        for (size_t i = 0; i < c->n_slots; i++)
                if (streq(c->slots[i].class, class) && streq(c->slots[i].name, name))
                        return &c->slots[i];
        return NULL;
}

/* ------------------------------------------------------------------------------------------------ */
/* Loading */

/* A copy of `v` fit for a message: control bytes become '?', long values are cut with "...". */
static void quote_value(const char *v, char *buf, size_t size)
{
        size_t n = 0;

        for (; v[n] && n + 1 < size; n++)
                buf[n] = (unsigned char)v[n] < 0x20 || v[n] == 0x7f ? '?' : v[n];
        buf[n] = 0;
        if (v[n] && size > 4)
                memcpy(buf + size - 4, "...", 4);
}

_printf_(3, 4) static int ctx_error(LoadCtx *ctx, unsigned line, const char *fmt, ...)
{
        char msg[UPK_ERR_MSG_MAX];
        va_list ap;

        if (ctx->err.kind != UPK_ERR_NONE)
                return 0;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        ctx->err_line = line;
        (void)upk_err(&ctx->err, UPK_ERR_CONFIG, -EINVAL, "%s:%u: %s", ctx->file, line, msg);
        return 0;
}

static int ctx_key_error(LoadCtx *ctx, const char *section, const char *key, const char *reason,
                         const char *v)
{
        char got[GOT_MAX];

        quote_value(v, got, sizeof(got));
        return ctx_error(ctx, ctx->line, "[%s] %s: %s (got \"%s\")", section, key, reason, got);
}

static int add_warning(Config *c, size_t *dropped, char *w)
{
        if (!w)
                return -ENOMEM;
        if (c->n_warnings >= CONFIG_WARNINGS_MAX) {
                (*dropped)++;
                free(w);
                return 0;
        }
        if (!c->warnings) {
                /* two more for the final "more warnings" lines */
                c->warnings = calloc(CONFIG_WARNINGS_MAX + 2, sizeof(char *));
                if (!c->warnings) {
                        free(w);
                        return -ENOMEM;
                }
        }
        c->warnings[c->n_warnings++] = w;
        return 0;
}

/* [slot.CLASS.NAME] → the slot (created on first use), or NULL with the error in ctx. */
static SlotConfig *ctx_get_slot(LoadCtx *ctx, const char *section, const char *key)
{
        Config *c = ctx->c;
        _cleanup_free_ char *class = NULL;
        const char *dot, *rest = section + strlen("slot.");
        SlotConfig *s;

        dot = strchr(rest, '.');
        if (!dot) {
                (void)ctx_error(ctx, ctx->line,
                                "[%s] %s: the section must be named [slot.CLASS.A] or [slot.CLASS.B]",
                                section, key);
                return NULL;
        }
        class = strndup(rest, (size_t)(dot - rest));
        if (!class) {
                (void)upk_err(&ctx->err, UPK_ERR_CONFIG, -ENOMEM, "%s:%u: out of memory", ctx->file,
                              ctx->line);
                ctx->err_line = ctx->line;
                return NULL;
        }
        if (!is_word(class, SLOT_CLASS_MAX, false, "_-")) {
                char got[GOT_MAX];
                quote_value(class, got, sizeof(got));
                (void)ctx_error(ctx, ctx->line,
                                "[%s] %s: the slot class must be 1 to 64 characters a-z, 0-9, '_' or '-' "
                                "(got \"%s\")",
                                section, key, got);
                return NULL;
        }
        if (!streq(dot + 1, "A") && !streq(dot + 1, "B")) {
                char got[GOT_MAX];
                quote_value(dot + 1, got, sizeof(got));
                (void)ctx_error(ctx, ctx->line, "[%s] %s: the slot name must be A or B (got \"%s\")",
                                section, key, got);
                return NULL;
        }

        for (size_t i = 0; i < c->n_slots; i++)
                if (streq(c->slots[i].class, class) && streq(c->slots[i].name, dot + 1))
                        return &c->slots[i];

        if (c->n_slots >= CONFIG_SLOTS_MAX) {
                (void)ctx_error(ctx, ctx->line, "[%s] %s: more than %d slot sections", section, key,
                                CONFIG_SLOTS_MAX);
                return NULL;
        }
        if (!c->slots) {
                c->slots = calloc(CONFIG_SLOTS_MAX, sizeof(SlotConfig));
                if (!c->slots)
                        goto oom;
        }
        s = &c->slots[c->n_slots];
        *s = (SlotConfig){ 0 };
        s->name = strdup(dot + 1);
        if (!s->name || keys_set_defaults(slot_keys, ELEMENTSOF(slot_keys), s) < 0) {
                slot_config_done(s);
                goto oom;
        }
        s->class = TAKE_PTR(class);
        ctx->slot_extra[c->n_slots] = (SlotExtra){ .first = { ctx->file, ctx->line } };
        c->n_slots++;
        return s;
oom:
        (void)upk_err(&ctx->err, UPK_ERR_CONFIG, -ENOMEM, "%s:%u: out of memory", ctx->file, ctx->line);
        ctx->err_line = ctx->line;
        return NULL;
}

/* [attributes] NAME = VALUE: a name of letters, digits, '-', '_' and '.'; a value of printable
 * characters; each at most CONFIG_ATTRIBUTE_MAX bytes. A later value replaces an earlier one. */
static int handle_attribute(LoadCtx *ctx, const char *key, const char *value)
{
        Config *c = ctx->c;
        size_t i;
        char **p;

        if (!key[0] || strlen(key) > CONFIG_ATTRIBUTE_MAX ||
            strspn(key, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") != strlen(key))
                return ctx_key_error(ctx, "attributes", key,
                                     "the name must have 1 to 128 letters, digits, '-', '_' or '.'", value);
        if (strlen(value) > CONFIG_ATTRIBUTE_MAX)
                return ctx_key_error(ctx, "attributes", key, "longer than 128 bytes", value);
        for (const char *v = value; *v; v++)
                if ((unsigned char)*v < 0x20 || (unsigned char)*v >= 0x7f)
                        return ctx_key_error(ctx, "attributes", key,
                                             "must be printable ASCII (hawkBit refuses the rest)", value);
        for (i = 0; i < c->n_attributes; i++)
                if (streq(c->attributes[2 * i], key))
                        break;
        if (i == c->n_attributes) {
                if (c->n_attributes >= CONFIG_ATTRIBUTES_MAX)
                        return ctx_key_error(ctx, "attributes", key, "more than 64 attributes", value);
                p = reallocarray(c->attributes, 2 * c->n_attributes + 3, sizeof(char *));
                if (!p)
                        goto oom;
                c->attributes = p;
                p[2 * i] = strdup(key);
                p[2 * i + 1] = NULL;
                p[2 * i + 2] = NULL;
                if (!p[2 * i])
                        goto oom;
                c->n_attributes++;
        }
        free(c->attributes[2 * i + 1]);
        c->attributes[2 * i + 1] = strdup(value);
        if (!c->attributes[2 * i + 1])
                goto oom;
        return 1;
oom:
        ctx->err_line = ctx->line;
        (void)upk_err(&ctx->err, UPK_ERR_CONFIG, -ENOMEM, "%s:%u: out of memory", ctx->file, ctx->line);
        return 0;
}

static int handle_key(LoadCtx *ctx, const char *section, const char *key, const char *value)
{
        const KeyDesc *k;
        const char *reason = "invalid value";
        void *base;
        int r;

        if (ctx->err.kind != UPK_ERR_NONE)
                return 0; /* only the first error of a file counts */
        if (!value)
                value = "";
        if (streq(section, "attributes"))
                return handle_attribute(ctx, key, value);

        if (strneq(section, "slot.", 5)) {
                SlotConfig *s = ctx_get_slot(ctx, section, key);
                if (!s)
                        return 0;
                k = key_find(slot_keys, ELEMENTSOF(slot_keys), NULL, key);
                base = s;
        } else {
                k = key_find(config_keys, ELEMENTSOF(config_keys), section, key);
                base = ctx->c;
        }

        if (!k) {
                r = add_warning(ctx->c, &ctx->dropped_warnings,
                                strdup_printf("%s:%u: unknown key \"%s\" in [%s], ignored", ctx->file,
                                              ctx->line, key, section));
                if (r < 0) {
                        ctx->err_line = ctx->line;
                        (void)upk_err(&ctx->err, UPK_ERR_CONFIG, r, "%s:%u: out of memory", ctx->file,
                                      ctx->line);
                        return 0;
                }
                return 1;
        }

        if (strlen(value) > CONFIG_VALUE_MAX)
                return ctx_key_error(ctx, section, key, "longer than 4096 bytes", value);
        for (const char *p = value; *p; p++)
                if ((unsigned char)*p < 0x20 || *p == 0x7f)
                        return ctx_key_error(ctx, section, key, "contains a control character", value);

        r = key_apply(k, base, value, &reason);
        if (r == -ENOMEM) {
                ctx->err_line = ctx->line;
                (void)upk_err(&ctx->err, UPK_ERR_CONFIG, r, "%s:%u: out of memory", ctx->file, ctx->line);
                return 0;
        }
        if (r < 0)
                return ctx_key_error(ctx, section, key, reason, value);

        /* The same key twice in one file: the later value wins, as it always did, but say so. */
        unsigned *seen = base == ctx->c
                                 ? &ctx->key_line[k - config_keys]
                                 : &ctx->slot_key_line[(SlotConfig *)base - ctx->c->slots][k - slot_keys];
        if (*seen > 0) {
                r = add_warning(ctx->c, &ctx->dropped_repeats,
                                strdup_printf("%s:%u: [%s] %s is set again (first on line %u); the value on "
                                              "line %u wins",
                                              ctx->file, ctx->line, section, key, *seen, ctx->line));
                if (r < 0) {
                        ctx->err_line = ctx->line;
                        (void)upk_err(&ctx->err, UPK_ERR_CONFIG, r, "%s:%u: out of memory", ctx->file,
                                      ctx->line);
                        return 0;
                }
        }
        *seen = ctx->line;

        /* remember where the keys that are checked at the end were set */
        if (base != ctx->c) {
                if (streq(key, "device"))
                        ctx->slot_extra[(SlotConfig *)base - ctx->c->slots].device =
                                (Loc){ ctx->file, ctx->line };
        } else if (streq(section, "source") && streq(key, "jitter")) {
                ctx->jitter_set = *value != 0;
                ctx->jitter_loc = (Loc){ ctx->file, ctx->line };
        } else if (streq(section, "boot") && streq(key, "backend"))
                ctx->backend_loc = (Loc){ ctx->file, ctx->line };
        return 1;
}

#if INI_HANDLER_LINENO
static int ini_handler_cb(void *user, const char *section, const char *key, const char *value, int lineno)
{
        LoadCtx *ctx = user;
        if (lineno > 0)
                ctx->line = (unsigned)lineno;
        return handle_key(ctx, section, key, value);
}
#else
static int ini_handler_cb(void *user, const char *section, const char *key, const char *value)
{
        return handle_key(user, section, key, value);
}
#endif

typedef struct Reader {
        LoadCtx *ctx;
        const char *buf;
        size_t size, pos;
} Reader;

static char *reader_cb(char *str, int num, void *stream)
{
        Reader *rd = stream;
        LoadCtx *ctx = rd->ctx;
        const char *line, *eol;
        size_t len;

        if (ctx->err.kind != UPK_ERR_NONE || rd->pos >= rd->size || num < 2)
                return NULL;

        ctx->line++;
        line = rd->buf + rd->pos;
        eol = memchr(line, '\n', rd->size - rd->pos);
        len = eol ? (size_t)(eol - line) : rd->size - rd->pos;
        rd->pos += len + (eol ? 1 : 0);

        if (memchr(line, 0, len)) {
                (void)ctx_error(ctx, ctx->line, "contains a NUL byte");
                return NULL;
        }
        if (len > 0 && line[len - 1] == '\r')
                len--;
        if (ctx->line == 1 && len >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) {
                line += 3;
                len -= 3;
        }
        while (len > 0 && (*line == ' ' || *line == '\t')) {
                line++;
                len--;
        }
        if (len > 0 && (*line == '#' || *line == ';'))
                len = 0;
        for (size_t i = 1; i < len; i++)
                if ((line[i] == '#' || line[i] == ';') && (line[i - 1] == ' ' || line[i - 1] == '\t')) {
                        len = i;
                        break;
                }
        if (len + 2 > (size_t)num) {
                (void)ctx_error(ctx, ctx->line, "line longer than %d bytes (the limit of libinih)", num - 2);
                return NULL;
        }
        memcpy(str, line, len);
        str[len] = '\n';
        str[len + 1] = 0;
        return str;
}

static int load_file_fd(LoadCtx *ctx, int fd, const char *display, UpkErr *err)
{
        _cleanup_free_ char *buf = NULL;
        struct stat st;
        size_t size;
        char *name;
        int r;

        if (fstat(fd, &st) < 0)
                return upk_err(err, UPK_ERR_IO, -errno, "%s: cannot read: %m", display);
        if (!S_ISREG(st.st_mode))
                return upk_err(err, UPK_ERR_CONFIG, -EINVAL, "%s: not a regular file", display);
        if ((uint64_t)st.st_size > CONFIG_FILE_SIZE_MAX)
                return upk_err(err, UPK_ERR_CONFIG, -EFBIG, "%s: larger than the limit of %u bytes", display,
                               CONFIG_FILE_SIZE_MAX);
        r = read_full_fd(fd, CONFIG_FILE_SIZE_MAX, &buf, &size);
        if (r == -EFBIG)
                return upk_err(err, UPK_ERR_CONFIG, r, "%s: larger than the limit of %u bytes", display,
                               CONFIG_FILE_SIZE_MAX);
        if (r < 0)
                return upk_err(err, UPK_ERR_IO, r, "%s: cannot read: %m", display);

        name = strdup(display);
        if (!name)
                return upk_err(err, UPK_ERR_IO, -ENOMEM, "%s: out of memory", display);
        ctx->files[ctx->n_files++] = name;
        ctx->file = name;
        ctx->line = 0;
        upk_err_clear(&ctx->err);
        ctx->err_line = 0;
        memset(ctx->key_line, 0, sizeof(ctx->key_line));
        memset(ctx->slot_key_line, 0, sizeof(ctx->slot_key_line));

        Reader rd = { .ctx = ctx, .buf = buf, .size = size };
        r = ini_parse_stream(reader_cb, &rd, ini_handler_cb, ctx);
        if (r == -2)
                return upk_err(err, UPK_ERR_IO, -ENOMEM, "%s: out of memory", display);
        /* libinih reports the first bad line: ours (the handler or the reader failed) or a syntax error */
        if (r > 0 && (ctx->err.kind == UPK_ERR_NONE || (unsigned)r < ctx->err_line))
                return upk_err(err, UPK_ERR_CONFIG, -EINVAL,
                               "%s:%d: syntax error: expected \"[section]\" or \"key = value\"", display, r);
        if (ctx->err.kind != UPK_ERR_NONE)
                return upk_err(err, ctx->err.kind, ctx->err.code, "%s", ctx->err.msg);
        if (r != 0)
                return upk_err(err, UPK_ERR_CONFIG, -EINVAL, "%s: cannot parse (libinih returned %d)",
                               display, r);
        return 0;
}

static int cmp_str(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool is_conf_name(const char *n)
{
        size_t l = strlen(n);
        return n[0] != '.' && l > 5 && streq(n + l - 5, ".conf");
}

/* The DIR/conf.d/NAME.conf files in lexical order; `prefix` is "DIR/" (or "" for a main file without a
 * folder). */
static int load_conf_d(LoadCtx *ctx, const char *prefix, UpkErr *err)
{
        _cleanup_free_ char *dpath = strdup_printf("%sconf.d", prefix);
        char *names[CONFIG_FILES_MAX];
        size_t n = 0;
        struct dirent *de;
        DIR *d;
        int dfd, r = 0;

        if (!dpath)
                return upk_err_oom(err);
        dfd = open(dpath, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0) {
                if (errno == ENOENT)
                        return 0;
                return upk_err(err, UPK_ERR_IO, -errno, "%s: cannot open: %m", dpath);
        }
        d = fdopendir(dfd);
        if (!d) {
                r = upk_err(err, UPK_ERR_IO, -errno, "%s: cannot open: %m", dpath);
                safe_close(dfd);
                return r;
        }

        for (;;) {
                struct stat st;

                errno = 0;
                de = readdir(d);
                if (!de) {
                        if (errno != 0)
                                r = upk_err(err, UPK_ERR_IO, -errno, "%s: cannot list: %m", dpath);
                        break;
                }
                if (!is_conf_name(de->d_name))
                        continue;
                if (fstatat(dfd, de->d_name, &st, 0) < 0 || !S_ISREG(st.st_mode))
                        continue; /* dangling links, folders, devices */
                if (n >= CONFIG_FILES_MAX) {
                        r = upk_err(err, UPK_ERR_CONFIG, -E2BIG, "%s: more than %d *.conf files", dpath,
                                    CONFIG_FILES_MAX);
                        break;
                }
                names[n] = strdup(de->d_name);
                if (!names[n]) {
                        r = upk_err_oom(err);
                        break;
                }
                n++;
        }

        if (r >= 0)
                qsort(names, n, sizeof(char *), cmp_str);
        for (size_t i = 0; r >= 0 && i < n; i++) {
                _cleanup_free_ char *display = strdup_printf("%s/%s", dpath, names[i]);
                _cleanup_close_ int fd = -EBADF;

                if (!display) {
                        r = upk_err_oom(err);
                        break;
                }
                fd = openat(dfd, names[i], O_RDONLY | O_CLOEXEC | O_NOCTTY);
                if (fd < 0) {
                        r = upk_err(err, UPK_ERR_IO, -errno, "%s: cannot read: %m", display);
                        break;
                }
                r = load_file_fd(ctx, fd, display, err);
        }

        for (size_t i = 0; i < n; i++)
                free(names[i]);
        closedir(d);
        return r;
}

static int config_finish(LoadCtx *ctx, const char *main_path, UpkErr *err)
{
        Config *c = ctx->c;

        if (!c->compatible)
                return upk_err(err, UPK_ERR_CONFIG, -EINVAL,
                               "%s: [device] compatible: required key is missing", main_path);

        if (c->boot_backend == BOOT_BACKEND_SCRIPT && !c->boot_script)
                return upk_err(err, UPK_ERR_CONFIG, -EINVAL,
                               "%s:%u: [boot] backend: the script backend needs [boot] script = PATH (got "
                               "\"script\")",
                               ctx->backend_loc.file, ctx->backend_loc.line);

        if (ctx->jitter_set && c->jitter_usec > c->poll_interval_usec)
                return upk_err(err, UPK_ERR_CONFIG, -EINVAL,
                               "%s:%u: [source] jitter: must not exceed poll-interval (%" PRIu64
                               "s) (got %" PRIu64 "s)",
                               ctx->jitter_loc.file, ctx->jitter_loc.line,
                               c->poll_interval_usec / USEC_PER_SEC, c->jitter_usec / USEC_PER_SEC);
        if (!ctx->jitter_set && c->jitter_usec > c->poll_interval_usec)
                c->jitter_usec = c->poll_interval_usec;

        if (!c->boot_state_file) {
                c->boot_state_file = strdup_printf("%s/bootenv", c->data_dir);
                if (!c->boot_state_file)
                        return upk_err_oom(err);
        }

        for (size_t i = 0; i < c->n_slots; i++) {
                SlotConfig *s = &c->slots[i];
                const SlotExtra *x = &ctx->slot_extra[i];
                const char *other = streq(s->name, "A") ? "B" : "A";

                if (!s->device)
                        return upk_err(err, UPK_ERR_CONFIG, -EINVAL,
                                       "%s:%u: [slot.%s.%s] device: required key is missing", x->first.file,
                                       x->first.line, s->class, s->name);
                if (!config_find_slot(c, s->class, other))
                        return upk_err(
                                err, UPK_ERR_CONFIG, -EINVAL,
                                "%s:%u: [slot.%s.%s]: slot class \"%s\" has slot %s but no [slot.%s.%s]",
                                x->first.file, x->first.line, s->class, s->name, s->class, s->name, s->class,
                                other);
                for (size_t j = 0; j < i; j++)
                        if (streq(c->slots[j].device, s->device)) {
                                char got[GOT_MAX];
                                quote_value(s->device, got, sizeof(got));
                                return upk_err(err, UPK_ERR_CONFIG, -EINVAL,
                                               "%s:%u: [slot.%s.%s] device: the same device as [slot.%s.%s] "
                                               "(got \"%s\")",
                                               x->device.file, x->device.line, s->class, s->name,
                                               c->slots[j].class, c->slots[j].name, got);
                        }
                if (!s->bootname) {
                        s->bootname = strdup(s->name);
                        if (!s->bootname)
                                return upk_err_oom(err);
                }
        }
        return 0;
}

/* A warning when root should not trust `path` (another user's, or writable by others; a secret readable by
 * others). What does not exist is reported where it is used. */
static int warn_untrusted(LoadCtx *ctx, const char *what, const char *path, bool secret)
{
        UpkErr e = {};

        if (isempty(path) || path_check_trusted(path, secret, &e) != -EPERM)
                return 0;
        return add_warning(ctx->c, &ctx->dropped_warnings, strdup_printf("%s: %s", what, e.msg));
}

/* The files upkeep trusts without running them: the configuration, the keyring, the CRL, the TUF root,
 * the TLS CA and the client key. */
static int warn_untrusted_files(LoadCtx *ctx, const char *prefix)
{
        _cleanup_free_ char *conf_d = strdup_printf("%sconf.d", prefix);
        const Config *c = ctx->c;
        int r = conf_d ? 0 : -ENOMEM;

        for (size_t i = 0; r >= 0 && i < ctx->n_files; i++)
                r = warn_untrusted(ctx, "configuration", ctx->files[i], false);
        r = r ?: warn_untrusted(ctx, "configuration folder", conf_d, false);
        r = r ?: warn_untrusted(ctx, "[keyring] path", c->keyring, false);
        r = r ?: warn_untrusted(ctx, "[keyring] crl", c->crl, false);
        r = r ?: warn_untrusted(ctx, "[source] root", c->source_root, false);
        r = r ?: warn_untrusted(ctx, "[source] ca", c->source_ca, false);
        r = r ?: warn_untrusted(ctx, "[source] client-key", c->source_client_key, true);
        return r;
}

int config_load(const char *path, Config **ret, UpkErr *err)
{
        _cleanup_(config_freep) Config *c = NULL;
        _cleanup_free_ char *prefix = NULL;
        _cleanup_free_ LoadCtx *ctx = NULL;
        _cleanup_close_ int fd = -EBADF;
        int r;

        if (!path)
                path = CONFIG_DEFAULT_PATH;

        c = calloc(1, sizeof(Config));
        ctx = calloc(1, sizeof(LoadCtx));
        if (!c || !ctx)
                return upk_err_oom(err);
        ctx->c = c;
        r = keys_set_defaults(config_keys, ELEMENTSOF(config_keys), c);
        if (r < 0)
                return upk_err(err, UPK_ERR_IO, r, "out of memory");

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                r = -errno;
                upk_err(err, UPK_ERR_IO, r, "%s: cannot read: %m", path);
                goto out;
        }
        r = load_file_fd(ctx, fd, path, err);
        if (r < 0)
                goto out;

        prefix = strndup(path, (size_t)(path_basename(path) - path)); /* "DIR/" or "" */
        if (!prefix) {
                r = upk_err_oom(err);
                goto out;
        }
        r = load_conf_d(ctx, prefix, err);
        if (r < 0)
                goto out;

        r = config_finish(ctx, path, err);
        if (r < 0)
                goto out;
        if (warn_untrusted_files(ctx, prefix) < 0) {
                r = upk_err_oom(err);
                goto out;
        }
        c->config_path = strdup(path);
        if (!c->config_path) {
                r = upk_err_oom(err);
                goto out;
        }

        if (ctx->dropped_warnings > 0) {
                char *w = strdup_printf("... and %zu more unknown keys, ignored", ctx->dropped_warnings);
                if (!w) {
                        r = upk_err_oom(err);
                        goto out;
                }
                c->warnings[c->n_warnings++] = w;
        }
        if (ctx->dropped_repeats > 0) {
                char *w = strdup_printf("... and %zu more keys set twice in one file", ctx->dropped_repeats);
                if (!w) {
                        r = upk_err_oom(err);
                        goto out;
                }
                c->warnings[c->n_warnings++] = w;
        }
        *ret = TAKE_PTR(c);
        r = 0;
out:
        for (size_t i = 0; i < ctx->n_files; i++)
                free(ctx->files[i]);
        return r;
}
