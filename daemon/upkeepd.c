/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* upkeepd: the update agent. Without a verb it is the service (manager.c: the io.upkeep.Update1 bus
 * service, upkeepd(8)). Its verbs run one operation in the foreground without the bus: the installer for
 * factory, rescue and test use, and the boot-time confirmation. */
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "conf.h"
#include "delta-net.h"
#include "fetch.h"
#include "install.h"
#include "log.h"
#include "logging.h"
#include "manager.h"
#include "reboot.h"
#include "source.h"

static const char *arg_config = CONFIG_DEFAULT_PATH;
static bool arg_allow_downgrade;
static bool arg_no_reboot;

/* The verbs' voice: what they do on stdout, failures on stderr. */
static void verb_say(LogLevel level, const char *message, void *userdata)
{
        if (level == LOG_LEVEL_ERROR) {
                fprintf(stderr, "upkeepd: %s\n", message);
                return;
        }
        printf("%s\n", message);
        fflush(stdout);
}

static int do_reboot(const char *why)
{
        return reboot_system(why, arg_no_reboot, verb_say, NULL);
}

static int report_error(const char *what, const UpkErr *e)
{
        bool rejected;
        int status = upk_err_exit_status(e, &rejected);

        fprintf(stderr, "upkeepd: %s%s%s%s\n", what ?: "", what ? ": " : "", rejected ? "rejected: " : "",
                e->msg[0] ? e->msg : strerror(e->code < 0 ? -e->code : EIO));
        return status;
}

static int usage_error(const char *msg)
{
        fprintf(stderr, "upkeepd: %s\nTry 'upkeepd --help'.\n", msg);
        return UPK_EXIT_USAGE;
}

static void help(void)
{
        printf("upkeepd — the upkeep update agent\n\n"
               "upkeepd [--config FILE] [--no-reboot]\n"
               "                                   run the service io.upkeep.Update1 on the system bus\n"
               "upkeepd [--config FILE] install [--allow-downgrade] BUNDLE|URL\n"
               "                                   install a bundle (a file, or an http(s) URL: a delta\n"
               "                                   when [install] delta = yes) into the inactive slot, now\n"
               "upkeepd [--config FILE] confirm    confirm or fail a pending update (at boot)\n"
               "upkeepd [--config FILE] mark-good  mark the booted slot good and primary\n"
               "upkeepd [--config FILE] rollback   make the other slot primary again (or cancel the\n"
               "                                   update that waits for its reboot)\n\n"
               "Options:\n"
               "  -c --config FILE     configuration file (default %s)\n"
               "     --allow-downgrade install an older version (needs allow-downgrade = yes too)\n"
               "     --no-reboot       do not reboot even when [policy] reboot = auto\n"
               "  -h --help            show this help\n"
               "     --version         show the version\n\n"
               "Defaults of this build (--config changes the first, the configuration the others):\n"
               "  configuration          %s\n"
               "  [device] data-dir      %s\n"
               "  [keyring] path         %s\n"
               "  [health] dir           %s\n"
               "  [install] handlers-dir %s\n\n"
               "See upkeepd(8).\n",
               CONFIG_DEFAULT_PATH, CONFIG_DEFAULT_PATH, CONFIG_DEFAULT_DATA_DIR, CONFIG_DEFAULT_KEYRING,
               CONFIG_DEFAULT_HEALTH_DIR, CONFIG_DEFAULT_HANDLERS_DIR);
}

typedef struct Progress {
        bool tty;
        int last_percent;
        InstallPhase last_phase;
} Progress;

static void on_progress(void *userdata, InstallPhase phase, uint64_t done, uint64_t total)
{
        Progress *p = userdata;
        int percent = total ? (int)(done * 100 / total) : 0;

        if (phase == p->last_phase &&
            (percent / 10 == p->last_percent / 10 || phase != INSTALL_PHASE_WRITING))
                return;
        p->last_phase = phase;
        p->last_percent = percent;
        if (phase == INSTALL_PHASE_WRITING)
                printf("%s: %d%% (%llu of %llu bytes)\n", install_phase_to_string(phase), percent,
                       (unsigned long long)done, (unsigned long long)total);
        else
                printf("%s\n", install_phase_to_string(phase));
        fflush(stdout);
}

