################################################################################
#
# upkeep
#
################################################################################

UPKEEP_VERSION = 0.1.0
UPKEEP_SITE = https://git.example.org/upkeep.git
UPKEEP_SITE_METHOD = git
UPKEEP_LICENSE = LGPL-2.1+
UPKEEP_LICENSE_FILES = COPYING
UPKEEP_DEPENDENCIES = host-pkgconf openssl json-c libarchive zstd inih libcurl systemd
UPKEEP_CONF_OPTS = \
	-Dtests=false \
	-Dman=disabled \
	-Dupdatectl-name=$(call qstrip,$(BR2_PACKAGE_UPKEEP_UPDATECTL_NAME))

ifeq ($(BR2_PACKAGE_UPKEEP_TUF),y)
UPKEEP_CONF_OPTS += -Dtuf=true
else
UPKEEP_CONF_OPTS += -Dtuf=false
endif

# The host tool (-Ddaemon=false): updatectl's bundle and repo commands, with OpenSSL, json-c, libarchive and
# libzstd only (see ../../repository.md).
HOST_UPKEEP_DEPENDENCIES = host-pkgconf host-openssl host-json-c host-libarchive host-zstd
HOST_UPKEEP_CONF_OPTS = -Ddaemon=false -Dtuf=true -Dtests=false -Dman=disabled

UPKEEP_CONFIG = $(call qstrip,$(BR2_PACKAGE_UPKEEP_CONFIG))
UPKEEP_KEYRING = $(call qstrip,$(BR2_PACKAGE_UPKEEP_KEYRING))
UPKEEP_TUF_ROOT = $(call qstrip,$(BR2_PACKAGE_UPKEEP_TUF_ROOT))

# The device's configuration and trust anchors, when the configuration names them.
define UPKEEP_INSTALL_DEVICE_FILES
	$(if $(UPKEEP_CONFIG),$(INSTALL) -D -m 0644 $(UPKEEP_CONFIG) $(TARGET_DIR)/etc/upkeep/upkeep.conf)
	$(if $(UPKEEP_KEYRING),$(INSTALL) -D -m 0644 $(UPKEEP_KEYRING) $(TARGET_DIR)/etc/upkeep/keyring.pem)
	$(if $(UPKEEP_TUF_ROOT),$(INSTALL) -D -m 0644 $(UPKEEP_TUF_ROOT) $(TARGET_DIR)/etc/upkeep/root.json)
endef
UPKEEP_POST_INSTALL_TARGET_HOOKS += UPKEEP_INSTALL_DEVICE_FILES

# meson installs the unit into /usr/lib/systemd/system; Buildroot's presets enable it.

$(eval $(meson-package))
$(eval $(host-meson-package))
