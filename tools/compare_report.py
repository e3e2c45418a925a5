#!/usr/bin/env python3
"""Turns the JSON lines tools/compare collected (one per loadgen or wakefloor run) into
BENCHMARKS.md: the machine, the command, the date and commit, then one table per scenario with
each server's raw figures and the ratios of ours to each baseline; for the WebSocket fan-out
cases, every server's deliveries per CPU-second as a ratio to the floor (tools/nullserver,
`null`, run in the same run), and the write-delay curve when the run made one."""

import argparse
import json
import os
import platform
import re
import subprocess

NAMES = {"ours": "readrealm-chat", "node": "socket.io 4.8 (Node)", "socketioxide": "socketioxide",
         "null": "null server (floor)"}

# The servers a ratio is taken against in the "ours vs X" columns (the floor has its own table).
FLOOR = "null"


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
    mem = "unknown"
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal"):
                    mem = "%.1f GiB" % (int(line.split()[1]) / 1024 / 1024)
                    break
    except OSError:
        pass
    return "%d cores, %s, %s RAM, Linux %s" % (os.cpu_count() or 0, cpu, mem, platform.release())


def load_note(loadavg):
    """The load average when the run started: other work on the machine skews every figure."""
    return "- load average when the run started (1, 5, 15 min): %s%s" % (
        loadavg, "" if float((loadavg or "0").split()[0]) < 0.5 else
        " — the machine was not idle; figures are skewed by whatever else ran")


def versions():
    out = []
    try:
        node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
        with open("tools/baselines/node/node_modules/socket.io/package.json") as f:
            sio = json.load(f)["version"]
        out.append("socket.io %s on Node %s" % (sio, node))
    except (OSError, KeyError, ValueError):
        pass
    try:
        with open("tools/baselines/socketioxide/Cargo.lock") as f:
            m = re.search(r'name = "socketioxide"\nversion = "([^"]+)"', f.read())
        if m:
            out.append("socketioxide %s" % m.group(1))
    except OSError:
        pass
    return ", ".join(out)


def get(d, path):
    for k in path.split("."):
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def fmt(v, digits=0):
    if v is None:
        return "–"
    if isinstance(v, str):
        return v
    if isinstance(v, float) or digits:
        return ("{:,.%df}" % digits).format(v)
    return "{:,}".format(v)


def ratio(a, b, lower_better):
    if a is None or b is None or a == 0 or b == 0:
        return "–"
    r = (b / a) if lower_better else (a / b)
    return "%.2f×" % r