static int load_config(Config **ret)
{
        UpkErr err = {};
        int r = config_load(arg_config, ret, &err);

        if (r < 0)
                return report_error(NULL, &err);
        for (size_t i = 0; i < (*ret)->n_warnings; i++)
                fprintf(stderr, "upkeepd: warning: %s\n", (*ret)->warnings[i]);
        return 0;
}

/* The whole bundle from a URL, streamed into the installer without being stored: a thread of its own runs
 * a private loop with the download (FetchEngine, FetchStream), this thread reads the stream. Everything is
 * made before the loop thread starts and freed after it was joined. */
typedef struct Download {
        sd_event *event;
        FetchEngine *engine;
        FetchStream *stream;
        sd_event_source *quit_source;
        int quit_fd; /* readable: the loop exits */
        pthread_t thread;
        bool started;
        int loop_r; /* sd_event_loop()'s result */
} Download;

static int on_download_quit(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        return sd_event_exit(sd_event_source_get_event(s), 0);
}

static void *download_thread(void *userdata)
{
        Download *d = userdata;

        d->loop_r = sd_event_loop(d->event);
        if (d->loop_r < 0)
                fetch_stream_cancel(d->stream); /* the reader must not wait for good */
        return NULL;
}

/* Stops the transfer if it still runs (the install stopped reading early, or failed), ends the loop, joins
 * its thread and frees everything. */
static void download_done(Download *d)
{
        if (d->started) {
                fetch_stream_cancel(d->stream);
                (void)eventfd_write(d->quit_fd, 1);
                pthread_join(d->thread, NULL);
                d->started = false;
        }
        d->stream = fetch_stream_free(d->stream);
        d->engine = fetch_engine_free(d->engine);
        d->quit_source = sd_event_source_disable_unref(d->quit_source);
        d->quit_fd = safe_close(d->quit_fd);
        d->event = sd_event_unref(d->event);
}

static int download_start(Download *d, const Config *c, const char *url, UpkErr *err)
{
        FetchOptions fo;
        int r;

        *d = (Download){ .quit_fd = -EBADF };
        r = sd_event_new(&d->event);
        if (r < 0)
                return upk_err(err, UPK_ERR_IO, r, "cannot make an event loop: %m");
        d->quit_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (d->quit_fd < 0)
                return upk_err(err, UPK_ERR_IO, -errno, "eventfd: %m");
        r = sd_event_add_io(d->event, &d->quit_source, d->quit_fd, EPOLLIN, on_download_quit, d);
        if (r < 0)
                return upk_err(err, UPK_ERR_IO, r, "cannot watch an eventfd: %m");
        r = fetch_engine_new(d->event, &d->engine, err);
        if (r < 0)
                return r;
        source_bundle_fetch_options(c, &fo);
        r = fetch_stream_new(d->engine, url, SOURCE_URL_BUNDLE_MAX, &fo, 0, &d->stream, err);
        if (r < 0)
                return r;
        r = pthread_create(&d->thread, NULL, download_thread, d);
        if (r != 0)
                return upk_err(err, UPK_ERR_IO, -r, "cannot start the download's thread: %s", strerror(r));
        d->started = true;
        return 0;
}

static int install_whole_url(const Config *c, const char *url, const InstallOptions *o, InstallResult *res,
                             UpkErr *err)
{
        Download d;
        int r;

        r = download_start(&d, c, url, err);
        if (r >= 0) {
                r = install_bundle_next(c, fetch_stream_next, d.stream, o, res, err);
                if (r < 0) {
                        UpkErr serr = {};

                        /* The download's own failure says more than the installer's "read error". */
                        fetch_stream_get_error(d.stream, &serr);
                        if (serr.kind != UPK_ERR_NONE)
                                *err = serr;
                }
        }
        download_done(&d);
        if (r < 0 && d.loop_r < 0) {
                upk_err_clear(err);
                return upk_err(err, UPK_ERR_IO, d.loop_r, "the download's event loop failed: %m");
        }
        return r;
}

