"""What bench/surge.py prints and keeps: a step's figures, where the CPU went, the servers' logs, the
targets' verdict and the JSON summary."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.procstat import machine_busy, processes
from bench.surge_check import Consistency, OutboxSample
from bench.surge_load import OPS, StepResult

P99_TARGET_MS = 250.0
# arq's line for a finished task: its run time (start to finish), its id (outbox:<entry>:... for an entry).
ARQ_DONE = re.compile(r"(?P<seconds>[\d.]+)s ← (?:outbox:(?P<id>\d+):)?(?:\S*:)?(?P<task>\w+) ●")
# An access line's method and path -> the operation it is (with --access-log).
ROUTES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("POST", re.compile(r"^/api/v1/jobs$"), "intake"),
    ("GET", re.compile(r"^/api/v1/jobs$"), "board"),
    ("GET", re.compile(r"^/api/v1/queue$"), "queue"),
    ("POST", re.compile(r"^/api/v1/jobs/[^/]+/transitions$"), "transition"),
    ("PUT", re.compile(r"^/api/v1/jobs/[^/]+/estimate$"), "estimate"),
    ("POST", re.compile(r"^/api/v1/webhooks/suppliers/\d+$"), "webhook"),
    ("POST", re.compile(r"^/api/v1/jobs/[^/]+/pickup$"), "pickup"),
)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest rank; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


# --- where the CPU went (/proc, sampled at a step's start and end) ---------------------------------------


@dataclass
class CpuSample:
    by_pid: dict[int, tuple[str, float]]  # pid -> (group, CPU seconds so far)
    busy: float  # the machine's busy CPU seconds since boot, every core
    wall: float


def cpu_sample(sessions: dict[int, str], pids: dict[int, str], database: str, wall: float) -> CpuSample:
    """CPU seconds of every process of this run, by group: each server by its session (uv, granian and its
    workers), this process and the load processes by pid, PostgreSQL's backends of the bench database and
    the rest of PostgreSQL."""
    by_pid: dict[int, tuple[str, float]] = {}
    for proc in processes():
        group = sessions.get(proc.session) or pids.get(proc.pid)
        if group is None and proc.cmdline.startswith("postgres: "):
            group = "postgres (bench db)" if f" {database} " in proc.cmdline else "postgres (rest)"
        if group is not None:
            by_pid[proc.pid] = (group, proc.seconds)
    return CpuSample(by_pid, machine_busy(), wall)


def cpu_split(before: CpuSample, after: CpuSample) -> dict[str, float]:
    """Cores used on average between the samples, by group; `not this run` is the rest of the machine's busy
    time (the machine is shared)."""
    wall = max(1e-6, after.wall - before.wall)
    used: dict[str, float] = {}
    for pid, (group, seconds) in after.by_pid.items():
        used[group] = used.get(group, 0.0) + seconds - before.by_pid.get(pid, (group, 0.0))[1]
    busy = after.busy - before.busy
    cores = {group: seconds / wall for group, seconds in used.items()}
    cores["not this run"] = max(0.0, busy - sum(used.values())) / wall
    cores["machine busy"] = busy / wall
    return {k: round(v, 2) for k, v in cores.items()}


# --- the servers' logs -----------------------------------------------------------------------------------


@dataclass
class LogRead:
    counts: dict[str, int] = field(default_factory=dict)  # warnings and errors by source and event
    examples: list[str] = field(default_factory=list)
    app_ms: dict[str, list[float]] = field(default_factory=dict)  # op -> in-app durations (access lines)
    tasks: list[tuple[str, int | None, float]] = field(default_factory=list)  # worker: (task, outbox id, run s)


class LogTail:
    """New lines of the servers' logs since the last read."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.offsets = dict.fromkeys(paths, 0)

    def read(self) -> LogRead:
        counts: Counter[str] = Counter()
        result = LogRead()
        for path, offset in self.offsets.items():
            with path.open("rb") as log:
                log.seek(offset)
                data = log.read()
                self.offsets[path] = offset + len(data)
            for line in data.decode(errors="replace").splitlines():
                self._line(path.stem, line, counts, result)
        result.counts = dict(counts.most_common(12))
        return result

    @staticmethod
    def _line(source: str, line: str, counts: Counter[str], result: LogRead) -> None:
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        if isinstance(entry, dict):
            if entry.get("event") == "request" and entry.get("duration_ms") is not None:
                op = _route(str(entry.get("method")), str(entry.get("path")))
                if op:
                    result.app_ms.setdefault(op, []).append(float(entry["duration_ms"]))
                return
            level = str(entry.get("level", "")).lower()
            if level not in ("warning", "error", "critical", "exception"):
                return
            key = f"{source}: {level} {entry.get('event', '')} {entry.get('error', '')}".strip()
            trace = str(entry.get("exception", "")).strip()
            example = f"{key}: {trace.splitlines()[-1]}" if trace else None
        else:  # granian's and arq's own lines: finished tasks, tracebacks, failed tasks
            text = line.strip()
            finished = ARQ_DONE.search(text)
            if finished:
                outbox_id = int(finished["id"]) if finished["id"] else None
                result.tasks.append((finished["task"], outbox_id, float(finished["seconds"])))
            if not (re.search(r"Error|Traceback|CRITICAL| ! .*failed", text)):
                return
            key, example = f"{source}: {text[:100]}", text[:300]
        counts[key] += 1
        if example and len(result.examples) < 5 and example not in result.examples:
            result.examples.append(example)


