"""Run every server under the same load, several rounds, and report medians and ratios.

``python -m benchmarks [--quick] [--only CASE[,CASE]] [--servers NAME[,NAME]] [--reps N]``

Each server runs in its own process; this process is the load generator. Before each
case both are pinned to CPUs (``sched_setaffinity``, what ``taskset`` does): a
one-connection ping-pong puts them on the same core (waking a process on the other
core costs more than the round trip), every other case on different cores. Rounds
run the servers in a rotating order so that a noisy minute hits them all alike.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import fnmatch
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import loadgen
from .servers import raise_fd_limit

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
NODE_DIR = HERE / "node"

KiB = 1024
MiB = 1024 * 1024

# name, label, import needed (None: always there)
SERVERS: list[tuple[str, str, str | None]] = [
    ("fd-callback", "fullduplex (callbacks)", None),
    ("fd-asyncio", "fullduplex (asyncio)", None),
    ("picows", "picows", "picows"),
    ("websockets", "websockets", "websockets"),
    ("aiohttp", "aiohttp", "aiohttp"),
    ("node-ws", "Node ws", None),
    ("raw", "raw TCP (ceiling)", None),
]
LABELS = {name: label for name, label, _ in SERVERS}


@dataclass
class Case:
    name: str
    kind: str  # echo | handshakes | memory | broadcast
    title: str
    unit: str
    higher_is_better: bool = True
    size: int = 0
    conns: int = 0
    window: int = 0
    count: int = 0  # memory: connections; broadcast: subscribers
    same_core: bool = False


def size_name(size: int) -> str:
    if size >= MiB:
        return f"{size // MiB}MiB"
    if size >= KiB:
        return f"{size // KiB}KiB"
    return f"{size}B"


def build_cases(quick: bool) -> list[Case]:
    cases = []
    for size in (16, KiB, 64 * KiB, MiB):
        cases.append(
            Case(
                f"echo-1x1-{size_name(size)}",
                "echo",
                f"echo 1 conn × 1 in flight, {size_name(size)}",
                "round trips/s",
                size=size,
                conns=1,
                window=1,
                same_core=True,
            )
        )
    for size in (16, KiB, 64 * KiB, MiB):
        # 64 × 16 × 1 MiB would be 1 GiB in flight each way: measure buffering, not
        # WebSocket; the 1 MiB case keeps 32 MiB in flight instead.
        conns, window = (16, 2) if size >= MiB else (64, 16)
        cases.append(
            Case(
                f"echo-{conns}x{window}-{size_name(size)}",
                "echo",
                f"echo {conns} conns × {window} in flight, {size_name(size)}",
                "round trips/s",
                size=size,
                conns=conns,
                window=window,
            )
        )
    cases.append(Case("handshakes", "handshakes", "handshakes (open + close)", "per s", conns=32))
    small, large = (100, 400) if quick else (1000, 10000)
    for n, tag in ((small, "1k"), (large, "10k")):
        cases.append(
            Case(
                f"memory-{tag}",
                "memory",
                f"memory per idle connection, {n} conns",
                "KiB/conn",
                higher_is_better=False,
                count=n,
            )
        )
    small, large = (50, 200) if quick else (500, 5000)
    for n in (small, large):
        cases.append(
            Case(
                f"broadcast-{500 if n == small else 5000}",
                "broadcast",
                f"broadcast 64 B to {n} subscribers",
                "deliveries/s",
                size=64,
                count=n,
                window=32,
            )
        )
    return cases


# ------------------------------------------------------------------ environment


def check_environment(wanted: list[str]) -> tuple[list[str], list[str]]:
    """Return (servers that can run, notes about what is missing)."""
    notes = []
    ok = []
    if importlib.util.find_spec("uvloop") is None:
        notes.append(
            "uvloop is not installed: servers and the load generator run on asyncio's "
            "slower loop (pip install -e '.[bench]')"
        )
    for name, _, module in SERVERS:
        if name not in wanted:
            continue
        if module is not None and importlib.util.find_spec(module) is None:
            notes.append(
                f"skipping {name}: `{module}` is not installed (pip install -e '.[bench]')"
            )
            continue
        if name == "node-ws":
            node = shutil.which("node")
            if node is None:
                notes.append("skipping node-ws: `node` is not on PATH (Node 18+)")
                continue
            if not (NODE_DIR / "node_modules" / "ws").is_dir():
                notes.append(
                    "skipping node-ws: its packages are missing (npm ci --prefix benchmarks/node)"
                )
                continue
        ok.append(name)
    if importlib.util.find_spec("matplotlib") is None:
        notes.append("no chart: matplotlib is not installed (pip install -e '.[bench]')")
    return ok, notes


def cpus() -> tuple[int, int]:
    """(server CPU, client CPU): two different ones when there are two."""
    available = sorted(os.sched_getaffinity(0))
    if len(available) < 2:
        return available[0], available[0]
    return available[0], available[1]


def pin(pid: int, cpu: int) -> None:
    """Pin every thread of ``pid`` to ``cpu`` (``taskset -a -p -c cpu pid``)."""
    try:
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        tids = [pid]
    for tid in tids:
        try:
            os.sched_setaffinity(tid, {cpu})
        except OSError:
            pass  # a thread that just ended


# ---------------------------------------------------------------------- servers


def snapshot_fullduplex(dest: Path) -> str:
    """Copy ``src/fullduplex`` (with its built extension) to ``dest``; describe the commit.

    The servers import fullduplex from this copy, so edits to the working tree while
    the suite runs cannot make one round measure other code than the next.
    """
    src = ROOT / "src" / "fullduplex"
    if not src.is_dir():
        return "installed package"
    shutil.copytree(src, dest / "fullduplex", ignore=shutil.ignore_patterns("__pycache__"))
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "working tree"
    return f"{head}{' + uncommitted changes' if dirty else ''}" if head else "working tree"


class ServerProcess:
    pythonpath: list[str] = []  # set once, before any server starts

    def __init__(self, name: str, logdir: Path) -> None:
        self.name = name
        self.log_path = logdir / f"{name}.log"
        self.proc: asyncio.subprocess.Process | None = None
        self.port = 0
        self.info: dict[str, Any] = {}

    async def start(self, cpu: int) -> None:
        if self.name == "node-ws":
            cmd = ["node", str(NODE_DIR / "server.js")]
        else:
            cmd = [sys.executable, "-m", "benchmarks.servers", self.name]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
        log = self.log_path.open("ab")
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *cmd,
                cwd=str(ROOT),
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                preexec_fn=lambda: (raise_fd_limit(), os.sched_setaffinity(0, {cpu})),
            )
        finally:
            log.close()
        assert self.proc.stdout is not None
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), 30)
        except asyncio.TimeoutError:
            line = b""
        if not line.startswith(b"PORT "):
            await self.stop()
            tail = self.log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{self.name} did not start: {line!r}\n{tail}")
        _, port, *rest = line.decode().split(" ", 2)
        self.port = int(port)
        self.info = json.loads(rest[0]) if rest else {}

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()


# ------------------------------------------------------------------------ running


@dataclass
class Settings:
    reps: int
    warmup: float
    duration: float
    quick: bool


@dataclass
class Results:
    # results[case][server] -> one dict per repetition
    cells: dict[str, dict[str, list[dict[str, float]]]] = field(default_factory=dict)
    errors: dict[str, dict[str, str]] = field(default_factory=dict)
    info: dict[str, dict[str, Any]] = field(default_factory=dict)
    fullduplex: str = ""

    def add(self, case: str, server: str, value: dict[str, float]) -> None:
        self.cells.setdefault(case, {}).setdefault(server, []).append(value)

    def fail(self, case: str, server: str, message: str) -> None:
        self.errors.setdefault(case, {})[server] = message


async def run_case(case: Case, server: ServerProcess, s: Settings) -> dict[str, float]:
    port = server.port
    pid = server.pid

    def cpu() -> float:
        return loadgen.cpu_seconds(pid)

    if case.kind == "echo":
        return await loadgen.echo(
            port, case.size, case.conns, case.window, s.warmup, s.duration, cpu
        )
    if case.kind == "handshakes":
        return await loadgen.handshakes(port, case.conns, s.warmup, s.duration, cpu)
    if case.kind == "broadcast":
        return await loadgen.broadcast(
            port, case.count, case.size, case.window, s.warmup, s.duration, cpu
        )
    raise ValueError(case.kind)


async def run_round(
    rep: int,
    servers: list[str],
    cases: list[Case],
    s: Settings,
    results: Results,
    logdir: Path,
) -> None:
    """One round: every server started fresh, then each case on every server in turn.

    Going case by case (not server by server) keeps the cells compared with each
    other within seconds of each other on a machine whose load moves by the minute.
    """
    server_cpu, client_cpu = cpus()
    memory_cases = [c for c in cases if c.kind == "memory"]
    other_cases = [c for c in cases if c.kind != "memory"]
    procs: dict[str, ServerProcess] = {}
    try:
        starting = {name: ServerProcess(name, logdir) for name in servers}
        started = await asyncio.gather(
            *(p.start(server_cpu) for p in starting.values()), return_exceptions=True
        )
        for (name, proc), exc in zip(starting.items(), started, strict=True):
            if isinstance(exc, BaseException):
                print(f"  {name}: {exc}", flush=True)
                for case in cases:
                    results.fail(case.name, name, "did not start")
                continue
            procs[name] = proc
            results.info[name] = proc.info
        if memory_cases:
            # First, on fresh processes.
            pin(os.getpid(), client_cpu)
            counts = [c.count for c in memory_cases]
            line = []
            t_case = time.perf_counter()
            for name, proc in procs.items():
                try:
                    per_conn = await asyncio.wait_for(
                        loadgen.memory(proc.port, proc.pid, counts), 180
                    )
                except Exception as exc:
                    for c in memory_cases:
                        results.fail(c.name, name, _short(exc))
                    line.append(f"{name}=ERROR({_short(exc)})")
                else:
                    for c in memory_cases:
                        results.add(c.name, name, {"value": per_conn[c.count]})
                    line.append(f"{name}=" + "/".join(f"{per_conn[n]:.1f}" for n in counts))
            took = time.perf_counter() - t_case
            print(f"  [{rep + 1}] {'memory':<16} {took:4.0f}s " + "  ".join(line), flush=True)
        for case in other_cases:
            cpu = server_cpu if case.same_core else client_cpu
            pin(os.getpid(), cpu)
            line = []
            t_case = time.perf_counter()
            for name, proc in procs.items():
                if not proc.alive():
                    results.fail(case.name, name, "server died")
                    line.append(f"{name}=DIED")
                    continue
                pin(proc.pid, server_cpu)
                try:
                    value = await asyncio.wait_for(
                        run_case(case, proc, s), 30 + 3 * (s.warmup + s.duration)
                    )
                except Exception as exc:
                    results.fail(case.name, name, _short(exc))
                    line.append(f"{name}=ERROR({_short(exc)})")
                else:
                    results.add(case.name, name, value)
                    line.append(f"{name}={_fmt(value['value'])}")
                await asyncio.sleep(0.05)
            took = time.perf_counter() - t_case
            print(f"  [{rep + 1}] {case.name:<16} {took:4.0f}s " + "  ".join(line), flush=True)
    finally:
        for proc in procs.values():
            await proc.stop()


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:120]


def _fmt(value: float) -> str:
    if value != value:  # NaN
        return "–"
    if value >= 100_000:
        return f"{value / 1000:,.0f}k"
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.0f}"
    return f"{value:.2f}"


# ---------------------------------------------------------------------- reporting


def median_of(values: list[dict[str, float]], key: str = "value") -> float:
    xs = [v[key] for v in values if key in v]
    return statistics.median(xs) if xs else float("nan")


def spread(values: list[dict[str, float]], key: str = "value") -> float:
    """(max − min) / median, as a fraction."""
    xs = [v[key] for v in values if key in v]
    if len(xs) < 2:
        return 0.0
    m = statistics.median(xs)
    return (max(xs) - min(xs)) / m if m else 0.0


def ratio(results: Results, case: str, a: str, b: str, key: str = "value") -> float:
    cell = results.cells.get(case, {})
    if a not in cell or b not in cell:
        return float("nan")
    den = median_of(cell[b], key)
    return median_of(cell[a], key) / den if den else float("nan")


@dataclass
class Target:
    text: str
    case: str
    a: str
    b: str
    minimum: float | None = None  # ratio a/b must be >= minimum
    maximum: float | None = None  # ratio a/b must be <= maximum
    key: str = "value"


TARGETS = [
    Target("echo 64×16 16 B: callbacks ≥ 2× picows", "echo-64x16-16B", "fd-callback", "picows", 2),
    Target(
        "echo 64×16 1 KiB: callbacks ≥ 2× picows", "echo-64x16-1KiB", "fd-callback", "picows", 2
    ),
    Target(
        "echo 64×16 16 B: asyncio API ≥ 3× websockets",
        "echo-64x16-16B",
        "fd-asyncio",
        "websockets",
        3,
    ),
    Target(
        "echo 64×16 1 KiB: asyncio API ≥ 3× websockets",
        "echo-64x16-1KiB",
        "fd-asyncio",
        "websockets",
        3,
    ),
    Target("echo 1×1 16 B: callbacks ≥ 1.0× picows", "echo-1x1-16B", "fd-callback", "picows", 1),
    Target(
        "echo 1×1 16 B: callbacks p99 ≤ picows p99",
        "echo-1x1-16B",
        "fd-callback",
        "picows",
        maximum=1.0,
        key="p99_us",
    ),
    Target(
        "echo 1×1 1 MiB: callbacks ≥ 1.0× picows MB/s", "echo-1x1-1MiB", "fd-callback", "picows", 1
    ),
    Target(
        "echo 16×2 1 MiB: callbacks ≥ 1.0× picows MB/s",
        "echo-16x2-1MiB",
        "fd-callback",
        "picows",
        1,
    ),
    Target(
        "broadcast to 500: ≥ 2× picows deliveries/s", "broadcast-500", "fd-callback", "picows", 2
    ),
    Target(
        "broadcast to 5000: ≥ 2× picows deliveries/s", "broadcast-5000", "fd-callback", "picows", 2
    ),
    Target("handshakes/s ≥ 1.5× picows", "handshakes", "fd-callback", "picows", 1.5),
    Target(
        "memory per idle conn (1k) ≤ Node ws", "memory-1k", "fd-callback", "node-ws", maximum=1.0
    ),
    Target(
        "memory per idle conn (10k) ≤ Node ws", "memory-10k", "fd-callback", "node-ws", maximum=1.0
    ),
]


def target_rows(results: Results) -> list[tuple[str, str, str, str]]:
    rows = []
    for t in TARGETS:
        if t.case not in results.cells:
            continue
        r = ratio(results, t.case, t.a, t.b, t.key)
        # The same comparison in server CPU time per operation, which the machine's
        # noise moves far less than throughput: b's µs/op ÷ a's µs/op.
        eff = ratio(results, t.case, t.b, t.a, "cpu_us") if t.key == "value" else float("nan")
        if r != r:
            verdict = "not measured"
        elif t.minimum is not None:
            verdict = "holds" if r >= t.minimum else "misses"
        else:
            assert t.maximum is not None
            verdict = "holds" if r <= t.maximum else "misses"
        rows.append(
            (t.text, "–" if r != r else f"{r:.2f}×", "–" if eff != eff else f"{eff:.2f}×", verdict)
        )
    return rows


def headroom_rows(results: Results, cases: list[Case]) -> list[tuple[str, str]]:
    """Raw ceiling ÷ best WebSocket server, per echo case: > 1 means the client had room."""
    rows = []
    for case in cases:
        if case.kind not in ("echo", "handshakes", "broadcast"):
            continue
        cell = results.cells.get(case.name, {})
        if "raw" not in cell:
            continue
        best = max((median_of(v) for k, v in cell.items() if k != "raw"), default=float("nan"))
        raw = median_of(cell["raw"])
        if best == best and best > 0:
            rows.append((case.name, f"{raw / best:.2f}×"))
    return rows


def case_table(results: Results, case: Case, servers: list[str]) -> list[str]:
    cell = results.cells.get(case.name, {})
    errors = results.errors.get(case.name, {})
    echo11 = case.kind == "echo" and case.window == 1 and case.conns == 1
    big = case.kind == "echo" and case.size >= 64 * KiB
    head = ["server", f"{case.unit} (median)", "spread", "× picows"]
    if case.kind != "memory":
        head.append("server CPU µs/op")
    if big:
        head.insert(2, "MB/s")
    if echo11:
        head += ["p50 µs", "p99 µs"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in servers:
        if name not in cell:
            if name in errors:
                lines.append(f"| {LABELS[name]} | error: {errors[name]} |" + " |" * (len(head) - 2))
            continue
        vals = cell[name]
        row = [
            LABELS[name],
            _fmt(median_of(vals)),
            f"±{spread(vals) * 50:.0f}%",
            f"{ratio(results, case.name, name, 'picows'):.2f}",
        ]
        if case.kind != "memory":
            row.append(_fmt(median_of(vals, "cpu_us")))
        if big:
            row.insert(2, f"{median_of(vals, 'mbps'):,.0f}")
        if echo11:
            row += [f"{median_of(vals, 'p50_us'):.0f}", f"{median_of(vals, 'p99_us'):.0f}"]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def summary_table(results: Results, cases: list[Case], servers: list[str]) -> list[str]:
    present = [s for s in servers if any(s in results.cells.get(c.name, {}) for c in cases)]
    lines = [
        "| case | unit | " + " | ".join(LABELS[s] for s in present) + " |",
        "|---|---|" + "---:|" * len(present),
    ]
    for case in cases:
        cell = results.cells.get(case.name, {})
        if not cell:
            continue
        row = [case.name, case.unit + ("" if case.higher_is_better else " (lower is better)")]
        for s in present:
            if s in cell:
                row.append(f"{_fmt(median_of(cell[s]))} ±{spread(cell[s]) * 50:.0f}%")
            else:
                row.append("error" if s in results.errors.get(case.name, {}) else "")
        lines.append("| " + " | ".join(row) + " |")
    return lines


def versions(results: Results) -> str:
    parts = [f"Python {platform.python_version()}"]
    try:
        import uvloop

        parts.append(f"uvloop {uvloop.__version__}")
    except ImportError:
        parts.append("no uvloop")
    for name in ("picows", "websockets", "aiohttp"):
        info = results.info.get(name, {})
        if "version" in info:
            parts.append(f"{name} {info['version']}")
    node = results.info.get("node-ws", {})
    if node:
        extra = [k for k in ("bufferutil", "utf8validate") if node.get(k)]
        plus = f" (+{', '.join(extra)})" if extra else ""
        parts.append(f"Node {_node_version()} ws {node.get('ws')}{plus}")
    fd = results.info.get("fd-callback") or results.info.get("fd-asyncio") or {}
    if results.fullduplex:
        parts.append(f"fullduplex {results.fullduplex}")
    if "speedups" in fd:
        parts.append(f"fullduplex C speedups: {'on' if fd['speedups'] else 'off'}")
    if fd.get("workarounds"):
        parts.append(f"workarounds: {', '.join(fd['workarounds'])}")
    return ", ".join(parts)


def machine() -> str:
    """CPU model, cores, memory and OS of this machine, as far as Linux tells."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory = ""
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            kib = int(f.readline().split()[1])
        memory = f", {kib / 2**20:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return f"{model} × {os.cpu_count()} CPUs{memory}, {platform.system()} {platform.release()}"


