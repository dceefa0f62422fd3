#!/bin/sh
# SPDX-License-Identifier: MIT
# Soak (docs/benchmarks.md "## Soak"): live capture and replay
# together on loopback at a sustained rate for DURATION seconds.
#
#  1. nginx (1 worker, access log on, one line per request with the shadow
#     marker) on a free 127.0.0.1 port: small JSON answers under /api/,
#     16 KiB and 64 KiB static files under /static/;
#  2. a seed recording made from real traffic: `dyetap record -i lo` while
#     curl sends SEED_CONNS keep-alive connections of 10 GETs each;
#  3. the soak: `dyetap record -i lo 'tcp port PORT' -w soak.dyt` (live
#     libpcap) and at the same time `dyetap replay seed.dyt --rate RATE
#     --loop 0 --duration DURATION` into results.dyt, replaying the seed
#     over and over against the same nginx, so record captures the replay;
#  4. every SAMPLE seconds: VmRSS/VmHWM and open descriptors of both dyetap
#     processes and of the nginx worker, and the load average
#     (OUT/samples.csv);
#  5. at the end record is stopped with SIGINT, nginx with SIGQUIT, and the
#     requests are accounted: replay's sent/ok/errors, nginx's access log,
#     record's counters, `dyetap info` and `dyetap cat` of soak.dyt, per
#     (method, target, status, body bytes).
#
# Verdict (exit 1 when any rule fails):
#  - memory flat after warm-up: for each dyetap process, median RssAnon
#    (its heap; VmRSS of record also holds the fixed libpcap ring) of the
#    last third of the samples minus the median of the middle third <=
#    max(RSS_TOL_KB, RSS_TOL_PCT % of the middle-third median) + 40 B per
#    data frame of the process's output file: the store writer keeps one
#    40-byte index entry per frame in memory until the file is closed
#    (docs/format.md), in a buffer grown by doubling. The first third is
#    warm-up (buffers and connection counts reach their high-water marks)
#    and is printed for information;
#  - descriptors flat: median fd count of the last third <= median of the
#    first third + max(4, 10 %);
#  - zero unaccounted requests: replay sent == ok + errors; nginx lines ==
#    ok (+ at most the errors, which may or may not have reached nginx);
#    recorded sessions == nginx lines, per (method, target, status, bytes);
#    a shortfall is accepted only when src_kernel_drops is non-zero and at
#    least as large (each lost session needs at least one dropped packet);
#    every recorded session that is not complete carries a named flag
#    (no_response, gap, midstream, ...), counted by txn_ counters; and
#    every session without a flag holds a request with its own response
#    (nginx echoes the request target in an X-Uri header, checked on
#    `dyetap cat --json` of soak.dyt).
#
# Needs root (live capture on lo), nginx, curl, python3; loopback only.
# Usage: bench/soak.sh [BUILD_DIR [OUT_DIR]]
#   env: DURATION=600 (s) RATE=2000 (req/s) SAMPLE=5 (s; 2 under 60 s) SEED_CONNS=20
#        BUFFER_MB (record --buffer-mb; unset = record's default)
#        RECORD_OPTS (more record options, e.g. --immediate)
#        RSS_TOL_KB=1024 RSS_TOL_PCT=5 KEEP=0 (1 keeps the .dyt files)
set -eu
b=${1:-build-bench}
out=${2:-$b/soak}
dyetap=$b/cli/dyetap
DURATION=${DURATION:-600}
RATE=${RATE:-2000}
SAMPLE=${SAMPLE:-$([ "$DURATION" -lt 60 ] && echo 2 || echo 5)}
SEED_CONNS=${SEED_CONNS:-20}
RSS_TOL_KB=${RSS_TOL_KB:-1024}
RSS_TOL_PCT=${RSS_TOL_PCT:-5}
KEEP=${KEEP:-0}
[ -x "$dyetap" ] || { echo "build first: $dyetap missing"; exit 2; }
[ "$(id -u)" = 0 ] || { echo "live capture on lo needs root"; exit 2; }
for t in nginx curl python3; do
    command -v $t >/dev/null || { echo "$t missing (tests/setup.sh)"; exit 2; }
