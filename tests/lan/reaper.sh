#!/bin/sh
# Cleans up after the LAN tests (tests/lan/): kills every process inside their network
# namespaces and deletes the namespaces. Namespaces are named shoal-<test pid>-...
#
#   reaper.sh sweep          clean up after earlier runs whose test process is gone
#   reaper.sh watch PREFIX   wait until stdin closes (the test process ended, however it ended:
#                            passed, failed, interrupted or killed), then clean up PREFIX*
set -u

clean() {
    for ns in $(ip netns list | awk '{print $1}' | grep "^$1"); do
        pids=$(ip netns pids "$ns" 2>/dev/null)
        [ -n "$pids" ] && kill -9 $pids 2>/dev/null
        ip netns del "$ns" 2>/dev/null
    done
}

case "${1:-}" in
sweep)
    for ns in $(ip netns list | awk '{print $1}' | grep '^shoal-[0-9][0-9]*-'); do
        pid=${ns#shoal-}
        pid=${pid%%-*}
        [ -d "/proc/$pid" ] || clean "$ns"
    done
    ;;
watch)
    cat >/dev/null
    clean "$2"
    ;;
*)
    echo "usage: reaper.sh sweep | reaper.sh watch PREFIX" >&2
    exit 2
    ;;
esac
