/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* upkeep.conf and conf.d/NAME.conf (INI, read with libinih). Later files override earlier keys. Every value
 * is validated; a bad one fails with UPK_ERR_CONFIG and a message "FILE:LINE: [section] key: reason".
 * Unknown sections and keys are collected as warnings (the daemon logs them) and otherwise ignored. */

#include "error.h"

#define CONFIG_FILE_SIZE_MAX  (256u * 1024u)
#define CONFIG_FILES_MAX      64 /* conf.d entries */
#define CONFIG_SLOTS_MAX      32 /* [slot.*.*] sections */
#define CONFIG_WARNINGS_MAX   64
#define CONFIG_VALUE_MAX      4096
#define CONFIG_ATTRIBUTES_MAX 64  /* [attributes] keys */
#define CONFIG_ATTRIBUTE_MAX  128 /* bytes of an attribute's name or value */

/* UPK_CONF_DIR, UPK_STATE_DIR and UPK_HANDLERS_DIR come from the build's directory options (meson.build):
 * /etc/upkeep, /var/lib/upkeep and /usr/lib/upkeep/handlers with --prefix=/usr. The comments below name
 * that layout. */
#define CONFIG_DEFAULT_PATH         UPK_CONF_DIR "/upkeep.conf"
#define CONFIG_DEFAULT_DATA_DIR     UPK_STATE_DIR
#define CONFIG_DEFAULT_KEYRING      UPK_CONF_DIR "/keyring.pem"
#define CONFIG_DEFAULT_HEALTH_DIR   UPK_CONF_DIR "/health.d"
#define CONFIG_DEFAULT_HANDLERS_DIR UPK_HANDLERS_DIR

/* The most boot attempts [boot] attempts may give a slot (the boot backends check it again). */
#define BOOT_ATTEMPTS_MAX 16

typedef enum BootBackendType {
        BOOT_BACKEND_FILE,
        BOOT_BACKEND_UBOOT,
        BOOT_BACKEND_GRUB,
        BOOT_BACKEND_SCRIPT,
        _BOOT_BACKEND_MAX,
        _BOOT_BACKEND_INVALID = -EINVAL,
} BootBackendType;

typedef enum SourceType {
        SOURCE_NONE,
        SOURCE_TUF,
        SOURCE_HAWKBIT,
        SOURCE_LOCAL,
        _SOURCE_MAX,
        _SOURCE_INVALID = -EINVAL,
} SourceType;

typedef enum HawkbitAuth {
        HAWKBIT_AUTH_TARGET_TOKEN,
        HAWKBIT_AUTH_GATEWAY_TOKEN,
        HAWKBIT_AUTH_NONE, /* a client certificate (mTLS) or nothing */
        _HAWKBIT_AUTH_MAX,
        _HAWKBIT_AUTH_INVALID = -EINVAL,
} HawkbitAuth;

typedef enum AutoInstall {
        AUTO_INSTALL_ALL,
        AUTO_INSTALL_SECURITY,
        AUTO_INSTALL_NONE,
        _AUTO_INSTALL_MAX,
        _AUTO_INSTALL_INVALID = -EINVAL,
} AutoInstall;

typedef enum RebootPolicy {
        REBOOT_AUTO,
        REBOOT_MANUAL,
        _REBOOT_MAX,
        _REBOOT_INVALID = -EINVAL,
} RebootPolicy;

typedef struct SlotConfig {
        char *class;    /* [slot.CLASS.NAME]: [a-z0-9_-]{1,64} */
        char *name;     /* "A" or "B" */
        char *device;   /* absolute path: block device, plain file or directory */
        char *bootname; /* the name the boot backend knows it by; default: name */
        uint64_t size;  /* optional capacity in bytes ("size=", with K/M/G suffixes); 0: the device's */
        char *fstype;   /* archive onto a block slot: the mkfs type; default ext4 */
} SlotConfig;

