"""`load`: the app under a crowd, over a long series of runs, and at Stop, on the embedded world.

    python -m guidance.bench load --json runs/bench/load.json

Crowd: the app with a line of `queue` runs (app.py's --queue-size). `clients` visitors open the page one after
another (a session each, its status line loaded, a kept-alive connection: `Page`), then all submit a short Face run
at the same moment, as a browser does (a POST to /gradio_api/queue/join, then the session's events). Each is finished
or refused (guidance.playground.crowd): the time to a refusal, and for the admitted the place they were shown,
Gradio's estimate and the wait until their run started. Meanwhile the endpoints that skip the line are timed, as a
page sends them (Stop, the status line, the sweep command's text, the API info), and /stop from gradio_client, which
sends it through the queue.
Soak: `soak` runs in a row from one visitor, each of a random tab, methods, steps, samples and seed: some are stopped
mid-run, some raise inside the energy (an injected fault), some send bad input. After each: the process's resident
memory, open file descriptors and threads, and the size of Gradio's cache (uploads and outputs), which the app
deletes after `cache_seconds` (its `delete_cache`; an hour in app.py, shorter here so that the run sees it work).
Stop: `stops` Face runs stopped mid-run: the seconds from the /stop call to the run's result, the steps the run took
after the step shown when Stop was pressed, and the resident memory after the result against before the run.
The app runs in a child process (the clients in this one); its memory, descriptors and threads are read from /proc.
"""

from __future__ import annotations

import contextlib
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from guidance.bench.common import Options, SuiteOutput, goal_told, progress
from guidance.worlds import World

NEEDS = ()
ROOT = Path(__file__).resolve().parents[3]  # app.py's folder
RUNNING = ("PROCESSING", "PROGRESS", "ITERATING")
TABS = {  # each tab's methods to draw from, and its steps widget
    "face": (("plain", "freedom", "figd", "figd+dsg"), "steps"),
    "style": (("plain", "freedom", "figd"), "steps"),
    "control": (("plain", "figd"), "steps"),
    "classes": (("plain", "cfg", "atg+gfcg"), "steps"),
    "solvers": (("ddim", "dpmsolver++", "evodiff"), "nfe"),
}
BAD_INPUTS = ({"eta": 5}, {"steps": 0}, {"condition": "red hair"}, {"window_start": 0.8, "window_end": 0.2})


@dataclass(frozen=True)
class Plan:
    clients: int = 40
    queue: int = 8
    crowd_steps: int = 4
    soak: int = 200
    soak_steps: int = 4  # each soak run takes 2 to this many steps
    stops: int = 10
    cache_seconds: int = 60
    stopped: float = 0.1  # the share of soak runs stopped mid-run
    faulty: float = 0.05  # ... raising inside the energy
    bad: float = 0.05  # ... with bad input


PLANS = {"quick": Plan(clients=12, queue=4, soak=30, stops=3), "full": Plan()}


def run(world: World, opts: Options) -> SuiteOutput:
    """The crowd, the soak and the stops, one after another on one app (the interface: guidance.bench.suites)."""
    from guidance.worlds.embedded import ASSETS

    plan = opts.plan(PLANS)
    with served(opts.world or ASSETS, plan) as app:
        crowd_rows, crowd_goals, crowd_notes = crowd(app.url, plan)
        soak_rows, soak_goals, soak_notes = soak(app, plan)
        stop_rows, stop_goals, stop_notes = stops(app, plan)
    return SuiteOutput(
        crowd_rows + soak_rows + stop_rows,
        crowd_goals + soak_goals + stop_goals,
        config=asdict(plan),
        notes=crowd_notes + soak_notes + stop_notes,
    )


@dataclass(frozen=True)
class Served:
    """The app in a process of its own: its URL, its process id, Gradio's cache folder, and the file whose presence
    makes every energy raise (an injected fault)."""

    url: str
    pid: int
    cache: Path
    fault: Path


