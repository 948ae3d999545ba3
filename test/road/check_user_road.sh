#!/usr/bin/env bash
# The user's road, travelled as a user travels it (run by `make test`, so CI travels it too):
#   1. a fresh venv with only torch==2.13.0 and `pip install .[ros]` from a clean copy of the tree (not editable);
#   2. segmentation_node on its defaults answers one frame from a plain rclpy publisher with the right mask;
#   3. liteseg-synth --bag + liteseg-replay offline; liteseg-quantize on that bag and a replay of its INT8 model
#      (OpenVINO comes with .[ros] on x86-64); liteseg-mine on that bag;
#   4. a model of the user's own classes with a class map: the node publishes the merged ids, colours, confidence;
#   5. without `onnx` (it has no rosdep key): the node still works, with exactly one more warning line;
#   6. the test suite collects (optional test dependencies skip, nothing fails to import).
# Usage: test/road/check_user_road.sh [PYTHON]   (default python3; set ROAD_KEEP=1 to keep the work folder)
set -euo pipefail
PYTHON=${1:-python3}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/liteseg_road.XXXXXX")
NODE_PID=""
cleanup() {
  [ -n "$NODE_PID" ] && kill -INT "$NODE_PID" 2>/dev/null && wait "$NODE_PID" 2>/dev/null || true
  [ "${ROAD_KEEP:-0}" = 1 ] || rm -rf "$WORK"
}
trap cleanup EXIT
step() { printf '\n== road: %s (%ss)\n' "$1" "$SECONDS"; }
die() { echo "road: FAILED: $*" >&2; exit 1; }

step "clean copy of the tree and a fresh venv with torch==2.13.0 + .[ros]"
mkdir -p "$WORK/src"
(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard | xargs -0 tar -cf - 2>/dev/null) | tar -xf - -C "$WORK/src"
"$PYTHON" -m venv "$WORK/venv"
VENV="$WORK/venv/bin"
"$VENV/python" -m pip install -q --disable-pip-version-check torch==2.13.0 2>&1 | grep -v "is ignored" || true
"$VENV/python" -m pip install -q --disable-pip-version-check "$WORK/src[ros]" 2>&1 | grep -v "is ignored" || true
cd "$WORK"  # nothing of the source tree is importable from here
"$VENV/python" -c "import liteseg_ros, sys; assert liteseg_ros.__file__.startswith(sys.prefix), liteseg_ros.__file__" \
  || die "liteseg_ros is not installed into the venv"
! "$VENV/python" -c "import training" 2>/dev/null || die "a top-level 'training' package is installed"
"$VENV/liteseg-train" --help >/dev/null && "$VENV/liteseg-eval" --help >/dev/null \
  || die "liteseg-train / liteseg-eval --help fail in a runtime-only install"
eval "$("$VENV/python" -c 'from liteseg_ros.ros.environment import isolated_ros_environment as e
print(" ".join(f"export {k}={v}" for k, v in e().items()))')"
echo "ROS_DOMAIN_ID=$ROS_DOMAIN_ID ROS_AUTOMATIC_DISCOVERY_RANGE=$ROS_AUTOMATIC_DISCOVERY_RANGE"
export RCUTILS_COLORIZED_OUTPUT=0 PYTHONUNBUFFERED=1

# node_answers LOG: start segmentation_node with its defaults, check one frame, stop it with SIGINT (exit 0).
node_answers() {
  "$VENV/segmentation_node" >"$1" 2>&1 &
  NODE_PID=$!
  if ! "$VENV/python" "$WORK/src/test/road/one_frame.py"; then
    kill -INT "$NODE_PID" 2>/dev/null || true; wait "$NODE_PID" 2>/dev/null || true; NODE_PID=""
    echo "--- node log (last 20 lines):" >&2; tail -n 20 "$1" >&2
    die "segmentation_node did not answer correctly"
  fi
  kill -INT "$NODE_PID"
  local code=0
  wait "$NODE_PID" || code=$?
  NODE_PID=""
  [ "$code" = 0 ] || { tail -n 20 "$1" >&2; die "segmentation_node exited with $code after SIGINT"; }
  ! grep -q Traceback "$1" || { cat "$1" >&2; die "traceback in the node's log"; }
}

step "segmentation_node with its defaults answers one frame"
node_answers "$WORK/node.log"
grep "segmenting" "$WORK/node.log" | sed 's/^/  /'
# On x86-64 .[ros] brings OpenVINO: the bundled model's INT8 twin (no native bf16) or bf16 (AMX / AVX512_BF16).
grep -q "(bn-folded, openvino)" "$WORK/node.log" || die "the CPU default on x86-64 is not OpenVINO (part of .[ros])"
grep -qE "^precision +(int8|bf16) +auto: " "$WORK/node.log" \
  || die "the plan in the log does not say precision=auto chose int8 or bf16 and why"
grep -E "^precision +(int8|bf16) +auto: " "$WORK/node.log" | head -n 1 | sed "s/^/  /"
warnings_with_onnx=$(grep -c "^\[WARN\]" "$WORK/node.log" || true)

