"""The peers Shoal's benchmark suite measures itself against: Python multiprocessing, Ray and
Dask distributed, each limited to 2 CPUs, doing the suite's workloads.

    python peers.py WORKLOAD FRAMEWORK RUNS [ARGS...]

prints one JSON object: {"values": [one figure per run], "unit": ...}. The framework starts once
per invocation and is not timed (except by the cold-start workload, which times exactly that).
Run by node/benches/suite; not meant to be run by hand, but it can be.
"""

import json
import multiprocessing
import os
import random
import re
import sys
import time
from collections import Counter

CPUS = 2
WORD = re.compile(r"[^\W_]+")  # letters and digits, as Shoal's word count


def square(x):
    return x * x


def nothing():
    return 0


def pi_part(args):
    count, seed = args
    rng = random.Random(seed)
    hits = 0
    for _ in range(count):
        x = rng.random()
        y = rng.random()
        if x * x + y * y <= 1.0:
            hits += 1
    return hits


def count_file(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return Counter(WORD.findall(f.read().lower()))


def count_lines(lines):
    counts = Counter()
    for line in lines:
        counts.update(WORD.findall(line.lower()))
    return counts


# ----- frameworks ------------------------------------------------------------------------------


class Multiprocessing:
    def __init__(self):
        self.pool = multiprocessing.Pool(CPUS)

    def tiny(self, n):
        return sum(self.pool.map(square, range(n), chunksize=1))

    def one(self):
        return self.pool.apply(nothing)

    def pi(self, samples):
        parts = [(samples // CPUS, seed) for seed in range(CPUS)]
        return sum(self.pool.map(pi_part, parts))

    def wordcount(self, files):
        total = Counter()
        for c in self.pool.imap_unordered(count_file, files):
            total.update(c)
        return total

    def close(self):
        self.pool.close()
        self.pool.join()


class Ray:
    def __init__(self):
        import ray

        self.ray = ray
        ray.init(num_cpus=CPUS, include_dashboard=False, log_to_driver=False)
        self.square = ray.remote(square)
        self.nothing = ray.remote(nothing)
        # Warm the worker pool: its first tasks start processes.
        ray.get([self.nothing.remote() for _ in range(CPUS * 4)])

    def tiny(self, n):
        return sum(self.ray.get([self.square.remote(x) for x in range(n)]))

    def one(self):
        return self.ray.get(self.nothing.remote())

    def close(self):
        self.ray.shutdown()


class Dask:
    def __init__(self):
        from dask.distributed import Client, LocalCluster

        self.cluster = LocalCluster(
            n_workers=CPUS, threads_per_worker=1, processes=True, dashboard_address=None
        )
        self.client = Client(self.cluster)
        self.client.submit(nothing, pure=False).result()

    def tiny(self, n):
        futures = self.client.map(square, range(n), pure=False)
        return sum(self.client.gather(futures))

    def one(self):
        return self.client.submit(nothing, pure=False).result()

    def wordcount(self, files):
        import dask.bag as db

        bag = db.read_text(files, blocksize="64MiB")
        return bag.reduction(count_lines, lambda parts: sum(parts, Counter())).compute()

    def close(self):
        self.client.close()
        self.cluster.close()


FRAMEWORKS = {"multiprocessing": Multiprocessing, "ray": Ray, "dask": Dask}


# ----- workloads -------------------------------------------------------------------------------


def tiny(fw, runs, n):
    n = int(n)
    values = []
    for _ in range(runs):
        start = time.perf_counter()
        fw.tiny(n)
        values.append(n / (time.perf_counter() - start))
    return values, "tasks/s"


def latency(fw, runs, jobs):
    jobs = int(jobs)
    values = []
    for _ in range(runs):
        times = []
        for _ in range(jobs):
            start = time.perf_counter()
            fw.one()
            times.append((time.perf_counter() - start) * 1000.0)
        times.sort()
        values.append(
            {"p50": times[len(times) // 2], "p99": times[min(len(times) - 1, len(times) * 99 // 100)]}
        )
    return values, "ms"


def pi(fw, runs, samples):
    samples = int(samples)
    values = []
    for _ in range(runs):
        start = time.perf_counter()
        fw.pi(samples)
        values.append(samples / (time.perf_counter() - start))
    return values, "samples/s"


def wordcount(fw, runs, *files):
    size = sum(os.path.getsize(f) for f in files)
    values = []
    words = 0
    for _ in range(runs):
        start = time.perf_counter()
        counts = fw.wordcount(list(files))
        values.append(size / (1 << 20) / (time.perf_counter() - start))
        words = sum(counts.values())
    return values, "MiB/s", {"words": words}


def cold_start(name, runs):
    """Seconds from nothing to a cluster of 2 CPUs that has run one task."""
    values = []
    for _ in range(runs):
        start = time.perf_counter()
        fw = FRAMEWORKS[name]()
        fw.one()
        values.append(time.perf_counter() - start)
        fw.close()
    return values, "s"


def main():
    workload, name, runs, *args = sys.argv[1:]
    runs = int(runs)
    if workload == "cold_start":
        out = cold_start(name, runs)
    else:
        fw = FRAMEWORKS[name]()
        try:
            out = {"tiny": tiny, "latency": latency, "pi": pi, "wordcount": wordcount}[workload](
                fw, runs, *args
            )
        finally:
            fw.close()
    result = {"values": out[0], "unit": out[1]}
    if len(out) > 2:
        result.update(out[2])
    print(json.dumps(result))


if __name__ == "__main__":
    main()
