#!/usr/bin/env bash
# Checkpoints under corruption and hostile files: every tensor's CRC-32 is verified on load, so
# no single-bit flip in the data is accepted by any command; duplicate header keys are refused;
# a small file cannot make a command allocate a huge model or read a huge file; what is not a
# regular file gets one accurate line. Each refusal: exit code 1, one line, no hang.
set -uo pipefail
. "$(dirname "$0")/lib.sh" integrity
use_venv || abort "cannot set up .venv"  # $python: .venv with numpy and safetensors
export VAE_DIST_PROGRESS=0
[ -x /usr/bin/time ] || abort "needs /usr/bin/time (Debian package time)"

"$bin" train --data synthetic:2000 --hidden 64 --latent 4 --epochs 1 --out "$tmp/run" > "$tmp/train.log" 2>&1 || bad "train: $(tail -1 "$tmp/train.log")"
ck="$tmp/run/checkpoints/latest.safetensors"
out=$("$bin" inspect --verify "$ck" 2>&1) && [[ $out == *"all 30 tensors match their CRC-32 checksums" ]] && ok "inspect --verify: $out" || bad "inspect --verify of a new checkpoint: $out"

# Python's safetensors reads the new metadata, and zlib.crc32 agrees with every checksum.
out=$("$python" - "$ck" <<'PY'
import json, sys, zlib
from safetensors import safe_open
with safe_open(sys.argv[1], "np") as f:
    meta = f.metadata()
    sums = json.loads(meta["checksums"])
    names = list(f.keys())
    assert meta["checksum_algorithm"] == "crc32" and set(sums) == set(names), (meta.get("checksum_algorithm"), len(sums), len(names))
    wrong = [n for n in names if f"{zlib.crc32(f.get_tensor(n).tobytes()):08x}" != sums[n]]
    assert not wrong, wrong
    print(f"{len(names)} tensors, each zlib.crc32 equal to its checksum")
PY
) && ok "Python safetensors loads it: $out" || bad "Python check: $out"

# refused NAME EXPECTED COMMAND...: exit code 1 within 10 s, one line of output, naming EXPECTED.
refused() {
  local name=$1 expected=$2 out code; shift 2
  out=$(timeout 10 "$@" 2>&1); code=$?
  if [ "$code" -eq 1 ] && [ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] && [[ $out == *"$expected"* ]]; then ok "$name: $out"
  else bad "$name (exit $code): $(printf '%s' "$out" | head -3)"; fi
}

# flip SOURCE DEST BYTE BIT: DEST is SOURCE with one bit flipped.
flip() { "$python" -c 'import sys; b = bytearray(open(sys.argv[1], "rb").read()); b[int(sys.argv[3])] ^= 1 << int(sys.argv[4]); open(sys.argv[2], "wb").write(b)' "$@"; }

# 200 single-bit flips at random positions of the data region (fixed seed): every one through
# inspect --verify, the first 20 also through eval, sample and train --resume.
"$python" - "$ck" > "$tmp/flips" <<'PY'
import struct, sys
import numpy as np
raw = open(sys.argv[1], "rb").read()
start = 8 + struct.unpack("<Q", raw[:8])[0]
bits = np.random.default_rng(20).choice((len(raw) - start) * 8, size=200, replace=False)
for b in bits: print(start + b // 8, b % 8)
PY
flips=0 flipped=0 detected=0 accepted=0 other=()
while read -r byte bit; do
  flip "$ck" "$tmp/f.safetensors" "$byte" "$bit"
  commands=(inspect)
  [ "$flips" -lt 20 ] && commands+=(eval sample resume)
  flips=$((flips + 1))
  for command in "${commands[@]}"; do
    case $command in
      inspect) args=(inspect --verify "$tmp/f.safetensors") ;;
      eval) args=(eval --checkpoint "$tmp/f.safetensors") ;;
      sample) args=(sample --checkpoint "$tmp/f.safetensors" --out "$tmp/s.png") ;;
      resume) rm -rf "$tmp/r"; mkdir -p "$tmp/r/checkpoints"; cp "$tmp/f.safetensors" "$tmp/r/checkpoints/latest.safetensors"
              args=(train --resume --epochs 2 --out "$tmp/r") ;;
    esac
    flipped=$((flipped + 1))
    out=$(timeout 20 "$bin" "${args[@]}" 2>&1); code=$?
    if [ "$code" -eq 0 ]; then accepted=$((accepted + 1))
    elif [ "$code" -eq 1 ] && [ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] && [[ $out == *": tensor "*"fails its CRC-32 check"* ]]; then detected=$((detected + 1))
    else other+=("$command byte $byte bit $bit (exit $code): $(printf '%s' "$out" | head -2)"); fi
  done
