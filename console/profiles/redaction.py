"""``${VAR}`` references and redaction: secrets come from the environment and
are never printed.

A profile names a secret (``HF_TOKEN: ${HF_TOKEN}``) instead of holding it,
so profiles can be shared; anything the console prints or logs goes through
``redact*`` first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from console.errors import ConsoleError

MASK = "***"
REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SECRET_NAME = re.compile(
    r"^(HF_TOKEN|HUGGING_FACE_HUB_TOKEN|VLLM_API_KEY|OPENAI_API_KEY)$"
    r"|(_TOKEN|_KEY|_SECRET)$|PASSWORD|^(API_KEY|TOKEN|SECRET)$",
    re.IGNORECASE,
)
SECRET_FLAGS = frozenset({"api-key", "hf-token"})
"""vLLM flags whose value is a credential."""


def is_secret_name(name: str) -> bool:
    """Whether an environment variable or flag name holds a credential."""
    return bool(_SECRET_NAME.search(name)) or name.lstrip("-").replace("_", "-") in SECRET_FLAGS


def has_ref(value: str) -> bool:
    return bool(REF.search(value))


def expand(value: str, environ: Mapping[str, str], *, field: str) -> str:
    """``value`` with each ``${VAR}`` replaced; a missing variable names ``field``."""

    def sub(match: re.Match[str]) -> str:
        var = match.group(1)
        if var not in environ:
            raise ConsoleError(
                f"{field} needs the environment variable {var}, which is not set",
                hint=f"export {var}=... before starting (it is read, never stored or printed)",
            )
        return environ[var]

    return REF.sub(sub, value)


def redact_text(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret value replaced by ``***``."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def redact_env(env: Mapping[str, str], raw: Mapping[str, str] | None = None) -> dict[str, str]:
    """Env for display: secret names and values that came from ``${VAR}`` become ``***``."""
    out: dict[str, str] = {}
    for key, value in env.items():
        from_ref = raw is not None and has_ref(str(raw.get(key, "")))
        out[key] = MASK if (is_secret_name(key) or from_ref) and value else value
    return out


def redact_argv(argv: Iterable[str], secrets: Iterable[str] = ()) -> list[str]:
    """argv for display: values of credential flags and known secret values masked."""
    out: list[str] = []
    mask_next = False
    known = list(secrets)
    for token in argv:
        if mask_next:
            out.append(MASK)
            mask_next = False
            continue
        if token.startswith("--"):
            flag, eq, _ = token[2:].partition("=")
            if flag.replace("_", "-") in SECRET_FLAGS:
                if eq:
                    out.append(f"--{flag}={MASK}")
                else:
                    out.append(token)
                    mask_next = True
                continue
        out.append(redact_text(token, known))
    return out


API_KEY_ENV = "VLLM_API_KEY"


def api_key_to_env(argv: list[str]) -> tuple[list[str], dict[str, str]]:
    """``argv`` without ``--api-key`` and the environment that carries the key instead.

    A key in argv is readable by every user of the box (``ps``, /proc); vLLM
    reads ``VLLM_API_KEY`` when ``--api-key`` is absent (vllm/entrypoints/serve/
    middleware/register.py, checked on vLLM 0.32)."""
    out: list[str] = []
    keys: list[str] = []
    index = 0
    while index < len(argv):
        token = argv[index]
        if token.startswith("--api-key="):
            keys.append(token.split("=", 1)[1])
        elif token in ("--api-key", "--api_key"):
            index += 1
            while index < len(argv) and not argv[index].startswith("--"):
                keys.append(argv[index])
                index += 1
            continue
        else:
            out.append(token)
        index += 1
    keys = [key for key in keys if key]
    if len(keys) > 1:
        raise ConsoleError(
            f"--api-key has {len(keys)} keys; {API_KEY_ENV} carries one",
            hint="give serve.engine_args.api-key one key",
        )
    return out, ({API_KEY_ENV: keys[0]} if keys else {})
