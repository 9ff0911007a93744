/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <time.h>

#include "support.h"

static const char *const support_source_table[_SUPPORT_SOURCE_MAX] = {
        [SUPPORT_SOURCE_MANIFEST] = "manifest",
        [SUPPORT_SOURCE_CONFIG] = "config",
        [SUPPORT_SOURCE_UNKNOWN] = "unknown",
};

DEFINE_STRING_TABLE_TO_STRING(support_source, SupportSource, support_source_table)

int64_t support_today(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return ts.tv_sec >= 0 ? ts.tv_sec / 86400 : (ts.tv_sec - 86399) / 86400;
}

void capability_done(Capability *cap)
{
        free(cap->verification);
        free(cap->last_install_version);
        *cap = (Capability){};
}

int support_capability(const Config *c, const UpkState *s, const HistoryEntry *history, size_t n_history,
                       int64_t today, Capability *ret)
{
        Capability cap = { .support_source = SUPPORT_SOURCE_UNKNOWN };
        const char *end = NULL;
        int64_t end_days = 0;

        /* The newest signed manifest wins over the config: it is what the vendor promised last. */
        if (s && s->support_end && date_parse_days(s->support_end, &end_days) >= 0) {
                end = s->support_end;
                cap.support_source = SUPPORT_SOURCE_MANIFEST;
        } else if (c->support_end && date_parse_days(c->support_end, &end_days) >= 0) {
                end = c->support_end;
                cap.support_source = SUPPORT_SOURCE_CONFIG;
        }
        if (end) {
                memcpy(cap.support_end, end, SUPPORT_DATE_LEN + 1);
                cap.has_days_left = true;
                cap.support_days_left = end_days - today;
        }

        cap.keyring_present = c->keyring && access(c->keyring, R_OK) >= 0;
        cap.can_receive_updates = cap.keyring_present && !(cap.has_days_left && cap.support_days_left < 0);
        cap.update_mode =
                (s && !s->auto_update) || c->auto_install == AUTO_INSTALL_NONE ? "manual" : "automatic";
        cap.update_source = source_type_to_string(c->source_type);
        cap.last_check = s ? s->last_check : 0;
        cap.verification =
                strdup_printf("bundles must carry a CMS signature chaining to the keyring %s; every "
                              "payload is checked against its SHA-256 before activation",
                              c->keyring ?: CONFIG_DEFAULT_KEYRING);
        if (!cap.verification)
                return -ENOMEM;

        for (size_t i = n_history; i > 0; i--) {
                const HistoryEntry *e = &history[i - 1];
                if (!e->operation || !streq(e->operation, "install"))
                        continue;
                cap.has_last_install = true;
                cap.last_install_version = strdup(e->version ?: "");
                cap.last_install_time = e->time;
                cap.last_install_ok = e->ok;
                if (!cap.last_install_version) {
                        capability_done(&cap);
                        return -ENOMEM;
                }
                break;
        }
        *ret = cap;
        return 0;
}

char *support_ended_message(const Capability *cap)
{
        if (!cap->has_days_left || cap->support_days_left >= 0)
                return NULL;
        return strdup_printf("security support for this device ended on %s (%lld day%s ago): it no longer "
                             "receives security updates",
                             cap->support_end, (long long)-cap->support_days_left,
                             cap->support_days_left == -1 ? "" : "s");
}
