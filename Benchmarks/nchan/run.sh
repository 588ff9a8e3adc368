#!/usr/bin/env bash
# Starts nginx + nchan on 127.0.0.1:8088 in the foreground (Ctrl-C stops it).
# Installs Debian's nginx-light and libnginx-mod-nchan when missing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [ ! -f /usr/lib/nginx/modules/ngx_nchan_module.so ]; then
  as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
  had_nginx=no
  if [ -x /usr/sbin/nginx ]; then had_nginx=yes; fi
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq nginx-light libnginx-mod-nchan >/dev/null
  # Installing nginx starts Debian's default server (port 80, /run/nginx.pid); we only want ours.
  # Stop that one, and only when this install brought nginx: any other nginx is left alone.
  if [ "$had_nginx" = no ]; then
    as_root service nginx stop >/dev/null 2>&1 || true
    pid=$(cat /run/nginx.pid 2>/dev/null || true)
    if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null || true)" = nginx ]; then
      as_root kill -QUIT "$pid" || true
    fi
  fi
fi
mkdir -p /tmp/switchboard-nchan
exec nginx -c "$here/nginx.conf" -p /tmp/switchboard-nchan
