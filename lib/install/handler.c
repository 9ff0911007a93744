/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "handler.h"

#include <dlfcn.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>

#include "fileio.h"
#include "handler-internal.h"
#include "manifest.h"

typedef enum HandlerPhase {
        HANDLER_PHASE_READY,    /* opened, nothing begun */
        HANDLER_PHASE_WRITING,  /* begun: write() or finish() next */
        HANDLER_PHASE_FINISHED, /* finished: commit() or rollback() next */
        HANDLER_PHASE_FAILED,   /* write() or finish() failed: only rollback() is left */
        HANDLER_PHASE_DONE,     /* committed, rolled back, or begin() failed */
        _HANDLER_PHASE_MAX,
        _HANDLER_PHASE_INVALID = -EINVAL,
} HandlerPhase;

static const char *const phase_table[_HANDLER_PHASE_MAX] = {
        [HANDLER_PHASE_READY] = "not begun",   [HANDLER_PHASE_WRITING] = "being written",
        [HANDLER_PHASE_FINISHED] = "finished", [HANDLER_PHASE_FAILED] = "failed",
        [HANDLER_PHASE_DONE] = "done",
};

struct Handler {
        char *name;                       /* as in the manifest: raw, exec:NAME, plugin name */
        const struct upkeep_handler *ops; /* built-in table or the plugin's */
        char *program;                    /* exec:NAME: the program's path */
        void *dl;                         /* plugin: the dlopen handle */
        HandlerPhase phase;
        void *state;
        char *payload_name;
        uint64_t size, written;
};

int handler_msg(char *msg, size_t msg_size, int r, const char *fmt, ...)
{
        va_list ap;

        if (r >= 0)
                r = -EIO;
        if (msg && msg_size > 0) {
                errno = -r; /* "%m" in fmt */
                va_start(ap, fmt);
                vsnprintf(msg, msg_size, fmt, ap);
                va_end(ap);
        }
        errno = -r;
        return r;
}

uint64_t handler_timeout_ms(void)
{
#if HAVE_TEST_HOOKS
        const char *e = secure_getenv("UPKEEP_TEST_HANDLER_TIMEOUT_MS");
        uint64_t v;

        if (e && safe_atou64(e, &v) >= 0 && v > 0 && v <= HANDLER_TIMEOUT_MS_MAX)
                return v;
#endif
        return HANDLER_TIMEOUT_MS_DEFAULT;
}

static int open_exec(Handler *h, const char *prog, const char *dir, UpkErr *err)
{
        struct stat st;

        if (!filename_is_plain(prog, MANIFEST_NAME_MAX) || prog[0] == '.')
                return upk_err(err, UPK_ERR_CONFIG, -EINVAL,
                               "handler \"%s\": the program name after \"exec:\" must be a plain file name, "
                               "not hidden",
                               h->name);
        h->program = strdup_printf("%s/%s", dir, prog);
        if (!h->program)
                return upk_err(err, UPK_ERR_CONFIG, -ENOMEM, "out of memory");
        if (stat(h->program, &st) < 0)
                return upk_err(err, UPK_ERR_CONFIG, -errno, "handler program %s: %m", h->program);
        if (!S_ISREG(st.st_mode))
                return upk_err(err, UPK_ERR_CONFIG, -EACCES, "handler program %s is not a regular file",
                               h->program);
        if (access(h->program, X_OK) < 0)
                return upk_err(err, UPK_ERR_CONFIG, -errno, "handler program %s is not executable: %m",
                               h->program);
        if (path_check_trusted(h->program, false, err) < 0)
                return upk_err_prefix(err, "handler %s refused", h->name);
        h->ops = &handler_exec_ops;
        return 0;
}

