#!/usr/bin/env bash
# Validates the operator files under ops/ (nginx, systemd, Prometheus, Grafana,
# container) with the real tools where they exist here, against a real broker.
#
#   ops/scripts/check-ops.sh [STARLING_BINARY]     (default: .build/debug/starling)
#
# Prints one line per check, "ok: NAME" or "FAIL: NAME" followed by the indented reason,
# and exits 1 when any check failed. Installs what it needs: python3, openssl and curl
# with apt-get (python3-yaml too when there is no promtool); nginx and promtool are used
# from PATH when present, otherwise unpacked from their Debian packages (`apt-get download`) into a cache
# ($STARLING_OPS_TOOLS, default ~/.cache/starling-ops), so no nginx or Prometheus
# service gets installed or started. systemd-analyze is used when present; without it
# the unit gets a Python check of its keys only.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BIN=${1:-.build/debug/starling}
case $BIN in /*) ;; *) BIN=$ROOT/$BIN ;; esac

WORK=$(mktemp -d "${TMPDIR:-/tmp}/starling-ops.XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT

failures=0
ok() { echo "ok: $1"; }
fail() { echo "FAIL: $1"; [ -n "${2:-}" ] && printf '%s\n' "$2" | tail -n 40 | sed 's/^/    /'; failures=$((failures + 1)); }
# check NAME CMD...: ok when CMD exits 0, else FAIL with its output.
# Runs in this shell (not a subshell), so checks may set variables and start processes.
check() {
  local name=$1 log rc out; shift
  log=$(mktemp "$WORK/check.XXXXXX")
  "$@" >"$log" 2>&1; rc=$?
  out=$(cat "$log")
  if [ $rc -eq 0 ]; then ok "$name${out:+ ($(printf '%s' "$out" | tail -n 1 | sed 's/^ *//'))}"; else fail "$name" "$out"; fi
}

# ---- tools ------------------------------------------------------------------------------
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
apt_updated=0
apt_update() { [ $apt_updated = 1 ] || { $SUDO apt-get update -qq >&2 && apt_updated=1; }; }
apt_install() {
  [ $# -gt 0 ] || return 0
  echo "installing: $*" >&2
  apt_update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
need=()
command -v python3 >/dev/null || need+=(python3)
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)
apt_install "${need[@]}"

TOOLS=${STARLING_OPS_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/starling-ops}
# tool NAME DEBIAN_PACKAGE PATH_IN_PACKAGE: the tool on PATH, else unpacked from the .deb.
tool() {
  local name=$1 pkg=$2 rel=$3 found
  found=$(PATH=$PATH:/usr/sbin:/sbin command -v "$name") && { echo "$found"; return 0; }
  [ -x "$TOOLS/$pkg/$rel" ] && { echo "$TOOLS/$pkg/$rel"; return 0; }
  echo "fetching $name from the Debian package $pkg into $TOOLS" >&2
  mkdir -p "$TOOLS/deb" && rm -f "$TOOLS/deb/${pkg}"_*.deb
  (cd "$TOOLS/deb" && { apt-get download -qq "$pkg" 2>/dev/null || { apt_update && apt-get download -qq "$pkg"; }; }) >&2 || return 1
  dpkg-deb -x "$TOOLS/deb/${pkg}"_*.deb "$TOOLS/$pkg" && [ -x "$TOOLS/$pkg/$rel" ] && echo "$TOOLS/$pkg/$rel"
}
NGINX=$(tool nginx nginx usr/sbin/nginx) || NGINX=""
PROMTOOL=$(tool promtool prometheus usr/bin/promtool) || PROMTOOL=""
SYSTEMD_ANALYZE=$(command -v systemd-analyze) || SYSTEMD_ANALYZE=""
SHELLCHECK=$(tool shellcheck shellcheck usr/bin/shellcheck) || SHELLCHECK=""

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Runs the broker without the caller's STARLING_* variables (every one names a setting
# there; the test command's STARLING_TEST_REDIS would be refused as unknown).
starling_clean() {
  local unset=() v
  for v in $(compgen -e); do case $v in STARLING_*) unset+=(-u "$v") ;; esac; done
  env "${unset[@]}" "$@"
}

