/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Private to boot*.c: the backend object, the per-backend operations table, the boot-counting model that
 * the file and uboot backends share, and the program runner the uboot, grub and script backends use. */

#include <sys/types.h>

#include "boot.h"
#include "format.h"
#include "process.h"

#define BOOT_TIMEOUT_USEC_DEFAULT (10u * 1000u * 1000u)
#define BOOT_TIMEOUT_MS_MAX       600000u
#define BOOT_TOOL_OUTPUT_MAX      (64u * 1024u) /* fw_printenv, grub-editenv */
#define BOOT_SCRIPT_OUTPUT_MAX    (4u * 1024u)  /* the script backend's program */
#define BOOT_STATE_FILE_MAX       (64u * 1024u) /* the file backend's state file */
#define BOOT_VALUE_MAX            1024u         /* one variable's value */
#define BOOT_KEY_MAX              80u           /* one variable's name */
#define BOOT_ATTEMPTS_DEFAULT     3u

typedef struct BootVarsStore BootVarsStore;

typedef struct BootOps {
        int (*init)(BootBackend *b, const Config *c, UpkErr *err);
        const BootVarsStore
                *vars; /* file, uboot: where the BootVars live; the operations are boot_vars_op_* */
        int (*mark_bad)(BootBackend *b, size_t slot, UpkErr *err);
        int (*set_try)(BootBackend *b, size_t slot, UpkErr *err);
        int (*mark_good)(BootBackend *b, size_t slot, UpkErr *err);
        int (*get_primary)(BootBackend *b, size_t *ret, UpkErr *err);
        int (*get_state)(BootBackend *b, size_t slot, SlotState *ret, UpkErr *err);
        int (*get_current)(BootBackend *b, size_t *ret, UpkErr *err);
} BootOps;

struct BootBackend {
        BootBackendType type;
        const BootOps *ops;
        char **slots; /* bootnames, validated */
        size_t n_slots;
        unsigned attempts;
        uint64_t timeout_usec;
        char *path; /* file: state file; grub: grubenv; script: the program; uboot: fw_env.config or NULL */
        char *state_file; /* script: exported to the program as UPKEEP_BOOT_STATE_FILE (may be NULL) */
};

extern const BootOps boot_file_ops;
extern const BootOps boot_uboot_ops;
extern const BootOps boot_grub_ops;
extern const BootOps boot_script_ops;

/* A bootname: 1..BOOT_SLOT_NAME_MAX of [A-Za-z0-9_] (it becomes part of variable names). */
bool boot_slot_name_valid(const char *s);
/* Index of `name` in `slots`, or -ENOENT. */
int boot_slot_index(char *const *slots, size_t n_slots, const char *name);

/* Parse a space-separated slot order ("A B") into indices; every entry must be one of `slots`, once.
 * `where` names the source for the message ("FILE:LINE: BOOT_ORDER"). */
int boot_order_parse(const char *s, char *const *slots, size_t n_slots, size_t *ret_order, size_t *ret_n,
                     const char *where, UpkErr *err);
/* "A B" from indices; NULL on OOM. */
char *boot_order_format(char *const *slots, const size_t *order, size_t n);
void boot_order_move_front(size_t *order, size_t *n, size_t slot);
void boot_order_move_back(size_t *order, size_t *n, size_t slot);

/* The boot-counting model of the file and uboot backends (see boot.h). */
typedef struct BootVars {
        char *const *slots;
        size_t n_slots;
        size_t order[BOOT_SLOTS_MAX];
        size_t n_order;
        unsigned left[BOOT_SLOTS_MAX];
        bool trying[BOOT_SLOTS_MAX];
        ssize_t booted; /* index into slots; -1 when unknown */
} BootVars;

/* Look a variable up: its value or NULL when unset; `where` gets a location for messages. */
typedef const char *(*boot_vars_lookup_t)(void *userdata, const char *key, char *where, size_t where_size);

/* Fill `v` from the variables BOOT_ORDER, BOOT_<S>_LEFT, BOOT_<S>_TRY, BOOTED. */
int boot_vars_load(BootVars *v, char *const *slots, size_t n_slots, unsigned attempts,
                   boot_vars_lookup_t lookup, void *userdata, UpkErr *err);
/* Play the bootloader once; returns the booted index or -ENOENT (empty order). */
ssize_t boot_vars_boot(BootVars *v);

/* Where a backend keeps the BootVars variables (the file backend's state file, the U-Boot environment).
 * `load` reads them, keeping what `store` needs in a context it allocates; `store` writes `v` back;
 * `free_ctx` drops the context. On top of it, the operations are the shared boot_vars_op_* below. */
struct BootVarsStore {
        int (*load)(BootBackend *b, void **ret_ctx, BootVars *v, UpkErr *err);
        int (*store)(BootBackend *b, void *ctx, const BootVars *v, UpkErr *err);
        void (*free_ctx)(void *ctx);
        const char *where;     /* names the store in messages; NULL: the backend's path */
        const char *no_booted; /* why get_current cannot tell, when nothing recorded BOOTED */
};

int boot_vars_op_mark_bad(BootBackend *b, size_t slot, UpkErr *err);
int boot_vars_op_set_try(BootBackend *b, size_t slot, UpkErr *err);
int boot_vars_op_mark_good(BootBackend *b, size_t slot, UpkErr *err);
int boot_vars_op_get_primary(BootBackend *b, size_t *ret, UpkErr *err);
int boot_vars_op_get_state(BootBackend *b, size_t slot, SlotState *ret, UpkErr *err);
int boot_vars_op_get_current(BootBackend *b, size_t *ret, UpkErr *err);

/* The variables as KEY/VALUE pairs to store: BOOT_ORDER, then BOOT_<S>_LEFT and BOOT_<S>_TRY per slot
 * (a TRY of 0 is NULL: remove/unset), then BOOTED when known and `with_booted`. Strings are owned by the
 * caller: free with boot_kv_free(). */
typedef struct BootKV {
        char *key;
        char *value; /* NULL: unset */
} BootKV;
int boot_vars_to_kv(const BootVars *v, bool with_booted, BootKV **ret, size_t *ret_n);
void boot_kv_free(BootKV *kv, size_t n);
