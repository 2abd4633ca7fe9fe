#!/usr/bin/env python3
"""The sluice benchmark harness (run it through bench/run; see bench/README.md).

Measures sluice against HAProxy and nginx (stream) on this machine, interleaved, and prints one
markdown table of medians with every figure as a ratio to the best peer; the raw numbers go to
bench/results/<timestamp>.json. Every server and client it starts is bounded in time and count
and is stopped by PID when its measurement ends (or when the harness itself is interrupted).
"""

import argparse
import datetime
import json
import os
import platform
import resource
import select
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
HOST = "127.0.0.1"  # the benchmark never leaves the loopback address
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
NGINX_STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"

# Debian 12 packages: nginx's stream module is the separate libnginx-mod-stream (nginx-light and
# nginx-core only pull it in as a dependency of extra modules).
PEER_PACKAGES = {
    "haproxy": "haproxy",
    "nginx": "nginx",
    "libnginx-mod-stream": "libnginx-mod-stream",
    "iperf3": "iperf3",
    "valgrind": "valgrind",
    "perf": "linux-perf",
}
BUILD_PACKAGES = ["g++", "cmake", "ninja-build"]

# Names a cheaper built-in pass-through middleware might have; replace with a pattern that never
# occurs is the fallback. replace holds back a chunk's tail that could be the start of `from`
# until more bytes come, so `from` must not start with a byte that ends a message of a
# request/response protocol used here: with "\u0000never\u0001", iperf3's control exchange stalls
# for good (it waits for a reply to a message ending in a 0 byte). 0x7f ends none of them.
PASS_THROUGH_TYPES = ["pass", "passthrough", "pass-through", "noop", "nop", "identity"]
NEVER = {"type": "replace", "from": "\u007fnever\u0000", "to": "x"}

CONTENDERS = ["direct", "haproxy", "haproxy-busy", "nginx", "sluice", "sluice-busy", "sluice-copy",
              "sluice-8mw", "sluice-hexdump", "sluice-capture"]
# The ratio base of every column is the best of these, in their default configs. HAProxy's
# busy-polling is a row of its own beside sluice's busy_poll_us, not a base: it keeps every thread
# polling forever, so its RTT falls below direct's and an added-latency ratio against it means
# nothing.
PEERS = ["haproxy", "nginx"]
# Spinning proxies would count their idle polling as work under callgrind and perf.
BUSY = ["haproxy-busy", "sluice-busy"]
BUSY_POLL_US = 50
LABELS = {
    "direct": "direct (no proxy)",
    "haproxy": "HAProxy, mode tcp",
    "haproxy-busy": "HAProxy, mode tcp, busy-polling",
    "nginx": "nginx stream",
    "sluice": "sluice, empty chain",
    "sluice-busy": f"sluice, empty chain, busy_poll_us {BUSY_POLL_US}",
    "sluice-copy": "sluice, empty chain, splice off",
    "sluice-8mw": "sluice, 8 pass-through middlewares",
    "sluice-hexdump": "sluice, hexdump max_bytes 0",
    "sluice-capture": "sluice, capture snaplen 96",
}
SCENARIOS = ["tput1", "tput8", "rtt", "rtt1", "connrate", "idle"]

# Columns of the table: (key, header, higher_is_better, format, ratio kind).
COLUMNS = [
    ("tput1_gbps", "1-stream Gbit/s", True, "{:.2f}", "plain"),
    ("tput8_gbps", "8-stream Gbit/s", True, "{:.2f}", "plain"),
    ("cpu_s_per_gb", "CPU s/GB", False, "{:.2f}", "plain"),
    ("rtt_p50_us", "RTT p50 µs", False, "{:.1f}", "added"),
    ("rtt_p99_us", "RTT p99 µs", False, "{:.1f}", "added"),
    ("rtt1_p50_us", "1-CPU RTT p50 µs", False, "{:.1f}", "added"),
    ("rtt1_p99_us", "1-CPU RTT p99 µs", False, "{:.1f}", "added"),
    ("conn_per_s", "conn/s", True, "{:,.0f}", "plain"),
    ("rss_idle_kib", "RSS/idle channel KiB", False, "{:.2f}", "plain"),
    ("rss_echoed_kib", "RSS/channel after echo KiB", False, "{:.2f}", "plain"),
]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# Processes: everything started is registered, and stopped by PID (with its descendants).

LIVE = {}  # pid -> Popen


def start(argv, logpath=None, stdin=None, stdout=None, cwd=None):
    out = open(logpath, "ab") if logpath else subprocess.DEVNULL
    try:
        p = subprocess.Popen(argv, stdin=stdin if stdin is not None else subprocess.DEVNULL,
                             stdout=stdout if stdout is not None else out,
                             stderr=out, cwd=cwd)
    finally:
        if logpath:
            out.close()
    LIVE[p.pid] = p
    return p


def children_map():
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        ppid = int(s[s.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


def descendants(pid):
    kids, out, todo = children_map(), [], [pid]
    while todo:
        for c in kids.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def stop(p, grace=5.0, sig=signal.SIGTERM):
    """Stops p (and what it forked) by PID: sig, up to `grace` seconds, then SIGKILL.
    Returns (exit code, True if it had to be killed)."""
    if p is None:
        return None, False
    tree = descendants(p.pid)
    killed = False
    if p.poll() is None:
        try:
            p.send_signal(sig)
        except ProcessLookupError:
            pass
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            killed = True
            p.kill()
            p.wait()
    for pid in tree:  # forked workers (nginx) that outlived their parent
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    LIVE.pop(p.pid, None)
    return p.returncode, killed


def stop_all():
    for p in list(LIVE.values()):
        stop(p, grace=2.0)


def tail(path, n=15):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:]).strip()
    except OSError:
        return ""


# ---------------------------------------------------------------------------------------------
# /proc readings

def tree_pids(p):
    return [p.pid] + descendants(p.pid)