@contextlib.contextmanager
def served(world: Path, plan: Plan) -> Iterator[Served]:
    """The app (app.py's build_app) on the embedded world in a child process, on a free local port, for the block."""
    import socket

    import httpx

    folder = Path(tempfile.mkdtemp(prefix="guidance-load-"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cache, fault = folder / "gradio-cache", folder / "fault"
    call = f"serve({str(world)!r}, {port}, {plan.queue}, {plan.cache_seconds}, {str(cache)!r}, {str(fault)!r})"
    command = [sys.executable, "-c", f"from guidance.bench.suites.load import serve; {call}"]
    with (folder / "app.log").open("w") as log:
        child = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url, deadline = f"http://127.0.0.1:{port}/", time.monotonic() + 300
    try:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=5).status_code == 200:
                    break
            if time.monotonic() > deadline or child.poll() is not None:
                raise RuntimeError(f"the app did not start; its log: {folder / 'app.log'}")
            time.sleep(0.5)
        yield Served(url, child.pid, cache, fault)
    finally:
        child.terminate()
        child.wait(30)


def serve(world: str, port: int, queue: int, cache_seconds: int, cache: str, fault: str) -> None:
    """The app's process (`served` starts it): the app with a line of `queue`, Gradio's cache in `cache`, every energy
    raising while the file `fault` exists (a forward pre-hook on every module, torch's own seam)."""
    os.environ["GRADIO_TEMP_DIR"] = cache
    from torch.nn.modules.module import register_module_forward_pre_hook

    import app

    register_module_forward_pre_hook(fail_inside_energies(Path(fault)))
    demo = app.build_app(world, sd_model=None, queue_size=queue, cache_seconds=cache_seconds)
    demo.launch(server_name="127.0.0.1", server_port=port, quiet=True)


def fail_inside_energies(flag: Path):
    """A forward pre-hook that raises inside any energy (guidance.energy.Energy) while `flag` exists."""
    from guidance.energy import Energy

    def hook(module, inputs) -> None:
        if isinstance(module, Energy) and flag.exists():
            raise RuntimeError("injected fault inside the energy")

    return hook


def client(url: str):
    """One visitor: a gradio_client Client with its own session, which keeps output files on the server, and has read
    the app's API description (what a client does once, before its first call)."""
    from gradio_client import Client

    visitor = Client(url, verbose=False, download_files=False)
    visitor.view_api(print_info=False)
    return visitor


def spread(values: list[float]) -> dict:
    """n, median, worst (the largest) and the 10th-90th percentiles of some seconds."""
    if not values:
        return {"n": 0, "median": None, "worst": None}
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]  # noqa: E731
    return {"n": len(values), "median": statistics.median(values), "worst": ordered[-1], "p10": pick(0.1), "p90": pick(0.9)}


# ----------------------------------------------------------------------------- crowd


@dataclass(frozen=True)
class Page:
    """One visitor's open page, as a browser holds it: a session, a kept-alive connection (an httpx.Client), and the
    app's events by index."""

    url: str
    session: str
    http: Any  # httpx.Client
    events: dict[str, int]  # "load" (the status line when a page opens), "face", "stop", "face_sweep_command"

    @classmethod
    def opened(cls, url: str, events: dict[str, int], backbone: str) -> Page:
        """A page that has opened: its load event (the status line) has run, as a browser runs it on opening."""
        import uuid

        import httpx

        page = cls(url, uuid.uuid4().hex, httpx.Client(base_url=f"{url}gradio_api/", timeout=300), events)
        page.call("load", [backbone])
        return page

    def body(self, event: str, data: list) -> dict:
        return {
            "data": data,
            "fn_index": self.events[event],
            "session_hash": self.session,
            "event_data": None,
            "trigger_id": None,
        }

    def call(self, event: str, data: list) -> None:
        """An event that skips the queue, sent as a browser sends it: a POST to /gradio_api/run/<name>."""
        self.http.post(f"run/{event}", json=self.body(event, data)).raise_for_status()