/* From a URL: a delta when [install] delta = yes, the whole bundle when it cannot be one or delta = no. */
static int install_url(const Config *c, const char *url, const InstallOptions *o, InstallResult *res,
                       UpkErr *err)
{
        if (c->delta) {
                InstallDeltaStats st = {};
                InstallDeltaIo io;
                DeltaNet n;
                int r;

                delta_net_init(&n, c, url, -EBADF, &io);
                r = install_bundle_delta(c, &io, o, res, &st, err);
                if (r >= 0) {
                        if (st.reached_install) {
                                _cleanup_free_ char *line = delta_net_summary(&st, n.requests, n.wire_bytes);

                                printf("%s\n", line ?: "delta: done (out of memory for its summary)");
                        }
                        return r;
                }
                if (!install_delta_falls_back(r, err))
                        return r;
                printf("delta: %s; downloading the whole bundle\n",
                       err->msg[0] ? err->msg : strerror(-err->code));
                fflush(stdout);
                upk_err_clear(err);
        }
        return install_whole_url(c, url, o, res, err);
}

static bool is_url(const char *s)
{
        return strneq(s, "http://", 7) || strneq(s, "https://", 8);
}

static int verb_install(const char *bundle)
{
        _cleanup_(config_freep) Config *c = NULL;
        InstallResult res = {};
        Progress p = { .tty = isatty(STDOUT_FILENO),
                       .last_percent = -100,
                       .last_phase = _INSTALL_PHASE_INVALID };
        InstallOptions o = { .allow_downgrade = arg_allow_downgrade,
                             .progress = on_progress,
                             .userdata = &p };
        UpkErr err = {};
        int r;

        r = load_config(&c);
        if (r != 0)
                return r;
        if (is_url(bundle))
                r = install_url(c, bundle, &o, &res, &err);
        else
                r = install_bundle_path(c, bundle, &o, &res, &err);
        if (r < 0)
                /* A download's failure names the URL already. */
                return report_error(err.kind == UPK_ERR_NETWORK ? NULL : bundle, &err);
        printf("installed version %s into slot %s; it boots once on the next reboot and must then be "
               "confirmed\n",
               res.version, res.slot);
        if (res.reboot) {
                _cleanup_free_ char *why = strdup_printf("start version %s", res.version);
                r = do_reboot(why ?: "start the new version");
        }
        install_result_done(&res);
        return r < 0 ? UPK_EXIT_FAIL : UPK_EXIT_OK;
}

static int verb_confirm(void)
{
        _cleanup_(config_freep) Config *c = NULL;
        ConfirmResult res = {};
        UpkErr err = {};
        int r;

        r = load_config(&c);
        if (r != 0)
                return r;
        r = install_confirm(c, &res, &err);
        if (r < 0)
                return report_error("confirm", &err);
        switch (res.outcome) {
        case CONFIRM_NOTHING_PENDING:
                printf("nothing to confirm\n");
                break;
        case CONFIRM_GOOD:
                printf("confirmed version %s on slot %s\n", res.version ?: "(unknown)", res.slot);
                break;
        case CONFIRM_FAILED:
        case CONFIRM_FELL_BACK:
                printf("update to version %s on slot %s failed: %s\n", res.version ?: "(unknown)", res.slot,
                       res.reason ?: "");
                if (res.reboot)
                        (void)do_reboot("go back to the previous slot");
                r = UPK_EXIT_FAIL;
                break;
        case _CONFIRM_OUTCOME_MAX:
        case _CONFIRM_OUTCOME_INVALID:
                break;
        }
        confirm_result_done(&res);
        return r < 0 ? UPK_EXIT_FAIL : r;
}

static int verb_mark_good(void)
{
        _cleanup_(config_freep) Config *c = NULL;
        UpkErr err = {};
        int r;

        r = load_config(&c);
        if (r != 0)
                return r;
        r = install_mark_good(c, &err);
        if (r < 0)
                return report_error("mark-good", &err);
        printf("the booted slot is marked good\n");
        return UPK_EXIT_OK;
}