def _node_version() -> str:
    try:
        return subprocess.run(
            ["node", "--version"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def write_markdown(
    path: Path, results: Results, cases: list[Case], servers: list[str], s: Settings, took: float
) -> None:
    now = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    lines = [
        "# fullduplex benchmark results",
        "",
        f"{now} · {machine()} · {versions(results)} · "
        f"{s.reps} round(s), {s.warmup:g} s warm-up + {s.duration:g} s window per cell · "
        f"{took / 60:.1f} min"
        + (" · **quick mode: smoke test, not a measurement**" if s.quick else ""),
        "",
        "Medians over the rounds; ± is half the min–max range in % of the median. Every "
        "server ran in its own process under the same load generator "
        "(`python -m benchmarks`; see `benchmarks/README.md`). Ratios are what count: "
        "absolute numbers on this shared machine move from run to run, and a cell "
        "moving by less than ~1.3× is noise.",
        "",
        "## Summary",
        "",
        *summary_table(results, cases, servers),
        "",
    ]
    rows = target_rows(results)
    if rows:
        lines += [
            "## Targets (ratios in this run)",
            "",
            "The verdict is on the measured ratio; *CPU/op ratio* compares the servers' "
            "CPU time per operation in the same cells (other server's µs/op ÷ "
            "fullduplex's), which the machine's noise disturbs less.",
            "",
            "| target | measured | CPU/op ratio | verdict |",
            "|---|---:|---:|---|",
            *(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows),
            "",
        ]
    head = headroom_rows(results, cases)
    if head:
        lines += [
            "## Load generator headroom",
            "",
            "Raw TCP ceiling ÷ best WebSocket server in the same case: above 1 the load "
            "generator could drive more than any server took, so it was not the bottleneck.",
            "",
            "| case | raw ÷ best server |",
            "|---|---:|",
            *(f"| {a} | {b} |" for a, b in head),
            "",
        ]
    lines += ["## Cases", ""]
    for case in cases:
        if case.name not in results.cells and case.name not in results.errors:
            continue
        lines += [f"### {case.name}: {case.title}", "", *case_table(results, case, servers), ""]
    path.write_text("\n".join(lines))


def write_chart(path: Path, results: Results, cases: list[Case], servers: list[str]) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    shown = [c for c in cases if results.cells.get(c.name)]
    if not shown:
        return False
    cols = 4
    rows = (len(shown) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.0 * rows), squeeze=False)
    colors = {
        "fd-callback": "#d62728",
        "fd-asyncio": "#ff9896",
        "picows": "#1f77b4",
        "websockets": "#2ca02c",
        "aiohttp": "#9467bd",
        "node-ws": "#8c564b",
        "raw": "#7f7f7f",
    }
    for ax, case in zip(axes.flat, shown, strict=False):
        cell = results.cells[case.name]
        names = [s for s in servers if s in cell]
        med = [median_of(cell[s]) for s in names]
        lo = [m - min(v["value"] for v in cell[s]) for m, s in zip(med, names, strict=True)]
        hi = [max(v["value"] for v in cell[s]) - m for m, s in zip(med, names, strict=True)]
        y = range(len(names))
        ax.barh(y, med, xerr=[lo, hi], color=[colors.get(s, "#333") for s in names], capsize=2)
        ax.set_yticks(list(y), [LABELS[s].replace(" (ceiling)", "") for s in names], fontsize=7)
        ax.invert_yaxis()
        better = "higher" if case.higher_is_better else "lower"
        ax.set_title(f"{case.name}\n{case.unit}, {better} is better", fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
        ax.xaxis.set_major_formatter(
            matplotlib.ticker.FuncFormatter(lambda v, _: _fmt(v) if v else "0")
        )
        for i, m in enumerate(med):
            ax.text(m, i, " " + _fmt(m), va="center", fontsize=6)
        ax.margins(x=0.25)
    for ax in list(axes.flat)[len(shown) :]:
        ax.axis("off")
    fig.suptitle("fullduplex vs other WebSocket servers (median of rounds, bars: min–max)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def print_report(results: Results, cases: list[Case], servers: list[str]) -> None:
    for case in cases:
        cell = results.cells.get(case.name)
        if not cell and case.name not in results.errors:
            continue
        print(f"\n{case.name}: {case.title} ({case.unit})")
        for line in case_table(results, case, servers):
            print("  " + line)
        if case.kind == "echo" or case.kind == "broadcast":
            r = ratio(results, case.name, "fd-asyncio", "websockets")
            if r == r:
                print(f"  fullduplex asyncio API ÷ websockets: {r:.2f}×")
    head = headroom_rows(results, cases)
    if head:
        print("\nload generator headroom (raw ceiling ÷ best server):")
        for a, b in head:
            print(f"  {a:<22} {b}")
    rows = target_rows(results)
    if rows:
        print("\ntargets (measured ratio, CPU/op ratio):")
        for a, b, c, d in rows:
            print(f"  {d:<13} {b:>8} {c:>8}  {a}")


# -------------------------------------------------------------------------- main


QUICK_CASES = (
    "echo-1x1-16B",
    "echo-64x16-1KiB",
    "echo-1x1-1MiB",
    "handshakes",
    "memory-1k",
    "broadcast-500",
)


def select(cases: list[Case], only: str | None, quick: bool = False) -> list[Case]:
    if not only:
        return [c for c in cases if c.name in QUICK_CASES] if quick else cases
    patterns = [p.strip() for p in only.split(",") if p.strip()]
    chosen = [
        c
        for c in cases
        if any(fnmatch.fnmatch(c.name, p) or c.name.startswith(p) for p in patterns)
    ]
    if not chosen:
        names = ", ".join(c.name for c in cases)
        raise SystemExit(f"--only {only!r} matches no case; cases: {names}")
    return chosen


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Compare fullduplex with other WebSocket servers under one load generator.",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 1 round, short windows, fewer connections, and (without --only) "
        f"only {', '.join(QUICK_CASES)}",
    )
    p.add_argument(
        "--only", metavar="CASE", help="comma-separated case names, prefixes or globs (echo-1x1*)"
    )
    p.add_argument(
        "--servers",
        metavar="NAMES",
        help=f"comma-separated subset of: {', '.join(n for n, _, _ in SERVERS)}",
    )
    p.add_argument("--reps", type=int, help="rounds (default 3, quick 1)")
    p.add_argument("--duration", type=float, help="seconds measured per cell (default 1.2)")
    p.add_argument(
        "--out", type=Path, help="where results*.md/png go (default: the benchmarks folder)"
    )
    p.add_argument("--list", action="store_true", help="list the cases and exit")
    return p.parse_args(argv)


async def amain(args: argparse.Namespace) -> int:
    cases = build_cases(args.quick)
    if args.list:
        for c in cases:
            print(f"{c.name:<20} {c.title}")
        return 0
    cases = select(cases, args.only, args.quick)
    wanted = [n for n, _, _ in SERVERS]
    if args.servers:
        wanted = [s.strip() for s in args.servers.split(",") if s.strip()]
        unknown = set(wanted) - set(LABELS)
        if unknown:
            raise SystemExit(f"unknown server(s): {', '.join(sorted(unknown))}")
    servers, notes = check_environment(wanted)
    for note in notes:
        print(f"note: {note}", flush=True)
    if not servers:
        print("nothing to run", file=sys.stderr)
        return 1

    limit = raise_fd_limit()
    for case in cases:
        if case.kind == "memory" and case.count + 200 > limit:
            print(
                f"note: the open-file limit is {limit} (ulimit -n): {case.name} measures "
                f"{limit - 200} connections instead of {case.count}"
            )
            case.count = limit - 200

    s = Settings(
        reps=args.reps or (1 if args.quick else 3),
        warmup=0.05 if args.quick else 0.3,
        duration=args.duration or (0.2 if args.quick else 1.2),
        quick=args.quick,
    )
    server_cpu, client_cpu = cpus()
    print(
        f"{len(servers)} servers × {len(cases)} cases × {s.reps} round(s); "
        f"server on CPU {server_cpu}, load generator on CPU {client_cpu} "
        f"(same CPU for 1×1 ping-pong)",
        flush=True,
    )
    results = Results()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fullduplex-bench-") as logdir:
        snap = Path(logdir) / "snapshot"
        snap.mkdir()
        results.fullduplex = snapshot_fullduplex(snap)
        ServerProcess.pythonpath = [str(snap)]
        print(f"fullduplex: {results.fullduplex} (a copy taken now is what runs)", flush=True)
        for rep in range(s.reps):
            order = servers[rep % len(servers) :] + servers[: rep % len(servers)]
            await run_round(rep, order, cases, s, results, Path(logdir))
    took = time.perf_counter() - t0

    print_report(results, cases, servers)
    out = args.out or HERE
    out.mkdir(parents=True, exist_ok=True)
    full = not args.quick and not args.only and not args.servers and args.reps is None
    stem = "results" if full else ("results-quick" if args.quick else "results-partial")
    md = out / f"{stem}.md"
    write_markdown(md, results, cases, servers, s, took)
    print(f"\nwrote {md}")
    png = out / f"{stem}.png"
    if write_chart(png, results, cases, servers):
        print(f"wrote {png}")
    print(f"took {took:.0f} s")
    failed = sum(len(v) for v in results.errors.values())
    return 1 if failed and not results.cells else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import uvloop
    except ImportError:
        return asyncio.run(amain(args))
    return uvloop.run(amain(args))
