# upkeep-bundle: build and sign an upkeep bundle (.upk) from an image, with updatectl from upkeep-native.
#
# In an image recipe (or with IMAGE_CLASSES += "upkeep-bundle" in local.conf):
#
#   inherit upkeep-bundle
#   UPKEEP_BUNDLE_COMPATIBLE = "acme-gw"                  # = [device] compatible on the devices
#   UPKEEP_BUNDLE_SIGNING_CERT = "/secure/signer.pem"     # outside the layer: the key never goes into git
#   UPKEEP_BUNDLE_SIGNING_KEY = "/secure/signer.key"
#   UPKEEP_BUNDLE_SIGNING_CHAIN = "/secure/intermediate.pem"   # if the signer is issued by an intermediate
#   UPKEEP_BUNDLE_KEYRING = "/secure/ca.pem"              # optional: verify the bundle right after signing
#
# The image's ${UPKEEP_BUNDLE_IMAGE_FSTYPE} file becomes one payload for the slot class
# ${UPKEEP_BUNDLE_SLOT_CLASS}; the bundle lands next to the image in DEPLOY_DIR_IMAGE as
# ${UPKEEP_BUNDLE_NAME}, with a link ${UPKEEP_BUNDLE_LINK_NAME}. The build time in the manifest is
# SOURCE_DATE_EPOCH, so the same image gives the same bundle. See upkeep-bundle(5) for the manifest.

UPKEEP_BUNDLE_COMPATIBLE ?= "${MACHINE}"
UPKEEP_BUNDLE_VERSION ?= "${DISTRO_VERSION}"
UPKEEP_BUNDLE_DESCRIPTION ?= "${SUMMARY}"
UPKEEP_BUNDLE_SLOT_CLASS ?= "rootfs"
UPKEEP_BUNDLE_PAYLOAD_NAME ?= "rootfs"
UPKEEP_BUNDLE_HANDLER ?= "raw"
UPKEEP_BUNDLE_IMAGE_FSTYPE ?= "ext4"
# zstd, xz, gzip or none
UPKEEP_BUNDLE_COMPRESSION ?= "zstd"
# security, feature or mixed; advisories: space-separated IDs (CVE-...)
UPKEEP_BUNDLE_SECURITY_TYPE ?= "mixed"
UPKEEP_BUNDLE_ADVISORIES ?= ""
# YYYY-MM-DD: the end of security support the devices report; empty: leave it out
UPKEEP_BUNDLE_SUPPORT_END ?= ""
UPKEEP_BUNDLE_SUPPORT_URL ?= ""
UPKEEP_BUNDLE_MIN_VERSION ?= ""
UPKEEP_BUNDLE_SIGNING_CERT ?= ""
UPKEEP_BUNDLE_SIGNING_KEY ?= ""
UPKEEP_BUNDLE_SIGNING_CHAIN ?= ""
UPKEEP_BUNDLE_KEYRING ?= ""
# as upkeep-native installs it (its UPKEEP_UPDATECTL_NAME)
UPKEEP_BUNDLE_UPDATECTL ?= "updatectl"
UPKEEP_BUNDLE_NAME ?= "${IMAGE_NAME}.upk"
UPKEEP_BUNDLE_LINK_NAME ?= "${IMAGE_LINK_NAME}.upk"
UPKEEP_BUNDLE_WORKDIR = "${WORKDIR}/upkeep-bundle"

UPKEEP_BUNDLE_COMPRESSION_NATIVE = "${@ {'zstd': 'zstd-native', 'xz': 'xz-native', 'gzip': 'gzip-native'}.get(d.getVar('UPKEEP_BUNDLE_COMPRESSION'), '')}"
do_image_complete[depends] += "upkeep-native:do_populate_sysroot \
    ${@'%s:do_populate_sysroot' % d.getVar('UPKEEP_BUNDLE_COMPRESSION_NATIVE') if d.getVar('UPKEEP_BUNDLE_COMPRESSION_NATIVE') else ''}"
do_image_complete[vardeps] += "UPKEEP_BUNDLE_COMPATIBLE UPKEEP_BUNDLE_VERSION UPKEEP_BUNDLE_SLOT_CLASS \
    UPKEEP_BUNDLE_HANDLER UPKEEP_BUNDLE_COMPRESSION UPKEEP_BUNDLE_SECURITY_TYPE UPKEEP_BUNDLE_ADVISORIES \
    UPKEEP_BUNDLE_SUPPORT_END UPKEEP_BUNDLE_MIN_VERSION UPKEEP_BUNDLE_SIGNING_CERT UPKEEP_BUNDLE_SIGNING_CHAIN"

# Runs inside do_image_complete, before its output in IMGDEPLOYDIR is deployed.
IMAGE_POSTPROCESS_COMMAND += "upkeep_bundle_manifest upkeep_bundle_create"

