/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzz the hawkBit DDI JSON parser (lib/source/hawkbit-ddi.c): the first byte picks the document (a
 * poll answer and an error answer's ExceptionInfo, a deployment, a confirmation, a cancel order and
 * confirmationBase's answer, a sleep value); the feedback writer gets what was parsed. */
#include "fuzz.h"
#include "hawkbit-ddi.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        UpkErr err = {};
        int r = 0;

        if (size < 1 || size > 2 * DDI_RESPONSE_MAX)
                return 0;
        switch (data[0] % 5) {
        case 0: {
                DdiPoll p = {};
                char *reason = NULL;

                r = ddi_parse_poll(data + 1, size - 1, &p, &err);
                ddi_poll_done(&p);
                /* the same bytes as an error answer's body */
                if (ddi_parse_exception(data + 1, size - 1, &reason) >= 0 && reason) {
                        if (strlen(reason) > DDI_REASON_MAX + 8)
                                abort();
                        for (const char *q = reason; *q; q++)
                                if ((unsigned char)*q < 0x20 || (unsigned char)*q >= 0x7f)
                                        abort(); /* printable ASCII only */
                }
                free(reason);
                break;
        }
        case 1:
        case 2: {
                DdiDeployment d = {};

                r = ddi_parse_deployment(data + 1, size - 1,
                                         data[0] % 5 == 1 ? "deployment" : "confirmation", &d, &err);
                if (r >= 0) {
                        const char *details[DDI_ARTIFACTS_MAX + 1] = {};

                        for (size_t i = 0; i < d.n_artifacts; i++)
                                details[i] = d.artifacts[i].filename;
                        free(ddi_feedback_json(d.id, "proceeding", "none", d.n_artifacts, 7, details));
                        const char *pairs[] = { d.id, d.n_artifacts ? d.artifacts[0].filename : "x", NULL };
                        free(ddi_config_data_json(pairs));
                }
                ddi_deployment_done(&d);
                break;
        }
        case 3: {
                DdiAutoConfirm ac = {};
                UpkErr err2 = {};
                char *stop = NULL;
                int r2;

                r = ddi_parse_cancel(data + 1, size - 1, &stop, &err);
                free(stop);
                /* the same bytes as confirmationBase's answer */
                r2 = ddi_parse_auto_confirm(data + 1, size - 1, &ac, &err2);
                ddi_auto_confirm_done(&ac);
                if (r2 < 0 && r2 != -ENOMEM && !err2.msg[0])
                        abort();
                break;
        }
        case 4: {
                char buf[16] = {};
                uint64_t sec;

                memcpy(buf, data + 1, size - 1 < sizeof(buf) - 1 ? size - 1 : sizeof(buf) - 1);
                if (ddi_parse_sleep(buf, &sec) >= 0 && sec > 24 * 3600)
                        abort();
                return 0;
        }
        }
        if (r < 0 && r != -ENOMEM && !err.msg[0])
                abort(); /* every failure says why */
        return 0;
}
