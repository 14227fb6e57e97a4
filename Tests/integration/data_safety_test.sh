#!/usr/bin/env bash
# Hostile data files (issue 20): gzip bombs, multi-member gzip, bytes after the gzip data, a
# FIFO, a folder, a symbolic link loop or /dev/zero named as an IDX file, the memory of a
# command that needs only the test set, and ranks given different test images or labels.
# Each refusal is one line on stderr and exit code 1, without hanging or inflating the bomb.
set -uo pipefail
. "$(dirname "$0")/lib.sh" data-safety
# GNU time reports a run's peak resident memory ("Maximum resident set size").
if [ ! -x /usr/bin/time ]; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq time >/dev/null
fi
use_venv || abort "cannot set up .venv"  # $python
export VAE_DIST_PROGRESS=0

# idx DIR [CHANGE]: a folder of raw IDX files, 200 training and 50 test images of 28x28 with
# labels 0-9. CHANGE alters one byte: test-image, test-label or train-label.
idx() {
  "$python" - "$@" <<'EOF'
import os, struct, sys
folder, change = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else "")
os.makedirs(folder, exist_ok=True)
def write(name, dims, data):
    with open(os.path.join(folder, name), "wb") as f:
        f.write(struct.pack(">BBBB" + "I" * len(dims), 0, 0, 8, len(dims), *dims) + bytes(data))
for split, n in (("train", 200), ("t10k", 50)):
    images = bytearray((i * 7 + (i // 784) * 13) % 256 for i in range(n * 784))
    labels = bytearray(i % 10 for i in range(n))
    if split == "t10k" and change == "test-image": images[784 * 3 + 400] ^= 0xFF
    if split == "t10k" and change == "test-label": labels[7] = (labels[7] + 1) % 10
    if split == "train" and change == "train-label": labels[11] = (labels[11] + 1) % 10
    write(f"{split}-images-idx3-ubyte", (n, 28, 28), images)
    write(f"{split}-labels-idx1-ubyte", (n,), labels)
EOF
}

# refused NAME LOG CODE PATTERN: exit code 1, one line on stderr, and it matches PATTERN.
refused() {
  local lines; lines=$(wc -l < "$2")
  if [ "$3" -eq 1 ] && [ "$lines" -eq 1 ] && grep -q "$4" "$2"; then ok "$1: $(cat "$2")"
  else bad "$1: exit $3, $lines lines: $(head -c 400 "$2")"; fi
}

# peak_mb TIMEFILE: the peak resident memory in MB that /usr/bin/time -v wrote.
peak_mb() { awk -F': ' '/Maximum resident set size/ { print int($2 / 1024) }' "$1"; }

# A checkpoint of 28x28 images for eval.
"$bin" train --data synthetic:200 --epochs 1 --batch-size 50 --latent 4 --out "$tmp/run" > "$tmp/run.log" 2>&1 \
  || bad "train synthetic:200: $(tail -1 "$tmp/run.log")"
ck=$tmp/run/checkpoints/latest.safetensors

# Gzip bombs: the header promises 10 images of 28x28 (7,840 bytes), 2 GB of zeros follow (2 MB
# compressed, written streaming). Inflating only what the header promises plus one byte stops
# long before the 2 GB; the limit is 100 MB of resident memory (the binary alone takes ~25).
idx "$tmp/bomb"; rm "$tmp/bomb/train-images-idx3-ubyte"
"$python" - "$tmp/bomb/train-images-idx3-ubyte.gz" <<'EOF'
import struct, sys, zlib
deflate = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip framing
zeros = bytes(1 << 20)
with open(sys.argv[1], "wb") as f:
    f.write(deflate.compress(struct.pack(">BBBBIII", 0, 0, 8, 3, 10, 28, 28)))
    for _ in range(2048): f.write(deflate.compress(zeros))
    f.write(deflate.flush())
EOF
# train meets it as its training images, eval (which reads only the test files) as its test images.
idx "$tmp/testbomb"; rm "$tmp/testbomb/t10k-images-idx3-ubyte" "$tmp/testbomb/t10k-labels-idx1-ubyte"
cp "$tmp/bomb/train-images-idx3-ubyte.gz" "$tmp/testbomb/t10k-images-idx3-ubyte.gz"
echo "  (bomb: $(du -k "$tmp/bomb/train-images-idx3-ubyte.gz" | cut -f1) KB of gzip for 2 GB of zeros)"
for command in train eval; do
  args=(train --data "$tmp/bomb" --epochs 1 --batch-size 10 --out "$tmp/bombrun")
  [ $command = eval ] && args=(eval --checkpoint "$ck" --data "$tmp/testbomb")
  timeout 60 /usr/bin/time -v -o "$tmp/time.$command" "$bin" "${args[@]}" > /dev/null 2> "$tmp/bomb.$command"
  code=$?
  refused "$command on a gzip bomb" "$tmp/bomb.$command" $code "unexpected bytes after the 7840 bytes"
  peak=$(peak_mb "$tmp/time.$command")
  [ -n "$peak" ] && [ "$peak" -lt 100 ] && ok "$command on a gzip bomb: peak RSS $peak MB (< 100)" || bad "$command on a gzip bomb: peak RSS ${peak:-?} MB"
done

# A multi-member gzip (cat a.gz b.gz, as pigz and bgzip write) is one stream: it trains.
idx "$tmp/multi"
f=$tmp/multi/train-images-idx3-ubyte
head -c 50000 "$f" | gzip -c > "$f.gz"; tail -c +50001 "$f" | gzip -c >> "$f.gz"; rm "$f"
"$bin" train --data "$tmp/multi" --epochs 1 --batch-size 50 --out "$tmp/multirun" > "$tmp/multi.log" 2>&1 \
  && ok "multi-member gzip trains: $(grep -c . "$tmp/multi.log") lines of log, $(ls "$tmp/multirun/checkpoints" | tr '\n' ' ')" \
  || bad "multi-member gzip: $(tail -1 "$tmp/multi.log")"

# Bytes after the gzip data that are not another member.
idx "$tmp/garbage"
f=$tmp/garbage/train-images-idx3-ubyte
gzip -c "$f" > "$f.gz"; printf 'garbage' >> "$f.gz"; rm "$f"
timeout 20 "$bin" train --data "$tmp/garbage" --epochs 1 --batch-size 50 --out "$tmp/garbagerun" > /dev/null 2> "$tmp/garbage.err"
refused "trailing bytes" "$tmp/garbage.err" $? "7 bytes after the end of the gzip data"

# Not a regular file as train-images-idx3-ubyte: each named, none blocks (a FIFO would wait for
# a writer, /dev/zero never ends).
for kind in fifo folder loop zero; do
  idx "$tmp/$kind"
  f=$tmp/$kind/train-images-idx3-ubyte
  rm "$f"
  case $kind in
    fifo) mkfifo "$f"; reason="FIFO" ;;
    folder) mkdir "$f"; reason="is a folder" ;;
    loop) ln -s "$f" "$f"; reason="loop of symbolic links" ;;
    zero) ln -s /dev/zero "$f"; reason="character device" ;;
  esac
  timeout 20 "$bin" train --data "$tmp/$kind" --epochs 1 --batch-size 50 --out "$tmp/${kind}run" > /dev/null 2> "$tmp/$kind.err"
  refused "$kind as train-images-idx3-ubyte" "$tmp/$kind.err" $? "train-images-idx3-ubyte: .*$reason"