def _route(method: str, path: str) -> str | None:
    return next((op for m, pattern, op in ROUTES if m == method and pattern.match(path)), None)


# --- a step's report -------------------------------------------------------------------------------------


@dataclass
class StepReport:
    name: str
    multiplier: float
    base_rate: float
    seconds: float
    results: list[StepResult]
    outbox: dict[str, Any]
    sample: OutboxSample
    drain_s: float | None
    consistency: Consistency
    logs: LogRead
    cpu: dict[str, float]
    load_1m: float
    ops: dict[str, dict[str, Any]] = field(default_factory=dict)
    tasks: dict[str, dict[str, float]] = field(default_factory=dict)  # worker task kind -> n, p99, max (s)

    @property
    def elapsed_s(self) -> float:
        """From the step's start to its last answer."""
        return max(r.elapsed_s for r in self.results)

    @property
    def late_ms(self) -> tuple[float, float]:
        """The generator's own lag: how late its ticks fired (p99, max)."""
        late = [v for r in self.results for v in r.late_ms]
        return percentile(late, 0.99), max(late, default=0.0)

    @property
    def code_lag_s(self) -> list[float]:
        return [v for r in self.results for v in r.code_lag_s]


def op_figures(
    results: list[StepResult], seconds: float, elapsed: float, app_ms: dict[str, list[float]]
) -> dict[str, dict[str, Any]]:
    """Per operation: sent a second over the step, answered 2xx a second from the step's start to its last
    answer (what the service got through), latency from the scheduled time, answers by status."""
    figures: dict[str, dict[str, Any]] = {}
    for op in OPS:
        latencies = [v for r in results for v in r.stats[op].latencies_ms]
        outcomes: Counter[str] = Counter()
        for r in results:
            outcomes.update(r.stats[op].outcomes)
        ok = sum(n for status, n in outcomes.items() if status.startswith("2"))
        app = app_ms.get(op, [])  # a resend is an intake, a forged push a webhook, to the server
        figures[op] = {
            "sent": len(latencies),
            "sent_per_s": len(latencies) / seconds,
            "ok_per_s": ok / max(seconds, elapsed),
            "p50_ms": percentile(latencies, 0.50),
            "p99_ms": percentile(latencies, 0.99),
            "max_ms": max(latencies, default=0.0),
            "app_p99_ms": percentile(app, 0.99) if app else None,
            "statuses": dict(sorted(outcomes.items())),
            "without_retry_after": sum(r.stats[op].without_retry_after for r in results),
            "skipped": sum(r.stats[op].skipped for r in results),
            "examples": [e for r in results for e in r.stats[op].examples][:3],
        }
    return figures


def task_figures(tasks: list[tuple[str, int | None, float]], kinds: dict[int, str]) -> dict[str, dict[str, float]]:
    """The worker's tasks by kind (an outbox entry's handler by the entry's kind): how many, how long each ran;
    `busy_s` is the worker slots they held (arq runs 10 at a time by default)."""
    by_kind: dict[str, list[float]] = {}
    for task, outbox_id, seconds in tasks:
        kind = kinds.get(outbox_id, task) if outbox_id is not None else task
        by_kind.setdefault(kind, []).append(seconds)
    return {
        kind: {"n": len(v), "p99_s": percentile(v, 0.99), "max_s": max(v), "busy_s": round(sum(v), 1)}
        for kind, v in sorted(by_kind.items(), key=lambda kv: -sum(kv[1]))
    }


def _statuses(figures: dict[str, Any]) -> str:
    shown = [f"{status}x{n}" for status, n in figures["statuses"].items() if not status.startswith("2")]
    if figures["without_retry_after"]:
        shown.append(f"(no Retry-After: {figures['without_retry_after']})")
    return " ".join(shown) or "-"