# ---- a real broker: its /metrics and its flags --------------------------------------------
BROKER_PORT=""
start_broker() {
  [ -x "$BIN" ] || { echo "no broker binary at $BIN (build it, or pass its path)"; return 1; }
  # Not through starling_clean: a backgrounded shell function is a subshell, and killing
  # it at exit left the broker itself running. $! must be the broker's own pid.
  local unset=() v
  for v in $(compgen -e); do case $v in STARLING_*) unset+=(-u "$v") ;; esac; done
  env "${unset[@]}" "$BIN" serve --listen 127.0.0.1:0 >"$WORK/broker.out" 2>"$WORK/broker.err" &
  PIDS+=($!)
  for _ in $(seq 100); do
    BROKER_PORT=$(sed -nE '1s#^starling listening on http://[^ ]*:([0-9]+) .*#\1#p' "$WORK/broker.out")
    [ -n "$BROKER_PORT" ] && break
    sleep 0.1
  done
  [ -n "$BROKER_PORT" ] || { echo "the broker printed no listening line"; cat "$WORK/broker.err"; return 1; }
  curl -sf --max-time 5 "http://127.0.0.1:$BROKER_PORT/metrics" >"$WORK/metrics.txt" || { echo "GET /metrics failed"; return 1; }
  starling_clean "$BIN" serve --help >"$WORK/help.txt" 2>&1 || { echo "starling serve --help failed"; return 1; }
  echo "port $BROKER_PORT, $(grep -c '^starling_' "$WORK/metrics.txt") metrics"
}
check "broker started ($BIN)" start_broker

# ---- python helpers -------------------------------------------------------------------------
cat >"$WORK/nginx_render.py" <<'PY'
# Renders ops/nginx/starling.conf into a private prefix: loopback high ports, the broker's
# port, a throwaway certificate, logs and temp files under the prefix; fails when a
# system path or a privileged port is left.
import re, sys
src, prefix, http_port, https_port, broker_port = sys.argv[1:6]
s = open(src).read()
s = re.sub(r"^\s*listen\s+\[::\]:\d+[^;]*;\n", "", s, flags=re.M)           # no IPv6 here
s = re.sub(r"listen\s+80\b", f"listen 127.0.0.1:{http_port}", s)
s = re.sub(r"listen\s+443\b", f"listen 127.0.0.1:{https_port}", s)
s = re.sub(r"(server\s+)127\.0\.0\.1:8080\b", rf"\g<1>127.0.0.1:{broker_port}", s)
s = re.sub(r"^(\s*)server\s+(?!127\.0\.0\.1:)[\w.\-\[\]:]+(\s[^;]*)?;$", "", s, flags=re.M)
s = re.sub(r"(ssl_certificate\s+)/\S+;", rf"\g<1>{prefix}/cert.pem;", s)
s = re.sub(r"(ssl_certificate_key\s+)/\S+;", rf"\g<1>{prefix}/key.pem;", s)
s = re.sub(r"((?:access_log|error_log)\s+)/var/log/nginx/", rf"\g<1>{prefix}/logs/", s)
bad = [l for l in s.splitlines() if not l.lstrip().startswith("#") and re.search(r"\s/(etc|var|usr|run)/|listen\s+(80|443)\b", l)]
if bad:
    sys.exit("system paths or ports left after rendering:\n" + "\n".join(bad))
open(f"{prefix}/starling.conf", "w").write(s)
temp = "\n".join(f"    {d}_temp_path {prefix}/tmp/{d};" for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
open(f"{prefix}/nginx.conf", "w").write(f"""pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log info;
worker_processes 1;
events {{ worker_connections 256; }}
http {{
    default_type application/octet-stream;
    access_log {prefix}/logs/access.log;
{temp}
    include {prefix}/starling.conf;
}}
""")
# Directives the SSE path needs, in the /v1/ location.
m = re.search(r"location\s+/v1/\s*\{(.*?)\n    \}", s, re.S)
if not m:
    sys.exit("no location /v1/ block")
body = m.group(1)
need = ["proxy_buffering off", "proxy_request_buffering off", "proxy_http_version 1.1",
        'proxy_set_header Connection ""', "gzip off", "proxy_pass http://starling;"]
missing = [d for d in need if d not in body]
if not re.search(r"proxy_read_timeout\s+(\d+h|\d{3,}s?)\s*;", body):
    missing.append("proxy_read_timeout of minutes or hours")
if not re.search(r"^\s*keepalive\s+\d+;", s, re.M):
    missing.append("upstream keepalive")
if missing:
    sys.exit("missing in the site: " + ", ".join(missing))
PY

cat >"$WORK/nginx_proxy.py" <<'PY'
# Through nginx (TLS, HTTP/1.1): a subscriber must see the first line of a chunked NDJSON
# publish while that publish is still open (no request buffering, no response
# buffering), the publish must be answered, nothing may be gzipped, /metrics is hidden.
import socket, ssl, sys, time
port = int(sys.argv[1])
ch = f"ops-check-{time.time_ns()}"
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
def connect():
    return ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5), server_hostname="starling.example.com")
def read_until(sock, buf, needle, what, seconds=5):
    end = time.time() + seconds
    while needle not in buf:
        sock.settimeout(max(0.05, end - time.time()))
        try:
            b = sock.recv(65536)
        except (socket.timeout, TimeoutError):
            b = None
        if not b or time.time() > end:
            sys.exit(f"{what}: {needle!r} not seen within {seconds}s; got {bytes(buf[-400:])!r}")
        buf += b
    return buf
