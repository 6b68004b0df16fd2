#!/usr/bin/env bash
# nginx_proxy.test.sh - codid behind Debian's nginx with deploy/nginx-codid.conf.
#
# Runs nginx in the foreground with its own prefix in a temp dir and the
# deploy config adapted only where a test must: loopback ports, a
# self-signed certificate, log paths. Through it, over TLS: /healthz, the
# HTTP->HTTPS redirect, a PNG from POST /v1/generate, a limit error from
# codid, X-Request-Id reaching the client and both logs, and a job's
# Server-Sent Events arriving while the stream is still open (a buffering
# proxy would hold them until the stream ends, as nginx does when it
# compresses a buffered response). codid first runs with no training
# worker, so that job stays queued and its stream open until it is
# cancelled; then it restarts on the same port and data with one worker,
# and a short job streams to its end. The daemon's log must hold a line per
# request (with the id the client got) and per job transition.
source "$(dirname "$0")/tools/lib.sh"
# nginx and the event stream are killed at exit too (before the daemon)
nginx_pid= sse_pid=
cleanup_more() {
    local p
    for p in $sse_pid $nginx_pid; do kill -9 "$p" 2>/dev/null; done
}

NGINX=$(command -v nginx || echo /usr/sbin/nginx)
if [ ! -x "$NGINX" ]; then bad nginx "no nginx (make deps installs nginx-light)"; finish; fi
if ! command -v openssl >/dev/null; then bad openssl "no openssl for the test certificate"; finish; fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# ---- codid ------------------------------------------------------------------------
(cd "$tmp" && exec "$BIN" serve --listen 127.0.0.1:0 --data-dir "$tmp/var" --model random-tiny \
    --workers 0 --log-level info) 2>"$tmp/codid.log" &
pid=$!
await_port "$tmp/codid.log" || { bad codid_start "log: $(head -c 800 "$tmp/codid.log")"; finish; }
dport=$port

# ---- nginx ------------------------------------------------------------------------
host=codid.example.com
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=$host" -addext "subjectAltName=DNS:$host" \
    -keyout "$tmp/key.pem" -out "$tmp/cert.pem" >/dev/null 2>&1 || { bad cert "openssl failed"; finish; }
hport=$(free_port) sport=$(free_port)
conf=$tmp/codid.conf
sed -e "s|server 127.0.0.1:8080;|server 127.0.0.1:$dport;|" \
    -e "s|listen 80;|listen 127.0.0.1:$hport;|" \
    -e "s|listen 443 ssl http2;|listen 127.0.0.1:$sport ssl http2;|" \
    -e '/listen \[::\]/d' \
    -e "s|ssl_certificate .*;|ssl_certificate $tmp/cert.pem;|" \
    -e "s|ssl_certificate_key .*;|ssl_certificate_key $tmp/key.pem;|" \
    -e "s|access_log /var/log/nginx/codid.access.log|access_log $tmp/access.log|" \
    deploy/nginx-codid.conf >"$conf"
# Each adaptation must have found its line, or this tests some other config.
for want in "server 127.0.0.1:$dport;" "listen 127.0.0.1:$hport;" "listen 127.0.0.1:$sport ssl http2;" \
    "ssl_certificate $tmp/cert.pem;" "ssl_certificate_key $tmp/key.pem;" "access_log $tmp/access.log codid;"; do
    grep -qF "$want" "$conf" || { bad adapt_config "deploy/nginx-codid.conf has no line for '$want'"; finish; }
done
mkdir -p "$tmp/nginx"
cat >"$tmp/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $tmp/nginx.pid;
error_log $tmp/error.log info;
events { worker_connections 64; }
http {
    access_log $tmp/access.log;
    client_body_temp_path $tmp/nginx/body;
    proxy_temp_path $tmp/nginx/proxy;
    fastcgi_temp_path $tmp/nginx/fastcgi;
    uwsgi_temp_path $tmp/nginx/uwsgi;
    scgi_temp_path $tmp/nginx/scgi;
    # Compression for event streams, as a site-wide setting may have it:
    # with a buffered proxy it holds events back until the stream ends.
    gzip on;
    gzip_types text/event-stream;
    include $conf;
}
EOF
if "$NGINX" -t -p "$tmp/nginx" -c "$tmp/nginx.conf" -e "$tmp/error.log" >"$tmp/t.log" 2>&1; then
    ok nginx_config_test
else bad nginx_config_test "$(cat "$tmp/t.log")"; finish; fi
"$NGINX" -p "$tmp/nginx" -c "$tmp/nginx.conf" -e "$tmp/error.log" 2>>"$tmp/error.log" &
nginx_pid=$!

tls=(--cacert "$tmp/cert.pem" --resolve "$host:$sport:127.0.0.1")
base=https://$host:$sport
# call METHOD PATH [curl args]: status in $code, body in $tmp/body, headers in $tmp/hdr
call() {
    local method=$1 path=$2
    shift 2
    code=$(curl -s "${tls[@]}" -o "$tmp/body" -D "$tmp/hdr" -w '%{http_code}' -X "$method" "$@" "$base$path")
}
header() { tr -d '\r' <"$tmp/hdr" | awk -v n="$(tr 'A-Z' 'a-z' <<<"$1")" -F': ' 'tolower($1) == n {print $2}'; }