python upkeep_bundle_manifest() {
    import datetime
    import json
    import os

    compression = d.getVar('UPKEEP_BUNDLE_COMPRESSION')
    if compression not in ('zstd', 'xz', 'gzip', 'none'):
        bb.fatal('UPKEEP_BUNDLE_COMPRESSION = "%s": not zstd, xz, gzip or none' % compression)
    ext = {'zstd': '.zst', 'xz': '.xz', 'gzip': '.gz', 'none': ''}[compression]
    payload_file = '%s.%s%s' % (d.getVar('UPKEEP_BUNDLE_PAYLOAD_NAME'), d.getVar('UPKEEP_BUNDLE_IMAGE_FSTYPE'), ext)
    epoch = int(d.getVar('SOURCE_DATE_EPOCH') or 0)
    build = datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')

    payload = {
        'name': d.getVar('UPKEEP_BUNDLE_PAYLOAD_NAME'),
        'file': payload_file,
        'handler': d.getVar('UPKEEP_BUNDLE_HANDLER'),
        'slot_class': d.getVar('UPKEEP_BUNDLE_SLOT_CLASS'),
    }
    if compression != 'none':
        payload['compression'] = compression
    manifest = {
        'format': 1,
        'compatible': d.getVar('UPKEEP_BUNDLE_COMPATIBLE'),
        'version': d.getVar('UPKEEP_BUNDLE_VERSION'),
        'build': build,
        'security': {
            'type': d.getVar('UPKEEP_BUNDLE_SECURITY_TYPE'),
            'advisories': (d.getVar('UPKEEP_BUNDLE_ADVISORIES') or '').split(),
        },
        'payloads': [payload],
    }
    if d.getVar('UPKEEP_BUNDLE_DESCRIPTION'):
        manifest['description'] = d.getVar('UPKEEP_BUNDLE_DESCRIPTION')
    if d.getVar('UPKEEP_BUNDLE_MIN_VERSION'):
        manifest['min_version'] = d.getVar('UPKEEP_BUNDLE_MIN_VERSION')
    if d.getVar('UPKEEP_BUNDLE_SUPPORT_END'):
        manifest['support'] = {'end': d.getVar('UPKEEP_BUNDLE_SUPPORT_END')}
        if d.getVar('UPKEEP_BUNDLE_SUPPORT_URL'):
            manifest['support']['url'] = d.getVar('UPKEEP_BUNDLE_SUPPORT_URL')

    workdir = d.getVar('UPKEEP_BUNDLE_WORKDIR')
    bb.utils.remove(workdir, recurse=True)
    bb.utils.mkdirhier(workdir)
    with open(os.path.join(workdir, 'manifest.json'), 'w') as f:
        json.dump(manifest, f, indent=2)
        f.write('\n')
    with open(os.path.join(workdir, 'payload-file'), 'w') as f:
        f.write(payload_file + '\n')
}

upkeep_bundle_create() {
    if [ -z "${UPKEEP_BUNDLE_SIGNING_CERT}" ] || [ -z "${UPKEEP_BUNDLE_SIGNING_KEY}" ]; then
        bbfatal "upkeep-bundle: set UPKEEP_BUNDLE_SIGNING_CERT and UPKEEP_BUNDLE_SIGNING_KEY"
    fi
    w="${UPKEEP_BUNDLE_WORKDIR}"
    image="${IMGDEPLOYDIR}/${IMAGE_NAME}.${UPKEEP_BUNDLE_IMAGE_FSTYPE}"
    [ -f "$image" ] || bbfatal "upkeep-bundle: no $image: is ${UPKEEP_BUNDLE_IMAGE_FSTYPE} in IMAGE_FSTYPES?"
    payload="$w/$(cat "$w/payload-file")"
    case "${UPKEEP_BUNDLE_COMPRESSION}" in
    zstd) zstd -q -19 -T0 -f "$image" -o "$payload" ;;
    xz) xz -T0 -9 -c "$image" >"$payload" ;;
    gzip) gzip -n -9 -c "$image" >"$payload" ;;
    none) cp "$image" "$payload" ;;
    esac
    set -- --manifest "$w/manifest.json" --cert "${UPKEEP_BUNDLE_SIGNING_CERT}" --key "${UPKEEP_BUNDLE_SIGNING_KEY}"
    if [ -n "${UPKEEP_BUNDLE_SIGNING_CHAIN}" ]; then
        set -- "$@" --chain "${UPKEEP_BUNDLE_SIGNING_CHAIN}"
    fi
    ${UPKEEP_BUNDLE_UPDATECTL} bundle create "$@" -o "${IMGDEPLOYDIR}/${UPKEEP_BUNDLE_NAME}"
    if [ -n "${UPKEEP_BUNDLE_KEYRING}" ]; then
        ${UPKEEP_BUNDLE_UPDATECTL} bundle verify --keyring "${UPKEEP_BUNDLE_KEYRING}" "${IMGDEPLOYDIR}/${UPKEEP_BUNDLE_NAME}"
    fi
    if [ "${UPKEEP_BUNDLE_LINK_NAME}" != "${UPKEEP_BUNDLE_NAME}" ]; then
        ln -sf "${UPKEEP_BUNDLE_NAME}" "${IMGDEPLOYDIR}/${UPKEEP_BUNDLE_LINK_NAME}"
    fi
}
