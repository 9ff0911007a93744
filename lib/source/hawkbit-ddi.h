/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The JSON of Eclipse hawkBit's DDI API (shared/reference/hawkbit-ddi.md) that the hawkBit source reads
 * and writes: the poll answer, a deployment (deploymentBase, confirmationBase), a cancel order, and the
 * feedback and configData bodies. Answers are hostile input: parsed strictly (lib/base/json-util.h),
 * within the limits below; unknown keys are ignored as hawkBit's own clients must. Errors: -EBADMSG
 * (UPK_ERR_NETWORK, "hawkBit WHAT: KEYPATH: reason") or -ENOMEM. */

#include <stdbool.h>
#include <stdint.h>

#include "error.h"

#define DDI_RESPONSE_MAX   (256u * 1024u) /* bytes of one JSON answer */
#define DDI_DEPTH_MAX      16
#define DDI_HREF_MAX       4096
#define DDI_ID_MAX         64
#define DDI_NAME_MAX       256 /* file names, versions, chunk names and parts */
#define DDI_CHUNKS_MAX     32
#define DDI_ARTIFACTS_MAX  64 /* over all chunks */
#define DDI_DETAILS_MAX    16 /* detail lines of one feedback */
#define DDI_DETAIL_MAX     512
#define DDI_SLEEP_MAX_SEC  (24u * 3600u - 1u) /* 23:59:59, hawkBit's own maximum */
#define DDI_ATTRIBUTES_MAX 100
#define DDI_ATTRIBUTE_MAX  128 /* bytes of a key or value */

typedef enum DdiHandling {
        DDI_SKIP,
        DDI_ATTEMPT,
        DDI_FORCED,
        _DDI_HANDLING_MAX,
        _DDI_HANDLING_INVALID = -EINVAL,
} DdiHandling;

typedef enum DdiWindow {
        DDI_WINDOW_NONE, /* no maintenance window defined */
        DDI_WINDOW_AVAILABLE,
        DDI_WINDOW_UNAVAILABLE,
        _DDI_WINDOW_MAX,
        _DDI_WINDOW_INVALID = -EINVAL,
} DdiWindow;

/* The poll answer: the server's sleep and the links it gives (NULL when absent). */
typedef struct DdiPoll {
        uint64_t sleep_sec; /* 0: missing or malformed */
        char *deployment_href, *cancel_href, *confirmation_href, *installed_href, *config_data_href;
} DdiPoll;

typedef struct DdiArtifact {
        char *filename;
        char *chunk_part, *chunk_name, *chunk_version;
        char *sha256; /* lower-case hex, NULL when the server gives none */
        uint64_t size;
        bool has_size;
        char *href;     /* the "download" link, else "download-http"; NULL when neither */
        bool encrypted; /* its chunk says "encrypted": true (hawkBit's artifact encryption) */
} DdiArtifact;

typedef struct DdiDeployment {
        char *id;
        DdiHandling download, update;
        DdiWindow window;
        DdiArtifact *artifacts;
        size_t n_artifacts;
} DdiDeployment;

void ddi_poll_done(DdiPoll *p);
void ddi_deployment_done(DdiDeployment *d);

int ddi_parse_poll(const void *data, size_t size, DdiPoll *ret, UpkErr *err);
/* `key`: "deployment" (deploymentBase, installedBase) or "confirmation" (confirmationBase/{id}). */
int ddi_parse_deployment(const void *data, size_t size, const char *key, DdiDeployment *ret, UpkErr *err);
/* GET confirmationBase (no action): whether the server confirms deployments by itself, and the link
 * that switches it (the other one is NULL). */
typedef struct DdiAutoConfirm {
        bool active;
        char *activate_href, *deactivate_href;
} DdiAutoConfirm;
int ddi_parse_auto_confirm(const void *data, size_t size, DdiAutoConfirm *ret, UpkErr *err);
void ddi_auto_confirm_done(DdiAutoConfirm *a);
/* A cancel order: the action to stop (cancelAction.stopId). */
int ddi_parse_cancel(const void *data, size_t size, char **ret_stop_id, UpkErr *err);
/* The server's reason in an error answer (hawkBit's ExceptionInfo: {"errorCode", "message"}): "CODE:
 * MESSAGE" (either alone when the other is missing), printable and at most DDI_REASON_MAX bytes, into
 * *ret; 0 and NULL when the body is not such a document. -ENOMEM. */
#define DDI_REASON_MAX 200
int ddi_parse_exception(const void *data, size_t size, char **ret);
/* "HH:MM:SS" (hours 0-23): seconds; -EINVAL otherwise. */
int ddi_parse_sleep(const char *s, uint64_t *ret);

/* A feedback body: {"id": ACTION, "status": {"execution", "result": {"finished"[, "progress"]},
 * "details"}}; progress is sent when `of` > 0; details are cut to DDI_DETAILS_MAX lines of
 * DDI_DETAIL_MAX bytes. No timestamp: the device's clock is not trusted to be right. */
char *ddi_feedback_json(const char *action_id, const char *execution, const char *finished, uint64_t cnt,
                        uint64_t of, const char *const *details);
/* A confirmationBase feedback: {"confirmation": "confirmed" | "denied", "details": [...]}. */
char *ddi_confirmation_json(bool confirmed, const char *const *details);
/* {"mode": "merge", "data": {...}} from key/value pairs (NULL-terminated: k1, v1, k2, v2, ..., NULL);
 * pairs whose key or value hawkBit would refuse (too long, characters outside its set) are left out. */
char *ddi_config_data_json(const char *const *pairs);

const char *ddi_handling_to_string(DdiHandling h);
DdiHandling ddi_handling_from_string(const char *s);
