/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The Eclipse hawkBit DDI source ([source] type = hawkbit; built with -Dhawkbit). Private to lib/source:
 * source.c calls it. A check (worker thread):
 *   1. delivers what DATA_DIR/hawkbit.json (the pending action, written atomically) says is due: the
 *      final `closed` of an installed action once its reboot was confirmed (success) or fell back
 *      (failure), the failure of an install that stopped; retried at every check until the server
 *      answers (a 410 or 404 counts: the action is closed or gone), so exactly once;
 *   2. polls the controller base (If-None-Match with the last ETag; a 304 reuses the last answer);
 *   3. follows the links: configData (PUT the device's attributes), cancelAction (accepted with
 *      closed+success while nothing of the action is installed; refused with `rejected` once it waits
 *      for its reboot), deploymentBase (the artifact that is an upkeep bundle becomes the offer; with
 *      update: skip it is downloaded, verified and kept, and `downloaded` sent, see HAWKBIT_KEPT_FILE).
 * The install of the offer (loop thread) records the action in hawkbit.json and reports `proceeding`
 * with throttled progress through the daemon's fetch engine. */

#include "source.h"

#define HAWKBIT_STATE_FILE "hawkbit.json"
#define HAWKBIT_STATE_MAX  (64u * 1024u)
/* A bundle downloaded before its install is allowed (download-only, or the server's maintenance window
 * closed) is kept, verified, in DATA_DIR as HAWKBIT_KEPT_FILE, described by HAWKBIT_KEPT_META (its
 * sha256, version, size, action), until a deployment of the same artifact installs it or another
 * replaces it; HAWKBIT_KEPT_RESERVE bytes of the file system stay free beside it. */
#define HAWKBIT_KEPT_FILE           "hawkbit-download.upk"
#define HAWKBIT_KEPT_META           "hawkbit-download.json"
#define HAWKBIT_KEPT_RESERVE        (UINT64_C(64) << 20)
#define HAWKBIT_TOKEN_MAX           4096u
#define HAWKBIT_SLEEP_MIN_SEC       30u /* the server's sleep is kept within these */
#define HAWKBIT_SLEEP_MAX_SEC       (24u * 3600u)
#define HAWKBIT_PROGRESS_USEC       (20ull * 1000000ull) /* at most one progress report per 20 s */
#define HAWKBIT_REQUEST_MSEC        (120u * 1000u)       /* one REST call, all included */
#define HAWKBIT_CANCEL_POLL_MIN_SEC 30u  /* during an install, a poll for its cancel at most this often */
#define HAWKBIT_CANCEL_POLL_MAX_SEC 300u /* and at least this often while the install progresses */

typedef struct Hawkbit Hawkbit;

int hawkbit_new(const Config *c, int cancel_fd, Hawkbit **ret, UpkErr *err);
Hawkbit *hawkbit_free(Hawkbit *h);
int hawkbit_check(Hawkbit *h, const char *current_version, Offer **ret, UpkErr *err);
/* The server's sleep, bounded; 0 before the first answer that had one. */
uint64_t hawkbit_sleep_usec(const Hawkbit *h);
/* After a failed check: the wait a 429 or 503 asked for (Retry-After, at most HAWKBIT_SLEEP_MAX_SEC);
 * 0 when none did. */
uint64_t hawkbit_retry_after_usec(const Hawkbit *h);
/* The request header lines a download of the offer sends (the Authorization); NULL-terminated, or NULL
 * for none. Reads the token file. */
int hawkbit_download_headers(Hawkbit *h, char ***ret, UpkErr *err);

/* Before a check (loop thread): the user's answer to the deployment `action` that waits for consent,
 * sent by that check (confirmationBase feedback confirmed, or denied with `reason`, may be NULL). */
int hawkbit_set_consent(Hawkbit *h, const char *action, bool confirm, const char *reason);

/* updatectl enable|disable: the server's auto-confirm is switched the same way by the next check. */
void hawkbit_set_auto_confirm(Hawkbit *h, bool enable);

/* Loop thread. */
void hawkbit_install_started(Hawkbit *h, FetchEngine *e, const Offer *o);
/* Also looks, at most every HAWKBIT_CANCEL_POLL_MIN_SEC to _MAX_SEC (the server's sleep), for a cancel
 * of the action: true once the server cancelled it (the caller stops the install). */
bool hawkbit_install_progress(Hawkbit *h, FetchEngine *e, uint64_t done, uint64_t total);
/* True when a report is due that the next check should deliver soon. */
bool hawkbit_install_finished(Hawkbit *h, FetchEngine *e, bool ok, const UpkErr *err);