def browser_events(url: str) -> tuple[dict[str, int], dict[str, list]]:
    """The app's events that the crowd sends, by name, and the Face run's and sweep command's default inputs."""
    config = client(url).config
    events = {d.get("api_name"): d["id"] for d in config["dependencies"] if d.get("api_name")}
    events["load"] = next(d["id"] for d in config["dependencies"] if any(target[1] == "load" for target in d["targets"]))
    named = client(url).view_api(print_info=False, return_format="dict")["named_endpoints"]
    defaults = {
        name: [p["parameter_default"] for p in named[f"/{name}"]["parameters"]] for name in ("face", "face_sweep_command")
    }
    return events, defaults


def visit(page: Page, data: list, start: threading.Barrier) -> dict:
    """One visitor's Face run from an open page, submitted when every visitor is ready, as a browser submits it: a
    POST to /gradio_api/queue/join under the page's session, then the session's event stream. Returns what became of
    it (finished, refused with a message, error), the seconds to the answer of the join, the place and estimate it was
    shown, and the seconds until its run started and until its result."""
    import json

    start.wait()
    began = time.monotonic()
    joined = page.http.post("queue/join", json=page.body("face", data))
    answered = time.monotonic() - began
    if joined.status_code != 200:
        outcome = "refused" if joined.status_code == 422 else "refused by Gradio" if joined.status_code == 503 else "error"
        detail = joined.json().get("detail")
        message = detail[0].get("message", "") if isinstance(detail, list) else str(detail)
        return {
            "outcome": outcome,
            "message": message,
            "answered": answered,
            "rank": None,
            "eta": None,
            "started": None,
            "seconds": answered,
        }
    seen: dict = {"rank": None, "eta": None, "started": None, "outcome": "error", "message": ""}
    with page.http.stream("GET", "queue/data", params={"session_hash": page.session}) as events:
        for line in events.iter_lines():
            if not line.startswith("data:"):
                continue
            message = json.loads(line[5:])
            if message["msg"] == "estimation" and seen["rank"] is None:
                seen |= {"rank": message.get("rank"), "eta": message.get("rank_eta")}
            elif message["msg"] == "process_starts" and seen["started"] is None:
                seen["started"] = time.monotonic() - began
            elif message["msg"] == "process_completed":
                seen |= {
                    "outcome": "finished" if message.get("success") else "error",
                    "message": str(message.get("output", ""))[:200],
                }
                break
    return {**seen, "answered": answered, "seconds": time.monotonic() - began}


def probe(page: Page, visitor, command_data: list, until: threading.Event, into: dict[str, list[float]]) -> None:
    """Every 0.2 s until `until` is set, times the endpoints that do not sample: from an open page as a browser sends
    them (Stop, the status line of a page opening, the sweep command's text), the API info, and /stop from a
    gradio_client `visitor` (which sends it through the queue)."""
    calls = {
        "stop": lambda: page.call("stop", []),
        "status line": lambda: page.call("load", ["embedded"]),
        "sweep command": lambda: page.call("face_sweep_command", command_data),
        "api_info": lambda: page.http.get("info").raise_for_status(),
        "stop from gradio_client": lambda: visitor.predict(api_name="/stop"),
    }
    while not until.is_set():
        for name, call in calls.items():
            began = time.monotonic()
            call()
            into[name].append(time.monotonic() - began)
        time.sleep(0.2)


