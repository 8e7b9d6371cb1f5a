"""The machine a peer benchmark ran on, for its tables: the CPU's model name and the vector
extensions that decide which kernels run (AVX-512 F/BW/VL, AVX2, FMA), from /proc/cpuinfo."""
import os
import platform

VECTOR = ("avx512f", "avx512bw", "avx512vl", "avx2", "fma")


def describe():
    """`{"cpu", "vector", "nproc"}`; on systems without /proc/cpuinfo, what `platform` knows."""
    name, flags = None, set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and name is None:
                    name = value.strip()
                elif key == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return {
        "cpu": name or platform.processor() or platform.machine(),
        "vector": [v for v in VECTOR if v in flags],
        "nproc": os.cpu_count(),
    }


def line():
    """One line: `CPU: <name>; vector: avx512f avx2 fma; 2 CPUs`."""
    d = describe()
    vec = " ".join(d["vector"]) or "none of " + "/".join(VECTOR)
    return f"CPU: {d['cpu']}; vector: {vec}; {d['nproc']} CPUs"
