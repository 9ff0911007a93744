/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* updatectl install (following the job with a progress bar or plain lines) and updatectl monitor. */
#include <signal.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <systemd/sd-event.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "format.h"

/* Redraw the bar at most this often (a phase change redraws at once). */
#define REDRAW_USEC (100 * USEC_PER_MSEC)
/* The rate is the mean over about this long. */
#define RATE_WINDOW_USEC (1 * USEC_PER_SEC)
#define DEFAULT_COLUMNS  80

typedef struct Follow {
        sd_event *event;
        sd_bus *bus;
        UpdateProps props;
        bool monitor; /* print every change (monitor) instead of the progress (install) */
        bool started; /* the daemon accepted our Install */
        bool tty;
        bool drawn; /* a bar is on the current terminal line */
        char *last_phase;
        unsigned last_decile;
        uint64_t last_total;
        uint64_t last_draw, anchor_time, anchor_done, rate;
} Follow;

static void follow_done(Follow *f)
{
        update_props_done(&f->props);
        free(f->last_phase);
        f->event = sd_event_unref(f->event);
}

static uint64_t now_monotonic(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * USEC_PER_SEC + (uint64_t)ts.tv_nsec / 1000;
}

static unsigned terminal_columns(void)
{
        struct winsize ws;

        if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) < 0 || ws.ws_col == 0)
                return DEFAULT_COLUMNS;
        return ws.ws_col;
}

/* Remove the bar from the terminal line, so that the next output starts on a clean line. */
static void clear_bar(Follow *f)
{
        if (!f->drawn)
                return;
        printf("\r%*s\r", (int)terminal_columns() - 1, "");
        fflush(stdout);
        f->drawn = false;
}

static void update_rate(Follow *f, uint64_t now)
{
        uint64_t done = f->props.progress_done;

        if (f->anchor_time == 0 || done < f->anchor_done || f->props.progress_total != f->last_total) {
                f->anchor_time = now;
                f->anchor_done = done;
                f->rate = 0;
                return;
        }
        if (now - f->anchor_time >= RATE_WINDOW_USEC) {
                f->rate = (uint64_t)((double)(done - f->anchor_done) * USEC_PER_SEC /
                                     (double)(now - f->anchor_time));
                f->anchor_time = now;
                f->anchor_done = done;
        }
}

static bool job_active(const UpdateProps *p)
{
        return p->state && (streq(p->state, "installing") || streq(p->state, "downloading"));
}

static void show_progress(Follow *f)
{
        const UpdateProps *p = &f->props;
        bool phase_changed = !isempty(p->phase) && (!f->last_phase || !streq(f->last_phase, p->phase));
        uint64_t now = now_monotonic();

        if (!f->started && !job_active(p))
                return;
        update_rate(f, now);
        if (p->progress_total != f->last_total || (p->progress_total > 0 && p->progress_done == 0))
                f->last_decile = 0;
        f->last_total = p->progress_total;
        if (phase_changed) {
                free(f->last_phase);
                f->last_phase = strdup(p->phase);
        }

        if (f->tty) {
                char line[FORMAT_PROGRESS_MAX];
                unsigned cols = terminal_columns();

                if (!phase_changed && f->drawn && now - f->last_draw < REDRAW_USEC)
                        return;
                if (isempty(p->phase) && p->progress_total == 0)
                        return; /* nothing to show yet */
                format_progress(line, sizeof(line), cols > 1 ? cols - 1 : 1, p->phase, p->progress_done,
                                p->progress_total, f->rate);
                printf("\r%s", line);
                fflush(stdout);
                f->drawn = true;
                f->last_draw = now;
                return;
        }

        if (phase_changed)
                printf("phase: %s\n", p->phase);
        if (p->progress_total > 0) {
                unsigned decile = (unsigned)((double)p->progress_done * 10.0 / (double)p->progress_total);
                char b1[FORMAT_BYTES_MAX], b2[FORMAT_BYTES_MAX];

                if (decile > 10)
                        decile = 10;
                if (decile > f->last_decile) {
                        f->last_decile = decile;
                        printf("progress: %u%% (%s of %s)\n", decile * 10,
                               format_bytes(b1, sizeof(b1), p->progress_done),
                               format_bytes(b2, sizeof(b2), p->progress_total));
                }
        }
        fflush(stdout);
}

/* "2026-11-25 10:00:00.123" in local time. */
static void print_stamp(void)
{
        struct timespec ts;
        struct tm tm;
        char buf[FORMAT_TIMESTAMP_MAX];

        clock_gettime(CLOCK_REALTIME, &ts);
        if (!localtime_r(&ts.tv_sec, &tm) || strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", &tm) == 0)
                snprintf(buf, sizeof(buf), "@%lld", (long long)ts.tv_sec);
        printf("%s.%03ld ", buf, ts.tv_nsec / 1000000);
}

/* Print `s` on one line: control characters (and with `quoted`, '"' and '\\') escaped C-style. */
static void print_escaped(const char *s, bool quoted)
{
        for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
                if (*p == '\n')
                        fputs("\\n", stdout);
                else if (*p == '\t')
                        fputs("\\t", stdout);
                else if (*p < 0x20 || *p == 0x7f)
                        printf("\\x%02x", *p);
                else if (quoted && (*p == '"' || *p == '\\'))
                        printf("\\%c", *p);
                else
                        putchar(*p);
        }
}

