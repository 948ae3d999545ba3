#!/usr/bin/env bash
# Generates vision_msgs' LabelInfo and VisionClass (4.1.1, test/data/vision_msgs) with the ROS 2 rosidl generator
# wheels from PyPI (the test extra) and cmake + gcc, into OUT/install: the real vision_msgs is not on PyPI.
# Usage: test/build_vision_msgs.sh PYTHON OUT   (about 10 s; does nothing when OUT/install is up to date)
set -euo pipefail
python="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"  # not resolved: a venv's python names the venv
out=$(realpath -m "$2")
here=$(cd "$(dirname "$0")" && pwd)
source_dir="$here/data/vision_msgs"
prefix=$("$python" -c 'import sys; print(sys.prefix)')
stamp="$out/install/.built-from"
inputs=$(cat "$source_dir"/CMakeLists.txt "$source_dir"/package.xml "$source_dir"/msg/*.msg | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$inputs" ]; then
    exit 0
fi
rm -rf "$out"
mkdir -p "$out/build"
export AMENT_PREFIX_PATH="$prefix" CMAKE_PREFIX_PATH="$prefix" PATH="$prefix/bin:$PATH"
cmake -S "$source_dir" -B "$out/build" -DCMAKE_INSTALL_PREFIX="$out/install" -DPython3_EXECUTABLE="$python" \
    -DBUILD_TESTING=OFF > "$out/cmake.log" 2>&1 || { tail -30 "$out/cmake.log"; exit 1; }
cmake --build "$out/build" --target install -j 2 > "$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
echo "$inputs" > "$stamp"