static int open_plugin(Handler *h, const char *dir, UpkErr *err)
{
        _cleanup_free_ char *path = NULL;
        const struct upkeep_handler *t;
        struct stat st;
        const char *e;

        if (!filename_is_plain(h->name, MANIFEST_NAME_MAX) || strchr(h->name, ':'))
                return upk_err(err, UPK_ERR_CONFIG, -EINVAL,
                               "handler \"%s\" is not raw, archive, file, exec:NAME or a plugin name",
                               h->name);
        path = strdup_printf("%s/%s.so", dir, h->name);
        if (!path)
                return upk_err(err, UPK_ERR_CONFIG, -ENOMEM, "out of memory");
        /* dlopen() would search the library path for a name without '/'; the path always has one. */
        if (stat(path, &st) < 0)
                return upk_err(err, UPK_ERR_CONFIG, -errno, "handler plugin %s: %m", path);
        if (!S_ISREG(st.st_mode))
                return upk_err(err, UPK_ERR_CONFIG, -EACCES, "handler plugin %s is not a regular file",
                               path);
        if (path_check_trusted(path, false, err) < 0)
                return upk_err_prefix(err, "handler %s refused", h->name);

        (void)dlerror();
        h->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!h->dl) {
                e = dlerror();
                return upk_err(err, UPK_ERR_CONFIG, -ELIBBAD, "cannot load handler plugin %s: %s", path,
                               e ?: "unknown error");
        }
        (void)dlerror();
        t = dlsym(h->dl, "upkeep_handler");
        e = dlerror();
        if (e || !t)
                return upk_err(err, UPK_ERR_CONFIG, -ELIBBAD,
                               "handler plugin %s does not export the symbol upkeep_handler", path);
        if (t->abi_version != UPKEEP_HANDLER_ABI_VERSION)
                return upk_err(err, UPK_ERR_CONFIG, -ELIBBAD,
                               "plugin %s has handler ABI version %u, this upkeep needs %u", path,
                               (unsigned)t->abi_version, (unsigned)UPKEEP_HANDLER_ABI_VERSION);
        if (!t->begin || !t->write || !t->finish || !t->commit || !t->rollback)
                return upk_err(err, UPK_ERR_CONFIG, -ELIBBAD,
                               "plugin %s: its handler table lacks begin, write, finish, commit or rollback",
                               path);
        h->ops = t;
        return 0;
}