static int on_properties_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
        Follow *f = userdata;
        _cleanup_(strv_freep) char **changed = NULL;
        const char *interface;
        int r;

        r = bus_read_string(m, &interface);
        if (r < 0 || !streq(interface, UPKEEP_BUS_INTERFACE))
                return 0;
        r = update_props_apply(&f->props, m, &changed);
        if (r < 0) {
                fprintf(stderr, "%s: a PropertiesChanged signal could not be read: %s\n", program_name,
                        strerror(-r));
                return 0;
        }
        if (!f->monitor) {
                show_progress(f);
                return 0;
        }
        for (char **name = changed; *name; name++) {
                _cleanup_free_ char *value = update_props_describe(&f->props, *name);

                print_stamp();
                printf("%s=", *name);
                print_escaped(value ?: "?", false);
                putchar('\n');
        }
        fflush(stdout);
        return 0;
}

static int on_finished(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
        Follow *f = userdata;
        const char *message, *error;
        int ok, r;

        r = sd_bus_message_read(m, "bss", &ok, &message, &error);
        if (r < 0 || strlen(message) > CLIENT_STRING_MAX || strlen(error) > CLIENT_STRING_MAX) {
                fprintf(stderr, "%s: a Finished signal could not be read\n", program_name);
                return 0;
        }
        if (f->monitor) {
                print_stamp();
                if (ok)
                        printf("Finished ok=yes message=\"");
                else
                        printf("Finished ok=no error=%s message=\"", isempty(error) ? "-" : error);
                print_escaped(message, true);
                printf("\"\n");
                fflush(stdout);
                return 0;
        }
        if (!f->started)
                return 0; /* the end of an earlier job */

        clear_bar(f);
        if (ok) {
                printf("%s\n", message);
                fflush(stdout);
                sd_event_exit(f->event, EXIT_OK);
        } else {
                int status = upk_bus_error_exit_status(error);

                fprintf(stderr, "%s: %s\n", program_name, isempty(message) ? "the install failed" : message);
                sd_event_exit(f->event, status == EXIT_OK ? EXIT_FAIL : status);
        }
        return 0;
}

static int on_name_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
        Follow *f = userdata;
        const char *name, *old_owner, *new_owner;
        int r;

        r = sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner);
        if (r < 0 || !streq(name, UPKEEP_BUS_NAME))
                return 0;
        if (f->monitor) {
                print_stamp();
                printf("%s\n",
                       isempty(new_owner) ? "the update daemon stopped" : "the update daemon started");
                fflush(stdout);
                return 0;
        }
        if (f->started && isempty(new_owner)) {
                clear_bar(f);
                fprintf(stderr, "%s: the update daemon stopped before the install finished\n", program_name);
                sd_event_exit(f->event, EXIT_FAIL);
        }
        return 0;
}

static int on_disconnected(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
        Follow *f = userdata;

        clear_bar(f);
        fprintf(stderr, "%s: the connection to the system bus was lost\n", program_name);
        sd_event_exit(f->event, EXIT_FAIL);
        return 0;
}

static int on_install_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
        Follow *f = userdata;

        if (sd_bus_message_is_method_error(m, NULL)) {
                clear_bar(f);
                sd_event_exit(f->event, client_report(NULL, -EIO, sd_bus_message_get_error(m)));
                return 0;
        }
        f->started = true;
        return 0;
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
        Follow *f = userdata;

        if (f->monitor) {
                sd_event_exit(f->event, EXIT_OK);
                return 0;
        }
        clear_bar(f);
        fprintf(stderr, "%s: no longer following the install; it goes on (\"%s cancel\" stops it)\n",
                program_name, program_name);
        sd_event_exit(f->event, EXIT_FAIL);
        return 0;
}

