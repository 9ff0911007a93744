/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The slots: the configured bootnames and the boot backend over them, which slot is booted, the
 * running version, the other slot of a class and how much a slot holds. */

#include "fileio.h"
#include "install.h"

#include <fcntl.h>
#include <stdio.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include "install-internal.h"
#include "version.h"

#define CMDLINE_SIZE_MAX      (64u * 1024u)
#define VERSION_FILE_SIZE_MAX (64u * 1024u)

/* The distinct bootnames of the configured slots, in order of appearance. */
size_t install_slot_bootnames(const Config *c, char **names, size_t max)
{
        size_t n = 0;

        for (size_t i = 0; i < c->n_slots; i++) {
                bool seen = false;
                for (size_t j = 0; j < n; j++)
                        seen = seen || streq(names[j], c->slots[i].bootname);
                if (!seen && n < max)
                        names[n++] = c->slots[i].bootname;
        }
        return n;
}

int install_open_boot(const Config *c, BootBackend **ret, UpkErr *err)
{
        char *names[BOOT_SLOTS_MAX];
        size_t n = install_slot_bootnames(c, names, ELEMENTSOF(names));

        if (n == 0)
                return upk_err(err, UPK_ERR_CONFIG, -EINVAL, "no [slot.CLASS.A|B] sections are configured");
        return boot_backend_new(c, names, n, ret, err);
}

int install_parse_cmdline_slot(char *text, char **ret)
{
        for (char *p = text; *p;) {
                size_t len = strcspn(p, " \t\n");
                if (len > 12 && strneq(p, "upkeep.slot=", 12)) {
                        *ret = strndup(p + 12, len - 12);
                        return *ret ? 1 : -ENOMEM;
                }
                p += len;
                p += strspn(p, " \t\n");
        }
        return 0;
}

static int cmdline_slot(char **ret)
{
        const char *path = "/proc/cmdline";
#if HAVE_TEST_HOOKS
        path = secure_getenv("UPKEEP_TEST_PROC_CMDLINE") ?: path;
#endif
        _cleanup_free_ char *data = NULL;
        size_t size;
        int r;

        r = read_full_file(path, CMDLINE_SIZE_MAX, &data, &size);
        if (r < 0)
                return r;
        return install_parse_cmdline_slot(data, ret);
}

int install_find_booted(const Config *c, BootBackend *boot, char **ret, UpkErr *err)
{
        char *names[BOOT_SLOTS_MAX], *s = NULL;
        size_t n = install_slot_bootnames(c, names, ELEMENTSOF(names));
        const char *how;
        int r;

        if (c->boot_booted) {
                s = strdup(c->boot_booted);
                how = "[boot] booted=";
        } else if ((r = cmdline_slot(&s)) > 0)
                how = "upkeep.slot= on the kernel command line";
        else {
                r = boot_get_current(boot, &s, err);
                if (r == -ENODATA) {
                        upk_err_clear(err);
                        return upk_err(err, UPK_ERR_CONFIG, -ENODATA,
                                       "cannot tell which slot is booted: set [boot] booted=, or "
                                       "upkeep.slot= on the "
                                       "kernel command line");
                }
                if (r < 0)
                        return r;
                how = "the boot backend";
        }
        if (!s)
                return upk_err_oom(err);
        for (size_t i = 0; i < n; i++)
                if (streq(names[i], s)) {
                        *ret = s;
                        return 0;
                }
        r = upk_err(err, UPK_ERR_CONFIG, -EINVAL, "%s names slot \"%s\", which is not a configured bootname",
                    how, s);
        free(s);
        return r;
}