typedef struct Config {
        /* [device] */
        char *compatible;   /* required */
        char *version_file; /* default /etc/os-release */
        char *data_dir;     /* default /var/lib/upkeep */
        /* [keyring] */
        char *keyring;      /* default /etc/upkeep/keyring.pem */
        char *crl;          /* optional */
        bool allow_any_eku; /* default no: signers need the codeSigning extended key usage */
        /* [boot] */
        BootBackendType boot_backend; /* default file */
        char *boot_state_file;        /* file backend; default DATA_DIR/bootenv */
        char *boot_booted;            /* optional override: a slot name */
        char *boot_script;            /* script backend: the program */
        char *boot_grubenv;           /* grub backend; default /boot/grub/grubenv */
        char *boot_uboot_config;      /* uboot backend: fw_env.config, optional */
        unsigned boot_attempts;       /* attempts a good slot gets; default 3 */
        /* [slot.CLASS.A|B] */
        SlotConfig *slots;
        size_t n_slots;
        /* [source] */
        SourceType source_type; /* default none */
        char *source_url, *source_metadata_url, *source_targets_url, *source_root, *source_ca,
                *source_client_cert, *source_client_key, *source_proxy, *source_dir;
        char *source_tenant;         /* hawkbit: default DEFAULT */
        char *source_controller_id;  /* hawkbit: default the machine id */
        HawkbitAuth source_auth;     /* hawkbit: default target-token */
        char *source_token_file;     /* hawkbit: the token (target or gateway) */
        uint64_t poll_interval_usec; /* default 6h */
        uint64_t jitter_usec;        /* default 30m */
        /* [policy] */
        AutoInstall auto_install; /* default all */
        RebootPolicy reboot;      /* default auto */
        bool has_maintenance_window;
        unsigned window_start_min, window_end_min; /* minutes after midnight, local time */
        bool allow_downgrade;                      /* default no */
        char *support_end;                         /* YYYY-MM-DD fallback when no manifest says */
        /* [health] */
        char *health_dir;             /* default /etc/upkeep/health.d */
        uint64_t health_timeout_usec; /* default 60s per check */
        /* [install] */
        char *handlers_dir;    /* default /usr/lib/upkeep/handlers */
        char *allowed_targets; /* space-separated absolute path prefixes a payload's target must be
                                * under; NULL: anywhere but the slots and upkeep's own files */
        bool delta;            /* default yes: from a URL, fetch only the blocks the booted slot lacks */

        /* [attributes]: what the device tells an update server about itself (hawkBit's configData)
         * beside what upkeep knows: name, value, name, value, ..., NULL */
        char **attributes;
        size_t n_attributes; /* pairs */

        char *config_path; /* the main file that was loaded (its folder holds conf.d) */

        char **warnings; /* "FILE:LINE: unknown key \"k\" in [section], ignored", "FILE:LINE: [section] k
                          * is set again (first on line N); the value on line LINE wins"; at most
                          * CONFIG_WARNINGS_MAX, then "... and N more unknown keys, ignored" and "... and
                          * N more keys set twice in one file" */
        size_t n_warnings;
} Config;

/* Load `path` (default CONFIG_DEFAULT_PATH when NULL), then the *.conf files of the conf.d folder
 * beside it in lexical order. A missing main file is an error; a missing conf.d is not. */
int config_load(const char *path, Config **ret, UpkErr *err);
Config *config_free(Config *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(Config *, config_free);

/* The slot NAME ("A" or "B") of CLASS, or NULL. */
const SlotConfig *config_find_slot(const Config *c, const char *class, const char *name);

const char *boot_backend_type_to_string(BootBackendType t);
BootBackendType boot_backend_type_from_string(const char *s);
const char *source_type_to_string(SourceType t);
SourceType source_type_from_string(const char *s);
const char *hawkbit_auth_to_string(HawkbitAuth a);
HawkbitAuth hawkbit_auth_from_string(const char *s);
const char *auto_install_to_string(AutoInstall a);
AutoInstall auto_install_from_string(const char *s);
const char *reboot_policy_to_string(RebootPolicy r);
RebootPolicy reboot_policy_from_string(const char *s);
