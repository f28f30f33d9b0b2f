# The proxy rows shared by scripts/bench-proxy and scripts/bench-syscalls (bash, sourced after
# bench-common.sh): the nginx backend, each proxy started fresh on the backend's core with upstream
# keep-alive, and the curl check that a row really proxies the backend's bytes before it is measured.
# shellcheck shell=bash disable=SC2034  # variables here are read by the scripts that source this

BP_ALL_ROWS="direct sluice qp-cc0 qp-cc10 nginx haproxy go"
BP_ALL_CASES="small 4k 1m upload"
BP_ROOT=${BP_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BP_PEERS="$BP_ROOT/Benchmarks/peers"
SERVER_CORE=${SERVER_CORE:-1}   # backend and proxy share this core
LOAD_CORE=${LOAD_CORE:-0}       # wrk runs alone on this one
# How the release binaries are built (README, BENCHMARKS.md): static executables, since idle RSS is
# 40% lower than with the shared Swift runtime, glibc and libstdc++ (BENCHMARKS.md, queue-proxy memory).
BP_RELEASE_BUILD="swift build -c release --static-swift-stdlib -Xswiftc -static-executable"
SLUICE_BIN=${SLUICE_BIN:-$BP_ROOT/.build/release/sluice}
QUEUE_PROXY_BIN=${QUEUE_PROXY_BIN:-$BP_ROOT/.build/release/queue-proxy}
# nginx's idle upstream pool; with more client connections than this it opens and closes upstream
# connections under load (visible as connect/close in bench-syscalls at c=256).
NGINX_KEEPALIVE=${NGINX_KEEPALIVE:-64}
[[ $NGINX_KEEPALIVE =~ ^[1-9][0-9]*$ ]] || bench_die "NGINX_KEEPALIVE: '$NGINX_KEEPALIVE' is not a positive count"

BACKEND_PORT=""
BACKEND_PID=""      # the backend's worker: the process that does the work
BACKEND_MASTER=""
BP_PID=""           # the process measured for the current row (a proxy, or the backend for "direct")
BP_STOP=""          # the process to stop when the row ends (empty for "direct")
BP_PORT=""
BP_REASON=""

bp_row_label() {
  case $1 in
    direct) echo "direct (no proxy)" ;;
    sluice) echo "Sluice proxy" ;;
    qp-cc0) echo "Sluice queue-proxy CC=0" ;;
    qp-cc10) echo "Sluice queue-proxy CC=10" ;;
    nginx) echo "nginx" ;;
    haproxy) echo "HAProxy" ;;
    go) echo "Go ReverseProxy" ;;
    *) echo "$1" ;;
  esac
}

# Checks a comma-separated list against the known names; prints it space-separated.
bp_parse_list() {
  local what=$1 list=$2 known=$3 item out=""
  for item in ${list//,/ }; do
    case " $known " in
      *" $item "*) out+="$item " ;;
      *) bench_die "unknown $what '$item' (known: ${known// /, })" ;;
    esac
  done
  [ -n "$out" ] || bench_die "empty $what list"
  echo "${out% }"
}

bp_tools() {
  bench_apt_ensure wrk:wrk nginx:nginx curl:curl taskset:util-linux pgrep:procps getconf:libc-bin "$@"
  [ "$(nproc)" -ge 2 ] || bench_log "warning: $(nproc) core(s); load and servers will share a core"
}

bp_user_line() {
  # nginx workers drop to "nobody" when started as root and could not read the 0700 temp dir.
  if [ "$(id -u)" = 0 ]; then echo "user root;"; else echo ""; fi
}

# Fills a template's @DIR@, @PORT@, @UPSTREAM_PORT@, @NGINX_KEEPALIVE@ and @USER_LINE@ into OUT.
bp_render() {
  local template=$1 out=$2 port=$3 upstream=${4:-}
  [ -r "$template" ] || bench_die "missing template $template"
  sed -e "s|@DIR@|$BENCH_TMP|g" -e "s|@PORT@|$port|g" -e "s|@UPSTREAM_PORT@|$upstream|g" \
      -e "s|@NGINX_KEEPALIVE@|$NGINX_KEEPALIVE|g" -e "s|@USER_LINE@|$(bp_user_line)|g" "$template" >"$out"
}

