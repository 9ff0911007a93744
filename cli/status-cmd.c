/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* updatectl [status] [--json]: the daemon's properties as a summary. */
#include <inttypes.h>
#include <stdio.h>

#include "cli.h"
#include "format.h"

static void line(const char *label, const char *value)
{
        printf("%13s: %s\n", label, value);
}

static char *describe_support(char *buf, size_t size, const char *end, bool known, int64_t days)
{
        if (isempty(end))
                snprintf(buf, size, "unknown");
        else if (!known)
                snprintf(buf, size, "%s", end);
        else if (days > 1)
                snprintf(buf, size, "%s (%" PRIi64 " days left)", end, days);
        else if (days == 1)
                snprintf(buf, size, "%s (1 day left)", end);
        else if (days == 0)
                snprintf(buf, size, "%s (the last day)", end);
        else
                snprintf(buf, size, "%s (ended %" PRIi64 " day%s ago)", end, -days, days == -1 ? "" : "s");
        return buf;
}

static void support_warning(FILE *f, const char *end, int64_t days)
{
        fprintf(f,
                "WARNING: security support for this device ended on %s (%" PRIi64
                " day%s ago): it receives no "
                "more security updates.\n",
                end, -days, days == -1 ? "" : "s");
}

static int print_json(const UpdateProps *p, bool known, int64_t days)
{
        _cleanup_(json_object_putp) json_object *o = json_object_new_object(), *progress = NULL, *rb = NULL;
        int r = 0;

        progress = json_object_new_object();
        if (!o || !progress)
                return -ENOMEM;
        r |= json_object_object_add(progress, "done", json_object_new_uint64(p->progress_done));
        r |= json_object_object_add(progress, "total", json_object_new_uint64(p->progress_total));
        r |= json_object_object_add(o, "state", json_object_new_string(p->state ?: ""));
        r |= json_object_object_add(o, "phase", json_object_new_string(p->phase ?: ""));
        r |= json_object_object_add(o, "progress", TAKE_PTR(progress));
        r |= json_object_object_add(o, "current_version", json_object_new_string(p->current_version ?: ""));
        r |= json_object_object_add(o, "available_version",
                                    json_object_new_string(p->available_version ?: ""));
        r |= json_object_object_add(o, "compatible", json_object_new_string(p->compatible ?: ""));
        r |= json_object_object_add(o, "booted_slot", json_object_new_string(p->booted_slot ?: ""));
        r |= json_object_object_add(o, "auto_update", json_object_new_boolean(p->auto_update));
        r |= json_object_object_add(o, "last_check", json_object_new_uint64(p->last_check));
        r |= json_object_object_add(o, "last_error", json_object_new_string(p->last_error ?: ""));
        r |= json_object_object_add(o, "support_end", json_object_new_string(p->support_end ?: ""));
        r |= json_object_object_add(o, "support_days_left", known ? json_object_new_int64(days) : NULL);
        r |= json_object_object_add(o, "support_ended", json_object_new_boolean(known && days < 0));
        if (!isempty(p->rb_slot)) {
                rb = json_object_new_object();
                if (!rb)
                        return -ENOMEM;
                r |= json_object_object_add(rb, "version",
                                            isempty(p->rb_version) ? NULL
                                                                   : json_object_new_string(p->rb_version));
                r |= json_object_object_add(rb, "slot", json_object_new_string(p->rb_slot));
                r |= json_object_object_add(rb, "reason", json_object_new_string(p->rb_reason ?: ""));
                r |= json_object_object_add(rb, "time", json_object_new_uint64(p->rb_time));
        }
        r |= json_object_object_add(o, "rolled_back", TAKE_PTR(rb));
        if (p->delta_total > 0) {
                _cleanup_(json_object_putp) json_object *d = json_object_new_object();

                if (!d)
                        return -ENOMEM;
                r |= json_object_object_add(d, "reused", json_object_new_uint64(p->delta_reused));
                r |= json_object_object_add(d, "total", json_object_new_uint64(p->delta_total));
                r |= json_object_object_add(d, "downloaded", json_object_new_uint64(p->delta_downloaded));
                r |= json_object_object_add(d, "requests", json_object_new_uint64(p->delta_requests));
                r |= json_object_object_add(o, "last_delta", TAKE_PTR(d));
        } else
                r |= json_object_object_add(o, "last_delta", NULL);
        if (r != 0)
                return -ENOMEM;
        return cli_print_json(o);
}

