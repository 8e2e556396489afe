# Sourced by the other scripts in this folder: where the embedded target, its cache and the
# extra wheels live on the offline GPU machine (under /tmp, which outlasts one command there).
export SV=/tmp/sv
export SPECVIZ_CACHE=$SV/cache
export SPECVIZ_GGUF=$SV/SmolLM2-135M-Instruct.Q4_1.gguf
export PYTHONPATH=$SV/site:$PWD${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1
mkdir -p "$SV"
# own_tree NAME: continue in a private copy of the working tree under $SV (a detached job
# outlives the command that started it, and the next command gets a fresh working tree);
# its results go to $res = $SV/NAME
own_tree() {
  local dest=$SV/tree-$1
  rm -rf "$dest" && mkdir -p "$dest"
  tar --exclude=./.carry --exclude=./.whl --exclude=./.git -cf - . | tar -xf - -C "$dest"
  cd "$dest" || exit 1
  export PYTHONPATH=$SV/site:$PWD
  res=$SV/$1
  mkdir -p "$res"
}
# run CMD...: print the command, then run it (the logs show what ran)
run() { echo "+ $*"; "$@"; }
# bench NAME ARGS...: `specviz bench` on the 24 held-out prompts, 128 new tokens, one repeat;
# its JSON and Markdown into $res/NAME.json and .md
bench() {
  local name=$1; shift
  run python3 -m specviz bench --device cuda --prompts assets/prompts/heldout.jsonl \
    --repeats 1 --max-new-tokens 128 --json "$res/$name.json" --markdown "$res/$name.md" "$@"
}
