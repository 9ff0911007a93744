#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# systemd-analyze verify on the built upkeepd.service, with ExecStart= pointed at the built binary (verify
# checks that the program exists). usage: verify-unit.sh UNIT UPKEEPD
set -eu
unit=$1
upkeepd=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
sed "s|^ExecStart=.*|ExecStart=$upkeepd|" "$unit" > "$dir/upkeepd.service"
# --man=no: the man pages named in Documentation= are not installed in the build tree.
out=$(systemd-analyze verify --man=no "$dir/upkeepd.service" 2>&1) || { echo "$out"; exit 1; }
# verify exits 0 on some warnings: none are accepted.
if [ -n "$out" ]; then
        echo "$out"
        exit 1
fi
echo "upkeepd.service: verified"
