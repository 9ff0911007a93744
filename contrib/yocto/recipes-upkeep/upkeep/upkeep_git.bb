SUMMARY = "Secure over-the-air update agent for A/B Linux devices"
DESCRIPTION = "upkeepd checks for, downloads, verifies (CMS-signed bundles) and installs updates into the \
inactive A/B slot, then confirms the new system or falls back. updatectl talks to it, and on a build host \
makes and signs bundles."
HOMEPAGE = "https://upkeep.example.org/"
SECTION = "admin"
LICENSE = "LGPL-2.1-or-later"
# The license text, and the SPDX line of the sources that says "or later".
LIC_FILES_CHKSUM = "file://COPYING;md5=4fbd65380cdd255951079008b364516c \
                    file://lib/base/util.h;beginline=1;endline=1;md5=14007449932ed169474d694e94140b49"

# Point these at your upkeep repository and the release you ship.
UPKEEP_GIT_URI ?= "git://git.example.org/upkeep.git;protocol=https;branch=main"
SRC_URI = "${UPKEEP_GIT_URI}"
SRCREV ?= "${AUTOREV}"
PV = "0.1.0+git"
S = "${WORKDIR}/git"

# upkeep-native (the host tool, -Ddaemon=false) needs only these four (and meson, ninja, pkgconfig);
# the device's build adds the daemon's libraries.
DEPENDS = "openssl json-c libarchive zstd"
DEPENDS:append:class-target = " libinih systemd curl"

inherit meson pkgconfig systemd

# man: the man pages (needs scdoc-native, from meta-oe). tuf: the TUF repository update source
# ([source] type = tuf); leave it out for images that install from a local folder or by hand only.
PACKAGECONFIG ??= "tuf"
# upkeep-native with tuf has `updatectl repo`, to publish bundles in a TUF repository (repository.md)
PACKAGECONFIG:class-native ??= "tuf"
PACKAGECONFIG[man] = "-Dman=enabled,-Dman=disabled,scdoc-native"
PACKAGECONFIG[tuf] = "-Dtuf=true,-Dtuf=false"

# systemd 257 and later ship their own updatectl: set another name for upkeep's then.
UPKEEP_UPDATECTL_NAME ?= "updatectl"

EXTRA_OEMESON = "-Dtests=false -Dupdatectl-name=${UPKEEP_UPDATECTL_NAME}"
# The build host needs only updatectl, to make and sign bundles (upkeep-bundle.bbclass) and publish them.
EXTRA_OEMESON:append:class-native = " -Ddaemon=false"

# The boot backend the image's upkeep.conf uses ([boot] backend): pulls in its tools.
UPKEEP_BOOT_BACKEND ?= "uboot"
RDEPENDS:${PN}:append:class-target = " \
    ${@bb.utils.contains('UPKEEP_BOOT_BACKEND', 'uboot', 'libubootenv-bin', '', d)} \
    ${@bb.utils.contains('UPKEEP_BOOT_BACKEND', 'grub', 'grub-editenv', '', d)} \
"

SYSTEMD_SERVICE:${PN} = "upkeepd.service"
SYSTEMD_AUTO_ENABLE:${PN} = "enable"

# The device's trust and settings are the image author's: a .bbappend in your layer adds any of these to
# SRC_URI (see contrib/yocto/examples/), and they replace the defaults in /etc/upkeep/. Nothing here ships a
# keyring: an image without one refuses every bundle, which is the safe failure.
UPKEEP_ETC_FILES = "upkeep.conf keyring.pem keyring.crl root.json"
# Yocto 5.1 and later unpack file:// sources into UNPACKDIR; older releases into WORKDIR.
UPKEEP_FILES_DIR = "${@d.getVar('UNPACKDIR') or d.getVar('WORKDIR')}"

do_install:append:class-target() {
    install -d ${D}${sysconfdir}/upkeep
    for f in ${UPKEEP_ETC_FILES}; do
        if [ -f "${UPKEEP_FILES_DIR}/$f" ]; then
            install -m 0644 "${UPKEEP_FILES_DIR}/$f" "${D}${sysconfdir}/upkeep/$f"
        fi
    done
    if [ ! -f "${D}${sysconfdir}/upkeep/keyring.pem" ]; then
        bbwarn "upkeep: no keyring.pem in SRC_URI: the image will refuse every bundle until one is installed"
    fi
}

FILES:${PN} += " \
    ${nonarch_libdir}/upkeep \
    ${systemd_system_unitdir} \
    ${datadir}/dbus-1 \
    ${datadir}/polkit-1 \
    ${nonarch_libdir}/tmpfiles.d \
"
CONFFILES:${PN} = "${sysconfdir}/upkeep/upkeep.conf"

BBCLASSEXTEND = "native"
