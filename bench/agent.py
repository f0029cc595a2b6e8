"""Agent footprint on Xvfb at 1920x1080: trigger-to-disk latency, CPU idle and typing, peak RSS.

Run:  .venv/bin/python bench/agent.py [--trials 30] [--model-trials 10] [--idle-s 60] [--typing-s 60]

Each measure is taken twice on the same display: with the sentence model (the default install)
and with ``VIGIL_AGENT_MODEL=0`` (the lists alone), and printed side by side.

Starts Xvfb (-displayfd) + openbox, writes an agent config for a locally made keyholder and a
policy signed by it (the default wordlists, flood control off so every trigger is captured), and
runs the real `vigil agent run` as its own process. The collector URL points at a closed port, so
sealed events stay in the spool where their arrival is timed; uploads back off meanwhile (that
cost is part of "idle").

- latency: xdotool types a trigger, then the clock starts and xdotool presses the key that
  completes it (Return); the clock stops at the spool file's ctime (set by the rename that
  follows fsync). Includes xdotool's own start-up (a few ms). The agent's own figure (hook to
  spool) is read from its log too.
- baseline: the same grab + WebP encode + seal done in this process, without the agent.
- CPU: psutil cpu_times of the agent process only, over --idle-s idle and over --typing-s of
  benign text typed at 10 keys/s; % of one core.
- RSS: the kernel's peak (VmHWM) of the agent process at the end.
- the model: a paraphrase no list holds, typed and ended with Return, timed to its sealed event
  like a list trigger (the model judges at Return, on its own thread); the agent's own median
  per judged utterance, from its last log line, as wall time (the judge runs at nice 10, so it
  stretches while other work runs) and as the judge thread's CPU time (the cost on one core,
  which the last line's ``model_ms_median`` reports); and the baseline, one sentence encoded
  and scored in this process on one thread. The typing text ends sentences, so the model judges
  while the CPU is measured.
- the tray icon: trayer (a real XEmbed tray) runs on the display, so the agent's tray process
  docks its icon as on a school desktop; that process's CPU over the same intervals and its
  peak RSS are reported on their own rows (the last line is the agent process's, as issue 5
  defines it).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fixtures.x11 import start_x11, wait_until

BENIGN = ("we went to the museum on friday and learnt about the romans and their roads. "
          "then we had lunch in the park and played football until it rained. ")
TRIGGER = "i want to kill myself"
PARAPHRASE = "honestly whats the point of me being here anymore i just want it all to stop"


def write_config(cfg: Path, screen: bool = False, school_flood: bool = False
                 ) -> tuple[object, list]:
    """An enrolled agent's config under a signed policy with the default lists. The flood
    window and title cool-down are 0 (every trial fires, as latency trials need) unless
    ``school_flood``: then the policy's defaults, as a school runs (what an hour of use needs:
    with a window of 0 nothing on screen is remembered, and every read is judged afresh)."""
    from agent.config import ConfigDir, Enrolment
    from core import keys
    from core.policy import Policy, ScreenSettings, Trust, sign
    from core.rules import default_files

    _, key = keys.create("Bench Head", "head", "bench password 123",
                                kdf=keys.Kdf.insecure_fast_for_tests())
    # The default policy's lists: the category lists and every language pack.
    wordlists = {f"default/{name}": text for name, text in default_files().items()}
    flood = {} if school_flood else {"flood_window_s": 0, "title_cooldown_s": 0}
    policy = Policy(serial=1, keyholders=(key.public,), wordlists=wordlists,
                    notice="Bench run: this display is monitored.",
                    screen=ScreenSettings(enabled=screen), **flood)  # type: ignore[arg-type]
    signed = sign(policy, key)
    config = ConfigDir(cfg)
    config.save_enrolment(Enrolment(collector="https://127.0.0.1:9", device_id="bench-device",
                                    secret="x" * 43, keyset_fingerprint=policy.keyset_fingerprint,
                                    cert_fingerprints=("0" * 64,)))
    config.save_trust(Trust.pinned(policy.keyset_fingerprint).to_json())
    config.save_policy(signed.to_bytes(), signed.digest)
    return key, list(policy.keyholders)


def baseline_sample(cap: object, recipients: list, i: int) -> float:
    """grab + encode + seal once in this process: the floor the agent cannot go below (ms)."""
    from datetime import datetime

    from core import envelope

    t = time.perf_counter()
    img = cap.grab((100, 100, 600, 200))  # type: ignore[attr-defined]
    meta = envelope.Metadata(f"b{i}", "bench", datetime.now(UTC), "suicide", 5,
                             "suicide.kill_myself", "typed")
    envelope.seal(meta, {"context": "x"}, img.data, recipients)
    return (time.perf_counter() - t) * 1000


def cpu_pct(proc: object, seconds: float, during: object = None) -> float:
    t0 = proc.cpu_times()  # type: ignore[attr-defined]
    w0 = time.monotonic()
    if during is not None:
        during()  # type: ignore[operator]
    remaining = seconds - (time.monotonic() - w0)
    if remaining > 0:
        time.sleep(remaining)  # measuring an interval, not waiting for a condition
    t1 = proc.cpu_times()  # type: ignore[attr-defined]
    wall = time.monotonic() - w0
    return 100 * ((t1.user - t0.user) + (t1.system - t0.system)) / wall


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def model_baseline_ms(n: int = 30) -> float | None:
    """One sentence encoded and scored in this process, one thread: the model's floor (ms)."""
    from core.detect.model import ModelDetector
    from core.errors import ModelUnavailable

    try:
        model = ModelDetector()
    except ModelUnavailable:
        return None
    times = []
    for i in range(n):
        t = time.perf_counter()
        model.detect(f"{PARAPHRASE} {i}")
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def timed_triggers(x: object, spool: Path, text: str, n: int) -> list[float]:
    """Type ``text``, start the clock, press Return; stop it at the new spool file's ctime."""
    out = []
    for _ in range(n):
        before = set(spool.glob("*.evt"))
        x.type(text, delay_ms=8)  # type: ignore[attr-defined]
        t0 = time.time_ns()
        x.key("Return")  # type: ignore[attr-defined]
        new = wait_until(lambda before=before: set(spool.glob("*.evt")) - before, 30,
                         interval=0.002, what="the sealed event on disk")
        path = next(iter(new))  # type: ignore[call-overload]
        out.append((path.stat().st_ctime_ns - t0) / 1e6)
    return out


