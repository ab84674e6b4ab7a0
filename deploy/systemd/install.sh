#!/bin/sh
# Install the units for this checkout: deploy/systemd/install.sh [--with-dagster]
# Fills @REPO@ (this checkout) and @USER@ (who runs it: $SERVICE_USER, else the invoking user),
# copies the units to /etc/systemd/system and starts the watchdog timer; --with-dagster also
# enables the daemon and webserver services. Run as root (sudo).
set -eu
repo=$(cd "$(dirname "$0")/../.." && pwd)
user=${SERVICE_USER:-${SUDO_USER:-$(id -un)}}
units="traffic-warehouse-watchdog.service traffic-warehouse-watchdog.timer"
if [ "${1:-}" = "--with-dagster" ]; then
    units="$units traffic-warehouse-daemon.service traffic-warehouse-webserver.service"
fi
for unit in $units; do
    sed -e "s|@REPO@|$repo|g" -e "s|@USER@|$user|g" "$repo/deploy/systemd/$unit" \
        > "/etc/systemd/system/$unit"
done
systemctl daemon-reload
systemctl enable --now traffic-warehouse-watchdog.timer
if [ "${1:-}" = "--with-dagster" ]; then
    systemctl enable --now traffic-warehouse-daemon.service traffic-warehouse-webserver.service
fi
systemctl list-timers traffic-warehouse-watchdog.timer --no-pager
