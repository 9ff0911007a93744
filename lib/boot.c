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

const char *slot_state_to_string(SlotState s)
{
        if (s < 0 || s >= _SLOT_STATE_MAX)
                return NULL;
        return slot_state_table[s];
}

SlotState slot_state_from_string(const char *s)
{
        if (!s)
                return _SLOT_STATE_INVALID;
        for (size_t i = 0; i < ELEMENTSOF(slot_state_table); i++)
                if (streq(s, slot_state_table[i]))
                        return (SlotState)i;
        return _SLOT_STATE_INVALID;
}

static const BootOps *const ops_table[_BOOT_BACKEND_MAX] = {
        [BOOT_BACKEND_FILE] = &boot_file_ops,
        [BOOT_BACKEND_UBOOT] = &boot_uboot_ops,
        [BOOT_BACKEND_GRUB] = &boot_grub_ops,
        [BOOT_BACKEND_SCRIPT] = &boot_script_ops,
};

static const char *const backend_names[_BOOT_BACKEND_MAX] = {
        [BOOT_BACKEND_FILE] = "file",
        [BOOT_BACKEND_UBOOT] = "uboot",
        [BOOT_BACKEND_GRUB] = "grub",
        [BOOT_BACKEND_SCRIPT] = "script",
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

/* The timeout for programs: UPKEEP_BOOT_TIMEOUT_MS (1..600000) when set, for tests; else 10 s. */
static uint64_t boot_timeout_usec(void)
{
        const char *s = secure_getenv("UPKEEP_BOOT_TIMEOUT_MS");
        uint64_t ms;

        if (s && safe_atou64(s, &ms) >= 0 && ms > 0 && ms <= BOOT_TIMEOUT_MS_MAX)
                return ms * 1000u;
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
                               backend_names[c->boot_backend], n_slots, BOOT_SLOTS_MAX);
        if (c->boot_attempts > BOOT_ATTEMPTS_MAX)
                return upk_err(err, UPK_ERR_CONFIG, -ERANGE,
                               "[boot] attempts: %u is above the maximum of %d", c->boot_attempts,
                               BOOT_ATTEMPTS_MAX);

        b = calloc(1, sizeof(*b));
        if (!b)
                return -ENOMEM;
        b->type = c->boot_backend;
        b->ops = ops_table[c->boot_backend];
        b->attempts = c->boot_attempts > 0 ? c->boot_attempts : BOOT_ATTEMPTS_DEFAULT;
        b->timeout_usec = boot_timeout_usec();
        b->slots = calloc(n_slots, sizeof(char *));
        if (!b->slots)
                return -ENOMEM;
        for (size_t i = 0; i < n_slots; i++) {
                if (!slots[i] || !boot_slot_name_valid(slots[i]))
                        return upk_err(
                                err, UPK_ERR_CONFIG, -EINVAL,
                                "slot bootname \"%.64s\" is not valid: use 1 to %d letters, digits or '_'",
                                slots[i] ? slots[i] : "", BOOT_SLOT_NAME_MAX);
                if (boot_slot_index(b->slots, b->n_slots, slots[i]) >= 0)
                        return upk_err(err, UPK_ERR_CONFIG, -EINVAL, "slot bootname \"%s\" is given twice",
                                       slots[i]);
                b->slots[i] = strdup(slots[i]);
                if (!b->slots[i])
                        return -ENOMEM;
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
                return upk_err(err, UPK_ERR_CONFIG, -ENOENT,
                               "slot \"%.64s\" is not one of the boot slots (%s)", slot, all ? all : "?");
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
                                       "%s: \"%s\" is not one of the boot slots", where, name);
                for (size_t k = 0; k < n; k++)
                        if (order[k] == (size_t)i)
                                return upk_err(err, UPK_ERR_CONFIG, -EBADMSG,
                                               "%s: slot \"%s\" is listed twice", where, name);
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
                        return r;
                val = lookup(userdata, key, where, sizeof(where));
                if (!val)
                        v->left[i] = !initialised && i == 0 ? attempts : 0;
                else if (safe_atou64(val, &u) < 0 || u > BOOT_ATTEMPTS_MAX)
                        return upk_err(err, UPK_ERR_CONFIG, -EBADMSG,
                                       "%s: \"%.64s\" is not a number of attempts from 0 to %d", where, val,
                                       BOOT_ATTEMPTS_MAX);
                else
                        v->left[i] = (unsigned)u;

                r = vars_key(key, sizeof(key), slots[i], "TRY");
                if (r < 0)
                        return r;
                val = lookup(userdata, key, where, sizeof(where));
                if (!val || streq(val, "0"))
                        v->trying[i] = false;
                else if (streq(val, "1"))
                        v->trying[i] = true;
                else
                        return upk_err(err, UPK_ERR_CONFIG, -EBADMSG, "%s: \"%.64s\" is neither 0 nor 1",
                                       where, val);
        }

        val = lookup(userdata, "BOOTED", where, sizeof(where));
        if (val) {
                int i = boot_slot_index(slots, n_slots, val);
                if (i < 0)
                        return upk_err(err, UPK_ERR_CONFIG, -EBADMSG,
                                       "%s: \"%.64s\" is not one of the boot slots", where, val);
                v->booted = i;
        }
        return 0;
}

