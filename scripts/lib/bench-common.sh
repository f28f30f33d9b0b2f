# Shared helpers for the scripts/bench-* load benchmarks (bash): a temp dir and PID-tracked processes
# stopped by a trap, free loopback ports, pinned starts, wrk output parsing, /proc CPU and RSS readers,
# and the machine header every BENCHMARKS.md entry carries. Source it from a `set -euo pipefail` script.
# shellcheck shell=bash disable=SC2034  # variables here are read by the scripts that source this

BENCH_TMP=""
BENCH_PIDS=()          # every process this script started, stopped in reverse order at exit
BENCH_PORTS_GIVEN=" "  # ports already handed out in this run, so two servers never get the same one
BENCH_LAST_PID=""
BENCH_SCRIPT=${BENCH_SCRIPT:-$(basename "$0")}

bench_log() { printf '[%s %s] %s\n' "$BENCH_SCRIPT" "$(date +%H:%M:%S)" "$*" >&2; }
bench_die() { printf '%s: error: %s\n' "$BENCH_SCRIPT" "$*" >&2; exit 1; }

# Creates BENCH_TMP (all temp files go there) and installs the trap that stops every tracked process
# by PID and removes the directory, on normal exit, error and Ctrl-C alike.
bench_init() {
  BENCH_TMP=$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench.XXXXXX")
  trap bench_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

bench_cleanup() {
  local rc=$? i
  set +e
  for ((i = ${#BENCH_PIDS[@]} - 1; i >= 0; i--)); do
    bench_stop_pid "${BENCH_PIDS[$i]}"
  done
  if [ -n "$BENCH_TMP" ] && [ -d "$BENCH_TMP" ]; then rm -rf -- "$BENCH_TMP"; fi
  return "$rc"
}

# Installs the Debian packages behind missing commands, each argument "command:package".
# Package scripts are kept from starting system services (nginx would otherwise grab port 80).
bench_apt_ensure() {
  local spec need=()
  for spec in "$@"; do
    command -v "${spec%%:*}" >/dev/null 2>&1 || need+=("${spec#*:}")
  done
  [ ${#need[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    bench_die "missing ${need[*]}; install them (apt-get install ${need[*]}) and rerun"
  fi
  bench_log "installing from Debian: ${need[*]}"
  local policy=/usr/sbin/policy-rc.d own_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && own_policy=1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  if [ "$own_policy" = 1 ]; then rm -f "$policy"; fi
}

# True while PID exists and is not a zombie (a zombie answers kill -0 but does no work).
bench_alive() {
  local state
  [ -r "/proc/$1/stat" ] || return 1
  state=$(bench_proc_field "$1" 1) || return 1
  [ "$state" != Z ]
}

# Field N of /proc/PID/stat counted after the "(comm)" field, whose name may contain spaces:
# 1 = state, 12 = utime, 13 = stime (proc(5) numbers minus 2).
bench_proc_field() {
  local line fields
  read -r line 2>/dev/null <"/proc/$1/stat" || return 1
  read -r -a fields <<<"${line##*) }"
  echo "${fields[$(( $2 - 1 ))]}"
}

# CPU clock ticks (utime + stime, all threads) a process has used; see `getconf CLK_TCK`.
bench_cpu_ticks() {
  local line fields
  read -r line 2>/dev/null <"/proc/$1/stat" || return 1
  read -r -a fields <<<"${line##*) }"
  echo $(( fields[11] + fields[12] ))
}

# A /proc/PID/status size field in KiB: VmRSS (now) or VmHWM (peak since start or last reset).
bench_status_kib() {
  local key value _
  while read -r key value _; do
    if [ "$key" = "$2:" ]; then echo "$value"; return 0; fi
  done <"/proc/$1/status"
  return 1
}

# Resets VmHWM to the current RSS (Linux >= 4.0, needs ptrace rights on PID); false when not possible.
bench_reset_peak_rss() { { echo 5 >"/proc/$1/clear_refs"; } 2>/dev/null; }

# Ticks of the whole machine from the first line of /proc/stat: "BUSY TOTAL", where BUSY is the time
# processes ran (user, nice, system) plus time the hypervisor stole. Interrupt time is left out because
# process utime/stime exclude it too, so BUSY minus the ticks of known processes is other processes' work.
bench_machine_ticks() {
  local _ user nice system idle iowait irq softirq steal
  read -r _ user nice system idle iowait irq softirq steal _ </proc/stat
  echo "$((user + nice + system + steal)) $((user + nice + system + idle + iowait + irq + softirq + steal))"
}

# Sets VAR to the CPU ticks used so far by this shell's waited-for children (bash's `times`, second
# line): the CPU of a foreground command such as wrk. Not in a $(...) subshell, whose children differ.
bench_children_ticks() {
  local var=$1 f="$BENCH_TMP/.times" line u s
  times >"$f"
  line=$(sed -n 2p "$f")
  u=${line%% *}; s=${line##* }
  printf -v "$var" '%s' "$(awk -v hz="$(getconf CLK_TCK)" -v u="$u" -v s="$s" '
    function secs(t,   m) { m = t; sub(/m.*/, "", m); sub(/^[0-9]+m/, "", t); sub(/s$/, "", t); return m * 60 + t }
    BEGIN { printf "%d", (secs(u) + secs(s)) * hz + 0.5 }')"
}

# Direct children of PID, one per line (nginx's workers under its master).
bench_children() { pgrep -P "$1" 2>/dev/null || true; }

# Stops one process by PID: SIGTERM, up to 5 s, then SIGKILL; its children (e.g. nginx workers) are
# collected first and killed by PID if the parent left them behind.
bench_stop_pid() {
  local pid=$1 kids i
  bench_alive "$pid" || { wait "$pid" 2>/dev/null || true; return 0; }
  kids=$(bench_children "$pid")
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    bench_alive "$pid" || break
    sleep 0.1
  done
  if bench_alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
  wait "$pid" 2>/dev/null || true
  for pid in $kids; do
    for ((i = 0; i < 20; i++)); do bench_alive "$pid" || break; sleep 0.1; done
    if bench_alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
  done
  return 0
}

# Scheduling priority of everything a benchmark runs (servers, proxies, wrk). The machine is shared
# with builds: at nice 0 a pinned server gets 1/(n+1) of its core against n busy build threads, at -20
# it gets ~90% or more, so the figures measure the code rather than the neighbours. Root only;
# BENCH_NICE=0 turns it off.
if [ -z "${BENCH_NICE+x}" ]; then
  if [ "$(id -u)" = 0 ]; then BENCH_NICE=-20; else BENCH_NICE=0; fi
fi
[[ $BENCH_NICE =~ ^-?[0-9]+$ ]] || bench_die "BENCH_NICE: '$BENCH_NICE' is not a nice value (-20..19)"

# With autogroup scheduling (sched_autogroup_enabled) the kernel first shares CPU between sessions and
# only then applies nice inside each, so nice alone loses against a build in another terminal. Call as
# `bench_own_session "$0" "$@"` first thing: it reruns the script as the leader of a new session whose
# autogroup gets BENCH_NICE, passes Ctrl-C/TERM on to it and exits with its status. The caller's own session keeps its priority.
bench_own_session() {
  [ "$BENCH_NICE" != 0 ] || return 0
  if [ -n "${BENCH_SESSION:-}" ]; then
    if [ -w /proc/self/autogroup ]; then
      echo "$BENCH_NICE" 2>/dev/null >/proc/self/autogroup || bench_log "warning: could not set the session's priority"
    fi
    return 0
  fi
  [ -w /proc/self/autogroup ] && command -v setsid >/dev/null 2>&1 || return 0
  local child rc interrupted=0
  BENCH_SESSION=1 setsid "$@" &
  child=$!
  # The child leads its own process group; signal the group as a terminal's Ctrl-C would, so a running
  # wrk stops at once and the child's trap then stops every server it started by PID.
  trap 'interrupted=1; kill -INT -- "-$child" 2>/dev/null || kill -INT "$child" 2>/dev/null' INT TERM
  while true; do
    rc=0
    wait "$child" || rc=$?
    bench_alive "$child" || break
  done
  if [ "$interrupted" = 1 ]; then exit 130; fi
  exit "$rc"
}

# Runs CMD in the foreground on CPU core CORE ("-" for unpinned) at BENCH_NICE; nice and taskset exec,
# so a backgrounded call's $! is the program's own PID.
bench_pinned() {
  local core=$1
  shift
  if [ "$core" != - ]; then set -- taskset -c "$core" "$@"; fi
  if [ "$BENCH_NICE" != 0 ]; then set -- nice -n "$BENCH_NICE" "$@"; fi
  "$@"
}

# Starts CMD in the background like bench_pinned, output to LOG, stdin closed, and tracks it for the
# exit trap. The PID is left in BENCH_LAST_PID (no subshell, so tracking sticks).
# Use `env VAR=value cmd` for environment: env execs too.
bench_start() {
  local core=$1 log=$2 prefix=()
  shift 2
  if [ "$core" != - ]; then prefix=(taskset -c "$core"); fi
  if [ "$BENCH_NICE" != 0 ]; then prefix=(nice -n "$BENCH_NICE" ${prefix[@]+"${prefix[@]}"}); fi
  ${prefix[@]+"${prefix[@]}"} "$@" </dev/null >"$log" 2>&1 &
  BENCH_LAST_PID=$!
  BENCH_PIDS+=("$BENCH_LAST_PID")
}

# Stops a process started with bench_start and forgets it.
bench_stop() {
  local pid=$1 i kept=()
  bench_stop_pid "$pid"
  for i in "${BENCH_PIDS[@]}"; do [ "$i" = "$pid" ] || kept+=("$i"); done
  BENCH_PIDS=("${kept[@]}")
}

# Sets variable VAR to a free TCP port on 127.0.0.1, below the kernel's ephemeral range (so client
# sockets of the load never collide with it), not in use and not handed out before in this run.
bench_free_port() {
  local var=$1 used=" " hex lo hi port i _ local_addr
  read -r lo hi </proc/sys/net/ipv4/ip_local_port_range
  while read -r _ local_addr _; do
    hex=${local_addr##*:}
    [[ $hex =~ ^[0-9A-Fa-f]+$ ]] && used+="$((16#$hex)) "
  done < <(tail -q -n +2 /proc/net/tcp /proc/net/tcp6 2>/dev/null)
  for ((i = 0; i < 500; i++)); do
    if [ "$lo" -gt 12000 ]; then
      port=$(( 10000 + (RANDOM * 32768 + RANDOM) % (lo - 10000) ))
    else
      port=$(( hi + 1 + (RANDOM * 32768 + RANDOM) % (65535 - hi) ))
    fi
    case "$used$BENCH_PORTS_GIVEN" in *" $port "*) continue ;; esac
    BENCH_PORTS_GIVEN+="$port "
    printf -v "$var" '%s' "$port"
    return 0
  done
  bench_die "no free TCP port found on 127.0.0.1"
}

# Waits until 127.0.0.1:PORT accepts a connection, at most SECONDS; fails early if PID (optional) died.
bench_wait_port() {
  local port=$1 seconds=$2 pid=${3:-} i
  for ((i = 0; i < seconds * 20; i++)); do
    if (: <>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    if [ -n "$pid" ] && ! bench_alive "$pid"; then return 1; fi
    sleep 0.05
  done
  return 1
}

# Parses a `wrk --latency` report and sets WRK_REQUESTS, WRK_SECONDS, WRK_RPS, WRK_P50_MS, WRK_P75_MS,
# WRK_P90_MS, WRK_P99_MS (latencies normalised to ms whatever unit wrk chose) and WRK_ERRORS (socket
# errors of every kind plus non-2xx/3xx answers). Fails when the report has no request count.
bench_wrk_parse() {
  local parsed
  parsed=$(awk '
    function ms(v,   n) {
      n = v; sub(/[a-z]+$/, "", n); n += 0
      if (v ~ /us$/) return n / 1000
      if (v ~ /ms$/) return n
      if (v ~ /m$/)  return n * 60000
      if (v ~ /h$/)  return n * 3600000
      if (v ~ /s$/)  return n * 1000
      return n
    }
    $1 == "50%" { p50 = ms($2) }
    $1 == "75%" { p75 = ms($2) }
    $1 == "90%" { p90 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    $2 == "requests" && $3 == "in" { req = $1; d = $4; sub(/,$/, "", d); secs = ms(d) / 1000 }
    /Socket errors:/ { for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) { x = $i; sub(/,/, "", x); err += x } }
    /Non-2xx or 3xx responses:/ { err += $NF }
    /^Requests\/sec:/ { rps = $2 }
    END {
      if (req == "") exit 1
      printf "%s %.3f %.1f %.3f %.3f %.3f %.3f %d\n", req, secs, rps, p50, p75, p90, p99, err
    }' "$1") || return 1
  # shellcheck disable=SC2034
  read -r WRK_REQUESTS WRK_SECONDS WRK_RPS WRK_P50_MS WRK_P75_MS WRK_P90_MS WRK_P99_MS WRK_ERRORS <<<"$parsed"
}

# One line naming when and where a run happened: date, nproc, CPU model, kernel, load average, nice.
bench_machine_header() {
  local model
  model=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
  [ -n "$model" ] || model=$(uname -m)
  printf '%s · nproc %s · CPU %s · Linux %s · load avg %s · nice %s' \
    "$(date -u '+%Y-%m-%d %H:%M UTC')" "$(nproc)" "$model" "$(uname -r)" \
    "$(cut -d' ' -f1-3 /proc/loadavg)" "$BENCH_NICE"
}

# The command line as run, shell-quoted, with the env settings named in the arguments prepended when set.
# Usage: bench_command_line "VAR1 VAR2" "$0" "$@"
bench_command_line() {
  local vars=$1 v out=""
  shift
  for v in $vars; do
    if [ -n "${!v+x}" ]; then out+="$v=$(bench_quote "${!v}") "; fi
  done
  out+=$(bench_quote "$1")
  shift
  for v in "$@"; do out+=" $(bench_quote "$v")"; done
  echo "$out"
}

# Shell-quotes one word only when it needs it, so "--only nginx,go" stays readable.
bench_quote() {
  if [[ $1 =~ ^[A-Za-z0-9_./,=:@+-]+$ ]]; then echo "$1"; else printf "'%s'\n" "${1//\'/\'\\\'\'}"; fi
}