def get(path):
    s = connect()
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: starling.example.com\r\nConnection: close\r\n\r\n".encode())
    buf = read_until(s, bytearray(), b"\r\n\r\n", f"GET {path}")
    s.close()
    return int(buf.split(b" ", 2)[1])

sub = connect()
sub.sendall(f"GET /v1/channels/{ch}/events HTTP/1.1\r\nHost: starling.example.com\r\n"
            "Accept: text/event-stream\r\nAccept-Encoding: gzip, br\r\n\r\n".encode())
sbuf = read_until(sub, bytearray(), b": starling", "subscribe")
head = sbuf.split(b"\r\n\r\n", 1)[0].decode("latin-1").lower()
if not head.startswith("http/1.1 200") or "text/event-stream" not in head:
    sys.exit(f"subscribe answer: {head!r}")
if "content-encoding" in head:
    sys.exit(f"event stream compressed: {head!r}")

pub = connect()
pub.sendall(f"POST /v1/channels/{ch}/events HTTP/1.1\r\nHost: starling.example.com\r\n"
            "Content-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
def chunk(b): pub.sendall(b"%x\r\n%s\r\n" % (len(b), b))
chunk(b'{"data":"first-line"}\n')
sbuf = read_until(sub, sbuf, b"first-line", "first event while the publish body is still open")
chunk(b'{"data":"second-line"}\n')
pub.sendall(b"0\r\n\r\n")
pbuf = read_until(pub, bytearray(), b"}", "publish answer")
if not pbuf.startswith(b"HTTP/1.1 200") or b'"count":2' not in pbuf:
    sys.exit(f"publish answer: {bytes(pbuf)!r}")
read_until(sub, sbuf, b"second-line", "second event")
if get("/healthz") != 200: sys.exit("/healthz through nginx is not 200")
if get("/metrics") != 404: sys.exit("/metrics is reachable through nginx")
print(f"streamed publish and SSE through nginx on channel {ch}")
PY

cat >"$WORK/unit_check.py" <<'PY'
# The unit's keys, and every flag it passes against `starling serve --help`.
import os, re, sys
unit, helpfile, envfile = sys.argv[1:4]
sections, cur = {}, None
for line in open(unit):
    line = line.strip()
    if not line or line[0] in "#;": continue
    if line.startswith("["): cur = sections.setdefault(line.strip("[]"), {}); continue
    k, v = line.split("=", 1)
    cur.setdefault(k.strip(), []).append(v.strip())
svc = sections.get("Service", {})
one = lambda k: (svc.get(k) or [""])[-1]
errs = []
want = {"LimitNOFILE": "20000", "KillSignal": "SIGTERM", "Restart": "on-failure", "ProtectSystem": "strict",
        "NoNewPrivileges": "yes", "ProtectHome": "yes", "PrivateTmp": "yes"}
for k, v in want.items():
    if one(k) != v: errs.append(f"{k}={one(k) or '(unset)'}, want {v}")
if one("DynamicUser") != "yes" and not one("User"): errs.append("neither DynamicUser=yes nor User=")
env = dict(e.split("=", 1) for e in svc.get("Environment", []))
for line in open(envfile):
    line = line.strip()
    if line and not line.startswith("#") and "=" in line:
        k, v = line.split("=", 1); env[k] = v
if "Environment" in svc and any(e.startswith("STARLING_OPTS=") for e in svc["Environment"]):
    errs.append("STARLING_OPTS is gone: settings go in the config file or STARLING_* variables")
exec_start = one("ExecStart")
# The drain timeout: the env file wins over the config file the unit names (shipped beside it).
drain = 10.0
m = re.search(r"--config\s+(\S+)", exec_start)
if m:
    shipped = os.path.join(os.path.dirname(unit), os.path.basename(m.group(1)))
    if not os.path.exists(shipped): errs.append(f"--config {m.group(1)}: no {shipped} shipped beside the unit")
    else:
        d = re.search(r"^drain_timeout\s*=\s*\"?([0-9.]+)s?\"?", open(shipped).read(), re.M)
        if d: drain = float(d.group(1))
if "STARLING_DRAIN_TIMEOUT" in env: drain = float(env["STARLING_DRAIN_TIMEOUT"])
if one("RestartPreventExitStatus") != "78": errs.append("RestartPreventExitStatus=78 missing: a bad configuration would restart forever")
stop = one("TimeoutStopSec")
m = re.fullmatch(r"(\d+)(s|min)?", stop)
if not m: errs.append(f"TimeoutStopSec={stop or '(unset)'}")
elif int(m.group(1)) * (60 if m.group(2) == "min" else 1) <= drain:
    errs.append(f"TimeoutStopSec={stop} is not above the drain timeout {drain}s")
if not re.search(r"\bserve\b", exec_start): errs.append("ExecStart does not run `starling serve`")
argv = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env.get(m.group(1) or m.group(2), ""), exec_start)
flags = set(re.findall(r"(?<!\S)(--[a-z][a-z0-9-]*)", argv))
known = set(re.findall(r"(--[a-z][a-z0-9-]*)", open(helpfile).read()))
unknown = sorted(flags - known)
if unknown: errs.append("flags unknown to `starling serve --help`: " + " ".join(unknown))
if errs: sys.exit("\n".join(errs))
print(f"{len(flags)} flags known to the binary, TimeoutStopSec={stop} > drain {drain:g}s")
PY

