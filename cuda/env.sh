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
# NCCL's packages and wheels install libnccl.so.2 without the libnccl.so link that cudarc
# opens: add one in a private folder when only the versioned library is there.
nccl_link_dir="${TMPDIR:-/tmp}/keel-nccl-link"
for d in ${libs//:/ }; do
    if [ -e "$d/libnccl.so.2" ] && [ ! -e "$d/libnccl.so" ]; then
        mkdir -p "$nccl_link_dir" && ln -sf "$d/libnccl.so.2" "$nccl_link_dir/libnccl.so" &&
            export LD_LIBRARY_PATH="$nccl_link_dir:$LD_LIBRARY_PATH"
        break
    fi
done