def cpu_seconds(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                s = f.read()
        except OSError:
            continue
        fields = s[s.rindex(")") + 2:].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / CLK_TCK


def rss_kib(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * PAGE_KB
        except OSError:
            continue
    return total


def fd_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def listening(port):
    want = f"{port:04X}"
    try:
        with open("/proc/net/tcp") as f:
            next(f)
            for line in f:
                parts = line.split()
                local, state = parts[1], parts[3]
                if state == "0A" and local.endswith(":" + want) and local.startswith("0100007F"):
                    return True
    except OSError:
        pass
    return False


def wait_listening(port, proc, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if listening(port):
            return
        if proc is not None and proc.poll() is not None:
            raise BenchError(f"{what} exited with status {proc.returncode} before listening")
        time.sleep(0.02)
    raise BenchError(f"{what} did not listen on {HOST}:{port} within {timeout:.0f} s")


_next_port = [20000 + (os.getpid() % 1000) * 10]


def free_port():
    """A free port below the ephemeral range (32768+), so no client socket can hold it."""
    for _ in range(2000):
        _next_port[0] += 1
        if _next_port[0] >= 32000:
            _next_port[0] = 20000
        port = _next_port[0]
        s = socket.socket()
        try:
            s.bind((HOST, port))
            if not listening(port):
                return port
        except OSError:
            continue
        finally:
            s.close()
    raise BenchError("no free port")


# ---------------------------------------------------------------------------------------------
# Proxies

class Proxy:
    def __init__(self, name, port, proc=None, logpath=None):
        self.name, self.port, self.proc, self.logpath = name, port, proc, logpath

    def pids(self):
        return tree_pids(self.proc) if self.proc else []

    def alive(self):
        return self.proc is None or self.proc.poll() is None


def haproxy_config(port, upstream, threads, busy=False):
    busy_line = "    busy-polling\n" if busy else ""
    return f"""global
    nbthread {threads}
{busy_line}    maxconn 20000
    # maxconn 20000 asks for ~40,000 fds and the hard limit here is 20,000: start anyway (a
    # warning), as the other proxies do; 9,900 channels fit.
    no strict-limits

defaults
    mode tcp
    maxconn 20000
    timeout connect 5s
    timeout client 10m
    timeout server 10m

frontend bench
    bind {HOST}:{port}
    default_backend upstream

backend upstream
    server up1 {HOST}:{upstream}
"""


def nginx_config(port, upstream, workers, tmp, single):
    module = f"load_module {NGINX_STREAM_MODULE};\n" if os.path.exists(NGINX_STREAM_MODULE) else ""
    master = "master_process off;\n" if single else ""
    return f"""{module}daemon off;
{master}worker_processes {workers};
worker_rlimit_nofile 20000;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;

events {{
    worker_connections 20000;
}}

stream {{
    server {{
        listen {HOST}:{port};
        proxy_pass {HOST}:{upstream};
        proxy_connect_timeout 5s;
        proxy_timeout 10m;
    }}
}}
"""


def sluice_middlewares(name, env, workdir):
    if name == "sluice-8mw":
        return [dict(env["pass_through"]) for _ in range(8)]
    if name == "sluice-hexdump":
        return [{"type": "hexdump", "max_bytes": 0}]
    if name == "sluice-capture":
        # Every packet's headers and first 96 payload bytes into one shared file (a file per
        # channel would hold a descriptor per channel: 9,900 idle channels would pass the fd
        # limit): the cost of building and writing records, without filling the disk.
        return [{"type": "capture", "path": os.path.join(workdir, "bench.pcap"), "snaplen": 96}]
    return []


def sluice_config(name, port, upstream, workers, env, workdir):
    listener = {
        "name": "bench",
        "listen": f"{HOST}:{port}",
        "upstream": f"{HOST}:{upstream}",
        "middlewares": sluice_middlewares(name, env, workdir),
    }
    if name == "sluice-copy":
        # The buffered data path with nothing in the chain: what the middleware rows add to.
        listener["splice"] = False
    config = {"workers": workers, "listeners": [listener]}
    if name == "sluice-busy":
        config["busy_poll_us"] = BUSY_POLL_US
    return json.dumps(config, indent=2) + "\n"


def start_proxy(name, upstream, env, tmp, workers=2, valgrind_out=None):
    """Starts contender `name` in front of HOST:upstream; returns once it listens."""
    if name == "direct":
        return Proxy(name, upstream)
    port = free_port()
    d = tempfile.mkdtemp(prefix=f"{name}-", dir=tmp)
    logpath = os.path.join(d, "stderr.log")
    single = valgrind_out is not None
    if name.startswith("haproxy"):
        cfg = os.path.join(d, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write(haproxy_config(port, upstream, workers, busy=name == "haproxy-busy"))
        argv = ["haproxy", "-db", "-f", cfg, "-p", os.path.join(d, "haproxy.pid")]
    elif name == "nginx":
        cfg = os.path.join(d, "nginx.conf")
        with open(cfg, "w") as f:
            f.write(nginx_config(port, upstream, workers, d, single))
        argv = ["nginx", "-p", d, "-c", cfg, "-e", os.path.join(d, "nginx-error.log")]
    elif name.startswith("sluice"):
        cfg = os.path.join(d, "sluice.json")
        with open(cfg, "w") as f:
            f.write(sluice_config(name, port, upstream, workers, env, d))
        argv = [env["sluice"], "run", "-c", cfg, "--log-level", "warn"]
    else:
        raise BenchError(f"unknown contender {name}")
    if valgrind_out:
        argv = ["valgrind", "-q", "--tool=callgrind", f"--callgrind-out-file={valgrind_out}"] + argv
    proc = start(argv, logpath=logpath)
    px = Proxy(name, port, proc, logpath)
    try:
        wait_listening(port, proc, 120 if valgrind_out else 15, name)
        if name == "nginx" and not single:  # the workers are forked after the bind
            deadline = time.time() + 5
            while len(descendants(proc.pid)) < workers and time.time() < deadline:
                time.sleep(0.02)
        time.sleep(0.2)
    except BenchError as e:
        stop(proc)
        raise BenchError(f"{e}\n{tail(logpath)}") from None
    return px


def stop_proxy(px, notes, grace=5.0):
    """Stops a proxy; notes how a sluice that misbehaved on the way out did so."""
    if px is None or px.proc is None:
        return
    died = px.proc.poll()
    code, killed = stop(px.proc, grace=grace)
    if died is not None:
        notes.append(f"{px.name} had exited (status {died}) before it was stopped\n{tail(px.logpath)}")
    elif killed:
        notes.append(f"{px.name} did not exit within {grace:.0f} s of SIGTERM (killed)")
    elif px.name.startswith("sluice") and code not in (0, None):
        notes.append(f"{px.name} exited with status {code} on SIGTERM\n{tail(px.logpath)}")


def start_echo(env, tmp, seconds):
    port = free_port()
    p = start([env["tools"] + "/bench-echo", "--listen", f"{HOST}:{port}", "--seconds",
               str(int(seconds))], logpath=os.path.join(tmp, "bench-echo.log"))
    wait_listening(port, p, 10, "bench-echo")
    return p, port


def start_iperf_server(tmp, seconds):
    port = free_port()
    # One test, then it exits; the harness stops it by PID after `seconds` in any case.
    p = start(["iperf3", "-s", "-1", "-B", HOST, "-p", str(port)],
              logpath=os.path.join(tmp, "iperf3-server.log"))
    wait_listening(port, p, 10, "iperf3 -s")
    return p, port


def run_json(argv, timeout):
    try:
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BenchError(f"{os.path.basename(argv[0])} did not finish within {timeout:.0f} s")
    try:
        return json.loads(r.stdout.strip().splitlines()[-1]), r
    except (json.JSONDecodeError, IndexError):
        raise BenchError(f"{shlex.join(argv)}: status {r.returncode}, no JSON result: "
                         f"{(r.stderr or r.stdout).strip()[-500:]}")


# ---------------------------------------------------------------------------------------------
# Scenarios: each starts its upstream and a fresh proxy, measures, and stops both.

def scenario_tput(name, env, tmp, cfg, streams):
    server, up = start_iperf_server(tmp, cfg.duration + 30)
    px = None
    notes = []
    try:
        px = start_proxy(name, up, env, tmp)
        pids = px.pids()
        cpu0 = cpu_seconds(pids)
        argv = ["iperf3", "-c", HOST, "-p", str(px.port), "-t", str(cfg.duration), "-P",
                str(streams), "-J", "--connect-timeout", "3000"]
        try:
            r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               timeout=cfg.duration + 10)
        except subprocess.TimeoutExpired:
            raise BenchError(f"iperf3 -c did not finish within {cfg.duration + 10} s")
        cpu1 = cpu_seconds(pids)
        if not px.alive():
            raise BenchError(f"{name} exited during the test\n{tail(px.logpath)}")
        try:
            out = json.loads(r.stdout)
        except json.JSONDecodeError:
            raise BenchError(f"iperf3: status {r.returncode}: {(r.stderr or r.stdout)[-400:]}")
        if "error" in out:
            raise BenchError(f"iperf3: {out['error']}")
        recv = out["end"]["sum_received"]
        res = {"streams": streams, "gbps": recv["bits_per_second"] / 1e9, "bytes": recv["bytes"],
               "seconds": recv["seconds"]}
        if px.proc is not None and recv["bytes"] > 0:
            res["proxy_cpu_s"] = cpu1 - cpu0
            res["cpu_s_per_gb"] = (cpu1 - cpu0) / (recv["bytes"] / 1e9)
        return res, notes
    finally:
        stop_proxy(px, notes)
        stop(server, grace=2)


def scenario_rtt(name, env, tmp, cfg):
    echo, up = start_echo(env, tmp, cfg.rtt_seconds + 30)
    px = None
    notes = []
    try:
        px = start_proxy(name, up, env, tmp)
        out, r = run_json([env["tools"] + "/bench-load", "rtt", "--connect", f"{HOST}:{px.port}",
                           "--count", str(cfg.rtt_count), "--warmup", str(cfg.rtt_warmup),
                           "--seconds", str(cfg.rtt_seconds)], cfg.rtt_seconds + 20)
        if r.returncode != 0 or out["count"] != cfg.rtt_count:
            raise BenchError(f"rtt: {out['count']} of {cfg.rtt_count} round trips, "
                             f"{out['errors']} errors")
        return out, notes
    finally:
        stop_proxy(px, notes)
        stop(echo, grace=2)


def scenario_rtt1(name, env, tmp, cfg):
    """rtt with the client, the echo server and the proxy all on one CPU (the harness's affinity,
    which they inherit). Across CPUs a round trip is mostly the cost of waking a thread on another
    CPU, which on a virtual machine is the host's and moves with where the scheduler put each
    process (a direct ping-pong here: 12.7 µs on one CPU, 50 µs across two); on one CPU what is
    left is each proxy's own work and its context switches."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {max(before)})
    try:
        return scenario_rtt(name, env, tmp, cfg)
    finally:
        os.sched_setaffinity(0, before)


def scenario_connrate(name, env, tmp, cfg):
    echo, up = start_echo(env, tmp, cfg.connrate_seconds + 30)
    px = None
    notes = []
    try:
        px = start_proxy(name, up, env, tmp)
        out, r = run_json([env["tools"] + "/bench-load", "connrate", "--connect",
                           f"{HOST}:{px.port}", "--threads", "4", "--seconds",
                           str(cfg.connrate_seconds)], cfg.connrate_seconds + 30)
        if out["connect_errors"] or out["io_errors"]:
            notes.append(f"{name} connrate: {out['connect_errors']} connect errors, "
                         f"{out['io_errors']} echo errors of {out['connections']} connections")
        if not px.alive():
            raise BenchError(f"{name} exited during the test\n{tail(px.logpath)}")
        return out, notes
    finally:
        stop_proxy(px, notes)
        stop(echo, grace=2)


def read_line(proc, timeout):
    deadline = time.time() + timeout
    buf = b""
    fd = proc.stdout.fileno()
    while time.time() < deadline:
        r, _, _ = select.select([fd], [], [], max(0.0, min(1.0, deadline - time.time())))
        if r:
            c = os.read(fd, 1)
            if not c:
                return None
            if c == b"\n":
                return buf.decode()
            buf += c
        elif proc.poll() is not None:
            return None
    return None


def scenario_idle(name, env, tmp, cfg):
    if name == "direct":
        return None, []  # no proxy, nothing to weigh
    n = cfg.channels
    hold = 60 + n / 200  # a generous bound for opening, echoing and measuring
    echo, up = start_echo(env, tmp, hold + 30)
    px = client = None
    notes = []
    try:
        px = start_proxy(name, up, env, tmp)
        time.sleep(0.3)
        pids = px.pids()
        rss0 = rss_kib(pids)
        fds0 = sum(fd_count(p) for p in pids)
        echo_fds0 = fd_count(echo.pid)
        client = start([env["tools"] + "/bench-load", "idle", "--connect", f"{HOST}:{px.port}",
                        "--count", str(n), "--seconds", str(int(hold))],
                       logpath=os.path.join(tmp, "bench-load-idle.log"),
                       stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        line = read_line(client, hold)
        if not line or not line.startswith("ready"):
            raise BenchError(f"idle client: no 'ready' line ({line!r}); "
                             f"{name} alive: {px.alive()}\n{tail(px.logpath)}")
        opened = int(line.split()[1])
        failed = int(line.split()[2])
        # Every channel counts once its upstream connection reached the echo server.
        deadline = time.time() + 30
        while time.time() < deadline:
            held = fd_count(echo.pid) - echo_fds0
            if held >= opened or not px.alive():
                break
            time.sleep(0.1)
        time.sleep(0.5)
        held = fd_count(echo.pid) - echo_fds0
        pids = px.pids()
        rss1 = rss_kib(pids)
        fds1 = sum(fd_count(p) for p in pids)
        client.stdin.write(b"echo\n")
        client.stdin.flush()
        line = read_line(client, hold)
        if not line or not line.startswith("echoed"):
            raise BenchError(f"idle client: no 'echoed' line ({line!r}); "
                             f"{name} alive: {px.alive()}\n{tail(px.logpath)}")
        echoed, echo_failed = int(line.split()[1]), int(line.split()[2])
        time.sleep(0.5)
        rss2 = rss_kib(px.pids())
        if not px.alive():
            raise BenchError(f"{name} exited during the test\n{tail(px.logpath)}")
        base = max(1, min(opened, held))
        res = {"channels": n, "opened": opened, "connect_failed": failed, "held": held,
               "echoed": echoed, "echo_failed": echo_failed, "rss0_kib": rss0, "rss1_kib": rss1,
               "rss2_kib": rss2, "proxy_fds0": fds0, "proxy_fds1": fds1,
               "rss_idle_kib": (rss1 - rss0) / base, "rss_echoed_kib": (rss2 - rss0) / base}
        if opened != n or held != opened or echoed != opened:
            notes.append(f"{name} idle: {opened} of {n} connections opened ({failed} failed), "
                         f"{held} reached the upstream, {echoed} echoed ({echo_failed} failed)")
        return res, notes
    finally:
        if client is not None:
            try:
                client.stdin.write(b"quit\n")
                client.stdin.close()
            except (BrokenPipeError, ValueError):
                pass
            try:
                client.wait(10)
            except subprocess.TimeoutExpired:
                pass
            stop(client, grace=1)
        stop_proxy(px, notes)
        stop(echo, grace=2)


def metrics_of(scenario, res):
    """The table's figures from one scenario result."""
    if res is None:
        return {}
    if scenario == "tput1":
        m = {"tput1_gbps": res["gbps"]}
        if "cpu_s_per_gb" in res:
            m["cpu_s_per_gb"] = res["cpu_s_per_gb"]
        return m
    if scenario == "tput8":
        m = {"tput8_gbps": res["gbps"]}
        if "cpu_s_per_gb" in res:
            m["cpu8_s_per_gb"] = res["cpu_s_per_gb"]
        return m
    if scenario == "rtt":
        return {"rtt_p50_us": res["p50_us"], "rtt_p99_us": res["p99_us"]}
    if scenario == "rtt1":
        return {"rtt1_p50_us": res["p50_us"], "rtt1_p99_us": res["p99_us"]}
    if scenario == "connrate":
        return {"conn_per_s": res["rate"]}
    if scenario == "idle":
        return {"rss_idle_kib": res["rss_idle_kib"], "rss_echoed_kib": res["rss_echoed_kib"]}
    return {}


# ---------------------------------------------------------------------------------------------
# Report

def ratio_text(col, med, name):
    key, _, higher, _, kind = col
    v = med.get(key, {}).get(name)
    peers = [med.get(key, {}).get(p) for p in PEERS]
    peers = [p for p in peers if p is not None]
    if v is None or not peers:
        return ""
    best = max(peers) if higher else min(peers)
    if kind == "added":
        if name == "direct":
            return ""
        d = med.get(key, {}).get("direct")
        if d is not None:
            # Noise (or a busy-polling row) can put a median under direct's: a ratio of added
            # latencies would then come out negative or from a base of nothing.
            if v < d:
                return " (below direct)"
            if best <= d:
                return " (n/a: the best peer is not above direct)"
            return f" ({(v - d) / (best - d):.2f}x)"
    if best == 0:
        return ""
    return f" ({v / best:.2f}x)"


def table(med, contenders):
    head = "| | " + " | ".join(c[1] for c in COLUMNS) + " |"
    lines = [head, "|---" * (len(COLUMNS) + 1) + "|"]
    for name in contenders:
        cells = []
        for col in COLUMNS:
            v = med.get(col[0], {}).get(name)
            cells.append("–" if v is None else col[3].format(v) + ratio_text(col, med, name))
        lines.append(f"| {LABELS[name]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu, "kernel": platform.release(),
            "nofile_hard": resource.getrlimit(resource.RLIMIT_NOFILE)[1]}


def version(argv):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return ((r.stdout or "") + (r.stderr or "")).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return None


def header(env, date, cmd):
    m = env["machine"]
    v = env["versions"]
    return "\n".join([
        f"**Date:** {date}  ",
        f"**Machine:** {m['nproc']} cores, {m['cpu']}, Linux {m['kernel']}  ",
        f"**Command:** `{cmd}`  ",
        f"**Versions:** sluice {v.get('sluice')} ({v.get('git')}); {v.get('haproxy')}; "
        f"{v.get('nginx')}; {v.get('iperf3')}",
    ])


# ---------------------------------------------------------------------------------------------
# Setup: peers from Debian, sluice in Release, the bench tools.

def sh(argv, **kw):
    log("+ " + shlex.join(argv))
    subprocess.run(argv, check=True, **kw)


def dpkg_installed(pkg):
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True)
    return "install ok installed" in r.stdout


def install_packages(names):
    missing = [p for p in names if not dpkg_installed(p)]
    if not missing:
        return
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    log(f"bench: installing {' '.join(missing)} (Debian packages)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    sh(sudo + ["apt-get", "update", "-qq"], env=env)
    sh(sudo + ["apt-get", "install", "-y", "-qq", "--no-install-recommends"] + missing, env=env)


def build(args):
    jobs = ["-j", str(args.jobs)] if args.jobs else []
    if not shutil.which("cmake") or not shutil.which("ninja") or not shutil.which("g++"):
        if args.no_install:
            raise BenchError("cmake, ninja and g++ are needed (./setup installs them)")
        install_packages(BUILD_PACKAGES)
    out = os.path.join(ROOT, "build-bench")
    if args.sluice:
        sluice = os.path.abspath(args.sluice)
    else:
        try:
            sh(["cmake", "-S", ROOT, "-B", out, "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
                "-DSLUICE_TESTS=OFF"], stdout=sys.stderr)
            sh(["cmake", "--build", out] + jobs, stdout=sys.stderr)
        except subprocess.CalledProcessError:
            raise BenchError("building sluice failed (are its dependencies installed? ./setup "
                             "installs them)") from None
        sluice = os.path.join(out, "bin", "sluice")
    tools = os.path.join(out, "bench-tools")
    sh(["cmake", "-S", os.path.join(BENCH, "tools"), "-B", tools, "-G", "Ninja"],
       stdout=sys.stderr)
    sh(["cmake", "--build", tools] + jobs, stdout=sys.stderr)
    if not os.access(sluice, os.X_OK):
        raise BenchError(f"no sluice executable at {sluice}")
    return sluice, tools


def pass_through(sluice):
    r = subprocess.run([sluice, "plugins"], capture_output=True, text=True, timeout=30)
    types = {line.split()[0] for line in r.stdout.splitlines()
             if line.strip() and not line[0].isspace()}
    for t in PASS_THROUGH_TYPES:
        if t in types:
            return {"type": t}
    return dict(NEVER)


# ---------------------------------------------------------------------------------------------
# Modes

class Settings:
    def __init__(self, args):
        q = args.quick
        self.rounds = args.rounds or (1 if q else 3)
        self.duration = args.duration or (2 if q else 5)
        self.rtt_count = args.rtt_count or (2000 if q else 20000)
        self.rtt_warmup = 100 if q else 1000
        self.rtt_seconds = 30 if q else 60
        self.connrate_seconds = args.connrate_seconds or (1.5 if q else 5)
        self.channels = args.channels or (1000 if q else 9900)

    def as_dict(self):
        return dict(self.__dict__)


def run_timed(args, env, tmp, contenders, scenarios):
    cfg = Settings(args)
    runs, notes = [], []
    values = {}  # metric -> contender -> [per round]
    funcs = {
        "tput1": lambda n: scenario_tput(n, env, tmp, cfg, 1),
        "tput8": lambda n: scenario_tput(n, env, tmp, cfg, 8),
        "rtt": lambda n: scenario_rtt(n, env, tmp, cfg),
        "rtt1": lambda n: scenario_rtt1(n, env, tmp, cfg),
        "connrate": lambda n: scenario_connrate(n, env, tmp, cfg),
        "idle": lambda n: scenario_idle(n, env, tmp, cfg),
    }
    for sc in scenarios:
        for rnd in range(cfg.rounds):
            for name in contenders:  # interleaved: A B C ... A B C ...
                if sc == "idle" and name == "direct":
                    continue
                # A poller that never yields its CPU would hold the one CPU from its own peers.
                if sc == "rtt1" and name == "haproxy-busy":
                    continue
                t0 = time.time()
                entry = {"scenario": sc, "contender": name, "round": rnd + 1}
                try:
                    res, more = funcs[sc](name)
                    entry["result"] = res
                    notes += more
                    for k, v in metrics_of(sc, res).items():
                        values.setdefault(k, {}).setdefault(name, []).append(v)
                    summary = ", ".join(f"{k}={v:.4g}" for k, v in metrics_of(sc, res).items())
                except BenchError as e:
                    entry["error"] = str(e)
                    notes.append(f"{name} {sc} round {rnd + 1}: {e}")
                    summary = "ERROR " + str(e).splitlines()[0]
                entry["seconds"] = round(time.time() - t0, 2)
                runs.append(entry)
                log(f"  {sc:8} round {rnd + 1}/{cfg.rounds} {name:15} {summary}")
    med = {k: {n: statistics.median(v) for n, v in per.items() if v} for k, per in values.items()}
    return cfg, runs, values, med, notes


def callgrind_total(path):
    with open(path) as f:
        for line in f:
            if line.startswith("totals:") or line.startswith("summary:"):
                return int(line.split()[1])
    raise BenchError(f"no totals in {path}")


def run_callgrind(args, env, tmp, contenders):
    q = args.quick
    n_rtt = args.rtt_count or (500 if q else 5000)
    bulk = (1 if q else 4) * 1024 * 1024
    names = [c for c in contenders if c != "direct"]
    tools = env["tools"]
    results, notes = {}, []
    for name in names:
        counts = {}
        for what in ("baseline", "rtt", "bulk"):
            echo, up = start_echo(env, tmp, 600)
            out = os.path.join(tmp, f"callgrind.{name}.{what}.out")
            px = None
            try:
                px = start_proxy(name, up, env, tmp, workers=1, valgrind_out=out)
                if what == "bulk":
                    argv = [tools + "/bench-load", "bulk", "--bytes", str(bulk)]
                else:
                    argv = [tools + "/bench-load", "rtt", "--count",
                            str(0 if what == "baseline" else n_rtt), "--warmup", "0"]
                res, r = run_json(argv + ["--connect", f"{HOST}:{px.port}", "--seconds", "300"],
                                  330)
                if r.returncode != 0:
                    raise BenchError(f"{what} through {name} under callgrind failed: {res}")
                time.sleep(0.5)  # the proxy sees both closes before it is stopped
                stop_proxy(px, notes, grace=60)
                px = None
                counts[what] = callgrind_total(out)
                log(f"  callgrind {name:8} {what:8} {counts[what]:,} instructions")
            except BenchError as e:
                notes.append(f"callgrind {name} {what}: {e}")
                log(f"  callgrind {name:8} {what:8} ERROR {str(e).splitlines()[0]}")
            finally:
                stop_proxy(px, notes, grace=60)
                stop(echo, grace=2)
        r = {"counts": counts, "round_trips": n_rtt, "bulk_bytes": bulk}
        if "baseline" in counts and "rtt" in counts:
            r["per_round_trip"] = (counts["rtt"] - counts["baseline"]) / n_rtt
        if "baseline" in counts and "bulk" in counts:
            # The proxy moves every byte twice: client -> upstream, and the echo back.
            r["per_byte"] = (counts["bulk"] - counts["baseline"]) / (2 * bulk)
        results[name] = r

    def cell(name, key, fmt):
        v = results.get(name, {}).get(key)
        peers = [results.get(p, {}).get(key) for p in PEERS]
        peers = [p for p in peers if p is not None]
        if v is None:
            return "–"
        s = fmt.format(v)
        if peers and min(peers) > 0:
            s += f" ({v / min(peers):.2f}x)"
        return s

    lines = ["| | instructions per 64-byte round trip | instructions per byte in bulk |",
             "|---|---|---|"]
    for name in names:
        lines.append(f"| {LABELS[name]} | {cell(name, 'per_round_trip', '{:,.0f}')} | "
                     f"{cell(name, 'per_byte', '{:.3f}')} |")
    return {"round_trips": n_rtt, "bulk_bytes": bulk, "results": results}, "\n".join(lines), notes


# ---------------------------------------------------------------------------------------------
# --perf: where each proxy's CPU goes (user space against the kernel, and which system calls), from
# system-wide cpu-clock samples. callgrind counts user space only; on loopback most of a proxy's
# time is the kernel's TCP work, which this shows.

PERF_SAMPLE_HZ = 999


def perf_samples(path):
    """Yields (pid, in_kernel, syscall or None) per sample of `perf script` on `path`."""
    r = subprocess.run(["perf", "script", "-i", path, "-F", "pid,ip,sym,dso"],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise BenchError(f"perf script: {r.stderr.strip()[-400:]}")
    pid, frames = None, []

    def sample():
        top_kernel = bool(frames) and frames[0][1] == "[kernel.kallsyms]"
        call = None
        for sym, _ in frames:  # the outermost __x64_sys_ frame is the system call
            if sym.startswith("__x64_sys_"):
                call = sym[len("__x64_sys_"):]
        return pid, top_kernel, call

    for line in r.stdout.splitlines():
        if not line.strip():
            if pid is not None:
                yield sample()
            pid, frames = None, []
        elif not line.startswith("\t"):  # a sample's header line: its pid; frames follow
            pid = int(line.split()[0])
        else:
            parts = line.split()
            if len(parts) >= 3:
                frames.append((parts[1].split("+")[0], parts[-1].strip("()")))
    if pid is not None:
        yield sample()


def perf_profile(path, pids):
    """The proxy's share of all CPU samples (idle included), split by user/kernel and syscall."""
    total = mine = kernel = 0
    calls = {}
    for pid, in_kernel, call in perf_samples(path):
        total += 1
        if pid not in pids:
            continue
        mine += 1
        if in_kernel:
            kernel += 1
            key = call or "outside system calls (softirq, faults)"
            calls[key] = calls.get(key, 0) + 1
    if not total:
        raise BenchError("perf recorded no samples")
    return {"samples": total, "proxy_samples": mine, "proxy_kernel_samples": kernel,
            "proxy_syscall_samples": calls}


def run_perf(args, env, tmp, contenders):
    seconds = 4 if args.quick else 8
    window = seconds - 2  # after a second of warm-up, and before the load's last second
    names = [c for c in contenders if c != "direct"]
    ncpu = os.cpu_count()
    probe = os.path.join(tmp, "perf.probe.data")
    try:
        r = subprocess.run(["perf", "record", "-q", "-a", "-e", "cpu-clock", "-o", probe, "--",
                            "true"], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BenchError(f"perf cannot sample every CPU here: {e}")
    if r.returncode != 0:
        raise BenchError("perf cannot sample every CPU here (it needs root, or "
                         f"kernel.perf_event_paranoid <= 0): {r.stderr.strip()[-300:]}")
    results, notes = {}, []
    for load in ("connrate", "tput1"):
        for name in names:
            out = os.path.join(tmp, f"perf.{name}.{load}.data")
            if load == "connrate":
                server, up = start_echo(env, tmp, seconds + 30)
            else:
                server, up = start_iperf_server(tmp, seconds + 30)
            px = client = None
            try:
                px = start_proxy(name, up, env, tmp)
                pids = set(px.pids())
                if load == "connrate":
                    argv = [env["tools"] + "/bench-load", "connrate", "--connect",
                            f"{HOST}:{px.port}", "--threads", "4", "--seconds", str(seconds)]
                else:
                    argv = ["iperf3", "-c", HOST, "-p", str(px.port), "-t", str(seconds), "-J",
                            "--connect-timeout", "3000"]
                client = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                          stderr=subprocess.STDOUT, text=True)
                time.sleep(1)
                rec = subprocess.run(["perf", "record", "-q", "-a", "-g", "-e", "cpu-clock", "-F",
                                      str(PERF_SAMPLE_HZ), "-o", out, "--", "sleep", str(window)],
                                     stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                     timeout=window + 60)
                try:
                    text, _ = client.communicate(timeout=seconds + 20)
                except subprocess.TimeoutExpired:
                    raise BenchError(f"{load} through {name} did not finish")
                if rec.returncode != 0:
                    raise BenchError(f"perf record: {rec.stderr.strip()[-400:]}")
                if not px.alive():
                    raise BenchError(f"{name} exited during the test\n{tail(px.logpath)}")
                try:
                    res = json.loads(text) if load == "tput1" else json.loads(
                        text.strip().splitlines()[-1])
                except (json.JSONDecodeError, IndexError):
                    raise BenchError(f"{load} through {name}: no result: {text.strip()[-300:]}")
                prof = perf_profile(out, pids)
                # The proxy's CPU seconds in the window, from its share of every CPU's samples.
                cpu_s = prof["proxy_samples"] / prof["samples"] * ncpu * window
                if load == "connrate":
                    rate = res["rate"]
                    prof.update(rate=rate, per_unit_us=cpu_s * 1e6 / (rate * window))
                else:
                    recv = res["end"]["sum_received"]
                    rate = recv["bytes"] / recv["seconds"]
                    prof.update(gbps=rate * 8 / 1e9, per_unit_us=cpu_s * 1e6 / (rate * window / 1e6))
                results.setdefault(load, {})[name] = prof
                log(f"  perf {load:8} {name:8} {prof['per_unit_us']:.2f} CPU µs per "
                    f"{'connection' if load == 'connrate' else 'MB'}")
            except BenchError as e:
                notes.append(f"perf {name} {load}: {e}")
                log(f"  perf {load:8} {name:8} ERROR {str(e).splitlines()[0]}")
            finally:
                if client is not None and client.poll() is None:
                    client.kill()
                    client.wait()
                stop_proxy(px, notes)
                stop(server, grace=2)
                if os.path.exists(out):
                    os.remove(out)

    def row(load, name, unit):
        p = results.get(load, {}).get(name)
        if not p:
            return f"| {LABELS[name]} | – | – | – | – | – |"
        mine = p["proxy_samples"] or 1
        peers = [results[load][q]["per_unit_us"] for q in PEERS if q in results.get(load, {})]
        ratio = f" ({p['per_unit_us'] / min(peers):.2f}x)" if peers and min(peers) > 0 else ""
        rate = f"{p['rate']:,.0f} conn/s" if load == "connrate" else f"{p['gbps']:.2f} Gbit/s"
        top = sorted(p["proxy_syscall_samples"].items(), key=lambda kv: -kv[1])[:5]
        calls = ", ".join(f"{k} {100 * v / mine:.0f} %" for k, v in top)
        user = 100 * (p["proxy_samples"] - p["proxy_kernel_samples"]) / mine
        return (f"| {LABELS[name]} | {rate} | {p['per_unit_us']:.{unit}f}{ratio} | {user:.0f} % | "
                f"{100 - user:.0f} % | {calls} |")

    lines = []
    for load, title, unit in (("connrate", "CPU µs per connection (conn/s load)", 1),
                              ("tput1", "CPU µs per MB (1-stream iperf3)", 2)):
        lines += [f"| | rate | {title} | user | kernel | kernel time by system call "
                  "(share of the proxy's CPU) |", "|---|---|---|---|---|---|"]
        lines += [row(load, n, unit) for n in names]
        lines.append("")
    return {"seconds": seconds, "window": window, "hz": PERF_SAMPLE_HZ, "results": results}, \
        "\n".join(lines).rstrip(), notes


def main():
    ap = argparse.ArgumentParser(prog="bench/run", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 1 round, 2 s iperf3, 1,000 idle channels (< 3 min built)")
    ap.add_argument("--callgrind", action="store_true",
                    help="instruction counts under valgrind --tool=callgrind instead of timings")
    ap.add_argument("--perf", action="store_true",
                    help="where each proxy's CPU goes, from perf's system-wide cpu-clock samples")
    ap.add_argument("--rounds", type=int, help="rounds of every scenario (default 3, quick 1)")
    ap.add_argument("--duration", type=int, help="iperf3 seconds per run (default 5, quick 2)")
    ap.add_argument("--channels", type=int, help="idle channels (default 9900, quick 1000)")
    ap.add_argument("--rtt-count", type=int, help="ping-pongs per RTT run (default 20000, "
                    "quick 2000; callgrind 5000, quick 500)")
    ap.add_argument("--connrate-seconds", type=float, help="default 5, quick 1.5")
    ap.add_argument("--contenders",
                    help="comma-separated subset of " + ",".join(CONTENDERS) + " (default: "
                    "all; with --callgrind: sluice,haproxy,nginx)")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS),
                    help="comma-separated subset of " + ",".join(SCENARIOS))
    ap.add_argument("--sluice", help="use this sluice executable instead of building "
                    "build-bench/bin/sluice in Release")
    ap.add_argument("--jobs", type=int, help="parallel build jobs (default: ninja's)")
    ap.add_argument("--no-install", action="store_true", help="never apt-get install")
    ap.add_argument("--out", help="JSON file (default bench/results/<timestamp>.json)")
    ap.add_argument("--strict", action="store_true",
                    help="exit 1 if any measurement failed or any proxy misbehaved")
    args = ap.parse_args()

    if args.callgrind and args.perf:
        ap.error("--callgrind and --perf are separate runs")
    default = "sluice,haproxy,nginx" if args.callgrind or args.perf else ",".join(CONTENDERS)
    contenders = [c for c in (args.contenders or default).split(",") if c]
    scenarios = [s for s in args.scenarios.split(",") if s]
    for c in contenders:
        if c not in CONTENDERS:
            ap.error(f"unknown contender {c}")
        if c in BUSY and (args.callgrind or args.perf):
            ap.error(f"{c} spins while idle: not for --callgrind or --perf")
    for s in scenarios:
        if s not in SCENARIOS:
            ap.error(f"unknown scenario {s}")

    t_start = time.time()
    date = datetime.datetime.now().astimezone()
    cmd = shlex.join([os.environ.get("SLUICE_BENCH_ARGV0", "bench/run")] + sys.argv[1:])

    # Every child inherits the hard open-file limit (a proxy holds 2 fds per channel).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    def on_term(signum, frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)

    tmp = tempfile.mkdtemp(prefix="sluice-bench-")
    try:
        if not args.no_install:
            pk = ["haproxy", "nginx", "libnginx-mod-stream", "iperf3"]
            if args.callgrind:
                pk.append("valgrind")
            if args.perf:
                pk.append("perf")
            install_packages([PEER_PACKAGES[p] for p in pk])
        sluice, tools = build(args)
        env = {"sluice": sluice, "tools": tools, "machine": machine(),
               "pass_through": pass_through(sluice)}
        env["versions"] = {
            "sluice": version([sluice, "--version"]),
            "git": version(["git", "-C", ROOT, "describe", "--always", "--dirty"]),
            "haproxy": version(["haproxy", "-v"]),
            "nginx": version(["nginx", "-v"]),
            "iperf3": version(["iperf3", "--version"]),
            "valgrind": version(["valgrind", "--version"]) if args.callgrind else None,
        }
        log(f"bench: sluice {sluice}; 8 pass-through middlewares are {json.dumps(env['pass_through'])}")
        doc = {"date": date.isoformat(timespec="seconds"), "command": cmd,
               "machine": env["machine"], "versions": env["versions"],
               "sluice": sluice, "pass_through": env["pass_through"]}
        if args.callgrind:
            log("bench: callgrind mode (single-threaded proxies)")
            data, tbl, notes = run_callgrind(args, env, tmp, contenders)
            doc.update(mode="callgrind", callgrind=data)
            suffix = "-callgrind"
        elif args.perf:
            log("bench: perf mode (system-wide cpu-clock samples, workers 2)")
            data, tbl, notes = run_perf(args, env, tmp, contenders)
            doc.update(mode="perf", perf=data)
            suffix = "-perf"
        else:
            log(f"bench: contenders {', '.join(contenders)}; scenarios {', '.join(scenarios)}")
            cfg, runs, values, med, notes = run_timed(args, env, tmp, contenders, scenarios)
            tbl = table(med, contenders)
            doc.update(mode="quick" if args.quick else "full", settings=cfg.as_dict(),
                       contenders=contenders, scenarios=scenarios, runs=runs, values=values,
                       medians=med)
            suffix = "-quick" if args.quick else ""
        elapsed = time.time() - t_start
        doc.update(notes=notes, elapsed_seconds=round(elapsed, 1))

        out = args.out or os.path.join(BENCH, "results",
                                       date.strftime("%Y%m%d-%H%M%S") + suffix + ".json")
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        with open(out, "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")

        print()
        print(header(env, date.strftime("%Y-%m-%d %H:%M %Z"), cmd))
        print()
        print(tbl)
        print()
        if args.callgrind:
            print("Instructions are user-space instructions of the whole proxy process counted by "
                  "callgrind: (N round trips − a run with 0) ÷ N, and (a bulk echo of B bytes − "
                  "the same baseline) ÷ 2B. Ratios are to the better of HAProxy and nginx.")
        elif args.perf:
            print("CPU per connection or MB is the proxy's share of all CPUs' cpu-clock samples "
                  "(idle included) × CPUs × seconds ÷ the work done in the sampled seconds. "
                  "Ratios are to the better of HAProxy and nginx. The system calls include the "
                  "softirq work the kernel does inside them (on loopback, the peer's receive).")
        else:
            print("Medians of the rounds. (Nx) is the figure ÷ the best peer's (the better of "
                  "HAProxy and nginx in this run); for RTT it is the latency added over direct ÷ "
                  "the best peer's added latency.")
        if notes:
            print()
            print("Problems seen during the run:")
            for n in notes:
                first, *rest = n.splitlines()
                print(f"- {first}")
                for r in rest:
                    print(f"    {r}")
        print()
        print(f"Raw numbers: {os.path.relpath(out, os.getcwd())}; took {elapsed:.0f} s.")
        return 1 if (args.strict and notes) else 0
    except BenchError as e:
        log(f"bench: {e}")
        return 2
    finally:
        stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