cat >"$WORK/metric_names.py" <<'PY'
# Every starling_* name in the alert rules, scrape config and dashboard is one the broker
# exports; rate()/increase() only over counters; the dashboard shows every metric.
import json, re, sys
metrics_txt, root = sys.argv[1:3]
types = dict(re.findall(r"^# TYPE (starling_\w+) (\w+)", open(metrics_txt).read(), re.M))
if not types: sys.exit("the broker's /metrics has no starling_* metric")
def family(n):
    # A histogram's series (_bucket, _sum, _count) belong to its family; its _bucket and
    # _count are counters for rate().
    for suffix in ("_bucket", "_sum", "_count"):
        if n.endswith(suffix) and types.get(n[: -len(suffix)]) == "histogram":
            return n[: -len(suffix)]
    return n
files = ["ops/prometheus/alerts.yml", "ops/prometheus/prometheus.yml", "ops/grafana/starling-dashboard.json"]
errs, used = [], {}
for f in files:
    text = open(f"{root}/{f}").read()
    # Labels, jobs and uids use "starling" or "starling-…"; any starling_… is a metric name.
    names = {family(n) for n in re.findall(r"\bstarling_[a-zA-Z0-9_]+", text)}
    used[f] = names
    for n in sorted(names - set(types)):
        errs.append(f"{f}: {n} is not exported by the broker")
    for fn, n in re.findall(r"\b(rate|irate|increase)\(\s*(starling_\w+)", text):
        if types.get(n) not in (None, "counter") and family(n) == n:
            errs.append(f"{f}: {fn}() over {n}, a {types[n]}")
missing = sorted(set(types) - used["ops/grafana/starling-dashboard.json"])
if missing: errs.append("not on the dashboard: " + ", ".join(missing))
if errs: sys.exit("\n".join(errs))
print(f"{len(set().union(*used.values()))} names used, all among the {len(types)} exported")
PY

cat >"$WORK/dashboard.py" <<'PY'
# The dashboard's structure, and its queries as a rules file for promtool to parse.
import json, sys
path, rules_out = sys.argv[1:3]
d = json.load(open(path))
errs = []
for k in ("title", "uid", "panels", "schemaVersion"):
    if k not in d: errs.append(f"no {k}")
ids = [p.get("id") for p in d.get("panels", [])]
if len(ids) != len(set(ids)): errs.append(f"duplicate panel ids {ids}")
variables = {v["name"] for v in d.get("templating", {}).get("list", [])}
if "datasource" not in variables: errs.append("no datasource variable")
exprs = []
for p in d.get("panels", []):
    if "gridPos" not in p: errs.append(f"panel {p.get('title')}: no gridPos")
    if p.get("datasource", {}).get("uid") != "${datasource}": errs.append(f"panel {p.get('title')}: datasource not ${{datasource}}")
    if not p.get("targets"): errs.append(f"panel {p.get('title')}: no query")
    for t in p.get("targets", []):
        exprs.append(t["expr"])
covered = {t for p in d["panels"] for t in [p["title"].lower()]}
for want in ("publish", "delivered", "subscribers", "connections", "queued bytes", "slow consumers", "gaps"):
    if not any(want in t for t in covered): errs.append(f"no panel about {want}")
if errs: sys.exit("\n".join(errs))
with open(rules_out, "w") as f:
    f.write("groups:\n  - name: dashboard\n    rules:\n")
    for i, e in enumerate(exprs):
        e = e.replace("$__rate_interval", "5m").replace("$instance", ".*")
        f.write(f"      - record: dashboard:q{i}\n        expr: {json.dumps(e)}\n")
print(len(exprs))
PY

cat >"$WORK/container.py" <<'PY'
# Static checks of the Containerfile (no container engine runs here).
import re, subprocess, sys
root = sys.argv[1]
cf = open(f"{root}/ops/container/Containerfile").read()
lines = re.sub(r"\\\n", " ", cf).splitlines()
instr = [(l.split(None, 1)[0].upper(), l.split(None, 1)[1] if len(l.split(None, 1)) > 1 else "")
         for l in (x.strip() for x in lines) if l and not l.startswith("#")]