def _print_table(report: StepReport) -> None:
    app = any(f["app_p99_ms"] is not None for f in report.ops.values())
    print(
        f"{'operation':<15}{'sent/s':>8}{'2xx/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
        + (f"{'app p99':>9}" if app else "")
        + f"  {'non-2xx answers':<30}{'idle ticks':>10}"
    )
    sent = ok = 0.0
    for op, f in report.ops.items():
        if not f["sent"] and not f["skipped"]:
            continue
        sent, ok = sent + f["sent_per_s"], ok + f["ok_per_s"]
        app_cell = f"{f['app_p99_ms']:>9.1f}" if f["app_p99_ms"] is not None else f"{'':>9}"
        print(
            f"{op:<15}{f['sent_per_s']:>8.1f}{f['ok_per_s']:>8.1f}{f['p50_ms']:>9.1f}{f['p99_ms']:>9.1f}"
            f"{f['max_ms']:>9.0f}{app_cell if app else ''}  {_statuses(f):<30}{f['skipped']:>10}"
        )
    print(f"{'all':<15}{sent:>8.1f}{ok:>8.1f}")


def _print_outbox(report: StepReport, drain_limit: float) -> None:
    o, s = report.outbox, report.sample
    drained = f"{report.drain_s:.1f} s" if report.drain_s is not None else f"NOT within {drain_limit:g} s"
    print(
        f"outbox      {o['n']} entries written during the step, {o['done']} handled when its last answer came; "
        f"written -> handled (relayed, picked up by the worker) p50 {o['p50'] or 0:.2f} s, p99 {o['p99'] or 0:.2f} s, "
        f"max {o['max'] or 0:.2f} s"
    )
    print(
        f"            sampled each second: backlog (due, not done) max {s.backlog_max}, oldest due entry max "
        f"{s.oldest_s_max:.1f} s; nothing due {drained} after the last answer"
    )
    if report.tasks:
        print(
            "worker      tasks run (n, p99, max, slot-seconds held): "
            + "; ".join(
                f"{kind} {t['n']:g}, {t['p99_s']:.2f} s, {t['max_s']:.2f} s, {t['busy_s']:g} s"
                for kind, t in list(report.tasks.items())[:6]
            )
        )
    lags = report.code_lag_s
    print(
        f"pickup code SMS received p50 {percentile(lags, 0.5):.2f} s, p99 {percentile(lags, 0.99):.2f} s after the "
        f"ready_for_pickup answer ({len(lags)} codes)"
    )


def print_step(report: StepReport, drain_limit: float) -> None:
    p99_late, max_late = report.late_ms
    print(
        f"\n== {report.name}: {report.multiplier:g}x = {report.base_rate * report.multiplier:g} requests/s scheduled "
        f"for {report.seconds:g} s; last answer {report.elapsed_s:.1f} s after the start"
    )
    print(
        f"machine     load average {report.load_1m:.1f} at the start; cores used: "
        + ", ".join(f"{k} {v:.2f}" for k, v in sorted(report.cpu.items(), key=lambda kv: -kv[1]))
        + f"; PostgreSQL client connections max {report.sample.connections_max}; "
        f"the load generator fired its ticks p99 {p99_late:.0f} ms, max {max_late:.0f} ms late"
    )
    _print_table(report)
    _print_outbox(report, drain_limit)
    for op, f in report.ops.items():
        for example in f["examples"]:
            print(f"  {op} error: {example[:240]}")
    if report.logs.counts:
        print("server log  " + "; ".join(f"{k} x{n}" for k, n in report.logs.counts.items()))
        for example in report.logs.examples:
            print(f"  {example[:240]}")
    c = report.consistency
    print(f"consistency {'PASS' if c.ok else 'FAIL'}: " + ", ".join(f"{k} {v}" for k, v in c.counts.items()))
    for item in c.checks:
        if not item.ok:
            print(f"  FAIL {item.name}: {item.detail}")


# --- the verdict -----------------------------------------------------------------------------------------


def _count(figures: dict[str, Any], keep: Any) -> int:
    return sum(n for status, n in figures["statuses"].items() if keep(status))


