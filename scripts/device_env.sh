# Sourced by the device checks (scripts/h200.sh, scripts/h200_linear.sh) on a lent machine:
# unpacks the Vulkan/EGL loader .debs carried in .gl, points Vulkan at the NVIDIA driver's ICD
# where the image has none registered, and selects the Vulkan backend. Makes $OUT.
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
for f in .gl/*.deb; do [ -e "$f" ] && dpkg -x "$f" /; done
ldconfig
if ! ls /usr/share/vulkan/icd.d/nvidia* >/dev/null 2>&1; then
    export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
fi
export WGPU_BACKEND=vulkan