errs = []
froms = [a for i, a in instr if i == "FROM"]
if len(froms) < 2: errs.append("not multi-stage")
if not re.match(r"(docker\.io/library/)?swift:6(\.\d+)*(-bookworm)?\s+AS\s+build$", froms[0], re.I):
    errs.append(f"build stage is {froms[0]!r}, want swift:6 (bookworm) AS build")
if not re.match(r"(docker\.io/library/)?debian:bookworm-slim$", froms[-1]):
    errs.append(f"runtime stage is {froms[-1]!r}, want debian:bookworm-slim")
git = subprocess.run(["git", "-c", "safe.directory=*", "-C", root, "ls-files"], capture_output=True, text=True)
tracked = git.stdout.split() if git.returncode == 0 else None   # None: not a git checkout
def exists(src):
    if any(c in src for c in "*?["):
        return True    # a glob may match nothing (Package.resolved*) as long as another source does
    src = src.rstrip("/")
    if tracked is None:
        import os
        return os.path.exists(os.path.join(root, src))
    return src in tracked or any(t.startswith(src + "/") for t in tracked)
copied_from_build = None
for i, a in instr:
    if i in ("COPY", "ADD"):
        parts = [p for p in a.split() if not p.startswith("--")]
        if "--from=build" in a:
            copied_from_build = parts
            continue
        for src in parts[:-1]:
            if not exists(src): errs.append(f"COPY {src}: not a path tracked in git")
# The product built is the executable "starling" of Package.swift.
manifest = open(f"{root}/Package.swift").read()
if not re.search(r'\.executable\(name:\s*"starling"', manifest): errs.append('Package.swift has no executable "starling"')
if not re.search(r"swift build -c release --product starling\b", cf): errs.append("does not build --product starling in release mode")
m = re.search(r'install [^&]*"\$\(swift build -c release --show-bin-path\)/starling" (\S+)', cf)
built = m.group(1) if m else None
if not built: errs.append("the release binary is not installed in the build stage")
entry = next((a for i, a in instr if i == "ENTRYPOINT"), "")
entry_bin = (re.findall(r'"([^"]+)"', entry) or [""])[0]
if not copied_from_build or copied_from_build[0] != built or copied_from_build[-1] != entry_bin:
    errs.append(f"COPY --from=build {copied_from_build} does not carry {built} to the entrypoint {entry_bin}")
if re.findall(r'"([^"]+)"', entry)[1:2] != ["serve"]: errs.append("ENTRYPOINT does not run `starling serve`")
# Runtime packages: exist in Debian 12 and cover the system libraries of the manifest.
runs = [a for i, a in instr if i == "RUN"]
def pkgs(run): 
    m = re.search(r"apt-get install ([^&]*)", run)
    return [p for p in m.group(1).split() if not p.startswith("-")] if m else []
build_pkgs, runtime_pkgs = pkgs(runs[0]), pkgs(runs[-1])
dev = set(re.findall(r'\.apt\(\["([^"]+)"\]\)', manifest))
if not dev <= set(build_pkgs): errs.append(f"build stage lacks {sorted(dev - set(build_pkgs))}")
for p in build_pkgs + runtime_pkgs:
    if subprocess.run(["apt-cache", "show", p], capture_output=True).returncode != 0:
        errs.append(f"package {p} is unknown to apt here")
for d in sorted(dev):
    deps = subprocess.run(["apt-cache", "depends", "--important", d], capture_output=True, text=True).stdout
    libs = [l.split()[-1] for l in deps.splitlines() if l.strip().startswith("Depends:") and re.match(r"lib.*\d", l.split()[-1]) and not l.split()[-1].startswith("libc6")]
    if libs and not set(libs) & set(runtime_pkgs): errs.append(f"runtime stage lacks the library of {d} ({' '.join(libs)})")
if "USER" not in [i for i, _ in instr]: errs.append("runs as root (no USER)")
if "STOPSIGNAL SIGTERM" not in [f"{i} {a}" for i, a in instr]: errs.append("no STOPSIGNAL SIGTERM")
if not re.search(r"^EXPOSE 8080$", cf, re.M): errs.append("no EXPOSE 8080")
readme = open(f"{root}/ops/container/README.md").read()
if "ops/container/Containerfile" not in readme: errs.append("README does not show the build command")
if errs: sys.exit("\n".join(errs))
print(f"{len(froms)} stages, runtime packages {' '.join(runtime_pkgs)}")
PY