# Bodies the backend serves and the checks compare against; the 64 KiB upload body and its wrk script.
bp_make_files() {
  mkdir -p "$BENCH_TMP/www"
  printf 'Hello, World\n' >"$BENCH_TMP/expect-small"
  head -c 4096 /dev/urandom >"$BENCH_TMP/www/4k"
  head -c 1048576 /dev/urandom >"$BENCH_TMP/www/1m"
  cp "$BENCH_TMP/www/4k" "$BENCH_TMP/expect-4k"
  cp "$BENCH_TMP/www/1m" "$BENCH_TMP/expect-1m"
  printf 'uploaded\n' >"$BENCH_TMP/expect-upload"
  head -c 65536 /dev/zero | tr '\0' 'u' >"$BENCH_TMP/upload.bin"
  cat >"$BENCH_TMP/upload.lua" <<'EOF'
-- 64 KiB POST body for the "upload" case; wrk adds the Content-Length.
wrk.method = "POST"
wrk.body = string.rep("u", 65536)
wrk.headers["Content-Type"] = "application/octet-stream"
EOF
}

bp_case_path() {
  case $1 in small) echo / ;; 4k) echo /4k ;; 1m) echo /1m ;; upload) echo /upload ;; esac
}

# wrk arguments a case adds (the upload's lua script).
bp_case_wrk_args() {
  if [ "$1" = upload ]; then echo "-s $BENCH_TMP/upload.lua"; fi
}

# True when one request of CASE through 127.0.0.1:PORT returns 200 and exactly the backend's bytes.
bp_check_once() {
  local case=$1 port=$2 out="$BENCH_TMP/check.out" code url
  url="http://127.0.0.1:$port$(bp_case_path "$case")"
  if [ "$case" = upload ]; then
    code=$(curl -sS --max-time 5 -o "$out" -w '%{http_code}' -H 'Content-Type: application/octet-stream' \
      --data-binary "@$BENCH_TMP/upload.bin" "$url" 2>/dev/null) || return 1
  else
    code=$(curl -sS --max-time 5 -o "$out" -w '%{http_code}' "$url" 2>/dev/null) || return 1
  fi
  [ "$code" = 200 ] && cmp -s "$out" "$BENCH_TMP/expect-$case"
}

# Retries the check up to SECONDS (a queue-proxy answers 503 until its app probe passes).
bp_check() {
  local case=$1 port=$2 seconds=${3:-10} i
  for ((i = 0; i < seconds * 10; i++)); do
    bp_check_once "$case" "$port" && return 0
    if [ -n "$BP_STOP" ] && ! bench_alive "$BP_STOP"; then return 1; fi
    sleep 0.1
  done
  return 1
}

# Waits (bounded) for a master's worker to appear and prints its PID.
bp_worker_of() {
  local master=$1 i kid
  for ((i = 0; i < 50; i++)); do
    kid=$(bench_children "$master" | head -n1)
    if [ -n "$kid" ]; then echo "$kid"; return 0; fi
    sleep 0.1
  done
  return 1
}