def table(rows, by_server, servers):
    """rows: (label, path, digits, lower_better). Columns: each server, then ours vs each
    baseline (>1 = ours better), then, where given, the floor column."""
    baselines = [s for s in servers if s not in ("ours", FLOOR)]
    head = ["metric"] + [NAMES.get(s, s) for s in servers]
    if "ours" in servers:
        head += ["ours vs %s" % NAMES.get(b, b) for b in baselines]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, path, digits, lower in rows:
        vals = {}
        for s in servers:
            r = by_server.get(s) or {}
            vals[s] = path(r) if callable(path) else get(r, path)
        cells = [label] + [fmt(vals[s], digits) for s in servers]
        if "ours" in servers:
            for b in baselines:
                cells.append(ratio(vals["ours"], vals[b], lower) if lower is not None else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def mib(b):
    return None if b is None else b / 1048576.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results")
    ap.add_argument("--command")
    ap.add_argument("--date")
    ap.add_argument("--elapsed")
    ap.add_argument("--commit")
    ap.add_argument("--idle-conns")
    ap.add_argument("--quick")
    ap.add_argument("--servers")
    ap.add_argument("--loadavg", default="")
    ap.add_argument("--cpu-split", default="")
    ap.add_argument("--load-end", default="")
    ap.add_argument("--write-delays", default="")
    a = ap.parse_args()
    servers = a.servers.split()
    runs = {}
    with open(a.results) as f:
        for line in f:
            line = line.strip()
            if line:
                r = json.loads(line)
                runs.setdefault(r.get("case"), {})[r.get("server")] = r
    missing = [s for s in ("ours", "node", "socketioxide") if s not in servers]

    p = []
    p.append("# Benchmarks\n")
    p.append("Written by `tools/compare` (%s run). Every figure below comes from that one run; "
             "rerun the command to refresh it.\n" % ("quick" if a.quick == "1" else "full"))
    p.append("- command: `%s`" % a.command)
    p.append("- date: %s (%s s)" % (a.date, a.elapsed))
    p.append("- commit: %s" % a.commit)
    p.append("- machine: %s" % machine())
    if a.loadavg:
        p.append(load_note(a.loadavg))
    if a.load_end:
        p.append("- load average when the run ended (1, 5, 15 min): %s" % a.load_end)
    p.append("- servers: %s; %s" % (", ".join(NAMES.get(s, s) for s in servers), versions()))
    busy = [r.get("machine_busy_cores") for by in runs.values() for r in by.values()
            if isinstance(r, dict) and r.get("machine_busy_cores") is not None]
    cores = os.cpu_count() or 1
    if busy and max(busy) >= 0.9 * cores:
        p.append("- **the machine was saturated**: during the counted windows all processes together "
                 "kept %.2f–%.2f of its %d cores busy (the servers and loadgen used less: see each "
                 "table), so other work competed for the CPU. Latencies then include waiting for a "
                 "core and are not the servers' own; CPU-second ratios and RSS are much less "
                 "affected." % (min(busy), max(busy), cores))
    if missing:
        p.append("- not measured: %s (not available when this ran)" % ", ".join(NAMES[m] for m in missing))
    if a.cpu_split and not a.cpu_split.startswith("none"):
        p.append("- load generator: `tools/loadgen` on the same machine; CPU split: %s, so each "
                 "server has its own core(s) (ours then runs one shard per core it may use); each "
                 "case runs on a freshly started server; ours runs with its defaults (RocksDB "
                 "store, no fsync per write)." % a.cpu_split)
    else:
        p.append("- load generator: `tools/loadgen` on the same machine (the servers and the load "
                 "generator share its cores); each case runs on a freshly started server; ours runs "
                 "with its defaults (RocksDB store, one shard per core, no fsync per write).")
    p.append("- latency: send → *arrival* is the kernel's receive timestamp of the read that "
             "completed the frame (`SO_TIMESTAMPNS`, see tools/loadgen/README.md): the server's "
             "delay plus the loopback hop, not the probe's. Send → *read* is when the probe got "
             "round to parsing it (the figure earlier runs reported). Both start at the sender's "
             "clock reading just before it queues the message to its writer task.")
    p.append("- ratios: `ours vs X` is ours ÷ X for figures where more is better and X ÷ ours "
             "where less is better, so above 1× means readrealm-chat does better.\n")

    def goals():
        """Issues 6 and 11's goals, each with the figure measured in this run and whether it is met."""
        o = lambda case: runs.get(case, {}).get("ours") or {}
        b = lambda case, srv: runs.get(case, {}).get(srv) or {}
        floor = lambda case: get(runs.get(case, {}).get(FLOOR), "deliveries_per_server_cpu_s")
        rows = []

        def add(goal, value, met):
            rows.append("| %s | %s | %s |" % (goal, value, "–" if met is None else ("met" if met else "**not met**")))

        f_ref = floor("fanout-ref")
        d0 = o("fanout-ref").get("deliveries_per_server_cpu_s")
        add("reference fan-out, write delay 0: ≥ 0.9× the floor's deliveries per CPU-s (issue 11)",
            "%.2f× (%s vs floor %s)" % (d0 / f_ref, fmt(d0), fmt(f_ref)) if d0 and f_ref else "–",
            (d0 / f_ref >= 0.9) if d0 and f_ref else None)
        d1 = o("wd-1ms").get("deliveries_per_server_cpu_s")
        add("reference fan-out, write delay 1 ms: > 1× the floor's deliveries per CPU-s (issue 11)",
            "%.2f× (%s vs floor %s)" % (d1 / f_ref, fmt(d1), fmt(f_ref)) if d1 and f_ref else "–",
            (d1 / f_ref > 1.0) if d1 and f_ref else None)
        for case, label in (("fanout-ref", "reference fan-out"), ("fanout-hot", "hot rooms")):
            d = o(case).get("deliveries_per_server_cpu_s")
            for srv, want in (("node", 2.0), ("socketioxide", 1.5)):
                x = b(case, srv).get("deliveries_per_server_cpu_s")
                add("%s: ≥ %.1f× %s per CPU-s" % (label, want, NAMES[srv]),
                    "%.2f×" % (d / x) if d and x else "–", (d / x >= want) if d and x else None)
        curve_ours = sorted((int(k.split("-")[1]), v.get("ours", {}).get("deliveries_per_server_cpu_s"))
                            for k, v in runs.items() if k and k.startswith("curve-"))
        ref_d = o("fanout-ref").get("deliveries_per_server_cpu_s")
        pts = sorted([p for p in curve_ours + [(4, ref_d)] if p[1]])
        add("deliveries per CPU-s rise with offered load (ours)",
            " → ".join("%s: %s" % (sdr, fmt(v)) for sdr, v in pts) or "–",
            all(pts[i][1] <= pts[i + 1][1] for i in range(len(pts) - 1)) if len(pts) > 1 else None)
        kib = o("idle").get("rss_per_conn_bytes")
        add("idle RSS ≤ 2 KiB per connection at %s held" % a.idle_conns,
            "%.2f KiB" % (kib / 1024) if kib is not None else "–",
            (kib <= 2048) if kib is not None else None)
        for case, label in (("fanout-ref", "reference fan-out"), ("fanout-light", "light fan-out")):
            p99 = get(o(case), "latency_arrival.p99_ms")
            read99 = get(o(case), "latency.p99_ms")
            add("p99 send → kernel arrival ≤ 1 ms (%s)" % label,
                ("%.3f ms (send → read by the probe: %.3f ms)" % (p99, read99)) if p99 is not None else "–",
                (p99 <= 1.0) if p99 is not None else None)
        j99 = get(o("joins"), "join_to_history.p99_ms")
        add("join → 50 messages of history p99 ≤ 1 ms at 1,000/s", "%.3f ms" % j99 if j99 is not None else "–",
            (j99 <= 1.0) if j99 is not None else None)
        bad = []
        for case, by in runs.items():
            r = by.get("ours") or {}
            if (r.get("lost") or 0) + (r.get("duplicated") or 0):
                bad.append("%s: lost %s, duplicated %s" % (case, r.get("lost"), r.get("duplicated")))
        fanouts = [c for c in runs if c and (c.startswith("fanout") or c.startswith("curve") or c.startswith("wd") or c == "polling")]
        add("no lost or duplicated deliveries (ours, every fan-out case)",
            "; ".join(bad) or ("0 in %d cases" % len([c for c in fanouts if runs[c].get("ours")])),
            (not bad) if any(runs[c].get("ours") for c in fanouts) else None)
        return ["## Goals (issues 6 and 11), readrealm-chat in this run\n", "| goal | measured | |", "|---|---|---|"] + rows + [""]

    counted = any(isinstance(r, dict) and r.get("writes_per_delivery") is not None
                  for by in runs.values() for r in by.values())

    def fanout_rows():
        return [
            ("offered deliveries/s", "offered_deliveries_per_s", 0, None),
            ("deliveries/s", "deliveries_per_s", 0, False),
            ("**deliveries per server CPU-second**", "deliveries_per_server_cpu_s", 0, False),
            ("server CPU (cores busy)", "server_cpu_util", 3, True),
        ] + ([("write syscalls per delivery (`--count-writes`)", "writes_per_delivery", 3, True)]
             if counted else []) + [
            ("latency to arrival p50 (ms)", "latency_arrival.p50_ms", 3, True),
            ("**latency to arrival p99 (ms)**", "latency_arrival.p99_ms", 3, True),
            ("latency to arrival p99.9 (ms)", "latency_arrival.p999_ms", 3, True),
            ("latency to arrival max (ms)", "latency_arrival.max_ms", 3, True),
            ("ack to arrival p99 (ms)", "ack_latency_arrival.p99_ms", 3, True),
            ("… send → first member's arrival p50 / p99 (ms)", lambda r: "%s / %s" % (fmt(get(r, "first_arrival.p50_ms"), 3), fmt(get(r, "first_arrival.p99_ms"), 3)) if get(r, "first_arrival") else None, 0, None),
            ("… first → last member's arrival p50 / p99 (ms)", lambda r: "%s / %s" % (fmt(get(r, "fanout_spread.p50_ms"), 3), fmt(get(r, "fanout_spread.p99_ms"), 3)) if get(r, "fanout_spread") else None, 0, None),
            ("latency to read p50 (ms)", "latency.p50_ms", 3, True),
            ("latency to read p99 (ms)", "latency.p99_ms", 3, True),
            ("latency to read p99.9 (ms)", "latency.p999_ms", 3, True),
            ("latency to read max (ms)", "latency.max_ms", 3, True),
            ("ack to read p99 (ms)", "ack_latency.p99_ms", 3, True),
            ("lost", "lost", 0, None),
            ("duplicated", "duplicated", 0, None),
            ("send errors", lambda r: sum(r.get("ack_errors", {}).values()) if r else None, 0, None),
            ("connect failures", "connect_failures", 0, None),
            ("server RSS (MiB)", lambda r: mib(r.get("server_rss_bytes")) if r else None, 1, True),
            ("loadgen CPU (s)", "loadgen_cpu_s", 2, None),
            ("whole machine busy (cores, of %d)" % (os.cpu_count() or 0), "machine_busy_cores", 2, None),
        ]

    def floor_lines(case):
        """Each server's deliveries per CPU-second as a ratio to the floor's in this case."""
        r = runs.get(case, {})
        f = get(r.get(FLOOR), "deliveries_per_server_cpu_s")
        if not f:
            return ""
        out = ["\n", "Against the floor (`tools/nullserver`, same load generator, same CPU split, "
               "same run: %s deliveries per CPU-second): server ÷ floor, above 1× beats it.\n" % fmt(f),
               "| server | deliveries per CPU-s | ÷ floor | p99 to arrival (ms) |", "|---|---|---|---|"]
        for s in servers:
            if s == FLOOR:
                continue
            d = get(r.get(s, {}), "deliveries_per_server_cpu_s")
            out.append("| %s | %s | %s | %s |" % (NAMES.get(s, s), fmt(d), "%.2f×" % (d / f) if d else "–",
                                                  fmt(get(r.get(s, {}), "latency_arrival.p99_ms"), 3)))
        return "\n".join(out)

    def errors(case, shown):
        notes = []
        for s in shown:
            r = runs.get(case, {}).get(s)
            if r is None:
                notes.append("%s: not run" % NAMES.get(s, s))
            elif "error" in r:
                notes.append("%s: %s" % (NAMES.get(s, s), r["error"]))
            elif r.get("exit"):
                notes.append("%s: loadgen exited %s" % (NAMES.get(s, s), r["exit"]))
        return ("\n\nNot measured: " + "; ".join(notes)) if notes else ""

    def section(title, case, text, rows, extra="", floor=True):
        """One scenario's table; `floor`: the floor ran this case (WebSocket fan-out only)."""
        shown = [s for s in servers if floor or s != FLOOR]
        if case not in runs:
            # Not asked for in this run (tools/compare --cases).
            p.append("## %s\n\nNot run in this run (`--cases`).\n" % title)
            return
        by = {s: runs.get(case, {}).get(s, {}) for s in shown}
        p.append("## %s\n" % title)
        p.append(text + "\n")
        p.append(table(rows, by, shown) + errors(case, shown) + extra + "\n")

    if "ours" in servers:
        p.extend(goals())
    section("Fan-out, reference load", "fanout-ref",
            "`loadgen fanout --rooms 20 --members 100 --senders 4 --rate 8`: 20 rooms × 100 "
            "members, 4 senders per room at 8 messages/s each (2,000 WebSocket clients, 640 "
            "messages/s, 64,000 deliveries/s offered). Latency is send → arrival (kernel) and "
            "send → read (probe) at every member.",
            fanout_rows(), floor_lines("fanout-ref"))
    section("Fan-out, light load", "fanout-light",
            "`loadgen fanout --rooms 20 --members 100 --senders 1 --rate 1`: 20 rooms × 100 "
            "members, one sender per room at 1 message/s (2,000 WebSocket clients, 20 messages/s, "
            "2,000 deliveries/s offered), over a window twice the other cases'. The server is idle "
            "most of the time: latency here is a lone message's path through an idle server.",
            fanout_rows(), floor_lines("fanout-light"))
    section("Fan-out, hot rooms", "fanout-hot",
            "`loadgen fanout --rooms 2 --members 250 --senders 10 --rate 8`: 2 rooms × 250 "
            "members, 10 senders per room at 8/s (40,000 deliveries/s offered).",
            fanout_rows(), floor_lines("fanout-hot"))

    # The write-delay curves: ours with each --write-delay (cases wd-X at the reference load,
    # wdhot-X at hot rooms), delay 0 being the base case itself, against the floor of the run.
    def micros(text):
        m = re.fullmatch(r"(\d+)(us|µs|ms|s)?", text)
        if not m:
            return 0
        return int(m.group(1)) * {"us": 1, "µs": 1, "ms": 1000, "s": 1000000, None: 1000}[m.group(2)]

    def write_delay_section(prefix, base, title, command, per_member):
        wd = [(c[len(prefix):], by.get("ours")) for c, by in runs.items()
              if c and c.startswith(prefix) and by.get("ours")]
        if not wd:
            return
        points = [("0", runs.get(base, {}).get("ours"))] + sorted(wd, key=lambda x: micros(x[0]))
        f = get(runs.get(base, {}).get(FLOOR), "deliveries_per_server_cpu_s")
        p.append("## Write delay (readrealm-chat, %s)\n" % title)
        p.append("`readrealm-chat --write-delay D` under `%s` (each member gets %s frames a second), "
                 "each on a fresh server in this run; D = 0 is the %s case above. Broadcast output "
                 "for a connection waits up to D so frames for it coalesce into one write; acks never "
                 "wait. ÷ floor is against the null server's %s case in this run (%s deliveries per "
                 "CPU-second).\n" % (command, per_member, base, base, fmt(f)))
        p.append("| write delay | deliveries per CPU-s | ÷ floor | server CPU (cores) | write syscalls "
                 "per delivery | arrival p50 (ms) | **arrival p99 (ms)** | ack arrival p99 (ms) | "
                 "lost / duplicated |")
        p.append("|---|---|---|---|---|---|---|---|---|")
        for label, r in points:
            if not r:
                continue
            d = r.get("deliveries_per_server_cpu_s")
            p.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s / %s |" % (
                label, fmt(d), "%.2f×" % (d / f) if d and f else "–", fmt(r.get("server_cpu_util"), 3),
                fmt(r.get("writes_per_delivery"), 3),
                fmt(get(r, "latency_arrival.p50_ms"), 3), fmt(get(r, "latency_arrival.p99_ms"), 3),
                fmt(get(r, "ack_latency_arrival.p99_ms"), 3), fmt(r.get("lost")), fmt(r.get("duplicated"))))
        p.append("")

    write_delay_section("wd-", "fanout-ref", "reference fan-out",
                        "loadgen fanout --rooms 20 --members 100 --senders 4 --rate 8", 32)
    write_delay_section("wdhot-", "fanout-hot", "hot rooms",
                        "loadgen fanout --rooms 2 --members 250 --senders 10 --rate 8", 80)

    # Offered-load curve: the cases named curve-S plus the reference (S = 4).
    curve = {}
    for case, by in runs.items():
        m = re.fullmatch(r"curve-(\d+)", case or "")
        if m:
            curve[int(m.group(1))] = by
    if "fanout-ref" in runs:
        curve[4] = runs["fanout-ref"]
    if curve:
        p.append("## Offered-load curve\n")
        p.append("`loadgen fanout --rooms 20 --members 100 --rate 8 --senders S`: more senders, "
                 "not faster ones (the per-connection limit is 10/s). Deliveries per server "
                 "CPU-second should rise with load when frames for one connection share a write. "
                 "CPU columns are cores busy over the counted window; the last column is the load "
                 "generator's own (it shares the machine's cores with the server).\n")
        head = ["senders/room", "offered/s"]
        for s in servers:
            head += ["%s deliv/CPU-s" % NAMES.get(s, s), "%s p99 to arrival ms" % NAMES.get(s, s),
                     "%s CPU" % NAMES.get(s, s)]
        head.append("loadgen CPU (%s)" % " / ".join(servers))
        p.append("| " + " | ".join(head) + " |")
        p.append("|" + "---|" * len(head))
        for senders in sorted(curve):
            by = curve[senders]
            offered = next((r.get("offered_deliveries_per_s") for r in by.values() if r.get("offered_deliveries_per_s")), None)
            cells = [str(senders), fmt(offered)]
            for s in servers:
                r = by.get(s, {})
                lossy = (r.get("lost") or 0) + (r.get("duplicated") or 0)
                p99 = get(r, "latency_arrival.p99_ms")
                cells += [fmt(r.get("deliveries_per_server_cpu_s")) + (" (lost/dup %d)" % lossy if lossy else ""),
                          fmt(p99 if p99 is not None else get(r, "latency.p99_ms"), 3), fmt(r.get("server_cpu_util"), 2)]
            cells.append(" / ".join(
                "%.2f" % (by[s]["loadgen_cpu_s"] / by[s]["window_s"])
                if by.get(s, {}).get("loadgen_cpu_s") is not None and by[s].get("window_s") else "–"
                for s in servers))
            p.append("| " + " | ".join(cells) + " |")
        p.append("")

    section("Joins with history", "joins",
            "`loadgen joins --rate 1000`: new WebSocket connections arrive at 1,000/s; each "
            "connects, joins one of 10 rooms that hold 50 messages and waits for "
            "`previousMessages`, then closes. Latency is joinRoom sent → previousMessages received.",
            [("joins/s completed", "joins_per_s", 1, False),
             ("join → history p50 (ms)", "join_to_history.p50_ms", 3, True),
             ("join → history p99 (ms)", "join_to_history.p99_ms", 3, True),
             ("join → history max (ms)", "join_to_history.max_ms", 3, True),
             ("connect p99 (ms)", "connect.p99_ms", 3, True),
             ("server CPU µs per join", "server_cpu_us_per_join", 1, True),
             ("failed", "failed", 0, None),
             ("short history", "short_history", 0, None),
             ("whole machine busy (cores, of %d)" % (os.cpu_count() or 0), "machine_busy_cores", 2, None),
             ("server RSS (MiB)", lambda r: mib(r.get("server_rss_bytes")) if r else None, 1, True)],
            floor=False)
    section("Idle connections", "idle",
            "`loadgen idle --conns %s`: connected, joined (rooms of 10), heartbeating WebSocket "
            "clients held for the hold time, spread over several loadgen processes; RSS per "
            "connection = (server RSS after joining − before connecting) ÷ connections."
            % a.idle_conns,
            [("connected", "connected", 0, None),
             ("alive at the end", "alive_at_end", 0, None),
             ("hold (s)", "hold_s", 0, None),
             ("**server RSS per connection (KiB)**", lambda r: (r.get("rss_per_conn_bytes") or 0) / 1024 if r and r.get("rss_per_conn_bytes") is not None else None, 2, True),
             ("… at the end of the hold (KiB)", lambda r: (r.get("rss_per_conn_end_bytes") or 0) / 1024 if r and r.get("rss_per_conn_end_bytes") is not None else None, 2, True),
             ("server RSS before (MiB)", lambda r: mib(r.get("server_rss_before_bytes")) if r else None, 1, None),
             ("server RSS after (MiB)", lambda r: mib(r.get("server_rss_after_bytes")) if r else None, 1, None),
             ("server CPU during the hold (s)", "server_cpu_hold_s", 3, True)],
            floor=False)
    section("Fan-out over HTTP long-polling", "polling",
            "`loadgen polling --rooms 10 --members 50 --senders 2 --rate 8`: the fan-out scenario "
            "with every client on long-polling (two HTTP connections each), 8,000 deliveries/s "
            "offered.", fanout_rows(), floor=False)

    cluster_section(p, runs)

    p.append("## The floor\n")
    p.append("`tools/nullserver` (`null` above): the least a server can do for this load generator's "
             "WebSocket fan-out — one mio thread that sleeps in epoll, no store, no validation, "
             "one encoded `newMessage` frame per message copied to every member, written at the end "
             "of each loop turn (one write per connection per turn), under the same load generator "
             "and CPU split as the servers; its module doc lists everything it skips. Its readers "
             "are loadgen's, which sleep in epoll like any client, so every write pays for waking "
             "one. `rawfloor` (tools/loadgen), the floor of earlier runs, is no longer run: its "
             "reader thread never sleeps, so no write it measured paid for a wake-up, and no real "
             "client is like that.\n")
    w = runs.get("floor-wake", {}).get("wakefloor")
    if w:
        p.append("## Wake-up floor\n")
        p.append("`wakefloor --gap-ms 20%s`: a 64-byte message over loopback TCP every 20 ms between "
                 "two otherwise idle threads, the responder pinned like the servers and the prober "
                 "like loadgen; no server involved. *Hop* is send → the kernel's receive timestamp, "
                 "*wake* is that timestamp → the blocked responder's `recvmsg` returned, *round "
                 "trip* is send → the prober read the answer. Whatever a server does, its latency "
                 "at light load includes a hop and a wake on the way in (the probe's send is a "
                 "wake-up too).\n" % (
                     " --server-cpu %s --client-cpu %s" % (w.get("server_cpu"), w.get("client_cpu"))
                     if w.get("server_cpu") is not None else ""))
        p.append("| part | p50 (ms) | p99 (ms) | max (ms) |")
        p.append("|---|---|---|---|")
        for key, label in (("hop", "hop"), ("wake", "wake"), ("round_trip", "round trip")):
            p.append("| %s | %.3f | %.3f | %.3f |" % (label, get(w, key + ".p50_ms") or 0,
                                                     get(w, key + ".p99_ms") or 0, get(w, key + ".max_ms") or 0))
        p.append("")
    print("\n".join(p))