# ---- nginx --------------------------------------------------------------------------------
NGX=$WORK/nginx
nginx_config() {
  [ -n "$NGINX" ] || { echo "no nginx (install failed)"; return 1; }
  [ -n "$BROKER_PORT" ] || { echo "no broker running"; return 1; }
  mkdir -p "$NGX/logs" "$NGX/tmp"
  openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=starling.example.com \
    -keyout "$NGX/key.pem" -out "$NGX/cert.pem" >/dev/null 2>&1 || { echo "openssl failed"; return 1; }
  NGX_HTTP=$(free_port); NGX_HTTPS=$(free_port)
  python3 "$WORK/nginx_render.py" ops/nginx/starling.conf "$NGX" "$NGX_HTTP" "$NGX_HTTPS" "$BROKER_PORT" || return 1
  local out
  out=$("$NGINX" -t -q -p "$NGX" -e "$NGX/logs/error.log" -c "$NGX/nginx.conf" 2>&1) || { echo "$out"; return 1; }
  # A warning (a deprecated directive, a duplicate) fails the check too.
  if grep -q '\[warn\]' <<<"$out"; then echo "$out"; return 1; fi
  echo "nginx -t: $($NGINX -v 2>&1 | sed 's/.*: //')"
}
nginx_proxy() {
  [ -f "$NGX/nginx.conf" ] || { echo "no rendered config"; return 1; }
  "$NGINX" -p "$NGX" -e "$NGX/logs/error.log" -c "$NGX/nginx.conf" -g "daemon off; master_process off;" &
  PIDS+=($!)
  for _ in $(seq 50); do curl -sk --max-time 1 -o /dev/null "https://127.0.0.1:$NGX_HTTPS/healthz" && break; sleep 0.1; done
  local ch out
  out=$(python3 "$WORK/nginx_proxy.py" "$NGX_HTTPS") || { echo "$out"; tail -5 "$NGX/logs/error.log"; return 1; }
  # HTTP/2 (what browsers use): the two events replayed from history through h2.
  ch=${out##* }
  out=$(curl -sk --http2 -N --max-time 2 -w '\nproto=%{http_version}' \
        "https://127.0.0.1:$NGX_HTTPS/v1/channels/$ch/events?lastEventId=earliest")
  case $out in *first-line*second-line*proto=2*) ;; *) echo "HTTP/2 replay through nginx failed: $out"; return 1 ;; esac
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$NGX_HTTP/v1/x")" = 308 ] || { echo "port 80 does not redirect"; return 1; }
  # The browser module and the demo page pass through (the README tells pages to load them).
  out=$(curl -sk --max-time 5 -o "$WORK/starling.js" -w '%{http_code} %{content_type}' "https://127.0.0.1:$NGX_HTTPS/starling.js")
  case $out in "200 text/javascript"*) ;; *) echo "/starling.js through nginx: $out"; return 1 ;; esac
  grep -q "export" "$WORK/starling.js" || { echo "/starling.js through nginx is not the module"; return 1; }
  out=$(curl -sk --max-time 5 -o /dev/null -w '%{http_code} %{content_type}' "https://127.0.0.1:$NGX_HTTPS/demo")
  case $out in "200 text/html"*) ;; *) echo "/demo through nginx: $out"; return 1 ;; esac
  # A token in the query string (what EventSource sends) never reaches the access log.
  local secret_token="eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJvcHMtY2hlY2sifQ.c2lnbmF0dXJlLW11c3Qtbm90LWJlLWxvZ2dlZA"
  curl -sk --max-time 5 -o /dev/null "https://127.0.0.1:$NGX_HTTPS/v1/channels/$ch?access_token=$secret_token&lastEventId=earliest"
  curl -s --max-time 5 -o /dev/null "http://127.0.0.1:$NGX_HTTP/v1/channels/$ch/events?access_token=$secret_token"
  local alog="$NGX/logs/starling.access.log"
  for _ in $(seq 20); do grep -q "/v1/channels/$ch " "$alog" 2>/dev/null && break; sleep 0.1; done
  if grep -qE "access_token|c2lnbmF0dXJl|\?" "$alog"; then echo "the access log records a query string:"; grep -E "access_token|\?" "$alog" | head -3; return 1; fi
  grep -q "GET /v1/channels/$ch " "$alog" || { echo "the access log has no line for the request"; tail -3 "$alog"; return 1; }
  echo "SSE over HTTP/1.1 and HTTP/2, streamed NDJSON publish, /starling.js and /demo, redirect, /metrics hidden, no query string in the access log"
}
check "nginx config" nginx_config
check "nginx proxy" nginx_proxy