def stop_agent(agent: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM, so the agent logs its closing figures; SIGKILL if it does not end in time."""
    if agent.poll() is None:
        agent.send_signal(signal.SIGTERM)
        try:
            agent.wait(timeout)
        except subprocess.TimeoutExpired:
            agent.kill()


def measure(x: object, tmp: Path, args: argparse.Namespace, model: bool) -> dict[str, object]:
    """Start an agent (with or without the model) and take every measure of the table."""
    import psutil

    run = tmp / ("model" if model else "lists")
    cfg, spool, runtime = run / "cfg", run / "spool", run / "run"
    runtime.mkdir(mode=0o700, parents=True)
    _, recipients = write_config(cfg)
    env = x.env  # type: ignore[attr-defined]
    env.update(XDG_RUNTIME_DIR=str(runtime), PYTHONUNBUFFERED="1",
               VIGIL_AGENT_MODEL="1" if model else "0")
    log_path = run / "agent.log"
    with open(log_path, "wb") as log:
        agent = subprocess.Popen([sys.executable, "-m", "vigil", "agent", "run",
                                  "--config-dir", str(cfg), "--spool-dir", str(spool)],
                                 env=env, cwd=REPO, stdout=log, stderr=log)
    try:
        wait_until(lambda: "agent running" in log_path.read_text(), 60, what="agent start")
        if model:
            wait_until(lambda: "sentence model loaded" in log_path.read_text(), 60,
                       what="the sentence model to load")
        proc = psutil.Process(agent.pid)
        if shutil.which("trayer"):
            wait_until(lambda: "tray icon shown" in log_path.read_text(), 30, what="tray icon")
        trays = [c for c in proc.children() if "tray" in c.cmdline()]
        tray = trays[0] if trays else None
        x.open_window(f"Bench notes ({run.name})")  # type: ignore[attr-defined]

        # --- warm-up: one trigger first (loads what the first capture needs), retried if it
        # does not land, so a lost warm-up cannot stop the bench.
        warm_attempts = 0
        while not list(spool.glob("*.evt")):
            warm_attempts += 1
            if warm_attempts > 5:
                raise SystemExit("no event after 5 warm-up triggers:\n"
                                 + log_path.read_text()[-3000:])
            x.type(TRIGGER, delay_ms=8)  # type: ignore[attr-defined]
            x.key("Return")  # type: ignore[attr-defined]
            try:
                wait_until(lambda: list(spool.glob("*.evt")), 5, interval=0.01, what="warm-up")
            except AssertionError:
                continue

        # --- latency, each trial followed by one baseline sample (same load for both) ------
        from agent.capture import Capturer

        cap = Capturer("webp", 70)
        cap.warm_up()
        base: list[float] = []
        latencies: list[float] = []
        for i in range(args.trials):
            latencies += timed_triggers(x, spool, TRIGGER, 1)
            base.append(baseline_sample(cap, recipients, i))
        cap.close()
        model_latencies = timed_triggers(x, spool, PARAPHRASE, args.model_trials) if model else []

        # --- CPU and memory ------------------------------------------------------------
        tray_t0 = tray.cpu_times() if tray is not None else None
        idle = cpu_pct(proc, args.idle_s)
        tray_t1 = tray.cpu_times() if tray is not None else None
        keys = int(args.typing_s * 10)
        text = (BENIGN * (keys // len(BENIGN) + 1))[:keys]

        def type_slowly() -> None:
            # xdotool: one key every 100 ms = 10 keys/s, for the whole period
            subprocess.run(["xdotool", "type", "--delay", "100", "--", text], env=x.env,  # type: ignore[attr-defined]
                           check=True, timeout=args.typing_s + 60)

        typing = cpu_pct(proc, args.typing_s, type_slowly)
        tray_t2 = tray.cpu_times() if tray is not None else None
        rss = peak_rss_mb(agent.pid)
        tray_used = None
        if tray is not None and tray_t0 and tray_t1 and tray_t2:
            def used(a: object, b: object) -> float:
                return (b.user - a.user) + (b.system - a.system)  # type: ignore[attr-defined]

            tray_used = (100 * used(tray_t0, tray_t1) / args.idle_s,
                         100 * used(tray_t1, tray_t2) / args.typing_s, peak_rss_mb(tray.pid))
        leaked = any("museum" in p.read_bytes().decode("latin-1") for p in spool.glob("*.evt"))
    finally:
        stop_agent(agent)
    log_text = log_path.read_text()
    judged = re.search(r"sentence model: (\d+) sentence\(s\) judged, median ([\d.]+) ms "
                       r"per utterance \(([\d.]+) ms of CPU\)", log_text)
    return {
        "latencies": latencies, "base": base, "model_latencies": model_latencies,
        "internal": [float(v) for v in re.findall(r"spooled (\d+) ms after the key", log_text)],
        "parts": {name: [float(v) for v in re.findall(rf"{name} (\d+)", log_text)]
                  for name in ("queue", "capture", "seal", "spool")},
        "idle": idle, "typing": typing, "rss": rss, "tray": tray_used,
        "warm": warm_attempts, "leaked": leaked,
        "judged": int(judged.group(1)) if judged else 0,
        "model_ms": float(judged.group(2)) if judged else None,
        "model_cpu_ms": float(judged.group(3)) if judged else None,
    }


# --- screen reading (issue 16): --screen ----------------------------------------------------------

SCREEN_LINE = "dont tell your parents about me ok"  # a grooming list phrase, shown, never typed

# A chat whose last line changes every second: the reader re-reads it every screen_interval_s.
_TICKING = """
import sys, time, tkinter as tk
root = tk.Tk(); root.title(sys.argv[1]); root.geometry("900x500+100+100")
lines = ["hey are you coming to practice", "yes after maths", "ok see you at the gate"]
label = tk.Label(root, font=("DejaVu Sans", 13), justify="left", anchor="nw")
label.pack(fill="both", expand=True, padx=12, pady=12)
def tick(n=[0]):
    n[0] += 1
    label.configure(text="\\n\\n".join(lines + [f"message {n[0]} at {time.strftime('%H:%M:%S')}"]))
    root.after(1000, tick)
tick(); root.mainloop()
"""


def ocr_engines() -> list[tuple[str, float, float, float, float]]:
    """Each engine that is installed on the rendered fixtures: (name, mean CER, worst CER,
    median CPU ms per frame, MB added: the child's peak for the tesseract command, this
    process's RSS growth for libtesseract and RapidOCR). Run before any other child process, so
    the children's peak RSS is tesseract's. RapidOCR is measured only where it is installed
    (it is not a dependency: pip install rapidocr==3.10.0 onnxruntime==1.31.1 in a scratch venv)."""
    import resource

    import psutil

    from agent.screen.ocr import LibTesseractOCR, TesseractOCR
    from tests.fixtures.screen_text import cer, render_frames

    frames = render_frames()
    out = []

    def run(name: str, read: object, child: bool) -> None:
        me = psutil.Process()
        rss0 = me.memory_info().rss
        read(frames[0][1])  # type: ignore[operator]  # warm-up: loads the models
        errors, cpu = [], []
        for frame, img in frames:
            c0 = time.process_time() + sum(resource.getrusage(resource.RUSAGE_CHILDREN)[:2])
            text = read(img)  # type: ignore[operator]
            cpu.append((time.process_time()
                        + sum(resource.getrusage(resource.RUSAGE_CHILDREN)[:2]) - c0) * 1000)
            errors.append(cer(text, frame.truth))
        added = (resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 if child
                 else (me.memory_info().rss - rss0) / 2**20)
        out.append((name, statistics.mean(errors), max(errors), statistics.median(cpu), added))

    lib = LibTesseractOCR()
    if lib.unavailable() is None:
        run("libtesseract 5.3 in-process (eng)", lib.read, child=False)
        lib.close()
    tess = TesseractOCR()
    if tess.unavailable() is None:
        run("tesseract 5.3 command (eng)", tess.read, child=True)
    try:
        import numpy as np
        from rapidocr import RapidOCR
    except ImportError:
        return out
    engine = RapidOCR(params={"EngineConfig.onnxruntime.intra_op_num_threads": 1,
                              "EngineConfig.onnxruntime.inter_op_num_threads": 1,
                              "Global.use_cls": False})
    run("rapidocr 3.10 (onnxruntime, 1 thread)",
        lambda img: "\n".join(engine(np.asarray(img)).txts or ()), child=False)
    return out


def start_screen_agent(env: dict[str, str], run: Path, screen: bool, school_flood: bool = False
                       ) -> tuple[subprocess.Popen, Path]:
    """`vigil agent run` with the model, under a signed policy that switches screen reading on
    or off, its config, spool and log under ``run``; ``env`` (the display's) is updated in place.
    The busy pause is off: this measures what reading costs, on a machine others share."""
    cfg, spool, runtime = run / "cfg", run / "spool", run / "run"
    runtime.mkdir(mode=0o700, parents=True)
    write_config(cfg, screen=screen, school_flood=school_flood)
    env.update(XDG_RUNTIME_DIR=str(runtime), PYTHONUNBUFFERED="1", VIGIL_AGENT_MODEL="1",
               VIGIL_AGENT_SCREEN_BUSY_PCT="100")
    log_path = run / "agent.log"
    with open(log_path, "wb") as log:
        agent = subprocess.Popen([sys.executable, "-m", "vigil", "agent", "run",
                                  "--config-dir", str(cfg), "--spool-dir", str(spool)],
                                 env=env, cwd=REPO, stdout=log, stderr=log)
    return agent, log_path


def measure_screen(x: object, tmp: Path, args: argparse.Namespace, screen: bool
                   ) -> dict[str, object]:
    """An agent with the model, screen reading on or off: latency (on only), CPU, peak RSS."""
    import psutil

    run = tmp / ("screen" if screen else "noscreen")
    spool, env = run / "spool", x.env  # type: ignore[attr-defined]
    agent, log_path = start_screen_agent(env, run, screen)
    windows: list[subprocess.Popen] = []

    def show(argv: list[str], title: str) -> float:
        windows.append(subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL))
        wid = wait_until(lambda: x.find_window(title), 15, interval=0.002,  # type: ignore[attr-defined]
                         what=f"window {title!r}")
        t0 = time.time_ns()
        subprocess.run(["xdotool", "windowactivate", str(wid)], env=env, capture_output=True,
                       check=False, timeout=10)
        return t0

    def close_windows() -> None:
        while windows:
            w = windows.pop()
            w.terminate()
            w.wait(5)

    try:
        wait_until(lambda: "agent running" in log_path.read_text(), 60, what="agent start")
        wait_until(lambda: "sentence model loaded" in log_path.read_text(), 60,
                   what="the sentence model to load")
        if screen:
            wait_until(lambda: "screen reader on" in log_path.read_text(), 30,
                       what="the screen reader")
        proc = psutil.Process(agent.pid)
        latencies: list[float] = []
        for i in range(args.screen_trials if screen else 0):
            before = set(spool.glob("*.evt"))
            title = f"Chat {i}"
            t0 = show(["xmessage", "-fn", "10x20", "-title", title, "-geometry",
                       "700x200+100+100", f"message {i}\n{SCREEN_LINE}"], title)
            new = wait_until(lambda before=before: set(spool.glob("*.evt")) - before, 30,
                             interval=0.002, what="the sealed screen event on disk")
            latencies.append((next(iter(new)).stat().st_ctime_ns - t0) / 1e6)  # type: ignore[call-overload]
            close_windows()

        def cpu_with_children(seconds: float) -> float:
            t0, w0 = proc.cpu_times(), time.monotonic()
            time.sleep(seconds)  # measuring an interval, not waiting for a condition
            t1 = proc.cpu_times()
            used = sum(getattr(t1, f) - getattr(t0, f)
                       for f in ("user", "system", "children_user", "children_system"))
            return 100 * used / (time.monotonic() - w0)

        show(["xmessage", "-fn", "10x20", "-title", "Static page", "-geometry", "900x500+100+100",
              "Year 9 History: the Battle of the Somme\nWrite a paragraph on the generals"],
             "Static page")
        static = cpu_with_children(args.screen_cpu_s)
        close_windows()
        show([sys.executable, "-c", _TICKING, "Busy chat"], "Busy chat")
        changing = cpu_with_children(args.screen_cpu_s)
        close_windows()
        rss = peak_rss_mb(agent.pid)
    finally:
        close_windows()
        stop_agent(agent)
    log_text = log_path.read_text()
    reads = re.search(r"screen reader: (\d+) window read\(s\) of (\d+) poll\(s\), median (\d+) ms "
                      r"per read \((\d+) ms of OCR CPU, (\d+) ms of image check CPU\)", log_text)
    return {"latencies": latencies, "static": static, "changing": changing, "rss": rss,
            "reads": reads.groups() if reads else None,
            "internal": [float(v) for v in re.findall(r"spooled (\d+) ms after the key", log_text)]}


def screen_main(args: argparse.Namespace) -> int:
    engines = ocr_engines()
    x = start_x11()
    os.environ["DISPLAY"] = x.display
    tmp = Path(tempfile.mkdtemp(prefix="vigil-bench-screen-"))
    try:
        on = measure_screen(x, tmp, args, screen=True)
        off = measure_screen(x, tmp, args, screen=False)
    finally:
        x.stop()
    lat = on["latencies"]
    reads = on["reads"]
    rows = [
        ("window shown -> sealed on disk, median", f"{statistics.median(lat):.0f} ms", "n/a"),
        ("window shown -> sealed on disk, p95", f"{pct(lat, 0.95):.0f} ms", "n/a"),
        ("window shown -> sealed on disk, max", f"{max(lat):.0f} ms", "n/a"),
        (f"CPU, static page in front ({args.screen_cpu_s:.0f} s, incl. OCR children)",
         f"{on['static']:.2f} % of one core", f"{off['static']:.2f} % of one core"),
        (f"CPU, chat changing every 1 s ({args.screen_cpu_s:.0f} s, incl. OCR children)",
         f"{on['changing']:.2f} % of one core", f"{off['changing']:.2f} % of one core"),
        ("peak RSS of the agent (VmHWM)", f"{on['rss']:.1f} MB", f"{off['rss']:.1f} MB"),
        ("reads / polls over the run", f"{reads[0]} / {reads[1]}" if reads else "n/a", "n/a"),
        ("read (grab+hash+OCR), median wall / OCR CPU",
         f"{reads[2]} / {reads[3]} ms" if reads else "n/a", "n/a"),
        ("image check (nudenet 320n, 1 thread), median CPU per read",
         f"{reads[4]} ms" if reads else "n/a", "n/a"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'screen reading on':>22}  {'screen reading off':>22}")
    for name, a, b in rows:
        print(f"{name:<{width}}  {a:>22}  {b:>22}")
    print()
    print(f"{'OCR engine on the 7 rendered fixtures':<40} {'mean CER':>8} {'worst':>6} "
          f"{'CPU/frame':>10} {'MB added':>9}")
    for name, mean, worst, cpu, added in engines:
        print(f"{name:<40} {100 * mean:>8.1f}% {100 * worst:>6.1f}% {cpu:>7.0f} ms {added:>9.1f}")
    print(json.dumps({"screen_latencies_ms": [round(v) for v in lat]}))
    print(f"screen_p95_ms={pct(lat, 0.95):.0f} screen_cpu_static_pct={on['static']:.2f} "
          f"screen_cpu_changing_pct={on['changing']:.2f} rss_mb={on['rss']:.0f} "
          f"rss_added_mb={on['rss'] - off['rss']:.0f} "
          f"ocr_cer_pct={100 * engines[0][1]:.2f}" if engines else "")
    return 0


def table(with_model: dict, lists: dict, model_floor: float | None, args: argparse.Namespace
          ) -> list[tuple[str, str, str]]:
    def both(fmt: str, get: object) -> tuple[str, str]:
        out = []
        for r in (with_model, lists):
            try:
                out.append(fmt.format(get(r)))  # type: ignore[operator]
            except (ValueError, statistics.StatisticsError, TypeError, IndexError):
                out.append("n/a")
        return out[0], out[1]

    med = statistics.median
    rows = [
        ("trigger -> sealed on disk, median", *both("{:.1f} ms", lambda r: med(r["latencies"]))),
        ("trigger -> sealed on disk, p95", *both("{:.1f} ms", lambda r: pct(r["latencies"], .95))),
        ("agent's own hook -> spool, median", *both("{:.1f} ms", lambda r: med(r["internal"]))),
        *((f"  of which {name}, median",
           *both("{:.1f} ms", lambda r, name=name: med(r["parts"][name])))
          for name in ("queue", "capture", "seal", "spool")),
        ("baseline grab+webp+seal in-process, median",
         *both("{:.1f} ms", lambda r: med(r["base"]))),
        ("ratio agent median / baseline median",
         *both("{:.2f}", lambda r: med(r["latencies"]) / med(r["base"]))),
        ("model trigger (paraphrase) -> sealed, median",
         *both("{:.1f} ms", lambda r: med(r["model_latencies"]))),
        ("model trigger (paraphrase) -> sealed, p95",
         *both("{:.1f} ms", lambda r: pct(r["model_latencies"], .95))),
        ("model per judged utterance in the agent, median (wall, nice 10)",
         *both("{:.1f} ms", lambda r: r["model_ms"])),
        ("model per judged utterance in the agent, median (CPU)",
         *both("{:.1f} ms", lambda r: r["model_cpu_ms"])),
        ("sentences the model judged", *both("{}", lambda r: r["judged"] or "n/a")),
        ("baseline: one sentence encoded+scored here, median",
         f"{model_floor:.1f} ms" if model_floor is not None else "n/a", "n/a"),
        (f"CPU idle ({args.idle_s:.0f} s)", *both("{:.3f} % of one core", lambda r: r["idle"])),
        (f"CPU typing 10 keys/s ({args.typing_s:.0f} s)",
         *both("{:.3f} % of one core", lambda r: r["typing"])),
        ("peak RSS (VmHWM)", *both("{:.1f} MB", lambda r: r["rss"])),
        ("tray icon process: CPU idle", *both("{:.3f} % of one core", lambda r: r["tray"][0])),
        ("tray icon process: CPU typing", *both("{:.3f} % of one core", lambda r: r["tray"][1])),
        ("tray icon process: peak RSS", *both("{:.1f} MB", lambda r: r["tray"][2])),
        ("trials (after warm-up triggers)",
         *both("{}", lambda r: f"{len(r['latencies'])} (+{r['warm']})")),
        ("benign text in spool", *both("{}", lambda r: "yes (BUG)" if r["leaked"] else "no")),
    ]
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--model-trials", type=int, default=10)
    ap.add_argument("--idle-s", type=float, default=60)
    ap.add_argument("--typing-s", type=float, default=60)
    ap.add_argument("--screen", action="store_true",
                    help="measure screen reading only (issue 16): latency, CPU, RSS, OCR CER")
    ap.add_argument("--screen-trials", type=int, default=10)
    ap.add_argument("--screen-cpu-s", type=float, default=60)
    args = ap.parse_args()
    if args.screen:
        return screen_main(args)

    x = start_x11()
    os.environ["DISPLAY"] = x.display
    tmp = Path(tempfile.mkdtemp(prefix="vigil-bench-agent-"))
    tray_host = None
    if shutil.which("trayer"):
        tray_host = subprocess.Popen(["trayer", "--edge", "top", "--align", "right",
                                      "--widthtype", "request", "--height", "24"], env=x.env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        lists = measure(x, tmp, args, model=False)
        with_model = measure(x, tmp, args, model=True)
        floor = model_baseline_ms()
        rows = table(with_model, lists, floor, args)
        width = max(len(r[0]) for r in rows)
        print(f"{'measure':<{width}}  {'with the model':>22}  {'lists alone':>22}")
        for name, a, b in rows:
            print(f"{name:<{width}}  {a:>22}  {b:>22}")
        print(json.dumps({"latencies_ms": [round(v, 1) for v in with_model["latencies"]],
                          "model_latencies_ms": [round(v, 1)
                                                 for v in with_model["model_latencies"]]}))
        model_ms = with_model["model_cpu_ms"]  # the cost on one core, not the niced wall time
        model_part = f"{model_ms:.0f}" if model_ms is not None else "n/a"
        print(f"p95_ms={pct(with_model['latencies'], 0.95):.0f} "
              f"cpu_typing_pct={with_model['typing']:.2f} cpu_idle_pct={with_model['idle']:.2f} "
              f"rss_mb={with_model['rss']:.0f} model_ms_median={model_part}")
        return 0
    finally:
        if tray_host is not None:
            tray_host.terminate()
            tray_host.wait(10)
        x.stop()


if __name__ == "__main__":
    raise SystemExit(main())