done < "$tmp/flips"
if [ "$flips" -eq 200 ] && [ "$flipped" -eq 260 ] && [ "$detected" -eq "$flipped" ]; then
  ok "$flips single-bit flips in the data (260 runs: 200 inspect --verify, 20 each eval, sample, train --resume): $detected detected by one line naming the tensor, $accepted accepted"
else
  bad "bit flips: $flipped runs, $detected detected, $accepted accepted; ${other[*]:0:3}"
fi
echo "  example: $("$bin" eval --checkpoint "$tmp/f.safetensors" 2>&1)"

# rewrite SOURCE DEST PYTHON: DEST is SOURCE with its header (a dict `h`) edited by PYTHON;
# `text` may be set to write a header text of one's own. The data is kept.
rewrite() {
  "$python" - "$@" <<'PY'
import json, struct, sys
raw = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
h = json.loads(raw[8:8 + n]); meta = h["__metadata__"]; data = raw[8 + n:]; text = None
exec(sys.argv[3])
text = (text or json.dumps(h)).encode()
text += b" " * (-len(text) % 8)
open(sys.argv[2], "wb").write(struct.pack("<Q", len(text)) + text + data)
PY
}

# Duplicate header keys (JSONSerialization would keep the last copy). Python's safetensors refuses
# a second __metadata__ (a struct field) but keeps the last of two equal metadata keys (a map):
# vae-dist refuses both, since readers that keep the first copy would read another file.
rewrite "$ck" "$tmp/dup.safetensors" 'text = json.dumps(h).replace("{\"__metadata__\": {", "{\"__metadata__\": {\"format\": \"other\", ", 1)'
refused "a metadata key twice: eval" 'holds the key "format" twice' "$bin" eval --checkpoint "$tmp/dup.safetensors"
refused "a metadata key twice: inspect" 'holds the key "format" twice' "$bin" inspect "$tmp/dup.safetensors"
rewrite "$ck" "$tmp/dup2.safetensors" 'text = json.dumps(h).replace("{\"__metadata__\": {", "{\"__metadata__\": {}, \"__metadata__\": {", 1)'
refused "__metadata__ twice: eval" 'holds the key "__metadata__" twice' "$bin" eval --checkpoint "$tmp/dup2.safetensors"
"$python" -c 'import sys; from safetensors.numpy import load_file; load_file(sys.argv[1])' "$tmp/dup2.safetensors" > /dev/null 2>&1 \
  && bad "Python's safetensors accepts __metadata__ twice" || ok "Python's safetensors refuses __metadata__ twice as well"

# A checkpoint of an older vae-dist (no checksums): loads with one note; --verify has nothing to check.
rewrite "$ck" "$tmp/old.safetensors" 'meta.pop("checksums"); meta.pop("checksum_algorithm")'
out=$("$bin" eval --checkpoint "$tmp/old.safetensors" 2>&1 > /dev/null) && [ "$out" = "vae-dist: note: $tmp/old.safetensors has no checksums (written by an older vae-dist); its tensors are not verified" ] \
  && ok "older checkpoint: eval runs, stderr is one note: $out" || bad "older checkpoint: $out"