def crowd(url: str, plan: Plan) -> tuple[list[dict], list[dict], list[str]]:
    """`clients` visitors submit at once; rows of what became of them, goals, notes."""
    from concurrent.futures import ThreadPoolExecutor

    client(url).predict(steps=plan.crowd_steps, api_name="/face")  # the world loaded, a run timed: Gradio can estimate
    events, defaults = browser_events(url)
    names = [
        p["parameter_name"]
        for p in client(url).view_api(print_info=False, return_format="dict")["named_endpoints"]["/face"]["parameters"]
    ]
    data = [plan.crowd_steps if name == "steps" else value for name, value in zip(names, defaults["face"])]
    pages, opening = [], []
    for _ in range(plan.clients):  # the visitors open the page, one after another, while the line is empty
        began = time.monotonic()
        pages.append(Page.opened(url, events, "embedded"))
        opening.append(time.monotonic() - began)
    start, done = threading.Barrier(plan.clients), threading.Event()
    timings: dict[str, list[float]] = {
        name: [] for name in ("stop", "status line", "sweep command", "api_info", "stop from gradio_client")
    }
    prober = threading.Thread(
        target=probe,
        args=(Page.opened(url, events, "embedded"), client(url), defaults["face_sweep_command"], done, timings),
        daemon=True,
    )
    progress(f"load: {plan.clients} clients submit a {plan.crowd_steps}-step Face run at once (line of {plan.queue})")
    prober.start()
    with ThreadPoolExecutor(plan.clients) as pool:
        visits = list(pool.map(lambda page: visit(page, data, start), pages))
    done.set()
    prober.join()
    counts = {name: sum(v["outcome"] == name for v in visits) for name in ("finished", "refused", "refused by Gradio", "error")}
    refusals = spread([v["answered"] for v in visits if v["outcome"].startswith("refused")])
    finished = [v for v in visits if v["outcome"] == "finished"]
    waits, totals = spread([v["started"] for v in finished if v["started"] is not None]), spread([v["seconds"] for v in finished])
    shown = sum(v["rank"] is not None and v["eta"] is not None for v in finished)
    rows = [
        {"task": "crowd", "method": "outcomes", **counts, "clients": plan.clients, "queue": plan.queue},
        {"task": "crowd", "method": "seconds to open a page (its session and status line)", **spread(opening)},
        {"task": "crowd", "method": "seconds to a refusal", **refusals},
        {"task": "crowd", "method": "admitted: seconds to the join's answer", **spread([v["answered"] for v in finished])},
        {"task": "crowd", "method": "admitted: seconds until their run started", **waits},
        {"task": "crowd", "method": "admitted: seconds until their result", **totals},
        {"task": "crowd", "method": "admitted: place and estimate shown", "n": len(finished), "shown": shown},
        *(
            {"task": "crowd", "method": f"{name} while the line was full (s)", **spread(values)}
            for name, values in timings.items()
        ),
    ]
    probed = [seconds for name, values in timings.items() if name != "stop from gradio_client" for seconds in values]
    slowest = max(probed, default=float("nan"))
    goals = [
        goal_told(
            "crowd: every visitor finished or refused readably",
            "all",
            counts["finished"] + counts["refused"],
            counts["error"] == 0 and counts["refused by Gradio"] == 0,
            n=plan.clients,
        ),
        goal_told(
            "crowd: worst time to a refusal",
            "<= 1 s",
            refusals["worst"] or float("nan"),
            bool(refusals["n"]) and refusals["worst"] <= 1,
            " s",
            n=refusals["n"],
        ),
        goal_told(
            "crowd: admitted runs, all within the line",
            f"<= {plan.queue + 1}",
            counts["finished"],
            counts["finished"] <= plan.queue + 1,
            n=plan.clients,
        ),
        goal_told(
            "crowd: slowest Stop, status line, sweep command or API info while the line was full",
            "<= 1 s",
            slowest,
            bool(probed) and slowest <= 1,
            " s",
            n=len(probed),
        ),
    ]
    refusal = next((v["message"] for v in visits if v["outcome"] == "refused"), "")
    notes = [
        f"crowd: {counts['finished']} of {plan.clients} finished, {counts['refused']} refused (median {fmt(refusals['median'])} s,"
        f" worst {fmt(refusals['worst'])} s); a refusal reads: {refusal.splitlines()[-1].lstrip('- ') if refusal else '(none)'}"
    ]
    return rows, goals, notes


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


# ----------------------------------------------------------------------------- soak


def process_status(pid: int) -> dict[str, str]:
    """Linux's /proc/PID/status, by field."""
    return dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)


