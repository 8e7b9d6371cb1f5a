# Sourced by the GPU-machine scripts: puts the CUDA 13 user-space libraries from the image's
# Python wheels (NVRTC, cuBLAS, cuRAND) on LD_LIBRARY_PATH.
libs=$(python3 - <<'PY' 2>/dev/null
import glob, os
try:
    import nvidia
    dirs = set()
    for p in nvidia.__path__:
        for lib in glob.glob(os.path.join(p, "**", "lib"), recursive=True):
            if glob.glob(os.path.join(lib, "lib*.so*")):
                dirs.add(lib)
    print(":".join(sorted(dirs)))
except Exception:
    pass
PY
)
export LD_LIBRARY_PATH="${libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