# ---- systemd ------------------------------------------------------------------------------
systemd_unit() {
  [ -f "$WORK/help.txt" ] || { echo "no broker --help to check flags against"; return 1; }
  python3 "$WORK/unit_check.py" ops/systemd/starling.service "$WORK/help.txt" ops/systemd/starling.env || return 1
  if [ -n "$SYSTEMD_ANALYZE" ]; then
    mkdir -p "$WORK/unit"
    sed "s#/usr/local/bin/starling#$BIN#" ops/systemd/starling.service >"$WORK/unit/starling.service"
    local out
    out=$("$SYSTEMD_ANALYZE" verify "$WORK/unit/starling.service" 2>&1) || { echo "$out"; return 1; }
    [ -z "$out" ] || { echo "$out"; return 1; }
    out=$("$SYSTEMD_ANALYZE" security --offline=true --threshold=20 "$WORK/unit/starling.service" 2>&1) \
      || { echo "$out" | grep -E "✗|Overall"; return 1; }
    echo "systemd-analyze verify clean; $(echo "$out" | grep -o 'exposure level.*' | sed 's/ *[^ ]*$//')"
  else
    echo "keys and flags only: no systemd-analyze here"
  fi
}
check "systemd unit" systemd_unit

# The shipped config file and env file, read by the binary itself: `starling check` with
# the env file's variables (the shipped files name no Redis, so nothing is dialled).
systemd_config() {
  local vars=()
  while IFS= read -r line; do
    case $line in ''|\#*) ;; STARLING_*=*) vars+=("$line") ;; *) echo "starling.env: not VAR=value: $line"; return 1 ;; esac
  done <ops/systemd/starling.env
  local out
  out=$(starling_clean env "${vars[@]}" "$BIN" check --config ops/systemd/starling.toml 2>&1) || { echo "$out"; return 1; }
  grep -q "configuration OK" <<<"$out" || { echo "$out"; return 1; }
  echo "starling check: $(grep -c ' # ' <<<"$out") settings, configuration OK"
}
check "systemd config (starling check)" systemd_config

# ---- Prometheus ---------------------------------------------------------------------------
if [ -n "$PROMTOOL" ]; then
  check "prometheus config" "$PROMTOOL" check config ops/prometheus/prometheus.yml
  check "prometheus alert rules" "$PROMTOOL" check rules ops/prometheus/alerts.yml
  check "prometheus alert tests" "$PROMTOOL" test rules ops/prometheus/alerts_test.yml
  if [ -f "$WORK/metrics.txt" ]; then
    check "broker /metrics exposition" sh -c "'$PROMTOOL' check metrics <'$WORK/metrics.txt'"
  else
    fail "broker /metrics exposition" "no /metrics from the broker"
  fi
else
  # No promtool: structure only, with PyYAML.
  python3 -c 'import yaml' 2>/dev/null || apt_install python3-yaml
  check "prometheus files (PyYAML only: no promtool)" python3 - <<'PY'
import yaml, sys
c = yaml.safe_load(open("ops/prometheus/prometheus.yml"))
jobs = {j["job_name"]: j for j in c["scrape_configs"]}
assert {"starling", "starling-readyz"} <= set(jobs), f"jobs {sorted(jobs)}"
assert "alerts.yml" in c.get("rule_files", []), "alerts.yml not in rule_files"
rules = [r for g in yaml.safe_load(open("ops/prometheus/alerts.yml"))["groups"] for r in g["rules"]]
for r in rules:
    assert {"alert", "expr", "labels", "annotations"} <= set(r), f"rule {r.get('alert')}: missing keys"
    assert r["labels"].get("severity") in ("warning", "critical"), f"rule {r['alert']}: severity"
print(f"{len(rules)} rules")
PY
fi
if [ -f "$WORK/metrics.txt" ]; then
  check "metric names" python3 "$WORK/metric_names.py" "$WORK/metrics.txt" "$ROOT"
else
  fail "metric names" "no /metrics from the broker"
fi

# ---- Grafana ------------------------------------------------------------------------------
grafana() {
  local n
  n=$(python3 "$WORK/dashboard.py" ops/grafana/starling-dashboard.json "$WORK/dashboard-rules.yml") || return 1
  if [ -z "$PROMTOOL" ]; then echo "$n queries, structure only: no promtool to parse them"; return 0; fi
  "$PROMTOOL" check rules "$WORK/dashboard-rules.yml" >/dev/null || return 1
  echo "$n queries parse as PromQL"
}
check "grafana dashboard" grafana

# ---- container ----------------------------------------------------------------------------
check "container files (static)" python3 "$WORK/container.py" "$ROOT"

# ---- Redis Cluster (ops/redis/cluster) -------------------------------------------------------
cluster_shellcheck() {
  [ -n "$SHELLCHECK" ] || { echo "no shellcheck (install failed)"; return 1; }
  "$SHELLCHECK" ops/redis/cluster/cluster.sh || return 1
  echo "shellcheck $("$SHELLCHECK" --version | sed -n 's/^version: //p'): clean"
}
check "redis cluster script (shellcheck)" cluster_shellcheck

