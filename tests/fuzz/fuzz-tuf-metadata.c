/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzz the TUF metadata parser (every role type) and, for a root, the self-signature check that
 * the client does on a new root, and a targets role's delegated paths. The first byte picks the role type.
 */
#include "fuzz.h"
#include "tuf-metadata.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        _cleanup_(tuf_metadata_freep) TufMetadata *m = NULL;
        UpkErr err = {};
        TufRoleType type;

        if (size < 1 || size > 1024 * 1024)
                return 0;
        type = (TufRoleType)(data[0] % _TUF_ROLE_TYPE_MAX);
        if (tuf_metadata_parse(data + 1, size - 1, type, NULL, &m, &err) < 0) {
                if (!err.msg[0])
                        abort(); /* every failure says why */
                return 0;
        }
        upk_err_clear(&err);
        if (type == TUF_ROLE_ROOT && tuf_metadata_verify(m, m, &err) < 0 && !err.msg[0])
                abort();
        (void)tuf_metadata_expired(m, 1764000000);
        (void)tuf_metadata_find_meta(m, "targets.json");
        (void)tuf_metadata_find_target(m, "bundle.upk");
        /* a targets role's delegations: the path patterns and hash prefixes against target names */
        for (size_t i = 0; i < m->n_roles; i++) {
                (void)tuf_role_matches_path(&m->roles[i], "acme-gw-1.2.0.upk");
                (void)tuf_role_matches_path(&m->roles[i], "gw/eu/acme-x.upk");
        }
        return 0;
}
