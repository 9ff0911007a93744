#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# An example program for upkeep's "script" boot backend ([boot] backend = script, script = PATH).
# It keeps the same state as the "file" backend: a KEY=VALUE file with BOOT_ORDER="A B",
# BOOT_<S>_LEFT=N (attempts left) and BOOT_<S>_TRY=1 (set to try, not confirmed yet), so
# upkeep-bootsim can play the bootloader on it. A real one would talk to the bootloader instead.
#
# upkeep calls it as:
#   PROG get-primary          print the slot the bootloader boots next
#   PROG set-primary S        S boots next, for one attempt only (try once)
#   PROG get-state S          print good, bad or try
#   PROG set-state S good     S is confirmed: it becomes the primary with its full attempts
#   PROG set-state S bad      S is not booted any more
#   PROG get-current          print the booted slot, or exit 3 when it is not known
# and sets UPKEEP_BOOT_SLOTS ("A B"), UPKEEP_BOOT_ATTEMPTS (3) and, when [boot] state-file is set,
# UPKEEP_BOOT_STATE_FILE. Any other exit status than 0 is a failure; say why on stderr.

set -eu

STATE=${UPKEEP_BOOT_STATE_FILE:-/var/lib/upkeep/bootenv}
SLOTS=${UPKEEP_BOOT_SLOTS:-A B}
ATTEMPTS=${UPKEEP_BOOT_ATTEMPTS:-3}

die() {
        echo "${0##*/}: $*" >&2
        exit 1
}

# The unquoted value of KEY in the state file; fails when it is not set.
get() {
        [ -f "$STATE" ] || return 1
        line=$(grep -E "^$1=" "$STATE" | head -n 1) || return 1
        value=${line#*=}
        value=${value#\"}
        printf '%s\n' "${value%\"}"
}

known_slot() {
        case " $SLOTS " in
        *" $1 "*) return 0 ;;
        *) die "\"$1\" is not one of the slots ($SLOTS)" ;;
        esac
}

in_order() {
        case " $ORDER " in
        *" $1 "*) return 0 ;;
        *) return 1 ;;
        esac
}

# Without BOOT_ORDER nothing was written yet: the first slot is the good one.
load() {
        if ORDER=$(get BOOT_ORDER); then fresh=0; else ORDER=$SLOTS; fresh=1; fi
        first=1
        for s in $SLOTS; do
                if ! left=$(get "BOOT_${s}_LEFT"); then
                        if [ "$fresh" = 1 ] && [ "$first" = 1 ]; then left=$ATTEMPTS; else left=0; fi
                fi
                try=$(get "BOOT_${s}_TRY") || try=0
                eval "LEFT_$s=\$left TRY_$s=\$try"
                first=0
        done
}

without() {
        rest=
        for o in $ORDER; do
                [ "$o" = "$1" ] || rest="${rest:+$rest }$o"
        done
        printf '%s\n' "$rest"
}

# Rewrite the file atomically: other lines are kept, ours are written anew.
store() {
        keys=BOOT_ORDER
        for s in $SLOTS; do keys="$keys|BOOT_${s}_LEFT|BOOT_${s}_TRY"; done
        tmp=$(mktemp "$STATE.XXXXXX")
        {
                if [ -f "$STATE" ]; then grep -v -E "^($keys)=" "$STATE" || true; fi
                echo "BOOT_ORDER=\"$ORDER\""
                for s in $SLOTS; do
                        eval "left=\$LEFT_$s try=\$TRY_$s"
                        echo "BOOT_${s}_LEFT=$left"
                        if [ "$try" = 1 ]; then echo "BOOT_${s}_TRY=1"; fi
                done
        } >"$tmp"
        chmod 644 "$tmp"
        sync "$tmp" 2>/dev/null || true
        mv -f "$tmp" "$STATE"
}

[ $# -ge 1 ] || die "usage: ${0##*/} get-primary|set-primary S|get-state S|set-state S good|bad|get-current"

case "$1" in
get-primary)
        load
        for s in $ORDER; do
                eval "left=\$LEFT_$s"
                if [ "$left" -gt 0 ]; then
                        echo "$s"
                        exit 0
                fi
        done
        die "no bootable slot: no slot in BOOT_ORDER has attempts left"
        ;;
set-primary)
        [ $# -eq 2 ] || die "usage: set-primary SLOT"
        known_slot "$2"
        load
        eval "LEFT_$2=1 TRY_$2=1"
        rest=$(without "$2")
        ORDER="$2${rest:+ $rest}"
        store
        ;;
get-state)
        [ $# -eq 2 ] || die "usage: get-state SLOT"
        known_slot "$2"
        load
        eval "left=\$LEFT_$2 try=\$TRY_$2"
        if [ "$try" = 1 ]; then
                echo try
        elif [ "$left" -eq 0 ] || ! in_order "$2"; then
                echo bad
        else
                echo good
        fi
        ;;
set-state)
        [ $# -eq 3 ] || die "usage: set-state SLOT good|bad"
        known_slot "$2"
        load
        case "$3" in
        good)
                eval "LEFT_$2=\$ATTEMPTS TRY_$2=0"
                rest=$(without "$2")
                ORDER="$2${rest:+ $rest}"
                ;;
        bad)
                eval "LEFT_$2=0 TRY_$2=0"
                rest=$(without "$2")
                ORDER="${rest:+$rest }$2"
                ;;
        *) die "set-state: \"$3\" is neither good nor bad" ;;
        esac
        store
        ;;
get-current)
        booted=$(get BOOTED) || exit 3
        echo "$booted"
        ;;
*)
        die "unknown command \"$1\""
        ;;
esac