up=0
for _ in $(seq 1200); do
    if curl -s "${tls[@]}" -o /dev/null "$base/healthz"; then up=1; break; fi
    kill -0 "$nginx_pid" 2>/dev/null || break
    sleep 0.1
done
[ $up = 1 ] || { bad nginx_start "no answer on $sport; $(tail -5 "$tmp/error.log")"; finish; }

# ---- plain requests ------------------------------------------------------------------
call GET /healthz
rid=$(header x-request-id)
if [ "$code" = 200 ] && grep -q '"ok"' "$tmp/body"; then ok healthz_over_tls; else bad healthz_over_tls "$code"; fi
if [[ $rid =~ ^[0-9a-f]{16}$ ]]; then ok request_id_through_proxy; else bad request_id_through_proxy "'$rid'"; fi
if await_log "$tmp/codid.log" "GET /healthz 200 .* ms id=$rid"; then ok codid_log_line_has_id
else bad codid_log_line_has_id "no codid log line with id=$rid"; fi
# nginx writes its line once the request is done (polled: a bound on a hang)
if await_log "$tmp/access.log" "\"GET /healthz HTTP/[0-9.]*\" 200 .*rid=$rid"; then ok nginx_access_log_has_id
else bad nginx_access_log_has_id "$(tail -2 "$tmp/access.log" 2>&1)"; fi

code=$(curl -s -o /dev/null -D "$tmp/hdr" -w '%{http_code}' "http://127.0.0.1:$hport/healthz" -H "Host: $host")
if [ "$code" = 301 ] && [ "$(header location)" = "https://$host/healthz" ]; then ok http_redirects_to_https
else bad http_redirects_to_https "$code $(header location)"; fi

# generation waits for the model (the daemon answers 503 while it loads)
await_ok "http://127.0.0.1:$dport/readyz" || { bad codid_ready "log: $(tail -n 5 "$tmp/codid.log")"; finish; }
call POST /v1/generate -H 'Accept: image/png' -d '{"n":1,"steps":2,"seed":5}'
magic=$(head -c 8 "$tmp/body" | od -An -tx1 | tr -d ' \n')
if [ "$code" = 200 ] && [ "$(header content-type)" = image/png ] && [ "$magic" = 89504e470d0a1a0a ]; then
    ok generate_png_through_proxy
else bad generate_png_through_proxy "$code $(header content-type)"; fi
cp "$tmp/body" "$tmp/a.png"
if curl -s -H 'Accept: image/png' -d '{"n":1,"steps":2,"seed":5}' "http://127.0.0.1:$dport/v1/generate" |
    cmp -s - "$tmp/a.png"; then
    ok proxy_returns_the_same_bytes
else bad proxy_returns_the_same_bytes "the PNG through nginx differs from codid's"; fi

# A body over max_body_bytes (8M): a 413 problem+json naming the limit
# (nginx's, mirroring codid's), not a 502.
head -c $((9 << 20)) /dev/zero | tr '\0' ' ' >"$tmp/big"
call POST /v1/generate --data-binary @"$tmp/big"
if [ "$code" = 413 ] && [ "$(header content-type)" = application/problem+json ] &&
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(not (d["status"] == 413 and "max_body_bytes" in d["detail"]))' "$tmp/body"; then
    ok body_limit_through_proxy
else bad body_limit_through_proxy "$code $(head -c 200 "$tmp/body")"; fi
# Dataset uploads may be larger: the same body reaches codid there (which
# refuses it as no tar archive, with its request id).
call POST /v1/datasets -H 'Content-Type: application/x-tar' --data-binary @"$tmp/big"
if [ "$code" = 400 ] && [[ $(header x-request-id) =~ ^[0-9a-f]{16}$ ]]; then ok upload_limit_is_larger
else bad upload_limit_is_larger "$code $(head -c 200 "$tmp/body")"; fi
# Under the limit, codid's own limit errors pass through unchanged.
call POST /v1/generate -d '{"n":1000}'
if [ "$code" = 400 ] && grep -q max_n "$tmp/body" && [[ $(header x-request-id) =~ ^[0-9a-f]{16}$ ]]; then
    ok codid_error_through_proxy
else bad codid_error_through_proxy "$code $(head -c 200 "$tmp/body")"; fi

# ---- Server-Sent Events ------------------------------------------------------------
# A dataset of four generated 16x16 PNGs, and a job that stays queued.
for s in 1 2 3 4; do
    curl -s -H 'Accept: image/png' -d "{\"n\":1,\"steps\":2,\"seed\":$s}" \
        "http://127.0.0.1:$dport/v1/generate" -o "$tmp/d$s.png"
done
call POST /v1/datasets -F name=proxied -F "a=@$tmp/d1.png" -F "b=@$tmp/d2.png" -F "c=@$tmp/d3.png" \
    -F "d=@$tmp/d4.png"