step "liteseg-synth --bag and liteseg-replay offline"
"$VENV/liteseg-synth" --bag "$WORK/drive" --frames 6 --height 180 --width 320 --seed 5 >/dev/null
"$VENV/liteseg-replay" "$WORK/drive" --out "$WORK/replay" --gt-topic /camera/labels --input-size 180x320 \
  --device cpu --json >"$WORK/replay.json"
"$VENV/python" - "$WORK/replay.json" <<'PY' || die "liteseg-replay's report is wrong"
import json, sys
report = json.load(open(sys.argv[1]))
print(f"  replay: {report['frames']} frames, class mIoU {report['miou']:.3f}")
assert report["frames"] == 6, report["frames"]
assert report["miou"] >= 0.5, report["miou"]
PY
[ -d "$WORK/replay/bag" ] || die "liteseg-replay wrote no output bag"

step "liteseg-quantize on that bag, and liteseg-replay on the INT8 model (on OpenVINO)"
BUNDLED=$("$VENV/python" -c "from liteseg_ros.model.bundled import bundled_model_path; print(bundled_model_path())")
"$VENV/liteseg-quantize" "$BUNDLED" --frames "$WORK/drive" --gt-topic /camera/labels --calibration 3 --holdout 2 \
  --input-size 180x320 --out "$WORK/demo.int8.onnx" --min-speedup 0 --min-agreement 0 2>"$WORK/quantize.log" \
  | sed 's/^/  /' || { cat "$WORK/quantize.log" >&2; die "liteseg-quantize failed in a runtime-only install"; }
"$VENV/liteseg-replay" "$WORK/drive" --out "$WORK/replay_int8" --weights "$WORK/demo.int8.onnx" \
  --gt-topic /camera/labels --input-size 180x320 --json >"$WORK/replay_int8.json" 2>"$WORK/replay_int8.log" \
  || { cat "$WORK/replay_int8.log" >&2; die "liteseg-replay cannot run the INT8 model"; }
grep -q "int8 cpu 180x320 (openvino)" "$WORK/replay_int8.log" || die "the INT8 model did not run on OpenVINO"

step "liteseg-mine on that bag: the frames to label, pre-labelled for CVAT and Label Studio"
"$VENV/liteseg-mine" "$WORK/drive" --topic /camera/image_raw --count 2 --out "$WORK/mined" --input-size 180x320 \
  2>"$WORK/mine.log" | sed 's/^/  /' || { cat "$WORK/mine.log" >&2; die "liteseg-mine failed in a runtime-only install"; }
for file in selection.csv cvat_annotations.zip label_studio_tasks.json label_studio_config.xml report.md; do
  [ -s "$WORK/mined/$file" ] || die "liteseg-mine wrote no $file"
done
[ "$(ls "$WORK/mined/images" | wc -l)" = 2 ] || die "liteseg-mine did not write 2 images"

step "a model of your own classes and a class map (runtime-only install: no training extra)"
"$VENV/python" "$WORK/src/test/road/own_classes.py" make "$WORK"
"$VENV/segmentation_node" --ros-args -p weights:="$WORK/robot.pt" -p class_map:="$WORK/class_map.yaml" \
  -p input_height:=96 -p input_width:=160 -p publish_confidence:=always >"$WORK/own.log" 2>&1 &
NODE_PID=$!
"$VENV/python" "$WORK/src/test/road/own_classes.py" check \
  || { tail -n 20 "$WORK/own.log" >&2; die "the node does not publish the class map's classes"; }
kill -INT "$NODE_PID"; wait "$NODE_PID" || die "segmentation_node exited with an error after SIGINT"; NODE_PID=""
grep -q "class map $WORK/class_map.yaml: free <- pallet; obstacle <- floor, wall" "$WORK/own.log" \
  || { cat "$WORK/own.log" >&2; die "the node did not log its class map"; }
grep -q "vision_msgs is not installed" "$WORK/own.log" || die "no line about ~/label_info without vision_msgs"

step "without onnx (no rosdep key): the node still answers with its plan's reasons (no fallback warning)"
"$VENV/python" -m pip uninstall -q -y onnx
node_answers "$WORK/node_without_onnx.log"
warnings_without_onnx=$(grep -c "^\[WARN\]" "$WORK/node_without_onnx.log" || true)
grep -E "^runner +[a-z_]+ +auto: " "$WORK/node_without_onnx.log" | sed 's/^/  /' \
  || die "the plan without onnx does not say which runner and why"
[ "$warnings_without_onnx" = "$warnings_with_onnx" ] \
  || die "expected $warnings_with_onnx warning lines without onnx (as with it), got $warnings_without_onnx"

step "the test suite collects with only the runtime and pytest installed"
"$VENV/python" -m pip install -q --disable-pip-version-check "pytest>=8.4,<9" pytest-timeout 2>&1 | grep -v "is ignored" || true
(cd "$WORK/src" && "$VENV/pytest" --collect-only -q -p no:cacheprovider test >"$WORK/collect.log" 2>&1) \
  || { tail -n 30 "$WORK/collect.log" >&2; die "pytest cannot collect the suite in a runtime-only install"; }
tail -n 1 "$WORK/collect.log" | sed 's/^/  /'

step "done: the user's road works"