def rss_mb(pid: int) -> float:
    """A process's resident memory, MB."""
    return int(process_status(pid)["VmRSS"].split()[0]) / 1024


def resources(app: Served) -> dict:
    """The app's resident memory (MB), open file descriptors and threads, and its cache's size (MB) and files."""
    sizes = []
    for folder, _, names in os.walk(app.cache):
        for name in names:
            with contextlib.suppress(FileNotFoundError):  # deleted by Gradio meanwhile
                sizes.append(os.stat(os.path.join(folder, name)).st_size)
    return {
        "rss_mb": rss_mb(app.pid),
        "fds": len(os.listdir(f"/proc/{app.pid}/fd")),
        "threads": int(process_status(app.pid)["Threads"]),
        "cache_mb": sum(sizes) / 2**20,
        "cache_files": len(sizes),
    }


def random_run(rng: random.Random, plan: Plan) -> tuple[str, dict]:
    """A random tab and its inputs: methods, steps, samples, seed."""
    tab = rng.choice(list(TABS))
    methods, steps_key = TABS[tab]
    inputs = {
        "methods": rng.sample(methods, rng.randint(1, 2)),
        steps_key: rng.randint(2, plan.soak_steps),
        "samples": rng.randint(1, 2),
        "seed": rng.randint(0, 10_000),
    }
    return tab, inputs


def soak_run(visitor, rng: random.Random, plan: Plan, fault: Path) -> str:
    """One soak run; returns its kind: "ran", "stopped", "fault" or "bad input" (each must end as expected)."""
    from gradio_client.exceptions import AppError

    tab, inputs = random_run(rng, plan)
    draw = rng.random()
    if draw < plan.stopped:
        job = visitor.submit(**{**inputs, "samples": 1, TABS[tab][1]: 400}, api_name=f"/{tab}")
        wait_for_steps(job)
        visitor.predict(api_name="/stop")
        summary = job.result(timeout=120)[1]
        assert any(s["cancelled"] for s in summary.values()), "a stopped run was not marked cancelled"
        return "stopped"
    if draw < plan.stopped + plan.faulty:
        fault.touch()
        try:
            with contextlib.suppress(AppError):
                visitor.predict(**inputs, api_name=f"/{tab}")
                raise AssertionError("a run whose energy raised did not report an error")
        finally:
            fault.unlink()
        return "fault"
    if draw < plan.stopped + plan.faulty + plan.bad:
        with contextlib.suppress(AppError):
            visitor.predict(**{**inputs, **rng.choice(BAD_INPUTS)}, api_name=f"/{tab}")
            raise AssertionError("bad input was not refused")
        return "bad input"
    visitor.predict(**inputs, api_name=f"/{tab}")
    return "ran"