# The benchmark scripts (ops/bench): run by hand, so nothing else would notice them rot.
bench_shellcheck() {
  [ -n "$SHELLCHECK" ] || { echo "no shellcheck (install failed)"; return 1; }
  "$SHELLCHECK" ops/bench/*.sh || return 1
  bash -n ops/bench/run.sh && python3 -c 'import ast; ast.parse(open("ops/bench/table.py").read())' || return 1
  echo "shellcheck: $(cd ops/bench && echo *.sh) clean; table.py compiles"
}
check "bench scripts (shellcheck)" bench_shellcheck

# Start a real 6-node cluster, then stop it half broken (a node SIGKILLed, another without
# its pid file): nothing may stay running, and a second stop is a no-op.
cluster_smoke() {
  command -v redis-server >/dev/null || { echo "no redis-server (make deps installs it)"; return 1; }
  local dir="$WORK/cluster" first="" seeds out p pids
  for _ in $(seq 20); do
    p=$((20000 + RANDOM % 2700))   # nodes 20000-22705, bus 30000-32705: below the ephemeral range
    python3 -c 'import socket,sys
for p in [int(sys.argv[1]) + i for i in range(6)] + [int(sys.argv[1]) + 10000 + i for i in range(6)]:
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", p)); s.close()' "$p" 2>/dev/null \
      && { first=$p; break; }
  done
  [ -n "$first" ] || { echo "no 6 free ports (+ bus ports) found"; return 1; }
  local started=$SECONDS
  seeds=$(bash ops/redis/cluster/cluster.sh start "$dir" "$first" 2>"$WORK/cluster.err") \
    || { cat "$WORK/cluster.err"; bash ops/redis/cluster/cluster.sh stop "$dir"; return 1; }
  local took=$((SECONDS - started))
  [ "$seeds" = "redis://127.0.0.1:$first,redis://127.0.0.1:$((first + 1)),redis://127.0.0.1:$((first + 2))" ] \
    || { echo "seed list: $seeds"; bash ops/redis/cluster/cluster.sh stop "$dir"; return 1; }
  for p in $(seq "$first" $((first + 5))); do
    out=$(redis-cli -p "$p" CLUSTER INFO | tr -d '\r')
    grep -qx cluster_state:ok <<<"$out" && grep -qx cluster_known_nodes:6 <<<"$out" \
      || { echo ":$p $out"; bash ops/redis/cluster/cluster.sh stop "$dir"; return 1; }
  done
  # A second start on ports in use refuses at once and starts nothing.
  if bash ops/redis/cluster/cluster.sh start "$WORK/cluster2" "$first" 2>"$WORK/cluster2.err"; then
    echo "a start on ports in use succeeded"; bash ops/redis/cluster/cluster.sh stop "$dir"; return 1
  fi
  grep -q "ports in use" "$WORK/cluster2.err" || { cat "$WORK/cluster2.err"; bash ops/redis/cluster/cluster.sh stop "$dir"; return 1; }
  kill -9 "$(cat "$dir/$((first + 1))/redis.pid")"
  rm -f "$dir/$((first + 3))/redis.pid"
  bash ops/redis/cluster/cluster.sh stop "$dir" 2>/dev/null
  pids=$(pgrep -f "redis-server .*:($(seq -s '|' "$first" $((first + 5))))" || true)
  [ -z "$pids" ] || { echo "still running after stop: $pids"; return 1; }
  out=$(bash ops/redis/cluster/cluster.sh stop "$dir" 2>&1) || { echo "second stop: $out"; return 1; }
  [ -z "$out" ] || { echo "second stop: $out"; return 1; }
  echo "3 masters + 3 replicas up in ${took} s; refuses ports in use; stops half broken, twice"
}
check "redis cluster start/stop" cluster_smoke

# ---- docs ---------------------------------------------------------------------------------
deploy_docs() {
  [ -f docs/deploy.md ] || { echo "no docs/deploy.md"; return 1; }
  local f missing=()
  for f in ops/nginx/starling.conf ops/systemd/starling.service ops/systemd/starling.env ops/systemd/starling.toml \
           ops/prometheus/prometheus.yml ops/prometheus/alerts.yml ops/grafana/starling-dashboard.json \
           ops/container/Containerfile ops/scripts/check-ops.sh; do
    [ -f "$f" ] || missing+=("$f (file)")
    grep -q "$f" docs/deploy.md || missing+=("$f (not in docs/deploy.md)")
  done
  [ ${#missing[@]} -eq 0 ] || { printf '%s\n' "${missing[@]}"; return 1; }
}
check "deploy docs" deploy_docs

if [ "$failures" -gt 0 ]; then
  echo "ops checks: $failures failed"
  exit 1
fi
echo "ops checks: all passed"