void boot_vars_mark_bad(BootVars *v, size_t slot)
{
        v->left[slot] = 0;
        v->trying[slot] = false;
        boot_order_move_back(v->order, &v->n_order, slot);
}

void boot_vars_set_try(BootVars *v, size_t slot)
{
        v->left[slot] = 1;
        v->trying[slot] = true;
        boot_order_move_front(v->order, &v->n_order, slot);
}

void boot_vars_mark_good(BootVars *v, size_t slot, unsigned attempts)
{
        v->left[slot] = attempts;
        v->trying[slot] = false;
        boot_order_move_front(v->order, &v->n_order, slot);
}

ssize_t boot_vars_primary(const BootVars *v)
{
        for (size_t k = 0; k < v->n_order; k++)
                if (v->left[v->order[k]] > 0)
                        return (ssize_t)v->order[k];
        return -ENOENT;
}

SlotState boot_vars_state(const BootVars *v, size_t slot)
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

/* ---- running programs ---- */

static uint64_t mono_usec(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Keep our pipe ends off fds 0..2, so dup2 in the child always does something. */
static int fd_above_stdio(int fd)
{
        int nfd;

        if (fd < 0 || fd > 2)
                return fd;
        nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        safe_close(fd);
        return nfd < 0 ? -errno : nfd;
}

static int append(char **buf, size_t *size, const char *data, size_t n, size_t max, bool truncate)
{
        char *p;

        if (*size + n > max) {
                if (!truncate)
                        return -EFBIG;
                n = max - *size;
        }
        p = realloc(*buf, *size + n + 1);
        if (!p)
                return -ENOMEM;
        memcpy(p + *size, data, n);
        *size += n;
        p[*size] = 0;
        *buf = p;
        return 0;
}

static void kill_and_reap(pid_t pid)
{
        (void)kill(-pid, SIGKILL);
        (void)kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
}

int boot_run(const BootRun *r, char **ret_stdout, char **ret_stderr, UpkErr *err)
{
        _cleanup_close_ int in_w = -EBADF, in_r = -EBADF, out_r = -EBADF, out_w = -EBADF, err_r = -EBADF,
                            err_w = -EBADF;
        _cleanup_free_ char *out = NULL, *errbuf = NULL;
        size_t out_size = 0, err_size = 0, in_done = 0;
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t attr;
        uint64_t deadline;
        sigset_t none, all;
        int fds[2], status, k;
        pid_t pid;

        if (r->input) {
                if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0)
                        return upk_err(err, UPK_ERR_IO, -errno, "%s: cannot create a socket pair: %m",
                                       r->what);
                in_r = fd_above_stdio(fds[0]);
                in_w = fd_above_stdio(fds[1]);
        } else {
                in_r = fd_above_stdio(open("/dev/null", O_RDONLY | O_CLOEXEC));
        }
        if (in_r < 0 || (r->input && in_w < 0))
                return upk_err(err, UPK_ERR_IO, -EMFILE, "%s: cannot set up standard input", r->what);
        if (pipe2(fds, O_CLOEXEC) < 0)
                return upk_err(err, UPK_ERR_IO, -errno, "%s: cannot create a pipe: %m", r->what);
        out_r = fd_above_stdio(fds[0]);
        out_w = fd_above_stdio(fds[1]);
        if (pipe2(fds, O_CLOEXEC) < 0)
                return upk_err(err, UPK_ERR_IO, -errno, "%s: cannot create a pipe: %m", r->what);
        err_r = fd_above_stdio(fds[0]);
        err_w = fd_above_stdio(fds[1]);
        if (out_r < 0 || out_w < 0 || err_r < 0 || err_w < 0)
                return upk_err(err, UPK_ERR_IO, -EMFILE, "%s: cannot set up pipes", r->what);

        sigemptyset(&none);
        sigfillset(&all);
        sigdelset(&all, SIGKILL);
        sigdelset(&all, SIGSTOP);
        if (posix_spawn_file_actions_init(&fa) != 0)
                return -ENOMEM;
        if (posix_spawnattr_init(&attr) != 0) {
                posix_spawn_file_actions_destroy(&fa);
                return -ENOMEM;
        }
        k = posix_spawn_file_actions_adddup2(&fa, in_r, STDIN_FILENO);
        if (k == 0)
                k = posix_spawn_file_actions_adddup2(&fa, out_w, STDOUT_FILENO);
        if (k == 0)
                k = posix_spawn_file_actions_adddup2(&fa, err_w, STDERR_FILENO);
        if (k == 0)
                k = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                                            POSIX_SPAWN_SETSIGDEF);
        if (k == 0)
                k = posix_spawnattr_setpgroup(&attr, 0);
        if (k == 0)
                k = posix_spawnattr_setsigmask(&attr, &none);
        if (k == 0)
                k = posix_spawnattr_setsigdefault(&attr, &all);
        if (k == 0)
                k = (r->search_path ? posix_spawnp : posix_spawn)(
                        &pid, r->argv[0], &fa, &attr, (char *const *)r->argv, r->envp ? r->envp : environ);
        posix_spawn_file_actions_destroy(&fa);
        posix_spawnattr_destroy(&attr);
        if (k == ENOENT)
                return upk_err(err, UPK_ERR_CONFIG, -ENOENT, "%s: %s not found%s", r->what, r->argv[0],
                               r->search_path ? " in PATH" : "");
        if (k != 0)
                return upk_err(err, UPK_ERR_IO, -k, "%s: cannot run %s: %s", r->what, r->argv[0],
                               strerror(k));

        in_r = safe_close(in_r);
        out_w = safe_close(out_w);
        err_w = safe_close(err_w);
        if (in_w >= 0 && r->input_size == 0) {
                (void)shutdown(in_w, SHUT_WR);
                in_w = safe_close(in_w);
        }

        deadline = mono_usec() + r->timeout_usec;
        while (out_r >= 0 || err_r >= 0 || in_w >= 0) {
                struct pollfd p[3] = {
                        { .fd = out_r, .events = POLLIN },
                        { .fd = err_r, .events = POLLIN },
                        { .fd = in_w, .events = POLLOUT },
                };
                uint64_t now = mono_usec();
                char buf[4096];
                ssize_t n;

                if (now >= deadline) {
                        kill_and_reap(pid);
                        return upk_err(err, UPK_ERR_IO, -ETIME,
                                       "%s: did not finish within %" PRIu64 " ms; killed", r->what,
                                       r->timeout_usec / 1000u);
                }
                k = poll(p, 3, (int)((deadline - now + 999) / 1000));
                if (k < 0 && errno != EINTR) {
                        k = -errno;
                        kill_and_reap(pid);
                        return upk_err(err, UPK_ERR_IO, k, "%s: poll failed: %s", r->what, strerror(-k));
                }
                if (k <= 0)
                        continue;
                if (p[0].revents) {
                        n = read(out_r, buf, sizeof(buf));
                        if (n < 0 && errno != EINTR && errno != EAGAIN) {
                                out_r = safe_close(out_r);
                        } else if (n == 0) {
                                out_r = safe_close(out_r);
                        } else if (n > 0) {
                                k = append(&out, &out_size, buf, (size_t)n, r->output_max, false);
                                if (k < 0) {
                                        kill_and_reap(pid);
                                        return upk_err(err, UPK_ERR_IO, k,
                                                       "%s: printed more than %zu bytes; killed", r->what,
                                                       r->output_max);
                                }
                        }
                }
                if (p[1].revents) {
                        n = read(err_r, buf, sizeof(buf));
                        if (n <= 0 && !(n < 0 && (errno == EINTR || errno == EAGAIN)))
                                err_r = safe_close(err_r);
                        else if (n > 0 &&
                                 append(&errbuf, &err_size, buf, (size_t)n, BOOT_STDERR_MAX, true) < 0) {
                                kill_and_reap(pid);
                                return -ENOMEM;
                        }
                }
                if (p[2].revents) {
                        n = send(in_w, r->input + in_done, r->input_size - in_done,
                                 MSG_NOSIGNAL | MSG_DONTWAIT);
                        if (n < 0 && errno != EINTR && errno != EAGAIN)
                                in_w = safe_close(in_w); /* it stopped reading; its exit status tells */
                        else if (n > 0 && (in_done += (size_t)n) == r->input_size) {
                                (void)shutdown(in_w, SHUT_WR);
                                in_w = safe_close(in_w);
                        }
                }
        }

        /* Output closed; wait for the exit, still within the deadline. */
        for (;;) {
                pid_t w = waitpid(pid, &status, WNOHANG);
                if (w == pid)
                        break;
                if (w < 0 && errno != EINTR) {
                        k = -errno;
                        kill_and_reap(pid);
                        return upk_err(err, UPK_ERR_IO, k, "%s: waitpid failed: %s", r->what, strerror(-k));
                }
                if (mono_usec() >= deadline) {
                        kill_and_reap(pid);
                        return upk_err(err, UPK_ERR_IO, -ETIME,
                                       "%s: did not finish within %" PRIu64 " ms; killed", r->what,
                                       r->timeout_usec / 1000u);
                }
                (void)nanosleep(&(struct timespec){ .tv_nsec = 2 * 1000 * 1000 }, NULL);
        }
        if (WIFSIGNALED(status))
                return upk_err(err, UPK_ERR_IO, -EIO, "%s: killed by signal %d", r->what, WTERMSIG(status));
        if (!WIFEXITED(status))
                return upk_err(err, UPK_ERR_IO, -EIO, "%s: ended abnormally", r->what);

        if (!out && !(out = strdup("")))
                return -ENOMEM;
        if (!errbuf && !(errbuf = strdup("")))
                return -ENOMEM;
        if (ret_stdout)
                *ret_stdout = TAKE_PTR(out);
        if (ret_stderr)
                *ret_stderr = TAKE_PTR(errbuf);
        return WEXITSTATUS(status);
}

const char *boot_stderr_summary(char *s)
{
        size_t n;

        if (!s)
                return "";
        for (char *p = s; *p; p++)
                if ((unsigned char)*p < 0x20 || *p == 0x7f)
                        *p = ' ';
        n = strlen(s);
        while (n > 0 && s[n - 1] == ' ')
                s[--n] = 0;
        while (*s == ' ')
                s++;
        if (strlen(s) > 400)
                s[400] = 0;
        return s;
}

bool boot_find_program(const char *name)
{
        const char *p;

        if (strchr(name, '/'))
                return access(name, X_OK) >= 0;
        p = getenv("PATH");
        if (!p)
                p = "/usr/local/bin:/usr/bin:/bin";
        for (;;) {
                size_t len = strcspn(p, ":");
                _cleanup_free_ char *full = strdup_printf("%.*s/%s", (int)len, p, name);
                struct stat st;

                if (len > 0 && full && stat(full, &st) >= 0 && S_ISREG(st.st_mode) &&
                    access(full, X_OK) >= 0)
                        return true;
                if (!p[len])
                        return false;
                p += len + 1;
        }
}