def wait_for_steps(job, timeout: float = 120) -> int:
    """Until the job reports a sampling step; returns the step shown."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = job.status().progress_data
        if data and data[0].unit == "steps" and data[0].index:
            return int(data[0].index)
        time.sleep(0.02)
    raise AssertionError(f"no sampling step reported within {timeout} s")


def soak(app: Served, plan: Plan) -> tuple[list[dict], list[dict], list[str]]:
    """`soak` runs in a row; rows of the app's resources at runs 1, 20, ..., goals, notes."""
    rng, visitor, kinds, samples = random.Random(0), client(app.url), [], []
    progress(f"load: soak of {plan.soak} runs")
    began = time.monotonic()
    for number in range(1, plan.soak + 1):
        kinds.append(soak_run(visitor, rng, plan, app.fault))
        samples.append({"run": number, "seconds": time.monotonic() - began, **resources(app)})
        if number % 20 == 0:
            progress(f"load: soak run {number}: {samples[-1]}")
    first = samples[min(19, len(samples) - 1)]
    last = samples[-1]
    rows = [
        {"task": "soak", "method": f"after run {s['run']}", **s}
        for s in samples
        if s["run"] == 1 or s["run"] % 20 == 0 or s is last
    ]
    rows.append(
        {
            "task": "soak",
            "method": "runs by kind",
            **{kind: kinds.count(kind) for kind in ("ran", "stopped", "fault", "bad input")},
        }
    )
    growth = last["rss_mb"] - first["rss_mb"]
    later = [s for s in samples if s["run"] >= first["run"]]
    cache_top = max(s["cache_mb"] for s in samples)
    goals = [
        goal_told(
            f"soak: resident memory growth, run {first['run']} to {last['run']}",
            "< 100 MB",
            growth,
            growth < 100,
            " MB",
            n=len(later),
        ),
        goal_told(
            f"soak: open file descriptors, run {first['run']} to {last['run']}",
            "no growth",
            last["fds"] - first["fds"],
            max(s["fds"] for s in later) <= first["fds"] + 5,
            n=len(later),
        ),
        goal_told(
            f"soak: threads, run {first['run']} to {last['run']}",
            "no growth",
            last["threads"] - first["threads"],
            max(s["threads"] for s in later) <= first["threads"] + 2,
            n=len(later),
        ),
    ]
    if last["seconds"] > 2 * plan.cache_seconds:
        bounded = last["cache_mb"] <= 1.5 * max(
            s["cache_mb"] for s in samples if s["seconds"] <= last["seconds"] - plan.cache_seconds
        )
        goals.append(
            goal_told(
                f"soak: Gradio's cache levels off (files older than {plan.cache_seconds} s deleted)",
                "bounded",
                last["cache_mb"],
                bounded,
                " MB",
                n=len(samples),
            )
        )
    notes = [
        f"soak: {len(kinds)} runs in {last['seconds']:.0f} s ({', '.join(f'{kinds.count(k)} {k}' for k in dict.fromkeys(kinds))}); "
        f"RSS {first['rss_mb']:.0f} MB at run {first['run']} and {last['rss_mb']:.0f} MB at run {last['run']}; fds {first['fds']} -> "
        f"{last['fds']}, threads {first['threads']} -> {last['threads']}; Gradio's cache at most {cache_top:.1f} MB, "
        f"{last['cache_mb']:.1f} MB at the end"
    ]
    return rows, goals, notes


# ----------------------------------------------------------------------------- stops


def stops(app: Served, plan: Plan) -> tuple[list[dict], list[dict], list[str]]:
    """`stops` Face runs stopped mid-run; rows of the delays and the app's memory, goals, notes."""
    visitor, delays, after, memory = client(app.url), [], [], []
    progress(f"load: {plan.stops} stops")
    for _ in range(plan.stops):
        before = rss_mb(app.pid)
        job = visitor.submit(methods=["freedom", "figd"], steps=400, api_name="/face")
        shown = wait_for_steps(job)
        clicked = time.monotonic()
        visitor.predict(api_name="/stop")
        summary = job.result(timeout=120)[1]
        delays.append(time.monotonic() - clicked)
        after.append(summary["freedom"]["steps"] - shown)
        memory.append(rss_mb(app.pid) - before)
    rows = [
        {"task": "stop", "method": "seconds from /stop to the result", **spread(delays)},
        {"task": "stop", "method": "steps after the step shown at Stop", **spread([float(a) for a in after])},
        {"task": "stop", "method": "resident memory after Stop minus before the run (MB)", **spread(memory)},
    ]
    goals = [
        goal_told("stop: worst seconds from /stop to the result", "<= 2 s", max(delays), max(delays) <= 2, " s", n=len(delays)),
        goal_told(
            "stop: worst memory after Stop above before the run", "<= 50 MB", max(memory), max(memory) <= 50, " MB", n=len(memory)
        ),
    ]
    notes = [
        f"stop: result {statistics.median(delays):.2f} s (median; worst {max(delays):.2f} s) after /stop, "
        f"{statistics.median(after):.0f} steps (worst {max(after)}) after the step shown at the click; memory after Stop "
        f"{statistics.median(memory):+.1f} MB (worst {max(memory):+.1f} MB) against before the run"
    ]
    return rows, goals, notes