def _gentle(r: StepReport) -> dict[str, tuple[bool, str]]:
    """Up to 3x: no 5xx, p99 under the target for every operation."""
    five = {op: n for op, f in r.ops.items() if (n := _count(f, lambda s: s.startswith("5")))}
    slow = {op: round(f["p99_ms"]) for op, f in r.ops.items() if f["sent"] and f["p99_ms"] >= P99_TARGET_MS}
    worst = max((f["p99_ms"] for f in r.ops.values() if f["sent"]), default=0.0)
    return {
        f"{r.multiplier:g}x: no 5xx": (not five, str(five or "none")),
        f"{r.multiplier:g}x: p99 under {P99_TARGET_MS:g} ms, every operation": (
            not slow,
            str(slow) if slow else f"worst p99 {worst:.0f} ms",
        ),
    }


def _surge(r: StepReport) -> dict[str, tuple[bool, str]]:
    """Beyond 3x: degraded by queueing or by 429/503 with Retry-After, never by another 5xx or a dropped
    connection (the consistency check covers lost writes). Whether every request was answered within the
    client's timeout is shown too: it tells bounded queueing from unbounded."""
    crash = {op: n for op, f in r.ops.items() if (n := _count(f, lambda s: s.startswith("5") and s != "503"))}
    dropped = {op: n for op, f in r.ops.items() if (n := _count(f, lambda s: not s[:1].isdigit() and s != "timeout"))}
    late = {op: n for op, f in r.ops.items() if (n := _count(f, lambda s: s == "timeout"))}
    bare = {op: f["without_retry_after"] for op, f in r.ops.items() if f["without_retry_after"]}
    refused = sum(_count(f, lambda s: s in ("429", "503")) for f in r.ops.values())
    worst = max(((f["p99_ms"], op) for op, f in r.ops.items() if f["sent"]), default=(0.0, "-"))
    how = f"worst p99 {worst[0] / 1000:.1f} s ({worst[1]}), {refused} answers 429/503"
    m = f"{r.multiplier:g}x"
    return {
        f"{m}: no 5xx but 503, no dropped connection": (
            not crash and not dropped,
            f"5xx {crash or 'none'}, dropped {dropped or 'none'}; {how}",
        ),
        f"{m}: every 429/503 carries Retry-After": (not bare, str(bare or "all do")),
        f"{m}: (not a target) all answered within the client's timeout": (not late, f"timed out {late or 'none'}"),
    }


def targets(reports: list[StepReport]) -> dict[str, tuple[bool, str]]:
    """Each target, PASS or MISS, with what decided it; the warm-up is not judged."""
    verdict: dict[str, tuple[bool, str]] = {}
    for r in reports:
        if r.name == "warm-up":
            continue
        verdict.update(_gentle(r) if r.multiplier <= 3 else _surge(r))
        failed = [c.name for c in r.consistency.checks if not c.ok]
        verdict[f"{r.multiplier:g}x: consistency check"] = (r.consistency.ok, "; ".join(failed) or "every check")
    return verdict


def print_targets(verdict: dict[str, tuple[bool, str]]) -> None:
    print("\n" + f"{'target':<66}result")
    for name, (ok, why) in verdict.items():
        print(f"{name:<66}{'PASS' if ok else 'MISS'}  {why}")


def summary(reports: list[StepReport], verdict: dict[str, tuple[bool, str]], setup: dict[str, Any]) -> dict[str, Any]:
    steps = []
    for r in reports:
        lags = r.code_lag_s
        steps.append(
            {
                "name": r.name,
                "multiplier": r.multiplier,
                "seconds": r.seconds,
                "elapsed_s": round(r.elapsed_s, 2),
                "ops": {op: {k: v for k, v in f.items() if k != "examples"} for op, f in r.ops.items() if f["sent"]},
                "outbox": r.outbox,
                "outbox_backlog_max": r.sample.backlog_max,
                "outbox_oldest_due_s_max": r.sample.oldest_s_max,
                "outbox_drain_s": r.drain_s,
                "pg_connections_max": r.sample.connections_max,
                "code_sms_lag_s": {"p50": percentile(lags, 0.5), "p99": percentile(lags, 0.99), "n": len(lags)},
                "generator_late_ms": {"p99": r.late_ms[0], "max": r.late_ms[1]},
                "cpu_cores": r.cpu,
                "load_1m": r.load_1m,
                "consistency": {
                    "ok": r.consistency.ok,
                    "counts": r.consistency.counts,
                    "failed": {c.name: c.detail for c in r.consistency.checks if not c.ok},
                },
                "server_log": r.logs.counts,
                "worker_tasks": r.tasks,
            }
        )
    return {
        "bench": "surge",
        "steps": steps,
        "targets": {name: ok for name, (ok, _) in verdict.items()},
        "consistent": all(r.consistency.ok for r in reports),
        "setup": setup,
    }