done
mkdir -p "$out"
out=$(cd "$out" && pwd)
ng=$out/nginx
rm -rf "$ng"
mkdir -p "$ng/www/static"
rm -f "$out"/*.dyt "$out"/*.json "$out"/*.err "$out/samples.csv" "$out/summary.txt"
rec_pid=""
rep_pid=""
cleanup() {
    [ -n "$rep_pid" ] && kill "$rep_pid" 2>/dev/null
    [ -n "$rec_pid" ] && kill "$rec_pid" 2>/dev/null
    [ -f "$ng/nginx.pid" ] && kill "$(cat "$ng/nginx.pid")" 2>/dev/null
    return 0
}
trap cleanup EXIT

# 1. nginx with an access log: one line per request.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 - "$ng/www/static" <<'EOF'
import random, sys
r = random.Random(8)
words = ["catalog", "price", "stock", "item", "order", "lane", "shadow", "replay"]
for name, size in (("page.html", 16384), ("big.bin", 65536)):
    text = " ".join(r.choice(words) + str(r.randrange(10000)) for _ in range(size))
    open(sys.argv[1] + "/" + name, "w").write(text[:size])
EOF
cat >"$ng/nginx.conf" <<EOF
worker_processes 1;
pid $ng/nginx.pid;
error_log $ng/error.log warn;
events { worker_connections 4096; }
http {
  log_format soak '\$request_method \$request_uri \$status \$body_bytes_sent '
                  '"\$http_x_dyetap_shadow" \$connection \$connection_requests';
  access_log $ng/access.log soak;
  keepalive_requests 1000000;
  client_body_temp_path $ng/b; proxy_temp_path $ng/p; fastcgi_temp_path $ng/f;
  uwsgi_temp_path $ng/u; scgi_temp_path $ng/s;
  server {
    listen 127.0.0.1:$port;
    add_header X-Uri \$request_uri always;
    location /api/ { default_type application/json; return 200 '{"id":"\$request_id","ok":true}\n'; }
    location /static/ { root $ng/www; }
    location / { return 404; }
  }
}
EOF
nginx -p "$ng" -c "$ng/nginx.conf"
sleep 0.5
url=http://127.0.0.1:$port
nginx_worker() { pgrep -P "$(cat "$ng/nginx.pid")" | head -n 1; }

# start_record OUT.dyt NAME [ARGS...]: live capture of the nginx port in the background.
start_record() {
    f=$1
    name=$2
    shift 2
    "$dyetap" record -i lo "tcp port $port" -w "$f" --json "$@" >"$out/$name.json" \
        2>"$out/$name.err" &
    rec_pid=$!
    i=0
    until grep -q 'capturing on lo' "$out/$name.err"; do
        i=$((i + 1))
        [ $i -lt 100 ] || { echo "record did not start:"; cat "$out/$name.err"; exit 1; }
        sleep 0.1
    done
}
stop_record() {
    kill -INT "$rec_pid"
    wait "$rec_pid" || { echo "record failed:"; cat "$out/$1.err"; exit 1; }
    rec_pid=""
}

# 2. seed: SEED_CONNS connections of 10 GETs each (curl keeps the connection alive).
start_record "$out/seed.dyt" seed
for c in $(seq "$SEED_CONNS"); do
    set --
    for r in $(seq 10); do
        if [ $((c % 8)) = 0 ] && [ "$r" = 5 ]; then
            set -- "$@" "$url/static/big.bin"
        elif [ $((r % 4)) = 0 ]; then
            set -- "$@" "$url/static/page.html?v=$c"
        else
            set -- "$@" "$url/api/items/$c-$r?page=$r&sort=price"
        fi
    done
    curl -s -o /dev/null -o /dev/null -o /dev/null -o /dev/null -o /dev/null -o /dev/null \
        -o /dev/null -o /dev/null -o /dev/null -o /dev/null -H 'Accept: application/json' \
        -A 'soak-seed/1' "$@"
done
sleep 1
stop_record seed
seed_n=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["txn_sessions_complete"])' \
    "$out/seed.json")
[ "$seed_n" = $((SEED_CONNS * 10)) ] ||
    { echo "seed: $seed_n complete sessions, expected $((SEED_CONNS * 10))"; exit 1; }
echo "seed: $seed_n GET sessions on $SEED_CONNS connections (seed.dyt)"

# 3. the soak: live record + replay loop.
set --
[ -n "${BUFFER_MB:-}" ] && set -- --buffer-mb "$BUFFER_MB"
# shellcheck disable=SC2086 # RECORD_OPTS: extra record options, split on spaces
[ -n "${RECORD_OPTS:-}" ] && set -- "$@" $RECORD_OPTS
start_record "$out/soak.dyt" record "$@"
load0=$(cut -d' ' -f1-3 /proc/loadavg)
start=$(date +%s.%N)
# The seed was recorded from this very nginx, which the production guard
# rightly calls production; here it is the bench's own loopback server.
"$dyetap" replay "$out/seed.dyt" --target "$url" --i-know-this-is-production \
    --rate "$RATE" --loop 0 \
    --duration "${DURATION}s" -o "$out/results.dyt" --json -q >"$out/replay.json" \
    2>"$out/replay.err" &
rep_pid=$!
echo "soak: ${DURATION}s at $RATE req/s on $url; samples every ${SAMPLE}s in $out/samples.csv"

# 4. samples: PID status field, fd count.
st() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status" 2>/dev/null || echo ""; }
fds() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
wk=$(nginx_worker)
echo "t_s,load1,rec_rss_kb,rec_anon_kb,rec_hwm_kb,rec_fds,rep_rss_kb,rep_anon_kb,rep_hwm_kb,rep_fds,nginx_rss_kb,nginx_fds" \
    >"$out/samples.csv"
sleep 1
while kill -0 "$rep_pid" 2>/dev/null; do
    now=$(date +%s.%N)
    line="$(python3 -c "print('%.1f' % ($now - $start))"),$(cut -d' ' -f1 /proc/loadavg)"
    for p in "$rec_pid" "$rep_pid"; do
        line="$line,$(st "$p" VmRSS),$(st "$p" RssAnon),$(st "$p" VmHWM),$(fds "$p")"
    done
    line="$line,$(st "$wk" VmRSS),$(fds "$wk")"
    # the replay may have ended between the checks: keep only whole samples
    case $line in *,,* | *,) ;; *) echo "$line" >>"$out/samples.csv" ;; esac
    sleep "$SAMPLE"
done
rep_rc=0
wait "$rep_pid" || rep_rc=$?
rep_pid=""
load1=$(cut -d' ' -f1-3 /proc/loadavg)
sleep 2 # the last packets reach the capture
stop_record record
kill -QUIT "$(cat "$ng/nginx.pid")" # graceful: the access log is complete
i=0
while [ -f "$ng/nginx.pid" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
[ "$rep_rc" = 0 ] || { echo "replay failed (exit $rep_rc):"; cat "$out/replay.err"; exit 1; }

# 5. accounting and verdict.
"$dyetap" info --json "$out/soak.dyt" >"$out/soak-info.json"
"$dyetap" info --json "$out/results.dyt" >"$out/results-info.json"
"$dyetap" cat "$out/soak.dyt" >"$out/soak-cat.txt"
rc=0
python3 - "$out" "$DURATION" "$RATE" "$RSS_TOL_KB" "$RSS_TOL_PCT" "$load0" "$load1" "$dyetap" <<'EOF' ||
import collections, csv, json, statistics, subprocess, sys
out, duration, rate, tol_kb, tol_pct, load0, load1, dyetap = sys.argv[1:]
tol_kb, tol_pct = int(tol_kb), float(tol_pct)
J = lambda name: json.load(open(f"{out}/{name}"))
rep, rec, info, rinfo = J("replay.json"), J("record.json"), J("soak-info.json"), J("results-info.json")
fails, lines = [], []
say = lines.append

def check(ok, text):
    say(("  ok    " if ok else "  FAIL  ") + text)
    if not ok:
        fails.append(text)

# nginx: shadow (replayed) requests only; the seed's requests carry no marker.
ng = collections.Counter()
for ln in open(f"{out}/nginx/access.log"):
    f = ln.split()
    if f[4] == '"1"':
        ng[(f[0], f[1], int(f[2]), int(f[3]))] += 1
# recorded sessions, by the same key; incomplete ones by flag.
recd, flags, n_cat = collections.Counter(), collections.Counter(), 0
for ln in open(f"{out}/soak-cat.txt"):
    if not ln.startswith("session "):
        continue
    n_cat += 1
    f = ln.split()
    rest = ln.split(" -> ")[-1]
    fl = [w.strip("[]") for w in f if w.startswith("[") and w.endswith("]")]
    for x in fl:
        flags[x] += 1
    if rest.startswith("(no response)") or fl or f[7] == "-":
        continue
    nbytes = int(rest.split("(")[1].split()[0])
    recd[(f[7], f[8], int(rest.split()[0]), nbytes)] += 1

# pairing: nginx echoes each request's target in an X-Uri response header,
# so every recorded session shows whether its response answers its request.
pairing = collections.Counter()
cat = subprocess.Popen([dyetap, "cat", "--json", "--no-body", f"{out}/soak.dyt"],
                       stdout=subprocess.PIPE, text=True)
for ln in cat.stdout:
    o = json.loads(ln)
    req, resp = o.get("request"), o.get("response")
    if not req or not req.get("method"):
        kind = "orphan response"
    elif not resp or not resp.get("status"):
        kind = "no response"
    else:
        xu = next((v for k, v in resp["headers"] if k.lower() == "x-uri"), None)
        kind = "own response" if xu == req["target"] else "another request's response"
    pairing[(kind, "flagged" if o.get("flags") else "unflagged")] += 1
cat.wait()
pair_txt = ", ".join(f"{k} {f} {v}" for (k, f), v in sorted(pairing.items()))

sent, ok = rep["sent"], rep["ok"]
errs = rep["errors"]["total"]
nginx_n = sum(ng.values())
sessions = rec["pipe_sessions"]
complete = rec["txn_sessions_complete"]
drops = rec["src_kernel_drops"]
say(f"load average {load0} at the start, {load1} at the end")
say("counts:")
say(f"  replay  sent {sent}  ok {ok}  errors {errs} {json.dumps(rep['errors'])}  "
    f"achieved {rep['achieved_rps']} req/s  connects {rep['counters']['connects']}")
say(f"  nginx   access-log lines with the shadow marker {nginx_n}")
say(f"  record  sessions {sessions}  written {rec['pipe_written']}  complete {complete}  "
    f"no_response {rec['txn_no_response']}  gap {rec['txn_gap_sessions']}  "
    f"incomplete msgs {rec['txn_incomplete']}  orphan responses {rec['txn_orphan_responses']}  "
    f"parse errors {rec['txn_parse_errors']}")
say(f"  capture packets {rec['src_packets']}  kernel received {rec['src_kernel_received']}  "
    f"kernel drops {drops}  iface drops {rec['src_iface_drops']}  flows {rec['flow_created']}  "
    f"port reuse {rec['flow_port_reuse']}  midstream {rec['flow_midstream']}  "
    f"timeouts {rec['flow_timeouts']}  evicted {rec['flow_evicted']}  "
    f"memcap evictions {rec['pipe_memcap_evictions']}")
say(f"  soak.dyt  info: sessions {info['sessions']} state {info['state']} frames {info['frames']}  "
    f"cat: {n_cat} sessions, flags {dict(flags) or 'none'}")
say(f"  pairing (X-Uri header == request target): {pair_txt}")
say(f"  results.dyt  info: sessions {rinfo['sessions']} results {rinfo['results']} "
    f"state {rinfo['state']} frames {rinfo['frames']} ({rinfo['file_bytes'] >> 20} MiB)")
say("accounting:")
check(sent == ok + errs, f"replay sent {sent} == ok {ok} + errors {errs}")
check(ok <= nginx_n <= ok + errs, f"nginx lines {nginx_n} == replay ok {ok} (+ up to {errs} errors)")
check(sessions == rec["pipe_written"] == info["sessions"] == n_cat
      and info["state"] == "complete" and rec["pipe_sink_errors"] == 0,
      f"record sessions {sessions} == written == info {info['sessions']} == cat {n_cat}, "
      f"file complete")
short = nginx_n - sessions
if short == 0:
    check(True, f"recorded sessions {sessions} == nginx lines {nginx_n}")
else:
    check(0 < short <= drops, f"recorded sessions {sessions} vs nginx lines {nginx_n}: "
          f"{short} missing, src_kernel_drops {drops} packets")
n_flagged = sum(v for (k, f), v in pairing.items() if f == "flagged")
n_orphan = sum(v for (k, f), v in pairing.items() if k == "orphan response")
n_orphan_unfl = pairing[("orphan response", "unflagged")]
check(sessions - complete == n_flagged + n_orphan_unfl and
      n_flagged + n_orphan_unfl == n_cat - sum(recd.values()),
      f"incomplete sessions {sessions - complete} == sessions carrying a named flag "
      f"{n_flagged} ({dict(flags) or 'none'}) + responses without a request and without "
      f"a flag {n_orphan_unfl}")
check(n_orphan == rec["txn_orphan_responses"],
      f"responses without a request {n_orphan} == txn_orphan_responses "
      f"{rec['txn_orphan_responses']}")
over = {k: v - ng[k] for k, v in recd.items() if v > ng[k]}
missing = sum(v - recd[k] for k, v in ng.items() if v > recd[k])
if over:
    with open(f"{out}/mismatch.txt", "w") as mf:
        for k, v in sorted(over.items()):
            mf.write(f"recorded {v} more than nginx: {k}\n")
        for k, v in sorted(ng.items()):
            if v > recd[k]:
                mf.write(f"nginx {v - recd[k]} more than recorded complete: {k}\n")
check(not over, f"no complete recorded session without an nginx line of the same "
      f"method, target, status and body size ({sum(over.values())} over)")
check(missing - (sessions - complete) == short,
      f"per request key: {missing} nginx requests without a complete recorded session = "
      f"{short} missing + {sessions - complete} incomplete")

bad_pairs = pairing[("another request's response", "unflagged")]
check(bad_pairs == 0, f"every unflagged session with a request holds its own response "
      f"({bad_pairs} hold the response of another request)")

rows = list(csv.DictReader(open(f"{out}/samples.csv")))
say(f"memory and descriptors ({len(rows)} samples):")
if len(rows) < 6:
    check(False, "at least 6 samples")
else:
    k = len(rows) // 3
    first, mid, last = rows[:k], rows[k:-k], rows[-k:]
    med = lambda rs, c: statistics.median(int(r[c]) for r in rs)
    for who, name, fi in (("rec", "record", info), ("rep", "replay", rinfo)):
        a, m, z = (med(x, f"{who}_anon_kb") for x in (first, mid, last))
        idx = 2 * 40 * fi["frames"] / 1024
        allow = max(tol_kb, m * tol_pct / 100) + idx / 2
        r0, r1 = int(rows[0][f"{who}_rss_kb"]), int(rows[-1][f"{who}_rss_kb"])
        check(z - m <= allow, f"{name} heap (RssAnon) median middle third {m:.0f} KiB, last third "
              f"{z:.0f} KiB: growth {z - m:+.0f} KiB, allowed {allow:.0f} (of which "
              f"{idx / 2:.0f} for the output's frame index, 40 B x {fi['frames']} frames)")
        say(f"  info  {name} heap median first third {a:.0f} KiB (growth to the last third "
            f"{z - a:+.0f} KiB); VmRSS first sample {r0} KiB, last {r1} KiB, "
            f"VmHWM {rows[-1][who + '_hwm_kb']} KiB; heap first {rows[0][who + '_anon_kb']}, "
            f"last {rows[-1][who + '_anon_kb']} KiB")
        a, z = med(first, f"{who}_fds"), med(last, f"{who}_fds")
        allow = max(4, a / 10)
        mx = max(int(r[f"{who}_fds"]) for r in rows)
        check(z - a <= allow, f"{name} fds median first third {a:.0f}, last third {z:.0f} "
              f"(allowed +{allow:.0f}); max {mx}")
    a, z = med(first, "nginx_fds"), med(last, "nginx_fds")
    say(f"  info  nginx worker fds median first third {a:.0f}, last third {z:.0f}; "
        f"RSS {med(first, 'nginx_rss_kb'):.0f} -> {med(last, 'nginx_rss_kb'):.0f} KiB")
say("verdict: " + ("PASS" if not fails else f"FAIL ({len(fails)} rule(s))"))
print("\n".join(lines))
open(f"{out}/summary.txt", "w").write("\n".join(lines) + "\n")
sys.exit(1 if fails else 0)
EOF
    rc=1
if [ "$KEEP" != 1 ]; then rm -f "$out/soak.dyt" "$out/results.dyt" "$out/soak-cat.txt"; fi
exit $rc
