#!/usr/bin/env bash
# Build what benchmarks/gpu_check.sh needs on a GPU machine with no network, into an ignored
# folder that the device call carries:
#   - gensim's wheel for that machine's Python, without gensim/test/test_data except the three
#     evaluation files and lee_background.cor, which importing gensim.test.utils reads (the whole
#     wheel is 27 MB; at most 64 MiB of files reach that machine), its RECORD rewritten to match;
#   - smart-open's wheel (gensim needs it; its own need, wrapt, is on that machine);
#   - the benchmark corpus.
#
# Usage, from the repository root:
#   benchmarks/gpu_bundle.sh                       # cp312 bundle in benchmarks/gpu_bundle/
#   GPU_BUNDLE_PYTHON=3.11 GPU_BUNDLE_CORPUS= benchmarks/gpu_bundle.sh /tmp/bundle311
#                                                  # cp311 wheels, no corpus: for a dry run here
set -euo pipefail

dest=${1:-benchmarks/gpu_bundle}
python_version=${GPU_BUNDLE_PYTHON:-3.12}
corpus=${GPU_BUNDLE_CORPUS-../shared/corpora/wiki17m.txt.gz}
python=${PYTHON:-python3}
limit_mib=64
platforms=(--platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
wheel_tags=(--only-binary=:all: --python-version "$python_version" --implementation cp
    "${platforms[@]}")

mkdir -p "$dest"
rm -f "$dest"/*.whl
download=$(mktemp -d)
trap 'rm -rf "$download"' EXIT
"$python" -m pip download -q --no-deps "${wheel_tags[@]}" -d "$download" \
    gensim==4.4.0 smart-open==9.0.2
cp "$download"/smart_open-*.whl "$dest"/

# Same wheel name, fewer files: drop gensim/test/test_data/* but the evaluation files, and
# their RECORD lines (the other lines and their hashes stay valid).
"$python" - "$download"/gensim-*.whl "$dest" <<'EOF'
import sys
import zipfile
from pathlib import Path

KEEP = {"questions-words.txt", "wordsim353.tsv", "simlex999.txt", "lee_background.cor"}
source, dest = Path(sys.argv[1]), Path(sys.argv[2])


def dropped(name: str) -> bool:
    return name.startswith("gensim/test/test_data/") and name.rsplit("/", 1)[1] not in KEEP


with zipfile.ZipFile(source) as src, zipfile.ZipFile(
    dest / source.name, "w", zipfile.ZIP_DEFLATED
) as out:
    for info in src.infolist():
        if dropped(info.filename):
            continue
        data = src.read(info)
        if info.filename.endswith(".dist-info/RECORD"):
            lines = data.decode().splitlines(keepends=True)
            data = "".join(line for line in lines if not dropped(line.split(",", 1)[0]))
        out.writestr(info, data)
print(f"{source.name}: {source.stat().st_size / 2**20:.1f} MiB -> "
      f"{(dest / source.name).stat().st_size / 2**20:.1f} MiB")
EOF

# pip must accept the trimmed wheel and find the evaluation files in what it installs.
check=$download/installed
"$python" -m pip install -q --no-index --no-deps --no-compile "${wheel_tags[@]}" \
    --target "$check" "$dest"/*.whl
for name in questions-words.txt wordsim353.tsv simlex999.txt lee_background.cor; do
    test -s "$check/gensim/test/test_data/$name" || { echo "missing $name" >&2; exit 1; }
done

if [[ -n $corpus ]]; then
    install -m 644 "$corpus" "$dest"/
fi

bundle=$(du -cb "$dest"/* | tail -1 | cut -f1)
tree=$(git ls-files -zco --exclude-standard | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
total_mib=$(( (bundle + tree) / 2**20 ))
ls -l "$dest"
echo "bundle $(( bundle / 2**20 )) MiB + working tree $(( tree / 2**20 )) MiB = ${total_mib} MiB" \
    "(the device call takes at most ${limit_mib} MiB)"
if (( total_mib >= limit_mib )); then
    echo "too big for one device call: shrink the bundle or the working tree" >&2
    exit 1
fi