static int verb_rollback(void)
{
        _cleanup_(config_freep) Config *c = NULL;
        _cleanup_free_ char *slot = NULL;
        bool cancelled;
        UpkErr err = {};
        int r;

        r = load_config(&c);
        if (r != 0)
                return r;
        r = install_rollback(c, &slot, &cancelled, &err);
        if (r < 0)
                return report_error("rollback", &err);
        if (cancelled) {
                printf("the update that waited for its reboot is cancelled; slot %s stays primary\n", slot);
                return UPK_EXIT_OK;
        }
        printf("slot %s is primary again\n", slot);
        if (c->reboot == REBOOT_AUTO) {
                _cleanup_free_ char *why = strdup_printf("start slot %s", slot);
                r = do_reboot(why ?: "start the other slot");
        }
        return r < 0 ? UPK_EXIT_FAIL : UPK_EXIT_OK;
}

static void log_stderr(LogLevel level, const char *message, void *userdata)
{
        static const char *const prefix[_LOG_LEVEL_MAX] = {
                [LOG_LEVEL_ERROR] = "error: ", [LOG_LEVEL_WARNING] = "warning: ", [LOG_LEVEL_NOTICE] = "",
                [LOG_LEVEL_INFO] = "",         [LOG_LEVEL_DEBUG] = "debug: ",
        };
        fprintf(stderr, "upkeepd: %s%s\n", level >= 0 && level < _LOG_LEVEL_MAX ? prefix[level] : "",
                message);
}

/* No verb: the bus service, until SIGTERM. */
static int run_service(void)
{
        _cleanup_(manager_freep) Manager *m = NULL;
        UpkErr err = {};
        int r;

        log_open();
        upk_log_set_func(log_hook, NULL);
        r = manager_new(arg_config, arg_no_reboot, &m, &err);
        if (r < 0)
                return report_error(NULL, &err);
        r = manager_start(m);
        if (r >= 0)
                r = manager_run(m);
        if (r < 0) {
                log_errno(LOG_LEVEL_ERROR, r, "the service stopped: %m");
                return UPK_EXIT_FAIL;
        }
        log_msg(LOG_LEVEL_INFO, "stopped");
        return UPK_EXIT_OK;
}

int main(int argc, char *argv[])
{
        enum { ARG_VERSION = 0x100, ARG_ALLOW_DOWNGRADE, ARG_NO_REBOOT };
        static const struct option options[] = {
                { "config", required_argument, NULL, 'c' },
                { "allow-downgrade", no_argument, NULL, ARG_ALLOW_DOWNGRADE },
                { "no-reboot", no_argument, NULL, ARG_NO_REBOOT },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                {},
        };
        int c;

        upk_log_set_func(log_stderr, NULL);
        opterr = 0;
        while ((c = getopt_long(argc, argv, "c:h", options, NULL)) >= 0) {
                switch (c) {
                case 'c':
                        arg_config = optarg;
                        break;
                case ARG_ALLOW_DOWNGRADE:
                        arg_allow_downgrade = true;
                        break;
                case ARG_NO_REBOOT:
                        arg_no_reboot = true;
                        break;
                case 'h':
                        help();
                        return UPK_EXIT_OK;
                case ARG_VERSION:
                        printf("upkeep %s\n", PACKAGE_VERSION);
                        return UPK_EXIT_OK;
                default:
                        return usage_error("unknown option or missing value");
                }
        }
        if (optind >= argc)
                return run_service();
        const char *verb = argv[optind];
        int rest = argc - optind - 1;
        if (streq(verb, "install")) {
                if (rest != 1)
                        return usage_error("install takes one bundle");
                return verb_install(argv[optind + 1]);
        }
        if (rest != 0)
                return usage_error("this verb takes no arguments");
        if (streq(verb, "confirm"))
                return verb_confirm();
        if (streq(verb, "mark-good"))
                return verb_mark_good();
        if (streq(verb, "rollback"))
                return verb_rollback();
        return usage_error("unknown verb");
}
