# Example for your own layer: the device's configuration and trust anchors for upkeep.
# Put the files next to this .bbappend in files/ (they are yours; none ships with upkeep):
#   upkeep.conf   [device] compatible, the slots, [boot] backend, [source] (see upkeep.conf(5))
#   keyring.pem   the CA certificate(s) that sign your bundles (PEM)
#   keyring.crl   optional: a CRL of that CA
#   root.json     the TUF root metadata, for [source] type = tuf
FILESEXTRAPATHS:prepend := "${THISDIR}/files:"
SRC_URI += "file://upkeep.conf file://keyring.pem"
# SRC_URI += "file://root.json file://keyring.crl"

UPKEEP_BOOT_BACKEND = "uboot"
PACKAGECONFIG:append = " man"