refused "inspect --verify of an older checkpoint" "has no checksums to verify" "$bin" inspect --verify "$tmp/old.safetensors"
# ... and eval never prints a non-finite metric with exit code 0 (an older file has nothing to catch a flip).
"$python" - "$tmp/old.safetensors" "$tmp/huge-weights.safetensors" <<'PY'
import struct, sys, json
import numpy as np
raw = bytearray(open(sys.argv[1], "rb").read())
n = struct.unpack("<Q", raw[:8])[0]; h = json.loads(raw[8:8 + n]); begin, end = h["encoder.0.weight"]["data_offsets"]
raw[8 + n + begin:8 + n + end] = np.full((end - begin) // 4, 1e30, np.float32).tobytes()
open(sys.argv[2], "wb").write(raw)
PY
out=$("$bin" eval --checkpoint "$tmp/huge-weights.safetensors" 2>&1); code=$?
[ "$code" -eq 1 ] && [[ $out == *"evaluation gives "*"the parameters are not usable" ]] && ! [[ $out == *null* ]] \
  && ok "eval of finite but broken weights (1e30): exit 1, $(echo "$out" | tail -1)" || bad "eval of 1e30 weights (exit $code): $out"

# peak_kb COMMAND...: runs it (exit code in $code, output in $out) and sets $kb, its peak RSS.
peak() {
  out=$(timeout 20 /usr/bin/time -f "peak %M" "$@" 2>&1); code=$?
  kb=$(printf '%s\n' "$out" | sed -n 's/^peak \([0-9]*\)$/\1/p'); out=$(printf '%s\n' "$out" | grep -v '^peak \|exited with non-zero')
}
# A 1 KB metadata-only checkpoint claiming a huge model: refused by the config check or, for a
# model the config allows (1.9 billion parameters, 7.4 GB), by the first missing tensor, before allocating.
for hidden in "100000, 100000" "30000, 30000"; do
  rewrite "$ck" "$tmp/huge.safetensors" "c = json.loads(meta['config']); c['model']['hidden'] = [$hidden]; meta['config'] = json.dumps(c); [meta.pop(k) for k in ('checksums', 'checksum_algorithm')]; h = {'__metadata__': meta}; data = b''"
  peak "$bin" eval --checkpoint "$tmp/huge.safetensors"
  if [ "$code" -eq 1 ] && [ -n "$kb" ] && [ "$kb" -lt 102400 ] && [[ $out == *"model config is invalid"* || $out == *"has no tensor encoder.0.weight"* ]]; then
    ok "$(stat -c %s "$tmp/huge.safetensors")-byte file claiming --hidden $hidden: peak RSS $((kb / 1024)) MB, $out"
  else bad "huge claimed model --hidden $hidden (exit $code, peak ${kb:-?} KB): $out"; fi
done

# 500 MB of zeros (sparse) as latest.safetensors: refused from its first 8 bytes.
mkdir -p "$tmp/zeros/checkpoints"; truncate -s 500M "$tmp/zeros/checkpoints/latest.safetensors"
for command in eval resume; do
  if [ "$command" = eval ]; then peak "$bin" eval --checkpoint "$tmp/zeros"; else peak "$bin" train --resume --out "$tmp/zeros"; fi
  if [ "$code" -eq 1 ] && [ -n "$kb" ] && [ "$kb" -lt 102400 ] && [[ $out == *"header length 0 is too short"* ]] && [ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ]; then
    ok "500 MB of zeros, $command: peak RSS $((kb / 1024)) MB, $out"
  else bad "500 MB of zeros, $command (exit $code, peak ${kb:-?} KB): $out"; fi
done

# What is not a regular file, as --checkpoint: one accurate line each, no hang.
mkfifo "$tmp/fifo"; ln -s /dev/zero "$tmp/zero"; mkdir "$tmp/folder"; ln -s "$tmp/loop2" "$tmp/loop1"; ln -s "$tmp/loop1" "$tmp/loop2"
mkdir -p "$tmp/dirlatest/checkpoints/latest.safetensors"
refused "a FIFO" "is a FIFO (named pipe), not a regular file" "$bin" eval --checkpoint "$tmp/fifo"
refused "a symlink to /dev/zero" "is a character device (such as /dev/zero), not a regular file" "$bin" eval --checkpoint "$tmp/zero"
refused "a folder" "a folder without a checkpoint" "$bin" eval --checkpoint "$tmp/folder"
refused "a folder named latest.safetensors" "is a folder, not a file" "$bin" eval --checkpoint "$tmp/dirlatest/checkpoints/latest.safetensors"
refused "a symlink loop" "is a loop of symbolic links" "$bin" eval --checkpoint "$tmp/loop1"
refused "a FIFO through inspect --verify" "is a FIFO" "$bin" inspect --verify "$tmp/fifo"

summary integrity
