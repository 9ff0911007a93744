/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Benchmark client (not installed): up to N Get calls of io.upkeep.Update1's State over the bus given by
 * DBUS_SYSTEM_BUS_ADDRESS, each timed, until the daemon is no longer busy (it said "downloading" or
 * "installing", then something else); prints one JSON line with the latency percentiles of the calls
 * answered while busy, and of all. usage: bus-latency [N [PAUSE_MS]] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>
#include <time.h>

#include "bus-api.h"

#define CALLS_MAX 100000

static double now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;
        return x < y ? -1 : x > y;
}

static double percentile(const double *sorted, size_t n, double p)
{
        size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
        return sorted[i < n ? i : n - 1];
}

int main(int argc, char *argv[])
{
        sd_bus *bus = NULL;
        size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 200;
        long pause_ms = argc > 2 ? strtol(argv[2], NULL, 10) : 5;
        size_t installing = 0, failed = 0, done = 0;
        double *lat, *busy;
        int r;

        if (n == 0 || n > CALLS_MAX || pause_ms < 0 || pause_ms > 10000) {
                fprintf(stderr, "usage: bus-latency [N (1..%d) [PAUSE_MS]]\n", CALLS_MAX);
                return 2;
        }
        lat = calloc(n, sizeof(double));
        busy = calloc(n, sizeof(double));
        if (!lat || !busy)
                return 1;
        r = sd_bus_open_system(&bus);
        if (r < 0) {
                fprintf(stderr, "bus-latency: cannot connect: %s\n", strerror(-r));
                return 1;
        }
        for (size_t i = 0; i < n; i++) {
                sd_bus_error error = SD_BUS_ERROR_NULL;
                char *state = NULL;
                double t0 = now_ms();

                r = sd_bus_get_property_string(bus, UPKEEP_BUS_NAME, UPKEEP_BUS_PATH, UPKEEP_BUS_INTERFACE,
                                               "State", &error, &state);
                lat[i] = now_ms() - t0;
                done++;
                if (r < 0)
                        failed++;
                else if (strcmp(state, "installing") == 0 || strcmp(state, "downloading") == 0)
                        busy[installing++] = lat[i];
                else if (installing > 0) {
                        free(state);
                        sd_bus_error_free(&error);
                        break; /* the install is over */
                }
                free(state);
                sd_bus_error_free(&error);
                if (pause_ms) {
                        struct timespec ts = { pause_ms / 1000, (pause_ms % 1000) * 1000000L };
                        nanosleep(&ts, NULL);
                }
        }
        qsort(lat, done, sizeof(double), cmp_double);
        qsort(busy, installing, sizeof(double), cmp_double);
        printf("{\"calls\": %zu, \"installing\": %zu, \"failed\": %zu, \"p50_ms\": %.3f, \"p99_ms\": %.3f, "
               "\"max_ms\": %.3f, \"all_p99_ms\": %.3f}\n",
               done, installing, failed, installing ? percentile(busy, installing, 50) : 0.0,
               installing ? percentile(busy, installing, 99) : 0.0, installing ? busy[installing - 1] : 0.0,
               percentile(lat, done, 99));
        sd_bus_flush_close_unref(bus);
        free(lat);
        free(busy);
        return failed ? 1 : 0;
}