def cluster_section(p, runs):
    """Issue 13: the fan-out over 3 nodes and Redis beside ours alone, and the catch-up rate."""
    c = lambda case: runs.get(case, {}).get("cluster")
    o = lambda case: runs.get(case, {}).get("ours")
    ref, light, cu = c("cluster-ref"), c("cluster-light"), c("catchup")
    p.append("## Cluster (issue 13)\n")
    if not any((ref, light, cu)):
        p.append("Not run in this run (`--cases`, or ours not among `--servers`).\n")
        return
    fails = ["%s: %s" % (r.get("case"), r["error"]) for r in (ref, light, cu) if r and "error" in r]
    ran = [r for r in (ref, light, cu) if r and "error" not in r]
    fsync = sorted({r.get("redis_appendfsync") for r in ran if r.get("redis_appendfsync")})
    p.append("`tools/compare --cases cluster`: a Redis (`redis-server` on loopback, `--appendonly yes "
             "--appendfsync %s --save ''`) and 3 nodes (`readrealm-chat --cluster-redis … --shards 1`, "
             "64 partitions), all on the server CPU(s), loadgen on the others. The reference and the "
             "light fan-out run with `loadgen fanout --urls N1,N2,N3`: member *i* of the run connects "
             "to node *i* mod 3, so every room has members and senders on every node and two "
             "deliveries in three cross nodes (the message goes sender → its node → Redis → the "
             "other nodes, which apply it to their store before delivering it). *Cross-node* "
             "latencies count only those. The cluster's CPU is the 3 nodes' and Redis's together "
             "(`/proc/PID/stat` before and after the counted window); the single-node column is "
             "ours (`--cases fanout-ref`, `fanout-light`) in the same run.\n"
             % ("/".join(fsync) or "always"))
    rows = [
        ("deliveries/s", "deliveries_per_s", 0),
        ("**deliveries per CPU-second** (cluster: 3 nodes + Redis)", "deliveries_per_server_cpu_s", 0),
        ("CPU (cores busy; cluster: 3 nodes + Redis)", "server_cpu_util", 3),
        ("… CPU s of node 1 / 2 / 3 / Redis", lambda r: " / ".join(fmt(x, 2) for x in r["server_cpu_s_each"])
         if r.get("server_cpu_s_each") else None, 0),
        ("Redis script calls (EVALSHA) per post, whole run",
         lambda r: "%.0f" % (get(r, "redis_commandstats_whole_run.evalsha.calls") / r["sent"])
         if get(r, "redis_commandstats_whole_run.evalsha.calls") and r.get("sent") else None, 0),
        ("**cross-node latency to arrival p50 (ms)**", "latency_arrival_cross_node.p50_ms", 3),
        ("**cross-node latency to arrival p99 (ms)**", "latency_arrival_cross_node.p99_ms", 3),
        ("cross-node latency to arrival p99.9 / max (ms)",
         lambda r: "%s / %s" % (fmt(get(r, "latency_arrival_cross_node.p999_ms"), 3),
                                fmt(get(r, "latency_arrival_cross_node.max_ms"), 3))
         if get(r, "latency_arrival_cross_node") else None, 0),
        ("cross-node latency to read p50 / p99 (ms)",
         lambda r: "%s / %s" % (fmt(get(r, "latency_cross_node.p50_ms"), 3),
                                fmt(get(r, "latency_cross_node.p99_ms"), 3))
         if get(r, "latency_cross_node") else None, 0),
        ("latency to arrival, every delivery, p50 / p99 (ms)",
         lambda r: "%s / %s" % (fmt(get(r, "latency_arrival.p50_ms"), 3), fmt(get(r, "latency_arrival.p99_ms"), 3))
         if get(r, "latency_arrival") else None, 0),
        ("ack to arrival p50 / p99 (ms)",
         lambda r: "%s / %s" % (fmt(get(r, "ack_latency_arrival.p50_ms"), 3), fmt(get(r, "ack_latency_arrival.p99_ms"), 3))
         if get(r, "ack_latency_arrival") else None, 0),
        ("lost / duplicated", lambda r: "%s / %s" % (r.get("lost"), r.get("duplicated")) if "lost" in r else None, 0),
        ("send errors", lambda r: sum(r.get("ack_errors", {}).values()) if "ack_errors" in r else None, 0),
        ("connect failures", "connect_failures", 0),
        ("RSS (MiB; cluster: 3 nodes + Redis)", lambda r: mib(r.get("server_rss_bytes")), 1),
        ("whole machine busy (cores, of %d)" % (os.cpu_count() or 0), "machine_busy_cores", 2),
    ]
    cols = [("cluster, reference", ref), ("ours alone, reference", o("fanout-ref")),
            ("cluster, light", light), ("ours alone, light", o("fanout-light"))]
    p.append("| metric | " + " | ".join(n for n, _ in cols) + " |")
    p.append("|---|" + "---|" * len(cols))
    for label, path, digits in rows:
        cells = []
        for _, r in cols:
            r = r if isinstance(r, dict) and "error" not in r else {}
            v = (path(r) if r else None) if callable(path) else get(r, path)
            cells.append(fmt(v, digits))
        p.append("| %s | %s |" % (label, " | ".join(cells)))
    p.append("")
    if fails:
        p.append("Not measured: " + "; ".join(fails) + "\n")
    if cu and "error" not in cu:
        p.append("Catch-up (`--cases catchup`): %s posts put into the log through one node (`loadgen "
                 "history` seeding, 4 rooms at once, %s s), the log then holding %s entries (posts, and "
                 "the seeders' joins and leaves); a fresh node on an empty data directory applied %s "
                 "entries in %s ms before it listened (its `cluster_caught_up` line): **%s entries/s**.\n"
                 % (fmt(cu.get("posts_seeded")), cu.get("seed_s"), fmt(cu.get("log_entries")),
                    fmt(cu.get("applied")), fmt(cu.get("catchup_ms")), fmt(cu.get("entries_per_s"))))
    goals = []
    d_c, d_o = get(ref or {}, "deliveries_per_server_cpu_s"), get(o("fanout-ref") or {}, "deliveries_per_server_cpu_s")
    goals.append(("reference fan-out: cluster's deliveries per CPU-s ≥ 0.7 × single-node",
                  "%.2f× (%s vs %s)" % (d_c / d_o, fmt(d_c), fmt(d_o)) if d_c and d_o else "–",
                  (d_c / d_o >= 0.7) if d_c and d_o else None))
    x99 = get(light or {}, "latency_arrival_cross_node.p99_ms")
    goals.append(("light fan-out: cross-node p99 send → arrival ≤ 2 ms", fmt(x99, 3) + " ms" if x99 is not None else "–",
                  (x99 <= 2.0) if x99 is not None else None))
    rate = get(cu or {}, "entries_per_s")
    goals.append(("catch-up ≥ 50,000 log entries/s", fmt(rate) + "/s" if rate else "–",
                  (rate >= 50000) if rate else None))
    p.append("| goal (issue 13) | measured | |")
    p.append("|---|---|---|")
    for g, v, met in goals:
        p.append("| %s | %s | %s |" % (g, v, "–" if met is None else ("met" if met else "**not met**")))
    p.append("")


if __name__ == "__main__":
    main()