done

# A command that needs only the test set builds only the test set: eval of a checkpoint trained
# on synthetic:1000000 (its config says so; rewritten from the small run) without --data makes
# the 100,000 test images (78 MB), not the 1,000,000 training images too (862 MB in all).
"$python" - "$ck" "$tmp/big.safetensors" <<'EOF'
import json, sys
from safetensors import safe_open
from safetensors.numpy import save_file
with safe_open(sys.argv[1], "np") as f:
    metadata = f.metadata()
    tensors = {name: f.get_tensor(name) for name in f.keys()}
config = json.loads(metadata["config"])
config["training"]["data"] = "synthetic:1000000"
metadata["config"] = json.dumps(config)
save_file(tensors, sys.argv[2], metadata)
EOF
/usr/bin/time -v -o "$tmp/time.eval" "$bin" eval --checkpoint "$tmp/big.safetensors" --limit 1000 > "$tmp/eval.out" 2> "$tmp/eval.err"
code=$?
peak=$(peak_mb "$tmp/time.eval")
[ $code -eq 0 ] && [ -n "$peak" ] && [ "$peak" -lt 400 ] && ok "eval of a synthetic:1000000 run: peak RSS $peak MB (< 400; the training split alone is 784 MB)" \
  || bad "eval of a synthetic:1000000 run: exit $code, peak RSS ${peak:-?} MB: $(tail -1 "$tmp/eval.err")"

# Ranks given different test images or labels: two folders that differ in one byte, each rank
# in its own folder (a symlink "data" to it) so that --data is the same string on both.
idx "$tmp/same"
for change in none test-image test-label train-label; do
  idx "$tmp/$change" "$change"
  mkdir -p "$tmp/ranks-$change/0" "$tmp/ranks-$change/1"
  ln -s "$tmp/same" "$tmp/ranks-$change/0/data"
  ln -s "$tmp/$change" "$tmp/ranks-$change/1/data"
  run_mpi 2 sh -c 'cd "$0/$OMPI_COMM_WORLD_RANK" && exec "$@"' "$tmp/ranks-$change" \
    "$bin" train --data data --epochs 1 --batch-size 50 --threads 1 --out "$tmp/mpirun-$change" > "$tmp/mpi-$change.log" 2>&1
  code=$?
  if [ $change = none ]; then
    [ $code -eq 0 ] && ok "2 ranks on the same data (each in its own folder): exit 0" || bad "2 ranks, same data: exit $code: $(tail -2 "$tmp/mpi-$change.log")"
  else
    line=$(grep -m1 "ranks disagree on their test images or labels" "$tmp/mpi-$change.log")
    [ $code -eq 1 ] && [ -n "$line" ] && ok "2 ranks, one $change differs: exit 1, $line" \
      || bad "2 ranks, one $change differs: exit $code: $(tail -2 "$tmp/mpi-$change.log")"
  fi
done

summary data-safety
