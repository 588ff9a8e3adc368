#!/usr/bin/env bash
# Starts nginx + nchan on 127.0.0.1:8088 in the foreground (Ctrl-C stops it).
# Installs Debian's nginx-light and libnginx-mod-nchan when missing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [ ! -f /usr/lib/nginx/modules/ngx_nchan_module.so ]; then
  as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq nginx-light libnginx-mod-nchan >/dev/null
  as_root pkill -x nginx || true   # Debian starts the default site; we only want ours
fi
mkdir -p /tmp/switchboard-nchan
exec nginx -c "$here/nginx.conf" -p /tmp/switchboard-nchan