if [ "$code" = 201 ]; then ok multipart_upload_through_proxy
else bad multipart_upload_through_proxy "$code $(head -c 300 "$tmp/body")"; fi
call POST /v1/jobs -H 'Content-Type: application/json' \
    -d '{"kind":"distill","dataset":"proxied","task":{"name":"sr","factor":2},"adapter_kind":"lite","steps":4,"batch_size":2}'
job=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$tmp/body" 2>/dev/null)
if [ "$code" = 202 ] && [[ $job =~ ^[0-9]+$ ]]; then ok job_queued
else bad job_queued "$code $(head -c 300 "$tmp/body")"; finish; fi
if await_log "$tmp/codid.log" "job $job: distill queued"; then ok log_job_queued
else bad log_job_queued "no 'job $job: distill queued' line"; fi

# --compressed: browsers' EventSource also accepts gzip.
curl -s -N --compressed "${tls[@]}" -H 'Accept: text/event-stream' -D "$tmp/sse_hdr" \
    "$base/v1/jobs/$job/events" >"$tmp/events" 2>/dev/null &
sse_pid=$!
# Wait for the first event, however long that takes, as long as the stream
# is open; then check that it is still open: the event came through while
# nothing had ended the response, so nginx did not hold it back.
streamed=0
for _ in $(seq 3000); do
    if grep -q '^event: job' "$tmp/events"; then
        kill -0 "$sse_pid" 2>/dev/null && streamed=1
        break
    fi
    kill -0 "$sse_pid" 2>/dev/null || break
    sleep 0.1
done
if [ $streamed = 1 ] && grep -qi '^content-type: text/event-stream' "$tmp/sse_hdr"; then
    ok sse_event_arrives_while_stream_open
else bad sse_event_arrives_while_stream_open "events: $(head -c 300 "$tmp/events"); headers: $(head -c 300 "$tmp/sse_hdr")"; fi

# Cancelling the job ends the stream with its final state.
call POST "/v1/jobs/$job/cancel"
[ "$code" = 200 ] || bad cancel "$code $(head -c 300 "$tmp/body")"
ended=0
for _ in $(seq 3000); do
    if ! kill -0 "$sse_pid" 2>/dev/null; then ended=1; break; fi
    sleep 0.1
done
wait "$sse_pid" 2>/dev/null
sse_pid=
if [ $ended = 1 ] && grep -q '^event: state' "$tmp/events" && grep -q 'cancelled' "$tmp/events"; then
    ok sse_stream_ends_with_final_state
else bad sse_stream_ends_with_final_state "ended=$ended events: $(tail -c 400 "$tmp/events")"; fi
if await_log "$tmp/codid.log" "job $job: cancelled"; then ok log_job_cancelled
else bad log_job_cancelled "no 'job $job: cancelled' line"; fi
if await_log "$tmp/codid.log" "GET /v1/jobs/$job/events 200 "; then ok log_line_for_stream
else bad log_line_for_stream "no log line for the event stream"; fi

# ---- a job that runs, after a restart on the same data and port ------------------
stop_daemon
if [ $stop_rc = 0 ]; then ok codid_sigterm_exit_0; else bad codid_sigterm_exit_0 "exit $stop_rc"; fi
(cd "$tmp" && exec "$BIN" serve --listen "127.0.0.1:$dport" --data-dir "$tmp/var" --model random-tiny \
    --workers 1 --log-level info) 2>"$tmp/codid2.log" &
pid=$!
await_ok "http://127.0.0.1:$dport/readyz" || { bad codid_restart_ready "log: $(tail -n 5 "$tmp/codid2.log")"; finish; }
call POST /v1/jobs -H 'Content-Type: application/json' \
    -d '{"kind":"distill","dataset":"proxied","task":{"name":"sr","factor":2},"adapter_kind":"lite","steps":3,"batch_size":2}'
job2=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$tmp/body" 2>/dev/null)
if [ "$code" = 202 ] && [[ $job2 =~ ^[0-9]+$ ]]; then ok restarted_job_queued
else bad restarted_job_queued "$code $(head -c 300 "$tmp/body")"; fi
# The stream ends after the final state (--max-time only guards against a hang).
curl -s -N --compressed --max-time 900 "${tls[@]}" -H 'Accept: text/event-stream' \
    "$base/v1/jobs/$job2/events" >"$tmp/events2" 2>/dev/null
if grep -q '^event: state' "$tmp/events2" && grep -q '"succeeded"' "$tmp/events2"; then ok job_streamed_to_success
else bad job_streamed_to_success "events: $(tail -c 400 "$tmp/events2")"; fi
for line in "job $job2: distill queued" "job $job2: distill started" "job $job2: succeeded"; do
    if await_log "$tmp/codid2.log" "$line"; then ok "log '$line'"; else bad "log '$line'" "not in the log"; fi
done

# ---- shutdown ---------------------------------------------------------------------
kill -QUIT "$nginx_pid" 2>/dev/null
wait "$nginx_pid" 2>/dev/null
nginx_pid=
stop_daemon
if [ $stop_rc = 0 ]; then ok codid_restarted_sigterm_exit_0; else bad codid_restarted_sigterm_exit_0 "exit $stop_rc"; fi

finish
