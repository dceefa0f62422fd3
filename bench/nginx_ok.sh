# SPDX-License-Identifier: MIT
# Sourced by bench scripts: start one nginx (1 worker, access log off,
# `return 200 "ok\n"`) on a free 127.0.0.1 port, with its files in $tmp
# (which the caller created and removes; its EXIT trap should kill
# $(cat "$tmp/nginx.pid")). Sets $port and $url.
# Usage: . bench/nginx_ok.sh; nginx_ok_start WORKER_CONNECTIONS
nginx_ok_start() {
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    cat >"$tmp/nginx.conf" <<EOF
worker_processes 1;
pid $tmp/nginx.pid;
error_log $tmp/error.log warn;
events { worker_connections $1; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $tmp/b; proxy_temp_path $tmp/p; fastcgi_temp_path $tmp/f;
  uwsgi_temp_path $tmp/u; scgi_temp_path $tmp/s;
  server { listen 127.0.0.1:$port; location / { return 200 "ok\n"; } }
}
EOF
    nginx -p "$tmp" -c "$tmp/nginx.conf"
    sleep 0.5
    url=http://127.0.0.1:$port
}