bp_backend_start() {
  bench_free_port BACKEND_PORT
  mkdir -p "$BENCH_TMP"/backend-{body,proxy,fastcgi,uwsgi,scgi}
  bp_render "$BP_PEERS/nginx/backend.conf.template" "$BENCH_TMP/backend.conf" "$BACKEND_PORT"
  bench_start "$SERVER_CORE" "$BENCH_TMP/backend.log" \
    nginx -p "$BENCH_TMP" -e "$BENCH_TMP/backend-error.log" -c "$BENCH_TMP/backend.conf"
  BACKEND_MASTER=$BENCH_LAST_PID
  bench_wait_port "$BACKEND_PORT" 10 "$BACKEND_MASTER" ||
    bench_die "backend nginx did not start: $(tail -n5 "$BENCH_TMP/backend.log" "$BENCH_TMP/backend-error.log" 2>/dev/null)"
  BACKEND_PID=$(bp_worker_of "$BACKEND_MASTER") || bench_die "backend nginx started no worker"
  local case
  for case in $BP_ALL_CASES; do
    bp_check "$case" "$BACKEND_PORT" 5 || bench_die "backend does not answer case '$case' correctly"
  done
  bench_log "backend nginx on 127.0.0.1:$BACKEND_PORT (worker $BACKEND_PID, core $SERVER_CORE)"
}

# Builds the Go ReverseProxy peer into the temp dir (its own build cache there too), once per run.
bp_build_go() {
  [ -x "$BENCH_TMP/goproxy" ] && return 0
  bench_log "building the Go ReverseProxy peer ($(go version | cut -d' ' -f3))"
  (cd "$BP_PEERS/goproxy" &&
    GOCACHE="$BENCH_TMP/gocache" GOPATH="$BENCH_TMP/gopath" GOPROXY=off GOFLAGS=-mod=mod GO111MODULE=on \
      go build -o "$BENCH_TMP/goproxy" .) >"$BENCH_TMP/gobuild.log" 2>&1 ||
    bench_die "go build of Benchmarks/peers/goproxy failed: $(tail -n5 "$BENCH_TMP/gobuild.log")"
}

# Says so (once per binary) when a Sluice binary is not the static release build, whose RSS differs.
BP_WARNED=" "
bp_warn_dynamic() {
  case $BP_WARNED in *" $1 "*) return 0 ;; esac
  BP_WARNED+="$1 "
  if readelf -d "$1" 2>/dev/null | grep -q NEEDED; then
    bench_log "warning: ${1#"$BP_ROOT"/} is dynamically linked; release binaries are built with: $BP_RELEASE_BUILD"
  fi
}

# Whether a row can run at all; BP_REASON says why not ("not built: ...").
bp_row_available() {
  BP_REASON=""
  case $1 in
    sluice)
      if [ ! -x "$SLUICE_BIN" ]; then BP_REASON="not built (no ${SLUICE_BIN#"$BP_ROOT"/}; run $BP_RELEASE_BUILD)"; return 1; fi
      bp_warn_dynamic "$SLUICE_BIN"
      if ! timeout 10 "$SLUICE_BIN" proxy --help >/dev/null 2>&1; then
        BP_REASON="not built (sluice has no 'proxy' subcommand yet)"; return 1
      fi ;;
    qp-cc0 | qp-cc10)
      if [ ! -x "$QUEUE_PROXY_BIN" ]; then BP_REASON="not built (no ${QUEUE_PROXY_BIN#"$BP_ROOT"/}; run $BP_RELEASE_BUILD)"; return 1; fi
      bp_warn_dynamic "$QUEUE_PROXY_BIN" ;;
  esac
  return 0
}