/* VERSION_ID= of an os-release file, or the first line of a plain version file. */
int install_parse_version_file(char *text, const char *path, char **ret, UpkErr *err)
{
        const char *value = NULL;
        Version v;

        for (char *line = text, *next; line && *line; line = next) {
                next = strchr(line, '\n');
                if (next)
                        *next++ = 0;
                if (strneq(line, "VERSION_ID=", 11)) {
                        value = line + 11;
                        break;
                }
                if (!value && !strchr(line, '='))
                        value = line;
        }
        if (!value)
                return upk_err(err, UPK_ERR_CONFIG, -EINVAL, "version file %s: no VERSION_ID= line", path);
        _cleanup_free_ char *s = strdup(value);
        if (!s)
                return upk_err_oom(err);
        size_t len = strlen(s);
        while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\r' || s[len - 1] == '\t'))
                s[--len] = 0;
        if (len >= 2 && (s[0] == '"' || s[0] == '\'') && s[len - 1] == s[0]) {
                memmove(s, s + 1, len - 2);
                s[len - 2] = 0;
        }
        if (version_parse(s, &v) < 0)
                return upk_err(err, UPK_ERR_CONFIG, -EINVAL,
                               "version file %s: \"%s\" is not a semantic version", path, s);
        *ret = TAKE_PTR(s);
        return 0;
}

static int read_version_file(const char *path, char **ret, UpkErr *err)
{
        _cleanup_free_ char *data = NULL;
        size_t size;
        int r;

        r = read_full_file(path, VERSION_FILE_SIZE_MAX, &data, &size);
        if (r < 0)
                return upk_err(err, UPK_ERR_CONFIG, r, "version file %s: cannot read: %m", path);
        return install_parse_version_file(data, path, ret, err);
}

int install_current_version(const Config *c, const UpkState *s, const char *booted, char **ret, UpkErr *err)
{
        const char *v = booted ? state_slot_version(s, booted) : NULL;

        if (v) {
                *ret = strdup(v);
                return *ret ? 0 : upk_err_oom(err);
        }
        return read_version_file(c->version_file, ret, err);
}

const SlotConfig *install_other_slot(const Config *c, const char *class, const char *booted)
{
        const SlotConfig *a = config_find_slot(c, class, "A"), *b = config_find_slot(c, class, "B");

        if (!a || !b)
                return NULL;
        if (streq(a->bootname, booted))
                return b;
        if (streq(b->bootname, booted))
                return a;
        return NULL;
}

void install_delta_stats_add_slot(InstallDeltaStats *st, const SlotConfig *s)
{
        static const char more[] = ", ...";
        size_t len = strlen(st->slots), n;
        char one[sizeof(st->slots)];

        n = (size_t)snprintf(one, sizeof(one), "%s.%s", s->class, s->name);
        for (const char *p = st->slots; *p;) {
                size_t k = strcspn(p, ",");

                if (k == n && strneq(p, one, n))
                        return; /* listed */
                p += k;
                p += strspn(p, ", ");
        }
        st->n_slots++;
        if (len >= strlen(more) && streq(st->slots + len - strlen(more), more))
                return; /* full */
        /* Room is kept for ", ..." after every name. */
        if (len + 2 + n + strlen(more) < sizeof(st->slots))
                snprintf(st->slots + len, sizeof(st->slots) - len, "%s%s", len > 0 ? ", " : "", one);
        else
                snprintf(st->slots + len, sizeof(st->slots) - len, "%s", len > 0 ? more : "...");
}

/* Bytes a slot can take: the configured size=, a block device's size, else no limit (UINT64_MAX). */
int install_slot_capacity(const SlotConfig *s, uint64_t *ret, UpkErr *err)
{
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        uint64_t size;

        if (s->size > 0) {
                *ret = s->size;
                return 0;
        }
        if (stat(s->device, &st) < 0) {
                if (errno == ENOENT) {
                        *ret = UINT64_MAX;
                        return 0;
                }
                return upk_err(err, UPK_ERR_IO, -errno, "slot %s.%s: cannot stat %s: %m", s->class, s->name,
                               s->device);
        }
        if (!S_ISBLK(st.st_mode)) {
                *ret = UINT64_MAX;
                return 0;
        }
        fd = open(s->device, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || ioctl(fd, BLKGETSIZE64, &size) < 0)
                return upk_err(err, UPK_ERR_IO, -errno, "slot %s.%s: cannot read the size of %s: %m",
                               s->class, s->name, s->device);
        *ret = size;
        return 0;
}
