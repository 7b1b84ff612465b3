"""Load benchmark of ``gliomaseg serve``: a server on loopback, ``--clients`` concurrent
clients each submitting ``--requests`` zips of one LGG patient folder (about 60 slices),
polling until done, after ``--single`` requests of one client alone (the first a warm-up;
the server time of the others is that of a warm model on an otherwise idle server); a refused submission (503, queue full) waits its Retry-After and tries
again, so every request is accounted for. Then the same patient through sequential
``gliomaseg segment`` commands (new process each), for the ratio.

    python benchmarks/serve.py --patient cache/lgg/kaggle_3m/TCGA_DU_6405_19851005 [--clients 8] [--requests 25]

Reports latency (submit to done, as a client sees it) p50/p95/p99, server time per job
(p50), throughput, errors, requests lost (never finished), 503 answers, and the server's peak
resident memory (VmHWM). Bounded: it stops after ``--max-minutes`` whatever is left.
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zipfile
from pathlib import Path

import httpx


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by linear interpolation (numpy's default method)."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def zip_patient(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.iterdir()):
            if not path.stem.endswith("_mask"):
                zf.write(path, f"{folder.name}/{path.name}")
    return buffer.getvalue()


def start_server(gliomaseg: str, results: Path, workers: int | None, max_queue: int) -> tuple[subprocess.Popen, str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [gliomaseg, "serve", "--port", str(port), "--model", "lgg", "--results", str(results), "--max-queue", str(max_queue)]
    if workers:
        command += ["--workers", str(workers)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(url + "/api/v1/ready", timeout=1)
            return process, url
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                sys.exit("the server did not start")
            time.sleep(0.3)


def peak_rss_mb(pid: int) -> float:
    """Peak resident set size of a process (``VmHWM`` of /proc/PID/status), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def client(url: str, payload: bytes, requests: int, deadline: float, stats: dict, lock: threading.Lock) -> None:
    with httpx.Client(base_url=url, timeout=120) as http:
        for _ in range(requests):
            started = time.perf_counter()
            while time.monotonic() < deadline:
                response = http.post("/api/v1/jobs", files={"files": ("patient.zip", payload, "application/zip")})
                if response.status_code == 503:
                    with lock:
                        stats["refused"] += 1
                    time.sleep(float(response.headers.get("Retry-After", "1")))
                    continue
                if response.status_code != 202:
                    with lock:
                        stats["errors"].append(f"submit {response.status_code}: {response.text[:200]}")
                break
            else:
                break
            job_id = response.json()["id"] if response.status_code == 202 else None
            if job_id is None:
                continue
            while time.monotonic() < deadline:
                job = http.get(f"/api/v1/jobs/{job_id}").json()
                if job["status"] in ("done", "failed"):
                    break
                time.sleep(0.05)
            else:
                with lock:
                    stats["lost"] += 1
                continue
            with lock:
                if job["status"] == "failed":
                    stats["errors"].append(f"job failed: {job['error']}")
                else:
                    stats["latency"].append(time.perf_counter() - started)
                    stats["server"].append(job["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patient", type=Path, required=True, help="a kaggle_3m patient folder (about 60 slices)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=25, help="requests per client")
    parser.add_argument("--workers", type=int, help="server inference threads (default: the server's)")
    parser.add_argument("--max-queue", type=int, default=4, help="server queue bound (smaller than --clients shows 503s)")
    parser.add_argument("--single", type=int, default=6, help="requests of one client alone first (the first a warm-up)")
    parser.add_argument("--sequential", type=int, default=5, help="gliomaseg segment commands to time")
    parser.add_argument("--max-minutes", type=float, default=10)
    args = parser.parse_args()
    gliomaseg = str(Path(sys.executable).parent / "gliomaseg")
    slices = sum(1 for p in args.patient.iterdir() if p.suffix == ".tif" and not p.stem.endswith("_mask"))
    payload = zip_patient(args.patient)
    stats = {"latency": [], "server": [], "errors": [], "lost": 0, "refused": 0}
    lock = threading.Lock()
    with tempfile.TemporaryDirectory() as work:
        process, url = start_server(gliomaseg, Path(work) / "jobs", args.workers, args.max_queue)
        try:
            idle_rss = peak_rss_mb(process.pid)
            deadline = time.monotonic() + args.max_minutes * 60
            alone = {"latency": [], "server": [], "errors": [], "lost": 0, "refused": 0}
            client(url, payload, args.single, deadline, alone, lock)
            started = time.perf_counter()
            threads = [threading.Thread(target=client, args=(url, payload, args.requests, deadline, stats, lock))
                       for _ in range(args.clients)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.perf_counter() - started
            rss = peak_rss_mb(process.pid)
        finally:
            process.terminate()
            process.wait(timeout=60)
        sequential = []
        for index in range(args.sequential):
            began = time.perf_counter()
            subprocess.run([gliomaseg, "segment", str(args.patient), "--out", str(Path(work) / f"seq{index}")],
                           check=True, capture_output=True)
            sequential.append(time.perf_counter() - began)
    done, total = len(stats["latency"]), args.clients * args.requests
    print(f"patient {args.patient.name}, {slices} slices; {args.clients} clients x {args.requests} requests; "
          f"{os.cpu_count()} CPU cores; server --max-queue {args.max_queue}")
    if len(alone["server"]) > 1:
        warm = alone["server"][1:]
        print(f"  one client alone, warm model: server time per job median {statistics.median(warm):.3f} s, "
              f"min {min(warm):.3f} s ({len(warm)} requests after a warm-up); latency median "
              f"{statistics.median(alone['latency'][1:]):.2f} s")
    if done:
        latency = stats["latency"]
        print(f"  latency (submit to done) p50 {percentile(latency, 50):.2f} s, p95 {percentile(latency, 95):.2f} s, "
              f"p99 {percentile(latency, 99):.2f} s")
        print(f"  server time per job p50 {statistics.median(stats['server']):.3f} s, min {min(stats['server']):.3f} s")
        print(f"  throughput {done / elapsed:.2f} patients/s ({done} in {elapsed:.1f} s)")
    print(f"  done {done}/{total}, errors {len(stats['errors'])}, lost {stats['lost']}, "
          f"not submitted before the deadline {total - done - len(stats['errors']) - stats['lost']}, 503 answers {stats['refused']}")
    for error in stats["errors"][:5]:
        print(f"    {error}")
    print(f"  server peak RSS {rss:.0f} MiB (after start-up {idle_rss:.0f} MiB)")
    per_command = statistics.median(sequential)
    print(f"  sequential gliomaseg segment: {per_command:.2f} s per patient (median of {len(sequential)})")
    if done:
        print(f"  ratio: server throughput / sequential commands = {per_command * done / elapsed:.2f}x")


if __name__ == "__main__":
    main()