int handler_open(const char *name, const char *handlers_dir, Handler **ret, UpkErr *err)
{
        _cleanup_(handler_freep) Handler *h = NULL;
        int r;

        if (isempty(name))
                return upk_err(err, UPK_ERR_CONFIG, -EINVAL, "empty handler name");
        if (isempty(handlers_dir))
                handlers_dir = UPK_HANDLERS_DIR;

        h = calloc(1, sizeof(*h));
        if (!h)
                return upk_err(err, UPK_ERR_CONFIG, -ENOMEM, "out of memory");
        h->name = strdup(name);
        if (!h->name)
                return upk_err(err, UPK_ERR_CONFIG, -ENOMEM, "out of memory");

        if (streq(name, "raw"))
                h->ops = &handler_raw_ops;
        else if (streq(name, "archive"))
                h->ops = &handler_archive_ops;
        else if (streq(name, "file"))
                h->ops = &handler_file_ops;
        else if (strneq(name, "exec:", 5)) {
                r = open_exec(h, name + 5, handlers_dir, err);
                if (r < 0)
                        return r;
        } else {
                r = open_plugin(h, handlers_dir, err);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(h);
        return 0;
}

Handler *handler_free(Handler *h)
{
        if (!h)
                return NULL;
        handler_rollback(h);
        if (h->dl)
                dlclose(h->dl);
        free(h->program);
        free(h->payload_name);
        free(h->name);
        free(h);
        return NULL;
}

/* The handler's message (or strerror when it left none) as an UpkErr. */
static int step_failed(Handler *h, int r, const char *msg, UpkErr *err)
{
        if (r >= 0)
                r = -EIO;
        return upk_err(err, UPK_ERR_IO, r, "payload \"%s\": handler %s: %s", h->payload_name ?: "?", h->name,
                       isempty(msg) ? strerror(-r) : msg);
}

static int wrong_phase(Handler *h, const char *step, UpkErr *err)
{
        char msg[HANDLER_MSG_MAX];

        snprintf(msg, sizeof(msg), "%s() called while the payload is %s", step, phase_table[h->phase]);
        return step_failed(h, -EINVAL, msg, err);
}

int handler_begin(Handler *h, const struct upkeep_payload *p, UpkErr *err)
{
        char msg[HANDLER_MSG_MAX] = "";
        struct upkeep_payload copy;
        void *state = NULL;
        int r;

        if (!p || isempty(p->name) || isempty(p->destination))
                return upk_err(err, UPK_ERR_IO, -EINVAL, "handler %s: payload without a name or destination",
                               h->name);
        free(h->payload_name);
        h->payload_name = strdup(p->name);
        if (!h->payload_name)
                return upk_err_oom(err);
        if (h->phase != HANDLER_PHASE_READY)
                return wrong_phase(h, "begin", err);

        copy = *p;
        copy.struct_size = sizeof(copy);
        if (!copy.handler)
                copy.handler = h->name;
        if (h->program)
                r = handler_exec_begin(h->program, &copy, &state, msg, sizeof(msg));
        else
                r = h->ops->begin(&copy, &state, msg, sizeof(msg));
        msg[sizeof(msg) - 1] = 0;
        if (r < 0) {
                h->phase = HANDLER_PHASE_DONE;
                return step_failed(h, r, msg, err);
        }
        h->state = state;
        h->size = p->size;
        h->written = 0;
        h->phase = HANDLER_PHASE_WRITING;
        return 0;
}

int handler_write(Handler *h, const void *buf, size_t len, UpkErr *err)
{
        char msg[HANDLER_MSG_MAX] = "";
        int r;

        if (h->phase != HANDLER_PHASE_WRITING)
                return wrong_phase(h, "write", err);
        if (len == 0)
                return 0;
        if (h->size != UPKEEP_PAYLOAD_SIZE_UNKNOWN && (len > h->size || h->written > h->size - len)) {
                h->phase = HANDLER_PHASE_FAILED;
                snprintf(msg, sizeof(msg), "more than the %" PRIu64 " bytes the manifest announces",
                         h->size);
                return step_failed(h, -EFBIG, msg, err);
        }
        r = h->ops->write(h->state, buf, len, msg, sizeof(msg));
        msg[sizeof(msg) - 1] = 0;
        if (r < 0) {
                h->phase = HANDLER_PHASE_FAILED;
                return step_failed(h, r, msg, err);
        }
        h->written += len;
        return 0;
}

int handler_finish(Handler *h, UpkErr *err)
{
        char msg[HANDLER_MSG_MAX] = "";
        int r;

        if (h->phase != HANDLER_PHASE_WRITING)
                return wrong_phase(h, "finish", err);
        if (h->size != UPKEEP_PAYLOAD_SIZE_UNKNOWN && h->written != h->size) {
                h->phase = HANDLER_PHASE_FAILED;
                snprintf(msg, sizeof(msg), "got %" PRIu64 " bytes, the manifest announces %" PRIu64,
                         h->written, h->size);
                return step_failed(h, -EBADMSG, msg, err);
        }
        r = h->ops->finish(h->state, msg, sizeof(msg));
        msg[sizeof(msg) - 1] = 0;
        if (r < 0) {
                h->phase = HANDLER_PHASE_FAILED;
                return step_failed(h, r, msg, err);
        }
        h->phase = HANDLER_PHASE_FINISHED;
        return 0;
}

int handler_commit(Handler *h, UpkErr *err)
{
        char msg[HANDLER_MSG_MAX] = "";
        int r;

        if (h->phase != HANDLER_PHASE_FINISHED)
                return wrong_phase(h, "commit", err);
        r = h->ops->commit(TAKE_PTR(h->state), msg, sizeof(msg));
        msg[sizeof(msg) - 1] = 0;
        h->phase = HANDLER_PHASE_DONE;
        if (r < 0)
                return step_failed(h, r, msg, err);
        return 0;
}

void handler_rollback(Handler *h)
{
        if (!h)
                return;
        switch (h->phase) {
        case HANDLER_PHASE_WRITING:
        case HANDLER_PHASE_FINISHED:
        case HANDLER_PHASE_FAILED:
                h->ops->rollback(TAKE_PTR(h->state));
                h->phase = HANDLER_PHASE_DONE;
                break;
        case HANDLER_PHASE_READY:
        case HANDLER_PHASE_DONE:
        case _HANDLER_PHASE_MAX:
        case _HANDLER_PHASE_INVALID:
                break;
        }
}