int status_main(int argc, char *argv[], CliArgs *args)
{
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(update_props_done) UpdateProps p = {};
        char buf[FORMAT_WHEN_MAX + UPK_ERR_MSG_MAX], b1[FORMAT_BYTES_MAX], b2[FORMAT_BYTES_MAX];
        int64_t days = 0;
        bool known;
        int r;

        r = cli_parse_verb(argc, argv, CLI_OPT_JSON, 0, 0, args);
        if (r != 0)
                return r;
        r = client_connect(&bus);
        if (r != 0)
                return r;
        r = client_get_props(bus, &p, &error);
        if (r < 0)
                return client_report(NULL, r, &error);

        known = date_days_from(p.support_end, now_usec(), &days) >= 0;

        if (args->json) {
                /* Standard output stays one JSON object; the warning goes to standard error. */
                if (known && days < 0)
                        support_warning(stderr, p.support_end, days);
                r = print_json(&p, known, days);
                if (r < 0)
                        return client_report(NULL, r, NULL);
                return r;
        }

        line("State", p.state ?: "unknown");
        if (!isempty(p.phase))
                line("Phase", p.phase);
        if (p.progress_total > 0) {
                double pct = (double)p.progress_done * 100.0 / (double)p.progress_total;
                snprintf(buf, sizeof(buf), "%u%% (%s of %s)", pct >= 100.0 ? 100u : (unsigned)pct,
                         format_bytes(b1, sizeof(b1), p.progress_done),
                         format_bytes(b2, sizeof(b2), p.progress_total));
                line("Progress", buf);
        }
        line("Version", isempty(p.current_version) ? "unknown" : p.current_version);
        line("Booted slot", isempty(p.booted_slot) ? "unknown" : p.booted_slot);
        line("Available", isempty(p.available_version) ? "none" : p.available_version);
        line("Compatible", isempty(p.compatible) ? "unknown" : p.compatible);
        line("Auto updates", p.auto_update ? "on" : "off");
        line("Last check", format_when(buf, sizeof(buf), p.last_check));
        if (!isempty(p.last_error))
                line("Last error", p.last_error);
        if (p.delta_total > 0) {
                char b3[FORMAT_BYTES_MAX];

                snprintf(buf, sizeof(buf),
                         "%s of %s reused from the booted slot, %s downloaded (%" PRIu32 " requests)",
                         format_bytes(b1, sizeof(b1), p.delta_reused),
                         format_bytes(b2, sizeof(b2), p.delta_total),
                         format_bytes(b3, sizeof(b3), p.delta_downloaded), p.delta_requests);
                line("Last delta", buf);
        }
        if (!isempty(p.rb_slot)) {
                char when[FORMAT_WHEN_MAX];

                snprintf(buf, sizeof(buf), "version %s on slot %s, %s",
                         isempty(p.rb_version) ? "(unknown)" : p.rb_version, p.rb_slot,
                         format_when(when, sizeof(when), p.rb_time));
                line("Rolled back", buf);
                line("Reason", p.rb_reason ?: "");
        }
        line("Support end", describe_support(buf, sizeof(buf), p.support_end, known, days));
        if (known && days < 0)
                support_warning(stdout, p.support_end, days);
        if (fflush(stdout) != 0)
                return client_report("standard output", -errno, NULL);
        return EXIT_OK;
}