/* The event loop, the bus on it, SIGINT and SIGTERM handled, the matches for the daemon's signals. */
static int follow_setup(Follow *f, sd_bus *bus)
{
        sigset_t mask;
        int r;

        sigemptyset(&mask);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return -errno;

        f->bus = bus;
        r = sd_event_default(&f->event);
        if (r < 0)
                return r;
        r = sd_event_add_signal(f->event, NULL, SIGINT, on_signal, f);
        if (r >= 0)
                r = sd_event_add_signal(f->event, NULL, SIGTERM, on_signal, f);
        if (r < 0)
                return r;
        r = sd_bus_attach_event(bus, f->event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return r;
        /* sd-bus delivers a lost connection as this local signal. */
        r = sd_bus_match_signal(bus, NULL, NULL, "/org/freedesktop/DBus/Local", "org.freedesktop.DBus.Local",
                                "Disconnected", on_disconnected, f);
        if (r < 0)
                return r;
        /* Matches are in place before the first call, so nothing in between is missed. */
        r = sd_bus_match_signal(bus, NULL, UPKEEP_BUS_NAME, UPKEEP_BUS_PATH,
                                "org.freedesktop.DBus.Properties", "PropertiesChanged",
                                on_properties_changed, f);
        if (r < 0)
                return r;
        r = sd_bus_match_signal(bus, NULL, UPKEEP_BUS_NAME, UPKEEP_BUS_PATH, UPKEEP_BUS_INTERFACE,
                                "Finished", on_finished, f);
        if (r < 0)
                return r;
        return sd_bus_add_match(
                bus, NULL,
                "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
                "interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='" UPKEEP_BUS_NAME "'",
                on_name_owner_changed, f);
}

static int make_source(const char *arg, char **ret)
{
        _cleanup_free_ char *cwd = NULL;
        char *s;

        if (strneq(arg, "http://", 7) || strneq(arg, "https://", 8) || arg[0] == '/' || streq(arg, "-"))
                s = strdup(arg);
        else {
                cwd = getcwd(NULL, 0);
                if (!cwd)
                        return -errno;
                s = strdup_printf("%s/%s", streq(cwd, "/") ? "" : cwd, arg);
        }
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

/* "-": the daemon reads the bundle from our standard input, handed over as a descriptor. */
static int append_install(sd_bus_message *m, const char *source, bool allow_downgrade)
{
        int r;

        r = sd_bus_message_append(m, "s", source);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        if (allow_downgrade) {
                r = sd_bus_message_append(m, "{sv}", "allow-downgrade", "b", 1);
                if (r < 0)
                        return r;
        }
        if (streq(source, "-")) {
                r = sd_bus_message_append(m, "{sv}", "fd", "h", STDIN_FILENO);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(m);
}

int install_main(int argc, char *argv[], CliArgs *args)
{
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        _cleanup_(follow_done) Follow f = {};
        _cleanup_free_ char *source = NULL;
        int r;

        r = cli_parse_verb(argc, argv, CLI_OPT_NO_BLOCK | CLI_OPT_ALLOW_DOWNGRADE, 0, 1, args);
        if (r != 0)
                return r;
        if (args->n_pos == 0)
                /* "" asks for the update the daemon's source offers (AvailableVersion). */
                source = strdup("");
        else if (isempty(args->pos[0]))
                return cli_usage_error("install: the bundle path is empty");
        else if (streq(args->pos[0], "-") && isatty(STDIN_FILENO))
                return cli_usage_error("install -: standard input is a terminal; pipe the bundle into it");
        else {
                r = make_source(args->pos[0], &source);
                if (r < 0)
                        return client_report(args->pos[0], r, NULL);
        }
        if (!source)
                return client_report(NULL, -ENOMEM, NULL);

        r = client_connect(&bus);
        if (r != 0)
                return r;
        r = sd_bus_message_new_method_call(bus, &m, UPKEEP_BUS_NAME, UPKEEP_BUS_PATH, UPKEEP_BUS_INTERFACE,
                                           "Install");
        if (r >= 0)
                r = append_install(m, source, args->allow_downgrade);
        if (r < 0)
                return client_report(NULL, r, NULL);

        if (args->no_block) {
                r = sd_bus_call(bus, m, 0, &error, NULL);
                if (r < 0)
                        return client_report(NULL, r, &error);
                printf("installing %s; follow it with \"%s monitor\" or \"%s status\"\n",
                       isempty(source)      ? "the available update"
                       : streq(source, "-") ? "the bundle from standard input"
                                            : source,
                       program_name, program_name);
                return EXIT_OK;
        }

        f.tty = isatty(STDOUT_FILENO);
        r = follow_setup(&f, bus);
        if (r >= 0)
                r = client_get_props(bus, &f.props, &error);
        if (r < 0)
                return client_report(NULL, r, &error);
        r = sd_bus_call_async(bus, NULL, m, on_install_reply, &f, 0);
        if (r < 0)
                return client_report(NULL, r, NULL);
        r = sd_event_loop(f.event);
        return r < 0 ? client_report(NULL, r, NULL) : r;
}

int monitor_main(int argc, char *argv[], CliArgs *args)
{
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(follow_done) Follow f = { .monitor = true };
        int r;

        r = cli_parse_verb(argc, argv, 0, 0, 0, args);
        if (r != 0)
                return r;
        r = client_connect(&bus);
        if (r != 0)
                return r;
        r = follow_setup(&f, bus);
        if (r < 0)
                return client_report(NULL, r, NULL);

        print_stamp();
        r = client_get_props(bus, &f.props, &error);
        if (r >= 0)
                printf("State=%s\n", f.props.state ?: "");
        else if (sd_bus_error_has_names(&error, SD_BUS_ERROR_SERVICE_UNKNOWN,
                                        SD_BUS_ERROR_NAME_HAS_NO_OWNER))
                printf("the update daemon is not running; waiting for it\n");
        else
                return client_report(NULL, r, &error);
        fflush(stdout);

        r = sd_event_loop(f.event);
        return r < 0 ? client_report(NULL, r, NULL) : r;
}