# Starts ROW fresh (a new process per measurement, so idle and peak RSS belong to that measurement)
# and checks CASE through it. Sets BP_PID, BP_PORT, BP_STOP; on failure BP_REASON, and returns 1.
bp_row_start() {
  local row=$1 case=$2 log
  BP_PID="" BP_STOP="" BP_PORT="" BP_REASON=""
  if [ "$row" = direct ]; then
    BP_PID=$BACKEND_PID BP_PORT=$BACKEND_PORT
    return 0
  fi
  bench_free_port BP_PORT
  log="$BENCH_TMP/$row.log"
  case $row in
    sluice)
      bench_start "$SERVER_CORE" "$log" "$SLUICE_BIN" proxy --listen "127.0.0.1:$BP_PORT" \
        --upstream "127.0.0.1:$BACKEND_PORT" --loops 1 ;;
    qp-cc0 | qp-cc10)
      local admin metrics user_metrics tls
      bench_free_port admin; bench_free_port metrics; bench_free_port user_metrics; bench_free_port tls
      # The environment Knative's revision reconciler gives a queue-proxy container, plus Sluice's
      # port overrides so the fixed 8022/9090/9091 never clash with anything else on the machine.
      bench_start "$SERVER_CORE" "$log" env \
        SERVING_NAMESPACE=bench SERVING_SERVICE=hello SERVING_CONFIGURATION=hello \
        SERVING_REVISION=hello-00001 SERVING_POD=hello-00001-deployment-0 SERVING_POD_IP=127.0.0.1 \
        HOST_IP=127.0.0.1 QUEUE_SERVING_PORT="$BP_PORT" QUEUE_SERVING_TLS_PORT="$tls" \
        USER_PORT="$BACKEND_PORT" CONTAINER_CONCURRENCY="${row#qp-cc}" \
        REVISION_TIMEOUT_SECONDS=300 REVISION_RESPONSE_START_TIMEOUT_SECONDS=0 \
        REVISION_IDLE_TIMEOUT_SECONDS=0 SERVING_LOGGING_LEVEL=info SERVING_LOGGING_CONFIG= \
        SERVING_READINESS_PROBE="{\"tcpSocket\":{\"port\":$BACKEND_PORT,\"host\":\"127.0.0.1\"},\"successThreshold\":1}" \
        ENABLE_HTTP_FULL_DUPLEX=false ENABLE_HTTP2_AUTO_DETECTION=false ENABLE_MULTI_CONTAINER_PROBES=false \
        SLUICE_ADMIN_PORT="$admin" SLUICE_METRICS_PORT="$metrics" SLUICE_USER_METRICS_PORT="$user_metrics" \
        "$QUEUE_PROXY_BIN" ;;
    nginx)
      mkdir -p "$BENCH_TMP"/nginx-proxy-{body,proxy,fastcgi,uwsgi,scgi}
      bp_render "$BP_PEERS/nginx/proxy.conf.template" "$BENCH_TMP/nginx-proxy.conf" "$BP_PORT" "$BACKEND_PORT"
      bench_start "$SERVER_CORE" "$log" \
        nginx -p "$BENCH_TMP" -e "$BENCH_TMP/nginx-proxy-error.log" -c "$BENCH_TMP/nginx-proxy.conf" ;;
    haproxy)
      bp_render "$BP_PEERS/haproxy/haproxy.cfg.template" "$BENCH_TMP/haproxy.cfg" "$BP_PORT" "$BACKEND_PORT"
      bench_start "$SERVER_CORE" "$log" haproxy -db -f "$BENCH_TMP/haproxy.cfg" ;;
    go)
      bp_build_go
      bench_start "$SERVER_CORE" "$log" env GOMAXPROCS=1 "$BENCH_TMP/goproxy" \
        -listen "127.0.0.1:$BP_PORT" -upstream "127.0.0.1:$BACKEND_PORT" ;;
    *) bench_die "unknown row $row" ;;
  esac
  BP_STOP=$BENCH_LAST_PID BP_PID=$BENCH_LAST_PID
  if ! bench_wait_port "$BP_PORT" 15 "$BP_STOP"; then
    BP_REASON="failed to start: $(tail -n3 "$log" | tr '\n' ' ')"
    bp_row_stop; return 1
  fi
  if [ "$row" = nginx ]; then
    BP_PID=$(bp_worker_of "$BP_STOP") || { BP_REASON="nginx started no worker"; bp_row_stop; return 1; }
  fi
  if ! bp_check "$case" "$BP_PORT" 15; then
    BP_REASON="does not proxy case '$case' byte-exact: $(tail -n3 "$log" | tr '\n' ' ')"
    bp_row_stop; return 1
  fi
  return 0
}

bp_row_stop() {
  if [ -n "$BP_STOP" ]; then bench_stop "$BP_STOP"; fi
  BP_STOP=""
}
